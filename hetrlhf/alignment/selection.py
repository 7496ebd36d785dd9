"""Best-of-N selection (Liu, Lu & Sun 2025; DESIGN.md §A4): plain and pessimistic.

Both take the reward of N candidates along the last axis and return the index of the
chosen one; any leading axes (prompts, replicates) are batch axes. ``evaluate_choices``
scores both rules against gold rewards (pools of unequal size through a mask), and
``tail_mean`` is the lower-tail (CVaR) mean of per-prompt outcomes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.stats import norm

from hetrlhf.types import RewardEstimate

__all__ = [
    "Choices",
    "best_of_n",
    "evaluate_choices",
    "lower_confidence_bound",
    "pessimistic_best_of_n",
    "tail_mean",
]


def best_of_n(mean: jax.Array) -> jax.Array:
    """BoN: argmax_j r̂(s, a_j).

    Args:
      mean: [..., N] estimated rewards of N candidates.

    Returns:
      [...] int index of the chosen candidate.
    """
    return jnp.argmax(mean, axis=-1)


def lower_confidence_bound(est: RewardEstimate, alpha=0.05) -> jax.Array:
    """r̂ − z_{1−α/2}·sqrt(var), the lower end of the two-sided (1−α) Wald interval."""
    return est.mean - norm.ppf(1.0 - alpha / 2.0) * jnp.sqrt(est.var)


def pessimistic_best_of_n(est: RewardEstimate, alpha=0.05) -> jax.Array:
    """pBoN: argmax_j [r̂(s, a_j) − z_{1−α/2}·se(s, a_j)] (the lower confidence bound).

    Args:
      est: ``RewardEstimate`` with mean and var of shape [..., N], from any source
        (Fisher ``reward_interval``, an ensemble, interval rewards).
      alpha: 1 − confidence level of the bound.

    Returns:
      [...] int index of the chosen candidate.
    """
    if not isinstance(est, RewardEstimate):
        raise TypeError(
            f"est must be a hetrlhf.RewardEstimate(mean, var), got {type(est).__name__}"
        )
    return jnp.argmax(lower_confidence_bound(est, alpha), axis=-1)


class Choices(NamedTuple):
    """Gold rewards of the candidates chosen by BoN and pBoN, per pool ([...] each).

    Attributes:
      bon: gold reward of BoN's choice.
      pbon: gold reward of pBoN's choice.
      random: mean gold reward of the pool (a uniformly random choice).
      oracle: the best gold reward of the pool.
      changed: bool, pBoN chose another candidate than BoN.
      num_candidates: int, the size of the pool.
    """

    bon: jax.Array
    pbon: jax.Array
    random: jax.Array
    oracle: jax.Array
    changed: jax.Array
    num_candidates: jax.Array


def evaluate_choices(
    est: RewardEstimate, gold: jax.Array, alpha=0.05, mask: jax.Array | None = None
) -> Choices:
    """BoN and pBoN on pools of candidates, scored by their gold rewards.

    Args:
      est: ``RewardEstimate`` with mean and var [..., N]: the estimated rewards.
      gold: [..., N] the gold (true) rewards of the same candidates.
      alpha: pBoN's level (``pessimistic_best_of_n``).
      mask: optional [..., N] bool, the candidates that exist (pools of unequal size
        padded to N); entries outside it are never chosen nor averaged.

    Returns:
      ``Choices``, each [...].
    """
    if mask is None:
        mask = jnp.ones(gold.shape, bool)
    mean = jnp.where(mask, est.mean, -jnp.inf)
    var = jnp.where(mask, est.var, 0.0)
    bon = best_of_n(mean)
    pbon = pessimistic_best_of_n(RewardEstimate(mean, var), alpha)

    def take(idx):
        return jnp.take_along_axis(gold, idx[..., None], axis=-1)[..., 0]

    count = jnp.sum(mask, axis=-1)
    return Choices(
        bon=take(bon),
        pbon=take(pbon),
        random=jnp.sum(jnp.where(mask, gold, 0.0), axis=-1) / count,
        oracle=jnp.max(jnp.where(mask, gold, -jnp.inf), axis=-1),
        changed=bon != pbon,
        num_candidates=count,
    )


def tail_mean(x: jax.Array, tail: float) -> jax.Array:
    """Mean of the ⌈tail·P⌉ smallest entries of x [P] (the lower-tail, CVaR, mean).

    Args:
      x: [P] outcomes (e.g. the gold reward of each prompt's choice).
      tail: share of the worst outcomes, in (0, 1] (static).

    Returns:
      [] the mean of the worst ones (at least one).
    """
    if not 0.0 < tail <= 1.0:
        raise ValueError(f"tail must lie in (0, 1], got {tail}")
    m = max(1, math.ceil(tail * x.shape[0]))
    return jnp.sort(x)[:m].mean()
