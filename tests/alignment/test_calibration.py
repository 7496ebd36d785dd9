"""Calibration metrics against hand computations."""

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special, stats

import hetrlhf as hr
from hetrlhf.alignment import calibration


def test_ece_and_reliability_by_hand():
    prob = jnp.array([0.05, 0.15, 0.12, 0.55, 0.58, 0.95, 1.0, 0.5])
    y = jnp.array([0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    # 10 bins: [0, .1): {.05}; [.1, .2): {.15, .12}; [.5, .6): {.55, .58, .5};
    # [.9, 1.0]: {.95, 1.0} (1.0 falls in the last, closed bin).
    gaps = [
        (1, abs(0.0 - 0.05)),
        (2, abs(0.5 - 0.135)),
        (3, abs(2 / 3 - (0.55 + 0.58 + 0.5) / 3)),
        (2, abs(1.0 - 0.975)),
    ]
    hand = sum(c * g for c, g in gaps) / 8
    np.testing.assert_allclose(
        calibration.expected_calibration_error(prob, y, 10), hand, rtol=1e-12
    )
    rel = calibration.reliability_curve(prob, y, 10)
    np.testing.assert_array_equal(rel.count, [1, 2, 0, 0, 0, 3, 0, 0, 0, 2])
    np.testing.assert_allclose(rel.mean_label[5], 2 / 3)
    # A perfectly calibrated toy case: in every bin the frequency equals the prob.
    p2 = jnp.array([0.25] * 4 + [0.75] * 4)
    y2 = jnp.array([1, 0, 0, 0, 1, 1, 1, 0], float)
    assert float(calibration.expected_calibration_error(p2, y2, 10)) == 0.0


def test_coverage_and_scale_by_hand():
    est = hr.RewardEstimate(jnp.zeros(4), jnp.array([1.0, 1.0, 4.0, 0.25]))
    truth = jnp.array([0.5, 1.5, 2.5, 0.4])  # |z| = 0.5, 1.5, 1.25, 0.8
    cov = calibration.interval_coverage(est, truth, jnp.array([0.5, 0.8, 0.9, 0.95]))
    # z thresholds 0.674, 1.2816, 1.645, 1.96
    np.testing.assert_allclose(cov, [0.25, 0.75, 1.0, 1.0])
    s = calibration.sd_scale(est, truth)
    np.testing.assert_allclose(
        s, np.median([0.5, 1.5, 1.25, 0.8]) / stats.norm.ppf(0.75)
    )
    # Monte Carlo: a calibrated Gaussian source covers at the nominal level.
    rng = np.random.default_rng(0)
    sd = rng.uniform(0.1, 3.0, 20000)
    mean = rng.normal(size=20000)
    truth = mean + sd * rng.normal(size=20000)
    est = hr.RewardEstimate(jnp.asarray(mean), jnp.asarray(sd**2))
    cov = calibration.interval_coverage(est, jnp.asarray(truth), jnp.array([0.5, 0.9]))
    np.testing.assert_allclose(cov, [0.5, 0.9], atol=0.012)
    np.testing.assert_allclose(
        calibration.sd_scale(est, jnp.asarray(truth)), 1.0, atol=0.03
    )
    with pytest.raises(TypeError, match="RewardEstimate"):
        calibration.interval_coverage((mean, sd), truth, jnp.array([0.5]))


def test_predictive_probability_vs_quadrature():
    for mu, v, sigma in [
        (0.7, 0.0, 1.3),
        (0.7, 0.5, 1.3),
        (-1.2, 2.0, 0.8),
        (2.0, 4.0, -0.5),
    ]:
        got = float(
            calibration.predictive_probability(
                hr.RewardEstimate(jnp.array(mu), jnp.array(v)), jnp.array(sigma)
            )
        )
        if v == 0:
            np.testing.assert_allclose(got, special.expit(sigma * mu), rtol=1e-12)
            continue
        exact = integrate.quad(
            lambda t, m=mu, w=v, s=sigma: (
                special.expit(s * t) * stats.norm.pdf(t, m, np.sqrt(w))
            ),
            -np.inf,
            np.inf,
        )[0]
        assert abs(got - exact) < 0.01, (mu, v, sigma, got, exact)
