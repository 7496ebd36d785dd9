"""``confidence_intervals(method=...)``: Wald, profile likelihood, bootstrap, sandwich.

The dispatcher behind ``hr.confidence_intervals``. Wald intervals (the default) come
from ``hetrlhf.btl.inference``. At small n they under-cover for γ (the likelihood is
far from quadratic in the rationality direction); three alternatives live here, all
working for pairwise ``Comparisons`` and for Plackett–Luce ``Rankings`` through the
family interface of ``hetrlhf.btl.model``:

* ``profile_intervals`` — profile-likelihood intervals. For coordinate j the profile
  loss is pL_j(b) = min_{x: x_j = b} L_n(x) (the other coordinates re-optimised by a
  masked Newton solver, ``hetrlhf.btl.newton``), and the interval is
  {b : 2n(pL_j(b) − L_n(x̂)) ≤ χ²₁(1−α)}. Each end point is the root of the signed
  root statistic f(t) = sqrt(2n(pL_j(x̂_j ± t) − L_n(x̂))) = z_{1−α/2}, found by a
  safeguarded Newton iteration (f'(t) = ±n·∂_jL_n / f by the envelope theorem) with
  bisection once a bracket is known. All 2p end points are solved in one ``vmap``.
  Invariant to reparametrisation; the end points can be infinite when the profile
  flattens below the critical value (then the data cannot bound the coordinate).
* ``bootstrap_intervals`` — parametric bootstrap: B label draws (comparisons) or
  ranking draws (Plackett–Luce, Gumbel trick) from the fitted model with the features
  held fixed, each refitted with the same estimator (``hr.fit``),
  vmapped over draws. Percentile, basic and studentized (bootstrap-t) intervals
  (Efron & Tibshirani 1993, ch. 12–13; Davison & Hinkley 1997, §5.2). Refits that did
  not converge are excluded from the quantiles and counted. With ``resample="cases"``
  the nonparametric case bootstrap instead (or the cluster bootstrap, whole clusters
  drawn): a resample of the rows is a vector of frequency weights
  (``resample_weights``), so the B refits are one ``vmap`` of ``hr.fit`` over weight
  vectors.
* ``sandwich_covariance`` — the robust covariance H⁻¹JH⁻¹/n (Huber 1967; White 1982),
  H the observed information per observation, J = (1/n) Σ s_i s_iᵀ the outer product
  of the per-observation scores: valid under a misspecified rationality (it estimates
  the covariance of the KL-projection estimator). This is statsmodels' ``HC0``.
"""

from __future__ import annotations

import functools
import warnings
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import norm

from hetrlhf.btl import estimate, inference, model, newton
from hetrlhf.btl.estimate import ConvergenceWarning
from hetrlhf.btl.newton import default_tol
from hetrlhf.types import FitResult, Intervals, Params, ravel_params, unravel_params
from hetrlhf.validation import (
    check_alpha,
    check_conditioning,
    check_draws,
    cholesky_and_condition,
    condition_number,
    is_traced,
)

__all__ = [
    "METHODS",
    "BartlettResult",
    "BootstrapResult",
    "ProfileResult",
    "bartlett_factors",
    "bootstrap_draws",
    "bootstrap_intervals",
    "cluster_bootstrap_mean",
    "confidence_intervals",
    "intervals_from_draws",
    "profile_bounds",
    "profile_intervals",
    "resample_weights",
    "sandwich_covariance",
    "sandwich_intervals",
]

METHODS = ("wald", "profile", "bootstrap", "sandwich")
# How the bootstrap draws a new dataset (``bootstrap_intervals(resample=...)``).
RESAMPLE = ("parametric", "cases")

# Status codes of a profile end point.
FOUND, UNBOUNDED, FAILED = 0, 1, 2
_RUNNING = -1


def _wald_half_width(hess, n, z):
    """z·sqrt(diag(H⁻¹)/n), falling back to NaN where H is not positive definite."""
    chol = jnp.linalg.cholesky(hess)
    inv = jax.scipy.linalg.cho_solve(
        (chol, True), jnp.eye(hess.shape[-1], dtype=hess.dtype)
    )
    return z * jnp.sqrt(jnp.diagonal(inv) / n)


# --------------------------------------------------------------------------------------
# Profile likelihood.
# --------------------------------------------------------------------------------------


class ProfileResult(NamedTuple):
    """Profile-likelihood end points, θ coordinates first, then γ.

    Attributes:
      lower, upper: [p] end points; ∓inf where the profile stays below the critical
        value out to ``max_distance`` (unbounded), NaN where the search failed.
      status: [p, 2] int, per (coordinate, side): 0 found, 1 unbounded, 2 failed.
      num_evaluations: [p, 2] int, constrained fits used per end point.
    """

    lower: jax.Array
    upper: jax.Array
    status: jax.Array
    num_evaluations: jax.Array


