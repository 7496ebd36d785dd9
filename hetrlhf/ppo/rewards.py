"""Reward sources seen by the PPO learner: each gives a ``RewardEstimate`` per sample."""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp

from hetrlhf.types import RewardEstimate

__all__ = ["NOISES", "noisy_reward"]

NOISES = ("gaussian", "uniform", "none")


def noisy_reward(
    key: jax.Array,
    est: RewardEstimate,
    phi: jax.Array,
    prompt_ids: jax.Array,
    action_ids: jax.Array,
    *,
    noise: str = "gaussian",
    correlation: float = 1.0,
) -> RewardEstimate:
    """One fixed realisation of a noisy reward model: r̂ = mean + sqrt(var)·z (ours).

    z has mean 0 and variance 1 at every response and is a deterministic function of
    (key, response), so the key plays the role of one independently trained reward
    model. It mixes a smooth part, correlated across responses through their features
    (as the errors of a reward model are), and an independent part:

        z_g = √c · ξᵀφ/‖φ‖ + √(1 − c) · ζ(prompt, response),   ξ ~ N(0, I_d), ζ ~ N(0, 1)

    with ξ and ζ fixed by ``key``. A policy that is smooth in the features cannot
    average the smooth part away. "gaussian": z = z_g (so r̂ ~ N(mean, var) at each
    response); "uniform": z = √3·(2Φ(z_g) − 1) ~ Uniform(−√3, √3) (so r̂ ~
    Uniform(lo, hi) for an interval reward with the same mean and variance); "none":
    ``est`` is returned unchanged.

    Args:
      key: PRNG key of this reward-model realisation.
      est: RewardEstimate with mean, var of shape [B].
      phi: [B, d] response features.
      prompt_ids: [B] int prompt indices.
      action_ids: [B] int response codes (unique per response of a prompt).
      noise: "gaussian", "uniform" or "none".
      correlation: c ∈ [0, 1], the share of the noise variance that is smooth.

    Returns:
      RewardEstimate(mean=r̂, var=est.var).
    """
    chex.assert_rank([est.mean, est.var, phi, prompt_ids, action_ids], [1, 1, 2, 1, 1])
    chex.assert_equal_shape([est.mean, est.var, prompt_ids, action_ids])
    chex.assert_equal_shape_prefix([phi, est.mean], 1)
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {NOISES}, got {noise!r}")
    if noise == "none":
        return est
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
