"""Variance-aware PPO (Banerjee, Saha & Gopalan 2025, §B2) — our formulation.

The paper's exact PPO objectives (its eqs. (5)–(6)) are not available to us; the
objective below is OUR formulation of "PPO whose per-sample KL penalty to the reference
policy is weighted by the reward variance". For a batch of prompts s and responses a
sampled from the behaviour policy π_old, with a reward estimate ``RewardEstimate(r̂, σ²)``:

    ρ        = π_θ(a|s) / π_old(a|s)                          (per token)
    L_clip   = −E[ min(ρ A, clip(ρ, 1 − ε, 1 + ε) A) ]        (clipped surrogate)
    L_KL     = E[ w(s, a) · KL_sample(s, a) ]
    L(θ)     = L_clip + β · L_KL  (+ c_v E[(V(s) − r̂)²] with a value baseline)

    w(s, a)  = σ²(s, a) / mean_batch(σ²)   variance-aware
    w(s, a)  = 1                            vanilla

so the penalty grows where the reward is uncertain; vanilla PPO is the SAME kernel with
unit weights (a traced boolean switch, so vanilla and variance-aware policies can be
trained side by side in one ``vmap``). The advantage is A = r̂ − baseline, with the
group baseline (the mean reward of the G responses drawn for the same prompt) or a
learned value V(s). The per-sample KL is importance weighted so that its expectation
under π_old is a divergence of π_θ itself (not only at π_θ = π_old):

    "k1": KL_sample = Σ_t ρ_t log(π_θ / π_ref)_t;
          E[w·KL_sample] = Σ_a π_θ(a) w(a) log(π_θ(a)/π_ref(a)), exactly B2's
          variance-weighted penalty (for one-token actions).
    "k3": KL_sample = Σ_t ρ_t (u_t − 1 − log u_t), u = π_ref / π_θ (Schulman's k3
          estimator; ≥ 0 per sample, 0 iff π_θ = π_ref on the sample).

For sequences the per-token ratio ρ_t is the usual PPO approximation of the prefix
importance weight (exact for single-token actions).

Noisy reward model. Each policy is trained against its own realisation of the reward
model, r̂ = mean + sqrt(var)·z, with z drawn once per (policy, prompt, response) from a
standard normal ("gaussian") or from Uniform(−√3, √3) ("uniform": interval rewards,
r̂ ~ Uniform(lo, hi)); the variance passed to the KL weights is the estimate's ``var``.
This is the noise model r̂ = r + ε, ε ~ N(0, diag σ²) of §B2, again our formulation of
the experiment.

A whole run is ``make_train(config, task, reward_fn) -> train(key, variance_aware,
reward_params)`` (purejaxrl style, ``lax.scan`` over updates), so

    train_v = jax.jit(jax.vmap(train, in_axes=(0, 0, None)))
    out = train_v(keys, variance_aware_flags, reward_params)

trains e.g. 80 vanilla and 80 variance-aware policies in one jitted program.

One update: draw num_prompts prompts uniformly (with replacement), G responses per
prompt from π_old, score them, then num_epochs passes of num_minibatches Adam steps.
The batch is kept in prompt groups ([num_prompts, G, ...]): a prompt's logits are formed
once for its G responses, and each minibatch is a random set of whole prompt groups
(as in GRPO; each epoch reshuffles the groups). All the randomness of an update comes
from ONE draw of uint32 words (prompt indices ⌊k·P/2²⁴⌋ and sampling uniforms k/2²⁴ from
their top 24 bits k, shuffles from stable argsorts of fresh words): on a CPU every separate
``jax.random`` call is a small rolled threefry loop, and the per-call cost dominated.

Two tasks ship with a Flax policy each (any module with the same call signature works):
``CandidateTask`` (softmax over N candidate responses per prompt, linear in their
features) and ``TokenTask`` (a tiny causal transformer generating short token
sequences, rewarded per sequence through the sequence's features). Both draw actions
by inverse CDF (``categorical``: one uniform per candidate or token), which on a CPU
is far cheaper under ``vmap`` than ``jax.random.categorical``'s Gumbel draws. A task
provides ``num_prompts``, ``seq_len`` (T), ``init_params(key)``,
``sample_uniform(u [B, G, T], params, prompt_ids [B]) -> actions [B, G, T]``,
``evaluate(params, prompt_ids, actions) -> (log π [B, G, T], V(s) [B])``,
``response_features(prompt_ids, actions) -> φ [B, G, d]``, ``action_ids(actions) ->
[B, G]`` (a code unique per response of a prompt), ``gold_reward(φ)`` and
``expected_gold(key, params)``; optionally ``all_responses() -> (prompt_ids [P],
actions [P, R, T])`` (every response, codes 0..R−1), with which the learner forms the
reference log-probabilities and features of all responses once and evaluates the
reward model once per update on all of them instead of per policy (``CandidateTask``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from hetrlhf.types import RewardEstimate

__all__ = [
    "CandidatePolicy",
    "CandidateTask",
    "Metrics",
    "PPOConfig",
    "PPOLearner",
    "TinyTransformer",
    "TokenTask",
    "TrainOutput",
    "TrainState",
    "categorical",
    "group_advantages",
    "kl_weights",
    "make_learner",
    "make_train",
    "noisy_reward",
    "ppo_loss",
    "run_updates",
]

_KL_ESTIMATORS = ("k1", "k3")
_BASELINES = ("group", "value")
_NOISES = ("gaussian", "uniform", "none")


class PPOConfig(NamedTuple):
    """PPO hyperparameters (hashable, so they are static under ``jit``).

    Attributes:
      num_updates: PPO updates (each: one rollout batch, then epochs of minibatches).
      num_prompts: prompts drawn (uniformly, with replacement) per update.
      group_size: G responses sampled per prompt (the batch has num_prompts·G samples).
      num_epochs: passes over each rollout batch.
      num_minibatches: minibatches per epoch; each is a random set of
        num_prompts/num_minibatches whole prompt groups (must divide num_prompts).
      learning_rate: adam step size.
      max_grad_norm: global gradient-norm clip (per policy).
      clip_eps: ε of the clipped surrogate.
      beta: β, the KL-penalty coefficient.
      kl_estimator: "k3" (default, ≥ 0 per sample) or "k1" (B2's weighted penalty).
      baseline: "group" (mean reward of the prompt's G responses) or "value".
      value_coef: c_v, weight of the value loss (value baseline only).
      normalize_advantages: divide advantages by their batch standard deviation.
      reward_noise: the reward-model realisation: "gaussian", "uniform" or "none".
      noise_correlation: share of the realisation's noise variance that is smooth in
        the features (see ``noisy_reward``).
    """

    num_updates: int = 100
    num_prompts: int = 16
    group_size: int = 4
    num_epochs: int = 2
    num_minibatches: int = 2
    learning_rate: float = 0.02
    max_grad_norm: float = 1.0
    clip_eps: float = 0.2
    beta: float = 0.1
    kl_estimator: str = "k3"
    baseline: str = "group"
    value_coef: float = 0.5
    normalize_advantages: bool = False
    reward_noise: str = "gaussian"
    noise_correlation: float = 1.0


def _validate_config(config: PPOConfig) -> None:
    if not isinstance(config, PPOConfig):
        raise TypeError(f"config must be a PPOConfig, got {type(config).__name__}")
    for name in (
        "num_updates",
        "num_prompts",
        "group_size",
        "num_epochs",
        "num_minibatches",
    ):
        v = getattr(config, name)
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"config.{name} must be an int >= 1, got {v!r}")
    if config.num_prompts % config.num_minibatches:
        raise ValueError(
            f"config.num_minibatches={config.num_minibatches} must divide "
            f"config.num_prompts={config.num_prompts} (minibatches are sets of whole "
            "prompt groups)"
        )
    for name, positive in (
        ("learning_rate", True),
        ("max_grad_norm", True),
        ("clip_eps", True),
        ("beta", False),
        ("value_coef", False),
    ):
        v = getattr(config, name)
        if not isinstance(
            v, (int, float, np.floating, np.integer)
        ) or not math.isfinite(v):
            raise ValueError(f"config.{name} must be a finite number, got {v!r}")
        if v < 0 or (positive and v == 0):
            raise ValueError(
                f"config.{name} must be {'> 0' if positive else '>= 0'}, got {v}"
            )
    if config.kl_estimator not in _KL_ESTIMATORS:
        raise ValueError(
            f"config.kl_estimator must be one of {_KL_ESTIMATORS}, got {config.kl_estimator!r}"
        )
    if config.baseline not in _BASELINES:
        raise ValueError(
            f"config.baseline must be one of {_BASELINES}, got {config.baseline!r}"
        )
    if config.reward_noise not in _NOISES:
        raise ValueError(
            f"config.reward_noise must be one of {_NOISES}, got {config.reward_noise!r}"
        )
    c = config.noise_correlation
    if not isinstance(c, (int, float, np.floating, np.integer)) or not 0.0 <= c <= 1.0:
        raise ValueError(f"config.noise_correlation must be in [0, 1], got {c!r}")
    if config.baseline == "group" and config.group_size < 2:
        raise ValueError("config.group_size must be >= 2 with the group baseline")


# --------------------------------------------------------------------------------------
# Kernels (one batch of ONE policy).


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
            f"kl_estimator must be one of {_KL_ESTIMATORS}, got {kl_estimator!r}"
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
    if noise not in _NOISES:
        raise ValueError(f"noise must be one of {_NOISES}, got {noise!r}")
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


def categorical(key: jax.Array, logits: jax.Array) -> jax.Array:
    """Draws from softmax(logits) by inverse CDF: ONE uniform per draw (our sampler).

    a = #{j < N − 1 : F_j ≤ u·F_{N−1}} with F the cumulative sums of exp(logits − max)
    and u ~ Uniform[0, 1), i.e. the smallest j with u < F_j / F_{N−1}. The same
    distribution as ``jax.random.categorical`` (other draws), from 1 random word per
    row instead of N Gumbel words: on a CPU the threefry hashing of the Gumbel draws
    dominated a vmapped PPO update.

    Args:
      key: PRNG key.
      logits: [..., N] finite unnormalised log-probabilities.

    Returns:
      [...] int32 draws in 0..N−1.
    """
    if jnp.ndim(logits) < 1:
        raise ValueError(f"logits must have a category axis, got shape {logits.shape}")
    u = jax.random.uniform(key, logits.shape[:-1] + (1,), logits.dtype)
    return _inverse_cdf(u, logits)[..., 0]


def _inverse_cdf(u: jax.Array, logits: jax.Array) -> jax.Array:
    """Categories of softmax(logits) at cumulative probabilities u ∈ [0, 1).

    G draws share one distribution (the G responses of a prompt): its cumulative sums
    are formed once.

    Args:
      u: [..., G] uniforms.
      logits: [..., N] finite logits (the same leading axes).

    Returns:
      [..., G] int32 categories.
    """
    chex.assert_equal_shape_prefix([u, logits], u.ndim - 1)
    chex.assert_rank(logits, u.ndim)
    n = logits.shape[-1]
    w = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))
    # Cumulative sums as a matmul with a triangular 0/1 matrix: a tiny dot is cheaper
    # than a small-axis scan (reduce-window) on XLA:CPU.
    cdf = w @ jnp.triu(jnp.ones((n, n), w.dtype))
    below = cdf[..., None, :-1] <= (u * cdf[..., -1:])[..., None]
    return jnp.sum(below, axis=-1, dtype=jnp.int32)


def _unit_uniform(bits: jax.Array, dtype) -> jax.Array:
    """Uniforms on [0, 1) from uint32 words: the top 24 bits, k·2⁻²⁴ (exact in float32)."""
    return (bits >> 8).astype(dtype) * (2.0**-24)


def _uniform_index(bits: jax.Array, n: int) -> jax.Array:
    """⌊k·n/2²⁴⌋ ∈ 0..n−1 with k the top 24 bits of ``bits`` (exact integer arithmetic).

    Exactly uniform when n divides 2²⁴; otherwise each index has probability
    ⌊2²⁴/n⌋/2²⁴ or ⌈2²⁴/n⌉/2²⁴ (relative error < n/2²⁴). k·n is formed from two
    12-bit halves of k so that nothing overflows 32 bits for n < 2²⁰ (a float32 product
    u·n would round across integers for some k when n is not a power of 2).

    Args:
      bits: [...] uint32 words.
      n: a Python int, 1 ≤ n < 2²⁰ (``make_learner`` checks ``task.num_prompts``).

    Returns:
      [...] int32 indices.
    """
    k = bits >> 8
    z = (k >> 12) * jnp.uint32(n) + (((k & 0xFFF) * jnp.uint32(n)) >> 12)
    return (z >> 12).astype(jnp.int32)


def _stable_argsort(keys: jax.Array) -> jax.Array:
    """``np.argsort(keys, kind="stable")`` of a small [n] uint32 vector, without a sort.

    XLA:CPU's sort is slow (~0.1 µs per element, no faster per element under ``vmap``),
    so for n ≤ 256 the stable ascending ranks are computed from an n×n comparison
    (vectorised) and inverted by one scatter; larger n use ``jnp.argsort``.

    Args:
      keys: [n] uint32 sort keys.

    Returns:
      [n] int32 permutation: the indices of ``keys`` in ascending (stable) order.
    """
    chex.assert_rank(keys, 1)
    n = keys.shape[0]
    if n > 256:
        return jnp.argsort(keys, stable=True).astype(jnp.int32)
    i = jnp.arange(n, dtype=jnp.int32)
    before = (keys[None, :] < keys[:, None]) | (
        (keys[None, :] == keys[:, None]) & (i[None, :] < i[:, None])
    )
    rank = jnp.sum(before, axis=1, dtype=jnp.int32)
    return jnp.zeros((n,), jnp.int32).at[rank].set(i, unique_indices=True)


# --------------------------------------------------------------------------------------
# Tasks: a prompt set, a Flax policy, features of responses, the gold reward.


class CandidatePolicy(nn.Module):
    """Softmax policy over the N candidate responses of a prompt, linear in features.

    π(a_j | s) ∝ exp(wᵀφ(s, a_j)); value V(s) = vᵀ mean_j φ(s, a_j) + b.

    Attributes:
      init_scale: standard deviation of the initial w (the reference policy's
        sharpness when the reference is the initialisation).
    """

    init_scale: float = 1.0

    @nn.compact
    def __call__(self, features: jax.Array) -> tuple[jax.Array, jax.Array]:
        """features [N, d] -> (logits [N], value [])."""
        logits = nn.Dense(
            1, use_bias=False, kernel_init=nn.initializers.normal(self.init_scale)
        )(features)[..., 0]
        value = nn.Dense(1, kernel_init=nn.initializers.zeros)(jnp.mean(features, -2))[
            0
        ]
        return logits, value


class CandidateTask:
    """Prompts with N fixed candidate responses each (a contextual bandit).

    Args:
      features: [P, N, d] features φ(s_p, a_j) of every candidate of every prompt.
      gold_theta: [d] gold reward r*(s, a) = θ*ᵀφ(s, a) (used for evaluation only).
      policy: a Flax module mapping [N, d] candidate features to (logits [N], value []).
    """

    def __init__(self, features, gold_theta, policy: nn.Module | None = None):
        features = jnp.asarray(features)
        gold_theta = jnp.asarray(gold_theta)
        if features.ndim != 3:
            raise ValueError(f"features must be [P, N, d], got shape {features.shape}")
        if gold_theta.shape != features.shape[-1:]:
            raise ValueError(
                f"gold_theta must have shape [d] = ({features.shape[-1]},), got {gold_theta.shape}"
            )
        if features.shape[1] < 2:
            raise ValueError(
                f"need N >= 2 candidates per prompt, got {features.shape[1]}"
            )
        if not (
            bool(jnp.all(jnp.isfinite(features)))
            and bool(jnp.all(jnp.isfinite(gold_theta)))
        ):
            raise ValueError("features and gold_theta must be finite")
        self.features = features
        self.gold_theta = gold_theta
        self.policy = CandidatePolicy() if policy is None else policy
        self.num_prompts = features.shape[0]
        self.seq_len = 1

    def init_params(self, key: jax.Array) -> Any:
        return self.policy.init(key, self.features[0])

    def _forward(self, params, prompt_ids):
        """(logits [B, N], value [B]) of the policy at the prompts ``prompt_ids``.

        When the batch covers a good share of the prompt set, the policy is applied to
        EVERY prompt's candidates and the batch's rows are gathered afterwards: the
        candidate features are then shared, not batched, so under a ``vmap`` over
        policies the forward pass is one large matmul (features [P·N, d] against the
        M policies' weights) instead of M small batched ones, and its gradient a
        single [M, P·N]·[P·N, d] contraction. Same values either way.
        """
        if self.num_prompts <= 4 * prompt_ids.shape[0]:
            logits, value = jax.vmap(lambda f: self.policy.apply(params, f))(
                self.features
            )
            return logits[prompt_ids], value[prompt_ids]
        return jax.vmap(lambda p: self.policy.apply(params, self.features[p]))(
            prompt_ids
        )

    def sample(self, key, params, prompt_ids):
        """Draws one candidate per prompt: actions [B, 1] int32."""
        u = jax.random.uniform(key, prompt_ids.shape + (1, 1), self.features.dtype)
        return self.sample_uniform(u, params, prompt_ids)[:, 0]

    def sample_uniform(self, u, params, prompt_ids):
        """G candidates per prompt at the uniforms u [B, G, 1]: actions [B, G, 1] int32."""
        logits, _ = self._forward(params, prompt_ids)
        return _inverse_cdf(u[..., 0], logits)[..., None]

    def evaluate(self, params, prompt_ids, actions):
        """(log π(a|s) [B, G, 1], V(s) [B]) of G responses per prompt, actions [B, G, 1].

        The logits of each prompt are formed once for its G responses.
        """
        logits, value = self._forward(params, prompt_ids)
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits), actions[..., 0], axis=-1)
        return logp[..., None], value

    def response_features(self, prompt_ids, actions):
        """φ(s, a) [B, ..., d] of actions [B, ..., 1] (prompt_ids [B])."""
        p = prompt_ids.reshape(prompt_ids.shape + (1,) * (actions.ndim - 2))
        return self.features[p, actions[..., 0]]

    def action_ids(self, actions):
        """Response codes [...] of actions [..., 1]: the candidate index."""
        return actions[..., 0]

    def all_responses(self):
        """Every response: (prompt_ids [P], actions [P, N, 1]), action codes 0..N−1."""
        actions = jnp.broadcast_to(
            jnp.arange(self.features.shape[1], dtype=jnp.int32)[None, :, None],
            self.features.shape[:2] + (1,),
        )
        return jnp.arange(self.num_prompts, dtype=jnp.int32), actions

    def gold_reward(self, phi):
        return phi @ self.gold_theta

    def expected_gold(self, key, params):
        """Exact E_{s uniform, a ~ π(·|s)}[r*(s, a)] over the whole prompt set."""
        del key
        logits, _ = jax.vmap(lambda f: self.policy.apply(params, f))(self.features)
        probs = jax.nn.softmax(logits)
        return jnp.mean(jnp.sum(probs * (self.features @ self.gold_theta), axis=-1))


class TinyTransformer(nn.Module):
    """A tiny causal transformer policy over short token sequences.

    Input: a prompt token and the response tokens a_1..a_{T−1}; output: next-token
    logits for a_1..a_T and a value V(s) read at the prompt position.

    Attributes:
      num_prompts: size of the prompt vocabulary.
      vocab_size: V, size of the response vocabulary.
      seq_len: T, response length.
      embed_dim, num_heads, num_layers, mlp_dim: model sizes.
    """

    num_prompts: int
    vocab_size: int
    seq_len: int
    embed_dim: int = 32
    num_heads: int = 2
    num_layers: int = 1
    mlp_dim: int = 64

    @nn.compact
    def __call__(self, prompt_id: jax.Array, tokens: jax.Array):
        """prompt_id [], tokens [T] -> (logits [T, V], value [])."""
        chex.assert_rank([prompt_id, tokens], [0, 1])
        d = self.embed_dim
        x = jnp.concatenate(
            [
                nn.Embed(self.num_prompts, d, name="prompt_embed")(prompt_id)[None],
                nn.Embed(self.vocab_size, d, name="token_embed")(tokens[:-1]),
            ]
        )
        x = x + self.param("pos_embed", nn.initializers.normal(0.02), (self.seq_len, d))
        mask = nn.make_causal_mask(jnp.ones(self.seq_len))
        for _ in range(self.num_layers):
            h = nn.LayerNorm()(x)
            x = x + nn.MultiHeadDotProductAttention(
                num_heads=self.num_heads, qkv_features=d
            )(h, h, mask=mask)
            h = nn.LayerNorm()(x)
            x = x + nn.Dense(d)(nn.gelu(nn.Dense(self.mlp_dim)(h)))
        x = nn.LayerNorm()(x)
        logits = nn.Dense(self.vocab_size)(x)
        value = nn.Dense(1, kernel_init=nn.initializers.zeros)(x[0])[0]
        return logits, value


class TokenTask:
    """Prompts answered by short token sequences, rewarded through sequence features.

    φ(s, a) = ((1/T) Σ_t E[a_t]) ⊙ F[s]: the mean of the response tokens' feature
    vectors, modulated element-wise by the prompt's vector, so which tokens are good
    depends on the prompt. Gold reward r*(s, a) = θ*ᵀφ(s, a).

    Args:
      token_features: [V, d] E, one vector per response token.
      prompt_features: [P, d] F, one vector per prompt.
      gold_theta: [d] θ*.
      seq_len: T.
      policy: a Flax module (prompt_id [], tokens [T]) -> (logits [T, V], value []);
        a ``TinyTransformer`` by default.
      num_eval_samples: Monte Carlo responses per prompt in ``expected_gold``.
    """

    def __init__(
        self,
        token_features,
        prompt_features,
        gold_theta,
        seq_len: int,
        policy: nn.Module | None = None,
        num_eval_samples: int = 64,
    ):
        token_features = jnp.asarray(token_features)
        prompt_features = jnp.asarray(prompt_features)
        gold_theta = jnp.asarray(gold_theta)
        if token_features.ndim != 2 or prompt_features.ndim != 2:
            raise ValueError(
                f"token_features [V, d] and prompt_features [P, d] must be 2-D, got "
                f"{token_features.shape} and {prompt_features.shape}"
            )
        d = token_features.shape[1]
        if prompt_features.shape[1] != d or gold_theta.shape != (d,):
            raise ValueError(
                f"prompt_features must be [P, {d}] and gold_theta [{d}], got "
                f"{prompt_features.shape} and {gold_theta.shape}"
            )
        if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
            raise ValueError(f"seq_len must be an int >= 1, got {seq_len!r}")
        vocab, num_prompts = token_features.shape[0], prompt_features.shape[0]
        if vocab < 2:
            raise ValueError(f"need a vocabulary of V >= 2 tokens, got {vocab}")
        if vocab**seq_len >= 2**31:
            raise ValueError(
                f"V**T = {vocab}**{seq_len} responses do not fit an int32 code"
            )
        self.token_features = token_features
        self.prompt_features = prompt_features
        self.gold_theta = gold_theta
        self.seq_len = seq_len
        self.vocab_size = vocab
        self.num_prompts = num_prompts
        self.num_eval_samples = num_eval_samples
        self.policy = (
            TinyTransformer(num_prompts=num_prompts, vocab_size=vocab, seq_len=seq_len)
            if policy is None
            else policy
        )

    def init_params(self, key):
        return self.policy.init(
            key, jnp.int32(0), jnp.zeros((self.seq_len,), jnp.int32)
        )

    def _sample_one(self, u, params, prompt_id):
        """One response: token t is the inverse-CDF draw at uniform u[t]."""

        def body(t, tokens):
            logits, _ = self.policy.apply(params, prompt_id, tokens)
            return tokens.at[t].set(_inverse_cdf(u[t, None], logits[t])[0])

        return jax.lax.fori_loop(
            0, self.seq_len, body, jnp.zeros((self.seq_len,), jnp.int32)
        )

    def sample(self, key, params, prompt_ids):
        """Autoregressive sampling: actions [B, T] int32 (one uniform per token)."""
        u = jax.random.uniform(
            key, (prompt_ids.shape[0], 1, self.seq_len), self.token_features.dtype
        )
        return self.sample_uniform(u, params, prompt_ids)[:, 0]

    def sample_uniform(self, u, params, prompt_ids):
        """G responses per prompt at the uniforms u [B, G, T]: actions [B, G, T] int32."""
        one = jax.vmap(self._sample_one, in_axes=(0, None, None))
        return jax.vmap(one, in_axes=(0, None, 0))(u, params, prompt_ids)

    def evaluate(self, params, prompt_ids, actions):
        """(log π(a_t | s, a_<t) [B, G, T], V(s) [B]) of actions [B, G, T]."""
        apply = jax.vmap(
            lambda p, a: self.policy.apply(params, p, a), in_axes=(None, 0)
        )
        logits, value = jax.vmap(apply)(prompt_ids, actions)
        logp = jnp.take_along_axis(
            jax.nn.log_softmax(logits), actions[..., None], axis=-1
        )
        # V(s) is read at the prompt position, before any response token (causal).
        return logp[..., 0], value[:, 0]

    def response_features(self, prompt_ids, actions):
        """φ(s, a) [B, ..., d] of actions [B, ..., T] (prompt_ids [B])."""
        p = prompt_ids.reshape(prompt_ids.shape + (1,) * (actions.ndim - 2))
        return jnp.mean(self.token_features[actions], axis=-2) * self.prompt_features[p]

    def action_ids(self, actions):
        """Response codes [...] of actions [..., T]: Σ_t a_t V^t."""
        powers = self.vocab_size ** jnp.arange(self.seq_len, dtype=jnp.int32)
        return jnp.sum(actions * powers, axis=-1)

    def gold_reward(self, phi):
        return phi @ self.gold_theta

    def expected_gold(self, key, params):
        """Monte Carlo E_{s uniform, a ~ π(·|s)}[r*(s, a)] (``num_eval_samples`` per prompt)."""
        prompt_ids = jnp.repeat(jnp.arange(self.num_prompts), self.num_eval_samples)
        actions = self.sample(key, params, prompt_ids)
        return jnp.mean(self.gold_reward(self.response_features(prompt_ids, actions)))


# --------------------------------------------------------------------------------------
# The learner: (init, update) over a NamedTuple state, and whole runs.


class TrainState(NamedTuple):
    """State of ONE policy's PPO run.

    Attributes:
      params: policy (and value) parameters.
      opt_state: optax state.
      key: PRNG key for rollouts and minibatches.
      reward_key: PRNG key of this policy's reward-model realisation (fixed).
      variance_aware: [] bool, the KL-weighting switch.
      step: [] int32 updates done.
    """

    params: Any
    opt_state: Any
    key: jax.Array
    reward_key: jax.Array
    variance_aware: jax.Array
    step: jax.Array


class Metrics(NamedTuple):
    """Per-update diagnostics (on the rollout batch).

    Attributes:
      reward: mean noisy reward r̂ seen by the policy.
      gold: mean gold reward of the sampled responses.
      kl: mean unweighted KL_sample at the start of the update.
      weight_max: largest KL weight w in the batch.
      loss: mean loss over the update's minibatch steps.
      clip_frac: mean fraction of clipped ratios.
    """

    reward: jax.Array
    gold: jax.Array
    kl: jax.Array
    weight_max: jax.Array
    loss: jax.Array
    clip_frac: jax.Array


class TrainOutput(NamedTuple):
    """Result of ``train``: final state, per-update metrics [U], gold rewards.

    Attributes:
      state: final ``TrainState``.
      metrics: ``Metrics`` with a leading [num_updates] axis.
      gold_reward: [] expected gold reward of the final policy.
      reference_gold_reward: [] expected gold reward of the reference policy.
    """

    state: TrainState
    metrics: Metrics
    gold_reward: jax.Array
    reference_gold_reward: jax.Array


class PPOLearner(NamedTuple):
    """``init(key, variance_aware) -> TrainState``; ``update(state, reward_params) ->
    (TrainState, Metrics)``; ``evaluate(params) -> []`` expected gold reward;
    ``reference_params``: π_ref (shared by every policy; the starting point)."""

    init: Callable
    update: Callable
    evaluate: Callable
    reference_params: Any


def make_learner(
    config: PPOConfig,
    task,
    reward_fn: Callable[[Any, jax.Array], RewardEstimate],
    *,
    reference_key: jax.Array | None = None,
    reference_params: Any = None,
    eval_key: jax.Array | None = None,
) -> PPOLearner:
    """Builds the PPO learner for one policy on ``task`` (vmap its functions).

    Args:
      config: ``PPOConfig`` (validated here).
      task: ``CandidateTask``, ``TokenTask`` or any object with the same methods.
      reward_fn: ``reward_fn(reward_params, phi [B, d]) -> RewardEstimate([B], [B])``,
        e.g. ``hetrlhf.ensemble.ensemble_reward`` with the heads as ``reward_params``.
        The learner never knows which source produced the estimate. It must act row by
        row (a row's estimate depends on that row only): with a task's
        ``all_responses`` it is evaluated on every response at once and gathered.
      reference_key: key of the reference policy's initialisation (every policy starts
        at π_ref); ``jax.random.key(0)`` when None.
      reference_params: the reference policy's parameters (overrides
        ``reference_key``), e.g. a partly aligned "SFT" policy.
      eval_key: key of the Monte Carlo gold evaluation (shared by all policies so their
        comparison uses common random numbers); ``jax.random.key(1)`` when None.

    Returns:
      A ``PPOLearner``.
    """
    _validate_config(config)
    reference_key = jax.random.key(0) if reference_key is None else reference_key
    eval_key = jax.random.key(1) if eval_key is None else eval_key
    ref_params = (
        task.init_params(reference_key)
        if reference_params is None
        else reference_params
    )
    optimizer = optax.chain(
        optax.clip_by_global_norm(config.max_grad_norm),
        optax.adam(config.learning_rate),
    )
    num_p, g, seq_len = config.num_prompts, config.group_size, task.seq_len
    num_e, num_m = config.num_epochs, config.num_minibatches
    num_steps = num_e * num_m
    # Random words per update: prompts, one uniform per sampled token, epoch shuffles.
    num_words = num_p + num_p * g * seq_len + num_e * num_p
    if not 1 <= task.num_prompts < 2**20:
        raise ValueError(
            f"task.num_prompts must be in [1, 2**20), got {task.num_prompts}"
        )
    dtype = jax.dtypes.canonicalize_dtype(float)  # float64 under jax_enable_x64

    # A task with a small finite response set (``all_responses``) lets the reference
    # log-probabilities and the features of EVERY response be formed once, here, and
    # the reward model be evaluated once per update on all of them: neither depends on
    # the policy, so under a vmap over policies they are shared instead of batched.
    table = None
    if hasattr(task, "all_responses"):
        all_prompts, all_actions = task.all_responses()
        ref_all, _ = task.evaluate(ref_params, all_prompts, all_actions)  # [P, R, T]
        phi_all = task.response_features(all_prompts, all_actions)  # [P, R, d]
        table = {"ref_logp": ref_all, "phi": phi_all}

    def init(key, variance_aware):
        reward_key = jax.random.fold_in(key, 1)
        return TrainState(
            params=ref_params,
            opt_state=optimizer.init(ref_params),
            key=jax.random.fold_in(key, 0),
            reward_key=reward_key,
            variance_aware=jnp.asarray(variance_aware, bool),
            step=jnp.zeros((), jnp.int32),
        )

    def group_loss(logp, mb):
        """``ppo_loss`` of prompt groups: fields [b, G, T] / [b, G] flattened to samples."""
        return ppo_loss(
            logp.reshape(-1, seq_len),
            mb["old_logp"].reshape(-1, seq_len),
            mb["ref_logp"].reshape(-1, seq_len),
            mb["advantages"].reshape(-1),
            mb["weights"].reshape(-1),
            clip_eps=config.clip_eps,
            beta=config.beta,
            kl_estimator=config.kl_estimator,
        )

    def loss_fn(params, mb):
        """Loss on a minibatch of whole prompt groups (fields [b, G, ...])."""
        logp, value = task.evaluate(params, mb["prompt_ids"], mb["actions"])
        loss, aux = group_loss(logp, mb)
        if config.baseline == "value":
            loss = loss + config.value_coef * jnp.mean(
                (value[:, None] - mb["returns"]) ** 2
            )
        return loss, aux

    grad_fn = jax.grad(loss_fn, has_aux=True)

    def rewards(reward_params, reward_key, prompt_ids, codes, phi):
        """The policy's noisy reward model at its [num_prompts, G] sampled responses
        (``codes``: their ``task.action_ids``)."""
        if table is None:
            est = reward_fn(reward_params, phi.reshape(-1, phi.shape[-1]))
        else:
            phi_all = table["phi"]  # [P, R, d]
            est_all = reward_fn(reward_params, phi_all.reshape(-1, phi_all.shape[-1]))
            chex.assert_shape([est_all.mean, est_all.var], (phi_all[..., 0].size,))
            est = jax.tree.map(
                lambda x: x.reshape(phi_all.shape[:2])[
                    prompt_ids[:, None], codes
                ].reshape(-1),
                est_all,
            )
        chex.assert_shape([est.mean, est.var], (num_p * g,))
        est = noisy_reward(
            reward_key,
            est,
            phi.reshape(-1, phi.shape[-1]),
            jnp.repeat(prompt_ids, g),
            codes.reshape(-1),
            noise=config.reward_noise,
            correlation=config.noise_correlation,
        )
        return jax.tree.map(lambda x: x.reshape(num_p, g), est)

    def update(state, reward_params):
        key, sub = jax.random.split(state.key)
        bits = jax.random.bits(sub, (num_words,), jnp.uint32)
        prompt_bits, sample_bits, shuffle_bits = jnp.split(
            bits, [num_p, num_p + num_p * g * seq_len]
        )
        prompt_ids = _uniform_index(prompt_bits, task.num_prompts)
        u = _unit_uniform(sample_bits, dtype).reshape(num_p, g, seq_len)
        actions = task.sample_uniform(u, state.params, prompt_ids)
        codes = task.action_ids(actions)  # [num_p, G]
        old_logp, old_value = task.evaluate(state.params, prompt_ids, actions)
        if table is None:
            ref_logp, _ = task.evaluate(ref_params, prompt_ids, actions)
        else:
            ref_logp = table["ref_logp"][prompt_ids[:, None], codes]
        phi = task.response_features(prompt_ids, actions)  # [num_p, G, d]
        est = rewards(reward_params, state.reward_key, prompt_ids, codes, phi)
        if config.baseline == "group":
            advantages = group_advantages(est.mean.reshape(-1), g).reshape(num_p, g)
        else:
            advantages = est.mean - old_value[:, None]
        if config.normalize_advantages:
            advantages = advantages / (jnp.std(advantages) + 1e-8)
        weights = kl_weights(est.var.reshape(-1), state.variance_aware).reshape(
            num_p, g
        )
        batch = {
            "prompt_ids": prompt_ids,
            "actions": actions,
            "old_logp": old_logp,
            "ref_logp": ref_logp,
            "advantages": advantages,
            "weights": weights,
            "returns": est.mean,
        }
        # The KL at the start of the update (π_θ = π_old there: no forward pass).
        _, start_aux = group_loss(old_logp, batch)

        # Minibatches are random sets of whole prompt groups: each epoch shuffles the
        # num_p groups (a stable argsort of fresh random words) and cuts them into
        # num_minibatches; all epochs' minibatches are gathered up front.
        order = jax.vmap(_stable_argsort)(shuffle_bits.reshape(num_e, num_p))
        mbs = jax.tree.map(lambda x: x[order.reshape(num_steps, num_p // num_m)], batch)

        def minibatch(k, carry):
            params, opt_state, loss_sum, clip_sum = carry
            grads, aux = grad_fn(params, jax.tree.map(lambda x: x[k], mbs))
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (
                optax.apply_updates(params, updates),
                opt_state,
                loss_sum + aux["pg_loss"] + config.beta * aux["kl_penalty"],
                clip_sum + aux["clip_frac"],
            )

        zero = jnp.zeros((), old_logp.dtype)
        params, opt_state, loss_sum, clip_sum = jax.lax.fori_loop(
            0,
            num_steps,
            minibatch,
            (state.params, state.opt_state, zero, zero),
            unroll=min(num_steps, 16),
        )
        metrics = Metrics(
            reward=jnp.mean(est.mean),
            gold=jnp.mean(task.gold_reward(phi)),
            kl=start_aux["kl"],
            weight_max=jnp.max(weights),
            loss=loss_sum / num_steps,
            clip_frac=clip_sum / num_steps,
        )
        new_state = state._replace(
            params=params, opt_state=opt_state, key=key, step=state.step + 1
        )
        return new_state, metrics

    def evaluate(params):
        return task.expected_gold(eval_key, params)

    return PPOLearner(
        init=init, update=update, evaluate=evaluate, reference_params=ref_params
    )


def run_updates(
    learner: PPOLearner, state: TrainState, reward_params: Any, num_updates: int
) -> tuple[TrainState, Metrics]:
    """``num_updates`` PPO updates of one policy (``lax.scan``); a segment of a run."""
    return jax.lax.scan(
        lambda s, _: learner.update(s, reward_params), state, None, length=num_updates
    )


def make_train(
    config: PPOConfig,
    task,
    reward_fn: Callable[[Any, jax.Array], RewardEstimate],
    *,
    reference_key: jax.Array | None = None,
    reference_params: Any = None,
    eval_key: jax.Array | None = None,
) -> Callable[[jax.Array, jax.Array, Any], TrainOutput]:
    """A whole PPO run for one policy: ``train(key, variance_aware, reward_params)``.

    purejaxrl style: the returned function is pure, so
    ``jax.jit(jax.vmap(train, in_axes=(0, 0, None)))(keys, flags, reward_params)``
    trains many policies (vanilla and variance-aware side by side) in one program.

    Args: as ``make_learner``.

    Returns:
      ``train(key, variance_aware [] bool, reward_params) -> TrainOutput``.
    """
    learner = make_learner(
        config,
        task,
        reward_fn,
        reference_key=reference_key,
        reference_params=reference_params,
        eval_key=eval_key,
    )

    def train(key, variance_aware, reward_params):
        state = learner.init(key, variance_aware)
        state, metrics = run_updates(learner, state, reward_params, config.num_updates)
        return TrainOutput(
            state=state,
            metrics=metrics,
            gold_reward=learner.evaluate(state.params),
            reference_gold_reward=learner.evaluate(learner.reference_params),
        )

    return train
