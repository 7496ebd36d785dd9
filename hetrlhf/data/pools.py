"""Best-of-N candidate pools from pairwise preference records (our design).

Pairwise data have no N-candidate pools. Here the pool of a prompt is every distinct
response it has in the gold records, and the gold score of a candidate is its win
rate there: the share of the gold labels involving it that it won, a tie (label None)
counting one half. ``pool_choices`` then scores the BoN and pBoN choices of a fitted
reward model on those pools (``alignment.selection.evaluate_choices``).

    position = text_positions([*train_records, *gold_records])  # text -> feature row
    pools = candidate_pools(gold_records, held_out_prompts, position)
    choices = pool_choices(params, train, phi, pools, alpha=0.05, cov=cov)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hetrlhf.alignment import selection
from hetrlhf.btl.inference import reward_interval
from hetrlhf.data.loaders import PreferenceRecord
from hetrlhf.types import Comparisons, Params, RewardEstimate


def text_positions(records: Sequence[PreferenceRecord]) -> dict[tuple[str, str], int]:
    """Row of each distinct (prompt, response) text, in order of first appearance.

    Args:
      records: [n] records; each contributes (prompt, response_0) then
        (prompt, response_1).

    Returns:
      dict (prompt, response) -> row in [0, m), m the number of distinct texts.
    """
    position: dict[tuple[str, str], int] = {}
    for r in records:
        for pair in ((r.prompt, r.response_0), (r.prompt, r.response_1)):
            position.setdefault(pair, len(position))
    return position


class CandidatePools(NamedTuple):
    """Pools of P prompts padded to the largest size W.

    Attributes:
      prompts: [P] the prompts kept (sorted), each with at least two candidates.
      rows: [P, W] int, the candidates' rows in ``position`` (0 where ``mask`` is
        False); a prompt's candidates are its responses in sorted order.
      gold: [P, W] float64 gold win rates in [0, 1] (0 where ``mask`` is False).
      mask: [P, W] bool, the candidates that exist.
      skipped: number of prompts skipped for having fewer than two candidates.
    """

    prompts: list[str]
    rows: np.ndarray
    gold: np.ndarray
    mask: np.ndarray
    skipped: int


def candidate_pools(
    records: Sequence[PreferenceRecord],
    prompts: Collection[str],
    position: Mapping[tuple[str, str], int],
) -> CandidatePools:
    """The candidates of each prompt in ``prompts`` and their gold win rates.

    Args:
      records: gold records (ties kept: label None counts one half to each side).
      prompts: the prompts to pool (e.g. the held-out ones); records of other prompts
        are ignored.
      position: (prompt, response) -> feature row (``text_positions``); must hold
        every response of the pooled prompts.

    Returns:
      ``CandidatePools`` (P = 0, W = 0 when no prompt has two candidates).
    """
    wins: dict = defaultdict(lambda: defaultdict(list))
    for r in records:
        if r.prompt not in prompts:
            continue
        score1 = 0.5 if r.label is None else float(r.label)
        wins[r.prompt][r.response_0].append(1.0 - score1)
        wins[r.prompt][r.response_1].append(score1)
    kept, skipped = [], 0
    for prompt in sorted(wins):
        if len(wins[prompt]) < 2:
            skipped += 1
        else:
            kept.append(prompt)
    width = max((len(wins[p]) for p in kept), default=0)
    rows = np.zeros((len(kept), width), np.int64)
    gold = np.zeros((len(kept), width))
    mask = np.zeros((len(kept), width), bool)
    for i, prompt in enumerate(kept):
        for j, response in enumerate(sorted(wins[prompt])):
            rows[i, j] = position[(prompt, response)]
            gold[i, j] = np.mean(wins[prompt][response])
            mask[i, j] = True
    return CandidatePools(kept, rows, gold, mask, skipped)


def pool_choices(
    params: Params,
    train: Comparisons,
    phi: jax.Array,
    pools: CandidatePools,
    alpha=0.05,
    *,
    cov=None,
) -> selection.Choices:
    """Gold win rates of the BoN and pBoN choices of a fitted reward on each pool.

    The candidates' rewards and variances are ``reward_interval(params, train,
    phi[rows], cov=cov)``; BoN takes the largest mean, pBoN the largest lower bound at
    level ``alpha`` (``selection.evaluate_choices``).

    Args:
      params: the fitted parameters (θ [d]).
      train: the comparisons they were fitted on (for the covariance).
      phi: [m, d] features of every text row of ``pools.rows``.
      pools: ``CandidatePools`` with P >= 1.
      alpha: pBoN's level.
      cov: optional [d + k, d + k] covariance of (θ̂, γ̂).

    Returns:
      ``selection.Choices``, each [P].
    """
    if not pools.prompts:
        raise ValueError("pools must hold at least one prompt")
    mask = pools.mask
    cov = None if cov is None else jnp.asarray(cov)
    est = reward_interval(
        params, train, jnp.asarray(np.asarray(phi)[pools.rows[mask]]), cov=cov
    )
    mean, var = np.zeros(mask.shape), np.zeros(mask.shape)
    mean[mask], var[mask] = np.asarray(est.mean), np.asarray(est.var)
    return selection.evaluate_choices(
        RewardEstimate(jnp.asarray(mean), jnp.asarray(var)),
        jnp.asarray(pools.gold),
        alpha,
        jnp.asarray(mask),
    )
