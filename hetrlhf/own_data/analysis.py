"""The analysis behind ``hetrlhf fit``: who is reliable, which item is better, how sure.

From ``Preferences`` (``hetrlhf.data.preferences``) to one ``PreferenceReport``:

1. the homogeneous fit (every annotator equally rational, σ ≡ 1) and the heterogeneous
   fit (σ = 1 + γᵀψ), both ``hr.fit`` of the unique rows weighted by their counts
   (exact maximum likelihood of the rows as written), each diagnosed: a fit that did
   not converge, separable data or a singular information is an error naming the
   cause, never a result;
2. the likelihood-ratio test of "all annotators equally rational" (γ = 0):
   2(ℓ_het − ℓ_hom) ~ χ²_k;
3. intervals of (θ, γ) by ``intervals``: "wald" (``hr.covariance``: I⁻¹), "sandwich"
   (``hr.sandwich_covariance``: H⁻¹BH⁻¹, clustered when the data are: CR0), "profile"
   (``hr.confidence_intervals(method="profile")``) or "bootstrap" (B resamples of
   rows — of whole clusters when clustered — as weight vectors,
   ``confidence.resample_weights``, refitted by a ``vmap`` of ``hr.fit``; percentile
   intervals);
4. the rationality table (σ per annotator, or γ per covariate) with flags when σ's
   interval contains 0 (indistinguishable from random) or lies below it (adversarial);
5. items mode: the leaderboard (rewards relative to the reference item, intervals,
   rank groups by ``hr.rank_with_groups``: Holm-adjusted pairwise z-tests with the
   covariance of the chosen method — Wald's for "profile" — and the empirical win
   rates;
6. with ``holdout``: both models refitted on the training comparisons and scored on the
   held-out ones (mean log-likelihood, accuracy) and the reliability of the
   heterogeneous model's predicted win probabilities (``preferences.holdout_split``:
   text features projected as fitted on the training comparisons only).

Every fit of one report — homogeneous, heterogeneous, held-out, bootstrap chunks — runs
on the unique rows padded with rows of weight 0 to a bucket size
(``estimate.pad_rows``/``padded_size``), so files and splits of similar size share one
compiled program; with JAX's persistent compilation cache (``hetrlhf fit`` enables it,
see ``hetrlhf.cli``) a second run of the command compiles nothing.

Provenance: the model and the Wald intervals are Liu, Lu & Sun's (2025); the LR test,
the rank groups, the sandwich/bootstrap/profile options and this report are ours.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from tqdm.auto import tqdm

from hetrlhf.btl import estimate, inference, model
from hetrlhf.btl.confidence import (
    confidence_intervals,
    resample_weights,
    sandwich_covariance,
)
from hetrlhf.btl.estimate import pad_rows, padded_size
from hetrlhf.btl.inference import LRTest, likelihood_ratio_test
from hetrlhf.btl.multitest import rank_with_groups
from hetrlhf.data.preferences import Preferences, holdout_split, load_preferences
from hetrlhf.types import Comparisons, FitResult, Params, RewardEstimate, ravel_params
from hetrlhf.validation import (
    check_alpha,
    check_draws,
    condition_number,
    default_max_condition,
)

__all__ = [
    "INTERVALS",
    "DiagnosedFit",
    "FitFailure",
    "FitOutput",
    "FitSummary",
    "HeldOut",
    "LRTest",
    "LeaderboardRow",
    "PreferenceReport",
    "RationalityRow",
    "diagnosed_fit",
    "fit_and_covariances",
    "report",
]

INTERVALS = ("wald", "sandwich", "profile", "bootstrap")


class FitFailure(ValueError):
    """A fit that cannot be reported (the message says why)."""


class FitSummary(NamedTuple):
    """One fitted model: ``log_likelihood`` is Σ ℓ over the comparisons fitted;
    ``covariance`` the Wald covariance (inverse observed information of the sum),
    ``sandwich`` the sandwich covariance (clustered when the data are)."""

    params: Params
    log_likelihood: float
    num_steps: int
    grad_norm: float
    condition_number: float
    covariance: np.ndarray
    sandwich: np.ndarray


class RationalityRow(NamedTuple):
    """One row of the rationality table.

    Attributes:
      name: the annotator, or the covariate (``col`` or ``col=level``).
      parameter: "sigma" (σ of an annotator or of a covariate level) or "gamma" (the
        slope of σ per standard deviation of a numeric covariate).
      estimate, lower, upper: the estimate and its interval.
      comparisons: comparisons of this annotator (annotator mode), else None.
      flag: "" or why σ is suspicious ("random": the interval contains 0;
        "adversarial": it lies below 0); "reference" for the σ = 1 baseline.
    """

    name: str
    parameter: str
    estimate: float
    lower: float
    upper: float
    comparisons: int | None
    flag: str


class LeaderboardRow(NamedTuple):
    """One item of the leaderboard (rewards relative to the reference, which is 0)."""

    item: str
    reward: float
    lower: float
    upper: float
    rank: int
    rank_group: int
    letters: str
    comparisons: int
    p_vs_next: float | None  # Holm-adjusted p of "this item = the next one down"


class HeldOut(NamedTuple):
    """Held-out scores of both models fitted on the training comparisons."""

    fraction: float
    num_train: int
    num_test: int
    log_likelihood: dict[str, float]  # model -> mean held-out log-likelihood
    accuracy: dict[str, float]  # model -> share of held-out labels predicted


class PreferenceReport(NamedTuple):
    """Everything ``hetrlhf fit`` reports (``hetrlhf.own_data.files`` writes it).

    Attributes:
      preferences: the data analysed.
      intervals: the interval method.
      alpha: 1 − confidence level.
      homogeneous, heterogeneous: the two fits (the same fit when k = 0).
      lr_test: ``LRTest`` or None (no rationality model).
      names: d + k parameter names (θ first).
      lower, upper: [d + k] interval end points of the heterogeneous fit's parameters.
      covariance: [d + k, d + k] covariance used by the tests (Wald's for "profile";
        the bootstrap draws' for "bootstrap").
      rationality: ``RationalityRow``s.
      leaderboard: ``LeaderboardRow``s best first (items mode), else None.
      p_holm: [K, K] Holm-adjusted pairwise p-values (items mode), else None.
      win_rate: [K, K] empirical share of i's wins against j (NaN: never met), else None.
      meetings: [K, K] comparisons of i and j (items mode), else None.
      held_out: ``HeldOut`` or None.
      reliability: (predicted [m], observed [m], count [m]) per bin of the predicted
        P(b wins), on the held-out comparisons (in-sample without ``holdout``).
      reliability_sample: "held-out" or "in-sample".
      bootstrap_failed: bootstrap refits that failed (excluded), or None.
      num_bootstrap: B, or None.
      seed: the seed of the split and the bootstrap.
    """

    preferences: Preferences
    intervals: str
    alpha: float
    homogeneous: FitSummary
    heterogeneous: FitSummary
    lr_test: LRTest | None
    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    covariance: np.ndarray
    rationality: tuple[RationalityRow, ...]
    leaderboard: tuple[LeaderboardRow, ...] | None
    p_holm: np.ndarray | None
    win_rate: np.ndarray | None
    meetings: np.ndarray | None
    held_out: HeldOut | None
    reliability: tuple[np.ndarray, np.ndarray, np.ndarray]
    reliability_sample: str
    bootstrap_failed: int | None
    num_bootstrap: int | None
    seed: int


# ------------------------------------------------------------------ fitting --------


class FitOutput(NamedTuple):
    """``fit_and_covariances``: one fit, its diagnosis and both covariances.

    Attributes:
      result: ``FitResult`` of ``hr.fit``.
      condition_number: [] of the Hessian at the estimate (inf: not positive
        definite).
      separated: [] bool, the fitted logits classify every weighted row correctly.
      covariance: [p, p] Wald covariance (``hr.covariance``).
      sandwich: [p, p] sandwich covariance (``hr.sandwich_covariance``; CR0 when
        clustered, else HC0).
    """

    result: FitResult
    condition_number: jax.Array
    separated: jax.Array
    covariance: jax.Array
    sandwich: jax.Array


def _fit_and_covariances(
    data: Comparisons, cluster, num_clusters, fit_options=()
) -> FitOutput:
    res = estimate.fit(data, **dict(fit_options))
    hess = model.derivatives(ravel_params(res.params), data)[2]
    return FitOutput(
        res,
        condition_number(hess),
        model.is_separated(res.params, data),
        inference.covariance(res.params, data),
        sandwich_covariance(res.params, data, cluster, num_clusters=num_clusters),
    )


# One program for the fit and both covariances. It runs once per report, so without a
# persistent cache its compile time is most of a first call: LLVM's optimisation level
# 0 about halves it (100-model arena, 10,240 padded rows, 2-core CPU, best of 4: compile
# 0.7 s instead of 1.3 s) for a slower run (0.18 s instead of 0.11 s). Bootstrap refits,
# which run 1000 times, keep the default level.
_FAST_COMPILE = {"xla_backend_optimization_level": 0}
_fit_program = jax.jit(
    _fit_and_covariances,
    static_argnames=("num_clusters", "fit_options"),
    compiler_options=_FAST_COMPILE,
)


def fit_and_covariances(
    data: Comparisons,
    cluster=None,
    *,
    num_clusters: int | None = None,
    fit_options: Mapping[str, Any] | None = None,
) -> FitOutput:
    """``hr.fit``, its diagnosis, ``hr.covariance`` and ``hr.sandwich_covariance``.

    One compiled program per padded shape: ``data`` (and ``cluster``) are padded with
    rows of weight 0 to ``padded_size`` rows (and the clusters to ``padded_size`` of
    their number), which leaves every number as it is (``estimate.pad_rows``). Eager.

    Args:
      data: ``Comparisons`` (weighted or not), n rows.
      cluster: optional [n] int cluster ids in [0, num_clusters) for the sandwich.
      num_clusters: the number of clusters (required with ``cluster``).
      fit_options: keyword options of ``hr.fit`` (hashable values; None: its
        defaults). A tolerance is on the gradient of the mean loss of ``data``'s own
        rows (the padding has weight 0).

    Returns:
      ``FitOutput``.
    """
    padded, padded_cluster = _padded(data, cluster)
    if cluster is not None:
        if num_clusters is None:
            raise ValueError("num_clusters is required when cluster is given")
        padded_cluster = jnp.asarray(padded_cluster)
        num_clusters = padded_size(num_clusters)
    options = tuple(sorted((fit_options or {}).items()))
    return _fit_program(
        padded, padded_cluster, num_clusters=num_clusters, fit_options=options
    )


class DiagnosedFit(NamedTuple):
    """``diagnosed_fit``: one fit with its diagnostics, in the units of the data.

    Attributes:
      params: the estimate (θ [d], γ [k]).
      converged: ``hr.fit``'s flag, and the rows are not perfectly separated.
      separated: every training comparison classified correctly (no finite MLE).
      num_steps: Newton steps taken.
      grad_norm: ‖∇L_n‖ of the mean loss on the data's own rows.
      loss: L_n, the mean loss on the data's own rows.
      cov: [d + k, d + k] numpy I⁻¹/n (NaN when the information is singular).
      condition_number: of the information (inf: not positive definite).
      status: "ok", "not converged", "separated" or "singular information"
        (condition number above ``validation.default_max_condition``).
    """

    params: Params
    converged: bool
    separated: bool
    num_steps: int
    grad_norm: float
    loss: float
    cov: np.ndarray
    condition_number: float
    status: str


def diagnosed_fit(
    data: Comparisons, fit_options: Mapping[str, Any] | None = None
) -> DiagnosedFit:
    """Fits ``data`` (``fit_and_covariances``) and diagnoses it; never raises on a bad
    fit: a fit that did not converge, whose rows are separated or whose information is
    singular gets that ``status``.

    Args:
      data: ``Comparisons``, n rows.
      fit_options: keyword options of ``hr.fit`` (None: its defaults).

    Returns:
      ``DiagnosedFit``.
    """
    out = fit_and_covariances(data, fit_options=fit_options)
    res = out.result
    separated, cond = bool(out.separated), float(out.condition_number)
    converged = bool(res.converged) and not separated
    if separated:
        status = "separated"
    elif not converged:
        status = "not converged"
    elif not cond <= default_max_condition(data.y.dtype):
        status = "singular information"
    else:
        status = "ok"
    return DiagnosedFit(
        params=res.params,
        converged=converged,
        separated=separated,
        num_steps=int(res.num_steps),
        grad_norm=float(res.grad_norm),
        loss=float(res.loss),
        cov=np.asarray(out.covariance),
        condition_number=cond,
        status=status,
    )


def _padded(data: Comparisons, cluster=None):
    """(data, cluster) padded with rows of weight 0 to ``padded_size`` rows."""
    size = padded_size(data.num_comparisons)
    if cluster is not None:
        cluster = np.concatenate(
            [cluster, np.zeros(size - len(cluster), np.asarray(cluster).dtype)]
        )
    return pad_rows(data, size), cluster


def _homogeneous(data: Comparisons) -> Comparisons:
    return data._replace(psi=data.psi[:, :0])


# |η| beyond which a fitted probability is 1 to within 1e−13: such comparisons mark a
# quasi-separated design whose estimates ran off towards infinity (statsmodels warns
# likewise about "possibly complete quasi-separation").
_MAX_LOGIT = 30.0


def _check_separation(params, data, names, what: str) -> None:
    """Refuses a fit whose σ of some level, or some comparison, has no finite MLE."""
    count = np.asarray(data.weight)
    used = count > 0
    sign = 2.0 * np.asarray(data.y) - 1.0
    r = np.asarray(model.reward(params.theta, data.dphi))
    psi = np.asarray(data.psi)
    for j, name in enumerate(names):
        rows = used & (psi[:, j] != 0)
        if not np.all(np.isin(psi[:, j], (0.0, 1.0))) or not rows.any():
            continue
        agree = sign[rows] * r[rows]
        if np.all(agree > 0) or np.all(agree < 0):
            side = "agree with" if np.all(agree > 0) else "contradict"
            raise FitFailure(
                f"{what}: the σ of {name!r} has no finite estimate: all "
                f"{int(count[rows].sum())} of its comparisons {side} the "
                "fitted rewards (separable data within its rows); pool it with the "
                "reference (--pool-rare) or add comparisons"
            )
    eta = np.asarray(model.logits(params, data))
    extreme = used & (np.abs(eta) > _MAX_LOGIT)
    if extreme.any():
        raise FitFailure(
            f"{what}: quasi-separation: {int(count[extreme].sum())} "
            "comparison(s) are predicted with probability 1 (|η| > 30): the estimates "
            "ran off towards infinity; add comparisons or use fewer features"
        )


def _fit_checked(
    data: Comparisons, what: str, names=(), prefs: Preferences | None = None
) -> FitSummary:
    """Fits weighted ``data`` and refuses, with the cause, anything not a usable MLE.

    Clustered sandwich when ``prefs`` has clusters (their ids index ``data``'s rows).
    """
    clustered = prefs is not None and prefs.cluster is not None
    res, cond, separated, cov, sandwich = fit_and_covariances(
        data,
        prefs.cluster if clustered else None,
        num_clusters=prefs.num_clusters if clustered else None,
    )
    max_cond = default_max_condition(data.y.dtype)
    cond = float(cond)
    if bool(separated):
        raise FitFailure(
            f"{what}: separable data: every comparison is predicted correctly by the "
            "fitted rewards, so the likelihood keeps rising as they grow and no finite "
            "estimate exists (add comparisons, or use fewer features)"
        )
    if not cond <= max_cond:
        raise FitFailure(
            f"{what}: non-identifiable design: the information matrix is singular or "
            f"badly conditioned (condition number {cond:.3g} > {max_cond:.3g}); causes: "
            "collinear features or covariates, an item or annotator the comparisons do "
            "not reach, or σ ≈ 0 for all annotators"
        )
    if not bool(res.converged):
        raise FitFailure(
            f"{what}: the fit did not converge (gradient norm "
            f"{float(res.grad_norm):.3g} after {int(res.num_steps)} Newton steps, "
            "or a worse point than the homogeneous fit)"
        )
    _check_separation(res.params, data, names, what)
    return FitSummary(
        params=res.params,
        log_likelihood=-float(res.loss) * float(jnp.sum(data.weight)),
        num_steps=int(res.num_steps),
        grad_norm=float(res.grad_norm),
        condition_number=cond,
        covariance=np.asarray(cov),
        sandwich=np.asarray(sandwich),
    )


# ------------------------------------------------------------------ intervals ------


@jax.jit
def _refits(data: Comparisons, weights: jax.Array):
    """``hr.fit`` of ``data`` under each of B weight vectors [B, n] (one program)."""
    return jax.vmap(lambda w: estimate.fit(data._replace(weight=w)))(weights)


def _bootstrap(prefs, num_bootstrap, seed, progress, chunk=50):
    """Percentile draws from B vmapped refits of resampled weights (rows or clusters)."""
    data = prefs.data
    weights = resample_weights(
        jax.random.key(seed),
        data,
        num_bootstrap,
        None if prefs.cluster is None else jnp.asarray(prefs.cluster),
        num_clusters=prefs.num_clusters or None,
    )
    padded, _ = _padded(data)
    # Weight 0 on the padding rows; the last chunk is filled up with repeats of the
    # first draws (their refits are dropped), so one program serves every chunk.
    width = padded.num_comparisons - data.num_comparisons
    weights = jnp.pad(weights, ((0, -num_bootstrap % chunk), (0, width)), mode="wrap")
    weights = weights.at[:, data.num_comparisons :].set(0.0)
    draws, ok = [], []
    for start in tqdm(
        range(0, num_bootstrap, chunk),
        desc="bootstrap",
        unit="chunk",
        disable=not progress,
        leave=False,
    ):
        res = _refits(padded, weights[start : start + chunk])
        draws.append(np.asarray(ravel_params(res.params)))
        ok.append(np.asarray(res.converged))
    draws = np.concatenate(draws)[:num_bootstrap]
    ok = np.concatenate(ok)[:num_bootstrap]
    usable = draws[ok]
    if len(usable) < 2:
        raise FitFailure(
            f"bootstrap: only {len(usable)} of {num_bootstrap} refits converged"
        )
    return usable, int(num_bootstrap - ok.sum())


def _intervals(prefs, fit, method, alpha, num_bootstrap, seed, progress):
    """(lower [p], upper [p], covariance [p, p], bootstrap failures or None)."""
    x = np.asarray(ravel_params(fit.params))
    z = scipy.stats.norm.ppf(1.0 - alpha / 2.0)
    wald = fit.covariance
    failed = None
    if method == "wald":
        cov = wald
    elif method == "sandwich":
        cov = fit.sandwich
    elif method == "profile":
        ci = confidence_intervals(fit.params, prefs.data, alpha, method="profile")
        lower = np.asarray(ravel_params(ci.lower))
        upper = np.asarray(ravel_params(ci.upper))
        return lower, upper, wald, None
    elif method == "bootstrap":
        draws, failed = _bootstrap(prefs, num_bootstrap, seed, progress)
        lower = np.quantile(draws, alpha / 2.0, axis=0)
        upper = np.quantile(draws, 1.0 - alpha / 2.0, axis=0)
        return lower, upper, np.cov(draws, rowvar=False).reshape(len(x), len(x)), failed
    else:
        raise ValueError(f"intervals must be one of {INTERVALS}, got {method!r}")
    se = np.sqrt(np.diagonal(cov))
    return x - z * se, x + z * se, cov, failed


# ------------------------------------------------------------------ tables ---------


def _flag(lower: float, upper: float) -> str:
    if upper < 0:
        return "adversarial: σ's interval lies below 0"
    if lower <= 0 <= upper:
        return "random: σ's interval contains 0"
    return ""


def _rationality_rows(prefs, fit, lower, upper) -> tuple[RationalityRow, ...]:
    d = len(prefs.feature_names)
    gamma = np.asarray(fit.params.gamma)
    rows = []
    if prefs.rationality == "annotator":
        counts = prefs.summary.annotators
        ref = prefs.rationality_reference
        pooled = [
            a
            for a in counts
            if a != ref and f"annotator={a}" not in prefs.rationality_names
        ]
        label = ref + (f" (pooled with {', '.join(pooled)})" if pooled else "")
        n_ref = counts[ref] + sum(counts[a] for a in pooled)
        rows.append(RationalityRow(label, "sigma", 1.0, 1.0, 1.0, n_ref, "reference"))
    for j, name in enumerate(prefs.rationality_names):
        lo, hi = float(lower[d + j]), float(upper[d + j])
        if "=" in name:  # one level of a categorical: σ = 1 + γ_j
            level = name.split("=", 1)[1] if prefs.rationality == "annotator" else name
            n = (
                prefs.summary.annotators.get(level)
                if prefs.rationality == "annotator"
                else None
            )
            rows.append(
                RationalityRow(
                    level,
                    "sigma",
                    float(1.0 + gamma[j]),
                    1.0 + lo,
                    1.0 + hi,
                    n,
                    _flag(1 + lo, 1 + hi),
                )
            )
        else:
            rows.append(
                RationalityRow(name, "gamma", float(gamma[j]), lo, hi, None, "")
            )
    return tuple(rows)


def _win_rates(prefs) -> tuple[np.ndarray, np.ndarray]:
    num = len(prefs.items)
    a, b = prefs.pair[:, 0], prefs.pair[:, 1]
    y = np.asarray(prefs.data.y)
    wins = np.zeros((num, num))
    np.add.at(wins, (np.where(y == 1, b, a), np.where(y == 1, a, b)), prefs.count)
    meetings = wins + wins.T
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(meetings > 0, wins / meetings, np.nan)
    return rate, meetings


def _leaderboard(prefs, fit, lower, upper, cov, alpha):
    """(rows best first, Holm p-values [K, K])."""
    items = prefs.items
    num = len(items)
    free = [i for i, v in enumerate(items) if v != prefs.reference]
    d = len(free)
    reward = np.zeros(num)
    reward[free] = np.asarray(fit.params.theta)
    lo, hi = np.zeros(num), np.zeros(num)
    lo[free], hi[free] = lower[:d], upper[:d]
    full = np.zeros((num, num))
    full[np.ix_(free, free)] = cov[:d, :d]
    ranked = rank_with_groups(
        RewardEstimate(jnp.asarray(reward), jnp.asarray(np.diagonal(full))),
        alpha,
        cov=jnp.asarray(full),
        method="holm",
    )
    _, meetings = _win_rates(prefs)
    order = list(ranked.order)
    rows = []
    for pos, i in enumerate(order):
        nxt = order[pos + 1] if pos + 1 < num else None
        rows.append(
            LeaderboardRow(
                item=items[i],
                reward=float(reward[i]),
                lower=float(lo[i]),
                upper=float(hi[i]),
                rank=int(ranked.rank[i]),
                rank_group=int(ranked.group[i]),
                letters=ranked.letters[i],
                comparisons=int(meetings[i].sum()),
                p_vs_next=None if nxt is None else float(ranked.p_adjusted[i, nxt]),
            )
        )
    return tuple(rows), np.asarray(ranked.p_adjusted)


# ------------------------------------------------------------------ held out -------


def _scores(params, data) -> tuple[float, float]:
    """Mean log-likelihood and accuracy of ``params`` on weighted ``data``."""
    ll = np.asarray(model.log_likelihood(params, data))
    eta = np.asarray(model.logits(params, data))
    y = np.asarray(data.y)
    count = np.asarray(data.weight)
    total = count.sum()
    correct = (eta > 0) == (y == 1)
    return float(count @ ll / total), float(count @ correct / total)


def _reliability(params, data, bins: int = 10):
    """Predicted P(y = 1) in equal-width bins vs the observed share (weighted)."""
    p = np.asarray(jax.nn.sigmoid(model.logits(params, data)))
    y = np.asarray(data.y)
    count = np.asarray(data.weight)
    # Both orientations of a comparison: the diagram is symmetric about (½, ½).
    p_all, y_all, c_all = np.r_[p, 1 - p], np.r_[y, 1 - y], np.r_[count, count]
    which = np.minimum((p_all * bins).astype(int), bins - 1)
    total = np.bincount(which, c_all, bins)
    keep = total > 0
    predicted = np.bincount(which, c_all * p_all, bins)[keep] / total[keep]
    observed = np.bincount(which, c_all * y_all, bins)[keep] / total[keep]
    return predicted, observed, total[keep]


def _held_out(prefs, fraction, seed):
    train, test = holdout_split(prefs, fraction, seed)
    # (prefs: the clusters of the full fits, so the same compiled programs serve.)
    what = "held-out split"
    fits = {"homogeneous": _fit_checked(_homogeneous(train), what, (), prefs)}
    if train.psi.shape[-1]:
        fits["heterogeneous"] = _fit_checked(
            train, what, prefs.rationality_names, prefs
        )
    ll, acc = {}, {}
    for name, fit in fits.items():
        cmp = test if name == "heterogeneous" else _homogeneous(test)
        ll[name], acc[name] = _scores(fit.params, cmp)
    best = fits.get("heterogeneous", fits["homogeneous"])
    best_data = test if "heterogeneous" in fits else _homogeneous(test)
    num_train, num_test = (int(np.sum(d.weight)) for d in (train, test))
    held = HeldOut(fraction, num_train, num_test, ll, acc)
    return held, _reliability(best.params, best_data)


# ------------------------------------------------------------------ entry point ----


def report(
    source: str | Preferences,
    *,
    intervals: str = "wald",
    alpha: float = 0.05,
    holdout: float | None = None,
    seed: int = 0,
    num_bootstrap: int = 1000,
    progress: bool = True,
    **load_options: Any,
) -> PreferenceReport:
    """Fits, tests and ranks a preference file (see the module docstring).

    >>> rep = hr.report("votes.csv", rationality="annotator", intervals="sandwich")
    >>> hetrlhf.own_data.files.write_report(rep, "report/")

    Args:
      source: a file (read with ``hr.load_preferences(source, **load_options)``) or
        ``Preferences``.
      intervals: "wald", "sandwich", "profile" or "bootstrap".
      alpha: 1 − confidence level, in (0, 1).
      holdout: share of comparisons (whole clusters when clustered) held out for the
        held-out scores, or None.
      seed: seed of the holdout split and the bootstrap.
      num_bootstrap: B resamples ("bootstrap").
      progress: show progress bars.
      **load_options: options of ``load_preferences`` (features, rationality, ...).

    Returns:
      ``PreferenceReport``.

    Raises:
      FitFailure: a fit that cannot be reported (non-convergence, separable data,
        singular information), with the cause.
      ValueError: bad options or data (see ``load_preferences``).
    """
    if intervals not in INTERVALS:
        raise ValueError(f"intervals must be one of {INTERVALS}, got {intervals!r}")
    check_alpha(alpha)
    check_draws("num_bootstrap", num_bootstrap)
    say = functools.partial(_say, progress)
    if not isinstance(source, Preferences):
        say(f"reading {source}")
        source = load_preferences(source, **load_options)
    prefs, data = source, source.data
    hom, het, lr = _fits(prefs, say)
    say(f"{intervals} intervals")
    lower, upper, cov, failed = _intervals(
        prefs, het, intervals, alpha, num_bootstrap, seed, progress
    )
    _check_intervals(lower, upper, prefs)
    names = prefs.feature_names + prefs.rationality_names
    leaderboard = p_holm = rate = meetings = None
    if prefs.features == "items":
        leaderboard, p_holm = _leaderboard(prefs, het, lower, upper, cov, alpha)
        rate, meetings = _win_rates(prefs)
    held = None
    if holdout is not None:
        say(f"held-out evaluation ({holdout:g} held out)")
        held, reliability = _held_out(prefs, holdout, seed)
        sample = "held-out"
    else:
        reliability, sample = _reliability(het.params, data), "in-sample"
    return PreferenceReport(
        preferences=prefs,
        intervals=intervals,
        alpha=alpha,
        homogeneous=hom,
        heterogeneous=het,
        lr_test=lr,
        names=names,
        lower=lower,
        upper=upper,
        covariance=cov,
        rationality=_rationality_rows(prefs, het, lower, upper),
        leaderboard=leaderboard,
        p_holm=p_holm,
        win_rate=rate,
        meetings=meetings,
        held_out=held,
        reliability=reliability,
        reliability_sample=sample,
        bootstrap_failed=failed,
        num_bootstrap=num_bootstrap if intervals == "bootstrap" else None,
        seed=seed,
    )


def _fits(prefs: Preferences, say):
    """(homogeneous fit, heterogeneous fit (the homogeneous one when k = 0), the
    likelihood-ratio test of the two or None)."""
    data = prefs.data
    k = data.psi.shape[-1]
    say(
        f"fitting {prefs.summary.num_comparisons} comparisons ({len(prefs.count)} "
        "unique rows; the first fit of a shape compiles for a few seconds, unless "
        "JAX's persistent compilation cache has it)"
    )
    hom = _fit_checked(_homogeneous(data), "homogeneous fit", (), prefs)
    if not k:
        return hom, hom, None
    het = _fit_checked(data, "heterogeneous fit", prefs.rationality_names, prefs)
    return hom, het, likelihood_ratio_test(hom.log_likelihood, het.log_likelihood, k)


def _say(progress: bool, message: str) -> None:
    """A step of a long report, on stderr (with ``progress``)."""
    if progress:
        tqdm.write(f"hetrlhf: {message} ...", file=sys.stderr)


def _check_intervals(lower, upper, prefs) -> None:
    """No NaN or unbounded interval is presented as a result."""
    names = prefs.feature_names + prefs.rationality_names
    bad = [
        names[j]
        for j in range(len(names))
        if not (math.isfinite(lower[j]) and math.isfinite(upper[j]))
    ]
    if bad:
        raise FitFailure(
            f"the intervals of {bad[:10]} are unbounded or undefined (the data cannot "
            "bound them: too few comparisons, or nearly separable data)"
        )
