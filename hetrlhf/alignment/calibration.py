"""Calibration metrics for any reward-uncertainty source (a ``RewardEstimate``).

Two questions, whatever produced the ``RewardEstimate`` (Fisher intervals, an
ensemble, interval rewards):

* Are its intervals honest? ``interval_coverage``: the share of true values inside
  mean ± z_{(1+ℓ)/2}·sqrt(var) for nominal levels ℓ, and ``sd_scale``: the factor by
  which the standard deviations would have to be multiplied for the central 50%
  interval to be exact (> 1: over-confident, intervals too narrow; < 1:
  under-confident).
* Are its preference probabilities honest? ``predictive_probability`` turns a
  reward-difference estimate into P(y = 1), ``expected_calibration_error`` and
  ``reliability_curve`` compare those probabilities with observed labels.

All functions are pure jnp over a flat batch [n] (flatten replicate axes first) and
trace under ``jit``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
from jax.scipy.stats import norm

from hetrlhf.types import RewardEstimate
from hetrlhf.validation import check_estimate

__all__ = [
    "Reliability",
    "expected_calibration_error",
    "interval_coverage",
    "predictive_probability",
    "reliability_curve",
    "sd_scale",
    "standardized_errors",
]


def standardized_errors(est: RewardEstimate, truth: jax.Array) -> jax.Array:
    """(truth − mean)/sqrt(var), elementwise: N(0, 1) for a calibrated Gaussian source.

    Args:
      est: ``RewardEstimate`` with mean and var of shape [...].
      truth: [...] the true values (e.g. true reward differences).

    Returns:
      [...] standardized errors.
    """
    check_estimate(est)
    return (truth - est.mean) / jnp.sqrt(est.var)


def interval_coverage(
    est: RewardEstimate, truth: jax.Array, levels: jax.Array
) -> jax.Array:
    """Empirical coverage of the central intervals mean ± z_{(1+ℓ)/2}·sqrt(var).

    Args:
      est: ``RewardEstimate`` with mean and var of shape [n].
      truth: [n] true values.
      levels: [L] nominal levels ℓ in (0, 1), e.g. (0.5, 0.8, 0.9, 0.95).

    Returns:
      [L] share of the n intervals that contain the truth, at each level.
    """
    check_estimate(est)
    chex.assert_rank([est.mean, est.var, truth], 1)
    chex.assert_equal_shape([est.mean, est.var, truth])
    z = norm.ppf(0.5 + 0.5 * jnp.asarray(levels))
    inside = jnp.abs(truth - est.mean)[None, :] <= z[:, None] * jnp.sqrt(est.var)
    return jnp.mean(inside, axis=-1)


def sd_scale(est: RewardEstimate, truth: jax.Array) -> jax.Array:
    """Robust miscalibration factor s = median|(truth − mean)/sd| / Φ⁻¹(0.75).

    s = 1 for a calibrated Gaussian source; s = 2 means the errors are twice as
    large as the source says (its intervals must be widened 2× to be honest).

    Args:
      est: ``RewardEstimate`` of shape [n].
      truth: [n] true values.

    Returns:
      [] the factor s.
    """
    chex.assert_rank([est.mean, truth], 1)
    return jnp.median(jnp.abs(standardized_errors(est, truth))) / norm.ppf(0.75)


def predictive_probability(diff: RewardEstimate, sigma: jax.Array) -> jax.Array:
    """P(y = 1) = E[sigmoid(σ·Δ)], Δ ~ N(mean, var), by the probit approximation.

    sigmoid(σ·μ / sqrt(1 + π σ² v / 8)) (MacKay 1992): the reward uncertainty v
    pulls the probability towards 1/2; v = 0 gives the plug-in sigmoid(σ·μ).
    Heterogeneous Bradley–Terry: Δ = r(a¹) − r(a⁰), σ = σ_γ(x) the annotator's
    rationality (DESIGN.md §A1).

    Args:
      diff: ``RewardEstimate`` of the reward differences, shape [...].
      sigma: [...] rationality of the annotator of each comparison (broadcastable).

    Returns:
      [...] probabilities.
    """
    check_estimate(diff)
    kappa = jax.lax.rsqrt(1.0 + (math.pi / 8.0) * sigma**2 * diff.var)
    return jax.nn.sigmoid(sigma * diff.mean * kappa)


class Reliability(NamedTuple):
    """Equal-width reliability bins over [0, 1].

    Attributes:
      count: [M] number of predictions in each bin.
      mean_prob: [M] mean predicted probability in each bin (0 where empty).
      mean_label: [M] observed frequency of y = 1 in each bin (0 where empty).
    """

    count: jax.Array
    mean_prob: jax.Array
    mean_label: jax.Array


def reliability_curve(prob: jax.Array, y: jax.Array, num_bins: int) -> Reliability:
    """Bins predictions into M equal-width bins [b/M, (b+1)/M) (the last one closed).

    Args:
      prob: [n] predicted P(y = 1).
      y: [n] labels in {0, 1}.
      num_bins: M (Python int).

    Returns:
      ``Reliability(count, mean_prob, mean_label)``, each [M].
    """
    chex.assert_rank([prob, y], 1)
    chex.assert_equal_shape([prob, y])
    b = jnp.clip(jnp.floor(prob * num_bins).astype(jnp.int32), 0, num_bins - 1)
    count = jax.ops.segment_sum(jnp.ones_like(prob), b, num_bins)
    sum_p = jax.ops.segment_sum(prob, b, num_bins)
    sum_y = jax.ops.segment_sum(y.astype(prob.dtype), b, num_bins)
    safe = jnp.maximum(count, 1.0)
    return Reliability(count, sum_p / safe, sum_y / safe)


def expected_calibration_error(prob: jax.Array, y: jax.Array, num_bins: int = 10):
    """ECE = Σ_b (n_b/n)·|ȳ_b − p̄_b| over M equal-width bins (Naeini et al. 2015).

    Args:
      prob: [n] predicted P(y = 1).
      y: [n] labels in {0, 1}.
      num_bins: M (Python int).

    Returns:
      [] the expected calibration error, in [0, 1].
    """
    rel = reliability_curve(prob, y, num_bins)
    return jnp.sum(rel.count * jnp.abs(rel.mean_label - rel.mean_prob)) / prob.shape[0]
