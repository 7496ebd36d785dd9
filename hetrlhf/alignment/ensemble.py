"""K-head reward ensembles on frozen features (Banerjee, Saha & Gopalan 2025, §B1).

Each head k is a linear reward r_k(s, a) = θ_kᵀφ(s, a) on frozen features φ, trained
on the Bradley–Terry loss from its own initialisation and, optionally, its own
bootstrap resample of the comparisons:

    L_k(θ) = Σ_i c_ik ℓ_i(θ) / Σ_i c_ik + (l2 / 2)‖θ‖²,   ℓ_i(θ) = softplus(η_i) − y_i η_i,
    η_i = θᵀΔφ_i,   L(Θ) = Σ_k L_k(θ_k)

with c_k the head's weights: the data's own weights (1 per row unless given; 0 for
padding or held-out rows), or with the bootstrap a case resample of them
(``hetrlhf.btl.confidence.resample_weights``: Multinomial(N, w/N), N = Σ_i w_i, so
padding rows stay at 0 and a resample has the size of the data, not of the padding).
L_k is the core weighted Bradley–Terry loss ``hetrlhf.btl.model.loss`` of the
homogeneous model (σ ≡ 1: an ensemble reward model has no annotator rationality; ψ and
ψ0 of the data are ignored) plus the ridge term. The total loss is the sum over heads,
so its gradient with respect to θ_k is ∇L_k(θ_k): the heads do not interact, and an
element-wise optimiser (adam, sgd) trains them exactly as if each were trained alone.
All K heads are trained by ONE jitted program: ``jax.vmap`` over heads inside a
``lax.scan`` over optax steps.

    fit = hr.train_ensemble(key, data, EnsembleOptions(num_heads=10, bootstrap=True))
    est = hr.ensemble_reward(fit.params, phi)      # RewardEstimate(mean, var)

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

from hetrlhf.btl import model
from hetrlhf.btl.confidence import resample_weights
from hetrlhf.types import Comparisons, RewardEstimate
from hetrlhf.validation import is_traced

__all__ = [
    "OPTIMIZERS",
    "EnsembleFit",
    "EnsembleOptions",
    "PairVariances",
    "ensemble_reward",
    "fit_heads",
    "head_loss",
    "init_ensemble",
    "pair_variances",
    "train_ensemble",
]

# Element-wise optax optimisers by name (element-wise: the heads stay independent).
OPTIMIZERS = {"adam": optax.adam, "sgd": optax.sgd}


class EnsembleOptions(NamedTuple):
    """How a K-head ensemble is trained (hashable: a static argument under ``jit``).

    Attributes:
      num_heads: K ≥ 1 (≥ 2 to compute a variance with ``ensemble_reward``).
      num_steps: optimiser steps ≥ 1 (a fixed budget; no early stopping).
      learning_rate: step size > 0.
      optimizer: "adam" or "sgd" (``OPTIMIZERS``).
      bootstrap: each head on its own case resample of the rows of positive weight.
      l2: ridge coefficient ≥ 0 on each head.
      init_scale: standard deviation ≥ 0 of the heads' N(0, s² I) initialisations.
    """

    num_heads: int = 10
    num_steps: int = 1000
    learning_rate: float = 0.05
    optimizer: str = "adam"
    bootstrap: bool = False
    l2: float = 0.0
    init_scale: float = 1.0


class EnsembleFit(NamedTuple):
    """A trained ensemble (``train_ensemble``, ``fit_heads``).

    Attributes:
      params: [K, d] trained heads θ_k.
      losses: [num_steps, K] each head's loss before each step.
      grad_norm: [K] Euclidean norm of ∇L_k at the returned ``params``.
      weights: [K, n] the weights c_k each head was trained on (bootstrap counts).
    """

    params: jax.Array
    losses: jax.Array
    grad_norm: jax.Array
    weights: jax.Array


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


def _homogeneous(data: Comparisons, weight: jax.Array) -> Comparisons:
    """``data`` under the ensemble's model: σ ≡ 1 (k = 0, ψ0 = 1), weights ``weight``."""
    n = data.y.shape[-1]
    dtype = data.y.dtype
    return Comparisons(
        data.phi0,
        data.phi1,
        data.y,
        jnp.zeros((n, 0), dtype),
        jnp.ones((n,), dtype),
        weight,
    )


