"""Many PPO policies in one vmapped program: arms, reference runs, β calibration.

``make_runner`` jits the learner vmapped over policies (and, with several devices,
sharded over them); ``train_policies`` runs it in segments of updates, saving the
vmapped train state with orbax after every ``checkpoint_every`` segments so that a
rerun resumes; ``reference_runs`` evaluates the reference policy at independent keys
exactly as the policies are evaluated; ``calibrate_betas`` searches, per arm, the β at
which the final policies' mean KL(π ‖ π_ref) hits a common target (a short search on a
few seeds, before the main run).

Every policy's run and evaluation are functions of its own key (``arm_keys``): the
policy axis can be split over devices or processes without changing what a policy
computes.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import isotonic_regression
from tqdm.auto import tqdm

from hetrlhf import checkpoint, parallel
from hetrlhf.alignment.ppo.learner import (
    PolicyEval,
    PPOConfig,
    PPOLearner,
    evaluation_key,
    make_learner,
    run_updates,
)
from hetrlhf.alignment.ppo.loss import kl_weights
from hetrlhf.alignment.ppo.world import RewardSource, World

__all__ = [
    "CURVES",
    "Runner",
    "arm_keys",
    "calibrate_betas",
    "interpolate_beta",
    "make_runner",
    "reference_runs",
    "start_betas",
    "train_policies",
]

# Per-update metrics kept for the learning curves ([policies, updates] each).
CURVES = ("gold", "reward", "kl", "beta")


class Runner(NamedTuple):
    """Jitted, vmapped pieces of the learner for a fixed number of policies.

    Attributes:
      learner: the single-policy ``PPOLearner``.
      init: ``(keys [n], flags [n], betas [n]) -> TrainState`` (leading axis n).
      segment: ``(state, reward_params) -> (state, Metrics [n, per_segment])``.
      evaluate: ``(keys [n], params) -> PolicyEval`` of n policies.
      place: puts a vmapped state on the devices (identity on one device).
      per_segment: updates per segment.
      num_segments: segments per run.
    """

    learner: PPOLearner
    init: Callable
    segment: Callable
    evaluate: Callable
    place: Callable
    per_segment: int
    num_segments: int


def make_runner(
    config: PPOConfig,
    world: World,
    source: RewardSource,
    *,
    num_segments: int = 1,
    shard: bool = True,
    num_policies: int | None = None,
) -> Runner:
    """The learner of ``source`` on ``world.task``, vmapped (and sharded) over policies.

    Args:
      config: ``PPOConfig``; its ``reward_noise`` must be ``source.noise``.
      world: the ``World`` (task, reference policy).
      source: the reward source.
      num_segments: segments per run (must divide ``config.num_updates``).
      shard: split the policy axis over all devices when there are several.
      num_policies: the number of policies a call will hold (checked against the
        device count when sharding).
    """
    if config.reward_noise != source.noise:
        raise ValueError(
            f"config.reward_noise={config.reward_noise!r} but source {source.name!r} "
            f"is observed as {source.noise!r}"
        )
    if (
        isinstance(num_segments, bool)
        or not isinstance(num_segments, int)
        or num_segments < 1
        or config.num_updates % num_segments
    ):
        raise ValueError(
            f"num_segments={num_segments!r} must be an int >= 1 dividing "
            f"num_updates={config.num_updates}"
        )
    learner = make_learner(
        config, world.task, source.fn, reference_params=world.reference_params
    )
    per_segment = config.num_updates // num_segments
    segment = jax.vmap(
        lambda s, rp: run_updates(learner, s, rp, per_segment), in_axes=(0, None)
    )
    evaluate = jax.vmap(learner.evaluate)
    mesh = None
    if shard and jax.device_count() > 1:
        mesh = parallel.replicate_mesh()
        if num_policies is not None and num_policies % mesh.size:
            raise ValueError(
                f"sharding: the {num_policies} policies must be a multiple of the "
                f"{mesh.size} devices"
            )
        # The reward parameters are shared (replicated), the policies split.
        segment = parallel.sharded_map(segment, mesh, replicated=(1,))
        evaluate = parallel.sharded_map(evaluate, mesh)

    def place(tree):
        return tree if mesh is None else parallel.shard_replicates(tree, mesh)

    return Runner(
        learner=learner,
        init=jax.jit(jax.vmap(learner.init)),
        segment=jax.jit(segment),
        evaluate=jax.jit(evaluate),
        place=place,
        per_segment=per_segment,
        num_segments=num_segments,
    )


def arm_keys(
    key: jax.Array, num_policies: int, *, paired: bool = False
) -> tuple[jax.Array, jax.Array]:
    """Keys [2m] and variance-aware flags [2m] of m vanilla then m variance-aware
    policies: distinct keys per arm and per policy, or (``paired``) policy i of both
    arms on the same key."""
    k_vanilla = jax.random.split(jax.random.fold_in(key, 0), num_policies)
    k_va = (
        k_vanilla
        if paired
        else jax.random.split(jax.random.fold_in(key, 1), num_policies)
    )
    flags = jnp.arange(2 * num_policies) >= num_policies
    return jnp.concatenate([k_vanilla, k_va]), flags


def train_policies(
    runner: Runner,
    keys: jax.Array,
    flags: jax.Array,
    betas,
    reward_params: Any,
    *,
    directory: str | None = None,
    checkpoint_every: int = 0,
    resume: bool = True,
    desc: str = "policies",
) -> dict:
    """Trains and evaluates one policy per key, in checkpointed segments.

    Args:
      runner: a ``Runner``.
      keys: [n] policy keys; flags: [n] variance-aware switches; betas: [n] initial β.
      reward_params: the source's parameters (shared by every policy).
      directory: orbax checkpoint directory (None: no checkpoints).
      checkpoint_every: save after every this many segments (0: never).
      resume: restore the latest checkpoint in ``directory`` first.
      desc: progress-bar label.

    Returns:
      {"evaluation": PolicyEval of numpy arrays [n] (at ``evaluation_key`` of each
      key), "curves": {name: [n, num_updates]} for ``CURVES``,
      "resumed_from_segment": int}.
    """
    betas = jnp.asarray(betas, jnp.zeros(()).dtype)
    state = runner.init(keys, flags, betas)
    num_updates = runner.per_segment * runner.num_segments
    curves = {name: np.full((keys.shape[0], num_updates), np.nan) for name in CURVES}
    start = 0
    saving = directory is not None and checkpoint_every > 0
    latest = checkpoint.latest_step(directory) if saving and resume else None
    if latest is not None:
        start = latest
        restored = checkpoint.restore_pytree(
            directory, start, {"state": state, "curves": curves}
        )
        state = restored["state"]
        curves = {k: np.array(v) for k, v in restored["curves"].items()}
    state = runner.place(state)
    u = runner.per_segment
    segments = range(start, runner.num_segments)
    for seg in tqdm(
        segments, desc=desc, leave=False, disable=not parallel.is_primary()
    ):
        state, metrics = runner.segment(state, reward_params)
        # Several processes: every process gathers every policy's metrics.
        metrics = parallel.to_host({name: getattr(metrics, name) for name in CURVES})
        for name in CURVES:
            curves[name][:, seg * u : (seg + 1) * u] = metrics[name]
        done = seg + 1
        if saving and (done % checkpoint_every == 0 or done == runner.num_segments):
            checkpoint.save_pytree(
                directory, done, {"state": state, "curves": curves}, max_to_keep=1
            )
    eval_keys = runner.place(jax.vmap(evaluation_key)(keys))
    evaluation = parallel.to_host(runner.evaluate(eval_keys, state.params))
    return {
        "evaluation": PolicyEval(*(np.asarray(x, np.float64) for x in evaluation)),
        "curves": curves,
        "resumed_from_segment": start,
    }


def reference_runs(runner: Runner, key: jax.Array, num_runs: int) -> PolicyEval:
    """``num_runs`` evaluations of the reference policy at independent keys, each
    exactly like a trained policy's (numpy arrays [num_runs])."""
    keys = jax.random.split(key, num_runs)
    ref = runner.learner.reference_params
    evaluation = jax.jit(jax.vmap(runner.learner.evaluate, in_axes=(0, None)))(
        keys, ref
    )
    return PolicyEval(*(np.asarray(x, np.float64) for x in evaluation))