def _next_t(t, f, slope, t_lo, t_hi, z, t_max):
    """(next t, bracket [t_lo, t_hi]) of the root search of f(t) = z after f(t) = f.

    A Newton step on f with slope ``slope`` where it stays inside the bracket (and
    below 4t before the root is bracketed), else bisection (or doubling), capped at
    ``t_max``.
    """
    t_lo = jnp.where(f < z, t, t_lo)
    t_hi = jnp.where(f < z, t_hi, t)
    bracketed = jnp.isfinite(t_hi)
    step = t + (z - f) / slope
    step = jnp.where(bracketed, step, jnp.minimum(step, 4.0 * t))
    ok = jnp.isfinite(step) & (slope > 0) & (step > t_lo) & (step < t_hi)
    fallback = jnp.where(bracketed, 0.5 * (t_lo + t_hi), 2.0 * t)
    return jnp.minimum(jnp.where(ok, step, fallback), t_max), t_lo, t_hi


def _end_status(t, f, t_lo, t_hi, count, z, t_max, *, root_tol, max_iter):
    """[] int32: FOUND, UNBOUNDED, FAILED or _RUNNING after ``count`` evaluations."""
    found = (jnp.abs(f - z) <= root_tol) | (t_hi - t_lo <= 1e-12 * (1.0 + t))
    unbounded = (f < z) & (t >= t_max)
    failed = (count >= max_iter) | ~jnp.isfinite(f)
    code = jnp.where(unbounded, UNBOUNDED, jnp.where(failed, FAILED, _RUNNING))
    return jnp.where(found, FOUND, code).astype(jnp.int32)


def _profile_end(
    derivs,
    x_hat,
    value_hat,
    half_width,
    j,
    sign,
    *,
    z,
    n,
    tol,
    root_tol,
    max_iter,
    max_steps,
    max_distance,
):
    """One end point: the root t > 0 of f(t) = z, b = x̂_j + sign·t (one coordinate)."""
    p = x_hat.shape[-1]
    free = jnp.arange(p) != j
    t_max = max_distance * half_width

    def evaluate(t, x_prev):
        start = x_prev.at[j].set(x_hat[j] + sign * t)
        st = newton.minimize(derivs, start, free=free, tol=tol, max_steps=max_steps)
        f = jnp.sqrt(2.0 * n * jnp.maximum(st.value - value_hat, 0.0))
        grad_j = derivs(st.x)[1][j]
        return f, n * sign * grad_j / f, st.x

    def cond(s):
        return s[-1] == _RUNNING

    def body(s):
        t, f, slope, x, t_lo, t_hi, count, _ = s
        t_new, t_lo, t_hi = _next_t(t, f, slope, t_lo, t_hi, z, t_max)
        # The first iteration evaluates the Wald end point (one traced copy of the
        # constrained fit instead of two keeps the compile time down).
        t_new = jnp.where(count == 0, jnp.minimum(half_width, t_max), t_new)
        f_new, slope_new, x_new = evaluate(t_new, x)
        count = count + 1
        code = _end_status(
            t_new,
            f_new,
            t_lo,
            t_hi,
            count,
            z,
            t_max,
            root_tol=root_tol,
            max_iter=max_iter,
        )
        return (t_new, f_new, slope_new, x_new, t_lo, t_hi, count, code)

    zero = jnp.zeros_like(value_hat)
    init = (
        zero,
        zero,
        zero,
        x_hat,
        zero,
        zero + jnp.inf,
        jnp.zeros((), jnp.int32),
        jnp.array(_RUNNING, jnp.int32),
    )
    t, _, _, _, _, _, count, code = jax.lax.while_loop(cond, body, init)
    bound = jnp.where(
        code == FOUND,
        x_hat[j] + sign * t,
        jnp.where(code == UNBOUNDED, sign * jnp.inf, jnp.nan),
    )
    return bound, code, count


