"""The heterogeneous Bradley–Terry model of Liu, Lu & Sun (2025) (DESIGN.md §A1).

One comparison i has feature difference Δφ_i = φ(s_i, a_i¹) − φ(s_i, a_i⁰), annotator
covariates ψ(x_i) with known scale ψ0(x_i), and label y_i:

    r_θ(s, a) = θᵀφ(s, a)                      (reward)
    σ_γ(x)    = ψ0(x) + γᵀψ(x)                 (rationality)
    η_i       = σ_γ(x_i) · θᵀΔφ_i              (logit)
    P(y_i=1)  = sigmoid(η_i)
    L_n(θ, γ) = (1/n) Σ_i [softplus(η_i) − y_i η_i]

All functions take ONE dataset; vmap over replicates at the call site.

**The family interface.** Two data families share (θ, γ): pairwise ``Comparisons``
(this module's likelihood) and K-wise ``Rankings`` (the Plackett–Luce likelihood of
``hetrlhf.btl.plackett_luce``). Estimation and inference never ask which one they
have: ``family(data)`` returns a ``Family`` of pure functions — prepare the arrays a
fit reads on every pass, value/gradient/Hessian/expected information, per-observation
log-likelihood, separation test, a new draw of the responses from the model — and
``hetrlhf.btl.estimate``, ``inference`` and ``confidence`` are written once against it.
This is the only place that dispatches on the data type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from hetrlhf.btl import plackett_luce
from hetrlhf.types import Comparisons, Params, Rankings, ravel_params, unravel_params

__all__ = [
    "Family",
    "derivatives",
    "expected_information",
    "family",
    "homogeneous_params",
    "is_separated",
    "log_likelihood",
    "logits",
    "loss",
    "num_params",
    "rationality",
    "reward",
]


def reward(theta: jax.Array, phi: jax.Array) -> jax.Array:
    """r_θ(s, a) = θᵀφ(s, a).

    Args:
      theta: [d] reward coefficients.
      phi: [..., d] features.

    Returns:
      [...] rewards.
    """
    return phi @ theta


def rationality(gamma: jax.Array, psi: jax.Array, psi0: jax.Array) -> jax.Array:
    """σ_γ(x) = ψ0(x) + γᵀψ(x).

    Args:
      gamma: [k] rationality coefficients (k may be 0).
      psi: [..., k] covariates.
      psi0: [...] known scale.

    Returns:
      [...] rationality; > 0 prefers higher reward, ≈ 0 random, < 0 adversarial.
    """
    return psi0 + psi @ gamma


def logits(params: Params, data: Comparisons) -> jax.Array:
    """η_i = σ_γ(x_i)·θᵀΔφ_i, shape [n]."""
    return rationality(params.gamma, data.psi, data.psi0) * reward(
        params.theta, data.dphi
    )


def log_likelihood(params: Params, data: Comparisons) -> jax.Array:
    """Per-comparison log-likelihood y_i η_i − softplus(η_i), shape [n].

    softplus(η) = log(1 + e^η) is evaluated by ``jax.nn.softplus`` (stable for |η|
    large), never as log(sigmoid(η)), which underflows to −inf for η ≪ 0.
    """
    eta = logits(params, data)
    return data.y * eta - jax.nn.softplus(eta)


def loss(params: Params, data: Comparisons) -> jax.Array:
    """Mean negative log-likelihood L_n(θ, γ), shape [] (weighted: Σ wℓ / Σ w)."""
    if data.weight is None:
        return -jnp.mean(log_likelihood(params, data))
    w = data.weight
    return -jnp.sum(w * log_likelihood(params, data)) / jnp.sum(w)


def homogeneous_params(theta: jax.Array, k: int) -> Params:
    """Params with γ = 0 (σ ≡ ψ0): the homogeneous model embedded in the general one."""
    return Params(theta=theta, gamma=jnp.zeros((k,), theta.dtype))


def num_params(data: Comparisons) -> int:
    """d + k, the number of free parameters (a Python int: shapes are static)."""
    return data.phi0.shape[-1] + data.psi.shape[-1]


def expected_information(params: Params, data: Comparisons) -> jax.Array:
    """(1/n) Σ p_i(1−p_i) g_i g_iᵀ, g_i = [σ_i·Δφ_i ; (θᵀΔφ_i)·ψ_i], shape [p, p]."""
    sigma = rationality(params.gamma, data.psi, data.psi0)
    r = reward(params.theta, data.dphi)
    p = jax.nn.sigmoid(sigma * r)
    g = jnp.concatenate([sigma[:, None] * data.dphi, r[:, None] * data.psi], axis=-1)
    if data.weight is None:
        return jnp.einsum("i,ij,il->jl", p * (1 - p), g, g) / data.y.shape[-1]
    w = data.weight
    return jnp.einsum("i,ij,il->jl", w * p * (1 - p), g, g) / jnp.sum(w)


def is_separated(params: Params, data) -> jax.Array:
    """[] bool: the fitted utilities reproduce every observation strictly.

    Pairwise: every comparison is classified correctly by sign(η_i); rankings: every
    ranking is reproduced by the order of its utilities. Then scaling θ by c → ∞
    drives L_n to 0, so the MLE does not exist.
    """
    fam = family(data)
    return fam.separated(ravel_params(params), fam.prepare(data))


def _resample_labels(key, params: Params, data: Comparisons) -> Comparisons:
    if data.weight is not None:
        raise ValueError(
            "the parametric bootstrap redraws every comparison's label; a weighted row "
            "stands for several comparisons that would need different labels: expand "
            "the rows (or resample the weights: a case bootstrap) instead"
        )
    p = jax.nn.sigmoid(logits(params, data))
    return data._replace(y=jax.random.bernoulli(key, p).astype(data.y.dtype))


class _Prepared(NamedTuple):
    """The arrays a fit reads on every pass (Δφ computed once)."""

    dphi: jax.Array  # [n, d]
    psi: jax.Array  # [n, k]
    psi0: jax.Array  # [n]
    y: jax.Array  # [n]
    weight: jax.Array | None  # [n] or None


def _prepare(data: Comparisons) -> _Prepared:
    return _Prepared(data.dphi, data.psi, data.psi0, data.y, data.weight)


def _derivatives(x: jax.Array, prep: _Prepared):
    d = prep.dphi.shape[-1]
    k = prep.psi.shape[-1]
    n = prep.y.shape[-1]
    theta, gamma = x[:d], x[d:]
    r = prep.dphi @ theta
    sigma = prep.psi0 + prep.psi @ gamma
    eta = sigma * r
    # One exp for the loss, the probability and the weight (stable for any |η|).
    e = jnp.exp(-jnp.abs(eta))
    nll = jnp.maximum(eta, 0) + jnp.log1p(e) - prep.y * eta
    p = jnp.where(eta >= 0, 1.0, e) / (1.0 + e)
    if prep.weight is None:
        value = jnp.mean(nll)
        resid = (p - prep.y) / n
        w = e / ((1.0 + e) ** 2 * n)  # p(1 − p)/n
    else:  # frequency weights: Σ c_i (·) / Σ c_i
        total = jnp.sum(prep.weight)
        value = jnp.sum(prep.weight * nll) / total
        resid = prep.weight * (p - prep.y) / total
        w = prep.weight * e / ((1.0 + e) ** 2 * total)
    g = jnp.concatenate([sigma[:, None] * prep.dphi, r[:, None] * prep.psi], axis=-1)
    grad = g.T @ resid
    fisher = (g.T * w) @ g
    cross = (prep.dphi.T * resid) @ prep.psi  # [d, k]
    zeros_dd = jnp.zeros((d, d), x.dtype)
    zeros_kk = jnp.zeros((k, k), x.dtype)
    hess = fisher + jnp.block([[zeros_dd, cross], [cross.T, zeros_kk]])
    return value, grad, hess, fisher


def derivatives(x: jax.Array, data):
    """Value, gradient, Hessian and expected information of L_n at x = (θ, γ).

    Pairwise data, in closed form: with σ_i = ψ0_i + ψ_iᵀγ, r_i = θᵀΔφ_i, η_i = σ_i r_i, p_i = sigmoid(η_i) and
    g_i = ∂η_i/∂(θ, γ) = [σ_i Δφ_i ; r_i ψ_i]:

        ∇L_n = (1/n) Σ (p_i − y_i) g_i
        F    = (1/n) Σ p_i(1 − p_i) g_i g_iᵀ                      (expected information)
        ∇²L_n = F + [[0, C], [Cᵀ, 0]],  C = (1/n) Σ (p_i − y_i) Δφ_i ψ_iᵀ

    (∂²η/∂θ∂γᵀ = Δφψᵀ; the θθ and γγ blocks of ∂²η vanish). Two matrix products
    instead of an autodiff Hessian: this is the hot loop of every Monte Carlo study.
    ``inference.fisher_information`` keeps the autodiff Hessian, and the tests check
    the two agree (and agree with finite differences). Rankings:
    ``plackett_luce.derivatives`` (autodiff).

    Args:
      x: [d + k] parameters.
      data: one dataset, ``Comparisons`` or ``Rankings``.

    Returns:
      (value [], grad [p], hessian [p, p], fisher [p, p]).
    """
    fam = family(data)
    return fam.derivatives(x, fam.prepare(data))


def _separated_prepared(x: jax.Array, prep: _Prepared) -> jax.Array:
    d = prep.dphi.shape[-1]
    eta = (prep.psi0 + prep.psi @ x[d:]) * (prep.dphi @ x[:d])
    correct = (2.0 * prep.y - 1.0) * eta > 0
    if prep.weight is not None:
        correct = correct | (prep.weight == 0)  # rows of weight 0 are absent
    return jnp.all(correct)


# --------------------------------------------------------------------------------------
# The family interface.
# --------------------------------------------------------------------------------------


class Family(NamedTuple):
    """What estimation and inference need to know about a data family.

    Attributes:
      name: "comparisons" or "rankings".
      prepare: ``data -> prep``, the arrays a fit reads on every pass (e.g. Δφ once).
      derivatives: ``(x [p], prep) -> (value, grad [p], hessian [p, p], fisher [p, p])``
        of the mean loss L_n; ``prep._replace(psi=prep.psi[..., :0])`` is the
        homogeneous (γ = 0) problem.
      separated: ``(x [p], prep) -> [] bool``, the fitted utilities reproduce every
        observation strictly (then no MLE exists).
      loss: ``(params, data) -> []`` mean negative log-likelihood.
      log_likelihood: ``(params, data) -> [n]`` per-observation log-likelihood.
      expected_information: ``(params, data) -> [p, p]``.
      resample: ``(key, params, data) -> data`` with responses redrawn from the model
        at ``params`` (features and covariates kept): the parametric bootstrap.
      weight: ``data -> [n] frequency weights or None`` (every row counts once).
      dim: ``data -> d`` (a Python int).
      num_obs: ``data -> n``, the sample size: a Python int, or the traced Σ w_i of
        weighted data.
    """

    name: str
    prepare: Callable[[Any], Any]
    derivatives: Callable
    separated: Callable
    loss: Callable
    log_likelihood: Callable
    expected_information: Callable
    resample: Callable
    weight: Callable
    dim: Callable[[Any], int]
    num_obs: Callable[[Any], int]


def _num_comparisons(data: Comparisons):
    return data.y.shape[-1] if data.weight is None else jnp.sum(data.weight)


def _rankings_separated(x: jax.Array, data: Rankings) -> jax.Array:
    return plackett_luce.is_separated(unravel_params(x, data.phi.shape[-1]), data)


def _resample_orders(key, params: Params, data: Rankings) -> Rankings:
    return data._replace(order=plackett_luce.simulate_orders(key, params, data))


COMPARISONS = Family(
    name="comparisons",
    prepare=_prepare,
    derivatives=_derivatives,
    separated=_separated_prepared,
    loss=loss,
    log_likelihood=log_likelihood,
    expected_information=expected_information,
    resample=_resample_labels,
    weight=lambda data: data.weight,
    dim=lambda data: data.phi0.shape[-1],
    num_obs=_num_comparisons,
)
RANKINGS = Family(
    name="rankings",
    prepare=lambda data: data,
    derivatives=plackett_luce.derivatives,
    separated=_rankings_separated,
    loss=plackett_luce.loss,
    log_likelihood=plackett_luce.log_likelihood,
    expected_information=plackett_luce.expected_information,
    resample=_resample_orders,
    weight=lambda data: None,
    dim=lambda data: data.phi.shape[-1],
    num_obs=lambda data: data.phi.shape[-3],
)


def family(data) -> Family:
    """The ``Family`` of ``data`` (``Comparisons`` or ``Rankings``).

    Raises:
      TypeError: any other type.
    """
    if isinstance(data, Comparisons):
        return COMPARISONS
    if isinstance(data, Rankings):
        return RANKINGS
    raise TypeError(
        "data must be hetrlhf.Comparisons (hr.comparisons) or hetrlhf.Rankings "
        f"(hr.rankings), got {type(data).__name__}"
    )
