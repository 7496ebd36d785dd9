"""Monte Carlo summaries shared by the studies: rates, bands, means, z-scores.

A study runs R independent replicates and reports how often an interval covered or a
test rejected, means with their Monte Carlo error, and whether z-scores look N(0, 1).
These summaries live here once, on host numpy arrays (the replicates' outputs after
``jax.device_get``), with scipy as the reference distribution functions:

* ``proportion`` — a rate K/R and its MC standard error sqrt(p̂(1 − p̂)/R);
* ``mean_se`` — a mean and its MC standard error sd/√R;
* ``estimator_summary`` — bias, empirical sd and mean standard error of estimates;
* ``ks_normal``, ``normality`` — z-scores against N(0, 1) (Liu, Lu & Sun's Theorem 2);
* ``binomial_band`` (exact), ``normal_half_width`` (±z·sqrt(p(1 − p)/R)) — where a
  Monte Carlo rate of true value p falls; ``rate_check`` compares an observed rate
  with its nominal value (band and ``scipy.stats.binomtest``);
* ``geometric_mean``, ``log_linear_rate`` — error curves that fall geometrically
  (the contraction factor of an iteration, e.g. Algorithm 1's Theorem 1).

Axis 0 is the replicate axis throughout. The module depends on numpy and scipy only,
so every layer of the package may use it.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

__all__ = [
    "binomial_band",
    "estimator_summary",
    "geometric_mean",
    "ks_normal",
    "log_linear_rate",
    "mean_se",
    "normal_half_width",
    "normality",
    "proportion",
    "rate_check",
]


def _check_trials(trials) -> int:
    if (
        isinstance(trials, bool)
        or not isinstance(trials, (int, np.integer))
        or trials < 1
    ):
        raise ValueError(f"trials must be an int >= 1, got {trials!r}")
    return int(trials)


def _check_rate(rate) -> float:
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must lie in [0, 1], got {rate}")
    return rate


def proportion(hits) -> tuple[np.ndarray, np.ndarray]:
    """The rate of ``hits`` over replicates and its Monte Carlo standard error.

    Args:
      hits: [R, ...] booleans (interval covered, test rejected) of R replicates.

    Returns:
      (p̂ [...], sqrt(p̂(1 − p̂)/R) [...]); NaN where R = 0.
    """
    hits = np.asarray(hits, bool)
    if hits.ndim == 0:
        raise ValueError(f"hits must have a replicate axis, got shape {hits.shape}")
    num = hits.shape[0]
    if num == 0:
        nan = np.full(hits.shape[1:], np.nan)
        return nan, nan.copy()
    rate = hits.mean(0)
    return rate, np.sqrt(rate * (1 - rate) / num)


def mean_se(x, dtype=None) -> tuple[np.ndarray, np.ndarray]:
    """The mean over replicates and its Monte Carlo standard error sd/√R (ddof = 1).

    Args:
      x: [R, ...] values of R replicates.
      dtype: dtype to compute in (default: x's own; e.g. float64 for float32 values
        such as ``jnp.mean`` of booleans, which is float32 even under x64).

    Returns:
      (mean [...], se [...]); se is NaN when R < 2.
    """
    x = np.asarray(x) if dtype is None else np.asarray(x, dtype)
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"x must have a non-empty replicate axis, got shape {x.shape}")
    num = x.shape[0]
    se = x.std(0, ddof=1) / np.sqrt(num) if num > 1 else np.full(x.shape[1:], np.nan)
    return x.mean(0), se


def estimator_summary(estimate, se, truth) -> dict:
    """Bias, empirical sd and mean standard error of an estimator over replicates.

    Args:
      estimate: [R, p] estimates of R replicates.
      se: [R, p] their standard errors.
      truth: [p] the true values.

    Returns:
      {"bias": mean(τ̂ − τ*), "empirical_sd": sd(τ̂) (ddof = 1), "mean_se": mean(se)},
      each [p]; NaN where there are too few replicates (none; one for the sd).
    """
    estimate, se = np.asarray(estimate, float), np.asarray(se, float)
    truth = np.asarray(truth, float)
    if estimate.ndim != 2 or se.shape != estimate.shape:
        raise ValueError(
            f"estimate and se must share a shape [R, p], got {estimate.shape} and "
            f"{se.shape}"
        )
    nan = np.full(truth.shape, np.nan)
    num = estimate.shape[0]
    return {
        "bias": (estimate - truth).mean(0) if num else nan,
        "empirical_sd": estimate.std(0, ddof=1) if num > 1 else nan,
        "mean_se": se.mean(0) if num else nan,
    }


def ks_normal(z) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Kolmogorov–Smirnov test of each column of z-scores against N(0, 1) (Theorem 2).

    Non-finite entries (a failed fit's NaN) are dropped column by column; the test is
    ``scipy.stats.kstest(column, "norm")`` (exact p-values for up to 10 000 values).

    Args:
      z: [R, p] z-scores (τ̂_j − τ*_j)/se_j of R replicates.

    Returns:
      (statistic [p], p_value [p], count [p]); NaN where a column has no finite value.
    """
    z = np.asarray(z, float)
    if z.ndim != 2:
        raise ValueError(f"z must have shape [R, p], got {z.shape}")
    stat = np.full(z.shape[1], np.nan)
    pval = np.full(z.shape[1], np.nan)
    count = np.isfinite(z).sum(0)
    for j in range(z.shape[1]):
        col = z[np.isfinite(z[:, j]), j]
        if col.size:
            res = stats.kstest(col, "norm")
            stat[j], pval[j] = res.statistic, res.pvalue
    return stat, pval, count


