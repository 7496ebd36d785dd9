"""Tests of hetrlhf.alignment.ensemble against statsmodels, scipy and hand-computed values."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import statsmodels.api as sm
from scipy import optimize

from hetrlhf.alignment import ensemble
from hetrlhf.types import RewardEstimate


def _data(seed=0, n=300, d=3, theta=(1.0, -0.7, 0.4)):
    rng = np.random.default_rng(seed)
    phi0 = rng.normal(size=(n, d))
    phi1 = rng.normal(size=(n, d))
    p = 1.0 / (1.0 + np.exp(-(phi1 - phi0) @ np.asarray(theta)))
    y = (rng.uniform(size=n) < p).astype(float)
    return phi0, phi1, y


@functools.partial(jax.jit, static_argnames=("steps",))
def _fit(params, dphi, y, weights, steps=3000, l2=0.0):
    return ensemble.fit_heads(
        params, dphi, y, weights, optimizer=optax.adam(0.05), num_steps=steps, l2=l2
    )


def test_single_head_matches_statsmodels_logit_without_intercept():
    phi0, phi1, y = _data()
    dphi = phi1 - phi0
    ref = sm.Logit(y, dphi).fit(disp=0, tol=1e-12).params
    fit = _fit(jnp.zeros((1, 3)), jnp.asarray(dphi), jnp.asarray(y), jnp.ones((1, 300)))
    np.testing.assert_allclose(fit.params[0], ref, atol=1e-5)
    assert float(fit.grad_norm[0]) < 1e-6


def test_train_ensemble_heads_converge_to_mle_from_independent_inits():
    phi0, phi1, y = _data(seed=1)
    ref = sm.Logit(y, phi1 - phi0).fit(disp=0, tol=1e-12).params
    fit = ensemble.train_ensemble(
        jax.random.key(0), phi0, phi1, y, num_heads=4, num_steps=3000, return_fit=True
    )
    # Independent initialisations: the heads start apart ...
    init = ensemble.init_ensemble(jax.random.split(jax.random.key(0))[0], 4, 3)
    assert np.min(np.ptp(np.asarray(init), axis=0)) > 0.1
    # ... and the convex loss brings every head to the same MLE.
    np.testing.assert_allclose(fit.params, np.tile(ref, (4, 1)), atol=1e-5)
    assert fit.losses.shape == (3000, 4)


def test_bootstrap_weights_equal_fitting_on_the_resample():
    phi0, phi1, y = _data(seed=2, n=200)
    dphi = phi1 - phi0
    counts = np.asarray(ensemble.bootstrap_weights(jax.random.key(3), 2, 200))
    fit = _fit(
        jnp.zeros((2, 3)), jnp.asarray(dphi), jnp.asarray(y), jnp.asarray(counts)
    )
    for k in range(2):
        rows = np.repeat(np.arange(200), counts[k].astype(int))
        ref = sm.Logit(y[rows], dphi[rows]).fit(disp=0, tol=1e-12).params
        np.testing.assert_allclose(fit.params[k], ref, atol=1e-5)


def test_bootstrap_weights_are_multinomial_counts():
    counts = np.asarray(ensemble.bootstrap_weights(jax.random.key(0), 400, 50))
    assert counts.shape == (400, 50)
    np.testing.assert_array_equal(counts.sum(axis=1), 50)
    assert np.all(counts == np.round(counts)) and counts.min() >= 0
    # Multinomial(n, 1/n): mean 1, variance 1 − 1/n per cell.
    assert abs(counts.mean() - 1.0) < 1e-12
    assert abs(counts.var() - (1 - 1 / 50)) < 0.05


def test_ridge_head_matches_scipy_minimiser():
    phi0, phi1, y = _data(seed=4, n=150)
    dphi = phi1 - phi0
    l2 = 0.3

    def loss(t):
        eta = dphi @ t
        return np.mean(np.logaddexp(0.0, eta) - y * eta) + 0.5 * l2 * t @ t

    ref = optimize.minimize(loss, np.zeros(3), method="BFGS", options={"gtol": 1e-10}).x
    fit = _fit(
        jnp.ones((1, 3)), jnp.asarray(dphi), jnp.asarray(y), jnp.ones((1, 150)), l2=l2
    )
    np.testing.assert_allclose(fit.params[0], ref, atol=1e-5)


def test_heads_do_not_interact():
    """Training K heads jointly equals training each alone (summed loss, adam)."""
    phi0, phi1, y = _data(seed=5, n=100)
    dphi, yj = jnp.asarray(phi1 - phi0), jnp.asarray(y)
    params = jax.random.normal(jax.random.key(1), (3, 3))
    weights = ensemble.bootstrap_weights(jax.random.key(2), 3, 100)
    joint = _fit(params, dphi, yj, weights, steps=50)
    for k in range(3):
        alone = _fit(params[k : k + 1], dphi, yj, weights[k : k + 1], steps=50)
        np.testing.assert_allclose(joint.params[k], alone.params[0], rtol=1e-10)


def test_head_loss_is_stable_softplus():
    theta = jnp.array([1.0])
    dphi = jnp.array([[800.0], [-800.0]])
    y = jnp.array([0.0, 1.0])
    val = ensemble.head_loss(theta, dphi, y, jnp.ones(2))
    np.testing.assert_allclose(val, 800.0)  # both terms are ≈ |η| = 800


def test_ensemble_reward_mean_and_sample_variance():
    heads = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, -1.0]])
    phi = np.array([[[1.0, 2.0]], [[0.5, -1.0]]])  # [2, 1, 2]
    est = ensemble.ensemble_reward(jnp.asarray(heads), jnp.asarray(phi))
    assert isinstance(est, RewardEstimate)
    # Rewards per head at φ = (1, 2): 1, 2, 0 -> mean 1, var 1; at (0.5, −1): .5, −1, 2.
    np.testing.assert_allclose(est.mean, [[1.0], [0.5]])
    np.testing.assert_allclose(est.var, [[1.0], [2.25]])


def test_difference_variance_includes_covariance():
    heads = jax.random.normal(jax.random.key(0), (10, 4))
    a, b = jax.random.normal(jax.random.key(1), (2, 4))
    ra, rb = heads @ a, heads @ b
    expected = np.var(np.asarray(ra - rb), ddof=1)
    np.testing.assert_allclose(
        ensemble.ensemble_reward(heads, a - b).var, expected, rtol=1e-10
    )


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        ({"phi0": np.full((5, 2), np.nan)}, ValueError, "phi0 contains"),
        ({"y": np.array([0, 1, 2, 0, 1])}, ValueError, "labels 0 and 1"),
        ({"phi1": np.zeros((5, 3))}, ValueError, "same shape"),
        ({"y": np.zeros(4)}, ValueError, "y must have shape"),
        ({"num_heads": 0}, ValueError, "num_heads"),
        ({"num_steps": 2.5}, TypeError, "num_steps"),
        ({"learning_rate": -1.0}, ValueError, "learning_rate"),
        ({"phi0": np.array([["a", "b"]] * 5)}, TypeError, "phi0"),
        ({"optimizer": "adam"}, TypeError, "optimizer"),
    ],
)
def test_train_ensemble_rejects_bad_input(kwargs, err, match):
    args = {
        "phi0": np.zeros((5, 2)),
        "phi1": np.ones((5, 2)),
        "y": np.array([0, 1, 1, 0, 1]),
    }
    args.update(kwargs)
    key = jax.random.key(0)
    with pytest.raises(err, match=match):
        ensemble.train_ensemble(
            key,
            args.pop("phi0"),
            args.pop("phi1"),
            args.pop("y"),
            num_steps=args.pop("num_steps", 2),
            **args,
        )


def test_ensemble_reward_rejects_bad_input():
    with pytest.raises(ValueError, match="K >= 2"):
        ensemble.ensemble_reward(jnp.ones((1, 3)), jnp.ones(3))
    with pytest.raises(ValueError, match="features"):
        ensemble.ensemble_reward(jnp.ones((4, 3)), jnp.ones((2, 5)))
