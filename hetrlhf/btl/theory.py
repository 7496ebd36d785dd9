"""Quantities of Liu, Lu & Sun (2025)'s theorems that the studies check.

Theorem numbers follow the seed summary of the paper (DESIGN.md §A5); the forms below
are the ones stated there, and where we had to choose (the quantile q, the loss
normalisation) the docstring says so.

* Theorem 1 (linear rate of Algorithm 1): ``iteration_matrix`` is the Jacobian of one
  Algorithm-1 step at a stationary point, ``spectral_radius`` its contraction factor,
  ``contraction_factors`` that factor at many Hessians (one per replicate).
* Theorems 3–4 (asymptotically normal rewards and reward differences, the z-test of
  H0: r(s, a) = r(s, a′)): ``normal_power`` is the test's asymptotic power.
* Theorem 6 (pessimistic best-of-N): ``profiled_information`` Ĩ and
  ``theorem6_bound`` 3·q_{1−α/2}·‖Ĩ^{−1/2} E_s φ(s, a*(s))‖₂/√n;
  ``theorem6_comparison`` puts simulated suboptimalities beside it.

The Monte Carlo checks of these theorems (``ks_normal`` for Theorem 2's z-scores,
``binomial_band`` for a rejection rate or coverage) live in ``hetrlhf.montecarlo``;
the names here are aliases kept for one release.

``profiled_information``, ``theorem6_bound`` and ``normal_power`` are pure JAX
(jit/vmap-compatible); ``iteration_matrix``, ``spectral_radius``,
``contraction_factors`` and ``theorem6_comparison`` work on host numpy arrays (study
summaries).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.stats import norm

from hetrlhf.montecarlo import binomial_band, ks_normal, mean_se
from hetrlhf.validation import check_alpha, is_traced

__all__ = [
    "binomial_band",
    "contraction_factors",
    "iteration_matrix",
    "ks_normal",
    "normal_power",
    "profiled_information",
    "spectral_radius",
    "theorem6_bound",
    "theorem6_comparison",
]


def profiled_information(info: jax.Array, d: int) -> jax.Array:
    """Ĩ = I_θθ − I_θγ I_γγ⁻¹ I_γθ, the θ-information after profiling out γ.

    It is the Schur complement of the γγ block, so Ĩ⁻¹ is the θθ block of I⁻¹: the
    asymptotic covariance of √n(θ̂ − θ*) when γ is estimated too. Computed with a
    Cholesky solve of I_γγ (no explicit inverse); k = 0 gives I_θθ.

    Args:
      info: [d + k, d + k] per-observation Fisher information (θ block first), e.g.
        ``hr.fisher_information`` or ``simulate.population_information``.
      d: number of reward coordinates (static Python int).

    Returns:
      [d, d] symmetric matrix.

    Raises:
      ValueError: ``info`` is not square, ``d`` is not in [1, p], or (eagerly) I_γγ
        is not positive definite.
    """
    if info.ndim != 2 or info.shape[0] != info.shape[1]:
        raise ValueError(f"info must be a square [p, p] matrix, got shape {info.shape}")
    if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= info.shape[0]:
        raise ValueError(f"d must be an int in [1, {info.shape[0]}], got {d!r}")
    a, b, c = info[:d, :d], info[:d, d:], info[d:, d:]
    if c.shape[0] == 0:
        return a
    if not is_traced(c) and not bool(jnp.all(jnp.linalg.eigvalsh(c) > 0)):
        raise ValueError("info: the γγ block I_γγ is not positive definite")
    solved = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(c), b.T)
    schur = a - b @ solved
    return 0.5 * (schur + schur.T)


def theorem6_bound(
    info: jax.Array, phi_star_mean: jax.Array, n, alpha=0.05
) -> jax.Array:
    """Theorem 6's bound on the suboptimality of pessimistic best-of-N.

        SubOpt(pBoN) = E_s[r*(s, a*(s)) − r*(s, â(s))]
                     ≤ 3·q_{1−α/2}·‖Ĩ^{−1/2} E_s φ(s, a*(s))‖₂ / √n,

    Ĩ = ``profiled_information(info, d)`` at the truth, a*(s) the best candidate of
    prompt s under the true reward, α the level of pBoN's lower confidence bound. We
    read q_{1−α/2} as the standard normal quantile z_{1−α/2} (the quantile pBoN's
    bound r̂ − z_{1−α/2}·se uses). ‖Ĩ^{−1/2}v‖₂ = sqrt(vᵀĨ⁻¹v) (a Cholesky solve; no
    matrix square root), so the bound is 3·z_{1−α/2} times the asymptotic standard
    error of the estimated reward at v = E_s φ(s, a*(s)).

    Args:
      info: [d + k, d + k] per-observation Fisher information at the truth (θ first).
      phi_star_mean: [d] E_s φ(s, a*(s)).
      n: number of training comparisons (> 0; may be an array).
      alpha: 1 − level of pBoN's lower confidence bound, in (0, 1).

    Returns:
      [] the bound.

    Raises (eagerly only, for the value checks):
      ValueError: bad shapes, n <= 0, alpha outside (0, 1), Ĩ not positive definite.
    """
    if phi_star_mean.ndim != 1:
        raise ValueError(
            f"phi_star_mean must have shape [d], got {jnp.shape(phi_star_mean)}"
        )
    d = phi_star_mean.shape[0]
    if not is_traced(n) and not float(n) > 0:
        raise ValueError(f"n must be > 0, got {n}")
    check_alpha(alpha)
    tilde = profiled_information(info, d)
    if not is_traced(tilde) and not bool(jnp.all(jnp.linalg.eigvalsh(tilde) > 0)):
        raise ValueError("info: the profiled information Ĩ is not positive definite")
    v = phi_star_mean.astype(tilde.dtype)
    quad = v @ jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(tilde), v)
    return 3.0 * norm.ppf(1.0 - alpha / 2.0) * jnp.sqrt(quad / n)


def theorem6_comparison(
    suboptimality: np.ndarray,
    phi_star_mean: np.ndarray,
    info: np.ndarray,
    n: int,
    alpha: float = 0.05,
) -> dict:
    """Theorem 6's bound beside the simulated suboptimality of pBoN, per pool size.

    Args:
      suboptimality: [S, G] SubOpt of S seeds at G pool sizes (each the mean over
        prompts of r*(s, a*(s)) − r*(s, â(s)), â pBoN's choice).
      phi_star_mean: [G, d] E_s φ(s, a*(s)) per pool size.
      info: [p, p] population Fisher information I(θ*, γ*) (θ first).
      n: training comparisons.
      alpha: pBoN's level.

    Returns:
      "n"; [G] arrays "suboptimality" (mean over seeds), "suboptimality_se" (its
      Monte Carlo error), "suboptimality_q95" (95% quantile over seeds),
      "share_above_bound" (seeds above the bound), "theorem6_bound"; and
      "phi_star_mean" [G, d], "population_information" [p, p],
      "profiled_information" [d, d].
    """
    subopt = np.asarray(suboptimality)
    phi_star = np.asarray(phi_star_mean)
    info = jnp.asarray(info)
    bound = np.array(
        [float(theorem6_bound(info, jnp.asarray(v), n, alpha)) for v in phi_star]
    )
    mean, se = mean_se(subopt)
    return {
        "n": int(n),
        "suboptimality": mean,
        "suboptimality_se": se,
        "suboptimality_q95": np.quantile(subopt, 0.95, axis=0),
        "share_above_bound": (subopt > bound).mean(0),
        "theorem6_bound": bound,
        "phi_star_mean": phi_star,
        "population_information": np.asarray(info),
        "profiled_information": np.asarray(
            profiled_information(info, phi_star.shape[-1])
        ),
    }


def normal_power(effect, alpha=0.05, *, alternative: str = "two-sided"):
    """Asymptotic power of the z-test at standardised effect λ = δ/se.

    Under H1 the z statistic is ≈ N(λ, 1) (Theorems 3–4), so with z_q = Φ⁻¹(q):
    two-sided Φ(λ − z_{1−α/2}) + Φ(−λ − z_{1−α/2}); "greater" (H1: δ > 0)
    Φ(λ − z_{1−α}); "less" Φ(−λ − z_{1−α}). λ = 0 gives the size α.

    Args:
      effect: [...] standardised effects λ.
      alpha: level of the test.
      alternative: "two-sided", "greater" or "less".

    Returns:
      [...] rejection probabilities.
    """
    lam = jnp.asarray(effect)
    if alternative == "two-sided":
        z = norm.ppf(1.0 - alpha / 2.0)
        return norm.cdf(lam - z) + norm.cdf(-lam - z)
    if alternative == "greater":
        return norm.cdf(lam - norm.ppf(1.0 - alpha))
    if alternative == "less":
        return norm.cdf(-lam - norm.ppf(1.0 - alpha))
    raise ValueError(
        f"alternative must be 'two-sided', 'greater' or 'less', got {alternative!r}"
    )


def iteration_matrix(
    hessian: np.ndarray, d: int, lr_theta: float, lr_gamma: float, order: str
) -> np.ndarray:
    """Jacobian M of one Algorithm-1 step at a stationary point with Hessian H.

    With H = [[A, B], [Bᵀ, C]] (θ block A, γ block C), Gauss–Seidel order:
    M = [[I − η₁A, −η₁B], [−η₂Bᵀ(I − η₁A), I − η₂C + η₁η₂BᵀB]]; Jacobi order:
    M = I − diag(η₁, η₂)·H. The iteration converges locally at rate ρ(M)
    (``spectral_radius``).

    Args:
      hessian: [p, p] Hessian of L_n (or the information) at the stationary point.
      d: size of the θ block.
      lr_theta, lr_gamma: η₁, η₂.
      order: "gauss_seidel" or "jacobi".

    Returns:
      [p, p] matrix.
    """
    if order not in ("gauss_seidel", "jacobi"):
        raise ValueError(f"order must be 'gauss_seidel' or 'jacobi', got {order!r}")
    a, b, c = hessian[:d, :d], hessian[:d, d:], hessian[d:, d:]
    k = c.shape[0]
    top = np.hstack([np.eye(d) - lr_theta * a, -lr_theta * b])
    if order == "gauss_seidel":
        bottom = np.hstack(
            [
                -lr_gamma * b.T @ (np.eye(d) - lr_theta * a),
                np.eye(k) - lr_gamma * c + lr_theta * lr_gamma * b.T @ b,
            ]
        )
    else:
        bottom = np.hstack([-lr_gamma * b.T, np.eye(k) - lr_gamma * c])
    return np.vstack([top, bottom])


def spectral_radius(m: np.ndarray) -> float:
    """max |λ_i(M)|, the asymptotic contraction factor per step of x ↦ Mx."""
    return float(np.max(np.abs(np.linalg.eigvals(m))))


def contraction_factors(
    hessians: np.ndarray, d: int, lr_theta: float, lr_gamma: float, order: str
) -> np.ndarray:
    """[R] ρ(M) of one Algorithm-1 step at each of R Hessians [R, p, p].

    ``spectral_radius(iteration_matrix(h, d, lr_theta, lr_gamma, order))`` per h: the
    local contraction factor per step at each replicate's stationary point.
    """
    return np.array(
        [
            spectral_radius(iteration_matrix(h, d, lr_theta, lr_gamma, order))
            for h in np.asarray(hessians)
        ]
    )
