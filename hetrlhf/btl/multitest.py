"""Many reward comparisons at once: adjusted p-values and rankings with groups.

Any source of rewards (Fisher ``reward_interval``, an ensemble, interval rewards)
gives a ``RewardEstimate``; comparing many pairs of them gives many p-values, and
reading the smallest ones as discoveries inflates false positives. This module
adjusts them and turns a set of scored items (responses, or reward models scored on a
benchmark) into a ranking with significance groups.

* ``adjust_pvalues(p, method)``: Holm (1979) step-down (family-wise error under any
  dependence), Benjamini–Hochberg (1995) step-up (false discovery rate, valid for
  independent or positively dependent tests), Benjamini–Yekutieli (2001) (FDR under
  any dependence), Bonferroni. The same numbers as
  ``statsmodels.stats.multitest.multipletests`` (``holm``, ``fdr_bh``, ``fdr_by``,
  ``bonferroni``); written in jnp, jittable, over the last axis.
* ``adjust_comparisons(cmp)``: a batch of ``RewardComparison``s (from
  ``hr.compare_rewards`` or ``hr.compare_estimates`` over [..., B] pairs) with raw,
  Holm and BH p-values side by side.
* ``pairwise_comparisons(est, cov=None)``: all N(N−1)/2 pairs of N items.
* ``rank_with_groups(est, alpha)``: ranking, significance groups and a compact letter
  display (eager; small N).

Comparisons computed from ONE fitted model share its estimate, so their test
statistics are correlated: Holm and Bonferroni stay valid; BH is then a (standard)
approximation and BY the guaranteed FDR control.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hetrlhf.btl.inference import compare_estimates
from hetrlhf.types import RewardComparison, RewardEstimate
from hetrlhf.validation import check_alpha, check_estimate

__all__ = [
    "METHODS",
    "AdjustedComparisons",
    "RankedGroups",
    "adjust_comparisons",
    "adjust_pvalues",
    "pairwise_comparisons",
    "rank_with_groups",
]

METHODS = ("holm", "bh", "by", "bonferroni")


def adjust_pvalues(p: jax.Array, method: str = "holm") -> jax.Array:
    """Multiplicity-adjusted p-values over the last axis (a family of m tests).

    With p₍₁₎ ≤ … ≤ p₍ₘ₎ the sorted p-values (ties kept in input order):

    * "holm": p̃₍ᵢ₎ = min(1, max_{j≤i} (m − j + 1)·p₍ⱼ₎)  (Holm 1979, step-down)
    * "bh":   p̃₍ᵢ₎ = min(1, min_{j≥i} m·p₍ⱼ₎/j)  (Benjamini & Hochberg 1995, step-up)
    * "by":   the BH values times c(m) = Σ_{j=1}^m 1/j  (Benjamini & Yekutieli 2001)
    * "bonferroni": min(1, m·pᵢ)

    Rejecting the hypotheses with p̃ ≤ α controls the family-wise error ("holm",
    "bonferroni") or the false discovery rate ("bh", "by") at α.

    Args:
      p: [..., m] raw p-values in [0, 1]; leading axes are independent families.
      method: one of ``METHODS``.

    Returns:
      [..., m] adjusted p-values in the input order.

    Raises:
      ValueError: unknown method, or (eagerly) p-values outside [0, 1] or NaN.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    p = jnp.asarray(p)
    if p.ndim == 0:
        raise ValueError("p must have at least one axis (the family of tests)")
    if not isinstance(p, jax.core.Tracer):
        bad = ~((p >= 0) & (p <= 1))
        if bool(jnp.any(bad)):
            raise ValueError(
                f"p must hold p-values in [0, 1] (no NaN); {int(jnp.sum(bad))} are not"
            )
    m = p.shape[-1]
    if method == "bonferroni":
        return jnp.minimum(m * p, 1.0)
    order = jnp.argsort(p, axis=-1, stable=True)
    sorted_p = jnp.take_along_axis(p, order, axis=-1)
    i = jnp.arange(1, m + 1, dtype=p.dtype)
    if method == "holm":
        adj = jax.lax.cummax((m - i + 1) * sorted_p, axis=p.ndim - 1)
    else:
        adj = jax.lax.cummin(m * sorted_p / i, axis=p.ndim - 1, reverse=True)
        if method == "by":
            adj = adj * jnp.sum(1.0 / i)
    adj = jnp.minimum(adj, 1.0)
    inverse = jnp.argsort(order, axis=-1)
    return jnp.take_along_axis(adj, inverse, axis=-1)


