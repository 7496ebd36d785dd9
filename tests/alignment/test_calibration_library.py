"""The calibration study's library pieces against independent references.

``hetrlhf.alignment.calibration``: ``coverage_summary`` and ``probability_summary``
(numpy/scipy by hand), ``difference_sources`` (a scipy maximum-likelihood fit with a
finite-difference Hessian and a hand-written HC0 sandwich; the ensemble's padding);
``hetrlhf.alignment.interval_rewards.judge_differences`` (simulation with known truth).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize, special, stats

from hetrlhf.alignment import calibration, ensemble
from hetrlhf.alignment.interval_rewards import judge_differences
from hetrlhf.btl.estimate import pad_rows
from hetrlhf.data import simulate as hsim
from hetrlhf.types import RewardEstimate

LEVELS = np.array([0.5, 0.8, 0.9, 0.95])

# One compiled program per data shape (eager, every op would dispatch on its own).
_sources = jax.jit(
    calibration.difference_sources, static_argnames=("options", "num_clusters")
)


def test_coverage_summary_matches_numpy():
    rng = np.random.default_rng(1)
    g, m = 12, 50
    mean = rng.normal(size=(g, m))
    var = rng.uniform(0.2, 2.0, size=(g, m))
    truth = mean + rng.normal(size=(g, m)) * np.sqrt(var) * 1.3  # over-confident
    got = jax.jit(calibration.coverage_summary)(
        RewardEstimate(jnp.asarray(mean), jnp.asarray(var)),
        jnp.asarray(truth),
        jnp.asarray(LEVELS),
    )
    z = stats.norm.ppf(0.5 + LEVELS / 2)
    inside = np.abs(truth - mean)[None] <= z[:, None, None] * np.sqrt(var)[None]
    per_group = inside.mean(-1)  # [L, G]
    np.testing.assert_allclose(got["coverage"], inside.mean((1, 2)), atol=1e-7)
    np.testing.assert_allclose(
        got["coverage_se"], per_group.std(1, ddof=1) / np.sqrt(g), rtol=1e-5
    )
    ratio = np.median(np.abs(truth - mean) / np.sqrt(var)) / stats.norm.ppf(0.75)
    np.testing.assert_allclose(got["sd_scale"], ratio, rtol=1e-12)
    np.testing.assert_allclose(got["mean_sd"], np.sqrt(var).mean(), rtol=1e-12)


def test_coverage_summary_of_a_calibrated_source_is_nominal():
    rng = np.random.default_rng(2)
    g, m = 40, 500
    mean = rng.normal(size=(g, m))
    sd = rng.uniform(0.5, 2.0, size=(g, m))
    truth = mean + sd * rng.normal(size=(g, m))
    got = calibration.coverage_summary(
        RewardEstimate(jnp.asarray(mean), jnp.asarray(sd**2)),
        jnp.asarray(truth),
        jnp.asarray(LEVELS),
    )
    # 20,000 intervals: binomial se <= 0.0036 per level.
    np.testing.assert_allclose(got["coverage"], LEVELS, atol=0.012)
    assert abs(float(got["sd_scale"]) - 1.0) < 0.03
    with pytest.raises(ValueError):  # [m] estimates: the groups axis is required
        calibration.coverage_summary(
            RewardEstimate(jnp.asarray(mean[0]), jnp.asarray(sd[0] ** 2)),
            jnp.asarray(truth[0]),
            jnp.asarray(LEVELS),
        )


def test_probability_summary_matches_numpy():
    rng = np.random.default_rng(3)
    shape = (4, 300)
    mean = rng.normal(size=shape) * 2
    var = rng.uniform(0.0, 3.0, size=shape)
    sigma = rng.choice([1.0, 0.5, -0.3], size=shape)
    prob_true = special.expit(sigma * mean / np.sqrt(1 + np.pi * sigma**2 * var / 8))
    y = (rng.uniform(size=shape) < prob_true).astype(float)
    got = calibration.probability_summary(
        RewardEstimate(jnp.asarray(mean), jnp.asarray(var)),
        jnp.asarray(y),
        jnp.asarray(sigma),
        10,
    )
    p, yy = prob_true.ravel(), y.ravel()
    bins = np.minimum((p * 10).astype(int), 9)
    ece, counts = 0.0, np.zeros(10)
    for b in range(10):
        sel = bins == b
        counts[b] = sel.sum()
        if sel.any():
            ece += sel.mean() * abs(yy[sel].mean() - p[sel].mean())
    np.testing.assert_allclose(got["ece"], ece, rtol=1e-10)
    np.testing.assert_array_equal(got["reliability"]["count"], counts)
    # No variance: the plug-in sigmoid(σ·μ).
    plug = calibration.probability_summary(
        RewardEstimate(jnp.asarray(mean), jnp.zeros(shape)),
        jnp.asarray(y),
        jnp.asarray(sigma),
        5,
    )
    pp = special.expit(sigma * mean).ravel()
    bins = np.minimum((pp * 5).astype(int), 4)
    ref = sum(
        (bins == b).mean() * abs(yy[bins == b].mean() - pp[bins == b].mean())
        for b in range(5)
        if (bins == b).any()
    )
    np.testing.assert_allclose(plug["ece"], ref, rtol=1e-10)


def test_judge_differences_honest_and_overconfident():
    rng = np.random.default_rng(4)
    r0 = jnp.asarray(rng.normal(size=20_000))
    r1 = jnp.asarray(rng.normal(size=20_000))
    out = judge_differences(jax.random.key(5), r0, r1, (1.0, 0.5), 0.1, 1.0)
    assert set(out) == {1.0, 0.5}
    truth = np.asarray(r1 - r0)
    z1 = (np.asarray(out[1.0].mean) - truth) / np.sqrt(np.asarray(out[1.0].var))
    z5 = (np.asarray(out[0.5].mean) - truth) / np.sqrt(np.asarray(out[0.5].var))
    # Honest: z ~ N(0, 1) exactly (τ per response is known to the judge).
    assert stats.kstest(z1, "norm").pvalue > 0.01
    # Half-width intervals: errors twice the stated sd; same scores (paired).
    np.testing.assert_allclose(z5, 2 * z1, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out[1.0].mean, out[0.5].mean, rtol=1e-12, atol=1e-14)
    # Var of Δ = w²(τ0² + τ1²), τ in [0.1, 1].
    v = np.asarray(out[1.0].var)
    assert v.min() >= 2 * 0.1**2 - 1e-12 and v.max() <= 2.0 + 1e-12


def _numpy_loss(x, dphi, y, psi, psi0, d):
    theta, gamma = x[:d], x[d:]
    eta = (psi0 + psi @ gamma) * (dphi @ theta)
    return np.mean(np.logaddexp(0.0, eta) - y * eta)


def _fd_hessian(f, x, h=1e-4):
    p = x.size
    hess = np.zeros((p, p))
    for i in range(p):
        for j in range(p):
            ei, ej = np.eye(p)[i] * h, np.eye(p)[j] * h
            hess[i, j] = (
                f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)
            ) / (4 * h * h)
    return hess


@pytest.mark.slow  # ~15 s (compile)
def test_difference_sources_fisher_and_sandwich_against_scipy():
    design = hsim.get_design("default")
    train = hsim.simulate(jax.random.key(6), design, 600)
    test_dphi = jax.random.normal(jax.random.key(7), (9, 5))
    opts = ensemble.EnsembleOptions(num_heads=3, num_steps=20)
    src = _sources(jax.random.key(8), train, test_dphi, options=opts)
    dphi, y = np.asarray(train.dphi), np.asarray(train.y)
    psi, psi0 = np.asarray(train.psi), np.asarray(train.psi0)
    n, d = dphi.shape

    def f(x):
        return _numpy_loss(x, dphi, y, psi, psi0, d)

    x = optimize.minimize(f, np.zeros(d + psi.shape[1]), method="BFGS", tol=1e-12).x
    hess = _fd_hessian(f, x)
    cov = np.linalg.inv(hess) / n
    td = np.asarray(test_dphi)
    fisher = src.estimates["fisher"]
    np.testing.assert_allclose(fisher.mean, td @ x[:d], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        fisher.var, np.einsum("mi,ij,mj->m", td, cov[:d, :d], td), rtol=1e-3
    )
    # HC0 sandwich: per-row gradients (p − y)·[σΔφ; (θᵀΔφ)ψ].
    sigma = psi0 + psi @ x[d:]
    eta = sigma * (dphi @ x[:d])
    grad = (special.expit(eta) - y)[:, None] * np.hstack(
        [sigma[:, None] * dphi, (dphi @ x[:d])[:, None] * psi]
    )
    h_inv = np.linalg.inv(hess)
    sandwich = h_inv @ (grad.T @ grad / n) @ h_inv / n
    np.testing.assert_allclose(src.sandwich, sandwich, rtol=2e-3, atol=1e-8)
    np.testing.assert_allclose(
        src.estimates["sandwich"].var,
        np.einsum("mi,ij,mj->m", td, sandwich[:d, :d], td),
        rtol=2e-3,
    )
    assert bool(src.fit.converged)


@pytest.mark.slow  # ~25 s (two compiles)
def test_difference_sources_ensemble_is_the_library_ensemble_and_ignores_padding():
    """The ensemble source = train_ensemble (bootstrap) on the real rows read by
    ensemble_reward; zero-Δφ padding rows (pad_rows(weighted=False)) change nothing."""
    data = hsim.simulate(jax.random.key(0), hsim.get_design("default"), 60)
    test_dphi = jax.random.normal(jax.random.key(1), (7, 5))
    key = jax.random.key(2)
    opts = ensemble.EnsembleOptions(num_heads=4, num_steps=40, bootstrap=True)
    heads = np.asarray(ensemble.train_ensemble(key, data, opts).params)
    got = _sources(key, data, test_dphi, options=opts)
    rewards = heads @ np.asarray(test_dphi).T  # [K, m]
    ens = got.estimates["ensemble"]
    np.testing.assert_allclose(ens.mean, rewards.mean(0), rtol=1e-10)
    np.testing.assert_allclose(ens.var, rewards.var(0, ddof=1), rtol=1e-10)
    padded = _sources(
        key, pad_rows(data, 75, weighted=False), test_dphi, options=opts, num_real=60
    )
    for name in ("ensemble", "fisher", "sandwich"):
        a, b = got.estimates[name], padded.estimates[name]
        np.testing.assert_allclose(b.mean, a.mean, rtol=1e-7, err_msg=name)
        np.testing.assert_allclose(b.var, a.var, rtol=1e-6, err_msg=name)
