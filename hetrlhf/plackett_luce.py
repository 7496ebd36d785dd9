"""K-wise rankings: the Plackett–Luce model with the heterogeneous rationality scale.

Our formulation (the papers' models, as DESIGN.md summarises them, are pairwise):
annotator i ranks K responses with features φ_i1..φ_iK; response k has utility

    u_ik = σ_γ(x_i) · θᵀφ_ik,     σ_γ(x) = ψ0(x) + γᵀψ(x)   (Liu, Lu & Sun 2025's scale)

and the ranking o_i (o_i0 best, ..., o_i,K−1 worst) has the Plackett–Luce probability

    P(o_i) = Π_{r=0}^{K−2} exp(u_{i,o_ir}) / Σ_{s=r}^{K−1} exp(u_{i,o_is})

(the best is chosen from all K, the second best from the rest, ...). For K = 2 this is
exactly the heterogeneous Bradley–Terry model: P(a¹ ≻ a⁰) = sigmoid(σ·θᵀ(φ¹ − φ⁰)),
so pairwise comparisons are the K = 2 case. The homogeneous model (ψ = ∅, ψ0 ≡ 1) with
one-hot item features is the classic item-level Plackett–Luce model (``choix``).

The loss is L_n = −(1/n) Σ_i log P(o_i); the fit, Fisher information and intervals work
as for comparisons: ``fit_rankings(data)``, then ``hr.fisher_information``,
``hr.covariance`` and ``hr.confidence_intervals(params, data, method=...)`` accept a
``Rankings`` as well as a ``Comparisons``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np

from hetrlhf import newton
from hetrlhf.estimate import default_tol, ravel_params, unravel_params
from hetrlhf.types import FitResult, Params
from hetrlhf.validation import (
    _as_float_array,
    _column_rank,
    covariates,
    default_float_dtype,
)

__all__ = [
    "Rankings",
    "derivatives",
    "expected_information",
    "fit_rankings",
    "from_comparisons",
    "is_separated",
    "log_likelihood",
    "loss",
    "rankings",
    "simulate_orders",
    "utilities",
]


class Rankings(NamedTuple):
    """Validated K-wise rankings (build them with ``rankings``).

    Attributes:
      phi: [n, K, d] features of the K responses shown to annotator i.
      order: [n, K] int32, a permutation per row: ``order[i, 0]`` is the index (into
        ``phi[i]``) of the preferred response, ``order[i, K−1]`` of the worst.
      psi: [n, k] annotator covariates (k = 0 for the homogeneous model).
      psi0: [n] known scale ψ0(x_i).
    """

    phi: jax.Array
    order: jax.Array
    psi: jax.Array
    psi0: jax.Array

    @property
    def ranked_phi(self) -> jax.Array:
        """[n, K, d] features sorted best first."""
        return jnp.take_along_axis(self.phi, self.order[..., None], axis=-2)

    @property
    def num_rankings(self) -> int:
        """n, the number of rankings."""
        return self.phi.shape[-3]


def rankings(phi, order, psi=None, psi0=None, *, dtype=None) -> Rankings:
    """Validates K-wise rankings and returns them as a pytree of jnp arrays.

    Args:
      phi: [n, K, d] features of the K ≥ 2 responses ranked by annotator i.
      order: [n, K] integers, each row a permutation of 0..K−1 listing the responses
        best first.
      psi: [n, k] annotator covariates, or None for the homogeneous model.
      psi0: [n] known scale, or None for ψ0 ≡ 1 (not ≡ 0, not in the span of ψ).
      dtype: float dtype (default: JAX's default float).

    Returns:
      ``Rankings``.

    Raises:
      TypeError: non-numeric input.
      ValueError: wrong shapes, NaN/inf, K < 2, a row of ``order`` that is not a
        permutation, ψ0 ≡ 0 or in the span of ψ, or within-ranking feature differences
        without full column rank (θ not identified).
    """
    phi = _as_float_array("phi", phi, 3)
    n, num_items, d = phi.shape
    if n == 0:
        raise ValueError("phi has no rows: at least one ranking (n >= 1) is needed")
    if num_items < 2:
        raise ValueError(
            f"phi must have K >= 2 responses per ranking, got K = {num_items}"
        )
    if d == 0:
        raise ValueError("phi has no features: d >= 1 is needed")
    order = _as_float_array("order", order, 2)
    if order.shape != (n, num_items):
        raise ValueError(
            f"order must have shape [n, K] = ({n}, {num_items}), got {order.shape}"
        )
    if np.any(order != np.round(order)):
        raise ValueError("order must contain integers (indices into phi's K axis)")
    order = order.astype(np.int64)
    bad = np.any(np.sort(order, axis=1) != np.arange(num_items), axis=1)
    if np.any(bad):
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"order[{row}] = {order[row].tolist()} is not a permutation of 0..{num_items - 1} "
            f"({int(bad.sum())} bad row(s))"
        )
    psi, psi0 = covariates(psi, psi0, n)
    diffs = (phi[:, 1:, :] - phi[:, :1, :]).reshape(-1, d)
    rank = _column_rank(diffs)
    if rank < d:
        raise ValueError(
            f"within-ranking feature differences have rank {rank} < d = {d}: some feature "
            "combination is constant within every ranking (a prompt-only feature, an "
            "intercept, or one-hot item features without a reference item), so θ is not "
            "identified"
        )
    dtype = default_float_dtype() if dtype is None else dtype
    return Rankings(
        phi=jnp.asarray(phi, dtype),
        order=jnp.asarray(order, jnp.int32),
        psi=jnp.asarray(psi, dtype),
        psi0=jnp.asarray(psi0, dtype),
    )


def from_comparisons(data) -> Rankings:
    """Pairwise ``Comparisons`` as K = 2 rankings (winner first). Pure; traceable."""
    phi = jnp.stack([data.phi0, data.phi1], axis=-2)
    winner = data.y.astype(jnp.int32)
    order = jnp.stack([winner, 1 - winner], axis=-1)
    return Rankings(phi=phi, order=order, psi=data.psi, psi0=data.psi0)


def utilities(params: Params, data: Rankings) -> jax.Array:
    """u_ik = σ_γ(x_i)·θᵀφ_ik in ranked order (best first), shape [n, K]."""
    sigma = data.psi0 + data.psi @ params.gamma
    return sigma[:, None] * (data.ranked_phi @ params.theta)


def _stage_mask(num_items: int) -> jnp.ndarray:
    """[K−1, K] bool: stage r chooses among ranked positions r..K−1."""
    idx = np.arange(num_items)
    return jnp.asarray(idx[None, :] >= idx[: num_items - 1, None])


def log_likelihood(params: Params, data: Rankings) -> jax.Array:
    """Per-ranking Plackett–Luce log-likelihood log P(o_i), shape [n].

    Each stage term u_r − logsumexp_{s≥r} u_s is computed with a masked logsumexp
    (stable for large |u|).
    """
    chex.assert_rank([data.phi, data.order], [3, 2])
    u = utilities(params, data)  # [n, K]
    mask = _stage_mask(u.shape[-1])  # [K−1, K]
    masked = jnp.where(mask, u[:, None, :], -jnp.inf)
    lse = jax.nn.logsumexp(masked, axis=-1)  # [n, K−1]
    return jnp.sum(u[:, :-1] - lse, axis=-1)


def loss(params: Params, data: Rankings) -> jax.Array:
    """Mean negative log-likelihood L_n, shape []."""
    return -jnp.mean(log_likelihood(params, data))


def _stage_gradients(params: Params, data: Rankings):
    """g_is = ∂u_is/∂(θ, γ) = [σ_i φ_is ; (θᵀφ_is) ψ_i], shape [n, K, p]; and u [n, K]."""
    sigma = data.psi0 + data.psi @ params.gamma
    ranked = data.ranked_phi
    r = ranked @ params.theta  # [n, K]
    g_theta = sigma[:, None, None] * ranked
    g_gamma = r[..., None] * data.psi[:, None, :]
    return jnp.concatenate([g_theta, g_gamma], axis=-1), sigma[:, None] * r


def expected_information(params: Params, data: Rankings) -> jax.Array:
    """Predictable (conditional) Fisher information per ranking, [p, p] (our derivation).

    At stage r the chosen response is a draw from softmax(u) over the remaining set
    S_r, so the stage score g_chosen − ḡ has conditional covariance
    Cov_π(g) = Σ_s π_s g_s g_sᵀ − ḡḡᵀ, ḡ = Σ_s π_s g_s, and this returns
    (1/n) Σ_i Σ_r Cov_{π_ir}(g_i) along the OBSERVED rankings. The stage scores are
    martingale differences, so its expectation over rankings is exactly the expected
    Fisher information E[s sᵀ]; for K = 2 (one stage, S_0 the full pair) it IS the
    expected information p(1−p) g gᵀ of the Bradley–Terry model. For K > 2 the exact
    expectation would sum over K! orders; this positive semi-definite matrix is what
    ``hr.fisher_information(..., kind="expected")`` returns for rankings.
    """
    g, u = _stage_gradients(params, data)  # [n, K, p], [n, K]
    mask = _stage_mask(u.shape[-1])
    pi = jax.nn.softmax(
        jnp.where(mask, u[:, None, :], -jnp.inf), axis=-1
    )  # [n, K−1, K]
    second = jnp.einsum("nrs,nsa,nsb->ab", pi, g, g)
    gbar = jnp.einsum("nrs,nsa->nra", pi, g)
    return (second - jnp.einsum("nra,nrb->ab", gbar, gbar)) / u.shape[0]


def derivatives(x: jax.Array, data: Rankings):
    """(value [], grad [p], Hessian [p, p], expected information [p, p]) of L_n at x.

    Value, gradient and Hessian by autodiff; the expected information in closed form
    (``expected_information``).
    """
    d = data.phi.shape[-1]

    def f(v):
        return loss(unravel_params(v, d), data)

    value, grad = jax.value_and_grad(f)(x)
    hess = jax.hessian(f)(x)
    return value, grad, hess, expected_information(unravel_params(x, d), data)


def is_separated(params: Params, data: Rankings) -> jax.Array:
    """[] bool: every ranking is reproduced strictly by the fitted utilities.

    Then scaling θ by c → ∞ drives every stage probability to 1 and L_n to 0, so the
    MLE does not exist (the analogue of perfectly separated comparisons).
    """
    u = utilities(params, data)
    later_max = jax.lax.cummax(u[:, ::-1], axis=1)[:, ::-1]  # max over s ≥ r
    return jnp.all(u[:, :-1] > later_max[:, 1:])


def _finish(x, data, count, tol, ok) -> FitResult:
    d = data.phi.shape[-1]
    params = unravel_params(x, d)
    value, grad, hess, _ = derivatives(x, data)
    lam = jnp.linalg.eigvalsh(hess)
    grad_norm = jnp.linalg.norm(grad)
    positive_definite = lam[0] > 100 * jnp.finfo(lam.dtype).eps * jnp.abs(lam[-1])
    converged = (
        ok
        & jnp.isfinite(value)
        & (grad_norm <= tol)
        & positive_definite
        & ~is_separated(params, data)
    )
    return FitResult(params, converged, count, grad_norm, value)


@functools.partial(jax.jit, static_argnames=("tol", "max_steps", "start_tol"))
def fit_rankings(
    data: Rankings,
    init: Params | None = None,
    *,
    tol=None,
    max_steps: int = 100,
    start_tol=1e-2,
) -> FitResult:
    """Maximum-likelihood fit of the heterogeneous Plackett–Luce model (pure, jitted).

    The same phases as ``hr.fit``'s Newton solver: a homogeneous fit (γ = 0; convex)
    from θ = 0 to ``start_tol``, then the joint Newton fit (exact Hessian, Fisher
    scoring where it is indefinite, Armijo line search) to ``tol``; given ``init``,
    also a run from it, keeping the lower loss. ``converged`` means: gradient norm ≤
    tol, positive-definite Hessian, finite loss, no worse than the homogeneous fit, and
    the rankings are not perfectly separated.

    Args:
      data: one ``Rankings`` dataset.
      init: optional start.
      tol: gradient-norm tolerance (default ``default_tol(dtype)``; static).
      max_steps: Newton iterations per phase (static).
      start_tol: tolerance of the homogeneous start (static).

    Returns:
      ``FitResult(params, converged, num_steps, grad_norm, loss)``.
    """
    d = data.phi.shape[-1]
    k = data.psi.shape[-1]
    dtype = data.phi.dtype
    tol = default_tol(dtype) if tol is None else tol
    hom_data = data._replace(psi=data.psi[..., :0])
    hom = newton.minimize(
        lambda x: derivatives(x, hom_data),
        jnp.zeros((d,), dtype),
        tol=start_tol,
        max_steps=max_steps,
    )
    hom_start = jnp.concatenate([hom.x, jnp.zeros((k,), dtype)])

    def joint(x0):
        return newton.minimize(
            lambda x: derivatives(x, data), x0, tol=tol, max_steps=max_steps
        )

    best = joint(hom_start)
    count = hom.count + best.count
    if init is not None:
        from_init = joint(ravel_params(init))
        use_init = from_init.value <= best.value
        best = jax.tree.map(lambda a, b: jnp.where(use_init, a, b), from_init, best)
        count = count + from_init.count
    slack = 10 * jnp.finfo(dtype).eps * (1 + jnp.abs(hom.value))
    return _finish(best.x, data, count, tol, best.value <= hom.value + slack)


def simulate_orders(key: jax.Array, params: Params, data: Rankings) -> jax.Array:
    """Draws a ranking per row from the Plackett–Luce model at ``params``, [n, K] int32.

    Gumbel trick: sorting u_ik + G_ik (G iid standard Gumbel) in decreasing order gives
    an exact Plackett–Luce draw. ``data.order`` is ignored (only features are used).
    """
    sigma = data.psi0 + data.psi @ params.gamma
    u = sigma[:, None] * (data.phi @ params.theta)
    noise = jax.random.gumbel(key, u.shape, u.dtype)
    return jnp.argsort(-(u + noise), axis=-1).astype(jnp.int32)