@functools.partial(
    jax.jit,
    static_argnames=("max_iter", "max_steps", "max_distance", "root_tol", "tol"),
)
def profile_bounds(
    params: Params,
    data,
    alpha=0.05,
    *,
    tol=None,
    root_tol=None,
    max_iter: int = 60,
    max_steps: int = 50,
    max_distance: float = 50.0,
    scale=None,
) -> ProfileResult:
    """Profile-likelihood interval end points of every coordinate (pure, jitted).

    Args:
      params: the MLE (θ̂, γ̂) (e.g. ``hr.fit(data).params``).
      data: ``Comparisons`` or ``Rankings``.
      alpha: 1 − confidence level (traced; vmappable).
      tol: gradient tolerance of the constrained fits (default ``default_tol``).
      root_tol: tolerance on |f − z| of the root search (default sqrt(eps)).
      max_iter: root-search iterations per end point (each one constrained fit).
      max_steps: Newton iterations per constrained fit.
      max_distance: search out to ``max_distance`` Wald half-widths from x̂_j; a side
        whose statistic is still below the critical value there is reported unbounded.
      scale: optional [p] Bartlett factors c_j > 0 (``bartlett_factors``): coordinate
        j's critical value becomes c_j·χ²₁(1−α) (the interval of the Bartlett-corrected
        statistic LR_j / c_j). Default: 1 (the plain χ²₁ calibration).

    Returns:
      ``ProfileResult(lower [p], upper [p], status [p, 2], num_evaluations [p, 2])``.
    """
    family = model.family(data)
    x_hat = ravel_params(params)
    chex.assert_rank(x_hat, 1)
    dtype = x_hat.dtype
    p = x_hat.shape[-1]
    n = family.num_obs(data)
    tol = default_tol(dtype) if tol is None else tol
    root_tol = float(jnp.finfo(dtype).eps) ** 0.5 if root_tol is None else root_tol

    def derivs(x):
        return model.derivatives(x, data)

    value_hat, _, hess, _ = derivs(x_hat)
    z = norm.ppf(1.0 - jnp.asarray(alpha, dtype) / 2.0)
    scale = jnp.ones((p,), dtype) if scale is None else jnp.asarray(scale, dtype)
    chex.assert_shape(scale, (p,))
    z = z * jnp.sqrt(scale)  # [p] critical values on the signed-root scale
    half = _wald_half_width(hess, n, z)
    half = jnp.where(
        jnp.isfinite(half) & (half > 0), half, 0.1 * (1.0 + jnp.abs(x_hat))
    )

    coords = jnp.repeat(jnp.arange(p), 2)
    signs = jnp.tile(jnp.array([-1.0, 1.0], dtype), p)
    end = functools.partial(
        _profile_end,
        derivs,
        x_hat,
        value_hat,
        n=n,
        tol=tol,
        root_tol=root_tol,
        max_iter=max_iter,
        max_steps=max_steps,
        max_distance=max_distance,
    )
    bound, code, count = jax.vmap(lambda j, s: end(half[j], j, s, z=z[j]))(
        coords, signs
    )
    bound = bound.reshape(p, 2)
    return ProfileResult(
        bound[:, 0], bound[:, 1], code.reshape(p, 2), count.reshape(p, 2)
    )


class BartlettResult(NamedTuple):
    """Bootstrap Bartlett factors of the profile likelihood-ratio statistics.

    Attributes:
      factors: [p] c_j = mean of the bootstrap LR*_j (E[χ²₁] = 1, so c_j = 1 means no
        correction).
      statistics: [B, p] the bootstrap LR*_bj (NaN where unusable).
      num_used: [p] int, usable draws per coordinate (refit and restricted fit
        converged).
    """

    factors: jax.Array
    statistics: jax.Array
    num_used: jax.Array


@functools.partial(jax.jit, static_argnames=("num_bootstrap", "max_steps", "tol"))
def bartlett_factors(
    key: jax.Array,
    params: Params,
    data,
    *,
    num_bootstrap: int = 200,
    max_steps: int = 50,
    tol=None,
) -> BartlettResult:
    """Parametric-bootstrap Bartlett factors of every coordinate's LR statistic (pure).

    The profile statistic LR_j(b) = 2n(pL_j(b) − L_n(x̂)) is χ²₁ only as n → ∞; its
    mean is 1 + O(1/n), and dividing by the mean (the Bartlett correction) leaves an
    O(1/n²) error in the χ²₁ calibration (Bartlett 1937; Lawley 1956). The mean is
    estimated by the parametric bootstrap (Rocke 1989; Bickel & Ghosh 1990): B
    datasets simulated at x̂ with the features kept, each fitted without and with
    coordinate j held at its bootstrap-world truth x̂_j:

        LR*_bj = 2n(min_{x: x_j = x̂_j} L*_n(x) − min_x L*_n(x)),   c_j = mean_b LR*_bj.

    The restricted fits start from the unrestricted refit with x_j set to x̂_j (masked
    Newton, ``hetrlhf.btl.newton``); draws whose refit or restricted fit did not converge
    are excluded per coordinate. Vmapped over draws and coordinates.

    Args:
      key: PRNG key.
      params: the MLE (θ̂, γ̂).
      data: ``Comparisons`` or ``Rankings``.
      num_bootstrap: B (static).
      max_steps: Newton iterations per restricted fit (static).
      tol: gradient tolerance of the restricted fits (default ``default_tol``).

    Returns:
      ``BartlettResult(factors [p], statistics [B, p], num_used [p])``.
    """
    family = model.family(data)
    x_hat = ravel_params(params)
    chex.assert_rank(x_hat, 1)
    p = x_hat.shape[-1]
    n = family.num_obs(data)
    tol = default_tol(x_hat.dtype) if tol is None else tol

    def draw(k):
        boot = family.resample(k, params, data)
        res = estimate.fit(boot)
        x_star = ravel_params(res.params)

        def derivs(x):
            return model.derivatives(x, boot)

        value_star = derivs(x_star)[0]

        def restricted(j):
            free = jnp.arange(p) != j
            start = x_star.at[j].set(x_hat[j])
            st = newton.minimize(derivs, start, free=free, tol=tol, max_steps=max_steps)
            lr = 2.0 * n * jnp.maximum(st.value - value_star, 0.0)
            ok = (jnp.linalg.norm(st.grad) <= tol) & jnp.isfinite(lr)
            return jnp.where(ok & res.converged, lr, jnp.nan)

        return jax.vmap(restricted)(jnp.arange(p))

    stats = jax.vmap(draw)(jax.random.split(key, num_bootstrap))
    usable = jnp.isfinite(stats)
    used = jnp.sum(usable, axis=0)
    factors = jnp.sum(jnp.where(usable, stats, 0.0), axis=0) / jnp.maximum(used, 1)
    factors = jnp.where(used > 0, factors, jnp.nan)
    return BartlettResult(factors, stats, used.astype(jnp.int32))


