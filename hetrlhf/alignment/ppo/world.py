"""The simulated world of the PPO study (ours): a task, its reference policy, three
reward sources.

* **Task.** ``TokenTask`` (default; a tiny causal transformer generating T tokens from
  a vocabulary of V, sampled at temperature τ) or ``CandidateTask`` (softmax over N
  candidates). Features φ(s, a) ∈ ℝ^d, gold reward r*(s, a) = θ*ᵀφ(s, a). The
  reference policy is the transformer's random initialisation, or for candidates a
  partly aligned linear policy.
* **ensemble** (paper B's GPT-2 protocol, DESIGN.md §B3a): K linear heads trained on the
  SAME comparisons (no bootstrap) from independent N(0, s²I) initialisations for a
  fixed budget; reward = head mean, σ² = head variance; deterministic and shared by
  every policy. The comparisons are between uniformly random responses to random
  prompts, with labels from the gold Bradley–Terry model; per-feature ``data_scales``
  shrink the feature directions the preference data barely contrasts. Trained by plain
  gradient descent ("sgd"), a weakly contrasted direction stays near each head's own
  initialisation, so the heads disagree exactly where the data says little — and the
  ensemble mean is wrong there (the variance is informative). Adam rescales the
  gradients and brings every head to the same maximum-likelihood estimate.
* **prompted** (paper B's prompted protocol, §B3b): a simulated judge returns
  [r* − h, r* + h] with a width h(φ) that varies across responses
  (``rewards.judge_intervals``); every query draws a fresh r ~ U[r* − h, r* + h];
  σ² = (2h)²/12; the true reward is the midpoint r*.
* **per_policy_noise** (ours): the ensemble's (or the judge's) mean and σ² with ONE
  fixed realisation of N(0, σ²) noise per policy (``rewards.per_policy_noise``), the
  noise model of the theory; the design this study used before it had the paper's two
  protocols.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from hetrlhf.alignment import ensemble
from hetrlhf.alignment.ppo.rewards import judge_intervals
from hetrlhf.alignment.ppo.tasks import CandidateTask, Task, TinyTransformer, TokenTask
from hetrlhf.types import Comparisons, RewardEstimate

__all__ = [
    "SOURCES",
    "RewardSource",
    "World",
    "build_world",
    "comparison_data",
    "ensemble_source",
    "make_task",
    "per_policy_noise_source",
    "prompted_source",
]

SOURCES = ("ensemble", "prompted", "per_policy_noise")


class RewardSource(NamedTuple):
    """A reward source: ``fn(params, phi [B, d]) -> RewardEstimate`` and how a PPO query
    observes it (``noise``: a ``rewards.NOISES`` value, ``PPOConfig.reward_noise``)."""

    name: str
    fn: Callable[[Any, jax.Array], RewardEstimate]
    params: Any
    noise: str


class World(NamedTuple):
    """Task, reference policy, reward sources, and reference-policy response features
    ``phi_ref`` [n, d] (for the σ² summaries and the Table-4 tempering)."""

    task: Task
    reference_params: Any
    sources: dict
    phi_ref: jax.Array


def make_task(key: jax.Array, config) -> tuple[Task, Any]:
    """The task and its reference parameters from the study config (``config.policy``,
    ``num_prompts``, ``gold_theta``, ``temperature``, ``transformer.*``,
    ``num_candidates``, ``reference_alignment``, ``reference_noise``)."""
    dtype = jnp.zeros(()).dtype
    theta = jnp.asarray(config.gold_theta, dtype)
    d = theta.shape[0]
    k_task, k_ref = jax.random.split(key)
    if config.policy == "candidates":
        features = jax.random.normal(
            k_task, (config.num_prompts, config.num_candidates, d), dtype
        )
        task = CandidateTask(features, theta, temperature=config.temperature)
        params = task.init_params(k_ref)
        w = config.reference_alignment * theta / jnp.linalg.norm(theta)
        w = w + config.reference_noise * jax.random.normal(k_ref, (d,), dtype)
        kernel = params["params"]["Dense_0"]["kernel"]
        params["params"]["Dense_0"]["kernel"] = w[:, None].astype(kernel.dtype)
        return task, params
    if config.policy == "transformer":
        t = config.transformer
        k_tok, k_prm = jax.random.split(k_task)
        task = TokenTask(
            jax.random.normal(k_tok, (t.vocab_size, d), dtype),
            jax.random.normal(k_prm, (config.num_prompts, d), dtype),
            theta,
            seq_len=t.seq_len,
            policy=TinyTransformer(
                num_prompts=config.num_prompts,
                vocab_size=t.vocab_size,
                seq_len=t.seq_len,
                embed_dim=t.embed_dim,
                num_heads=t.num_heads,
                num_layers=t.num_layers,
            ),
            num_eval_samples=t.num_eval_samples,
            temperature=config.temperature,
        )
        return task, task.init_params(k_ref)
    raise ValueError(
        f"config.policy must be 'candidates' or 'transformer', got {config.policy!r}"
    )


def _random_responses(key: jax.Array, task: Task, n: int) -> jax.Array:
    """Features [n, d] of uniformly random responses to uniformly random prompts."""
    k_prompt, k_resp = jax.random.split(key)
    ids = jax.random.randint(k_prompt, (n,), 0, task.num_prompts)
    if isinstance(task, TokenTask):
        actions = jax.random.randint(
            k_resp, (n, task.seq_len), 0, task.vocab_size, jnp.int32
        )
    else:
        num_candidates = task.features.shape[1]
        actions = jax.random.randint(k_resp, (n, 1), 0, num_candidates, jnp.int32)
    return task.response_features(ids, actions)


def comparison_data(
    key: jax.Array, task: Task, num_comparisons: int, data_scales
) -> Comparisons:
    """Simulated preference data: pairs of random responses, features scaled per
    direction by ``data_scales`` [d], labels y ~ Bernoulli(σ(θ*ᵀ(φ1 − φ0))) from the
    gold Bradley–Terry model; homogeneous ``Comparisons`` (k = 0, ψ0 = 1) of n rows."""
    k0, k1, ky = jax.random.split(key, 3)
    scales = jnp.asarray(data_scales, task.gold_theta.dtype)
    if scales.shape != task.gold_theta.shape:
        raise ValueError(
            f"data_scales must have {task.gold_theta.shape[0]} entries, got "
            f"{scales.shape}"
        )
    phi0 = scales * _random_responses(k0, task, num_comparisons)
    phi1 = scales * _random_responses(k1, task, num_comparisons)
    p = jax.nn.sigmoid(task.gold_reward(phi1 - phi0))
    y = jax.random.bernoulli(ky, p).astype(phi0.dtype)
    n = num_comparisons
    return Comparisons(
        phi0, phi1, y, jnp.zeros((n, 0), phi0.dtype), jnp.ones((n,), phi0.dtype)
    )


def ensemble_source(key: jax.Array, task: Task, config) -> RewardSource:
    """The deterministic ensemble-mean source (``config``: the study's ``ensemble``
    section: num_comparisons, data_scales, num_heads, optimizer, num_steps,
    learning_rate, bootstrap, init_scale)."""
    k_data, k_heads = jax.random.split(key)
    data = comparison_data(k_data, task, config.num_comparisons, config.data_scales)
    options = ensemble.EnsembleOptions(
        num_heads=config.num_heads,
        num_steps=config.num_steps,
        learning_rate=config.learning_rate,
        optimizer=config.optimizer,
        bootstrap=config.bootstrap,
        init_scale=config.init_scale,
    )
    heads = ensemble.train_ensemble(k_heads, data, options).params
    return RewardSource("ensemble", ensemble.ensemble_reward, heads, "none")


def prompted_source(key: jax.Array, task: Task, config) -> RewardSource:
    """The per-query judge-interval source (``config``: the study's ``judge`` section:
    h0, spread); u is a random unit direction of the width."""
    dtype = task.gold_theta.dtype
    u = jax.random.normal(key, task.gold_theta.shape, dtype)
    params = {
        "theta": task.gold_theta,
        "u": u / jnp.linalg.norm(u),
        "h0": jnp.asarray(config.h0, dtype),
        "spread": jnp.asarray(config.spread, dtype),
    }
    return RewardSource("prompted", judge_intervals, params, "per_query")


def per_policy_noise_source(
    base: RewardSource, distribution: str = "gaussian"
) -> RewardSource:
    """``base``'s mean and σ² with one fixed N(0, σ²) (or uniform) realisation per
    policy (ours)."""
    if distribution not in ("gaussian", "uniform"):
        raise ValueError(
            f"distribution must be 'gaussian' or 'uniform', got {distribution!r}"
        )
    return RewardSource(
        "per_policy_noise", base.fn, base.params, f"per_policy_{distribution}"
    )


def build_world(key: jax.Array, config, names=SOURCES) -> World:
    """Task, reference policy and the reward sources ``names`` (a subset of
    ``SOURCES``)."""
    names = tuple(dict.fromkeys(names))
    if not names or set(names) - set(SOURCES):
        raise ValueError(
            f"sources must be a non-empty subset of {SOURCES}, got {names}"
        )
    k_task, k_ens, k_judge, k_phi = jax.random.split(key, 4)
    task, reference_params = make_task(k_task, config)
    sources = {}
    if {"ensemble", "per_policy_noise"} & set(names):
        sources["ensemble"] = ensemble_source(k_ens, task, config.ensemble)
    if {"prompted", "per_policy_noise"} & set(names):
        sources["prompted"] = prompted_source(k_judge, task, config.judge)
    if "per_policy_noise" in names:
        base = sources[config.per_policy_noise.base]
        sources["per_policy_noise"] = per_policy_noise_source(
            base, config.per_policy_noise.distribution
        )
    sources = {name: sources[name] for name in names}
    ids = jnp.repeat(jnp.arange(task.num_prompts, dtype=jnp.int32), 16)
    phi_ref = task.response_features(ids, task.sample(k_phi, reference_params, ids))
    return World(task, reference_params, sources, phi_ref)
