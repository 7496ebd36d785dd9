"""Inference for the heterogeneous Bradley–Terry MLE (Liu, Lu & Sun 2025; DESIGN §A3).

* Fisher information I(θ, γ): by default the observed information, the autodiff
  Hessian of the mean loss L_n (what statsmodels uses for its standard errors); the
  expected information E[p(1−p) g gᵀ], g = ∂η/∂(θ, γ) = [σ·Δφ ; (θᵀΔφ)·ψ], is the
  closed-form alternative (they agree at the MLE in large samples).
  ``covariance``/``wald_intervals`` evaluate the same observed information by
  ``model.derivatives`` (for comparisons a closed form: one pass over the data instead
  of an autodiff Hessian; the tests check both against each other and finite
  differences). Both data families through ``model.family``.
* Cov(θ̂, γ̂) ≈ I⁻¹/n, by a Cholesky solve rather than an explicit inverse.
* Wald intervals estimate ± z_{1−α/2}·se; reward intervals and reward comparisons use
  the θ-block Σ_θ of the covariance. The other interval methods (profile, bootstrap,
  sandwich) and the ``confidence_intervals`` dispatcher: ``hetrlhf.btl.confidence``.

Every function is pure and traceable. Called eagerly (concrete arrays), the functions
that invert the information raise ``ValueError`` when it is singular or badly
conditioned, reporting the condition number; under ``jit`` the condition number is
returned as data (``Intervals.condition_number``) and no exception can be raised.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import scipy.stats
from jax.scipy.stats import norm

from hetrlhf.btl import model
from hetrlhf.types import (
    Comparisons,
    Intervals,
    Params,
    RewardComparison,
    RewardEstimate,
    ravel_params,
    unravel_params,
)
from hetrlhf.validation import (
    check_alpha,
    check_conditioning,
    check_estimate,
    cholesky_and_condition,
    is_traced,
)

__all__ = [
    "LRTest",
    "compare_estimates",
    "compare_rewards",
    "covariance",
    "difference_ztest",
    "fisher_information",
    "likelihood_ratio_test",
    "reward_interval",
    "standard_errors",
    "symmetric_intervals",
    "wald_intervals",
    "z_quantile",
]


def fisher_information(params: Params, data: Comparisons, *, kind: str = "observed"):
    """Per-observation Fisher information at ``params``.

    Args:
      params: (θ, γ) with θ [d], γ [k].
      data: one dataset with n comparisons (or n Plackett–Luce ``Rankings``, whose
        loss and expected information come from ``hetrlhf.btl.plackett_luce``).
      kind: "observed" — ∇²L_n(θ, γ) by autodiff (``jax.hessian``), the observed
        information divided by n; or "expected" — (1/n) Σ p_i(1−p_i) g_i g_iᵀ with
        g_i = [σ_i·Δφ_i ; (θᵀΔφ_i)·ψ_i] and p_i the model probability at ``params``.

    Returns:
      [d + k, d + k] matrix (θ block first, then γ).
    """
    fam = model.family(data)
    d = fam.dim(data)
    if kind == "observed":
        return jax.hessian(lambda x: fam.loss(unravel_params(x, d), data))(
            ravel_params(params)
        )
    if kind == "expected":
        return fam.expected_information(params, data)
    raise ValueError(f"kind must be 'observed' or 'expected', got {kind!r}")


def _info_cov_cond(params, data, kind):
    """(information [p, p], covariance I⁻¹/n [p, p], condition number []); pure.

    The observed information here is the closed-form Hessian of ``derivatives`` (one
    pass over the data); it is the same matrix as ``fisher_information``'s autodiff
    Hessian to rounding (checked in the tests), about an order of magnitude cheaper
    inside vmapped Monte Carlo studies.
    """
    if kind == "observed":
        info = model.derivatives(ravel_params(params), data)[2]
    else:
        info = fisher_information(params, data, kind=kind)
    return _cov_cond(info, data)


def _cov_cond(info, data):
    """(info, I⁻¹/n, condition number) of a given information matrix; pure."""
    # Cholesky solve instead of an explicit inverse; NaN if I is not positive definite
    # (only reachable under jit, where ``cond`` = inf reports it).
    chol, cond = cholesky_and_condition(info)
    eye = jnp.eye(info.shape[-1], dtype=info.dtype)
    n = model.family(data).num_obs(data)
    return info, jax.scipy.linalg.cho_solve(chol, eye) / n, cond


# Eager calls compile the whole computation once per shape instead of dispatching the
# autodiff Hessian op by op.
_info_cov_cond_jit = jax.jit(_info_cov_cond, static_argnames="kind")
_cov_cond_jit = jax.jit(_cov_cond)


def _covariance_and_condition(
    params, data, kind, max_condition, what, information=None
):
    if kind not in ("observed", "expected"):
        raise ValueError(f"kind must be 'observed' or 'expected', got {kind!r}")
    if information is not None:
        p = ravel_params(params).shape[-1]
        if information.shape != (p, p):
            raise ValueError(
                f"information must have shape ({p}, {p}) (the {kind} information at "
                f"params), got {information.shape}"
            )
        fn = _cov_cond if is_traced(information, data) else _cov_cond_jit
        info, cov, cond = fn(information, data)
    else:
        fn = _info_cov_cond if is_traced(params, data) else _info_cov_cond_jit
        info, cov, cond = fn(params, data, kind=kind)
    check_conditioning(info, cond, max_condition, what)
    return cov, cond


def covariance(
    params: Params,
    data: Comparisons,
    *,
    kind: str = "observed",
    max_condition=None,
) -> jax.Array:
    """Asymptotic covariance Cov(θ̂, γ̂) ≈ I⁻¹/n, shape [d + k, d + k].

    Args:
      params, data: the fit and its data.
      kind: "observed" or "expected" information (see ``fisher_information``).
      max_condition: eager error threshold; default ``default_max_condition(dtype)``.

    Raises (eagerly only):
      ValueError: singular or badly conditioned information (message has the
        condition number).
    """
    return _covariance_and_condition(params, data, kind, max_condition, "covariance")[0]


def standard_errors(params: Params, data: Comparisons, **kwargs) -> Params:
    """Standard errors sqrt(diag(I⁻¹/n)) as a Params pytree."""
    cov = covariance(params, data, **kwargs)
    return unravel_params(jnp.sqrt(jnp.diagonal(cov)), model.family(data).dim(data))


def z_quantile(alpha):
    """z_{1−α/2}, the two-sided standard-normal critical value."""
    return norm.ppf(1.0 - alpha / 2.0)


def symmetric_intervals(params: Params, cov: jax.Array, cond, alpha) -> Intervals:
    """estimate ± z_{1−α/2}·sqrt(diag(cov)) for every coordinate (Wald and sandwich).

    Args:
      params: the estimate (θ̂ [d], γ̂ [k]).
      cov: [d + k, d + k] covariance of the estimate.
      cond: [] condition number reported with the intervals.
      alpha: 1 − confidence level.
    """
    se = unravel_params(jnp.sqrt(jnp.diagonal(cov)), params.theta.shape[-1])
    half = jax.tree.map(lambda s: z_quantile(alpha) * s, se)
    lower = jax.tree.map(jnp.subtract, params, half)
    upper = jax.tree.map(jnp.add, params, half)
    return Intervals(params, se, lower, upper, cond)


def wald_intervals(
    params: Params,
    data: Comparisons,
    alpha=0.05,
    *,
    kind: str = "observed",
    max_condition=None,
    information=None,
) -> Intervals:
    """Wald intervals θ̂_j ± z_{1−α/2}·se_j, se from I⁻¹/n, for every coordinate.

    ``hr.confidence_intervals(..., method="wald")`` (the default) calls this; the
    other methods live in ``hetrlhf.btl.confidence``.

    Args:
      params: the estimate (θ̂, γ̂), e.g. ``hr.fit(data).params``.
      data: the data it was fitted on (``Comparisons`` or ``Rankings``).
      alpha: 1 − confidence level.
      kind: information used for the standard errors ("observed" or "expected").
      max_condition: eager error threshold on the information's condition number;
        default ``default_max_condition(dtype)``.
      information: optional [d + k, d + k] ``kind`` information at ``params``,
        already computed (``estimate.fit_with_information`` returns the fit's last
        Hessian and expected information): saves a pass over the data.

    Returns:
      ``Intervals(estimate, se, lower, upper, condition_number)``; the first four are
      Params pytrees.
    """
    check_alpha(alpha)
    cov, cond = _covariance_and_condition(
        params, data, kind, max_condition, "confidence_intervals", information
    )
    return symmetric_intervals(params, cov, cond, alpha)


def _theta_cov(params, data, cov):
    d = model.family(data).dim(data)
    if cov is None:
        cov = covariance(params, data)
    return cov[:d, :d]


def reward_interval(
    params: Params, data: Comparisons, phi_new: jax.Array, *, cov=None
) -> RewardEstimate:
    """Estimated reward and its variance at new (prompt, response) features.

    mean = θ̂ᵀφ,  var = φᵀ Σ_θ φ (Σ_θ the θ-block of Cov(θ̂, γ̂)), so
    θ̂ᵀφ ± z_{1−α/2}·sqrt(var) is the Wald interval of the reward.

    Args:
      params: estimate.
      data: the data it was fitted on (for the covariance).
      phi_new: [..., d] features.
      cov: optional precomputed [d + k, d + k] covariance (avoids recomputing it).

    Returns:
      ``RewardEstimate(mean [...], var [...])``.
    """
    sigma_theta = _theta_cov(params, data, cov)
    mean = model.reward(params.theta, phi_new)
    var = jnp.einsum("...i,ij,...j->...", phi_new, sigma_theta, phi_new)
    return RewardEstimate(mean, var)


def difference_ztest(diff: RewardEstimate) -> RewardComparison:
    """z-test of H0: Δ = 0 from an estimate of a reward difference Δ.

    z = Δ̂ / sqrt(var(Δ̂)); p-values from the standard normal. The estimate can come
    from any source (Fisher, ensemble, interval rewards): only its mean and variance
    are used. A zero variance gives z = ±inf (or NaN for 0/0) — there is nothing to
    test then.

    Args:
      diff: ``RewardEstimate`` of Δ = r(s, a) − r(s, b), mean and var of shape [...].

    Returns:
      ``RewardComparison(estimate, se, z, p_value, p_value_greater, p_value_less)``:
      two-sided, H1: Δ > 0, and H1: Δ < 0 p-values.
    """
    se = jnp.sqrt(diff.var)
    z = diff.mean / se
    return RewardComparison(
        estimate=diff.mean,
        se=se,
        z=z,
        p_value=2.0 * norm.sf(jnp.abs(z)),
        p_value_greater=norm.sf(z),
        p_value_less=norm.cdf(z),
    )


def compare_estimates(
    est_a: RewardEstimate, est_b: RewardEstimate, cov_ab=None
) -> RewardComparison:
    """z-test of H0: r_a = r_b from two ``RewardEstimate``s of any source.

    Δ̂ = mean_a − mean_b,  var(Δ̂) = var_a + var_b − 2·Cov(r̂_a, r̂_b).
    ``cov_ab=None`` treats the two estimates as independent (right for interval
    rewards from independent judge calls; for two rewards from ONE fitted model the
    estimates are correlated — pass the covariance, e.g. φ_aᵀΣ_θφ_b for the Fisher
    source or the head covariance for an ensemble, or test the difference directly
    with ``difference_ztest``). Rounding can make the difference variance slightly
    negative when a ≈ b; it is clipped at 0.

    Args:
      est_a, est_b: ``RewardEstimate``s with broadcastable shapes [...].
      cov_ab: [...] covariance of the two estimates, or None (0).

    Returns:
      ``RewardComparison`` (see ``difference_ztest``).

    Raises:
      TypeError: an argument is not a ``RewardEstimate``.
    """
    check_estimate(est_a, "est_a")
    check_estimate(est_b, "est_b")
    var = est_a.var + est_b.var
    if cov_ab is not None:
        var = var - 2.0 * cov_ab
    return difference_ztest(
        RewardEstimate(est_a.mean - est_b.mean, jnp.maximum(var, 0.0))
    )


def compare_rewards(
    params: Params, data: Comparisons, phi_a: jax.Array, phi_b: jax.Array, *, cov=None
) -> RewardComparison:
    """z-test of H0: r(s, a) = r(s, b), i.e. θᵀ(φ_a − φ_b) = 0 (Fisher source).

    Δ̂ = θ̂ᵀ(φ_a − φ_b), se = sqrt((φ_a − φ_b)ᵀ Σ_θ (φ_a − φ_b)), z = Δ̂/se. The
    reward difference is itself a linear reward at φ_a − φ_b, so its
    ``RewardEstimate`` comes from ``reward_interval`` (which accounts for the
    correlation of r̂_a and r̂_b exactly) and is tested by ``difference_ztest``, the
    source-agnostic test shared with ``compare_estimates``.

    Args:
      params, data: the fit and its data.
      phi_a, phi_b: [..., d] features of the two responses (broadcastable).
      cov: optional precomputed covariance.

    Returns:
      ``RewardComparison(estimate, se, z, p_value, p_value_greater, p_value_less)``:
      two-sided, H1: r_a > r_b, and H1: r_a < r_b p-values.
    """
    return difference_ztest(reward_interval(params, data, phi_a - phi_b, cov=cov))


class LRTest(NamedTuple):
    """Likelihood-ratio test of a restricted model nested in a full one.

    Attributes:
      stat: 2(ℓ_full − ℓ_restricted) ≥ 0.
      df: the number of parameters the restriction fixes.
      p: P(χ²_df ≥ stat), the asymptotic p-value (Wilks).
    """

    stat: float
    df: int
    p: float


def likelihood_ratio_test(
    log_likelihood_restricted: float, log_likelihood_full: float, df: int
) -> LRTest:
    """Wilks' likelihood-ratio test, e.g. of γ = 0 (homogeneous vs heterogeneous).

    stat = 2(ℓ_full − ℓ_restricted) with ℓ the maximised log-likelihoods Σ_i w_i ℓ_i
    (n·L_n, not the mean loss), asymptotically χ²_df under H0: the restricted model
    (here σ ≡ ψ0, i.e. γ = 0; df = k) is true. The full model's maximum is never
    below the restricted one's, so a negative difference is solver rounding and the
    statistic is clipped at 0 (p = 1). Eager (Python floats; scipy's χ² tail).

    Args:
      log_likelihood_restricted: maximised log-likelihood of the restricted model.
      log_likelihood_full: that of the full model.
      df: degrees of freedom ≥ 1 (the difference in free parameters).

    Returns:
      ``LRTest(stat, df, p)``.

    Raises:
      ValueError: df < 1 or a log-likelihood that is not finite.
    """
    if isinstance(df, bool) or int(df) != df or df < 1:
        raise ValueError(f"df must be an int >= 1, got {df!r}")
    restricted, full = float(log_likelihood_restricted), float(log_likelihood_full)
    if not (math.isfinite(restricted) and math.isfinite(full)):
        raise ValueError(
            f"log-likelihoods must be finite, got {restricted} (restricted) and "
            f"{full} (full)"
        )
    stat = max(2.0 * (full - restricted), 0.0)
    return LRTest(stat, int(df), float(scipy.stats.chi2.sf(stat, int(df))))
