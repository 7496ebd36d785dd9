"""The heterogeneous Bradley–Terry model of Liu, Lu & Sun (2025) (DESIGN.md §A1).

One comparison i has feature difference Δφ_i = φ(s_i, a_i¹) − φ(s_i, a_i⁰), annotator
covariates ψ(x_i) with known scale ψ0(x_i), and label y_i:

    r_θ(s, a) = θᵀφ(s, a)                      (reward)
    σ_γ(x)    = ψ0(x) + γᵀψ(x)                 (rationality)
    η_i       = σ_γ(x_i) · θᵀΔφ_i              (logit)
    P(y_i=1)  = sigmoid(η_i)
    L_n(θ, γ) = (1/n) Σ_i [softplus(η_i) − y_i η_i]

All functions take ONE dataset; vmap over replicates at the call site.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from hetrlhf.types import Comparisons, Params

__all__ = [
    "homogeneous_params",
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
    """Mean negative log-likelihood L_n(θ, γ), shape []."""
    return -jnp.mean(log_likelihood(params, data))


def homogeneous_params(theta: jax.Array, k: int) -> Params:
    """Params with γ = 0 (σ ≡ ψ0): the homogeneous model embedded in the general one."""
    return Params(theta=theta, gamma=jnp.zeros((k,), theta.dtype))


def num_params(data: Comparisons) -> int:
    """d + k, the number of free parameters (a Python int: shapes are static)."""
    return data.phi0.shape[-1] + data.psi.shape[-1]
