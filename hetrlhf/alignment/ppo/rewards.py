"""Reward sources of the PPO study: each gives a ``RewardEstimate(mean, var)`` per sample.

How the learner OBSERVES a source's estimate at a sampled response (``NOISES``,
``PPOConfig.reward_noise``; ``observe``):

* ``"none"``: r̂ = mean, deterministic and shared by every policy. Paper B's GPT-2
  protocol (DESIGN.md §B3a): the mean of a trained 10-head ensemble, σ² = the heads'
  variance (``hetrlhf.alignment.ensemble.ensemble_reward``).
* ``"per_query"``: a fresh r̂ ~ Uniform(a, b) on EVERY query (each policy, update and
  sampled response), σ² = (b − a)²/12. Paper B's prompted protocol (§B3b): a judge
  returns an interval [a, b] per response; the true reward is its midpoint
  (``judge_intervals`` simulates such a judge around the gold reward).
* ``"per_policy_gaussian"`` / ``"per_policy_uniform"``: one fixed realisation
  r̂ = mean + σ·z per policy for its whole run (``per_policy_noise``): the theory's
  noise model r̂ = r + ε, drawn per policy. Our design, not one of the paper's
  protocols; it gives the variance-aware penalty exactly the noise it is built for.

``tempered``/``tempering`` rescale a source's variances to σ²_s ∝ (σ²)^s at a fixed
mean σ² (our Table-4 analogue: narrowing the spread of σ across responses).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from hetrlhf.alignment.interval_rewards import interval_moments
from hetrlhf.types import RewardEstimate

__all__ = [
    "NOISES",
    "judge_intervals",
    "observe",
    "per_policy_noise",
    "per_query_uniform",
    "tempered",
    "tempering",
]

NOISES = ("none", "per_query", "per_policy_gaussian", "per_policy_uniform")


def per_policy_noise(
    key: jax.Array,
    est: RewardEstimate,
    phi: jax.Array,
    prompt_ids: jax.Array,
    action_ids: jax.Array,
    *,
    noise: str = "gaussian",
    correlation: float = 1.0,
) -> RewardEstimate:
    """One policy's fixed realisation of a noisy reward model: r̂ = mean + sqrt(var)·z.

    The noise model of paper B's theory (r̂ = r + ε, ε ~ N(0, diag σ²), DESIGN.md §B2),
    drawn ONCE per policy and kept for its whole run; giving each policy its own
    realisation is our experimental design (the ``per_policy_noise`` source), not one
    of the paper's PPO protocols.

    z has mean 0 and variance 1 at every response and is a deterministic function of
    (key, response), so the key plays the role of one independently trained reward
    model. It mixes a smooth part, correlated across responses through their features
    (as the errors of a reward model are), and an independent part:

        z_g = √c · ξᵀφ/‖φ‖ + √(1 − c) · ζ(prompt, response),   ξ ~ N(0, I_d), ζ ~ N(0, 1)

    with ξ and ζ fixed by ``key``. A policy that is smooth in the features cannot
    average the smooth part away. "gaussian": z = z_g (so r̂ ~ N(mean, var) at each
    response); "uniform": z = √3·(2Φ(z_g) − 1) ~ Uniform(−√3, √3) (so r̂ ~
    Uniform(lo, hi) for an interval reward with the same mean and variance).

    Args:
      key: PRNG key of this reward-model realisation.
      est: RewardEstimate with mean, var of shape [B].
      phi: [B, d] response features.
      prompt_ids: [B] int prompt indices.
      action_ids: [B] int response codes (unique per response of a prompt).
      noise: "gaussian" or "uniform".
      correlation: c ∈ [0, 1], the share of the noise variance that is smooth.

    Returns:
      RewardEstimate(mean=r̂, var=est.var).
    """
    chex.assert_rank([est.mean, est.var, phi, prompt_ids, action_ids], [1, 1, 2, 1, 1])
    chex.assert_equal_shape([est.mean, est.var, prompt_ids, action_ids])
    chex.assert_equal_shape_prefix([phi, est.mean], 1)
    if noise not in ("gaussian", "uniform"):
        raise ValueError(f"noise must be 'gaussian' or 'uniform', got {noise!r}")
    dtype = est.mean.dtype
    smooth_key, iid_key = jax.random.split(key)
    xi = jax.random.normal(smooth_key, phi.shape[-1:], dtype)
    norm = jnp.linalg.norm(phi, axis=-1)
    z_smooth = (phi @ xi) / jnp.where(norm > 0, norm, 1.0)

    def draw(p, a):
        return jax.random.normal(
            jax.random.fold_in(jax.random.fold_in(iid_key, p), a), (), dtype
        )

    if isinstance(correlation, (int, float)) and correlation == 1.0:
        z = z_smooth  # static shortcut: skip 3·B threefry hashes per call
    else:
        z_iid = jax.vmap(draw)(prompt_ids, action_ids)
        z = jnp.sqrt(correlation) * z_smooth + jnp.sqrt(1.0 - correlation) * z_iid
    if noise == "uniform":
        z = math.sqrt(3.0) * (2.0 * jax.scipy.stats.norm.cdf(z) - 1.0)
    return RewardEstimate(est.mean + jnp.sqrt(est.var) * z, est.var)


def per_query_uniform(u: jax.Array, est: RewardEstimate) -> RewardEstimate:
    """A fresh draw r̂ ~ Uniform(a, b) per response from its interval's moments.

    With mean m = (a + b)/2 and var = (b − a)²/12: r̂ = m + √(3·var)·(2u − 1), i.e.
    a + (b − a)·u. The caller passes a fresh u for every query.

    Args:
      u: [B] uniforms on [0, 1).
      est: RewardEstimate with mean, var of shape [B].

    Returns:
      RewardEstimate(mean=r̂, var=est.var).
    """
    chex.assert_equal_shape([u, est.mean, est.var])
    half_width = jnp.sqrt(3.0 * est.var)
    return RewardEstimate(est.mean + half_width * (2.0 * u - 1.0), est.var)


def observe(
    est: RewardEstimate,
    noise: str,
    *,
    u: jax.Array | None = None,
    policy_key: jax.Array | None = None,
    phi: jax.Array | None = None,
    prompt_ids: jax.Array | None = None,
    action_ids: jax.Array | None = None,
    correlation: float = 1.0,
) -> RewardEstimate:
    """The reward a policy observes at its sampled responses (see module doc).

    Args:
      est: the source's RewardEstimate, mean and var [B].
      noise: one of ``NOISES`` (static).
      u: [B] fresh uniforms ("per_query").
      policy_key: the policy's fixed reward key ("per_policy_*").
      phi, prompt_ids, action_ids, correlation: as ``per_policy_noise``.

    Returns:
      RewardEstimate(mean=r̂ [B], var=est.var).
    """
    if noise == "none":
        return est
    if noise == "per_query":
        return per_query_uniform(u, est)
    if noise in ("per_policy_gaussian", "per_policy_uniform"):
        return per_policy_noise(
            policy_key,
            est,
            phi,
            prompt_ids,
            action_ids,
            noise=noise.removeprefix("per_policy_"),
            correlation=correlation,
        )
    raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")


def judge_intervals(params: dict, phi: jax.Array) -> RewardEstimate:
    """A simulated judge's intervals [r − h, r + h] around the gold reward r = θ*ᵀφ (ours).

    h(φ) = h0·exp(spread·uᵀφ − spread²): the width varies across responses (narrow
    where the judge is sure, wide where the response is ambiguous), with E[h²] = h0²
    for φ ~ N(0, I) and ‖u‖ = 1. Returned as the moments of r ~ Uniform(r − h, r + h):
    mean r (the midpoint, the true reward), var (2h)²/12.

    Args:
      params: {"theta": [d] θ*, "u": [d] unit vector, "h0": [] h0 > 0, "spread": []}.
      phi: [..., d] features.

    Returns:
      RewardEstimate(mean [...], var [...]).
    """
    h = params["h0"] * jnp.exp(
        params["spread"] * (phi @ params["u"]) - params["spread"] ** 2
    )
    r = phi @ params["theta"]
    return interval_moments(r - h, r + h)


def tempered(
    reward_fn: Callable[[Any, jax.Array], RewardEstimate],
) -> Callable[[dict, jax.Array], RewardEstimate]:
    """Wraps a source so that its variances become scale·var^exponent.

    The wrapped source takes ``{"base": base params, "exponent": [], "scale": []}``
    (``tempering`` builds them); its means are the base source's.
    """

    def fn(params, phi):
        est = reward_fn(params["base"], phi)
        return RewardEstimate(est.mean, params["scale"] * est.var ** params["exponent"])

    return fn


def tempering(
    base_params: Any,
    reward_fn: Callable[[Any, jax.Array], RewardEstimate],
    phi_ref: jax.Array,
    exponent: float,
) -> dict:
    """Params of ``tempered(reward_fn)``: σ²_s = c·(σ²)^s with c keeping the mean σ² over
    ``phi_ref`` [n, d] fixed (s = 0: all variances equal; s = 1: the source's own)."""
    var = np.asarray(reward_fn(base_params, phi_ref).var, np.float64)
    scale = var.mean() / np.mean(var**exponent)
    dtype = jnp.zeros(()).dtype
    return {
        "base": base_params,
        "exponent": jnp.asarray(exponent, dtype),
        "scale": jnp.asarray(scale, dtype),
    }
