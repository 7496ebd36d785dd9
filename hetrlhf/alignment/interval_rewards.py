"""Interval-valued ("prompted") rewards (Banerjee, Saha & Gopalan 2025, §B1 of DESIGN.md).

A judge (e.g. an LLM prompted for a score range) returns an interval [lo, hi] for each
response instead of a point score. We read the interval as a uniform distribution of
the reward, r ~ Uniform(lo, hi), so

    mean = (lo + hi) / 2,    var = (hi − lo)² / 12,

and return both as the library's uncertainty currency ``RewardEstimate(mean, var)``,
which every consumer (pessimistic best-of-N, variance-aware policies) accepts.

Two entry points:
  * ``interval_moments(lo, hi)``: the pure, jittable kernel (no checks; any shape).
  * ``interval_rewards(lo, hi)``: the eager entry point for user input; validates
    (numeric, same shape, finite, lo <= hi) and then calls the kernel.

``judge_differences`` simulates such a judge on known rewards (honest or
over-confident intervals), for calibration studies.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from hetrlhf.types import RewardEstimate
from hetrlhf.validation import as_float_array

__all__ = ["interval_moments", "interval_rewards", "judge_differences"]


def interval_moments(lo: jax.Array, hi: jax.Array) -> RewardEstimate:
    """Mean and variance of r ~ Uniform(lo, hi), elementwise.

    Pure kernel: no validation, jit/vmap-compatible. ``lo`` > ``hi`` is not checked
    here (the formulas are symmetric, so swapped end points give the same moments);
    use ``interval_rewards`` for user input.

    Args:
      lo: [...] lower end points.
      hi: [...] upper end points, same shape as ``lo``.

    Returns:
      ``RewardEstimate(mean=(lo + hi)/2, var=(hi − lo)²/12)``, each of shape [...].
    """
    lo = jnp.asarray(lo)
    hi = jnp.asarray(hi)
    if lo.shape != hi.shape:  # static shapes: a Python-level check is trace-safe
        raise ValueError(
            f"lo and hi must have the same shape, got {lo.shape} and {hi.shape}"
        )
    width = hi - lo
    return RewardEstimate(mean=0.5 * (lo + hi), var=width * width / 12.0)


def interval_rewards(lo, hi, *, dtype=None) -> RewardEstimate:
    """Validates judge intervals [lo, hi] and returns their uniform-reward moments.

    The reward of a response whose judge interval is [lo, hi] is modelled as
    Uniform(lo, hi) (DESIGN.md §B1): mean (lo + hi)/2, variance (hi − lo)²/12.
    A degenerate interval lo == hi is allowed (a point reward, variance 0); note the
    variance-aware policies need strictly positive variances.

    Args:
      lo: [...] lower end points (array-like, real, finite).
      hi: [...] upper end points, same shape as ``lo``.
      dtype: float dtype of the result; defaults to JAX's default float dtype.

    Returns:
      ``RewardEstimate(mean, var)`` of jnp arrays with the shape of ``lo``.

    Raises:
      TypeError: non-numeric or complex input.
      ValueError: ``lo`` and ``hi`` of different shapes, NaN/inf entries, or some
        ``lo`` > ``hi``.
    """
    lo_np = as_float_array("lo", lo)
    hi_np = as_float_array("hi", hi)
    if lo_np.shape != hi_np.shape:
        raise ValueError(
            f"lo and hi must have the same shape, got lo {lo_np.shape} and hi {hi_np.shape}"
        )
    bad = lo_np > hi_np
    if np.any(bad):
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"lo must be <= hi elementwise; {int(np.sum(bad))} interval(s) have lo > hi "
            f"(first at index {first}: lo={lo_np[first]}, hi={hi_np[first]})"
        )
    if dtype is None:
        dtype = jnp.zeros(()).dtype
    return interval_moments(jnp.asarray(lo_np, dtype), jnp.asarray(hi_np, dtype))


def judge_differences(
    key: jax.Array,
    r0: jax.Array,
    r1: jax.Array,
    width_scales,
    noise_low: float,
    noise_high: float,
) -> dict[float, RewardEstimate]:
    """A simulated judge's interval estimates of the reward differences r1 − r0.

    The judge scores each response with its true reward plus N(0, τ²) noise, τ ~
    Uniform(noise_low, noise_high) per response, and reports [score ∓ w·√3·τ] at each
    width scale w (w = 1: honest, the uniform variance w²τ² equals the error variance;
    w < 1: over-confident). Each interval is read as Uniform(lo, hi)
    (``interval_moments``) and the difference's variance is the sum of the two
    responses' (independent judge calls). One judge (τ and errors drawn once) serves
    every w: the sources of different w are paired (common random numbers).

    Args:
      key: PRNG key.
      r0, r1: [...] true rewards of the two responses.
      width_scales: Python floats w > 0 (static).
      noise_low, noise_high: range of the judge's noise levels τ.

    Returns:
      {w: ``RewardEstimate`` of r1 − r0, each [...]}.
    """
    k_tau, k_eps = jax.random.split(key)
    tau = jax.random.uniform(k_tau, (2,) + r0.shape, r0.dtype, noise_low, noise_high)
    score = jnp.stack([r0, r1]) + tau * jax.random.normal(k_eps, tau.shape, r0.dtype)
    out = {}
    for w in width_scales:
        half = w * math.sqrt(3.0) * tau
        est = interval_moments(score - half, score + half)
        out[w] = RewardEstimate(est.mean[1] - est.mean[0], est.var[0] + est.var[1])
    return out
