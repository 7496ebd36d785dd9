"""Estimation of (θ, γ) in the heterogeneous Bradley–Terry model.

Two estimators, both pure, jittable and vmappable over a leading replicate axis, both
written once for pairwise ``Comparisons`` and K-wise ``Rankings`` (``model.family``):

* ``alternating_gd`` — Algorithm 1 of Liu, Lu & Sun (2025), alternating gradient descent:
  θ_t = θ_{t−1} − η₁∇_θL_n(θ_{t−1}, γ_{t−1}),  γ_t = γ_{t−1} − η₂∇_γL_n(θ_t, γ_{t−1})
  (the Gauss–Seidel order is our reading; ``order="jacobi"`` updates both blocks from
  the old iterate).
  It converges linearly and slowly, and only from a start near the truth.

* ``newton_fit`` — the default solver of ``fit``. L_n is biconvex, not jointly convex,
  so it proceeds in phases that each only decrease the loss:

  1. the homogeneous fit (γ = 0): plain logistic regression on ψ0·Δφ (pairwise), convex,
     solved by damped Newton from θ = 0 — a cold start that needs no guess;
  2. the joint fit from (θ̂_hom, 0) (or from a user's ``init``) by the one Newton
     minimiser, ``hetrlhf.btl.newton.minimize``: the exact Hessian where it is positive
     definite, Fisher scoring where it is not (every direction a descent direction), and
     an Armijo backtracking line search that guarantees a monotone decrease; near the
     optimum the steps are pure Newton steps and convergence is quadratic;
  3. if a user ``init`` ends at a loss worse than the run from the homogeneous start
     (e.g. the wrong basin θ → −θ with σ < 0), the better of the two is returned.

  Stopping rule: ‖∇L_n‖₂ ≤ tol. ``converged`` is True only if that holds, the Hessian
  is positive definite there (a minimum, not a saddle), the loss is not above the
  homogeneous fit's (γ = 0 is feasible, so the MLE can't be worse), and the data are not
  perfectly separated by the fitted logits (then no MLE exists: θ̂ runs off to ∞ while
  the gradient vanishes).
"""

from __future__ import annotations

import functools
import itertools
import warnings
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from hetrlhf.btl import model, newton
from hetrlhf.btl.model import is_separated
from hetrlhf.btl.newton import default_tol
from hetrlhf.types import Comparisons, FitResult, Params, ravel_params, unravel_params
from hetrlhf.validation import is_traced

__all__ = [
    "AlternatingState",
    "AlternatingTrace",
    "ConvergenceWarning",
    "alternating_gd",
    "fit",
    "fit_rankings",
    "fit_with_information",
    "mirror_basin",
    "newton_fit",
    "pad_rows",
    "padded_size",
    "run_alternating",
    "trace_alternating",
]


class ConvergenceWarning(UserWarning):
    """An eager ``fit`` did not converge (reason in the message)."""


# --------------------------------------------------------------------------------------
# Algorithm 1: alternating gradient descent.
# --------------------------------------------------------------------------------------


class AlternatingState(NamedTuple):
    """State of Algorithm 1.

    Attributes:
      params: current (θ_t, γ_t).
      count: [] int32, iterations done.
    """

    params: Params
    count: jax.Array


class Solver(NamedTuple):
    """An optax-style pair of pure functions."""

    init: callable
    update: callable


