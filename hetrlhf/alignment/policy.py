"""Closed-form variance-aware bandit policies and their risk (DESIGN.md §B2).

Banerjee, Saha & Gopalan (2025), "Towards Reliable, Uncertainty-Aware Alignment",
arXiv 2507.15906, §2. One bandit instance: K arms, a reference policy π₀ ∈ Δ_K, a
noisy reward model r̂ = r + ε with ε ~ N(0, Σ), Σ = diag(σ²). Every function here is a
pure kernel for ONE instance ([K] arrays); vmap at the call site for many instances or
many noise draws:

    jax.vmap(policy.vanilla_step, in_axes=(0, None))(r_hats, eps)       # [n, K]

A ``RewardEstimate(mean, var)`` unpacks into the ``(r_hat, var)`` arguments:
``policy.variance_aware_step(*est, eps)``.

Trust-region steps (δ = π − π₀):
  * ``vanilla_step``:         max ⟨δ, r̂⟩ s.t. ‖δ‖² ≤ ε          → δ ∝ r̂   (P r̂ on the simplex)
  * ``variance_aware_step``:  max ⟨δ, r̂⟩ s.t. δᵀΣδ ≤ λ_min(Σ)·ε → δ ∝ Σ⁻¹r̂ (M r̂ on the simplex)
  * ``underperformance_probability``: the closed-form risk P(⟨δ(r̂), r⟩ ≤ 0).
  * ``step_improvements``: ⟨δ(r̂), r⟩ of both steps over noise draws r̂ (Monte Carlo).
KL-regularised policies:
  * ``sharpe_policy``:             argmax ⟨π, r̂/σ²⟩ − β KL(π‖π₀)  (closed form, Thm 2.7)
  * ``variance_penalized_policy``: argmax ⟨π, r̂⟩ − β Σ_a σ²_a π_a log(π_a/π₀_a)
    (our formulation of the variance-weighted penalty; solved numerically)
  * ``kl_policy_improvements``: ⟨π − π₀, r⟩ of both and the Gibbs policy over draws.

"On the simplex" (``simplex=True``) adds the constraint 1ᵀδ = 0 so that π₀ + δ still
sums to one. Positivity of π₀ + δ is NOT enforced by the trust-region steps (they are
local steps): choose ε small enough, e.g. √ε ≤ min_a π₀(a), which
guarantees π₀ + δ ≥ 0 for both steps (both have ‖δ‖₂ ≤ √ε).

Validation: called eagerly (concrete arrays) the functions raise ``ValueError`` on
NaN/inf, non-positive variances, negative ε, non-positive β or a π₀ off the simplex;
under ``jit``/``vmap`` (tracers) these value checks are skipped and only the static
shape checks (chex) run. ``simplex`` and ``variance_aware`` are static Python bools.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import logsumexp
from jax.scipy.stats import norm

from hetrlhf.validation import is_traced

__all__ = [
    "kl_policy_improvements",
    "sharpe_policy",
    "step_improvements",
    "underperformance_probability",
    "vanilla_step",
    "variance_aware_step",
    "variance_penalized_policy",
]


# ----------------------------------------------------------------------------------
# Eager validation (skipped under tracing).


def _check_finite(name: str, x) -> None:
    if is_traced(x):
        return
    arr = np.asarray(x)
    if not np.all(np.isfinite(arr)):
        raise ValueError(
            f"{name} contains {int(np.sum(~np.isfinite(arr)))} NaN or infinite value(s)"
        )


def _check_positive(name: str, x) -> None:
    if is_traced(x):
        return
    _check_finite(name, x)
    arr = np.asarray(x)
    if np.any(arr <= 0):
        raise ValueError(
            f"{name} must be > 0 everywhere; got min {float(np.min(arr))} "
            f"({int(np.sum(arr <= 0))} non-positive value(s))"
        )


def _check_nonnegative(name: str, x) -> None:
    if is_traced(x):
        return
    _check_finite(name, x)
    arr = np.asarray(x)
    if np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0, got {arr.tolist()}")


def _check_distribution(name: str, p) -> None:
    if is_traced(p):
        return
    _check_finite(name, p)
    arr = np.asarray(p, dtype=np.float64)
    if np.any(arr < 0):
        raise ValueError(
            f"{name} must be a probability vector: it has negative entries"
        )
    total = float(np.sum(arr))
    # Rounding of a sum of K entries in the input's own precision.
    dtype = np.asarray(p).dtype
    eps = np.finfo(dtype if np.issubdtype(dtype, np.floating) else np.float64).eps
    tol = 1e-6 + 10 * np.sqrt(arr.size) * eps
    if abs(total - 1.0) > tol:
        raise ValueError(
            f"{name} must sum to 1 (a probability vector), sums to {total}"
        )


def _as_float(*xs) -> list[jax.Array]:
    """jnp arrays of one float dtype: the promoted dtype of the non-scalar inputs,
    or JAX's default float dtype if that is not a float (e.g. integer input)."""
    xs = [jnp.asarray(x) for x in xs]
    dtype = jnp.result_type(*[x for x in xs if x.ndim > 0])
    if not jnp.issubdtype(dtype, jnp.floating):
        dtype = jnp.zeros(()).dtype
    return [x.astype(dtype) for x in xs]


