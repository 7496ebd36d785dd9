"""A small damped Newton minimiser with optional fixed coordinates.

Shared by the profile likelihood (``hetrlhf.small_sample``: one coordinate held fixed
while the others are re-optimised) and the Plackett–Luce fit (``hetrlhf.plackett_luce``).
The step is the one of ``hetrlhf.estimate``'s solver: the exact Hessian when its
Cholesky factor exists, the expected information (positive semi-definite: Fisher
scoring) otherwise, then the gradient; an Armijo backtracking line search makes every
accepted step decrease the objective. Fixed coordinates are handled by a mask: their
rows and columns of the Hessian are replaced by the identity and their gradient
entries by 0, so the step leaves them where they are. The mask is an array, so a
``vmap`` over "which coordinate is fixed" traces once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["NewtonState", "direction", "minimize"]

# derivatives(x) -> (value [], grad [p], hessian [p, p], expected information [p, p])
Derivatives = Callable[[jax.Array], tuple]


class NewtonState(NamedTuple):
    """State (and result) of ``minimize``.

    Attributes:
      x: [p] current point.
      value: [] objective at x.
      grad: [p] gradient at x, with fixed coordinates zeroed.
      hess: [p, p] Hessian at x.
      fisher: [p, p] expected information at x.
      count: [] int32 iterations done.
      stalled: [] bool, the line search found no decrease along the last direction.
    """

    x: jax.Array
    value: jax.Array
    grad: jax.Array
    hess: jax.Array
    fisher: jax.Array
    count: jax.Array
    stalled: jax.Array


def direction(grad: jax.Array, hess: jax.Array, fisher: jax.Array) -> jax.Array:
    """−H⁻¹∇ when H is positive definite (Newton), else −F⁻¹∇ (Fisher scoring), else −∇.

    Both matrices are factored in ONE batched Cholesky call: two independent calls
    per step can run concurrently under XLA:CPU, and when many fits are vmapped each
    splits itself over the intra-op pool and waits for the other's tasks — a deadlock
    on a 2-core machine (jaxlib 0.10.2, ``ParallelBatchMap``).

    Args:
      grad: [p] gradient.
      hess: [p, p] Hessian.
      fisher: [p, p] expected information (positive semi-definite).

    Returns:
      [p] search direction.
    """
    chol_h, chol_f = jnp.linalg.cholesky(jnp.stack([hess, fisher]))
    chol = jnp.where(jnp.all(jnp.isfinite(chol_h)), chol_h, chol_f)
    step = -jax.scipy.linalg.cho_solve((chol, True), grad)
    return jnp.where(jnp.all(jnp.isfinite(step)), step, -grad)


def _masked(derivs: Derivatives, free: jax.Array):
    def fn(x):
        value, grad, hess, fisher = derivs(x)
        return value, jnp.where(free, grad, 0.0), hess, fisher

    return fn


def _reduce(matrix: jax.Array, free: jax.Array) -> jax.Array:
    """Rows/columns of fixed coordinates replaced by those of the identity."""
    both = free[:, None] & free[None, :]
    return jnp.where(both, matrix, jnp.eye(matrix.shape[-1], dtype=matrix.dtype))


def minimize(
    derivs: Derivatives,
    x0: jax.Array,
    *,
    free: jax.Array | None = None,
    tol,
    max_steps: int = 100,
) -> NewtonState:
    """Minimises a smooth objective over the free coordinates of x (pure, traceable).

    Args:
      derivs: ``x -> (value, grad, hessian, expected_information)`` for one dataset.
      x0: [p] start; fixed coordinates keep their values from it.
      free: [p] bool mask of the coordinates to optimise (default: all).
      tol: stop when the Euclidean norm of the free gradient is ≤ tol.
      max_steps: iteration cap (static).

    Returns:
      ``NewtonState`` at the last iterate (``grad`` is the free gradient).
    """
    free = jnp.ones(x0.shape, bool) if free is None else free
    fn = _masked(derivs, free)
    state0 = NewtonState(x0, *fn(x0), jnp.zeros((), jnp.int32), jnp.array(False))

    def cond(s):
        return (jnp.linalg.norm(s.grad) > tol) & (s.count < max_steps) & ~s.stalled

    def body(s):
        step = direction(s.grad, _reduce(s.hess, free), _reduce(s.fisher, free))
        step = jnp.where(free, step, 0.0)
        slope = s.grad @ step
        # Rounding allowance as in hetrlhf.estimate: at the floating-point floor of the
        # objective a decrease can no longer be seen.
        allowance = 8 * jnp.finfo(s.value.dtype).eps * jnp.abs(s.value)

        def insufficient(c):
            t, trial, i = c
            return ~(trial[0] <= s.value + 1e-4 * t * slope + allowance) & (i < 40)

        def halve(c):
            t, _, i = c
            t = 0.5 * t
            return t, fn(s.x + t * step), i + 1

        one = jnp.ones_like(s.value)
        t, trial, _ = jax.lax.while_loop(insufficient, halve, (one, fn(s.x + step), 0))
        accepted = ~insufficient((t, trial, 0))
        new = NewtonState(s.x + t * step, *trial, s.count + 1, ~accepted)
        return jax.tree.map(lambda a, b: jnp.where(accepted, a, b), new, s)._replace(
            count=s.count + 1, stalled=~accepted
        )

    return jax.lax.while_loop(cond, body, state0)
