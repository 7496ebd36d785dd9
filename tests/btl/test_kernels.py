"""The BTL kernels with and without ``jax.jit`` (chex variants) vs independent numpy.

References, none computed by hetrlhf: the heterogeneous BT log-likelihood written in
numpy (``np.logaddexp``), its gradient and Hessian by central finite differences, the
expected information (1/n) Σ p(1−p) g gᵀ as a numpy loop, the frequency-weighted loss
as the loss of the expanded rows, and the reward interval's variance φᵀ Σ_θ φ with
Σ = (n · Hessian)⁻¹ from the finite-difference Hessian (numpy ``inv``).
"""

import functools

import chex
import jax.numpy as jnp
import numpy as np
from absl.testing import parameterized
from scipy import stats

import hetrlhf as hr
from hetrlhf.btl import inference, model
from hetrlhf.types import Params, ravel_params

D, K, N = 3, 2, 40


def _data(seed=0, n=N, weight=None):
    """A small heterogeneous data set with both labels and non-trivial covariates."""
    rng = np.random.default_rng(seed)
    phi0, phi1 = rng.normal(size=(2, n, D))
    psi = rng.normal(size=(n, K))
    psi0 = np.ones(n)
    y = (rng.uniform(size=n) < 0.5).astype(float)
    return hr.comparisons(phi0, phi1, y, psi=psi, psi0=psi0, weight=weight)


def _np_nll(x, data):
    """Mean negative log-likelihood in numpy (log(1 + e^η) by ``np.logaddexp``)."""
    dphi = np.asarray(data.phi1) - np.asarray(data.phi0)
    psi, psi0, y = (np.asarray(a) for a in (data.psi, data.psi0, data.y))
    eta = (psi0 + psi @ x[D:]) * (dphi @ x[:D])
    nll = np.logaddexp(0.0, eta) - y * eta
    if data.weight is None:
        return nll.mean()
    w = np.asarray(data.weight)
    return (w * nll).sum() / w.sum()


def _fd_grad(f, x, h=1e-6):
    out = np.zeros_like(x)
    for j in range(x.size):
        e = np.zeros_like(x)
        e[j] = h
        out[j] = (f(x + e) - f(x - e)) / (2 * h)
    return out


def _fd_hess(f, x, h=1e-4):
    """Central second differences of a scalar function (error O(h²))."""
    p = x.size
    out = np.zeros((p, p))
    for i in range(p):
        for j in range(p):
            ei, ej = np.zeros(p), np.zeros(p)
            ei[i], ej[j] = h, h
            out[i, j] = (
                f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)
            ) / (4 * h * h)
    return out


def _np_expected_information(x, data):
    dphi = np.asarray(data.phi1) - np.asarray(data.phi0)
    psi, psi0 = np.asarray(data.psi), np.asarray(data.psi0)
    total = np.zeros((D + K, D + K))
    for i in range(dphi.shape[0]):
        sigma = psi0[i] + psi[i] @ x[D:]
        r = dphi[i] @ x[:D]
        p = 1.0 / (1.0 + np.exp(-sigma * r))
        g = np.concatenate([sigma * dphi[i], r * psi[i]])
        total += p * (1 - p) * np.outer(g, g)
    return total / dphi.shape[0]


X0 = np.array([0.7, -0.4, 0.2, 0.3, -0.2])  # (θ, γ): σ stays away from 0


class BTKernelsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_log_likelihood_and_loss_match_numpy(self):
        data = _data()
        params = Params(jnp.asarray(X0[:D]), jnp.asarray(X0[D:]))
        ll = self.variant(model.log_likelihood)(params, data)
        dphi = np.asarray(data.dphi)
        eta = (1.0 + np.asarray(data.psi) @ X0[D:]) * (dphi @ X0[:D])
        y = np.asarray(data.y)
        np.testing.assert_allclose(ll, y * eta - np.logaddexp(0.0, eta), rtol=1e-12)
        loss = self.variant(model.loss)(params, data)
        np.testing.assert_allclose(loss, _np_nll(X0, data), rtol=1e-12)

    @chex.variants(with_jit=True, without_jit=True)
    def test_gradient_and_hessian_match_finite_differences(self):
        data = _data(seed=1)
        value, grad, hess, fisher = self.variant(model.derivatives)(
            jnp.asarray(X0), data
        )
        f = functools.partial(_np_nll, data=data)
        np.testing.assert_allclose(value, f(X0), rtol=1e-12)
        np.testing.assert_allclose(grad, _fd_grad(f, X0), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(hess, _fd_hess(f, X0), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(
            fisher, _np_expected_information(X0, data), rtol=1e-10, atol=1e-14
        )
        # The observed and the expected information differ here (heterogeneous
        # model, the cross block C ≠ 0): the check of each is not vacuous.
        assert np.abs(np.asarray(hess) - np.asarray(fisher)).max() > 1e-3

    @chex.variants(with_jit=True, without_jit=True)
    def test_fisher_information_observed_and_expected(self):
        data = _data(seed=2)
        params = Params(jnp.asarray(X0[:D]), jnp.asarray(X0[D:]))
        f = functools.partial(_np_nll, data=data)
        observed = self.variant(
            functools.partial(inference.fisher_information, kind="observed")
        )(params, data)
        expected = self.variant(
            functools.partial(inference.fisher_information, kind="expected")
        )(params, data)
        np.testing.assert_allclose(observed, _fd_hess(f, X0), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(
            expected, _np_expected_information(X0, data), rtol=1e-10, atol=1e-14
        )

    @chex.variants(with_jit=True, without_jit=True)
    def test_weighted_loss_and_gradient_equal_the_expanded_rows(self):
        rng = np.random.default_rng(3)
        counts = rng.integers(0, 4, size=N).astype(float)
        weighted = _data(seed=3, weight=counts)
        rows = np.repeat(np.arange(N), counts.astype(int))
        expanded = hr.comparisons(
            *(np.asarray(a)[rows] for a in (weighted.phi0, weighted.phi1, weighted.y)),
            psi=np.asarray(weighted.psi)[rows],
            psi0=np.asarray(weighted.psi0)[rows],
        )
        value, grad, hess, _ = self.variant(model.derivatives)(
            jnp.asarray(X0), weighted
        )
        f = functools.partial(_np_nll, data=expanded)
        np.testing.assert_allclose(value, f(X0), rtol=1e-12)
        np.testing.assert_allclose(grad, _fd_grad(f, X0), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(hess, _fd_hess(f, X0), rtol=1e-5, atol=1e-7)

    @chex.variants(with_jit=True, without_jit=True)
    def test_reward_interval_is_phi_sigma_phi(self):
        data = _data(seed=4, n=200)
        params = Params(jnp.asarray(X0[:D]), jnp.asarray(X0[D:]))
        phi_new = np.random.default_rng(5).normal(size=(4, 6, D))
        est = self.variant(inference.reward_interval)(params, data, phi_new)
        hess = _fd_hess(functools.partial(_np_nll, data=data), X0)
        sigma_theta = np.linalg.inv(200 * hess)[:D, :D]
        np.testing.assert_allclose(est.mean, phi_new @ X0[:D], rtol=1e-12)
        want = np.einsum("abi,ij,abj->ab", phi_new, sigma_theta, phi_new)
        np.testing.assert_allclose(est.var, want, rtol=1e-5)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(None, 0.05)
    def test_compare_estimates_is_the_scipy_z_test(self, cov_ab):
        rng = np.random.default_rng(6)
        mean_a, mean_b = rng.normal(size=(2, 7))
        var_a, var_b = rng.uniform(0.2, 1.0, size=(2, 7))
        got = self.variant(inference.compare_estimates)(
            hr.RewardEstimate(jnp.asarray(mean_a), jnp.asarray(var_a)),
            hr.RewardEstimate(jnp.asarray(mean_b), jnp.asarray(var_b)),
            None if cov_ab is None else jnp.full(7, cov_ab),
        )
        se = np.sqrt(var_a + var_b - 2 * (cov_ab or 0.0))
        z = (mean_a - mean_b) / se
        np.testing.assert_allclose(got.se, se, rtol=1e-12)
        np.testing.assert_allclose(got.p_value, 2 * stats.norm.sf(abs(z)), rtol=1e-9)
        np.testing.assert_allclose(got.p_value_greater, stats.norm.sf(z), rtol=1e-9)


def test_ravel_order_is_theta_then_gamma():
    """The kernels above index x = (θ, γ); the packing they assume."""
    x = ravel_params(Params(jnp.arange(3.0), jnp.arange(3.0, 5.0)))
    np.testing.assert_array_equal(x, np.arange(5.0))
