"""Tests of hetrlhf.alignment.ensemble against statsmodels, scipy and hand-computed values."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import statsmodels.api as sm
from scipy import optimize

import hetrlhf as hr
from hetrlhf.alignment import ensemble
from hetrlhf.types import RewardEstimate


def _data(seed=0, n=300, d=3, theta=(1.0, -0.7, 0.4)):
    rng = np.random.default_rng(seed)
    phi0 = rng.normal(size=(n, d))
    phi1 = rng.normal(size=(n, d))
    p = 1.0 / (1.0 + np.exp(-(phi1 - phi0) @ np.asarray(theta)))
    y = (rng.uniform(size=n) < p).astype(float)
    return phi0, phi1, y


def _comparisons(phi0, phi1, y, weight=None):
    return hr.comparisons(phi0, phi1, y, weight=weight)


@functools.partial(jax.jit, static_argnames=("steps",))
def _fit(params, data, weights, steps=3000, l2=0.0):
    return ensemble.fit_heads(
        params, data, weights, optimizer=optax.adam(0.05), num_steps=steps, l2=l2
    )


def test_single_head_matches_statsmodels_logit_without_intercept():
    phi0, phi1, y = _data()
    ref = sm.Logit(y, phi1 - phi0).fit(disp=0, tol=1e-12).params
    fit = _fit(jnp.zeros((1, 3)), _comparisons(phi0, phi1, y), jnp.ones((1, 300)))
    np.testing.assert_allclose(fit.params[0], ref, atol=1e-5)
    assert float(fit.grad_norm[0]) < 1e-6


def test_head_loss_is_the_weighted_bradley_terry_loss_plus_ridge():
    """head_loss = hetrlhf.btl.model.loss at γ = 0 + ridge, by hand in numpy."""
    phi0, phi1, y = _data(seed=6, n=40)
    w = np.random.default_rng(1).integers(0, 4, 40).astype(float)
    data = _comparisons(phi0, phi1, y, weight=w)
    theta = np.array([0.3, -1.2, 0.8])
    eta = (phi1 - phi0) @ theta
    hand = np.sum(w * (np.logaddexp(0.0, eta) - y * eta)) / w.sum() + 0.5 * 0.2 * (
        theta @ theta
    )
    got = ensemble.head_loss(jnp.asarray(theta), data, 0.2)
    np.testing.assert_allclose(got, hand, rtol=1e-12)
    core = hr.model.loss(hr.Params(jnp.asarray(theta), jnp.zeros(0)), data)
    np.testing.assert_allclose(ensemble.head_loss(jnp.asarray(theta), data), core)


def test_train_ensemble_heads_converge_to_mle_from_independent_inits():
    phi0, phi1, y = _data(seed=1)
    ref = sm.Logit(y, phi1 - phi0).fit(disp=0, tol=1e-12).params
    options = ensemble.EnsembleOptions(num_heads=4, num_steps=3000)
    fit = ensemble.train_ensemble(
        jax.random.key(0), _comparisons(phi0, phi1, y), options
    )
    # Independent initialisations: the heads start apart ...
    init = ensemble.init_ensemble(jax.random.split(jax.random.key(0))[0], 4, 3)
    assert np.min(np.ptp(np.asarray(init), axis=0)) > 0.1
    # ... and the convex loss brings every head to the same MLE.
    np.testing.assert_allclose(fit.params, np.tile(ref, (4, 1)), atol=1e-5)
    assert fit.losses.shape == (3000, 4)
    np.testing.assert_array_equal(fit.weights, 1.0)


def test_train_ensemble_ignores_rationality_covariates():
    """The ensemble's model has σ ≡ 1: ψ and ψ0 of the data play no part."""
    phi0, phi1, y = _data(seed=7, n=120)
    psi = np.random.default_rng(2).uniform(-1, 1, (120, 2))
    options = ensemble.EnsembleOptions(num_heads=2, num_steps=30)
    key = jax.random.key(1)
    plain = ensemble.train_ensemble(key, _comparisons(phi0, phi1, y), options)
    with_psi = ensemble.train_ensemble(
        key, hr.comparisons(phi0, phi1, y, psi, psi0=np.full(120, 2.0)), options
    )
    np.testing.assert_array_equal(plain.params, with_psi.params)


@pytest.mark.slow  # ~4 s on the 2-core CI machine
def test_bootstrap_heads_equal_fitting_on_the_resample():
    phi0, phi1, y = _data(seed=2, n=200)
    dphi = phi1 - phi0
    options = ensemble.EnsembleOptions(num_heads=2, num_steps=3000, bootstrap=True)
    fit = ensemble.train_ensemble(
        jax.random.key(3), _comparisons(phi0, phi1, y), options
    )
    counts = np.asarray(fit.weights)
    np.testing.assert_array_equal(counts.sum(axis=1), 200)
    for k in range(2):
        rows = np.repeat(np.arange(200), counts[k].astype(int))
        ref = sm.Logit(y[rows], dphi[rows]).fit(disp=0, tol=1e-12).params
        np.testing.assert_allclose(fit.params[k], ref, atol=1e-5)