def _check_shapes(arms: dict, scalars: dict | None = None) -> None:
    """Static shape checks (trace-safe): [K] arm vectors of one shape, [] scalars."""
    shape = None
    for name, x in arms.items():
        if x.ndim != 1:
            raise ValueError(
                f"{name} must be 1-D [K] (one bandit instance; vmap for many), got "
                f"shape {x.shape}"
            )
        if x.shape[0] < 1:
            raise ValueError(f"{name} must have at least one arm (K >= 1)")
        if shape is None:
            shape, first = x.shape, name
        elif x.shape != shape:
            raise ValueError(
                f"{name} must have the shape of {first} {shape}, got {x.shape}"
            )
    for name, x in (scalars or {}).items():
        if x.ndim != 0:
            raise ValueError(f"{name} must be a scalar, got shape {x.shape}")
    chex.assert_rank(list(arms.values()), 1)
    chex.assert_equal_shape(list(arms.values()))


# ----------------------------------------------------------------------------------
# Trust-region steps.


def _safe_scale(num: jax.Array, den_sq: jax.Array) -> jax.Array:
    """num / sqrt(den_sq), and 0 where den_sq == 0 (no direction to move in)."""
    positive = den_sq > 0
    return jnp.where(positive, num / jnp.sqrt(jnp.where(positive, den_sq, 1.0)), 0.0)


def vanilla_step(r_hat: jax.Array, eps, simplex: bool = True) -> jax.Array:
    """Vanilla (Euclidean) trust-region step δ = π_v − π₀.

    Solves max_δ ⟨δ, r̂⟩ s.t. ‖δ‖₂² ≤ ε (and 1ᵀδ = 0 if ``simplex``). Lagrange gives
    (Banerjee et al. 2025, §2)

        δ = √ε · u / ‖u‖,   u = r̂            (no simplex constraint)
                              u = P r̂ = r̂ − mean(r̂)·1,  P = I − 11ᵀ/K   (simplex)

    so ‖δ‖² = ε exactly. If u = 0 (r̂ constant on the simplex) every feasible δ is
    optimal and δ = 0 is returned.

    Args:
      r_hat: [K] estimated rewards r̂.
      eps: [] squared radius ε >= 0 of the trust region.
      simplex: static bool; keep 1ᵀδ = 0 so that π₀ + δ sums to one.

    Returns:
      [K] the step δ.
    """
    r_hat, eps = _as_float(r_hat, eps)
    _check_shapes({"r_hat": r_hat}, {"eps": eps})
    _check_finite("r_hat", r_hat)
    _check_nonnegative("eps", eps)

    u = r_hat - jnp.mean(r_hat) if simplex else r_hat
    return _safe_scale(jnp.sqrt(eps), jnp.sum(u * u)) * u