def profile_intervals(
    params: Params, data, alpha=0.05, *, key=None, bartlett_draws: int = 0, **options
) -> Intervals:
    """Profile-likelihood intervals as ``Intervals`` (se: the Wald standard errors).

    With ``bartlett_draws = B > 0`` (and a ``key``), the critical value of coordinate
    j is c_j·χ²₁(1−α) with c_j the bootstrap Bartlett factor (``bartlett_factors``):
    the Bartlett-corrected profile interval, better calibrated at small n.

    Eagerly, warns with ``hr.ConvergenceWarning`` when an end point is unbounded or
    its search failed (NaN). Options: see ``profile_bounds``.
    """
    check_alpha(alpha)
    family = model.family(data)
    scale = None
    if bartlett_draws:
        if key is None:
            raise ValueError(
                "bartlett_draws > 0 needs a PRNG key: key=jax.random.key(0)"
            )
        check_draws("bartlett_draws", bartlett_draws)
        bart = bartlett_factors(key, params, data, num_bootstrap=bartlett_draws)
        scale = bart.factors
        if not is_traced(scale) and not bool(jnp.all(jnp.isfinite(scale))):
            raise ValueError(
                "bartlett_draws: no usable bootstrap draw for some coordinate (every "
                "refit or restricted fit failed); check that params is a converged fit"
            )
    res = profile_bounds(params, data, alpha, scale=scale, **options)
    d = family.dim(data)
    x_hat = ravel_params(params)
    hess = model.derivatives(x_hat, data)[2]
    cond = condition_number(hess)
    # The Cholesky of the Wald width after the eigenvalues in XLA's schedule (batched
    # LAPACK calls at once deadlock jaxlib 0.10's CPU kernels: cholesky_and_condition).
    _, hess = jax.lax.optimization_barrier((cond, hess))
    se = _wald_half_width(hess, family.num_obs(data), 1.0)
    if not is_traced(res, params, data):
        _warn_profile(res)
    return Intervals(
        params,
        unravel_params(se, d),
        unravel_params(res.lower, d),
        unravel_params(res.upper, d),
        cond,
    )


def _warn_profile(res: ProfileResult) -> None:
    unbounded = int(jnp.sum(res.status == UNBOUNDED))
    failed = int(jnp.sum(res.status == FAILED))
    if unbounded:
        warnings.warn(
            f"profile likelihood: {unbounded} interval end point(s) unbounded (the "
            "likelihood-ratio statistic stays below the critical value out to "
            "max_distance Wald half-widths); reported as ±inf",
            ConvergenceWarning,
            stacklevel=3,
        )
    if failed:
        warnings.warn(
            f"profile likelihood: the root search failed for {failed} end point(s) "
            "(reported as NaN); check that params is a converged fit",
            ConvergenceWarning,
            stacklevel=3,
        )


# --------------------------------------------------------------------------------------
# Bootstrap: parametric (responses redrawn) or nonparametric (rows or clusters resampled).
# --------------------------------------------------------------------------------------


class BootstrapResult(NamedTuple):
    """Bootstrap intervals and the draws behind them.

    Attributes:
      intervals: ``Intervals``; ``se`` is the bootstrap standard deviation of the
        converged refits.
      draws: Params with leading axis [B]: the refitted estimates.
      draw_se: [B, p] Wald standard errors of each refit (for the studentized interval).
      converged: [B] bool, the refit converged (the others are excluded).
      num_failed: [] int, B − number of usable refits.
    """

    intervals: Intervals
    draws: Params
    draw_se: jax.Array
    converged: jax.Array
    num_failed: jax.Array