@pytest.mark.slow  # ~4 s on the 2-core CI machine
def test_bootstrap_counts_are_multinomial_over_the_rows_of_positive_weight():
    """Padding rows (weight 0) are never drawn and a resample has the size of the
    real data, not of the padding: Multinomial(n_real, 1/n_real) per head."""
    phi0, phi1, y = _data(seed=3, n=50)
    padded = hr.estimate.pad_rows(_comparisons(phi0, phi1, y), 64)
    options = ensemble.EnsembleOptions(num_heads=400, num_steps=1, bootstrap=True)
    counts = np.asarray(
        ensemble.train_ensemble(jax.random.key(0), padded, options).weights
    )
    assert counts.shape == (400, 64)
    np.testing.assert_array_equal(counts[:, 50:], 0.0)
    np.testing.assert_array_equal(counts.sum(axis=1), 50)
    assert np.all(counts == np.round(counts)) and counts.min() >= 0
    # Multinomial(n, 1/n): mean 1, variance 1 − 1/n per cell (400 × 50 cells).
    real = counts[:, :50]
    assert abs(real.mean() - 1.0) < 1e-12
    assert abs(real.var() - (1 - 1 / 50)) < 0.05


def test_padding_rows_of_weight_zero_leave_the_heads_unchanged():
    phi0, phi1, y = _data(seed=8, n=90)
    data = _comparisons(phi0, phi1, y)
    options = ensemble.EnsembleOptions(num_heads=3, num_steps=200)
    key = jax.random.key(4)
    plain = ensemble.train_ensemble(key, data, options)
    padded = ensemble.train_ensemble(key, hr.estimate.pad_rows(data, 128), options)
    np.testing.assert_allclose(padded.params, plain.params, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(padded.losses, plain.losses, rtol=1e-10)


def test_train_ensemble_traces_under_jit_and_vmap():
    phi0, phi1, y = _data(seed=9, n=20)
    data = _comparisons(phi0, phi1, y)
    # (with the bootstrap too, in the calibration study's smoke test: its compile
    # under vmap takes seconds)
    options = ensemble.EnsembleOptions(num_heads=2, num_steps=5)
    keys = jax.random.split(jax.random.key(5), 3)
    batched = jax.jit(
        jax.vmap(lambda k, d: ensemble.train_ensemble(k, d, options).params, (0, None))
    )(keys, data)
    for i in range(3):
        alone = ensemble.train_ensemble(keys[i], data, options).params
        np.testing.assert_allclose(batched[i], alone, rtol=1e-10, atol=1e-12)


def test_ridge_head_matches_scipy_minimiser():
    phi0, phi1, y = _data(seed=4, n=150)
    dphi = phi1 - phi0
    l2 = 0.3

    def loss(t):
        eta = dphi @ t
        return np.mean(np.logaddexp(0.0, eta) - y * eta) + 0.5 * l2 * t @ t

    ref = optimize.minimize(loss, np.zeros(3), method="BFGS", options={"gtol": 1e-10}).x
    fit = _fit(jnp.ones((1, 3)), _comparisons(phi0, phi1, y), jnp.ones((1, 150)), l2=l2)
    np.testing.assert_allclose(fit.params[0], ref, atol=1e-5)


def test_heads_do_not_interact():
    """Training K heads jointly equals training each alone (summed loss, adam)."""
    phi0, phi1, y = _data(seed=5, n=100)
    data = _comparisons(phi0, phi1, y)
    params = jax.random.normal(jax.random.key(1), (3, 3))
    weights = jax.random.randint(jax.random.key(2), (3, 100), 0, 3).astype(float)
    joint = _fit(params, data, weights, steps=50)
    for k in range(3):
        alone = _fit(params[k : k + 1], data, weights[k : k + 1], steps=50)
        np.testing.assert_allclose(joint.params[k], alone.params[0], rtol=1e-10)


def test_head_loss_is_stable_softplus():
    data = hr.Comparisons(
        jnp.zeros((2, 1)),
        jnp.array([[800.0], [-800.0]]),
        jnp.array([0.0, 1.0]),
        jnp.zeros((2, 0)),
        jnp.ones(2),
        jnp.ones(2),
    )
    val = ensemble.head_loss(jnp.array([1.0]), data)
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
    "change, err, match",
    [
        ({"num_heads": 0}, ValueError, "num_heads"),
        ({"num_steps": 2.5}, TypeError, "num_steps"),
        ({"num_steps": True}, TypeError, "num_steps"),
        ({"learning_rate": -1.0}, ValueError, "learning_rate"),
        ({"learning_rate": "fast"}, TypeError, "learning_rate"),
        ({"l2": float("nan")}, ValueError, "l2"),
        ({"init_scale": -1.0}, ValueError, "init_scale"),
        ({"optimizer": "lbfgs"}, ValueError, "optimizer"),
    ],
)
def test_train_ensemble_rejects_bad_options(change, err, match):
    data = _comparisons(*_data(n=20))
    options = ensemble.EnsembleOptions(num_steps=2)._replace(**change)
    with pytest.raises(err, match=match):
        ensemble.train_ensemble(jax.random.key(0), data, options)


def test_train_ensemble_rejects_bad_data():
    phi0, phi1, y = _data(n=20)
    with pytest.raises(TypeError, match="Comparisons"):
        ensemble.train_ensemble(jax.random.key(0), (phi0, phi1, y))
    with pytest.raises(TypeError, match="EnsembleOptions"):
        ensemble.train_ensemble(
            jax.random.key(0), _comparisons(phi0, phi1, y), {"num_heads": 2}
        )
    weighted = _comparisons(phi0, phi1, y, weight=np.full(20, 0.5))
    with pytest.raises(ValueError, match="integer counts"):
        ensemble.train_ensemble(
            jax.random.key(0), weighted, ensemble.EnsembleOptions(bootstrap=True)
        )


def test_ensemble_reward_rejects_bad_input():
    with pytest.raises(ValueError, match="K >= 2"):
        ensemble.ensemble_reward(jnp.ones((1, 3)), jnp.ones(3))
    with pytest.raises(ValueError, match="features"):
        ensemble.ensemble_reward(jnp.ones((4, 3)), jnp.ones((2, 5)))