def normality(z) -> dict:
    """z-scores against N(0, 1), per coordinate: KS test, mean and sd.

    Args:
      z: [R, p] z-scores (τ̂ − τ*)/se of R replicates (finite).

    Returns:
      {"ks_stat", "ks_p", "num_z", "z_mean", "z_sd" (ddof = 1)}, each [p]; NaN mean
      without replicates, NaN sd with fewer than two.
    """
    z = np.asarray(z, float)
    stat, pval, count = ks_normal(z)
    nan = np.full(z.shape[1], np.nan)
    return {
        "ks_stat": stat,
        "ks_p": pval,
        "num_z": count,
        "z_mean": z.mean(0) if len(z) else nan,
        "z_sd": z.std(0, ddof=1) if len(z) > 1 else nan,
    }


def binomial_band(rate: float, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Central acceptance band of a Monte Carlo rate (size, coverage) at ``trials``.

    The observed rate K/trials with K ~ Binomial(trials, rate) falls in [lo, hi] with
    probability >= ``level`` (exact quantiles of ``scipy.stats.binom``, each tail at
    most (1 − level)/2).

    Returns:
      (lo, hi) as rates.
    """
    _check_rate(rate)
    trials = _check_trials(trials)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    lo, hi = stats.binom.interval(level, trials, rate)
    return float(lo) / trials, float(hi) / trials


def normal_half_width(rate: float, trials: int, z: float = 1.96) -> float:
    """Half-width z·sqrt(p(1 − p)/R) of the normal-approximation band of a rate.

    The band rate ± this value holds a Monte Carlo rate of true value ``rate`` from
    ``trials`` replicates with probability ≈ 95% at z = 1.96 (``binomial_band`` is the
    exact one).
    """
    _check_rate(rate)
    trials = _check_trials(trials)
    return z * math.sqrt(rate * (1 - rate) / trials)


def rate_check(hits, target: float, level: float = 0.95) -> dict:
    """An observed Monte Carlo rate against its nominal value ``target``.

    Args:
      hits: [R] booleans (R >= 1), e.g. rejections of a test of size ``target``.
      target: the nominal rate (α for a size, 1 − α for a coverage).
      level: level of the acceptance band.

    Returns:
      {"rate": K/R, "mc_se": sqrt(target(1 − target)/R) (the MC error under the
      nominal rate), "band": exact ``binomial_band`` [lo, hi], "inside_band",
      "binom_p": two-sided ``scipy.stats.binomtest`` p-value of H0: rate = target}.
    """
    hits = np.asarray(hits, bool)
    if hits.ndim != 1:
        raise ValueError(f"hits must have shape [R], got {hits.shape}")
    trials = _check_trials(int(hits.size))
    count = int(hits.sum())
    lo, hi = binomial_band(target, trials, level)
    return {
        "rate": count / trials,
        "mc_se": float(np.sqrt(target * (1 - target) / trials)),
        "band": [lo, hi],
        "inside_band": bool(lo <= count / trials <= hi),
        "binom_p": float(stats.binomtest(count, trials, target).pvalue),
    }


def geometric_mean(x, floor: float = 1e-300) -> np.ndarray:
    """exp(mean(log max(x, floor))) over replicates (axis 0), e.g. of error curves."""
    return np.exp(np.mean(np.log(np.maximum(np.asarray(x), floor)), axis=0))


def log_linear_rate(errors, floor: float = 1e-10, min_points: int = 5) -> np.ndarray:
    """Per-replicate contraction factor ρ of error curves e_t ≈ C·ρ^t.

    For each row, a least-squares line through log e_t over t >= T/10 (past the
    transient), using only the finite errors above ``floor`` (below it, round-off);
    ρ = exp(slope).

    Args:
      errors: [R, T] error curves (e.g. ‖β_t − β̂‖ of an iteration).
      floor: errors at or below it are left out.
      min_points: fewer usable points give NaN.

    Returns:
      [R] factors ρ (NaN where a row has too few usable points).
    """
    errors = np.asarray(errors, float)
    if errors.ndim != 2:
        raise ValueError(f"errors must have shape [R, T], got {errors.shape}")
    t = np.arange(errors.shape[1])
    rates = np.full(errors.shape[0], np.nan)
    for i, e in enumerate(errors):
        use = (t >= errors.shape[1] // 10) & (e > floor) & np.isfinite(e)
        if use.sum() >= min_points:
            rates[i] = np.exp(np.polyfit(t[use], np.log(e[use]), 1)[0])
    return rates