def alternating_gd(lr_theta, lr_gamma, *, order: str = "gauss_seidel") -> Solver:
    """Algorithm 1 of Liu, Lu & Sun (2025) as an ``(init, update)`` pair.

    Args:
      lr_theta: η₁, step size of the θ block (float or [] array; vmappable).
      lr_gamma: η₂, step size of the γ block.
      order: "gauss_seidel" (our reading of the paper's Algorithm 1: γ's gradient is
        taken at the new θ_t) or "jacobi" (both gradients at the old iterate).

    Returns:
      ``Solver(init, update)`` with ``init(params) -> AlternatingState`` and
      ``update(state, data) -> AlternatingState``.

    >>> solver = alternating_gd(0.5, 0.5)
    >>> state = solver.init(params0)
    >>> state = solver.update(state, data)   # one iteration t -> t + 1
    """
    if order not in ("gauss_seidel", "jacobi"):
        raise ValueError(f"order must be 'gauss_seidel' or 'jacobi', got {order!r}")

    def init(params: Params) -> AlternatingState:
        return AlternatingState(params=params, count=jnp.zeros((), jnp.int32))

    def update(state: AlternatingState, data: Comparisons) -> AlternatingState:
        theta, gamma = state.params
        loss = model.family(data).loss
        grad_theta = jax.grad(lambda t: loss(Params(t, gamma), data))(theta)
        new_theta = theta - lr_theta * grad_theta
        theta_for_gamma = new_theta if order == "gauss_seidel" else theta
        grad_gamma = jax.grad(lambda g: loss(Params(theta_for_gamma, g), data))(gamma)
        new_gamma = gamma - lr_gamma * grad_gamma
        return AlternatingState(Params(new_theta, new_gamma), state.count + 1)

    return Solver(init, update)


def run_alternating(
    data: Comparisons,
    init: Params,
    *,
    lr_theta=0.5,
    lr_gamma=0.5,
    num_steps: int = 1000,
    order: str = "gauss_seidel",
    tol=None,
    record: bool = False,
    check_basin: bool = True,
):
    """Runs ``num_steps`` iterations of Algorithm 1 with ``lax.scan``.

    A fixed number of steps is the paper's algorithm, not a stopping rule: the result's
    ``converged`` flag says whether ‖∇L_n‖ ≤ tol was actually reached at a minimum no
    worse than the default solver's (and the data are not separated).

    Args:
      data: one dataset.
      init: starting point (the paper's guarantee assumes one near the truth; its
        experiments start from θ0, γ0 ~ U(−1, 1)).
      lr_theta, lr_gamma: η₁, η₂.
      num_steps: T (static).
      order: see ``alternating_gd``.
      tol: gradient-norm tolerance; default ``default_tol(dtype)``.
      record: also return the path.
      check_basin: also run the default solver (``newton_fit``) from its cold start and
        report ``converged=False`` when Algorithm 1 stopped at a higher loss (a
        stationary point in the wrong basin). Static.

    Returns:
      ``FitResult``; with ``record=True`` a tuple ``(FitResult, path, losses)`` where
      ``path`` is a Params of [T, d] / [T, k] iterates θ_1..θ_T and ``losses`` is [T]
      (the loss at each iterate).
    """
    solver = alternating_gd(lr_theta, lr_gamma, order=order)
    tol = default_tol(data.psi0.dtype) if tol is None else tol
    loss = model.family(data).loss

    def body(state, _):
        state = solver.update(state, data)
        out = (state.params, loss(state.params, data)) if record else None
        return state, out

    state, outs = jax.lax.scan(body, solver.init(init), None, length=num_steps)
    ok = jnp.array(True)
    if check_basin:
        # A stationary point of the biconvex loss need not be its minimum (the wrong
        # basin θ → −θ, σ < 0 is a local optimum): compare with the default solver's
        # cold-start fit, and never call a worse point converged.
        reference = newton_fit(data, tol=tol)
        value = loss(state.params, data)
        dtype = value.dtype
        ok = value <= reference.loss + 1e3 * jnp.finfo(dtype).eps * (1 + jnp.abs(value))
    result = _finish(state.params, data, state.count, tol, ok=ok)
    if record:
        return result, outs[0], outs[1]
    return result


class AlternatingTrace(NamedTuple):
    """Checkpoints of one Algorithm-1 run (C checkpoints).

    Attributes:
      params: Params of [C, d] / [C, k] iterates at the checkpoint iterations.
      loss: [C] L_n at those iterates.
      grad_norm: [C] ‖∇L_n‖₂ at those iterates.
      hit_step: [] int32, the first iteration t ≥ 1 with ‖β_t − target‖₂ ≤ radius
        (β = (θ, γ)), or −1 if none up to the last checkpoint.
    """

    params: Params
    loss: jax.Array
    grad_norm: jax.Array
    hit_step: jax.Array


