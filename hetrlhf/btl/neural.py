"""Neural reward with last-layer Laplace uncertainty (our formulation).

The reward is an MLP with a linear last layer, r(φ) = wᵀh(φ), h: R^d → R^m a Flax
feature network. It enters the heterogeneous Bradley–Terry likelihood of Liu, Lu & Sun
(2025) in place of θᵀφ:

    P(y_i = 1) = sigmoid(σ_γ(x_i) · wᵀ(h(φ_i¹) − h(φ_i⁰))),  σ_γ(x) = ψ0(x) + γᵀψ(x)

so with the features frozen, (w, γ) are exactly (θ, γ) of the linear model on the
features h(φ): the last layer reuses ``hetrlhf.btl.model`` and ``hr.fisher_information``
unchanged (a ``Params(theta=w, gamma=γ)`` on a ``Comparisons`` of features h).
A bias in the last layer would cancel in h(φ¹) − h(φ⁰), so there is none.

Training (``make_train``) minimises, full batch with optax Adam in a ``lax.scan``,

    L(body, w, γ) = L_n(w, γ; h_body) + λ/(2n) (‖w‖² + ‖body‖²)

(λ = ``prior_precision``: a N(0, λ⁻¹ I) prior on the weights; γ is not penalised),
then polishes the last layer (w, γ) by a few Newton steps with the features frozen.
``last_layer_laplace`` is the Laplace approximation of the last layer given the
features (MacKay 1992; Kristiadi, Hein & Hennig 2020, "Being Bayesian, even just a
bit"): Cov(w, γ) = (n·I(w, γ) + λ·diag(1_m, 0_k))⁻¹ with I the per-comparison
information of ``hr.fisher_information``; with λ = 0 it is ``hr.covariance`` on the
features. The feature network's own uncertainty is ignored (its weights are treated
as fixed): intervals are conditional on h.

``reward_estimate`` / ``reward_difference`` return ``hr.RewardEstimate``, so
``hr.pessimistic_best_of_n`` and every other consumer work for this nonlinear reward.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from hetrlhf.btl import model
from hetrlhf.btl.inference import fisher_information
from hetrlhf.types import (
    Comparisons,
    Params,
    RewardEstimate,
    ravel_params,
    unravel_params,
)
from hetrlhf.validation import cholesky_and_condition, default_max_condition

__all__ = [
    "FeatureMLP",
    "LastLayerLaplace",
    "NeuralParams",
    "feature_data",
    "init_params",
    "last_layer_laplace",
    "make_train",
    "objective",
    "refit_last_layer",
    "reward_difference",
    "reward_estimate",
]


class FeatureMLP(nn.Module):
    """Feature network h(φ): Dense + activation layers (the reward's last layer is w).

    Attributes:
      hidden: widths of the hidden layers; m = hidden[-1] features.
      activation: elementwise non-linearity (default tanh: smooth, bounded features).
    """

    hidden: Sequence[int] = (32, 32)
    activation: Any = jnp.tanh

    @nn.compact
    def __call__(self, phi: jax.Array) -> jax.Array:
        h = phi
        for width in self.hidden:
            h = self.activation(nn.Dense(width)(h))
        return h


class NeuralParams(NamedTuple):
    """Parameters of the neural reward.

    Attributes:
      body: Flax variables of the feature network h.
      head: last layer as ``Params(theta=w [m], gamma=γ [k])``.
    """

    body: Any
    head: Params


class LastLayerLaplace(NamedTuple):
    """Gaussian approximation of the last layer's posterior given the features.

    Attributes:
      head: the mode (w, γ).
      cov: [m + k, m + k] covariance (w block first, then γ).
      condition_number: [] of the posterior precision (inf if not positive definite).
    """

    head: Params
    cov: jax.Array
    condition_number: jax.Array


def feature_data(net: nn.Module, body, data: Comparisons) -> Comparisons:
    """The comparisons with φ replaced by the features h(φ) ([n, m]).

    Args:
      net: the feature network (e.g. ``FeatureMLP``).
      body: its variables.
      data: one dataset (phi0, phi1 [n, d]).
    """
    return data._replace(
        phi0=net.apply(body, data.phi0), phi1=net.apply(body, data.phi1)
    )


def init_params(key: jax.Array, net: nn.Module, data: Comparisons) -> NeuralParams:
    """Random feature network (Flax default init), w ~ N(0, 1/m), γ = 0."""
    k_body, k_head = jax.random.split(key)
    body = net.init(k_body, data.phi0[:1])
    m = net.apply(body, data.phi0[:1]).shape[-1]
    dtype = data.phi0.dtype
    w = jax.random.normal(k_head, (m,), dtype) / jnp.sqrt(m)
    body = jax.tree.map(lambda x: x.astype(dtype), body)
    return NeuralParams(body, Params(w, jnp.zeros((data.psi.shape[-1],), dtype)))


def _sq_norm(tree) -> jax.Array:
    return sum(jnp.sum(x**2) for x in jax.tree.leaves(tree))


def objective(net: nn.Module, params: NeuralParams, data: Comparisons, prior_precision):
    """Training loss L_n(w, γ; h) + λ/(2n)(‖w‖² + ‖body‖²), shape []."""
    n = data.y.shape[-1]
    nll = model.loss(params.head, feature_data(net, params.body, data))
    penalty = _sq_norm(params.body) + jnp.sum(params.head.theta**2)
    return nll + 0.5 * prior_precision * penalty / n


def _head_objective(x, hdata, prior_precision, m):
    """n·L_n + λ/2‖w‖² of the last layer x = [w; γ] (total, not mean)."""
    n = hdata.y.shape[-1]
    head = unravel_params(x, m)
    return n * model.loss(head, hdata) + 0.5 * prior_precision * jnp.sum(head.theta**2)


def refit_last_layer(
    head: Params, hdata: Comparisons, prior_precision=0.0, *, num_steps: int = 10
) -> Params:
    """Newton steps on the last layer (w, γ) with the features frozen.

    The Hessian's eigenvalues are replaced by their absolute values (floored) so each
    step is a descent direction (the objective is biconvex in (w, γ), not jointly
    convex), and the step length is the largest of 1, 1/2, …, 1/2⁹ that decreases the
    objective (all candidates evaluated at once; none decreasing → no move).

    Args:
      head: start (w [m], γ [k]).
      hdata: comparisons on the features (``feature_data``).
      prior_precision: λ of the N(0, λ⁻¹) prior on w (0: the MLE).
      num_steps: Newton iterations (static).

    Returns:
      the polished (w, γ).
    """
    m = head.theta.shape[-1]
    f = lambda x: _head_objective(x, hdata, prior_precision, m)
    steps = 0.5 ** jnp.arange(10, dtype=head.theta.dtype)

    def body(x, _):
        g = jax.grad(f)(x)
        lam, vec = jnp.linalg.eigh(jax.hessian(f)(x))
        lam = jnp.maximum(jnp.abs(lam), 1e-10 * jnp.max(jnp.abs(lam)) + 1e-30)
        direction = -vec @ ((vec.T @ g) / lam)
        cand = x + steps[:, None] * direction
        values = jax.vmap(f)(cand)
        better = values < f(x)
        best = jnp.argmax(better)
        return jnp.where(better[best], cand[best], x), None

    x, _ = jax.lax.scan(body, ravel_params(head), None, length=num_steps)
    return unravel_params(x, m)


def make_train(
    net: nn.Module,
    *,
    num_steps: int = 1000,
    learning_rate=1e-2,
    prior_precision=1.0,
    num_newton_steps: int = 10,
):
    """Builds ``train(key, data) -> (NeuralParams, losses)`` for ONE dataset.

    Full-batch Adam on ``objective`` for ``num_steps`` steps (``lax.scan``), then
    ``refit_last_layer`` with the features frozen. Pure: ``jax.jit(jax.vmap(train))``
    trains one network per dataset/seed in one program.

    Args:
      net: the feature network (static; e.g. ``FeatureMLP((32, 32))``).
      num_steps: Adam steps (static).
      learning_rate: Adam step size.
      prior_precision: λ (weight decay / Gaussian prior precision of the weights).
      num_newton_steps: last-layer Newton steps after training (static; 0: none).

    Returns:
      ``train(key, data)`` returning the trained ``NeuralParams`` and the [num_steps]
      training losses (``objective`` before each step).
    """
    opt = optax.adam(learning_rate)

    def train(key: jax.Array, data: Comparisons):
        chex.assert_rank([data.phi0, data.phi1, data.y], [2, 2, 1])
        params = init_params(key, net, data)
        loss_and_grad = jax.value_and_grad(
            lambda p: objective(net, p, data, prior_precision)
        )

        def step(carry, _):
            p, opt_state = carry
            value, grads = loss_and_grad(p)
            updates, opt_state = opt.update(grads, opt_state, p)
            return (optax.apply_updates(p, updates), opt_state), value

        (params, _), losses = jax.lax.scan(
            step, (params, opt.init(params)), None, length=num_steps
        )
        if num_newton_steps:
            hdata = feature_data(net, params.body, data)
            head = refit_last_layer(
                params.head, hdata, prior_precision, num_steps=num_newton_steps
            )
            params = params._replace(head=head)
        return params, losses

    return train


def last_layer_laplace(
    net: nn.Module, params: NeuralParams, data: Comparisons, prior_precision=0.0
) -> LastLayerLaplace:
    """Laplace approximation of the last layer (w, γ) given the frozen features.

    Cov = (n·I(w, γ) + λ·diag(1_m, 0_k))⁻¹, I = ``hr.fisher_information`` (observed,
    per comparison) of the linear model on the features h(φ); λ = 0 gives exactly
    ``hr.covariance(head, feature_data(...))`` = I⁻¹/n. Cholesky solve, no inverse.

    Args:
      net: the feature network.
      params: trained parameters (the last layer should be at its mode, e.g. after
        ``refit_last_layer`` with the same λ).
      data: the training comparisons.
      prior_precision: λ of the N(0, λ⁻¹) prior on w used in training.

    Returns:
      ``LastLayerLaplace(head, cov [m + k, m + k], condition_number)``.

    Raises (eagerly only):
      ValueError: singular or badly conditioned posterior precision.
    """
    hdata = feature_data(net, params.body, data)
    m, k = params.head.theta.shape[-1], params.head.gamma.shape[-1]
    n = hdata.y.shape[-1]
    prior = jnp.concatenate(
        [jnp.ones((m,), hdata.phi0.dtype), jnp.zeros((k,), hdata.phi0.dtype)]
    )
    precision = n * fisher_information(params.head, hdata) + prior_precision * jnp.diag(
        prior
    )
    chol, cond = cholesky_and_condition(precision)
    if not isinstance(cond, jax.core.Tracer):
        limit = default_max_condition(precision.dtype)
        if not float(cond) <= limit:
            raise ValueError(
                "last_layer_laplace: the last layer's posterior precision is singular or "
                f"badly conditioned (condition number {float(cond):.3g} > {limit:.3g}): "
                "collinear or dead features h(φ); use prior_precision > 0 or fewer "
                "hidden units"
            )
    # Cholesky solve instead of an inverse; NaN only under jit, where the condition
    # number (inf) reports it.
    cov = jax.scipy.linalg.cho_solve(chol, jnp.eye(m + k, dtype=precision.dtype))
    return LastLayerLaplace(params.head, cov, cond)


def reward_estimate(
    net: nn.Module, params: NeuralParams, laplace: LastLayerLaplace, phi: jax.Array
) -> RewardEstimate:
    """r̂(φ) = ŵᵀh(φ) with var = h(φ)ᵀ Σ_w h(φ) (Σ_w the w-block of the Laplace cov).

    Args:
      net, params: the trained reward.
      laplace: ``last_layer_laplace`` output.
      phi: [..., d] features of (prompt, response) pairs, e.g. [P, N, d] candidates.

    Returns:
      ``RewardEstimate(mean [...], var [...])`` (ready for ``hr.pessimistic_best_of_n``).
    """
    m = laplace.head.theta.shape[-1]
    h = net.apply(params.body, phi)
    sigma_w = laplace.cov[:m, :m]
    return RewardEstimate(
        model.reward(laplace.head.theta, h),
        jnp.einsum("...i,ij,...j->...", h, sigma_w, h),
    )


def reward_difference(
    net: nn.Module,
    params: NeuralParams,
    laplace: LastLayerLaplace,
    phi_a: jax.Array,
    phi_b: jax.Array,
) -> RewardEstimate:
    """r̂(a) − r̂(b) and its variance (h_a − h_b)ᵀ Σ_w (h_a − h_b).

    Args:
      phi_a, phi_b: [..., d] features of the two responses (broadcastable).

    Returns:
      ``RewardEstimate`` of the difference.
    """
    m = laplace.head.theta.shape[-1]
    dh = net.apply(params.body, phi_a) - net.apply(params.body, phi_b)
    return RewardEstimate(
        model.reward(laplace.head.theta, dh),
        jnp.einsum("...i,ij,...j->...", dh, laplace.cov[:m, :m], dh),
    )
