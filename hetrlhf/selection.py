"""Best-of-N selection (Liu, Lu & Sun 2025; DESIGN.md §A4): plain and pessimistic.

Both take the reward of N candidates along the last axis and return the index of the
chosen one; any leading axes (prompts, replicates) are batch axes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.stats import norm

from hetrlhf.types import RewardEstimate

__all__ = ["best_of_n", "lower_confidence_bound", "pessimistic_best_of_n"]


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
