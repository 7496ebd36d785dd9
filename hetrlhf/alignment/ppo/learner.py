"""The PPO learner: (init, update) over a NamedTuple state, and whole runs (make_train)."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from hetrlhf.alignment.ppo.loss import (
    KL_ESTIMATORS,
    PENALTIES,
    adaptive_beta,
    group_advantages,
    kl_in_reward,
    kl_weights,
    ppo_loss,
)
from hetrlhf.alignment.ppo.rewards import NOISES, observe
from hetrlhf.alignment.ppo.sampling import stable_argsort, uniform_index, unit_uniform
from hetrlhf.alignment.ppo.tasks import Task
from hetrlhf.types import RewardEstimate

__all__ = [
    "KL_CONTROLS",
    "Metrics",
    "PPOConfig",
    "PPOLearner",
    "PolicyEval",
    "TrainOutput",
    "TrainState",
    "evaluation_key",
    "make_learner",
    "make_train",
    "run_updates",
]

_BASELINES = ("group", "value")
KL_CONTROLS = ("fixed", "adaptive")


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
      beta: β, the KL coefficient when ``train`` is given none (the initial β of the
        adaptive controller).
      penalty: the form of the variance-aware KL penalty, one of ``loss.PENALTIES``:
        "kl_reward" (σ²-weighted k1 KL inside the reward, raw σ²; TRL's "kl"),
        "mean_one" (weights σ²/mean σ² on the KL estimator in the loss) or
        "lambda_min" (weights σ²/min σ² in the loss).
      kl_estimator: KL estimator in the loss ("mean_one", "lambda_min"): "k3"
        (≥ 0 per sample) or "k1".
      kl_control: "fixed" β or "adaptive" (Ziegler et al. as in TRL,
        ``loss.adaptive_beta``, one controller per policy).
      kl_target: target KL of the adaptive controller.
      kl_horizon: horizon of the adaptive controller (TRL passes the batch size
        num_prompts·G as its n; 0.2·n/horizon must be < 1 so that β keeps its sign).
      baseline: "group" (mean reward of the prompt's G responses) or "value".
      value_coef: c_v, weight of the value loss (value baseline only).
      normalize_advantages: divide advantages by their batch standard deviation.
      reward_noise: how a query observes the reward source, one of
        ``rewards.NOISES``: "none", "per_query", "per_policy_gaussian",
        "per_policy_uniform".
      noise_correlation: share of a per-policy realisation's noise variance that is
        smooth in the features (``rewards.per_policy_noise``).
      num_eval_responses: sampled responses per prompt in the evaluation (paper B: one
        per prompt, gold-scored and averaged over the prompts).
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
    penalty: str = "mean_one"
    kl_estimator: str = "k3"
    kl_control: str = "fixed"
    kl_target: float = 6.0
    kl_horizon: float = 10000.0
    baseline: str = "group"
    value_coef: float = 0.5
    normalize_advantages: bool = False
    reward_noise: str = "none"
    noise_correlation: float = 1.0
    num_eval_responses: int = 1


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"config.{name} must be one of {choices}, got {value!r}")


def _validate_config(config: PPOConfig) -> None:
    if not isinstance(config, PPOConfig):
        raise TypeError(f"config must be a PPOConfig, got {type(config).__name__}")
    for name in (
        "num_updates",
        "num_prompts",
        "group_size",
        "num_epochs",
        "num_minibatches",
        "num_eval_responses",
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
        ("kl_target", True),
        ("kl_horizon", True),
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
    _check_choice("penalty", config.penalty, PENALTIES)
    _check_choice("kl_estimator", config.kl_estimator, KL_ESTIMATORS)
    _check_choice("kl_control", config.kl_control, KL_CONTROLS)
    _check_choice("baseline", config.baseline, _BASELINES)
    _check_choice("reward_noise", config.reward_noise, NOISES)
    c = config.noise_correlation
    if not isinstance(c, (int, float, np.floating, np.integer)) or not 0.0 <= c <= 1.0:
        raise ValueError(f"config.noise_correlation must be in [0, 1], got {c!r}")
    if config.baseline == "group" and config.group_size < 2:
        raise ValueError("config.group_size must be >= 2 with the group baseline")
    n = config.num_prompts * config.group_size
    if config.kl_control == "adaptive" and 0.2 * n / config.kl_horizon >= 1.0:
        raise ValueError(
            f"config.kl_horizon={config.kl_horizon} is too short for a batch of {n}: "
            "the adaptive multiplier 1 + e·n/horizon (e ≥ −0.2) could be <= 0"
        )


class TrainState(NamedTuple):
    """State of ONE policy's PPO run.

    Attributes:
      params: policy (and value) parameters.
      opt_state: optax state.
      key: PRNG key for rollouts, minibatches and per-query reward draws.
      reward_key: PRNG key of this policy's fixed reward realisation ("per_policy_*").
      variance_aware: [] bool, the KL-weighting switch.
      beta: [] the current KL coefficient β (fixed, or the adaptive controller's).
      step: [] int32 updates done.
    """

    params: Any
    opt_state: Any
    key: jax.Array
    reward_key: jax.Array
    variance_aware: jax.Array
    beta: jax.Array
    step: jax.Array


class Metrics(NamedTuple):
    """Per-update diagnostics (on the rollout batch).

    Attributes:
      reward: mean observed reward r̂.
      gold: mean gold reward of the sampled responses.
      kl: the rollout's mean sequence KL estimate Σ_t log(π_old/π_ref)_t (TRL's
        "objective/kl"; the adaptive controller's input).
      beta: β used in this update.
      weight_max: largest KL weight w in the batch.
      loss: mean loss over the update's minibatch steps.
      clip_frac: mean fraction of clipped ratios.
    """

    reward: jax.Array
    gold: jax.Array
    kl: jax.Array
    beta: jax.Array
    weight_max: jax.Array
    loss: jax.Array
    clip_frac: jax.Array


class PolicyEval(NamedTuple):
    """Evaluation of one policy.

    Attributes:
      gold: [] the mean over the prompt set of the gold reward of
        ``num_eval_responses`` sampled responses per prompt (paper B's evaluation with
        one response per prompt).
      expected_gold: [] E_{s, a ~ π}[r*(s, a)] (exact for ``CandidateTask``, Monte
        Carlo for ``TokenTask``).
      kl: [] E_s KL(π(·|s) ‖ π_ref(·|s)) (``Task.policy_kl``).
    """

    gold: jax.Array
    expected_gold: jax.Array
    kl: jax.Array


class TrainOutput(NamedTuple):
    """Result of ``train``: final state, per-update metrics [U], evaluation.

    Attributes:
      state: final ``TrainState``.
      metrics: ``Metrics`` with a leading [num_updates] axis.
      evaluation: ``PolicyEval`` of the final policy (at a key of its own).
    """

    state: TrainState
    metrics: Metrics
    evaluation: PolicyEval


class PPOLearner(NamedTuple):
    """``init(key, variance_aware, beta) -> TrainState``; ``update(state,
    reward_params) -> (TrainState, Metrics)``; ``evaluate(key, params) -> PolicyEval``;
    ``rollout(state, reward_params) -> dict``: the sampled and scored batch the next
    ``update`` would train on (for diagnostics and tests: "prompt_ids" [num_p],
    "codes" [num_p, G], "observed" r̂ [num_p, G], "var" σ² [num_p, G], "weights",
    "advantages", ...); ``reference_params``: π_ref (shared by every policy; the
    starting point)."""

    init: Callable
    update: Callable
    evaluate: Callable
    rollout: Callable
    reference_params: Any


def _response_table(task: Task, ref_params) -> dict | None:
    """Reference log-probabilities [P, R, T] and features [P, R, d] of EVERY response
    when the task has a small finite response set (``all_responses()``), else None.

    Neither depends on the policy, so under a vmap over policies they are formed once
    and shared instead of batched, and the reward model is evaluated once per update on
    all of them.
    """
    responses = task.all_responses()
    if responses is None:
        return None
    all_prompts, all_actions = responses
    ref_all, _ = task.evaluate(ref_params, all_prompts, all_actions)
    return {
        "ref_logp": ref_all,
        "phi": task.response_features(all_prompts, all_actions),
    }


def _source_estimate(reward_fn, reward_params, table, prompt_ids, codes, phi):
    """The reward source's RewardEstimate at the [num_p, G] sampled responses, flat
    [num_p·G] (from the all-responses table when there is one)."""
    if table is None:
        return reward_fn(reward_params, phi.reshape(-1, phi.shape[-1]))
    phi_all = table["phi"]  # [P, R, d]
    est_all = reward_fn(reward_params, phi_all.reshape(-1, phi_all.shape[-1]))
    chex.assert_shape([est_all.mean, est_all.var], (phi_all[..., 0].size,))
    return jax.tree.map(
        lambda x: x.reshape(phi_all.shape[:2])[prompt_ids[:, None], codes].reshape(-1),
        est_all,
    )


class _Plan(NamedTuple):
    """What ``make_learner`` fixes once for all of a learner's functions (static)."""

    config: PPOConfig
    task: Task
    reward_fn: Callable
    ref_params: Any
    optimizer: Any
    table: dict | None  # ``_response_table`` (None: no finite response set)
    splits: list  # cut points of an update's random words
    num_words: int
    dtype: Any

    @property
    def num_steps(self) -> int:
        """Minibatch steps per update."""
        return self.config.num_epochs * self.config.num_minibatches

    @property
    def per_query(self) -> bool:
        return self.config.reward_noise == "per_query"

    @property
    def kl_reward(self) -> bool:
        return self.config.penalty == "kl_reward"


def _plan(config: PPOConfig, task: Task, reward_fn, ref_params) -> _Plan:
    num_p, g = config.num_prompts, config.group_size
    # Random words per update: prompts, one uniform per sampled token, epoch shuffles,
    # and (per-query rewards) one uniform per sampled response.
    splits = np.cumsum([num_p, num_p * g * task.seq_len, config.num_epochs * num_p])
    splits = splits.tolist()
    per_query = config.reward_noise == "per_query"
    return _Plan(
        config=config,
        task=task,
        reward_fn=reward_fn,
        ref_params=ref_params,
        optimizer=optax.chain(
            optax.clip_by_global_norm(config.max_grad_norm),
            optax.adam(config.learning_rate),
        ),
        table=_response_table(task, ref_params),
        splits=splits,
        num_words=splits[-1] + (num_p * g if per_query else 0),
        dtype=jax.dtypes.canonicalize_dtype(float),  # float64 under jax_enable_x64
    )


def _init(plan: _Plan, key, variance_aware, beta=None) -> TrainState:
    beta = plan.config.beta if beta is None else beta
    return TrainState(
        params=plan.ref_params,
        opt_state=plan.optimizer.init(plan.ref_params),
        key=jax.random.fold_in(key, 0),
        reward_key=jax.random.fold_in(key, 1),
        variance_aware=jnp.asarray(variance_aware, bool),
        beta=jnp.asarray(beta, plan.dtype),
        step=jnp.zeros((), jnp.int32),
    )


def _loss(plan: _Plan, params, mb, beta):
    """Loss on a minibatch of whole prompt groups (fields [b, G, ...]): ``ppo_loss``
    of the groups' samples flattened, plus the value loss with a value baseline."""
    config, seq_len = plan.config, plan.task.seq_len
    logp, value = plan.task.evaluate(params, mb["prompt_ids"], mb["actions"])
    loss, aux = ppo_loss(
        logp.reshape(-1, seq_len),
        mb["old_logp"].reshape(-1, seq_len),
        mb["ref_logp"].reshape(-1, seq_len),
        mb["advantages"].reshape(-1),
        mb["weights"].reshape(-1),
        clip_eps=config.clip_eps,
        beta=0.0 if plan.kl_reward else beta,  # "kl_reward": the KL is in the reward
        kl_estimator=config.kl_estimator,
    )
    if config.baseline == "value":
        loss = loss + config.value_coef * jnp.mean(
            (value[:, None] - mb["returns"]) ** 2
        )
    return loss, aux


def _draw(plan: _Plan, state: TrainState):
    """The update's random words (prompts, tokens, shuffles, per-query rewards)."""
    key, sub = jax.random.split(state.key)
    words = jax.random.bits(sub, (plan.num_words,), jnp.uint32)
    return key, jnp.split(words, plan.splits)


def _sample(plan: _Plan, state: TrainState, reward_params, words):
    """Samples the [num_p, G] responses; their log-probabilities, features and the
    reward source's (observed) ``RewardEstimate`` [num_p·G]."""
    config, task, table = plan.config, plan.task, plan.table
    num_p, g = config.num_prompts, config.group_size
    prompt_ids = uniform_index(words[0], task.num_prompts)
    u = unit_uniform(words[1], plan.dtype).reshape(num_p, g, task.seq_len)
    actions = task.sample_uniform(u, state.params, prompt_ids)
    codes = task.action_ids(actions)  # [num_p, G]
    old_logp, old_value = task.evaluate(state.params, prompt_ids, actions)
    if table is None:
        ref_logp, _ = task.evaluate(plan.ref_params, prompt_ids, actions)
    else:
        ref_logp = table["ref_logp"][prompt_ids[:, None], codes]
    phi = task.response_features(prompt_ids, actions)  # [num_p, G, d]
    est = _source_estimate(plan.reward_fn, reward_params, table, prompt_ids, codes, phi)
    chex.assert_shape([est.mean, est.var], (num_p * g,))
    est = observe(
        est,
        config.reward_noise,
        u=unit_uniform(words[3], plan.dtype) if plan.per_query else None,
        policy_key=state.reward_key,
        phi=phi.reshape(-1, phi.shape[-1]),
        prompt_ids=jnp.repeat(prompt_ids, g),
        action_ids=codes.reshape(-1),
        correlation=config.noise_correlation,
    )
    sample = {
        "prompt_ids": prompt_ids,
        "actions": actions,
        "codes": codes,
        "old_logp": old_logp,
        "old_value": old_value,
        "ref_logp": ref_logp,
        "phi": phi,
    }
    return sample, est


def _score(plan: _Plan, state: TrainState, reward_params, words):
    """Samples the batch and scores it: the batch dict ([num_p, G, ...] fields) and
    the diagnostics (codes, observed rewards, variances, gold rewards)."""
    config, seq_len = plan.config, plan.task.seq_len
    num_p, g = config.num_prompts, config.group_size
    s, est = _sample(plan, state, reward_params, words)
    weights = kl_weights(est.var, state.variance_aware, config.penalty)
    returns = est.mean
    if plan.kl_reward:
        returns = kl_in_reward(
            returns,
            weights,
            s["old_logp"].reshape(-1, seq_len),
            s["ref_logp"].reshape(-1, seq_len),
            state.beta,
        )
    returns = returns.reshape(num_p, g)
    if config.baseline == "group":
        advantages = group_advantages(returns.reshape(-1), g).reshape(num_p, g)
    else:
        advantages = returns - s["old_value"][:, None]
    if config.normalize_advantages:
        advantages = advantages / (jnp.std(advantages) + 1e-8)
    batch = {
        "prompt_ids": s["prompt_ids"],
        "actions": s["actions"],
        "old_logp": s["old_logp"],
        "ref_logp": s["ref_logp"],
        "advantages": advantages,
        "weights": weights.reshape(num_p, g),
        "returns": returns,
    }
    extra = {
        "codes": s["codes"],
        "observed": est.mean.reshape(num_p, g),
        "var": est.var.reshape(num_p, g),
        "gold": plan.task.gold_reward(s["phi"]),
    }
    return batch, extra


def _rollout(plan: _Plan, state: TrainState, reward_params) -> dict:
    _, words = _draw(plan, state)
    batch, extra = _score(plan, state, reward_params, words)
    return {**batch, **extra}


def _minibatch_steps(plan: _Plan, state: TrainState, batch, shuffle_words):
    """The update's optimiser steps: (params, opt_state, loss sum, clip-fraction sum).

    Minibatches are random sets of whole prompt groups: each epoch shuffles the num_p
    groups (a stable argsort of fresh random words) and cuts them into
    num_minibatches; all epochs' minibatches are gathered up front.
    """
    config, num_steps = plan.config, plan.num_steps
    num_p, num_m = config.num_prompts, config.num_minibatches
    order = jax.vmap(stable_argsort)(shuffle_words.reshape(config.num_epochs, num_p))
    mbs = jax.tree.map(lambda x: x[order.reshape(num_steps, num_p // num_m)], batch)
    grad_fn = jax.grad(functools.partial(_loss, plan), has_aux=True)

    def minibatch(k, carry):
        params, opt_state, loss_sum, clip_sum = carry
        grads, aux = grad_fn(params, jax.tree.map(lambda x: x[k], mbs), state.beta)
        updates, opt_state = plan.optimizer.update(grads, opt_state, params)
        kl_term = (0.0 if plan.kl_reward else state.beta) * aux["kl_penalty"]
        return (
            optax.apply_updates(params, updates),
            opt_state,
            loss_sum + aux["pg_loss"] + kl_term,
            clip_sum + aux["clip_frac"],
        )

    zero = jnp.zeros((), batch["old_logp"].dtype)
    return jax.lax.fori_loop(
        0,
        num_steps,
        minibatch,
        (state.params, state.opt_state, zero, zero),
        unroll=min(num_steps, 16) if plan.task.seq_len == 1 else 1,
    )


def _update(plan: _Plan, state: TrainState, reward_params):
    config = plan.config
    key, words = _draw(plan, state)
    batch, extra = _score(plan, state, reward_params, words)
    params, opt_state, loss_sum, clip_sum = _minibatch_steps(
        plan, state, batch, words[2]
    )
    # TRL's "objective/kl": the rollout's mean of Σ_t log(π_old/π_ref)_t.
    kl = jnp.mean(jnp.sum(batch["old_logp"] - batch["ref_logp"], axis=-1))
    beta = state.beta
    if config.kl_control == "adaptive":
        beta = adaptive_beta(
            beta,
            kl,
            target=config.kl_target,
            horizon=config.kl_horizon,
            num_steps=config.num_prompts * config.group_size,
        )
    metrics = Metrics(
        reward=jnp.mean(extra["observed"]),
        gold=jnp.mean(extra["gold"]),
        kl=kl,
        beta=state.beta,
        weight_max=jnp.max(batch["weights"]),
        loss=loss_sum / plan.num_steps,
        clip_frac=clip_sum / plan.num_steps,
    )
    new_state = state._replace(
        params=params, opt_state=opt_state, key=key, beta=beta, step=state.step + 1
    )
    return new_state, metrics


def _evaluate(plan: _Plan, key, params) -> PolicyEval:
    task = plan.task
    k_sample, k_gold, k_kl = jax.random.split(key, 3)
    prompt_ids = jnp.repeat(
        jnp.arange(task.num_prompts, dtype=jnp.int32), plan.config.num_eval_responses
    )
    actions = task.sample(k_sample, params, prompt_ids)
    phi = task.response_features(prompt_ids, actions)
    return PolicyEval(
        gold=jnp.mean(task.gold_reward(phi)),
        expected_gold=task.expected_gold(k_gold, params),
        kl=task.policy_kl(k_kl, params, plan.ref_params),
    )


def make_learner(
    config: PPOConfig,
    task: Task,
    reward_fn: Callable[[Any, jax.Array], RewardEstimate],
    *,
    reference_key: jax.Array | None = None,
    reference_params: Any = None,
) -> PPOLearner:
    """Builds the PPO learner for one policy on ``task`` (vmap its functions).

    Args:
      config: ``PPOConfig`` (validated here).
      task: a ``Task`` (``CandidateTask``, ``TokenTask`` or any object with the
        protocol's attributes and methods).
      reward_fn: ``reward_fn(reward_params, phi [B, d]) -> RewardEstimate([B], [B])``,
        e.g. ``hetrlhf.alignment.ensemble.ensemble_reward`` with the heads as ``reward_params``
        or ``rewards.judge_intervals``; ``config.reward_noise`` says how a query
        observes it. It must act row by row (a row's estimate depends on that row
        only): when the task's ``all_responses()`` is not None it is evaluated on
        every response at once and gathered.
      reference_key: key of the reference policy's initialisation (every policy starts
        at π_ref); ``jax.random.key(0)`` when None.
      reference_params: the reference policy's parameters (overrides
        ``reference_key``), e.g. a partly aligned "SFT" policy.

    Returns:
      A ``PPOLearner``: ``init(key, variance_aware, beta=config.beta)``, ``update``,
      ``evaluate``, ``rollout`` (module functions of one ``_Plan``).
    """
    _validate_config(config)
    if not isinstance(task, Task):
        raise TypeError(
            f"task must satisfy hetrlhf.alignment.ppo.Task, got {type(task).__name__}"
        )
    if not 1 <= task.num_prompts < 2**20:
        raise ValueError(
            f"task.num_prompts must be in [1, 2**20), got {task.num_prompts}"
        )
    reference_key = jax.random.key(0) if reference_key is None else reference_key
    ref_params = (
        task.init_params(reference_key)
        if reference_params is None
        else reference_params
    )
    plan = _plan(config, task, reward_fn, ref_params)
    return PPOLearner(
        init=functools.partial(_init, plan),
        update=functools.partial(_update, plan),
        evaluate=functools.partial(_evaluate, plan),
        rollout=functools.partial(_rollout, plan),
        reference_params=ref_params,
    )


def run_updates(
    learner: PPOLearner, state: TrainState, reward_params: Any, num_updates: int
) -> tuple[TrainState, Metrics]:
    """``num_updates`` PPO updates of one policy (``lax.scan``); a segment of a run."""
    return jax.lax.scan(
        lambda s, _: learner.update(s, reward_params), state, None, length=num_updates
    )


def evaluation_key(key: jax.Array) -> jax.Array:
    """The key of a policy's final evaluation, derived from its run key (so that the
    evaluation, like the run, is a function of that key alone)."""
    return jax.random.fold_in(key, 2)


def make_train(
    config: PPOConfig,
    task: Task,
    reward_fn: Callable[[Any, jax.Array], RewardEstimate],
    *,
    reference_key: jax.Array | None = None,
    reference_params: Any = None,
) -> Callable[..., TrainOutput]:
    """A whole PPO run for one policy: ``train(key, variance_aware, reward_params,
    beta=config.beta)``.

    purejaxrl style: the returned function is pure, so
    ``jax.jit(jax.vmap(train, in_axes=(0, 0, None, 0)))(keys, flags, reward_params,
    betas)`` trains many policies (vanilla and variance-aware side by side, each with
    its own β) in one program. A policy's result is a function of its own key.

    Args: as ``make_learner``.

    Returns:
      ``train(key, variance_aware [] bool, reward_params, beta []) -> TrainOutput``.
    """
    learner = make_learner(
        config,
        task,
        reward_fn,
        reference_key=reference_key,
        reference_params=reference_params,
    )

    def train(key, variance_aware, reward_params, beta=config.beta):
        state = learner.init(key, variance_aware, beta)
        state, metrics = run_updates(learner, state, reward_params, config.num_updates)
        return TrainOutput(
            state=state,
            metrics=metrics,
            evaluation=learner.evaluate(evaluation_key(key), state.params),
        )

    return train
