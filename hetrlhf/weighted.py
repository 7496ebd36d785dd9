"""Frequency-weighted comparisons: exact fits and intervals on unique rows with counts.

An arena of K models has at most K(K−1) ordered pairs, so 50,000 votes repeat the same
(Δφ, ψ, y) rows many times. Fitting each unique row once, weighted by how often it
occurs, gives exactly the raw-row likelihood (Liu, Lu & Sun 2025, eq. (2.3)):

    n·L_n(θ, γ) = Σ_i ℓ_i = Σ_u c_u ℓ_u,     n = Σ_u c_u,

so the MLE, the observed information and the sandwich are those of the raw rows — at
the cost of U unique rows instead of n. A bootstrap resample of rows (or of clusters)
is a vector of counts over the same unique rows, so B resamples are B count vectors
fitted in one ``vmap`` (no refits in a process pool).

Everything here is built on the one likelihood, ``hetrlhf.model.log_likelihood``
(differentiated by autodiff), and the one masked Newton solver, ``hetrlhf.newton``. The
core ``Comparisons`` have no weight field yet; this module is where counts live until
the core likelihood takes them (then ``fit`` here becomes ``hr.fit`` with weights).

Counts may be zero (a row absent from a resample or a training split contributes
nothing). All functions take ONE dataset; vmap over count vectors at the call site.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from hetrlhf.btl import model, newton
from hetrlhf.btl.newton import default_tol
from hetrlhf.types import Comparisons, FitResult, Params, ravel_params, unravel_params

__all__ = [
    "Diagnostics",
    "WeightedFit",
    "bootstrap_counts",
    "covariance",
    "derivatives",
    "diagnose",
    "fit",
    "fit_diagnosed",
    "fit_with_covariances",
    "log_likelihood",
    "logit_jacobian",
    "sandwich_covariance",
]


def _dims(data: Comparisons) -> tuple[int, int]:
    return data.phi0.shape[-1], data.psi.shape[-1]


def log_likelihood(params: Params, data: Comparisons, count: jax.Array) -> jax.Array:
    """Σ_u c_u ℓ_u: the log-likelihood of the raw rows, shape [].

    Args:
      params: (θ, γ).
      data: U unique rows.
      count: [U] non-negative counts c_u.
    """
    return jnp.sum(count * model.log_likelihood(params, data))


def logit_jacobian(x: jax.Array, data: Comparisons) -> jax.Array:
    """[U, p] Jacobian g_u = ∂η_u/∂x of the logits at x (``jax.linearize``)."""
    d, _ = _dims(data)
    _, jac = jax.linearize(lambda v: model.logits(unravel_params(v, d), data), x)
    return jax.vmap(jac, out_axes=1)(jnp.eye(x.shape[-1], dtype=x.dtype))


def derivatives(x: jax.Array, data: Comparisons, count: jax.Array, *, jacobian=None):
    """Value, gradient, Hessian and expected information of the mean loss at x = (θ, γ).

    The mean loss is −Σ c_u ℓ_u / Σ c_u (= L_n of the raw rows). With η_u the logits
    (``model.logits``), g_u = ∂η_u/∂x their Jacobian (autodiff: ``jax.linearize``
    over the unit vectors) and p_u = sigmoid(η_u):

        ∇L_n  = Σ c_u (p_u − y_u) g_u / Σ c
        F     = Σ c_u p_u(1 − p_u) g_u g_uᵀ / Σ c          (expected information)
        ∇²L_n = F + Σ c_u (p_u − y_u) ∇²η_u / Σ c

    The last term is the Hessian of the logits weighted by the residuals (autodiff with
    the residuals held fixed); it vanishes when k = 0 (η is linear in θ: ∇²L_n = F),
    which is then known statically and not computed.

    Args:
      x: [d + k] parameters.
      data: U unique rows.
      count: [U] counts.
      jacobian: optional [U, p] Jacobian of the logits, valid at every x only when
        k = 0 (η linear in θ): ``fit`` computes it once then, instead of once per
        evaluation (under a vmap over count vectors it is shared by all of them).

    Returns:
      (value [], grad [p], hessian [p, p], expected information [p, p]), the
      signature ``hetrlhf.newton.minimize`` takes.
    """
    d, k = _dims(data)
    total = jnp.sum(count)

    def logits(v):
        return model.logits(unravel_params(v, d), data)

    if jacobian is not None and k == 0:
        eta, g = logits(x), jacobian
    else:
        eta, g = logits(x), logit_jacobian(x, data)
    p = jax.nn.sigmoid(eta)
    value = -log_likelihood(unravel_params(x, d), data, count) / total
    resid = count * (p - data.y) / total
    grad = g.T @ resid
    fisher = (g.T * (count * p * (1.0 - p) / total)) @ g
    hess = fisher
    if k:
        fixed = jax.lax.stop_gradient(resid)
        hess = fisher + jax.hessian(lambda v: fixed @ logits(v))(x)
    return value, grad, hess, fisher


def fit(
    data: Comparisons,
    count: jax.Array,
    init: Params | None = None,
    *,
    tol=None,
    max_steps: int = 100,
) -> FitResult:
    """MLE of (θ, γ) from unique rows and counts (see ``fit_diagnosed``)."""
    return fit_diagnosed(data, count, init, tol=tol, max_steps=max_steps)[0]


def fit_diagnosed(
    data: Comparisons,
    count: jax.Array,
    init: Params | None = None,
    *,
    tol=None,
    max_steps: int = 100,
) -> tuple[FitResult, Diagnostics]:
    """MLE of (θ, γ) from unique rows and counts (pure; jit/vmap at the call site).

    The phases of ``hetrlhf.estimate.newton_fit``: the convex homogeneous fit (γ held
    at 0) from θ = 0 (or from ``init``'s θ), then the joint fit from there, both by the masked Newton solver
    (``hetrlhf.newton.minimize``). ``converged`` means ‖∇L_n‖ ≤ tol at a point whose
    Hessian is positive definite, no worse than the homogeneous fit, and the rows with
    a positive count are not perfectly separated (``diagnose`` says which failed).

    Args:
      data: U unique rows.
      count: [U] counts (zeros allowed).
      init: optional start of the homogeneous phase (its θ; γ starts at 0), e.g. the
        full-data MLE for bootstrap refits: fewer Newton steps, the same minimum (the
        homogeneous loss is convex).
      tol: tolerance on ‖∇L_n‖₂ (default ``estimate.default_tol``).
      max_steps: Newton iterations per phase (static).

    Returns:
      (``FitResult(params, converged, num_steps, grad_norm, loss)`` with ``loss`` the
      mean loss −Σ c ℓ / Σ c, ``Diagnostics`` at the estimate).
    """
    d, k = _dims(data)
    dtype = data.y.dtype
    tol = default_tol(dtype) if tol is None else tol

    x0 = jnp.zeros((d + k,), dtype)
    if init is not None:
        x0 = x0.at[:d].set(init.theta)
    # k = 0: the logits are linear in θ, so their Jacobian is computed once.
    jacobian = logit_jacobian(x0, data) if k == 0 else None

    def derivs(x):
        return derivatives(x, data, count, jacobian=jacobian)

    theta_only = jnp.arange(d + k) < d
    # Phase 1 runs to the full tolerance: it is the homogeneous MLE of the LR test and
    # of the "no worse than homogeneous" check (and the whole fit when k = 0).
    hom = newton.minimize(derivs, x0, free=theta_only, tol=tol, max_steps=max_steps)
    joint = newton.minimize(derivs, hom.x, tol=tol, max_steps=max_steps) if k else hom
    # The last Newton state holds the gradient and Hessian at the estimate (all
    # coordinates free in the last phase), so the diagnosis needs no new pass.
    diag = _diagnose(
        unravel_params(joint.x, d), data, count, joint.grad, joint.hess, tol
    )
    slack = 10 * jnp.finfo(dtype).eps * (1 + jnp.abs(hom.value))
    ok = diag.ok & (joint.value <= hom.value + slack)
    result = FitResult(
        unravel_params(joint.x, d),
        ok,
        hom.count + joint.count if k else hom.count,
        diag.grad_norm,
        joint.value,
    )
    return result, diag


class Diagnostics(NamedTuple):
    """Why a weighted fit is (not) a usable maximum-likelihood estimate.

    Attributes:
      ok: [] bool, all of the checks below pass.
      grad_norm: [] ‖∇L_n‖₂.
      small_gradient: [] bool, grad_norm ≤ tol.
      positive_definite: [] bool, the Hessian is positive definite (a minimum).
      separated: [] bool, every row with a positive count is classified correctly by
        sign(η): the likelihood keeps rising along c·θ, no MLE exists.
      condition_number: [] of the Hessian (inf when not positive definite).
      information: [p, p] the observed information per comparison, ∇²L_n (so the
        Wald covariance is its inverse divided by n = Σ c).
    """

    ok: jax.Array
    grad_norm: jax.Array
    small_gradient: jax.Array
    positive_definite: jax.Array
    separated: jax.Array
    condition_number: jax.Array
    information: jax.Array


def diagnose(params: Params, data: Comparisons, count: jax.Array, *, tol=None):
    """The checks behind ``fit``'s ``converged`` flag, each reported (traceable)."""
    _, grad, hess, _ = derivatives(ravel_params(params), data, count)
    return _diagnose(params, data, count, grad, hess, tol)


def _diagnose(params, data, count, grad, hess, tol) -> Diagnostics:
    tol = default_tol(data.y.dtype) if tol is None else tol
    lam = jnp.linalg.eigvalsh(hess)
    positive_definite = lam[0] > 100 * jnp.finfo(lam.dtype).eps * jnp.abs(lam[-1])
    margin = (2.0 * data.y - 1.0) * model.logits(params, data)
    separated = jnp.all(jnp.where(count > 0, margin > 0, True))
    grad_norm = jnp.linalg.norm(grad)
    small = grad_norm <= tol
    cond = jnp.where(lam[0] > 0, lam[-1] / jnp.where(lam[0] > 0, lam[0], 1.0), jnp.inf)
    ok = small & positive_definite & ~separated & jnp.isfinite(grad_norm)
    return Diagnostics(ok, grad_norm, small, positive_definite, separated, cond, hess)


def _inverse(matrix: jax.Array) -> jax.Array:
    # Cholesky solve, not an explicit inverse; NaN when not positive definite.
    chol = jax.scipy.linalg.cho_factor(matrix, lower=True)
    return jax.scipy.linalg.cho_solve(
        chol, jnp.eye(matrix.shape[-1], dtype=matrix.dtype)
    )


def covariance(params: Params, data: Comparisons, count: jax.Array) -> jax.Array:
    """Wald covariance I⁻¹/n = (−∇² Σ c_u ℓ_u)⁻¹ of the raw rows, shape [p, p].

    The same matrix as ``hr.covariance`` on the n raw rows (observed information).
    NaN when the information is not positive definite (check ``diagnose`` first).
    """
    d, _ = _dims(data)
    hess = jax.hessian(lambda v: -log_likelihood(unravel_params(v, d), data, count))(
        ravel_params(params)
    )
    return _inverse(hess)


def sandwich_covariance(
    params: Params,
    data: Comparisons,
    count: jax.Array,
    cluster: jax.Array | None = None,
    *,
    num_clusters: int | None = None,
    bread: jax.Array | None = None,
) -> jax.Array:
    """Sandwich covariance H⁻¹ B H⁻¹ of the raw rows, shape [p, p] (CR0 / HC0).

    H = −∇² Σ c_u ℓ_u. Without clusters every raw row is its own cluster and the c_u
    copies of row u have the same score s_u = ∇ℓ_u, so B = Σ_u c_u s_u s_uᵀ (HC0).
    With clusters, B = Σ_c S_c S_cᵀ, S_c = Σ_{u ∈ c} c_u s_u (Liang & Zeger 1986; no
    small-sample factor: CR0). Identical to ``hr.sandwich_covariance`` on the raw rows
    (rows of one unique-row class must then share a cluster, which is how
    ``hetrlhf.data.preferences`` aggregates them).

    Args:
      params, data, count: the fit, its U unique rows and their counts.
      cluster: optional [U] int cluster ids in [0, num_clusters).
      num_clusters: number of clusters (static; required with ``cluster``).
      bread: optional precomputed H⁻¹ (the Wald covariance ``covariance``), e.g.
        from ``Diagnostics.information``.

    Returns:
      [p, p] covariance, θ block first.
    """
    d, _ = _dims(data)
    x = ravel_params(params)
    scores = jax.jacfwd(lambda v: model.log_likelihood(unravel_params(v, d), data))(x)
    if cluster is None:
        meat = (scores.T * count) @ scores
    else:
        if num_clusters is None:
            raise ValueError("num_clusters is required when cluster is given")
        summed = jax.ops.segment_sum(count[:, None] * scores, cluster, num_clusters)
        meat = summed.T @ summed
    if bread is None:
        bread = covariance(params, data, count)
    cov = bread @ meat @ bread
    return 0.5 * (cov + cov.T)


def bootstrap_counts(
    key: jax.Array,
    count: jax.Array,
    num_bootstrap: int,
    cluster: jax.Array | None = None,
    *,
    num_clusters: int | None = None,
) -> jax.Array:
    """Counts of B nonparametric bootstrap resamples of the raw rows, shape [B, U].

    Without clusters: n raw rows drawn with replacement, i.e. Multinomial(n, c/n) over
    the unique rows. With clusters (the cluster bootstrap; Davison & Hinkley 1997,
    §3.8): C clusters drawn with replacement, each drawn cluster bringing all its rows,
    so row u gets c_u·m_{cluster(u)} with m ~ Multinomial(C, 1/C).

    Args:
      key: PRNG key.
      count: [U] counts of the data.
      num_bootstrap: B (static).
      cluster: optional [U] cluster ids in [0, num_clusters).
      num_clusters: C (static; required with ``cluster``).

    Returns:
      [B, U] counts, the dtype of ``count``.
    """
    if cluster is None:
        total = jnp.sum(count)
        return jax.random.multinomial(
            key,
            total,
            count / total,
            shape=(num_bootstrap, count.shape[0]),
            dtype=count.dtype,
        )
    if num_clusters is None:
        raise ValueError("num_clusters is required when cluster is given")
    uniform = jnp.full((num_clusters,), 1.0 / num_clusters, count.dtype)
    times = jax.random.multinomial(
        key,
        num_clusters,
        uniform,
        shape=(num_bootstrap, num_clusters),
        dtype=count.dtype,
    )
    return times[:, cluster] * count


class WeightedFit(NamedTuple):
    """A fit with its diagnostics and both covariances (``fit_with_covariances``).

    Attributes:
      result: ``FitResult``.
      diagnostics: ``Diagnostics`` at the estimate.
      covariance: [p, p] Wald covariance (NaN if the information is singular).
      sandwich: [p, p] sandwich covariance (clustered when ``cluster`` is given).
    """

    result: FitResult
    diagnostics: Diagnostics
    covariance: jax.Array
    sandwich: jax.Array


def fit_with_covariances(
    data: Comparisons,
    count: jax.Array,
    cluster: jax.Array | None = None,
    *,
    num_clusters: int | None = None,
    tol=None,
    max_steps: int = 100,
) -> WeightedFit:
    """``fit_diagnosed``, then the Wald and sandwich covariances, in one program.

    The Wald covariance is the inverse of the information the last Newton step
    already holds (no new pass), so one ``jax.jit`` of this function compiles the
    whole "fit + intervals" pipeline once.
    """
    result, diag = fit_diagnosed(data, count, tol=tol, max_steps=max_steps)
    bread = _inverse(diag.information * jnp.sum(count))
    sandwich = sandwich_covariance(
        result.params, data, count, cluster, num_clusters=num_clusters, bread=bread
    )
    return WeightedFit(result, diag, bread, sandwich)