def _check_resample(data, resample: str, cluster, num_clusters) -> None:
    """Eager checks of a bootstrap's resampling scheme (skipped for traced values)."""
    if resample not in RESAMPLE:
        raise ValueError(f"resample must be one of {RESAMPLE}, got {resample!r}")
    if resample == "parametric":
        if cluster is not None:
            raise ValueError(
                "cluster is for resample='cases' (the cluster bootstrap); the "
                "parametric bootstrap redraws every response independently"
            )
        return
    if model.family(data).name != "comparisons":
        raise TypeError(
            "resample='cases' resamples the weights of pairwise Comparisons; got "
            f"{type(data).__name__}"
        )
    if cluster is not None and num_clusters is None:
        raise ValueError("num_clusters is required when cluster is given")
    weight = data.weight
    whole_rows = cluster is None and weight is not None and not is_traced(weight)
    if whole_rows and not bool(jnp.all(weight == jnp.round(weight))):
        raise ValueError(
            "the case bootstrap draws whole comparisons, so data.weight must hold "
            "integer counts (frequency weights); resample clusters instead "
            "(cluster=...) or expand the rows"
        )


def resample_weights(
    key: jax.Array,
    data,
    num_bootstrap: int,
    cluster: jax.Array | None = None,
    *,
    num_clusters: int | None = None,
) -> jax.Array:
    """Weights of B nonparametric bootstrap resamples of the rows of ``data``, [B, n].

    A resample of rows is a vector of frequency weights over the same rows
    (``Comparisons.weight``), so B resamples are refitted by one ``vmap`` of
    ``hr.fit(data._replace(weight=w))`` over the returned rows (jit/vmap at the call
    site; ``bootstrap_draws(resample="cases")`` does exactly that):

    * case bootstrap (Efron 1979): the N = Σ_i w_i comparisons (N = n unweighted)
      drawn with replacement, i.e. w* ~ Multinomial(N, w/N);
    * cluster bootstrap (Davison & Hinkley 1997, §3.8; for comparisons that are
      dependent within a prompt or an annotator): the C clusters drawn with
      replacement, each drawn cluster bringing all its rows, w*_i = w_i·m_{c(i)} with
      m ~ Multinomial(C, 1/C).

    A row of weight 0 (padding, a held-out row) stays at 0.

    Args:
      key: PRNG key.
      data: ``Comparisons`` (their ``weight``, or 1 per row); for the case bootstrap
        the weights must be integer counts.
      num_bootstrap: B (static).
      cluster: optional [n] int cluster ids in [0, num_clusters); rows of one
        weighted row's comparisons share its cluster.
      num_clusters: C (static; required with ``cluster``).

    Returns:
      [B, n] weights in the dtype of ``data.y``.

    Raises (eagerly):
      TypeError: ``data`` is not ``Comparisons``.
      ValueError: ``cluster`` without ``num_clusters``; non-integer weights for the
        case bootstrap.
    """
    _check_resample(data, "cases", cluster, num_clusters)
    dtype = data.y.dtype
    n = data.y.shape[-1]
    weight = jnp.ones((n,), dtype) if data.weight is None else data.weight
    if cluster is None:
        total = jnp.sum(weight)
        return jax.random.multinomial(
            key, total, weight / total, shape=(num_bootstrap, n), dtype=dtype
        )
    uniform = jnp.full((num_clusters,), 1.0 / num_clusters, dtype)
    times = jax.random.multinomial(
        key, num_clusters, uniform, shape=(num_bootstrap, num_clusters), dtype=dtype
    )
    return times[:, cluster] * weight


def cluster_bootstrap_mean(
    key: jax.Array, values, cluster, *, num_bootstrap: int, alpha: float = 0.05
) -> tuple[float, float, float]:
    """Mean of ``values`` with a percentile interval from a cluster bootstrap.

    The C clusters (e.g. prompts, whose rows are dependent) are drawn with replacement
    (``jax.random.randint``, B × C draws), each drawn cluster bringing all its rows;
    the statistic of a resample is the mean of its rows, Σ_c m_c S_c / Σ_c m_c n_c
    (S_c, n_c: the sum and count of cluster c; m_c: how often it was drawn), and the
    interval is the (α/2, 1 − α/2) quantile pair of the B resampled means (Davison &
    Hinkley 1997, §3.8). Eager (numpy).

    Args:
      key: PRNG key.
      values: [n] values (e.g. per-row differences of two policies).
      cluster: [n] cluster labels (any sortable values; their sorted order numbers
        the clusters).
      num_bootstrap: B.
      alpha: 1 − the level of the interval.

    Returns:
      (mean of ``values``, lower, upper) as Python floats.
    """
    check_alpha(alpha)
    values = np.asarray(values, float)
    if values.ndim != 1 or len(cluster) != values.shape[0]:
        raise ValueError(
            f"values must be [n] with one cluster label per row, got {values.shape} "
            f"and {len(cluster)} labels"
        )
    names, ids = np.unique(np.asarray(cluster), return_inverse=True)
    sums = np.bincount(ids, weights=values, minlength=len(names))
    counts = np.bincount(ids, minlength=len(names))
    draws = np.asarray(
        jax.random.randint(key, (num_bootstrap, len(names)), 0, len(names))
    )
    boot = sums[draws].sum(axis=1) / counts[draws].sum(axis=1)
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return float(values.mean()), float(lo), float(hi)


