"""Eager validation shared by every entry point.

Everything that needs concrete values (shapes, NaN/inf, label values, ranks) is
checked here, once, outside traced code, so the kernels can stay pure and jittable:
the data constructors ``comparisons`` and ``rankings``, the level ``alpha``, and the
conditioning of an information matrix (``condition_number`` is traceable and is how
ill-conditioning is reported under ``jit``; ``check_conditioning`` raises eagerly).
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from hetrlhf.types import Comparisons, Rankings, RewardEstimate

__all__ = [
    "as_float_array",
    "check_alpha",
    "check_conditioning",
    "check_draws",
    "check_estimate",
    "cholesky_and_condition",
    "column_rank",
    "comparisons",
    "condition_number",
    "covariates",
    "default_float_dtype",
    "default_max_condition",
    "is_traced",
    "rankings",
]


def is_traced(*xs) -> bool:
    """True if any leaf of ``xs`` is a tracer (inside the user's ``jit``/``vmap``)."""
    return any(isinstance(x, jax.core.Tracer) for x in jax.tree.leaves(xs))


def check_alpha(alpha) -> None:
    """Raises ``ValueError`` unless 0 < alpha < 1 (skipped for traced values)."""
    if not is_traced(alpha) and not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")


def check_draws(name: str, value) -> None:
    """Raises ``ValueError`` unless a number of bootstrap draws is a Python int >= 2."""
    if not isinstance(value, int) or value < 2:
        raise ValueError(f"{name} must be an int >= 2, got {value!r}")


def check_estimate(est, name: str = "est") -> None:
    """Raises ``TypeError`` unless ``est`` is a ``hetrlhf.RewardEstimate``."""
    if not isinstance(est, RewardEstimate):
        raise TypeError(
            f"{name} must be a hetrlhf.RewardEstimate(mean, var), got "
            f"{type(est).__name__}"
        )


def default_max_condition(dtype) -> float:
    """Largest acceptable condition number: 0.01/ε (≈4.5e13 float64, ≈8.4e4 float32)."""
    return 0.01 / float(jnp.finfo(dtype).eps)


def condition_number(info: jax.Array) -> jax.Array:
    """λ_max/λ_min of a symmetric [p, p] matrix; inf if it is not positive definite."""
    lam = jnp.linalg.eigvalsh(info)
    return jnp.where(lam[0] > 0, lam[-1] / jnp.where(lam[0] > 0, lam[0], 1.0), jnp.inf)


def cholesky_and_condition(info: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(lower Cholesky factor, ``condition_number``) of a symmetric [p, p] matrix.

    The factor is scheduled after the eigenvalues, not alongside: under ``vmap`` both
    are batched LAPACK calls, and jaxlib 0.10's CPU kernels split a batch over
    XLA:CPU's intra-op pool and block a pool thread until it is done, so two of them
    running at once on a 2-thread pool wait for each other forever (README "Known
    issues"). ``lax.optimization_barrier`` orders them in XLA's schedule; the values
    are unchanged. XLA removes the barrier before the program runs and XLA:CPU runs
    instructions by their data and buffer dependencies, so this alone does not
    guarantee the order: the studies also set XLA:CPU's memory-minimising scheduler
    (``experiments.STUDY_XLA_FLAGS``), with which the programs that hung finish.
    The factor is NaN where the matrix is not positive definite (``cond`` is inf).

    Returns:
      (``cho_factor``'s (factor [p, p], lower=True) pair, condition number []).
    """
    cond = condition_number(info)
    _, info = jax.lax.optimization_barrier((cond, info))
    return jax.scipy.linalg.cho_factor(info, lower=True), cond


def check_conditioning(info, cond, max_condition, what: str) -> None:
    """Raises ``ValueError`` (eagerly only) for a non-finite or ill-conditioned matrix.

    Args:
      info: [p, p] information matrix.
      cond: [] its ``condition_number``.
      max_condition: threshold, or None for ``default_max_condition(info.dtype)``.
      what: the caller's name, for the message.
    """
    if is_traced(cond):
        return
    if max_condition is None:
        max_condition = default_max_condition(info.dtype)
    if not bool(jnp.all(jnp.isfinite(info))):
        raise ValueError(f"{what}: the information matrix contains NaN or inf")
    if not float(cond) <= max_condition:
        raise ValueError(
            f"{what}: the information matrix is singular or badly conditioned "
            f"(condition number {float(cond):.3g} > {max_condition:.3g}). Causes: θ ≈ 0 or "
            "σ ≡ 0 at the estimate, collinear features φ or covariates ψ, ψ0 in the span "
            "of ψ, or a fit that did not converge."
        )


def default_float_dtype():
    """The float dtype JAX creates by default: float64 with ``jax_enable_x64``."""
    return jnp.zeros(()).dtype


def as_float_array(name: str, value, ndim: int | None = None) -> np.ndarray:
    """``value`` as a finite real float64 numpy array, or an error naming ``name``.

    Args:
      name: the argument's name, for the messages.
      value: array-like (bool, int or float).
      ndim: required number of dimensions (None: any).

    Raises:
      TypeError: non-numeric or complex input.
      ValueError: None, the wrong number of dimensions, or NaN/inf entries.
    """
    if value is None:
        raise ValueError(f"{name} is required, got None")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise TypeError(
            f"{name} must be array-like, got {type(value).__name__}"
        ) from exc
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.bool_)
    ):
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")
    return arr


def column_rank(x: np.ndarray) -> int:
    """Numerical rank of the columns of [m, c] x: singular values above
    s_max·max(m, c)·10ε count (the tolerance of every identifiability check)."""
    if x.size == 0:
        return 0
    s = np.linalg.svd(x, compute_uv=False)
    return int(np.sum(s > s[0] * max(x.shape) * np.finfo(np.float64).eps * 10))


def covariates(psi, psi0, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Validates the annotator covariates shared by comparisons and rankings.

    Args:
      psi: [n, k] covariates or None (k = 0, the homogeneous model).
      psi0: [n] known scale or None (ψ0 ≡ 1).
      n: number of observations.

    Returns:
      (psi [n, k], psi0 [n]) as float numpy arrays.

    Raises:
      ValueError: wrong shapes, NaN/inf, ψ0 ≡ 0, collinear ψ, or ψ0 in the span of ψ.
    """
    if psi is None:
        psi = np.zeros((n, 0))
    else:
        psi = as_float_array("psi", psi, 2)
        if psi.shape[0] != n:
            raise ValueError(
                f"psi must have shape [n, k] with n = {n}, got {psi.shape}"
            )
    if psi0 is None:
        psi0 = np.ones(n)
    else:
        psi0 = as_float_array("psi0", psi0, 1)
        if psi0.shape != (n,):
            raise ValueError(f"psi0 must have shape [n] = ({n},), got {psi0.shape}")
    if np.all(psi0 == 0):
        raise ValueError(
            "psi0 is identically 0: the scale of θ is not identified (ψ0 pins it)"
        )
    k = psi.shape[1]
    if k and column_rank(np.column_stack([psi0, psi])) < k + 1:
        rank_psi = column_rank(psi)
        if rank_psi < k:
            raise ValueError(
                f"psi has rank {rank_psi} < k = {k}: its columns are collinear, so γ is "
                "not identified"
            )
        raise ValueError(
            "psi0 lies in the span of the columns of psi (e.g. psi has a constant column "
            "and psi0 ≡ 1): θ and γ are not identified"
        )
    return psi, psi0


def _labels(y, n: int) -> np.ndarray:
    """[n] labels in {0, 1} as floats (``comparisons``)."""
    y = as_float_array("y", y, 1)
    if y.shape != (n,):
        raise ValueError(f"y must have shape [n] = ({n},), got {y.shape}")
    bad = ~np.isin(y, (0.0, 1.0))
    if np.any(bad):
        raise ValueError(
            f"y must contain only labels 0 and 1; found {np.unique(y[bad])[:5].tolist()}"
        )
    return y


def _weights(weight, n: int) -> np.ndarray:
    """[n] non-negative frequency weights, not all 0 (``comparisons``)."""
    weight = as_float_array("weight", weight, 1)
    if weight.shape != (n,):
        raise ValueError(f"weight must have shape [n] = ({n},), got {weight.shape}")
    if np.any(weight < 0):
        raise ValueError(
            f"weight must be >= 0; found {int(np.sum(weight < 0))} negative value(s)"
        )
    if not np.any(weight > 0):
        raise ValueError("weight is 0 on every row: there is nothing to fit")
    return weight


def comparisons(
    phi0, phi1, y, psi=None, psi0=None, *, weight=None, dtype=None
) -> Comparisons:
    """Validates pairwise comparisons and returns them as a pytree of jnp arrays.

    Model (Liu, Lu & Sun 2025): P(y_i = 1) = sigmoid(σ_γ(x_i) · θᵀ(φ_i¹ − φ_i⁰)),
    σ_γ(x) = ψ0(x) + γᵀψ(x).

    Args:
      phi0: [n, d] features of the first response of each pair.
      phi1: [n, d] features of the second response of each pair.
      y: [n] labels in {0, 1} (bool, int or float); 1 means the second response won.
      psi: [n, k] annotator covariates, or None for the homogeneous model (k = 0).
      psi0: [n] known scale ψ0(x_i), or None for ψ0 ≡ 1. Must not be identically 0
        and must not lie in the span of the columns of ``psi`` (otherwise the scale of
        θ is not identified).
      weight: optional [n] non-negative frequency weights (row i stands for w_i
        identical comparisons; see ``Comparisons.weight``), not all 0; None: each row
        counts once.
      dtype: float dtype of the result; defaults to JAX's default float dtype
        (float64 when ``jax_enable_x64`` is on — recommended for inference on CPU).

    Returns:
      A ``Comparisons`` pytree.

    Raises:
      TypeError: non-numeric input.
      ValueError: wrong shapes, n = 0, NaN/inf, labels outside {0, 1}, ψ0 ≡ 0,
        ψ0 in the span of ψ, negative or all-zero weights, or Δφ without full column
        rank on the rows of positive weight (e.g. a feature that
        depends only on the prompt, or an intercept, cancels in Δφ).
    """
    phi0 = as_float_array("phi0", phi0, 2)
    phi1 = as_float_array("phi1", phi1, 2)
    if phi0.shape != phi1.shape:
        raise ValueError(
            f"phi0 and phi1 must have the same shape [n, d], got {phi0.shape} and "
            f"{phi1.shape}"
        )
    n, d = phi0.shape
    if n == 0:
        raise ValueError("phi0 has no rows: at least one comparison (n >= 1) is needed")
    if d == 0:
        raise ValueError("phi0 has no columns: at least one feature (d >= 1) is needed")

    y = _labels(y, n)
    psi, psi0 = covariates(psi, psi0, n)
    dphi = phi1 - phi0
    if weight is not None:
        weight = _weights(weight, n)
        dphi = dphi[weight > 0]
    rank = column_rank(dphi)
    if rank < d:
        raise ValueError(
            f"phi1 - phi0 has rank {rank} < d = {d}: some feature combination cancels in "
            "the difference (a prompt-only feature or an intercept), so θ is not "
            "identified"
        )

    if dtype is None:
        dtype = default_float_dtype()
    if jnp.dtype(dtype) != jnp.float64 and jax.default_backend() == "cpu":
        warnings.warn(
            f"hetrlhf: building comparisons in {jnp.dtype(dtype)} on CPU. Standard errors "
            "and intervals need float64 for statsmodels-level accuracy: call "
            "jax.config.update('jax_enable_x64', True) before creating arrays.",
            stacklevel=2,
        )
    return Comparisons(
        phi0=jnp.asarray(phi0, dtype),
        phi1=jnp.asarray(phi1, dtype),
        y=jnp.asarray(y, dtype),
        psi=jnp.asarray(psi, dtype),
        psi0=jnp.asarray(psi0, dtype),
        weight=None if weight is None else jnp.asarray(weight, dtype),
    )


def rankings(phi, order, psi=None, psi0=None, *, dtype=None) -> Rankings:
    """Validates K-wise rankings and returns them as a pytree of jnp arrays.

    Args:
      phi: [n, K, d] features of the K ≥ 2 responses ranked by annotator i.
      order: [n, K] integers, each row a permutation of 0..K−1 listing the responses
        best first.
      psi: [n, k] annotator covariates, or None for the homogeneous model.
      psi0: [n] known scale, or None for ψ0 ≡ 1 (not ≡ 0, not in the span of ψ).
      dtype: float dtype (default: JAX's default float).

    Returns:
      ``Rankings``.

    Raises:
      TypeError: non-numeric input.
      ValueError: wrong shapes, NaN/inf, K < 2, a row of ``order`` that is not a
        permutation, ψ0 ≡ 0 or in the span of ψ, or within-ranking feature differences
        without full column rank (θ not identified).
    """
    phi = as_float_array("phi", phi, 3)
    n, num_items, d = phi.shape
    if n == 0:
        raise ValueError("phi has no rows: at least one ranking (n >= 1) is needed")
    if num_items < 2:
        raise ValueError(
            f"phi must have K >= 2 responses per ranking, got K = {num_items}"
        )
    if d == 0:
        raise ValueError("phi has no features: d >= 1 is needed")
    order = as_float_array("order", order, 2)
    if order.shape != (n, num_items):
        raise ValueError(
            f"order must have shape [n, K] = ({n}, {num_items}), got {order.shape}"
        )
    if np.any(order != np.round(order)):
        raise ValueError("order must contain integers (indices into phi's K axis)")
    order = order.astype(np.int64)
    bad = np.any(np.sort(order, axis=1) != np.arange(num_items), axis=1)
    if np.any(bad):
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"order[{row}] = {order[row].tolist()} is not a permutation of 0..{num_items - 1} "
            f"({int(bad.sum())} bad row(s))"
        )
    psi, psi0 = covariates(psi, psi0, n)
    diffs = (phi[:, 1:, :] - phi[:, :1, :]).reshape(-1, d)
    rank = column_rank(diffs)
    if rank < d:
        raise ValueError(
            f"within-ranking feature differences have rank {rank} < d = {d}: some feature "
            "combination is constant within every ranking (a prompt-only feature, an "
            "intercept, or one-hot item features without a reference item), so θ is not "
            "identified"
        )
    dtype = default_float_dtype() if dtype is None else dtype
    return Rankings(
        phi=jnp.asarray(phi, dtype),
        order=jnp.asarray(order, jnp.int32),
        psi=jnp.asarray(psi, dtype),
        psi0=jnp.asarray(psi0, dtype),
    )
