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
trace under ``jit``. ``coverage_summary`` and ``probability_summary`` collect them for
a batch of replicates [G, m] (what a calibration study reports per source), and
``difference_sources`` computes the three estimated sources of a reward difference
that such a study compares (Fisher, sandwich, a bootstrap ensemble).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
from jax.scipy.stats import norm

from hetrlhf.alignment import ensemble
from hetrlhf.btl.confidence import sandwich_covariance
from hetrlhf.btl.estimate import fit as fit_btl
from hetrlhf.btl.inference import reward_interval
from hetrlhf.types import Comparisons, FitResult, RewardEstimate
from hetrlhf.validation import check_estimate

__all__ = [
    "DifferenceSources",
    "Reliability",
    "coverage_summary",
    "difference_sources",
    "expected_calibration_error",
    "interval_coverage",
    "predictive_probability",
    "probability_summary",
    "reliability_curve",
    "sd_scale",
    "standardized_errors",
]

# An ensemble head counts as converged when its loss gradient norm is below this.
ENSEMBLE_TOL = 1e-3


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


def coverage_summary(
    est: RewardEstimate, truth: jax.Array, levels: jax.Array
) -> dict[str, jax.Array]:
    """Interval coverage of G groups (replicates, splits) of m estimates each.

    Args:
      est: ``RewardEstimate`` with mean and var of shape [G, m].
      truth: [G, m] true values.
      levels: [L] nominal levels ℓ in (0, 1).

    Raises:
      ValueError: ``est`` not [G, m] or ``truth`` of another shape.

    Returns:
      dict: "coverage" [L] over all G·m intervals, "coverage_se" [L] its Monte Carlo
      standard error sd_g(coverage_g)/√G (ddof 1: NaN for G = 1), "sd_scale" [] (of
      all G·m standardized errors), "mean_sd" [] the mean of sqrt(var).
    """
    check_estimate(est)
    if est.mean.ndim != 2 or est.var.shape != est.mean.shape:
        raise ValueError(
            f"est must hold [G, m] arrays (groups × estimates), got mean "
            f"{est.mean.shape} and var {est.var.shape}"
        )
    if truth.shape != est.mean.shape:
        raise ValueError(f"truth must have shape {est.mean.shape}, got {truth.shape}")
    flat = RewardEstimate(est.mean.ravel(), est.var.ravel())
    per_group = jax.vmap(interval_coverage, in_axes=(0, 0, None))(est, truth, levels)
    return {
        "coverage": interval_coverage(flat, truth.ravel(), levels),
        "coverage_se": jnp.std(per_group, axis=0, ddof=1)
        / math.sqrt(est.mean.shape[0]),
        "sd_scale": sd_scale(flat, truth.ravel()),
        "mean_sd": jnp.mean(jnp.sqrt(est.var)),
    }


def probability_summary(
    diff: RewardEstimate, y: jax.Array, sigma: jax.Array, num_bins: int = 10
) -> dict:
    """ECE and reliability curve of the predicted probabilities E[sigmoid(σ·Δ)].

    Args:
      diff: ``RewardEstimate`` of the reward differences, shape [...] (flattened).
      y: [...] labels in {0, 1}, same shape.
      sigma: [...] rationality of each comparison's annotator, same shape.
      num_bins: M equal-width bins (Python int; static under ``jit``).

    Returns:
      dict: "ece" [], "reliability" {"count", "mean_prob", "mean_label"} each [M].
    """
    flat = RewardEstimate(diff.mean.ravel(), diff.var.ravel())
    prob = predictive_probability(flat, sigma.ravel())
    yy = y.ravel()
    return {
        "ece": expected_calibration_error(prob, yy, num_bins),
        "reliability": reliability_curve(prob, yy, num_bins)._asdict(),
    }


class DifferenceSources(NamedTuple):
    """The estimated sources of held-out reward differences (``difference_sources``).

    Attributes:
      fit: ``FitResult`` of ``hr.fit`` on the training rows (heterogeneous model).
      estimates: {"fisher", "sandwich", "ensemble"} -> ``RewardEstimate`` [m].
      ensemble_converged: [] share of the ensemble heads whose gradient norm is below
        ``tol``.
      sandwich: [p, p] the sandwich covariance of (θ̂, γ̂).
    """

    fit: FitResult
    estimates: dict[str, RewardEstimate]
    ensemble_converged: jax.Array
    sandwich: jax.Array


def difference_sources(
    key: jax.Array,
    train: Comparisons,
    test_dphi: jax.Array,
    options: ensemble.EnsembleOptions,
    *,
    num_real=None,
    cluster=None,
    num_clusters: int | None = None,
    tol: float = ENSEMBLE_TOL,
) -> DifferenceSources:
    """Fisher, sandwich and ensemble estimates of the reward differences θᵀΔφ.

    * Fisher: ``hr.reward_interval`` of the ``hr.fit`` estimate (observed information).
    * Sandwich: the same mean with the (cluster-)robust covariance
      (``sandwich_covariance``; ``cluster`` None: HC0, every row its own cluster).
    * Ensemble: ``ensemble.train_ensemble`` (σ ≡ 1) on the first ``num_real`` rows,
      read by ``ensemble_reward`` (head mean, sample variance).

    Rows at index >= ``num_real`` are padding (Δφ = 0, ψ = 0, ψ0 = 1: they add a
    constant to the unweighted loss and nothing to its derivatives); the ensemble gives
    them weight 0 (with ``options.bootstrap`` each head resamples the real rows only),
    so data of several sizes padded to one size share one compiled program.
    Traceable (``options`` and ``num_clusters`` static under ``jit``).

    Args:
      key: PRNG key of the ensemble.
      train: ``Comparisons`` with n rows (unweighted).
      test_dphi: [m, d] held-out Δφ.
      options: ``ensemble.EnsembleOptions``.
      num_real: number of real (leading) rows; None: all n.
      cluster: [n] cluster ids of the rows for the sandwich (None: HC0).
      num_clusters: static number of clusters when ``cluster`` is given.
      tol: gradient-norm threshold of a converged head.

    Returns:
      ``DifferenceSources``.
    """
    n = train.y.shape[0]
    num_real = n if num_real is None else num_real
    fit = fit_btl(train)
    sandwich = sandwich_covariance(
        fit.params, train, cluster, num_clusters=num_clusters
    )
    real = (jnp.arange(n) < num_real).astype(train.y.dtype)
    heads = ensemble.train_ensemble(key, train._replace(weight=real), options)
    estimates = {
        "fisher": reward_interval(fit.params, train, test_dphi),
        "sandwich": reward_interval(fit.params, train, test_dphi, cov=sandwich),
        "ensemble": ensemble.ensemble_reward(heads.params, test_dphi),
    }
    converged = jnp.mean((heads.grad_norm < tol).astype(test_dphi.dtype))
    return DifferenceSources(fit, estimates, converged, sandwich)
