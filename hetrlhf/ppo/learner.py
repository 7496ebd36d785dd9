"""The PPO learner: (init, update) over a NamedTuple state, and whole runs (make_train)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from hetrlhf.ppo.loss import KL_ESTIMATORS, group_advantages, kl_weights, ppo_loss
from hetrlhf.ppo.rewards import NOISES, noisy_reward
from hetrlhf.ppo.sampling import stable_argsort, uniform_index, unit_uniform
from hetrlhf.ppo.tasks import Task
from hetrlhf.types import RewardEstimate

__all__ = [
    "Metrics",
    "PPOConfig",
    "PPOLearner",
    "TrainOutput",
    "TrainState",
    "make_learner",
    "make_train",
    "run_updates",
]

_BASELINES = ("group", "value")


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
    if config.kl_estimator not in KL_ESTIMATORS:
        raise ValueError(
            f"config.kl_estimator must be one of {KL_ESTIMATORS}, got {config.kl_estimator!r}"
        )
    if config.baseline not in _BASELINES:
        raise ValueError(
            f"config.baseline must be one of {_BASELINES}, got {config.baseline!r}"
        )
    if config.reward_noise not in NOISES:
        raise ValueError(
            f"config.reward_noise must be one of {NOISES}, got {config.reward_noise!r}"
        )
    c = config.noise_correlation
    if not isinstance(c, (int, float, np.floating, np.integer)) or not 0.0 <= c <= 1.0:
        raise ValueError(f"config.noise_correlation must be in [0, 1], got {c!r}")
    if config.baseline == "group" and config.group_size < 2:
        raise ValueError("config.group_size must be >= 2 with the group baseline")


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
    task: Task,
    reward_fn: Callable[[Any, jax.Array], RewardEstimate],
    *,
    reference_key: jax.Array | None = None,
    reference_params: Any = None,
    eval_key: jax.Array | None = None,
) -> PPOLearner:
    """Builds the PPO learner for one policy on ``task`` (vmap its functions).

    Args:
      config: ``PPOConfig`` (validated here).
      task: a ``Task`` (``CandidateTask``, ``TokenTask`` or any object with the
        protocol's attributes and methods).
      reward_fn: ``reward_fn(reward_params, phi [B, d]) -> RewardEstimate([B], [B])``,
        e.g. ``hetrlhf.ensemble.ensemble_reward`` with the heads as ``reward_params``.
        The learner never knows which source produced the estimate. It must act row by
        row (a row's estimate depends on that row only): when the task's
        ``all_responses()`` is not None it is evaluated on every response at once and
        gathered.
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
    if not isinstance(task, Task):
        raise TypeError(
            f"task must satisfy hetrlhf.ppo.Task, got {type(task).__name__}"
        )
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

    # A task with a small finite response set (``all_responses()``) lets the reference
    # log-probabilities and the features of EVERY response be formed once, here, and
    # the reward model be evaluated once per update on all of them: neither depends on
    # the policy, so under a vmap over policies they are shared instead of batched.
    table = None
    responses = task.all_responses()
    if responses is not None:
        all_prompts, all_actions = responses
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
        prompt_ids = uniform_index(prompt_bits, task.num_prompts)
        u = unit_uniform(sample_bits, dtype).reshape(num_p, g, seq_len)
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
        order = jax.vmap(stable_argsort)(shuffle_bits.reshape(num_e, num_p))
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
    task: Task,
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
