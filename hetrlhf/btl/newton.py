"""The one Newton minimiser of hetrlhf: damped Newton / Fisher scoring with Armijo steps.

Used by every fit (pairwise and K-wise, ``hetrlhf.btl.estimate``) and by the
constrained fits of the profile likelihood (``hetrlhf.btl.confidence``: one
coordinate held fixed while the others are re-optimised).

Each iteration solves H s = −∇f with the exact Hessian when its Cholesky factor exists
(positive definite: quadratic convergence near the optimum), and otherwise with the
expected information F (positive semi-definite: Fisher scoring, a descent direction in
the indefinite region of the biconvex loss), else −∇f. An Armijo backtracking line
search makes every accepted step decrease the objective (up to a rounding allowance).
Fixed coordinates are handled by a mask: their rows and columns of H and F are
replaced by those of the identity and their gradient entries by 0, so the step leaves
them where they are. The mask is an array, so a ``vmap`` over "which coordinate is
fixed" traces once.

The line search is flattened into the main loop: one loop trip evaluates one trial
point (value, gradient, Hessian in a single call of ``derivs``) and either accepts it
or halves the step. Under ``vmap`` every replicate then costs one pass per trip,
instead of every replicate paying for the worst line search of the batch at every
iteration (a nested while loop). The start itself is evaluated by the first trip (a
step of length 1 along a zero direction, accepted unconditionally), so the compiled
loop holds one copy of ``derivs``, not two: about 10% less XLA compilation of a fit
(README, "Speed of the coverage study"); the coverage and convergence studies' numbers
are bit for bit those of the two-copy loop, constrained (profile) fits agree to 1e−14.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = ["NewtonState", "default_tol", "direction", "minimize"]

# derivs(x) -> (value [], grad [p], hessian [p, p], expected information [p, p])
Derivatives = Callable[[jax.Array], tuple]

# Rejected trial points after which the line search gives up (the step is then 2⁻⁴⁰).
_MAX_HALVINGS = 40


def default_tol(dtype) -> float:
    """Gradient-norm tolerance ε^{2/3} of the dtype: ≈3.7e−11 (float64), ≈4.9e−5 (float32)."""
    return float(jnp.finfo(dtype).eps) ** (2.0 / 3.0)


class NewtonState(NamedTuple):
    """State (and result) of ``minimize``.

    Attributes:
      x: [p] current iterate.
      value: [] objective at x.
      grad: [p] gradient at x (fixed coordinates zeroed).
      hess: [p, p] Hessian at x.
      fisher: [p, p] expected information at x.
      direction: [p] search direction from x.
      step: [] step length t of the next trial point x + t·direction.
      halvings: [] int32, rejected trials of the current iteration.
      count: [] int32, accepted iterations (plus ``count0``).
      stalled: [] bool, the line search found no decrease along the last direction.
    """

    x: jax.Array
    value: jax.Array
    grad: jax.Array
    hess: jax.Array
    fisher: jax.Array
    direction: jax.Array
    step: jax.Array
    halvings: jax.Array
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


def _reduce(matrix: jax.Array, free: jax.Array) -> jax.Array:
    """Rows/columns of fixed coordinates replaced by those of the identity."""
    both = free[:, None] & free[None, :]
    return jnp.where(both, matrix, jnp.eye(matrix.shape[-1], dtype=matrix.dtype))


def minimize(
    derivs: Derivatives,
    x0: jax.Array,
    *,
    tol,
    max_steps: int = 100,
    free: jax.Array | None = None,
    count0: jax.Array | None = None,
) -> NewtonState:
    """Minimises a smooth objective over the free coordinates of x (pure, traceable).

    Stops when ‖∇f‖₂ (free coordinates) ≤ tol, after ``max_steps`` accepted
    iterations, or when 40 halvings of the step find no decrease.

    Args:
      derivs: ``x -> (value, grad, hessian, expected_information)``.
      x0: [p] start; fixed coordinates keep their values from it.
      tol: gradient-norm tolerance.
      max_steps: iteration cap (static).
      free: optional [p] bool mask of the coordinates to optimise (default: all).
      count0: optional [] int32 count to start from (phases of one fit add up).

    Returns:
      ``NewtonState`` at the last iterate.
    """
    fn, find = _restricted(derivs, free)
    count0 = jnp.zeros((), jnp.int32) if count0 is None else count0
    # The start is evaluated by the loop's first trip (module docstring): the state
    # begins with zeros shaped like the outputs of ``derivs`` (``eval_shape`` traces
    # it without adding it to the compiled program).
    value, grad, hess, fisher = (
        jnp.zeros(a.shape, a.dtype) for a in jax.eval_shape(fn, x0)
    )
    state0 = NewtonState(
        x0,
        value,
        grad,
        hess,
        fisher,
        jnp.zeros_like(grad),
        jnp.ones_like(value),
        jnp.zeros((), jnp.int32),
        count0 - 1,
        jnp.array(False),
    )
    limit = count0 + max_steps

    def cond(s):
        started = s.count >= count0
        going = (jnp.linalg.norm(s.grad) > tol) & (s.count < limit) & ~s.stalled
        return ~started | going

    body = functools.partial(_iterate, fn, find, count0)
    return jax.lax.while_loop(cond, body, state0)


def _restricted(derivs: Derivatives, free):
    """(derivatives, direction finder) with the fixed coordinates' gradient and step 0."""
    if free is None:
        return derivs, direction

    def fn(x):
        value, grad, hess, fisher = derivs(x)
        return value, jnp.where(free, grad, 0.0), hess, fisher

    def find(grad, hess, fisher):
        step = direction(grad, _reduce(hess, free), _reduce(fisher, free))
        return jnp.where(free, step, 0.0)

    return fn, find


def _iterate(fn, find, count0, s: NewtonState) -> NewtonState:
    """One iteration: the Newton step accepted (Armijo) or halved."""
    one, zero = jnp.ones_like(s.value), jnp.zeros((), jnp.int32)
    x_trial = s.x + s.step * s.direction
    trial = fn(x_trial)
    # Armijo with a rounding allowance: at the floating-point floor of f a
    # decrease can no longer be seen, and without the allowance the line search
    # would shrink exact Newton steps and turn quadratic convergence into a crawl.
    allowance = 8 * jnp.finfo(s.value.dtype).eps * jnp.abs(s.value)
    slope = s.grad @ s.direction  # < 0
    armijo = trial[0] <= s.value + 1e-4 * s.step * slope + allowance
    accepted = (s.count < count0) | armijo  # the first trip evaluates the start
    moved = NewtonState(
        x_trial,
        *trial,
        find(*trial[1:]),
        one,
        zero,
        s.count + 1,
        s.stalled,
    )
    halved = s._replace(
        step=0.5 * s.step,
        halvings=s.halvings + 1,
        stalled=s.halvings + 1 >= _MAX_HALVINGS,
    )
    return jax.tree.map(lambda a, b: jnp.where(accepted, a, b), moved, halved)
