"""Pytree containers shared by every module.

All containers are ``NamedTuple``s of arrays, so they are pytrees: they can be
stacked along a leading replicate axis, passed through ``jax.jit``/``jax.vmap`` and
checkpointed with orbax without any registration.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Params(NamedTuple):
    """Parameters of the heterogeneous Bradley–Terry model.

    Attributes:
      theta: [d] reward coefficients, r_θ(s, a) = θᵀφ(s, a).
      gamma: [k] rationality coefficients, σ_γ(x) = ψ0(x) + γᵀψ(x). k = 0 for the
        homogeneous Bradley–Terry–Luce model.
    """

    theta: jax.Array
    gamma: jax.Array


class Comparisons(NamedTuple):
    """Validated pairwise comparisons (build them with ``hetrlhf.comparisons``).

    Attributes:
      phi0: [n, d] features φ(s_i, a_i⁰) of the first response.
      phi1: [n, d] features φ(s_i, a_i¹) of the second response.
      y: [n] labels in {0, 1}; 1 means a¹ was preferred.
      psi: [n, k] annotator covariates ψ(x_i) (k = 0 for the homogeneous model).
      psi0: [n] known scale ψ0(x_i), not identically zero.
      weight: optional [n] non-negative frequency weights w_i (None: every row
        counts once). Row i then stands for w_i identical comparisons: the loss is
        Σ w_i ℓ_i / Σ w_i and the sample size Σ w_i, so U unique rows with their
        counts give exactly the fit, information and sandwich of the raw rows (an
        arena of K items has at most K(K−1) ordered pairs). A row with w_i = 0
        contributes nothing (masking, resamples, splits).
    """

    phi0: jax.Array
    phi1: jax.Array
    y: jax.Array
    psi: jax.Array
    psi0: jax.Array
    weight: jax.Array | None = None

    @property
    def dphi(self) -> jax.Array:
        """[n, d] feature differences Δφ_i = φ(s_i, a_i¹) − φ(s_i, a_i⁰)."""
        return self.phi1 - self.phi0

    @property
    def num_comparisons(self) -> int:
        """n, the number of comparisons (the last-but-one axis of ``phi0``)."""
        return self.phi0.shape[-2]


class Rankings(NamedTuple):
    """Validated K-wise rankings (build them with ``hetrlhf.rankings``).

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


class FitResult(NamedTuple):
    """Outcome of a fit.

    Attributes:
      params: the estimate (θ̂, γ̂).
      converged: [] bool. True only if the gradient norm reached the tolerance at a
        point where the Hessian is positive definite, the data are not perfectly
        separated, and the loss is no worse than the homogeneous (γ = 0) fit.
      num_steps: [] int, iterations used (all phases together).
      grad_norm: [] Euclidean norm of ∇L_n at ``params``.
      loss: [] mean negative log-likelihood L_n at ``params``.
    """

    params: Params
    converged: jax.Array
    num_steps: jax.Array
    grad_norm: jax.Array
    loss: jax.Array


class Intervals(NamedTuple):
    """Wald confidence intervals, each field a ``Params``-shaped pytree.

    Attributes:
      estimate: point estimate.
      se: standard errors.
      lower, upper: interval end points estimate ∓ z_{1−α/2}·se.
      condition_number: [] condition number of the information matrix; large or
        infinite values mean the intervals are not to be trusted (under ``jit`` this is
        how ill-conditioning is reported, since no exception can be raised there).
    """

    estimate: Params
    se: Params
    lower: Params
    upper: Params
    condition_number: jax.Array


class RewardEstimate(NamedTuple):
    """The one uncertainty currency: a reward mean and its variance.

    Every reward source (Fisher intervals, ensembles, interval rewards) returns it and
    every consumer (pessimistic best-of-N, comparisons, variance-aware PPO) takes it.

    Attributes:
      mean: [...] reward estimates.
      var: [...] variances of the estimates (same shape as ``mean``).
    """

    mean: jax.Array
    var: jax.Array


class RewardComparison(NamedTuple):
    """z-test of H0: r(s, a) = r(s, b).

    Attributes:
      estimate: [...] Δ̂ = r̂(s, a) − r̂(s, b).
      se: [...] its standard error.
      z: [...] Δ̂ / se.
      p_value: [...] two-sided p-value.
      p_value_greater: [...] one-sided p-value for H1: r(s, a) > r(s, b).
      p_value_less: [...] one-sided p-value for H1: r(s, a) < r(s, b).
    """

    estimate: jax.Array
    se: jax.Array
    z: jax.Array
    p_value: jax.Array
    p_value_greater: jax.Array
    p_value_less: jax.Array


def ravel_params(params: Params) -> jax.Array:
    """Params -> [..., d + k] vector (θ first, then γ)."""
    return jnp.concatenate([params.theta, params.gamma], axis=-1)


def unravel_params(x: jax.Array, d: int) -> Params:
    """[..., d + k] vector -> Params (``d`` is a static Python int)."""
    return Params(theta=x[..., :d], gamma=x[..., d:])