def trace_alternating(
    data: Comparisons,
    init: Params,
    target: Params,
    *,
    lr_theta,
    lr_gamma,
    checkpoints: tuple[int, ...],
    radius,
    order: str = "gauss_seidel",
) -> AlternatingTrace:
    """Runs Algorithm 1 (``alternating_gd``) and records it at a few iterations only.

    For long runs (small fixed steps need 10⁴–10⁶ iterations) where ``run_alternating(
    record=True)``'s whole path would not fit in memory: the iterate, loss and gradient
    norm at each checkpoint, and the first iteration at which the iterate comes within
    ``radius`` of ``target`` (e.g. the MLE). One ``lax.scan`` per segment between
    checkpoints; pure, vmap over datasets, starts or step sizes at the call site.

    Args:
      data: one dataset.
      init: start (θ_0, γ_0).
      target: the point whose neighbourhood is watched (e.g. ``fit(data).params``).
      lr_theta, lr_gamma: η₁, η₂ (floats or [] arrays; vmappable).
      checkpoints: strictly increasing iteration counts T_1 < … < T_C (static ints ≥ 1).
      radius: distance to ``target`` that counts as arrived.
      order: see ``alternating_gd``.

    Returns:
      ``AlternatingTrace``.
    """
    steps = tuple(int(t) for t in checkpoints)
    if not steps or steps[0] < 1 or any(b <= a for a, b in itertools.pairwise(steps)):
        raise ValueError(
            f"checkpoints must be strictly increasing ints >= 1, got {checkpoints}"
        )
    solver = alternating_gd(lr_theta, lr_gamma, order=order)
    goal = ravel_params(target)
    loss = model.family(data).loss

    def body(carry, _):
        state, hit = carry
        state = solver.update(state, data)
        near = jnp.linalg.norm(ravel_params(state.params) - goal) <= radius
        hit = jnp.where((hit < 0) & near, state.count, hit)
        return (state, hit), None

    carry = (solver.init(init), jnp.full((), -1, jnp.int32))
    snapshots = []
    for begin, end in itertools.pairwise((0, *steps)):
        carry, _ = jax.lax.scan(body, carry, None, length=end - begin)
        params = carry[0].params
        value, grad = jax.value_and_grad(lambda x: loss(x, data))(params)
        snapshots.append((params, value, jnp.linalg.norm(ravel_params(grad))))
    params, loss, grad_norm = jax.tree.map(lambda *x: jnp.stack(x), *snapshots)
    return AlternatingTrace(params, loss, grad_norm, carry[1])


def mirror_basin(params: Params, reference: Params) -> jax.Array:
    """[...] bool: ``params`` lies on the mirror side of ``reference`` (e.g. the MLE).

    The biconvex loss has a wrong basin where the reward is reversed, θ → −θ, and the
    rationality compensates with σ < 0: with ψ0 fixed, σ = ψ0 + γᵀψ can only turn
    negative through its covariate part, so a mirror iterate has θᵀθ̂ < 0 and
    γᵀγ̂ < 0 (the annotators the fit calls most rational look most adversarial). With
    k = 0 only θ is checked.

    Args:
      params: Params with θ [..., d], γ [..., k].
      reference: Params with θ [d], γ [k].
    """
    reversed_theta = params.theta @ reference.theta < 0
    if params.gamma.shape[-1] == 0:
        return reversed_theta
    return reversed_theta & (params.gamma @ reference.gamma < 0)


# --------------------------------------------------------------------------------------
# The default solver: phases of the one Newton minimiser (``hetrlhf.btl.newton``).
# --------------------------------------------------------------------------------------


def _honest_result(fam, x, value, grad, hess, prep, count, tol, ok) -> FitResult:
    """FitResult at x from its derivatives, with an honest ``converged`` flag."""
    lam = jnp.linalg.eigvalsh(hess)
    grad_norm = jnp.linalg.norm(grad)
    positive_definite = lam[0] > 100 * jnp.finfo(lam.dtype).eps * jnp.abs(lam[-1])
    converged = (
        ok
        & jnp.isfinite(value)
        & (grad_norm <= tol)
        & positive_definite
        & ~fam.separated(x, prep)
    )
    d = x.shape[-1] - prep.psi.shape[-1]
    return FitResult(unravel_params(x, d), converged, count, grad_norm, value)