def _precision_direction(r_hat: jax.Array, var: jax.Array, simplex: bool) -> jax.Array:
    """λ_min(Σ)·Σ⁻¹r̂, or λ_min(Σ)·M r̂ on the simplex (M as in ``variance_aware_step``).

    M r̂ = Σ⁻¹(r̂ − r̄_w·1) with r̄_w = Σ_a w_a r̂_a / Σ_a w_a, w = 1/σ², the
    precision-weighted mean. The factor λ_min(Σ) = min σ² keeps the weights
    λ_min/σ² in (0, 1], which avoids overflow for tiny variances; it cancels in the
    normalised step.
    """
    w = jnp.min(var) / var
    if simplex:
        # A dot product, not jnp.sum(w * r_hat): jax 0.10.2's XLA:CPU miscompiles the
        # vmapped float32 form of the latter for 10,922 <= rows < ~2e5 (every row
        # from the 10,922nd wrong; tests/alignment/test_policy.py checks this kernel).
        r_bar = jnp.dot(w, r_hat) / jnp.sum(w)
        return w * (r_hat - r_bar)
    return w * r_hat


def variance_aware_step(
    r_hat: jax.Array, var: jax.Array, eps, simplex: bool = True
) -> jax.Array:
    """Variance-aware (ellipsoidal) trust-region step δ = π_va − π₀.

    Solves max_δ ⟨δ, r̂⟩ s.t. δᵀΣδ ≤ ε′ (and 1ᵀδ = 0 if ``simplex``), Σ = diag(σ²),
    ε′ = λ_min(Σ)·ε so that the ellipsoid's longest semi-axis equals the radius √ε of
    the vanilla ball (Banerjee et al. 2025, §2). Lagrange gives

        δ = √ε′ · d / √(dᵀΣd),   d = Σ⁻¹ r̂                          (no simplex)
                                   d = M r̂,  M = Σ⁻¹ − Σ⁻¹11ᵀΣ⁻¹/(1ᵀΣ⁻¹1)  (simplex)

    (stationarity r̂ − 2λΣδ − μ1 = 0 with 1ᵀδ = 0 fixes μ = 1ᵀΣ⁻¹r̂/1ᵀΣ⁻¹1), so
    δᵀΣδ = ε′ exactly. M r̂ = Σ⁻¹(r̂ − r̄_w·1), r̄_w the precision-weighted mean of r̂.
    If d = 0 (r̂ constant on the simplex) δ = 0 is returned.

    Args:
      r_hat: [K] estimated rewards r̂.
      var: [K] reward variances σ² > 0 (the diagonal of Σ).
      eps: [] squared radius ε >= 0 of the vanilla ball; ε′ = min(σ²)·ε.
      simplex: static bool; keep 1ᵀδ = 0.

    Returns:
      [K] the step δ.
    """
    r_hat, var, eps = _as_float(r_hat, var, eps)
    _check_shapes({"r_hat": r_hat, "var": var}, {"eps": eps})
    _check_finite("r_hat", r_hat)
    _check_positive("var", var)
    _check_nonnegative("eps", eps)

    d = _precision_direction(r_hat, var, simplex)
    eps_prime = jnp.min(var) * eps
    return _safe_scale(jnp.sqrt(eps_prime), jnp.sum(var * d * d)) * d