def start_betas(
    beta: float, source: RewardSource, phi_ref: jax.Array, penalty: str
) -> tuple[float, float]:
    """(β_vanilla, β_VA) giving both arms the same average penalty weight over the
    reference responses: β_VA = β / mean(w), w the variance-aware KL weights."""
    var = source.fn(source.params, phi_ref).var
    w = float(jnp.mean(kl_weights(var, True, penalty)))
    return float(beta), float(beta) / max(w, 1e-12)


def interpolate_beta(betas, kls, target: float, weights=None) -> tuple[float, bool]:
    """The β at which the mean KL hits ``target`` (KL falls as β grows).

    log KL is fitted as a non-increasing function of log β by isotonic regression
    (``scipy.optimize.isotonic_regression``, weighted by the policies behind each
    point, so that seed noise cannot make the curve rise), and log β is interpolated
    linearly in the fitted log KL.

    Args:
      betas: [g] values of β > 0 (any order; e.g. the grids of several rounds).
      kls: [g] mean final KL at each β.
      target: target KL > 0.
      weights: [g] number of policies behind each mean (None: equal).

    Returns:
      (β, bracketed): bracketed is False when the target lies outside the fitted KL
      range (β is then the end of the grid nearest to it).
    """
    betas = np.asarray(betas, np.float64)
    order = np.argsort(betas)
    log_b = np.log(betas[order])
    log_kl = np.log(np.maximum(np.asarray(kls, np.float64)[order], 1e-12))
    w = None if weights is None else np.asarray(weights, np.float64)[order]
    fit = isotonic_regression(log_kl, weights=w, increasing=False).x
    t = np.log(target)
    bracketed = bool(fit.min() <= t <= fit.max())
    return float(np.exp(np.interp(t, fit[::-1], log_b[::-1]))), bracketed


