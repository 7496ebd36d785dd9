"""Fisher information, covariance, intervals and reward comparisons vs references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import hetrlhf as hr
from hetrlhf.btl.model import derivatives
from hetrlhf.types import ravel_params
from tests.reference import DESIGNS, numpy_loss, simulate, statsmodels_fit


def _data(name, n, seed):
    arrays = simulate(np.random.default_rng(seed), n, DESIGNS[name])
    return arrays, hr.comparisons(*arrays)


def _truth(name):
    design = DESIGNS[name]
    return hr.Params(jnp.asarray(design.theta), jnp.asarray(design.gamma))


def _numpy_grad(x, arrays, h=1e-6):
    """Central finite differences of the numpy loss."""
    g = np.zeros_like(x)
    for j in range(x.size):
        e = np.zeros_like(x)
        e[j] = h
        g[j] = (numpy_loss(x + e, *arrays) - numpy_loss(x - e, *arrays)) / (2 * h)
    return g


@pytest.mark.parametrize("name", ["default", "psi0_varying", "binary"])
def test_derivatives_match_finite_differences_and_autodiff(name):
    arrays, data = _data(name, 300, seed=1)
    x = np.asarray(ravel_params(_truth(name))) + 0.1
    value, grad, hess, fisher = derivatives(jnp.asarray(x), data)
    np.testing.assert_allclose(float(value), numpy_loss(x, *arrays), rtol=1e-12)
    np.testing.assert_allclose(grad, _numpy_grad(x, arrays), atol=1e-8)
    # Hessian: finite differences of the (finite-difference) gradient.
    h = 1e-4
    fd_hess = np.stack(
        [
            (_numpy_grad(x + h * e, arrays) - _numpy_grad(x - h * e, arrays)) / (2 * h)
            for e in np.eye(x.size)
        ]
    )
    np.testing.assert_allclose(hess, fd_hess, atol=1e-5)
    params = hr.Params(
        jnp.asarray(x[: len(DESIGNS[name].theta)]),
        jnp.asarray(x[len(DESIGNS[name].theta) :]),
    )
    np.testing.assert_allclose(hr.fisher_information(params, data), hess, atol=1e-12)
    np.testing.assert_allclose(
        hr.fisher_information(params, data, kind="expected"), fisher, atol=1e-12
    )


def _per_sample_expected_information(x, arrays):
    """[n, p, p] contributions p_i(1−p_i) g_i g_iᵀ, in numpy."""
    phi0, phi1, _y, psi, psi0 = arrays
    d = phi0.shape[1]
    dphi = phi1 - phi0
    sigma, r = psi0 + psi @ x[d:], dphi @ x[:d]
    prob = 1 / (1 + np.exp(-sigma * r))
    g = np.column_stack([sigma[:, None] * dphi, r[:, None] * psi])
    return (prob * (1 - prob))[:, None, None] * g[:, :, None] * g[:, None, :]


def test_observed_information_approaches_expected_information_at_truth():
    """Large n: ∇²L_n(θ*, γ*) (autodiff) → E[p(1−p) g gᵀ] estimated on a fresh sample.

    The tolerance is statistical: 5 Monte Carlo standard errors per element (the
    per-sample contributions of both estimates are independent across samples).
    """
    n = 100_000
    arrays, data = _data("default", n, seed=2)
    fresh_arrays, _ = _data("default", n, seed=3)
    x = np.asarray(ravel_params(_truth("default")))
    observed = np.asarray(hr.fisher_information(_truth("default"), data))
    contrib = _per_sample_expected_information(x, fresh_arrays)
    expected = contrib.mean(0)
    # Per-sample observed contributions: expected part + the cross term (p − y)Δφψᵀ.
    phi0, phi1, y, psi, psi0 = arrays
    d = phi0.shape[1]
    prob = 1 / (1 + np.exp(-(psi0 + psi @ x[d:]) * ((phi1 - phi0) @ x[:d])))
    obs_contrib = _per_sample_expected_information(x, arrays)
    cross = (prob - y)[:, None, None] * (phi1 - phi0)[:, :, None] * psi[:, None, :]
    obs_contrib[:, :d, d:] += cross
    obs_contrib[:, d:, :d] += np.transpose(cross, (0, 2, 1))
    np.testing.assert_allclose(observed, obs_contrib.mean(0), rtol=1e-10, atol=1e-12)
    mc_se = np.sqrt(contrib.var(0) / n + obs_contrib.var(0) / n)
    z = np.abs(observed - expected) / mc_se
    assert z.max() < 5, f"max |z| = {z.max():.2f}"
    # And the difference is small in absolute terms.
    np.testing.assert_allclose(observed, expected, atol=0.02 * np.abs(expected).max())


@pytest.mark.parametrize("name", ["default", "binary"])
def test_covariance_reward_interval_and_comparison_match_statsmodels(name):
    arrays, data = _data(name, 500, seed=4)
    ref = statsmodels_fit(*arrays, start=np.asarray(ravel_params(_truth(name))))
    params = hr.fit(data).params
    cov = hr.covariance(params, data)
    np.testing.assert_allclose(cov, ref.cov, rtol=2e-3, atol=1e-9)

    d = len(DESIGNS[name].theta)
    rng = np.random.default_rng(0)
    phi_a, phi_b = rng.normal(size=(7, d)), rng.normal(size=(7, d))
    est = hr.reward_interval(params, data, jnp.asarray(phi_a))
    np.testing.assert_allclose(est.mean, phi_a @ ref.params[:d], rtol=1e-5)
    ref_var = np.einsum("ni,ij,nj->n", phi_a, ref.cov[:d, :d], phi_a)
    np.testing.assert_allclose(est.var, ref_var, rtol=2e-3)

    cmp = hr.compare_rewards(params, data, jnp.asarray(phi_a), jnp.asarray(phi_b))
    delta = (phi_a - phi_b) @ ref.params[:d]
    se = np.sqrt(
        np.einsum("ni,ij,nj->n", phi_a - phi_b, ref.cov[:d, :d], phi_a - phi_b)
    )
    z = delta / se
    np.testing.assert_allclose(cmp.z, z, rtol=2e-3)
    np.testing.assert_allclose(
        cmp.p_value, 2 * stats.norm.sf(np.abs(cmp.z)), rtol=1e-10
    )
    np.testing.assert_allclose(cmp.p_value_greater, stats.norm.sf(cmp.z), rtol=1e-10)
    np.testing.assert_allclose(cmp.p_value_less, stats.norm.cdf(cmp.z), rtol=1e-10)


def test_intervals_use_the_requested_level():
    _arrays, data = _data("default", 400, seed=5)
    params = hr.fit(data).params
    for alpha in (0.01, 0.1, 0.32):
        ci = hr.confidence_intervals(params, data, alpha)
        z = stats.norm.ppf(1 - alpha / 2)
        np.testing.assert_allclose(
            ci.upper.theta - ci.lower.theta, 2 * z * ci.se.theta, rtol=1e-12
        )
        np.testing.assert_allclose(ci.estimate.gamma, params.gamma)
        assert np.isfinite(float(ci.condition_number))


def test_singular_information_raises_with_condition_number():
    _, data = _data("default", 200, seed=6)
    # θ = 0: r ≡ 0, so the γ block of the information vanishes.
    params = hr.Params(jnp.zeros(5), jnp.asarray([0.5, -0.3, 0.4]))
    with pytest.raises(ValueError, match="condition number"):
        hr.confidence_intervals(params, data)
    with pytest.raises(ValueError, match="condition number"):
        hr.covariance(params, data)
    # Under jit no exception: the condition number is returned as data (inf).
    out = jax.jit(hr.confidence_intervals)(params, data)
    assert (
        not np.isfinite(float(out.condition_number))
        or float(out.condition_number) > 1e13
    )


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5])
def test_bad_alpha(alpha):
    _, data = _data("default", 100, seed=0)
    with pytest.raises(ValueError, match="alpha"):
        hr.confidence_intervals(_truth("default"), data, alpha)


def test_bad_information_kind():
    _, data = _data("default", 100, seed=0)
    with pytest.raises(ValueError, match="kind"):
        hr.fisher_information(_truth("default"), data, kind="sandwhich")
    with pytest.raises(ValueError, match="kind"):
        hr.covariance(_truth("default"), data, kind="sandwhich")


@pytest.mark.slow  # ~6 s on the 2-core CI machine
def test_vmapped_intervals_equal_eager():
    sets = [
        simulate(np.random.default_rng(s), 300, DESIGNS["default"]) for s in range(4)
    ]
    stacked = hr.Comparisons(
        *(jnp.asarray(np.stack([s[i] for s in sets])) for i in range(5))
    )

    def replicate(data):
        result = hr.fit(data)
        return hr.confidence_intervals(result.params, data)

    batch = jax.jit(jax.vmap(replicate))(stacked)
    for i in range(4):
        data = jax.tree.map(lambda a, i=i: a[i], stacked)
        eager = hr.confidence_intervals(hr.fit(data).params, data)
        np.testing.assert_allclose(batch.se.gamma[i], eager.se.gamma, rtol=1e-8)
        np.testing.assert_allclose(batch.lower.theta[i], eager.lower.theta, rtol=1e-8)


def test_likelihood_ratio_test_matches_statsmodels_nested_logits():
    """hr.fit's homogeneous model is a logit without intercept on Δφ: dropping the last
    feature is a nested model; the LR test from hr.fit's log-likelihoods equals the one
    from statsmodels' maximised log-likelihoods and scipy's χ² tail."""
    import statsmodels.api as sm

    rng = np.random.default_rng(3)
    n = 400
    dphi = rng.normal(size=(n, 3))
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-dphi @ [0.8, -0.5, 0.4]))) * 1.0
    fits = {}
    for name, cols in (("full", 3), ("restricted", 2)):
        data = hr.comparisons(np.zeros((n, cols)), dphi[:, :cols], y)
        fits[name] = -n * float(hr.fit(data).loss)  # Σ log-likelihood
    full = sm.Logit(y, dphi).fit(disp=0, tol=1e-12)
    restricted = sm.Logit(y, dphi[:, :2]).fit(disp=0, tol=1e-12)
    stat = 2 * (full.llf - restricted.llf)
    assert stat > 1.0  # the dropped feature matters: a test with power
    got = hr.inference.likelihood_ratio_test(fits["restricted"], fits["full"], 1)
    np.testing.assert_allclose(got.stat, stat, rtol=1e-7)
    np.testing.assert_allclose(got.p, stats.chi2.sf(stat, 1), rtol=1e-7)
    assert got.df == full.df_model - restricted.df_model == 1


def test_likelihood_ratio_test_chi2_tail_and_clipping():
    got = hr.inference.likelihood_ratio_test(-120.0, -115.5, 3)
    assert got.stat == 9.0 and got.df == 3
    np.testing.assert_allclose(got.p, stats.chi2.sf(9.0, 3), rtol=1e-14)
    # The full model's maximum below the restricted one's is rounding: statistic 0.
    assert hr.inference.likelihood_ratio_test(-10.0, -10.0 - 1e-12, 2) == (0.0, 2, 1.0)
    with pytest.raises(ValueError, match="df"):
        hr.inference.likelihood_ratio_test(-10.0, -9.0, 0)
    with pytest.raises(ValueError, match="finite"):
        hr.inference.likelihood_ratio_test(-np.inf, -9.0, 1)


def test_cholesky_and_condition_against_numpy_and_ordered():
    from hetrlhf.validation import cholesky_and_condition

    def factor_and_condition(m):
        (factor, _), cond = cholesky_and_condition(m)
        return factor, cond

    rng = np.random.default_rng(3)
    a = rng.normal(size=(4, 6, 6))
    spd = jnp.asarray(a @ np.swapaxes(a, -1, -2) + 0.1 * np.eye(6))
    factor, cond = jax.vmap(factor_and_condition)(spd)
    np.testing.assert_allclose(np.tril(factor), np.linalg.cholesky(spd), rtol=1e-10)
    np.testing.assert_allclose(cond, np.linalg.cond(spd), rtol=1e-8)
    # Not positive definite: an infinite condition number and a NaN factor.
    factor, cond = factor_and_condition(jnp.diag(jnp.array([1.0, -1.0])))
    assert np.isinf(cond) and np.isnan(factor).any()
    # The two batched LAPACK calls must not run at once (jaxlib 0.10's CPU kernels
    # deadlock on a 2-thread pool): the program orders them in XLA's schedule.
    text = jax.jit(jax.vmap(factor_and_condition)).lower(spd).as_text()
    assert "optimization_barrier" in text