def underperformance_probability(
    r: jax.Array, var: jax.Array, variance_aware: bool = True, simplex: bool = True
) -> jax.Array:
    """Closed-form risk P(⟨δ(r̂), r⟩ ≤ 0) of a trust-region step when r̂ ~ N(r, Σ).

    Both steps are a positive multiple of a linear map of r̂, δ ∝ A r̂ with A symmetric,
    so the sign of ⟨δ, r⟩ is the sign of the Gaussian r̂ᵀAr ~ N(rᵀAr, rᵀAΣAr) and the
    risk is Φ(−rᵀAr / √(rᵀAΣAr)) (Banerjee et al. 2025, §2):

      =================  ==========================  ===========================
      step               no simplex                  simplex (1ᵀδ = 0)
      =================  ==========================  ===========================
      vanilla, A = I/P   Φ(−‖r‖² / √(rᵀΣr))         Φ(−‖Pr‖² / √((Pr)ᵀΣ(Pr)))
      var.-aware, Σ⁻¹/M  Φ(−√(rᵀΣ⁻¹r))               Φ(−√(rᵀMr))   (MΣM = M)
      =================  ==========================  ===========================

    The risk does not depend on ε. By Cauchy–Schwarz the variance-aware risk is
    never larger: √(rᵀMr) = max over directions v with 1ᵀv = 0 of vᵀr/√(vᵀΣv), and
    the vanilla direction P r is one such v (without the simplex, the same with
    Σ⁻¹ and any v). If the signal is zero (r = 0, or r constant on the simplex) the
    step cannot change the true value, ⟨δ, r⟩ ≡ 0, and the risk is 1.

    Args:
      r: [K] true rewards.
      var: [K] noise variances σ² > 0 of the reward model.
      variance_aware: static bool; the variance-aware step (True) or vanilla (False).
      simplex: static bool; steps constrained to 1ᵀδ = 0.

    Returns:
      [] the probability that the step does not improve the true value.
    """
    r, var = _as_float(r, var)
    _check_shapes({"r": r, "var": var})
    _check_finite("r", r)
    _check_positive("var", var)

    if variance_aware:
        # rᵀΣ⁻¹r = Σ_a w_a r_a² and rᵀMr = Σ_a w_a (r_a − r̄_w)² (the weighted-variance
        # identity), w = 1/σ². Computed with the bounded weights λ_min/σ² and rescaled;
        # a sum of non-negative terms, so no cancellation.
        w = jnp.min(var) / var
        c = r - jnp.sum(w * r) / jnp.sum(w) if simplex else r
        snr_sq = jnp.sum(w * c * c) / jnp.min(var)
        has_signal = snr_sq > 0
        snr = jnp.sqrt(jnp.where(has_signal, snr_sq, 1.0))
    else:
        u = r - jnp.mean(r) if simplex else r
        signal = jnp.sum(u * u)  # ‖r‖² or ‖Pr‖² (P idempotent)
        noise_sq = jnp.sum(var * u * u)
        has_signal = signal > 0
        snr = signal / jnp.sqrt(jnp.where(has_signal, noise_sq, 1.0))
    return jnp.where(has_signal, norm.cdf(-snr), 1.0)


# ----------------------------------------------------------------------------------
# KL-regularised policies.


def sharpe_policy(pi0: jax.Array, r_hat: jax.Array, var: jax.Array, beta) -> jax.Array:
    """Sharpe-ratio tilt π(a) ∝ π₀(a)·exp(r̂(a) / (β σ²(a))).

    The exact maximiser over the simplex of ⟨π, r̂/σ²⟩ − β KL(π‖π₀) (Banerjee et al.
    2025, Theorem 2.7): the usual Gibbs solution of KL-regularised reward
    maximisation, applied to the reward-to-variance ratio r̂/σ². Computed as a
    softmax of log π₀ + r̂/(βσ²) (log-sum-exp, so large ratios do not overflow);
    arms with π₀(a) = 0 get π(a) = 0.

    Compare ``variance_penalized_policy``, which keeps the reward r̂ and puts the
    variance into the KL weights instead: a close but not identical tilt (the two
    coincide when all σ² are equal).

    Args:
      pi0: [K] reference policy π₀ (a probability vector).
      r_hat: [K] estimated rewards r̂.
      var: [K] reward variances σ² > 0.
      beta: [] regularisation strength β > 0.

    Returns:
      [K] the policy π.
    """
    pi0, r_hat, var, beta = _as_float(pi0, r_hat, var, beta)
    _check_shapes({"pi0": pi0, "r_hat": r_hat, "var": var}, {"beta": beta})
    _check_distribution("pi0", pi0)
    _check_finite("r_hat", r_hat)
    _check_positive("var", var)
    _check_positive("beta", beta)

    return jax.nn.softmax(jnp.log(pi0) + r_hat / (beta * var))