def _finish(params: Params, data, count, tol, ok) -> FitResult:
    """Builds an honest FitResult at ``params`` (one more pass over the data)."""
    fam = model.family(data)
    prep = fam.prepare(data)
    x = ravel_params(params)
    value, grad, hess, _ = fam.derivatives(x, prep)
    return _honest_result(fam, x, value, grad, hess, prep, count, tol, ok)


def _warm_up(data, start: Params, count, steps: int, **options):
    """(start, count) after ``steps`` Algorithm-1 iterations (none when steps = 0)."""
    if not steps:
        return start, count
    warm = run_alternating(data, start, num_steps=steps, check_basin=False, **options)
    return warm.params, count + warm.num_steps


def _joint_phase(run_joint, hom_start: Params, init: Params | None, count):
    """``NewtonState`` of the joint fit: from the homogeneous start, and also from
    ``init`` when given, keeping the lower loss (escapes a wrong basin; a tie keeps
    the user's run). ``run_joint``: (start, count0) -> ``NewtonState``."""
    if init is None:
        return run_joint(hom_start, count)
    from_init = run_joint(init, count)
    from_hom = run_joint(hom_start, from_init.count)
    use_hom = from_hom.value < from_init.value
    best = jax.tree.map(lambda a, b: jnp.where(use_hom, a, b), from_hom, from_init)
    return best._replace(count=from_hom.count)


def fit_with_information(
    data: Comparisons,
    init: Params | None = None,
    *,
    tol=None,
    max_steps: int = 100,
    warmup_steps: int = 0,
    lr_theta=0.5,
    lr_gamma=0.5,
    start_tol=1e-2,
) -> tuple[FitResult, jax.Array, jax.Array]:
    """``newton_fit`` and the information at its estimate, from its last pass.

    The Newton loop evaluates the Hessian and the expected information at every
    iterate, the estimate included; returning them spares the intervals
    (``hr.confidence_intervals(..., information=hessian)``) another pass over the
    data — the same matrices ``model.derivatives`` gives at the estimate. Pure;
    jit/vmap at the call site; Newton only (the default solver).

    Args:
      data: one dataset (``Comparisons`` with [n, d], [n, k] fields).
      init: optional start. Without it the fit starts cold from the homogeneous MLE.
      tol: tolerance on ‖∇L_n‖₂; default ``default_tol(dtype)``.
      max_steps: Newton iterations allowed per phase (static).
      warmup_steps: optional Algorithm-1 iterations before the joint Newton phase
        (static; 0 by default: the homogeneous start already lies in the right basin).
      lr_theta, lr_gamma: step sizes of the warm-up.
      start_tol: gradient-norm tolerance of the homogeneous start. It only has to put
        the joint phase in the right basin, so it is loose; the joint phase then runs
        to ``tol``.

    Returns:
      (``FitResult``, observed information [p, p] (the Hessian of L_n), expected
      information [p, p]) at the estimate, p = d + k; ``num_steps`` counts Newton
      iterations of every phase plus warm-up iterations.
    """
    fam = model.family(data)
    d = fam.dim(data)
    k = data.psi.shape[-1]
    dtype = data.psi0.dtype
    tol = default_tol(dtype) if tol is None else tol

    prep = fam.prepare(data)

    def minimize(prep, x0, tol, count0=None):
        return newton.minimize(
            lambda x: fam.derivatives(x, prep),
            x0,
            tol=tol,
            max_steps=max_steps,
            count0=count0,
        )

    # Phase 1: the convex homogeneous fit (γ = 0, i.e. no ψ columns) from θ = 0.
    hom_prep = prep._replace(psi=prep.psi[..., :0])
    hom = minimize(hom_prep, jnp.zeros((d,), dtype), start_tol)
    hom_start = model.homogeneous_params(hom.x, k)
    count = hom.count

    def run_joint(start: Params, count):
        warm = {"lr_theta": lr_theta, "lr_gamma": lr_gamma, "tol": tol}
        start, count = _warm_up(data, start, count, warmup_steps, **warm)
        return minimize(prep, ravel_params(start), tol, count)

    best = _joint_phase(run_joint, hom_start, init, count)
    # γ = 0 is feasible, so a minimiser can't be worse than the homogeneous fit.
    slack = 10 * jnp.finfo(dtype).eps * (1 + jnp.abs(hom.value))
    ok = best.value <= hom.value + slack
    result = _honest_result(
        fam, best.x, best.value, best.grad, best.hess, prep, best.count, tol, ok
    )
    return result, best.hess, best.fisher