def head_loss(
    theta: jax.Array, data: Comparisons, l2: float | jax.Array = 0.0
) -> jax.Array:
    """The loss of ONE head: ``model.loss`` of the homogeneous model + ridge.

    L(θ) = Σ_i w_i [softplus(η_i) − y_i η_i] / Σ_i w_i + (l2/2)‖θ‖², η_i = θᵀΔφ_i
    (``hetrlhf.btl.model.loss`` at γ = 0: softplus evaluated stably).

    Args:
      theta: [d] head parameters.
      data: ``Comparisons`` of the homogeneous model (k = 0, ψ0 = 1), weighted or not.
      l2: ridge coefficient ≥ 0.

    Returns:
      [] the loss.
    """
    chex.assert_rank(theta, 1)
    params = model.homogeneous_params(theta, data.psi.shape[-1])
    return model.loss(params, data) + 0.5 * l2 * jnp.sum(theta**2)


def fit_heads(
    params: jax.Array,
    data: Comparisons,
    weights: jax.Array,
    *,
    optimizer: optax.GradientTransformation,
    num_steps: int,
    l2: float | jax.Array = 0.0,
) -> EnsembleFit:
    """Trains K heads jointly: total loss Σ_k L_k, ``vmap`` over heads, ``scan`` over steps.

    The kernel of ``train_ensemble``. Pure and jittable (``num_steps`` and
    ``optimizer`` must be static). With an element-wise optimiser (sgd, adam, …) the
    result equals training each head alone.

    Args:
      params: [K, d] initial heads.
      data: ``Comparisons`` of the homogeneous model (k = 0, ψ0 = 1) shared by all
        heads; its own ``weight`` is replaced by ``weights``.
      weights: [K, n] per-head row weights c_k (bootstrap counts, or base weights).
      optimizer: an optax transformation.
      num_steps: number of optimiser steps (a Python int).
      l2: ridge coefficient.

    Returns:
      ``EnsembleFit(params [K, d], losses [num_steps, K], grad_norm [K], weights)``.
    """
    chex.assert_rank([params, data.phi0, data.y, weights], [2, 2, 1, 2])
    chex.assert_equal_shape_suffix([params, data.phi0], 1)
    chex.assert_equal_shape_prefix([params, weights], 1)
    chex.assert_equal_shape_suffix([weights, data.y], 1)

    def one_head(theta, w):
        return head_loss(theta, data._replace(weight=w), l2)

    per_head = jax.vmap(one_head)

    def total_loss(p):
        losses = per_head(p, weights)
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
    return EnsembleFit(params, losses, jnp.linalg.norm(grads, axis=-1), weights)


@functools.partial(
    jax.jit, static_argnames=("num_heads", "num_steps", "bootstrap", "optimizer")
)
def _train(
    key,
    data,
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
    dtype = data.y.dtype
    n = data.y.shape[-1]
    params = init_ensemble(
        init_key, num_heads, data.phi0.shape[-1], init_scale=init_scale, dtype=dtype
    )
    base = jnp.ones((n,), dtype) if data.weight is None else data.weight
    data = _homogeneous(data, base)
    if bootstrap:
        weights = resample_weights(boot_key, data, num_heads)
    else:
        weights = jnp.broadcast_to(base, (num_heads, n))
    return fit_heads(
        params,
        data,
        weights,
        optimizer=OPTIMIZERS[optimizer](learning_rate),
        num_steps=num_steps,
        l2=l2,
    )


def _check_options(options: EnsembleOptions) -> EnsembleOptions:
    if not isinstance(options, EnsembleOptions):
        raise TypeError(
            f"options must be an EnsembleOptions, got {type(options).__name__}"
        )
    for name, minimum in (("num_heads", 1), ("num_steps", 1)):
        value = getattr(options, name)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"options.{name} must be an int, got {value!r}")
        if value < minimum:
            raise ValueError(f"options.{name} must be >= {minimum}, got {value}")
    if options.optimizer not in OPTIMIZERS:
        raise ValueError(
            f"options.optimizer must be one of {sorted(OPTIMIZERS)}, got "
            f"{options.optimizer!r}"
        )
    for name, positive in (
        ("learning_rate", True),
        ("l2", False),
        ("init_scale", False),
    ):
        value = getattr(options, name)
        try:
            v = float(value)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"options.{name} must be a real number, got {value!r}"
            ) from exc
        if not math.isfinite(v) or (v <= 0 if positive else v < 0):
            raise ValueError(
                f"options.{name} must be {'> 0' if positive else '>= 0'} and finite, "
                f"got {value}"
            )
    return options._replace(
        num_heads=int(options.num_heads),
        num_steps=int(options.num_steps),
        bootstrap=bool(options.bootstrap),
    )