@functools.partial(
    jax.jit,
    static_argnames=("num_bootstrap", "fit_options", "resample", "num_clusters"),
)
def bootstrap_draws(
    key: jax.Array,
    params: Params,
    data,
    *,
    num_bootstrap: int = 200,
    fit_options=(),
    resample: str = "parametric",
    cluster: jax.Array | None = None,
    num_clusters: int | None = None,
) -> tuple[FitResult, jax.Array]:
    """B refits of bootstrap resamples (pure, jitted), vmapped over the resamples.

    Args:
      key: PRNG key.
      params: the fitted (θ̂, γ̂); "parametric" simulates from it.
      data: ``Comparisons`` or ``Rankings`` ("parametric"), ``Comparisons`` ("cases").
      num_bootstrap: B (static).
      fit_options: tuple of (name, value) pairs passed to the fit (static, hashable).
      resample: "parametric" — responses redrawn from the model at ``params`` (labels
        of comparisons, orders of rankings), features and covariates kept; "cases" —
        rows (or whole clusters) resampled as weight vectors (``resample_weights``).
      cluster, num_clusters: the clusters of the cluster bootstrap ("cases").

    Returns:
      (``FitResult`` with leading axis [B], se [B, p]: Wald standard errors of each refit).
    """
    family = model.family(data)
    options = dict(fit_options)

    def refit(boot):
        res = estimate.fit(boot, **options)
        hess = model.derivatives(ravel_params(res.params), boot)[2]
        return res, _wald_half_width(hess, family.num_obs(boot), 1.0)

    _check_resample(data, resample, cluster, num_clusters)
    if resample == "parametric":
        keys = jax.random.split(key, num_bootstrap)
        return jax.vmap(lambda k: refit(family.resample(k, params, data)))(keys)
    weights = resample_weights(
        key, data, num_bootstrap, cluster, num_clusters=num_clusters
    )
    return jax.vmap(lambda w: refit(data._replace(weight=w)))(weights)


def bootstrap_intervals(
    key: jax.Array,
    params: Params,
    data,
    alpha=0.05,
    *,
    num_bootstrap: int = 200,
    interval: str = "percentile",
    resample: str = "parametric",
    cluster: jax.Array | None = None,
    num_clusters: int | None = None,
    **fit_options,
) -> BootstrapResult:
    """Bootstrap intervals (traceable; warns eagerly about failed refits).

    With θ̂* the converged refits, q_a their a-quantiles, se the Wald standard error
    at θ̂ and t* = (θ̂* − θ̂)/se* (se* of each refit):

      percentile:   [q_{α/2}, q_{1−α/2}]
      basic:        [2θ̂ − q_{1−α/2}, 2θ̂ − q_{α/2}]
      studentized:  [θ̂ − t*_{1−α/2}·se, θ̂ − t*_{α/2}·se]   (bootstrap-t)

    Args:
      key: PRNG key.
      params: the MLE.
      data: ``Comparisons`` or ``Rankings``.
      alpha: 1 − confidence level.
      num_bootstrap: B (static).
      interval: "percentile", "basic" or "studentized".
      resample: "parametric" (default; responses redrawn from the fitted model) or
        "cases" (rows resampled, or whole clusters with ``cluster``; pairwise
        ``Comparisons``, weighted or not): see ``bootstrap_draws``.
      cluster: optional [n] int cluster ids ("cases": the cluster bootstrap).
      num_clusters: number of clusters (static; required with ``cluster``).
      **fit_options: options of the refit (e.g. ``max_steps``).

    Returns:
      ``BootstrapResult``.
    """
    if interval not in ("percentile", "basic", "studentized"):
        raise ValueError(
            f"interval must be 'percentile', 'basic' or 'studentized', got {interval!r}"
        )
    check_alpha(alpha)
    if not is_traced(key):
        check_draws("num_bootstrap", num_bootstrap)
    _check_resample(data, resample, cluster, num_clusters)
    fits, draw_se = bootstrap_draws(
        key,
        params,
        data,
        num_bootstrap=num_bootstrap,
        fit_options=tuple(sorted(fit_options.items())),
        resample=resample,
        cluster=cluster,
        num_clusters=num_clusters,
    )
    out = intervals_from_draws(params, data, fits, draw_se, alpha, interval=interval)
    if not is_traced(out.num_failed, params, data) and int(out.num_failed):
        warnings.warn(
            f"{resample} bootstrap: {int(out.num_failed)} of {num_bootstrap} refits "
            "did not converge (or had no finite standard error) and were excluded",
            ConvergenceWarning,
            stacklevel=2,
        )
    return out