def newton_fit(data: Comparisons, init: Params | None = None, **options) -> FitResult:
    """The default solver (see the module docstring). Pure; jit/vmap at the call site.

    Options (all keyword): ``tol`` (on ‖∇L_n‖₂; default ``default_tol(dtype)``),
    ``max_steps`` (Newton iterations per phase, static, 100), ``warmup_steps``
    (Algorithm-1 iterations before the joint phase, static, 0), ``lr_theta``,
    ``lr_gamma`` (their step sizes), ``start_tol`` (tolerance of the homogeneous
    start, 1e-2): see ``fit_with_information``.

    Returns:
      ``FitResult``; ``num_steps`` counts Newton iterations of every phase plus warm-up
      iterations.
    """
    return fit_with_information(data, init, **options)[0]


def fit(
    data: Comparisons, init: Params | None = None, *, method: str = "newton", **options
):
    """Fits the heterogeneous Bradley–Terry model by maximum likelihood.

    ``hr.fit`` is traceable: ``jax.jit(jax.vmap(hr.fit))(stacked_data)`` fits many
    replicates in one program. Called eagerly (outside ``jit``), it also warns with a
    ``ConvergenceWarning`` that says why a fit did not converge.

    Args:
      data: ``Comparisons`` from ``hr.comparisons`` (or the simulator), or
        ``Rankings`` from ``hr.rankings`` (Plackett–Luce; K = 2 rankings give the
        pairwise fit): one solver for both, through ``model.family``.
      init: optional starting ``Params`` (required for ``method="alternating"``;
        ``newton`` starts cold from the homogeneous fit and, given ``init``, also runs
        from it and keeps the better of the two).
      method: "newton" (default; see ``newton_fit``) or "alternating" (Algorithm 1,
        ``run_alternating``).
      **options: keyword options of the chosen solver (``tol``, ``max_steps``,
        ``warmup_steps``, ``lr_theta``, ``lr_gamma``, ``num_steps``, ``order``).

    Returns:
      ``FitResult(params, converged, num_steps, grad_norm, loss)``.
    """
    if method not in ("newton", "alternating"):
        raise ValueError(f"method must be 'newton' or 'alternating', got {method!r}")
    if method == "alternating" and init is None:
        raise ValueError(
            "method='alternating' (Algorithm 1) needs an init near the truth"
        )
    if options.get("record"):
        raise ValueError(
            "fit does not record paths; call hr.run_alternating(..., record=True)"
        )
    model.family(data)  # TypeError for anything but Comparisons / Rankings
    if is_traced(data, init):  # inside the user's jit/vmap: stay a pure function
        solver = newton_fit if method == "newton" else run_alternating
        return solver(data, init, **options)
    # Eager call: compile the whole solver once per shape (cached by jax.jit).
    static = {k: v for k, v in options.items() if k in _STATIC_OPTIONS}
    dynamic = {k: v for k, v in options.items() if k not in _STATIC_OPTIONS}
    result = _jitted(method, tuple(sorted(static.items())))(data, init, **dynamic)
    if result.converged.ndim == 0:
        _warn_if_not_converged(result, data)
    return result


_STATIC_OPTIONS = ("max_steps", "warmup_steps", "num_steps", "order", "check_basin")


@functools.cache
def _jitted(method: str, static: tuple):
    solver = newton_fit if method == "newton" else run_alternating
    return jax.jit(functools.partial(solver, **dict(static)))


