"""Eager validation of user input into a ``Comparisons`` pytree.

Everything that needs concrete values (shapes, NaN/inf, label values, ranks) is
checked here, once, outside traced code, so the kernels can stay pure and jittable.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np

from hetrlhf.types import Comparisons

__all__ = ["comparisons", "default_float_dtype"]


def default_float_dtype():
    """The float dtype JAX creates by default: float64 with ``jax_enable_x64``."""
    return jnp.zeros(()).dtype


def _as_float_array(name: str, value, ndim: int) -> np.ndarray:
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
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    if np.iscomplexobj(arr):
        raise TypeError(f"{name} must be real, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s)")
    return arr


def _column_rank(x: np.ndarray) -> int:
    # Rank of the column space relative to the largest singular value.
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
        psi = _as_float_array("psi", psi, 2)
        if psi.shape[0] != n:
            raise ValueError(
                f"psi must have shape [n, k] with n = {n}, got {psi.shape}"
            )
    if psi0 is None:
        psi0 = np.ones(n)
    else:
        psi0 = _as_float_array("psi0", psi0, 1)
        if psi0.shape != (n,):
            raise ValueError(f"psi0 must have shape [n] = ({n},), got {psi0.shape}")
    if np.all(psi0 == 0):
        raise ValueError(
            "psi0 is identically 0: the scale of θ is not identified (ψ0 pins it)"
        )
    k = psi.shape[1]
    if k and _column_rank(np.column_stack([psi0, psi])) < k + 1:
        rank_psi = _column_rank(psi)
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


def comparisons(phi0, phi1, y, psi=None, psi0=None, *, dtype=None) -> Comparisons:
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
      dtype: float dtype of the result; defaults to JAX's default float dtype
        (float64 when ``jax_enable_x64`` is on — recommended for inference on CPU).

    Returns:
      A ``Comparisons`` pytree.

    Raises:
      TypeError: non-numeric input.
      ValueError: wrong shapes, n = 0, NaN/inf, labels outside {0, 1}, ψ0 ≡ 0,
        ψ0 in the span of ψ, or Δφ without full column rank (e.g. a feature that
        depends only on the prompt, or an intercept, cancels in Δφ).
    """
    phi0 = _as_float_array("phi0", phi0, 2)
    phi1 = _as_float_array("phi1", phi1, 2)
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

    y = _as_float_array("y", y, 1)
    if y.shape != (n,):
        raise ValueError(f"y must have shape [n] = ({n},), got {y.shape}")
    bad = ~np.isin(y, (0.0, 1.0))
    if np.any(bad):
        raise ValueError(
            f"y must contain only labels 0 and 1; found {np.unique(y[bad])[:5].tolist()}"
        )

    psi, psi0 = covariates(psi, psi0, n)
    dphi = phi1 - phi0
    rank = _column_rank(dphi)
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
    )