def variance_penalized_policy(
    pi0: jax.Array, r_hat: jax.Array, var: jax.Array, beta, *, max_iter: int = 200
) -> jax.Array:
    """Maximiser of ⟨π, r̂⟩ − β Σ_a σ²(a) π(a) log(π(a)/π₀(a)) over the simplex.

    The variance-weighted KL penalty (DESIGN.md §B2; the weighting is our
    formulation): arms whose reward is uncertain are held closer to π₀. The objective
    is strictly concave on the support of π₀, and since the penalty's slope is −∞
    at π(a) = 0 the maximiser is interior there. Stationarity with a multiplier ν
    for 1ᵀπ = 1,

        r̂(a) − β σ²(a) (log(π(a)/π₀(a)) + 1) = ν,

    gives each arm in closed form given ν (no Lambert W needed):

        π_ν(a) = π₀(a) · exp((r̂(a) − ν)/(β σ²(a)) − 1).

    ν is the unique root of h(ν) = log Σ_a π_ν(a) (h is convex and strictly
    decreasing), bracketed by min_a(r̂(a) − βσ²(a)) <= ν <= max_a(r̂(a) − βσ²(a)) over
    the support of π₀ (at those points every exponent is >= 0, resp. <= 0). It is
    found by safeguarded Newton on h (Newton from the left end of the bracket, a
    bisection step whenever Newton would leave the bracket) in a ``lax.while_loop``;
    the bisection fallback guarantees convergence, and ``max_iter`` only caps it.
    The returned π is normalised exactly (softmax of the log π_ν). Compare
    ``sharpe_policy``: π(a) ∝ π₀(a) exp(r̂(a)/(βσ²(a))) — here the multiplier ν is
    divided by σ²(a) too, so the tilts differ unless all σ² are equal.

    Args:
      pi0: [K] reference policy π₀ (a probability vector).
      r_hat: [K] estimated rewards r̂.
      var: [K] reward variances σ² > 0.
      beta: [] regularisation strength β > 0.
      max_iter: static cap on root-finding iterations.

    Returns:
      [K] the policy π (zero where π₀ is zero).
    """
    pi0, r_hat, var, beta = _as_float(pi0, r_hat, var, beta)
    _check_shapes({"pi0": pi0, "r_hat": r_hat, "var": var}, {"beta": beta})
    _check_distribution("pi0", pi0)
    _check_finite("r_hat", r_hat)
    _check_positive("var", var)
    _check_positive("beta", beta)

    log_pi0 = jnp.log(pi0)
    support = pi0 > 0
    inv_temp = 1.0 / (beta * var)  # 1/(βσ²(a))
    anchors = r_hat - beta * var  # ν at which arm a has exponent 0
    lo0 = jnp.min(jnp.where(support, anchors, jnp.inf))
    hi0 = jnp.max(jnp.where(support, anchors, -jnp.inf))

    def logits(nu):
        return log_pi0 + (r_hat - nu) * inv_temp - 1.0

    def h_and_slope(nu):
        z = logits(nu)
        h = logsumexp(z)
        p = jnp.exp(z - h)  # softmax, zero off the support
        return h, -jnp.sum(p * inv_temp)

    tol = 16 * jnp.finfo(pi0.dtype).eps
    nu = _decreasing_root(h_and_slope, lo0, hi0, tol, max_iter)
    return jax.nn.softmax(logits(nu))


