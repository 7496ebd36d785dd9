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

The loss is L_n = −(1/n) Σ_i log P(o_i). This module holds the likelihood only; the
rankings family of ``hetrlhf.btl.model`` exposes it to the fit, the Fisher information
and every interval method, so ``hr.fit``, ``hr.fisher_information``, ``hr.covariance``
and ``hr.confidence_intervals(params, data, method=...)`` accept a ``Rankings`` as
well as a ``Comparisons``.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

from hetrlhf.types import Params, Rankings, unravel_params

__all__ = [
    "derivatives",
    "expected_information",
    "from_comparisons",
    "is_separated",
    "log_likelihood",
    "loss",
    "simulate_orders",
    "utilities",
]


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


def simulate_orders(key: jax.Array, params: Params, data: Rankings) -> jax.Array:
    """Draws a ranking per row from the Plackett–Luce model at ``params``, [n, K] int32.

    Gumbel trick: sorting u_ik + G_ik (G iid standard Gumbel) in decreasing order gives
    an exact Plackett–Luce draw. ``data.order`` is ignored (only features are used).
    """
    sigma = data.psi0 + data.psi @ params.gamma
    u = sigma[:, None] * (data.phi @ params.theta)
    noise = jax.random.gumbel(key, u.shape, u.dtype)
    return jnp.argsort(-(u + noise), axis=-1).astype(jnp.int32)