def train_ensemble(
    key: jax.Array, data: Comparisons, options: EnsembleOptions | None = None
) -> EnsembleFit:
    """Trains a K-head Bradley–Terry reward ensemble on ``data`` (one jitted program).

    Like every fitter, it takes a data object: the comparisons (built and validated
    by ``hr.comparisons``, a loader or the simulator) with their row weights — frequency
    weights, or 0 for padding rows (``hetrlhf.btl.estimate.pad_rows``) and held-out
    rows, so that data of several sizes share one compiled program. Each head starts
    from its own N(0, init_scale² I) draw and, with ``options.bootstrap``, is fit on
    its own case resample of the rows of positive weight (N = Σ_i w_i comparisons
    drawn with replacement: ``confidence.resample_weights``). ψ and ψ0 are ignored
    (the ensemble's model has σ ≡ 1). Traceable: it may run inside the caller's
    ``jit``/``vmap`` (the options are static).

    Args:
      key: PRNG key (split into initialisation and bootstrap keys).
      data: ``Comparisons`` with n rows (``weight``: None, or [n] weights ≥ 0; integer
        counts with the bootstrap).
      options: ``EnsembleOptions`` (None: the defaults).

    Returns:
      ``EnsembleFit`` (heads ``params`` [K, d], loss curves, gradient norms, weights).

    Raises:
      TypeError / ValueError: ``data`` not ``Comparisons``; bad options; non-integer
        weights with the bootstrap (checked eagerly).
    """
    options = _check_options(EnsembleOptions() if options is None else options)
    if not isinstance(data, Comparisons):
        raise TypeError(f"data must be hetrlhf.Comparisons, got {type(data).__name__}")
    if options.bootstrap and data.weight is not None and not is_traced(data.weight):
        weight = np.asarray(data.weight)
        if not np.all(weight == np.round(weight)):
            raise ValueError(
                "the bootstrap resamples whole comparisons, so data.weight must hold "
                "integer counts (frequency weights or 0/1 masks)"
            )
    dtype = data.y.dtype
    return _train(
        key,
        data,
        jnp.asarray(options.learning_rate, dtype),
        jnp.asarray(options.l2, dtype),
        jnp.asarray(options.init_scale, dtype),
        num_heads=options.num_heads,
        num_steps=options.num_steps,
        bootstrap=options.bootstrap,
        optimizer=options.optimizer,
    )


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


class PairVariances(NamedTuple):
    """The heads' disagreement on comparisons (``pair_variances``).

    Attributes:
      response_var: [2n] Var_k r_k(s, a) of every response (the a⁰ rows, then a¹).
      diff_var: [n] Var_k [r_k(s, a_c) − r_k(s, a_r)], chosen minus rejected (it
        includes the heads' covariance of the two rewards).
      sum_var: [n] Var_k r_k(a⁰) + Var_k r_k(a¹) (= diff_var for uncorrelated heads).
      correct: [n] bool, the ensemble mean ranks the chosen response first.
      head_correct: [n, K] bool, each head ranks it first.
    """

    response_var: jax.Array
    diff_var: jax.Array
    sum_var: jax.Array
    correct: jax.Array
    head_correct: jax.Array


def pair_variances(params: jax.Array, data: Comparisons) -> PairVariances:
    """Reward variances of a trained ensemble on (held-out) comparisons.

    Args:
      params: [K, d] heads, K ≥ 2.
      data: ``Comparisons`` with n rows (y = 1: a¹ chosen).

    Returns:
      ``PairVariances``.
    """
    chosen = jnp.where(data.y[:, None] == 1, data.phi1, data.phi0)
    rejected = jnp.where(data.y[:, None] == 1, data.phi0, data.phi1)
    r0 = ensemble_reward(params, data.phi0)
    r1 = ensemble_reward(params, data.phi1)
    diff = ensemble_reward(params, chosen - rejected)
    return PairVariances(
        response_var=jnp.concatenate([r0.var, r1.var]),
        diff_var=diff.var,
        sum_var=r0.var + r1.var,
        correct=diff.mean > 0,
        head_correct=(chosen - rejected) @ params.T > 0,
    )
