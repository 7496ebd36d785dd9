"""The PPO loss of ONE policy's batch: clipped surrogate, weighted KL penalty, advantages.

See the package docstring (``hetrlhf.ppo``) for the objective and its provenance.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

__all__ = ["KL_ESTIMATORS", "group_advantages", "kl_weights", "ppo_loss"]

KL_ESTIMATORS = ("k1", "k3")


def ppo_loss(
    logp: jax.Array,
    old_logp: jax.Array,
    ref_logp: jax.Array,
    advantages: jax.Array,
    weights: jax.Array,
    *,
    clip_eps: float,
    beta: float,
    kl_estimator: str = "k3",
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Clipped surrogate plus weighted KL penalty (our formulation, see module doc).

    L = −mean_{b,t} min(ρ A_b, clip(ρ, 1±ε) A_b) + β · mean_b(w_b · Σ_t KL_{b,t}).

    Args:
      logp: [B, T] log π_θ of the sampled tokens (T = 1 for single actions).
      old_logp: [B, T] log π_old (behaviour policy; constants).
      ref_logp: [B, T] log π_ref (reference policy; constants).
      advantages: [B] advantage per response.
      weights: [B] KL weights w (ones for vanilla PPO).
      clip_eps: ε.
      beta: β.
      kl_estimator: "k1" or "k3".

    Returns:
      (loss [], aux dict: pg_loss, kl_penalty (weighted), kl (unweighted mean
      KL_sample), clip_frac).
    """
    chex.assert_rank([logp, old_logp, ref_logp, advantages, weights], [2, 2, 2, 1, 1])
    chex.assert_equal_shape([logp, old_logp, ref_logp])
    chex.assert_equal_shape([advantages, weights])
    chex.assert_equal_shape_prefix([logp, advantages], 1)
    ratio = jnp.exp(logp - old_logp)
    adv = advantages[:, None]
    surrogate = jnp.minimum(
        ratio * adv, jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * adv
    )
    pg_loss = -jnp.mean(surrogate)
    log_u = ref_logp - logp  # log(π_ref / π_θ)
    if kl_estimator == "k1":
        kl_tok = ratio * (-log_u)
    elif kl_estimator == "k3":
        # expm1(x) − x is u − 1 − log u without cancellation for u ≈ 1.
        kl_tok = ratio * (jnp.expm1(log_u) - log_u)
    else:
        raise ValueError(
            f"kl_estimator must be one of {KL_ESTIMATORS}, got {kl_estimator!r}"
        )
    kl_sample = jnp.sum(kl_tok, axis=-1)
    kl_penalty = jnp.mean(weights * kl_sample)
    clip_frac = jnp.mean((jnp.abs(ratio - 1.0) > clip_eps).astype(logp.dtype))
    aux = {
        "pg_loss": pg_loss,
        "kl_penalty": kl_penalty,
        "kl": jnp.mean(kl_sample),
        "clip_frac": clip_frac,
    }
    return pg_loss + beta * kl_penalty, aux


def kl_weights(var: jax.Array, variance_aware: jax.Array | bool) -> jax.Array:
    """Per-sample KL weights: σ²/mean(σ²) (variance-aware) or 1 (vanilla).

    Args:
      var: [B] reward variances σ²(s, a) of the batch.
      variance_aware: [] bool switch (may be traced).

    Returns:
      [B] weights, mean 1 in both modes (ones where all variances are 0).
    """
    chex.assert_rank(var, 1)
    m = jnp.mean(var)
    scaled = jnp.where(m > 0, var / jnp.where(m > 0, m, 1.0), jnp.ones_like(var))
    return jnp.where(variance_aware, scaled, jnp.ones_like(var))


def group_advantages(rewards: jax.Array, group_size: int) -> jax.Array:
    """A = r − mean of the G rewards drawn for the same prompt.

    Args:
      rewards: [B·G] rewards, the G responses of each prompt contiguous.
      group_size: G.

    Returns:
      [B·G] advantages.
    """
    chex.assert_rank(rewards, 1)
    r = rewards.reshape(-1, group_size)
    return (r - jnp.mean(r, axis=1, keepdims=True)).reshape(-1)