def _warn_if_not_converged(result: FitResult, data: Comparisons) -> None:
    if bool(result.converged):
        return
    if bool(is_separated(result.params, data)):
        reason = (
            "the data are perfectly separated by the fitted rewards: the MLE does not "
            "exist (θ̂ grows without bound while the gradient vanishes)"
        )
    elif not bool(jnp.isfinite(result.loss)):
        reason = "the loss is not finite"
    else:
        reason = (
            f"gradient norm {float(result.grad_norm):.3g} after {int(result.num_steps)} "
            "steps, or the Hessian is not positive definite there (a saddle or a flat, "
            "non-identified direction)"
        )
    warnings.warn(
        f"hetrlhf.fit did not converge: {reason}", ConvergenceWarning, stacklevel=3
    )


def fit_rankings(data, init: Params | None = None, **options) -> FitResult:
    """``fit`` for K-wise ``Rankings`` (kept for the name; ``hr.fit`` takes both)."""
    return fit(data, init, **options)


# --------------------------------------------------------------------------------------
# The padded fit: rows of weight 0, so that data of many sizes share one program.
# --------------------------------------------------------------------------------------


def padded_size(n: int, *, smallest: int = 64) -> int:
    """The bucket of n rows: the next of 2^j·{1, 5/4, 3/2, 7/4} at or above n.

    Four sizes per octave: padding adds at most 25% rows (at most ``smallest`` − n
    below ``smallest``), and the files, splits and resamples of similar size share
    one compiled program (and one entry of JAX's persistent compilation cache).
    """
    if n <= smallest:
        return smallest
    octave = 1 << ((n - 1).bit_length() - 1)  # 2^j <= n - 1 < 2^(j+1)
    return next(size for q in (5, 6, 7, 8) if (size := octave * q // 4) >= n)


def pad_rows(data: Comparisons, size: int, *, weighted: bool = True) -> Comparisons:
    """``data`` with rows of weight 0 appended up to ``size`` rows: the same fit.

    A row of weight 0 adds nothing to the loss Σ w_i ℓ_i / Σ w_i, its derivatives, the
    information, the sandwich (with or without clusters), the separation check or a
    bootstrap resample (``confidence.resample_weights``), so every estimate and
    interval is that of ``data`` (to rounding), while data of different sizes padded
    to one size (``padded_size``) share one compiled program. Padding rows have
    Δφ = 0, ψ = 0, ψ0 = 1, y = 0; unweighted data get weight 1 on their own rows.
    Eager (numpy; no compilation per input shape).

    ``weighted=False`` (unweighted ``data`` only) appends the same rows without a
    weight column: a row with Δφ = 0 has η = 0 whatever (θ, γ), so it adds the
    constant log 2 to the summed loss and nothing to its gradient or Hessian — the
    minimiser is unchanged, the mean gradient and the information shrink by n/size, and
    I⁻¹/size is still the covariance of ``data`` (a fit's tolerance on the mean
    gradient must be scaled by n/size to mean the same).

    Args:
      data: ``Comparisons`` with n rows.
      size: rows of the result (≥ n).
      weighted: add the weight column (default) or leave the data unweighted.

    Returns:
      ``Comparisons`` with ``size`` rows and a ``weight`` (None if not ``weighted``).

    Raises:
      TypeError: ``data`` is not ``Comparisons``.
      ValueError: size < n; ``weighted=False`` with weighted ``data``.
    """
    if not isinstance(data, Comparisons):
        raise TypeError(f"data must be hetrlhf.Comparisons, got {type(data).__name__}")
    n = data.num_comparisons
    if size < n:
        raise ValueError(f"size must be >= the {n} rows of data, got {size}")
    if not weighted and data.weight is not None:
        raise ValueError("weighted=False needs unweighted data (data.weight is None)")
    weight = np.ones(n, data.y.dtype) if data.weight is None else data.weight
    fill = {"psi0": 1.0}

    def grow(name, x):
        x = np.asarray(x)
        extra = np.full((size - n, *x.shape[1:]), fill.get(name, 0.0), x.dtype)
        return jnp.asarray(np.concatenate([x, extra]))

    if not weighted:
        return Comparisons(
            **{
                name: None if value is None else grow(name, value)
                for name, value in data._asdict().items()
            }
        )
    return Comparisons(
        **{
            name: grow(name, value)
            for name, value in data._replace(weight=weight)._asdict().items()
        }
    )