class AdjustedComparisons(NamedTuple):
    """A batch of reward comparisons with raw and adjusted p-values.

    Attributes:
      comparison: the ``RewardComparison`` (fields [..., B]).
      p_value: [..., B] raw p-values of the chosen alternative.
      p_holm: [..., B] Holm-adjusted p-values.
      p_bh: [..., B] Benjamini–Hochberg-adjusted p-values.
    """

    comparison: RewardComparison
    p_value: jax.Array
    p_holm: jax.Array
    p_bh: jax.Array


_ALTERNATIVES = {
    "two-sided": "p_value",
    "greater": "p_value_greater",
    "less": "p_value_less",
}


def adjust_comparisons(
    cmp: RewardComparison, *, alternative: str = "two-sided"
) -> AdjustedComparisons:
    """Holm and Benjamini–Hochberg p-values for a batch of reward comparisons.

    The family is the last axis: e.g. ``hr.compare_rewards(params, data, phi_a,
    phi_b)`` with phi_a, phi_b [B, d], or ``hr.compare_estimates(est_a, est_b)`` with
    estimates of shape [B], from any reward source.

    Args:
      cmp: ``RewardComparison`` with fields [..., B].
      alternative: "two-sided", "greater" (H1: r_a > r_b) or "less".

    Returns:
      ``AdjustedComparisons(comparison, p_value, p_holm, p_bh)``.
    """
    if not isinstance(cmp, RewardComparison):
        raise TypeError(
            f"cmp must be a hetrlhf.RewardComparison, got {type(cmp).__name__}"
        )
    if alternative not in _ALTERNATIVES:
        raise ValueError(
            f"alternative must be one of {tuple(_ALTERNATIVES)}, got {alternative!r}"
        )
    p = getattr(cmp, _ALTERNATIVES[alternative])
    return AdjustedComparisons(
        comparison=cmp,
        p_value=p,
        p_holm=adjust_pvalues(p, "holm"),
        p_bh=adjust_pvalues(p, "bh"),
    )


def pairwise_comparisons(
    est: RewardEstimate, cov: jax.Array | None = None
) -> tuple[RewardComparison, np.ndarray, np.ndarray]:
    """z-tests of all N(N−1)/2 pairs i < j of N scored items.

    Args:
      est: ``RewardEstimate`` with mean and var of shape [N] (any source).
      cov: optional [N, N] covariance of the estimates (its diagonal should equal
        ``est.var``); None treats the items as independent. Rewards of several
        responses from ONE fitted model are correlated: pass Φ Σ_θ Φᵀ.

    Returns:
      (``RewardComparison`` with fields [N(N−1)/2], first indices i, second indices
      j), in the order of ``numpy.triu_indices(N, 1)``; positive z means i > j.
    """
    check_estimate(est)
    mean = jnp.asarray(est.mean)
    if mean.ndim != 1 or jnp.shape(est.var) != mean.shape:
        raise ValueError(
            f"est.mean and est.var must both have shape [N], got {mean.shape} and "
            f"{jnp.shape(est.var)}"
        )
    num = mean.shape[0]
    i, j = np.triu_indices(num, 1)
    cov_ab = None
    if cov is not None:
        cov = jnp.asarray(cov)
        if cov.shape != (num, num):
            raise ValueError(f"cov must have shape ({num}, {num}), got {cov.shape}")
        cov_ab = cov[i, j]
    var = jnp.asarray(est.var)
    cmp = compare_estimates(
        RewardEstimate(mean[i], var[i]), RewardEstimate(mean[j], var[j]), cov_ab
    )
    return cmp, i, j


class RankedGroups(NamedTuple):
    """A ranking with significance groups (see ``rank_with_groups``).

    Attributes:
      order: [N] item indices, best (highest mean) first.
      rank: [N] 1-based rank of each item (1 = highest mean).
      group: [N] 1-based significance group of each item (leader rule).
      letters: N strings, the compact letter display of each item.
      p_adjusted: [N, N] symmetric adjusted p-values of the pairwise tests (diagonal 1).
      different: [N, N] bool, p_adjusted < alpha (significantly different pairs).
    """

    order: np.ndarray
    rank: np.ndarray
    group: np.ndarray
    letters: tuple[str, ...]
    p_adjusted: np.ndarray
    different: np.ndarray


def _maximal_cliques(adjacent: np.ndarray) -> list[frozenset[int]]:
    """All maximal cliques of an undirected graph (Bron–Kerbosch with pivoting)."""
    num = adjacent.shape[0]
    neighbours = [set(np.flatnonzero(adjacent[v])) - {v} for v in range(num)]
    cliques: list[frozenset[int]] = []

    def expand(r: set, p: set, x: set) -> None:
        if not p and not x:
            cliques.append(frozenset(r))
            return
        pivot = max(p | x, key=lambda u: len(neighbours[u] & p))
        for v in sorted(p - neighbours[pivot]):
            expand(r | {v}, p & neighbours[v], x & neighbours[v])
            p = p - {v}
            x = x | {v}

    expand(set(), set(range(num)), set())
    return cliques


