"""The PPO loss of ONE policy's batch: clipped surrogate, KL penalty, its weights, β.

Three forms of the variance-aware KL penalty, one switch (``PENALTIES``):

* ``"kl_reward"``: TRL's ``kl`` penalty inside the reward, σ²-weighted with the RAW
  reward variance: R = r̂ − β·w·Σ_t log(π_old/π_ref)_t, w = σ² (variance-aware) or 1
  (vanilla); the loss has no KL term. DESIGN.md §B3's most plausible reading of paper
  B's objective (its equations are not available to us).
* ``"mean_one"``: the KL estimator (k1 or k3) in the loss, weights σ²/mean_batch(σ²):
  a weighted trust region whose average weight is 1 in both arms (ours).
* ``"lambda_min"``: the same with weights σ²/min_batch(σ²) ≥ 1, the scaling of
  ``hetrlhf.alignment.policy.variance_aware_step`` (ε′ = λ_min(Σ)·ε: the ellipsoid's longest
  semi-axis equals the vanilla ball's radius).

β is fixed or follows the adaptive controller of Ziegler et al. (2019) as TRL's
``AdaptiveKLController`` implements it (``adaptive_beta``).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

__all__ = [
    "KL_ESTIMATORS",
    "PENALTIES",
    "adaptive_beta",
    "group_advantages",
    "kl_in_reward",
    "kl_weights",
    "ppo_loss",
]

KL_ESTIMATORS = ("k1", "k3")
PENALTIES = ("kl_reward", "mean_one", "lambda_min")


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


def kl_weights(
    var: jax.Array, variance_aware: jax.Array | bool, penalty: str = "mean_one"
) -> jax.Array:
    """Per-sample KL weights w of the variance-aware penalty; 1 for vanilla PPO.

    "kl_reward": w = σ² (raw); "mean_one": w = σ²/mean(σ²) (mean 1 over the batch);
    "lambda_min": w = σ²/min(σ²) (every weight ≥ 1). A batch whose normaliser is 0
    (all variances 0, or a zero variance under "lambda_min") gets unit weights.

    Args:
      var: [B] reward variances σ²(s, a) ≥ 0 of the batch.
      variance_aware: [] bool switch (may be traced).
      penalty: one of ``PENALTIES`` (static).

    Returns:
      [B] weights.
    """
    chex.assert_rank(var, 1)
    if penalty == "kl_reward":
        scaled = var
    elif penalty in ("mean_one", "lambda_min"):
        m = jnp.mean(var) if penalty == "mean_one" else jnp.min(var)
        scaled = jnp.where(m > 0, var / jnp.where(m > 0, m, 1.0), jnp.ones_like(var))
    else:
        raise ValueError(f"penalty must be one of {PENALTIES}, got {penalty!r}")
    return jnp.where(variance_aware, scaled, jnp.ones_like(var))


def kl_in_reward(
    rewards: jax.Array,
    weights: jax.Array,
    old_logp: jax.Array,
    ref_logp: jax.Array,
    beta: jax.Array | float,
) -> jax.Array:
    """Rewards with the weighted k1 KL penalty inside: R = r − β·w·Σ_t log(π_old/π_ref)_t.

    TRL's ``kl_penalty="kl"`` (the per-token penalty −β(log π_old − log π_ref), here
    summed over the response because our advantages are per response), with each
    response's penalty weighted by w. The log-ratio is a constant of the update (no
    gradient flows through it), as in TRL, so the policy-gradient fixed point is
    π ∝ π_ref·exp((r − c)/(β w)).

    Args:
      rewards: [B] observed rewards r̂.
      weights: [B] KL weights w (``kl_weights(..., "kl_reward")``: σ² or 1).
      old_logp: [B, T] log π_old of the sampled tokens (the behaviour policy).
      ref_logp: [B, T] log π_ref of the same tokens.
      beta: [] β ≥ 0 (may be traced).

    Returns:
      [B] penalised rewards.
    """
    chex.assert_rank([rewards, weights, old_logp, ref_logp], [1, 1, 2, 2])
    chex.assert_equal_shape([rewards, weights])
    chex.assert_equal_shape([old_logp, ref_logp])
    return rewards - beta * weights * jnp.sum(old_logp - ref_logp, axis=-1)


def adaptive_beta(
    beta: jax.Array | float,
    kl: jax.Array | float,
    *,
    target: float,
    horizon: float,
    num_steps: int,
) -> jax.Array:
    """One step of the adaptive KL controller (Ziegler et al. 2019; TRL's
    ``AdaptiveKLController.update``).

        e = clip(KL/target − 1, −0.2, 0.2),    β ← β·(1 + e·n/horizon)

    with KL the batch mean of the sequence KL estimate Σ_t log(π_old/π_ref)_t of the
    rollout and n the number of samples in the batch (TRL passes its batch size).

    Args:
      beta: [] current β.
      kl: [] the rollout's mean KL.
      target: target KL > 0.
      horizon: horizon > 0.
      num_steps: n.

    Returns:
      [] the next β.
    """
    e = jnp.clip(kl / target - 1.0, -0.2, 0.2)
    return beta * (1.0 + e * num_steps / horizon)


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
