"""K-head reward ensembles on frozen features (Banerjee, Saha & Gopalan 2025, §B1).

Each head k is a linear reward r_k(s, a) = θ_kᵀφ(s, a) on frozen features φ, trained
on the Bradley–Terry loss from its own initialisation and, optionally, its own
bootstrap resample of the comparisons:

    η_ik   = θ_kᵀ(φ(s_i, a_i¹) − φ(s_i, a_i⁰))
    L_k(θ) = Σ_i c_ik [softplus(η_ik) − y_i η_ik] / Σ_i c_ik + (l2 / 2)‖θ_k‖²
    L(Θ)   = Σ_k L_k(θ_k)

with c_k ∈ ℕⁿ the multinomial bootstrap counts of head k (all ones without the
bootstrap). The total loss is the sum over heads, so its gradient with respect to θ_k is
∇L_k(θ_k): the heads do not interact, and an element-wise optimiser (adam) trains them
exactly as if each were trained alone. All K heads are trained by ONE jitted program:
``jax.vmap`` over heads inside a ``lax.scan`` over optax steps.

The ensemble's reward estimate at φ is the head mean, its uncertainty the head sample
variance (ddof = 1) — returned as the shared currency ``RewardEstimate``.

Note: with l2 = 0 and no bootstrap, every head converges to the same maximum-likelihood
estimate (the loss is convex), so the ensemble variance only reflects unfinished
training. Use ``bootstrap=True`` (or early stopping) when the variance is meant to
measure estimation uncertainty.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from hetrlhf.types import RewardEstimate
from hetrlhf.validation import as_float_array

__all__ = [
    "EnsembleFit",
    "bootstrap_weights",
    "ensemble_reward",
    "fit_heads",
    "head_loss",
    "init_ensemble",
    "train_ensemble",
]


class EnsembleFit(NamedTuple):
    """Output of ``fit_heads``.

    Attributes:
      params: [K, d] trained heads θ_k.
      losses: [num_steps, K] each head's loss before each step.
      grad_norm: [K] Euclidean norm of ∇L_k at the returned ``params``.
    """

    params: jax.Array
    losses: jax.Array
    grad_norm: jax.Array


def init_ensemble(
    key: jax.Array, num_heads: int, dim: int, *, init_scale: float = 1.0, dtype=None
) -> jax.Array:
    """Independent initialisations θ_k ~ N(0, init_scale² I_d), one per head.

    Args:
      key: PRNG key.
      num_heads: K ≥ 1.
      dim: d ≥ 1, the feature dimension.
      init_scale: standard deviation of each coordinate (0 gives all-zero heads).
      dtype: float dtype; JAX's default float dtype when None.

    Returns:
      [K, d] initial heads.
    """
    dtype = jnp.zeros(()).dtype if dtype is None else dtype
    return init_scale * jax.random.normal(key, (num_heads, dim), dtype)


def bootstrap_weights(
    key: jax.Array, num_heads: int, n: int, *, dtype=None
) -> jax.Array:
    """Bootstrap counts: row k is Multinomial(n, (1/n, …, 1/n)), one resample per head.

    Drawing n indices uniformly with replacement and counting them gives the counts
    c_k; weighting comparison i by c_ik is the same as fitting on the resample.

    Args:
      key: PRNG key.
      num_heads: K.
      n: number of comparisons.
      dtype: float dtype of the counts; JAX's default float dtype when None.

    Returns:
      [K, n] counts (each row sums to n).
    """
    dtype = jnp.zeros(()).dtype if dtype is None else dtype
    idx = jax.random.randint(key, (num_heads, n), 0, n)
    counts = jax.vmap(lambda i: jnp.zeros((n,), dtype).at[i].add(1.0))(idx)
    return counts


def head_loss(
    theta: jax.Array,
    dphi: jax.Array,
    y: jax.Array,
    weights: jax.Array,
    l2: float | jax.Array = 0.0,
) -> jax.Array:
    """Weighted Bradley–Terry loss of ONE head, softplus form.

    L(θ) = Σ_i c_i [softplus(η_i) − y_i η_i] / Σ_i c_i + (l2/2)‖θ‖², η_i = θᵀΔφ_i.
    softplus(η) = log(1 + e^η) is evaluated stably by ``jax.nn.softplus``.

    Args:
      theta: [d] head parameters.
      dphi: [n, d] feature differences φ(a¹) − φ(a⁰).
      y: [n] labels in {0, 1} (1: a¹ preferred).
      weights: [n] non-negative weights c_i (bootstrap counts or ones).
      l2: ridge penalty coefficient ≥ 0.

    Returns:
      [] the loss.
    """
    chex.assert_rank([theta, dphi, y, weights], [1, 2, 1, 1])
    chex.assert_equal_shape([y, weights])
    eta = dphi @ theta
    nll = jax.nn.softplus(eta) - y * eta
    return jnp.sum(weights * nll) / jnp.sum(weights) + 0.5 * l2 * jnp.sum(theta**2)


def fit_heads(
    params: jax.Array,
    dphi: jax.Array,
    y: jax.Array,
    weights: jax.Array,
    *,
    optimizer: optax.GradientTransformation,
    num_steps: int,
    l2: float | jax.Array = 0.0,
) -> EnsembleFit:
    """Trains K heads jointly: total loss Σ_k L_k, ``vmap`` over heads, ``scan`` over steps.

    Pure and jittable (``num_steps`` and ``optimizer`` must be static). With an
    element-wise optimiser (sgd, adam, …) the result equals training each head alone.

    Args:
      params: [K, d] initial heads.
      dphi: [n, d] feature differences shared by all heads.
      y: [n] labels.
      weights: [K, n] per-head weights (bootstrap counts, or ones).
      optimizer: an optax transformation.
      num_steps: number of optimiser steps (a Python int).
      l2: ridge coefficient.

    Returns:
      ``EnsembleFit(params [K, d], losses [num_steps, K], grad_norm [K])``.
    """
    chex.assert_rank([params, dphi, y, weights], [2, 2, 1, 2])
    chex.assert_equal_shape_suffix([params, dphi], 1)
    chex.assert_equal_shape_prefix([params, weights], 1)
    chex.assert_equal_shape_suffix([weights, y], 1)

    per_head = jax.vmap(head_loss, in_axes=(0, None, None, 0, None))

    def total_loss(p):
        losses = per_head(p, dphi, y, weights, l2)
        return jnp.sum(losses), losses

    grad_fn = jax.grad(total_loss, has_aux=True)

    def step(carry, _):
        p, opt_state = carry
        grads, losses = grad_fn(p)
        updates, opt_state = optimizer.update(grads, opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), losses

    (params, _), losses = jax.lax.scan(
        step, (params, optimizer.init(params)), None, length=num_steps
    )
    grads, _ = grad_fn(params)
    return EnsembleFit(params, losses, jnp.linalg.norm(grads, axis=-1))


@functools.partial(
    jax.jit, static_argnames=("num_heads", "num_steps", "bootstrap", "optimizer")
)
def _train(
    key,
    dphi,
    y,
    learning_rate,
    l2,
    init_scale,
    *,
    num_heads,
    num_steps,
    bootstrap,
    optimizer,
):
    init_key, boot_key = jax.random.split(key)
    params = init_ensemble(
        init_key, num_heads, dphi.shape[1], init_scale=init_scale, dtype=dphi.dtype
    )
    n = dphi.shape[0]
    if bootstrap:
        weights = bootstrap_weights(boot_key, num_heads, n, dtype=dphi.dtype)
    else:
        weights = jnp.ones((num_heads, n), dphi.dtype)
    if optimizer is None:
        optimizer = optax.adam(learning_rate)
    return fit_heads(
        params, dphi, y, weights, optimizer=optimizer, num_steps=num_steps, l2=l2
    )


def _check_positive_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_scalar(name, value, *, positive):
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{name} must be a real number, got {value!r}") from exc
    if not math.isfinite(v) or (v <= 0 if positive else v < 0):
        raise ValueError(
            f"{name} must be {'> 0' if positive else '>= 0'} and finite, got {value}"
        )
    return v


def train_ensemble(
    key: jax.Array,
    phi0,
    phi1,
    y,
    *,
    num_heads: int = 10,
    num_steps: int = 1000,
    learning_rate: float = 0.05,
    bootstrap: bool = False,
    l2: float = 0.0,
    init_scale: float = 1.0,
    optimizer: optax.GradientTransformation | None = None,
    return_fit: bool = False,
):
    """Trains a K-head Bradley–Terry reward ensemble (validated, jitted entry point).

    Each head starts from its own N(0, init_scale² I) draw and, with ``bootstrap``, is
    fit on its own multinomial resample of the n comparisons; all heads are trained in
    one jitted program (see ``fit_heads``).

    Args:
      key: PRNG key (split into initialisation and bootstrap keys).
      phi0: [n, d] features of the first response of each pair.
      phi1: [n, d] features of the second response.
      y: [n] labels in {0, 1}; 1 means the second response was preferred.
      num_heads: K ≥ 1 (≥ 2 to compute a variance with ``ensemble_reward``).
      num_steps: optimiser steps ≥ 1.
      learning_rate: adam step size > 0 (ignored when ``optimizer`` is given).
      bootstrap: resample the comparisons independently for each head.
      l2: ridge coefficient ≥ 0 on each head.
      init_scale: standard deviation of the initial heads ≥ 0.
      optimizer: optional optax transformation replacing ``optax.adam(learning_rate)``
        (element-wise ones keep the heads independent).
      return_fit: return the whole ``EnsembleFit`` (losses, gradient norms) instead of
        the parameters only.

    Returns:
      [K, d] trained heads (or an ``EnsembleFit`` when ``return_fit``).

    Raises:
      TypeError / ValueError: non-numeric input, wrong shapes, NaN/inf, labels outside
        {0, 1}, non-positive sizes or step sizes.
    """
    phi0 = as_float_array("phi0", phi0, 2)
    phi1 = as_float_array("phi1", phi1, 2)
    if phi0.shape != phi1.shape:
        raise ValueError(
            f"phi0 and phi1 must have the same shape [n, d], got {phi0.shape} and {phi1.shape}"
        )
    n, d = phi0.shape
    if n == 0 or d == 0:
        raise ValueError(
            f"phi0 must have n >= 1 rows and d >= 1 columns, got {phi0.shape}"
        )
    y = as_float_array("y", y, 1)
    if y.shape != (n,):
        raise ValueError(f"y must have shape [n] = ({n},), got {y.shape}")
    if not np.all(np.isin(y, (0, 1))):
        raise ValueError(
            f"y must contain only labels 0 and 1; found {np.unique(y)[:5].tolist()}"
        )
    num_heads = _check_positive_int("num_heads", num_heads, 1)
    num_steps = _check_positive_int("num_steps", num_steps, 1)
    if optimizer is None:
        learning_rate = _check_scalar("learning_rate", learning_rate, positive=True)
    elif not isinstance(optimizer, optax.GradientTransformation):
        raise TypeError(
            f"optimizer must be an optax.GradientTransformation, got {type(optimizer).__name__}"
        )
    l2 = _check_scalar("l2", l2, positive=False)
    init_scale = _check_scalar("init_scale", init_scale, positive=False)

    dtype = jnp.zeros(()).dtype
    dphi = jnp.asarray(phi1 - phi0, dtype)
    fit = _train(
        key,
        dphi,
        jnp.asarray(y, dtype),
        jnp.asarray(learning_rate if optimizer is None else 0.0, dtype),
        jnp.asarray(l2, dtype),
        jnp.asarray(init_scale, dtype),
        num_heads=num_heads,
        num_steps=num_steps,
        bootstrap=bool(bootstrap),
        optimizer=optimizer,
    )
    return fit if return_fit else fit.params


def ensemble_reward(params: jax.Array, phi: jax.Array) -> RewardEstimate:
    """Ensemble reward estimate: head mean and head sample variance (ddof = 1).

    mean(φ) = (1/K) Σ_k θ_kᵀφ,   var(φ) = 1/(K−1) Σ_k (θ_kᵀφ − mean(φ))².

    Because the heads are linear, the variance of a chosen − rejected reward difference
    is ``ensemble_reward(params, phi_chosen - phi_rejected).var``.

    Args:
      params: [K, d] heads, K ≥ 2.
      phi: [..., d] features.

    Returns:
      ``RewardEstimate(mean [...], var [...])``.
    """
    chex.assert_rank(params, 2)
    if params.shape[0] < 2:
        raise ValueError(
            f"params must hold K >= 2 heads to estimate a variance, got K = {params.shape[0]}"
        )
    if phi.shape[-1] != params.shape[1]:
        raise ValueError(
            f"phi has {phi.shape[-1]} features in its last axis, the heads have "
            f"d = {params.shape[1]}"
        )
    rewards = jnp.einsum("...d,kd->...k", phi, params)
    return RewardEstimate(
        mean=jnp.mean(rewards, axis=-1), var=jnp.var(rewards, axis=-1, ddof=1)
    )