def _decreasing_root(h_and_slope, lo0, hi0, tol, max_iter: int):
    """[] root of a decreasing h bracketed by [lo0, hi0] (``variance_penalized_policy``).

    Safeguarded Newton from lo0 (a bisection step whenever Newton would leave the
    bracket), until |h| <= tol, the bracket closes to tol·(1 + |ν|), or ``max_iter``
    iterations. ``h_and_slope``: ν -> (h(ν), h'(ν)).
    """

    def cond(state):
        i, nu, lo, hi, h, _ = state
        open_bracket = hi - lo > tol * (1 + jnp.abs(nu))
        return (i < max_iter) & (jnp.abs(h) > tol) & open_bracket

    def body(state):
        i, nu, lo, hi, h, slope = state
        lo = jnp.where(h > 0, nu, lo)
        hi = jnp.where(h > 0, hi, nu)
        newton = nu - h / slope
        inside = (newton > lo) & (newton < hi)
        nu = jnp.where(inside, newton, 0.5 * (lo + hi))
        return (i + 1, nu, lo, hi, *h_and_slope(nu))

    init = (jnp.asarray(0), lo0, lo0, hi0, *h_and_slope(lo0))
    _, nu, *_ = jax.lax.while_loop(cond, body, init)
    return nu


# ----------------------------------------------------------------------------------
# Monte Carlo over noise draws (the check of the closed forms above).


def step_improvements(key, r, var, eps, *, num_draws: int, simplex: bool = True):
    """⟨δ(r̂), r⟩ of the vanilla and the variance-aware step over draws r̂ ~ N(r, Σ).

    The share of draws with ⟨δ(r̂), r⟩ ≤ 0 estimates ``underperformance_probability``.

    Args:
      key: PRNG key.
      r: [K] true rewards.
      var: [K] noise variances σ².
      eps: [] squared trust-region radius ε.
      num_draws: number of draws (static).
      simplex: static bool; steps constrained to 1ᵀδ = 0.

    Returns:
      [num_draws, 2] improvements of (vanilla, variance-aware).
    """
    noise = jax.random.normal(key, (num_draws, r.shape[0]), r.dtype)
    r_hat = r + noise * jnp.sqrt(var)

    def one(r_hat):
        vanilla = vanilla_step(r_hat, eps, simplex=simplex)
        aware = variance_aware_step(r_hat, var, eps, simplex=simplex)
        return jnp.stack([vanilla @ r, aware @ r])

    return jax.vmap(one)(r_hat)


def kl_policy_improvements(key, r, var, beta, *, num_draws: int):
    """Improvements ⟨π − π₀, r⟩ of the KL-regularised policies (π₀ uniform).

    The variances are normalised by λ_min(Σ) (our choice, the analogue of
    ε′ = λ_min(Σ)·ε): the most certain arm is penalised exactly as in the vanilla
    Gibbs policy, every other arm more.

    Args:
      key: PRNG key.
      r: [K] true rewards.
      var: [K] noise variances σ².
      beta: [] KL strength β > 0.
      num_draws: number of draws r̂ ~ N(r, Σ) (static).

    Returns:
      [num_draws, 3] for (Gibbs π ∝ π₀ e^{r̂/β}, Sharpe tilt, variance-penalised).
    """
    k = r.shape[0]
    pi0 = jnp.full((k,), 1.0 / k, r.dtype)
    weights = var / jnp.min(var)
    noise = jax.random.normal(key, (num_draws, k), r.dtype)
    r_hat = r + noise * jnp.sqrt(var)

    def one(r_hat):
        gibbs = sharpe_policy(pi0, r_hat, jnp.ones_like(var), beta)
        sharpe = sharpe_policy(pi0, r_hat, weights, beta)
        penalized = variance_penalized_policy(pi0, r_hat, weights, beta)
        return (jnp.stack([gibbs, sharpe, penalized]) - pi0) @ r

    return jax.vmap(one)(r_hat)