def intervals_from_draws(
    params: Params,
    data,
    fits: FitResult,
    draw_se: jax.Array,
    alpha=0.05,
    *,
    interval: str = "percentile",
) -> BootstrapResult:
    """Bootstrap intervals from given refits (``bootstrap_draws``'s output); traceable.

    One set of draws serves all three interval kinds (see ``bootstrap_intervals``).
    """
    if interval not in ("percentile", "basic", "studentized"):
        raise ValueError(
            f"interval must be 'percentile', 'basic' or 'studentized', got {interval!r}"
        )
    family = model.family(data)
    d = family.dim(data)
    n = family.num_obs(data)
    x_hat = ravel_params(params)
    draws = ravel_params(fits.params)  # [B, p]
    chex.assert_rank([x_hat, draws, draw_se], [1, 2, 2])
    ok = fits.converged & jnp.all(jnp.isfinite(draws), -1)
    if interval == "studentized":
        ok = ok & jnp.all(jnp.isfinite(draw_se) & (draw_se > 0), -1)
    usable = jnp.where(ok[:, None], draws, jnp.nan)
    lo_q, hi_q = alpha / 2.0, 1.0 - alpha / 2.0
    hess = model.derivatives(x_hat, data)[2]
    if interval == "percentile":
        lower = jnp.nanquantile(usable, lo_q, axis=0)
        upper = jnp.nanquantile(usable, hi_q, axis=0)
    elif interval == "basic":
        lower = 2 * x_hat - jnp.nanquantile(usable, hi_q, axis=0)
        upper = 2 * x_hat - jnp.nanquantile(usable, lo_q, axis=0)
    else:
        se_wald = _wald_half_width(hess, n, 1.0)
        t = jnp.where(ok[:, None], (draws - x_hat) / draw_se, jnp.nan)
        lower = x_hat - jnp.nanquantile(t, hi_q, axis=0) * se_wald
        upper = x_hat - jnp.nanquantile(t, lo_q, axis=0) * se_wald
    boot_sd = jnp.nanstd(usable, axis=0, ddof=1)
    intervals = Intervals(
        params,
        unravel_params(boot_sd, d),
        unravel_params(lower, d),
        unravel_params(upper, d),
        condition_number(hess),
    )
    return BootstrapResult(
        intervals, fits.params, draw_se, ok, draws.shape[0] - jnp.sum(ok)
    )


# --------------------------------------------------------------------------------------
# Sandwich covariance.
# --------------------------------------------------------------------------------------


def _sandwich(params: Params, data, cluster, num_clusters, max_condition):
    """(covariance [p, p], cond(H) []) of ``sandwich_covariance``."""
    family = model.family(data)
    d = family.dim(data)
    n = family.num_obs(data)
    x = ravel_params(params)
    hess = model.derivatives(x, data)[2]
    chol, cond = cholesky_and_condition(hess)  # in order: see cholesky_and_condition
    check_conditioning(hess, cond, max_condition, "sandwich_covariance")
    # Forward mode: p passes give the [n, p] per-observation scores (reverse mode
    # would build an [n, n] cotangent basis).
    scores = jax.jacfwd(lambda v: family.log_likelihood(unravel_params(v, d), data))(x)
    weight = family.weight(data)
    if cluster is not None:
        if num_clusters is None:
            raise ValueError("num_clusters is required when cluster is given")
        if weight is not None:  # a weighted row is w_i rows of one cluster
            scores = weight[:, None] * scores
        scores = jax.ops.segment_sum(scores, cluster, num_clusters)
        meat = scores.T @ scores / n
    elif weight is None:
        meat = scores.T @ scores / n
    else:  # w_i identical rows, each its own cluster: Σ w_i s_i s_iᵀ
        meat = (scores.T * weight) @ scores / n
    bread = jax.scipy.linalg.cho_solve(chol, jnp.eye(x.shape[-1], dtype=x.dtype))
    cov = bread @ meat @ bread / n
    return 0.5 * (cov + cov.T), cond


def sandwich_covariance(
    params: Params,
    data,
    cluster=None,
    *,
    num_clusters: int | None = None,
    max_condition=None,
) -> jax.Array:
    """Robust covariance H⁻¹ J H⁻¹ / n of (θ̂, γ̂), shape [p, p] (Huber 1967; White 1982).

    H = ∇²L_n (observed information per observation), J = (1/n) Σ_c s_c s_cᵀ with s_c
    the score of cluster c: the sum of the per-observation scores ∇ log p(response_i)
    over i ∈ c (Liang & Zeger 1986). Without ``cluster`` every observation is its own
    cluster: statsmodels' ``cov_type="HC0"``; with it, CR0 (no small-sample
    correction), valid when observations are dependent within clusters (several
    annotators labelling one item, or one prompt). When the model is correct J ≈ H and
    this is the Wald covariance; under misspecification (e.g. a rationality that is
    not linear in ψ) only this one is consistent for the covariance of θ̂ around its
    limit, the KL projection. Rows with Δφ = 0 contribute nothing (usable as padding).
    Weighted comparisons (``Comparisons.weight``): row i counts as w_i identical rows
    (of one cluster when ``cluster`` is given), so the result equals the raw rows'.

    Args:
      params: the MLE.
      data: ``Comparisons`` or ``Rankings`` (n observations).
      cluster: optional [n] int cluster ids in [0, num_clusters).
      num_clusters: number of clusters (static; required with ``cluster``).
      max_condition: eager error threshold on cond(H); default 0.01/eps.

    Returns:
      [p, p] covariance, θ block first.

    Raises (eagerly only):
      ValueError: H singular or badly conditioned; ``cluster`` without
        ``num_clusters``.
    """
    return _sandwich(params, data, cluster, num_clusters, max_condition)[0]


