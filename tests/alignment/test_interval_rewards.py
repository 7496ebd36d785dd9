"""Tests of hetrlhf.alignment.interval_rewards against scipy.stats.uniform and Monte Carlo."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from hetrlhf.alignment import interval_rewards
from hetrlhf.types import RewardEstimate


def test_moments_match_scipy_uniform():
    rng = np.random.default_rng(1)
    lo = rng.normal(size=(4, 7))
    hi = lo + rng.exponential(2.0, size=(4, 7))
    est = interval_rewards.interval_rewards(lo, hi)
    assert isinstance(est, RewardEstimate)
    ref = scipy.stats.uniform(loc=lo, scale=hi - lo)
    np.testing.assert_allclose(est.mean, ref.mean(), rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(est.var, ref.var(), rtol=1e-12, atol=1e-14)
    assert est.mean.shape == est.var.shape == (4, 7)
    assert est.mean.dtype == jnp.float64


def test_moments_match_monte_carlo():
    key = jax.random.key(3)
    lo = jnp.array([-1.0, 0.0, 2.5, 0.3])
    hi = jnp.array([1.0, 0.1, 7.0, 0.3])
    n = 400_000
    u = jax.random.uniform(key, (n, lo.size))
    samples = lo + u * (hi - lo)
    est = interval_rewards.interval_rewards(lo, hi)
    # Standard errors of the sample mean and variance of a uniform: the variance of
    # the sample variance is (μ4 − σ⁴)/n with μ4 = (hi − lo)⁴/80.
    width = np.asarray(hi - lo)
    se_mean = np.sqrt(width**2 / 12 / n)
    se_var = np.sqrt((width**4 / 80 - (width**2 / 12) ** 2) / n)
    np.testing.assert_array_less(
        np.abs(samples.mean(0) - est.mean), 5 * se_mean + 1e-12
    )
    np.testing.assert_array_less(np.abs(samples.var(0) - est.var), 5 * se_var + 1e-12)
    assert float(est.var[3]) == 0.0  # a point interval has no uncertainty


def test_kernel_is_jittable_and_vmappable():
    lo = jnp.arange(6.0).reshape(3, 2)
    hi = lo + jnp.array([[1.0, 2.0]])
    est = jax.jit(jax.vmap(interval_rewards.interval_moments))(lo, hi)
    np.testing.assert_allclose(est.mean, lo + jnp.array([[0.5, 1.0]]))
    np.testing.assert_allclose(
        est.var, jnp.broadcast_to(jnp.array([1 / 12, 4 / 12]), (3, 2))
    )


def test_scalar_and_list_input():
    est = interval_rewards.interval_rewards(2, 5)
    assert est.mean.shape == ()
    assert float(est.mean) == 3.5 and float(est.var) == pytest.approx(0.75)
    est = interval_rewards.interval_rewards([0, 1], [1, 3])
    np.testing.assert_allclose(est.var, [1 / 12, 4 / 12])


@pytest.mark.parametrize(
    "lo, hi, match",
    [
        ([0.0, 2.0], [1.0, 1.0], r"lo must be <= hi.*index \(1,\)"),
        ([0.0, np.nan], [1.0, 1.0], "lo contains 1 NaN"),
        ([0.0, 1.0], [np.inf, 1.0], "hi contains 1 NaN or infinite"),
        ([0.0, 1.0], [1.0, 2.0, 3.0], "same shape"),
        (None, [1.0], "lo is required"),
    ],
)
def test_bad_input_raises_value_error(lo, hi, match):
    with pytest.raises(ValueError, match=match):
        interval_rewards.interval_rewards(lo, hi)


def test_non_numeric_raises_type_error():
    with pytest.raises(TypeError, match="lo must be a real numeric"):
        interval_rewards.interval_rewards(["a"], [1.0])
    with pytest.raises(TypeError, match="hi must be real"):
        interval_rewards.interval_rewards([0.0], [1.0 + 1j])


def test_kernel_rejects_shape_mismatch():
    with pytest.raises(ValueError, match="same shape"):
        interval_rewards.interval_moments(jnp.zeros(2), jnp.zeros(3))
