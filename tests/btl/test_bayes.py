"""Tests of hetrlhf.btl.bayes against independent references.

* the numpyro model's log joint vs a numpy/scipy log-likelihood + normal log-prior;
* NUTS vs the exact posterior by 2-D grid quadrature on a tiny problem (d = k = 1);
* Bernstein–von Mises: in a large sample the posterior mean/sd match the MLE/Wald se.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.util import log_density
from scipy import stats

import hetrlhf as hr
from hetrlhf.btl import bayes
from hetrlhf.data import simulate


def _loglik_numpy(theta, gamma, data):
    dphi, psi = np.asarray(data.dphi), np.asarray(data.psi)
    eta = (np.asarray(data.psi0) + psi @ gamma) * (dphi @ theta)
    return np.sum(np.asarray(data.y) * eta - np.logaddexp(0.0, eta))


def test_model_log_joint_matches_scipy():
    design = simulate.get_design("binary", theta=(0.7, -1.2, 0.4), gamma=(0.3, -0.6))
    data = simulate.simulate(jax.random.key(0), design, 80)
    theta, gamma = np.array([0.5, -1.0, 0.2]), np.array([0.1, -0.4])
    got, _ = log_density(
        bayes.btl_model,
        (data,),
        {"prior_scale": 3.0},
        {"theta": jnp.asarray(theta), "gamma": jnp.asarray(gamma)},
    )
    want = _loglik_numpy(theta, gamma, data) + np.sum(
        stats.norm.logpdf(np.r_[theta, gamma], 0.0, 3.0)
    )
    np.testing.assert_allclose(float(got), want, rtol=1e-12)


@pytest.mark.slow  # ~8 s on the 2-core CI machine
def test_nuts_matches_grid_quadrature():
    # d = k = 1 and n = 50: a visibly non-Gaussian posterior in γ, computed exactly on
    # a grid (numpy likelihood, N(0, 10²) priors) as the independent reference.
    design = simulate.get_design("default", theta=(1.0,), gamma=(0.6,))
    data = simulate.simulate(jax.random.key(3), design, 50)
    th, ga = np.linspace(-4, 6, 601), np.linspace(-8, 8, 601)
    t, g = np.meshgrid(th, ga, indexing="ij")
    dphi, psi, y = (np.asarray(a) for a in (data.dphi[:, 0], data.psi[:, 0], data.y))
    eta = (1.0 + g[..., None] * psi) * t[..., None] * dphi
    logp = np.sum(y * eta - np.logaddexp(0.0, eta), -1) - (t**2 + g**2) / 200.0
    w = np.exp(logp - logp.max())
    w /= w.sum()
    assert w[0].sum() + w[-1].sum() + w[:, 0].sum() + w[:, -1].sum() < 1e-5

    def grid_summary(x, marginal):
        mean = np.sum(w * x)
        sd = np.sqrt(np.sum(w * (x - mean) ** 2))
        cdf = np.cumsum(marginal)
        return mean, sd, np.interp([0.025, 0.975], cdf, x[:, 0] if x is t else x[0])

    refs = {
        "theta": grid_summary(t, w.sum(1)),
        "gamma": grid_summary(g, w.sum(0)),
    }
    refs_density = {"theta": (th, w.sum(1)), "gamma": (ga, w.sum(0))}
    post = bayes.posterior(
        jax.random.key(0), data, num_warmup=500, num_samples=2000, num_chains=2
    )
    assert int(post.num_divergent) == 0
    for name, (mean, sd, (lo, hi)) in refs.items():
        assert abs(float(getattr(post.r_hat, name)[0]) - 1.0) < 0.02
        # 4000 draws, ESS ≳ 1000: MC se of the mean ≲ 0.03 sd.
        assert abs(float(getattr(post.estimate, name)[0]) - mean) < 0.12 * sd, name
        assert abs(float(getattr(post.se, name)[0]) / sd - 1.0) < 0.1, name
        # Tail quantiles: MC se = sqrt(q(1−q)/ESS)/f(x_q) with the grid's marginal
        # density f; ESS ≳ 1000 of 4000 draws; allow 4 MC se (the 0.2 sd used before
        # was only ~2 MC se at the skewed γ tail and failed on a valid sampler).
        x, marginal = refs_density[name]
        for got, ref in ((post.lower, lo), (post.upper, hi)):
            density = np.interp(ref, x, marginal) / (x[1] - x[0])
            mc_se = np.sqrt(0.025 * 0.975 / 1000) / density
            assert abs(float(getattr(got, name)[0]) - ref) < 4 * mc_se, name


@pytest.mark.slow
def test_bernstein_von_mises_large_sample():
    design = simulate.get_design("default", theta=(1.0, -0.5), gamma=(0.5,))
    data = simulate.simulate(jax.random.key(1), design, 4000)
    res = hr.fit(data)
    ci = hr.confidence_intervals(res.params, data)
    post = bayes.posterior(
        jax.random.key(2), data, res.params, num_warmup=300, num_samples=1500
    )
    for name in ("theta", "gamma"):
        se = np.asarray(getattr(ci.se, name))
        diff = np.asarray(getattr(post.estimate, name)) - np.asarray(
            getattr(res.params, name)
        )
        np.testing.assert_array_less(np.abs(diff), 0.1 * se)
        ratio = np.asarray(getattr(post.se, name)) / se
        np.testing.assert_array_less(np.abs(ratio - 1.0), 0.1)
        # Equal-tailed credible interval ≈ Wald interval (in units of se).
        for end in ("lower", "upper"):
            gap = np.asarray(getattr(getattr(post, end), name)) - np.asarray(
                getattr(getattr(ci, end), name)
            )
            np.testing.assert_array_less(np.abs(gap), 0.2 * se)


def test_split_r_hat_detects_disagreeing_chains():
    rng = np.random.default_rng(0)
    same = rng.normal(size=(4, 2000))
    assert abs(float(bayes.split_r_hat(jnp.asarray(same))) - 1.0) < 0.01
    shifted = same + np.array([[0.0], [0.0], [2.0], [2.0]])
    assert float(bayes.split_r_hat(jnp.asarray(shifted))) > 1.3


def test_bad_input():
    design = simulate.get_design("default")
    data = simulate.simulate(jax.random.key(0), design, 30)
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="alpha"):
        bayes.posterior(key, data, alpha=1.5)
    with pytest.raises(ValueError, match="prior_scale"):
        bayes.posterior(key, data, prior_scale=0.0)
    with pytest.raises(ValueError, match="num_samples"):
        bayes.posterior(key, data, num_samples=2)
    with pytest.raises(TypeError, match="Comparisons"):
        bayes.posterior(key, (data.phi0, data.phi1, data.y))