def sandwich_intervals(
    params: Params, data, alpha=0.05, *, max_condition=None
) -> Intervals:
    """Wald-type intervals estimate ± z_{1−α/2}·se with sandwich standard errors."""
    check_alpha(alpha)
    cov, cond = _sandwich(params, data, None, None, max_condition)
    return inference.symmetric_intervals(params, cov, cond, alpha)


# --------------------------------------------------------------------------------------
# Dispatch.
# --------------------------------------------------------------------------------------


def confidence_intervals(
    params: Params,
    data,
    alpha=0.05,
    *,
    method: str = "wald",
    key=None,
    kind: str = "observed",
    max_condition=None,
    information=None,
    **options,
) -> Intervals:
    """Confidence intervals for every coordinate of (θ, γ); Wald by default.

    The default (``method="wald"``) is θ̂_j ± z_{1−α/2}·se_j, se from I⁻¹/n. Other
    methods (this module; better at small n or under misspecification):

    * "profile": profile-likelihood intervals {b : 2n(pL_j(b) − L_n(θ̂)) ≤ χ²₁(1−α)}
      (end points ±inf when the data cannot bound a coordinate); ``se`` is Wald's.
      With ``bartlett_draws=B`` (and ``key``) the critical value of each coordinate
      is multiplied by its parametric-bootstrap Bartlett factor (mean of the
      bootstrap LR statistics): the best-calibrated method at small n in our study.
    * "bootstrap": parametric bootstrap from the fitted model, B refits vmapped
      (``key`` required; options ``num_bootstrap=200``,
      ``interval="percentile"|"basic"|"studentized"``, fit options); ``se`` is the
      bootstrap standard deviation. ``resample="cases"`` resamples the rows instead
      (``cluster=``, ``num_clusters=``: whole clusters), also for weighted data.
    * "sandwich": θ̂_j ± z·se_j with the robust covariance H⁻¹JH⁻¹/n (statsmodels'
      HC0), valid under a misspecified rationality.

    Args:
      params: the estimate (θ̂, γ̂), e.g. ``hr.fit(data).params``.
      data: the data it was fitted on (``Comparisons`` or ``Rankings``).
      alpha: 1 − confidence level.
      method: "wald" (default), "profile", "bootstrap" or "sandwich".
      key: PRNG key (``method="bootstrap"``, or "profile" with ``bartlett_draws``).
      kind: information used for the Wald standard errors ("observed" or "expected").
      max_condition: eager error threshold on the information's condition number;
        default ``default_max_condition(dtype)``.
      information: "wald" only: the ``kind`` information at ``params`` if already
        computed (``hr.estimate.fit_with_information``), saving a pass over the data.
      **options: "profile": ``bartlett_draws`` (B of the bootstrap Bartlett
        correction, default 0: none) and see ``profile_bounds``; "bootstrap":
        ``num_bootstrap``, ``interval``, ``resample``, ``cluster``, ``num_clusters``
        and fit options.

    Returns:
      ``Intervals(estimate, se, lower, upper, condition_number)``; the first four are
      Params pytrees.
    """
    check_alpha(alpha)
    if method == "wald":
        if key is not None or options:
            raise TypeError(
                "method='wald' takes no key or options, got "
                f"{sorted(options) + (['key'] if key is not None else [])}"
            )
        return inference.wald_intervals(
            params,
            data,
            alpha,
            kind=kind,
            max_condition=max_condition,
            information=information,
        )
    if information is not None:
        raise TypeError(f"information= is for method='wald' only, got {method!r}")
    if method == "profile":
        return profile_intervals(params, data, alpha, key=key, **options)
    if method == "bootstrap":
        if key is None:
            raise ValueError(
                "method='bootstrap' needs a PRNG key: key=jax.random.key(0)"
            )
        return bootstrap_intervals(key, params, data, alpha, **options).intervals
    if method == "sandwich":
        if options:
            raise TypeError(
                f"method='sandwich' takes no options, got {sorted(options)}"
            )
        return sandwich_intervals(params, data, alpha, max_condition=max_condition)
    raise ValueError(f"method must be one of {METHODS}, got {method!r}")