def _letter(index: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    name = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        name = alphabet[rem] + name
    return name


def _leader_groups(order: np.ndarray, different: np.ndarray) -> np.ndarray:
    """[N] group of each item by the leader rule (``rank_with_groups``)."""
    group = np.zeros(len(order), dtype=np.int64)
    current = 0
    for leader in order:
        if group[leader]:
            continue
        current += 1
        members = (group == 0) & ~different[leader]
        group[members] = current
    return group


def _clique_letters(different: np.ndarray, rank: np.ndarray) -> list[str]:
    """Each item's letters: the maximal cliques of "not different", named in order of
    their best-ranked member (compact letter display)."""
    cliques = _maximal_cliques(~different)
    cliques.sort(key=lambda c: sorted(rank[list(c)].tolist()))
    letters = ["" for _ in range(len(rank))]
    for c_index, clique in enumerate(cliques):
        for item in clique:
            letters[item] += _letter(c_index)
    return letters


def rank_with_groups(
    est: RewardEstimate,
    alpha: float = 0.05,
    *,
    cov: jax.Array | None = None,
    method: str = "holm",
) -> RankedGroups:
    """Ranks N items by estimated reward, with significance groups and letters.

    All N(N−1)/2 pairs are z-tested (``pairwise_comparisons``, two-sided), the
    p-values adjusted over that family with ``method``, and a pair is *different*
    when its adjusted p-value is < α.

    Grouping rule (the "leader rule"): sort the items by mean, best first (ties in
    input order). The best item leads group 1; the group is the leader plus every
    item not significantly different from the leader. The best-ranked item not yet in
    a group leads group 2, whose members are the leader plus every item not yet
    grouped that is not significantly different from it; and so on until every item
    has a group. So every item is in exactly one group, group numbers increase with
    the leaders' ranks, and each item sits in the group of the best-ranked leader it
    cannot be separated from: it is significantly different from the leaders of all
    earlier groups. Two members of one group need not be inseparable from each other,
    and groups need not be contiguous in rank (a high-variance item can be
    inseparable from a leader that a better-ranked item is separated from).

    Compact letter display (Piepho 2004): the letters are the maximal cliques of the
    graph "not significantly different", named a, b, c, … in order of their
    best-ranked member. Two items share a letter exactly when they are not
    significantly different, so the letters show every pairwise decision.

    Args:
      est: ``RewardEstimate`` of N items (mean and var [N]), from any source: rewards
        of N responses, or N reward models' benchmark scores and their variances.
      alpha: level of the adjusted tests, in (0, 1).
      cov: optional [N, N] covariance of the estimates (None: independent).
      method: p-value adjustment, one of ``METHODS`` (default Holm: family-wise
        error ≤ α for the whole set of pairwise decisions).

    Returns:
      ``RankedGroups(order, rank, group, letters, p_adjusted, different)``.

    Raises:
      ValueError: alpha outside (0, 1), N < 2, bad shapes, NaN, or negative variances.
    """
    check_alpha(alpha)
    check_estimate(est)
    mean = np.asarray(est.mean, dtype=np.float64)
    var = np.asarray(est.var, dtype=np.float64)
    if mean.ndim != 1 or mean.shape[0] < 2:
        raise ValueError(f"est.mean must have shape [N] with N >= 2, got {mean.shape}")
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(var))):
        raise ValueError("est.mean and est.var must be finite (no NaN or inf)")
    if np.any(var < 0):
        raise ValueError("est.var must be non-negative")
    num = mean.shape[0]
    cmp, i, j = pairwise_comparisons(est, cov)
    p_raw = np.asarray(cmp.p_value, dtype=np.float64)
    # 0/0 (two identical items with zero variance) is "no evidence of a difference".
    p_raw = np.where(np.isnan(p_raw), 1.0, p_raw)
    p_adj_flat = np.asarray(adjust_pvalues(jnp.asarray(p_raw), method))
    p_adj = np.ones((num, num))
    p_adj[i, j] = p_adj_flat
    p_adj[j, i] = p_adj_flat
    different = p_adj < alpha

    order = np.argsort(-mean, kind="stable")
    rank = np.empty(num, dtype=np.int64)
    rank[order] = np.arange(1, num + 1)
    group = _leader_groups(order, different)
    letters = _clique_letters(different, rank)
    return RankedGroups(
        order=order,
        rank=rank,
        group=group,
        letters=tuple(letters),
        p_adjusted=p_adj,
        different=different,
    )