def _calibration_round(runner, key, centres, factors, reward_params, m, train_kwargs):
    """One round: each arm's m slots cycle over the β grid centre·factors; returns
    per arm the grid, its mean final KL and the number of policies per point."""
    g = factors.size
    slot = np.arange(m) % g
    betas = np.concatenate([centres[0] * factors[slot], centres[1] * factors[slot]])
    keys, flags = arm_keys(key, m)
    out = train_policies(runner, keys, flags, betas, reward_params, **train_kwargs)
    kl = out["evaluation"].kl
    counts = np.bincount(slot, minlength=g)
    return [
        (
            centres[arm] * factors,
            np.bincount(slot, kl[arm * m : (arm + 1) * m], minlength=g) / counts,
            counts,
        )
        for arm in range(2)
    ]


def calibrate_betas(
    runner: Runner,
    key: jax.Array,
    reward_params: Any,
    *,
    target: float,
    start: tuple[float, float],
    num_policies: int,
    grid_size: int = 4,
    span: float = 10.0,
    num_rounds: int = 1,
    directory: str | None = None,
    checkpoint_every: int = 0,
    resume: bool = True,
) -> dict:
    """Per-arm β at which the mean final KL(π ‖ π_ref) is ``target`` (fixed β runs).

    Round 1 trains, per arm, ``num_policies`` policies (calibration keys, not the main
    run's) cycling over ``grid_size`` values of β log-spaced over
    [start/span, start·span], and interpolates log β in log KL (``interpolate_beta``);
    each further round repeats with the grid centred on the estimate and its span
    shrunk to one grid step of the previous round, and interpolates over the points of
    all rounds so far.

    Returns:
      {"beta": [β_vanilla, β_VA], "target": target, "rounds": per round and arm the
      grid, its mean KL, the estimate and whether the target was bracketed}.
    """
    if grid_size < 2 or num_policies < grid_size:
        raise ValueError(
            f"need grid_size >= 2 and num_policies >= grid_size, got {grid_size} and "
            f"{num_policies}"
        )
    centres = np.asarray(start, np.float64)
    points = [[], []]  # per arm: (grid, mean KL, counts) of every round so far
    rounds = []
    for r in range(num_rounds):
        factors = np.exp(np.linspace(-np.log(span), np.log(span), grid_size))
        train_kwargs = {
            "directory": None
            if directory is None
            else os.path.join(directory, f"round{r}"),
            "checkpoint_every": checkpoint_every,
            "resume": resume,
            "desc": f"β calibration, round {r + 1}",
        }
        new = _calibration_round(
            runner,
            jax.random.fold_in(key, r),
            centres,
            factors,
            reward_params,
            num_policies,
            train_kwargs,
        )
        rows = []
        for arm in range(2):
            points[arm].append(new[arm])
            pooled = [np.concatenate(x) for x in zip(*points[arm], strict=True)]
            beta, bracketed = interpolate_beta(*pooled[:2], target, pooled[2])
            centres[arm] = beta
            rows.append(
                {
                    "beta_grid": new[arm][0],
                    "mean_kl": new[arm][1],
                    "beta": beta,
                    "bracketed": bracketed,
                }
            )
        rounds.append(rows)
        span = span ** (2.0 / (grid_size - 1))
    return {"beta": centres.tolist(), "target": target, "rounds": rounds}
