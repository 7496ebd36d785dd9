"""Inference for the heterogeneous Bradley–Terry MLE (Liu, Lu & Sun 2025; DESIGN §A3).

* Fisher information I(θ, γ): by default the observed information, the autodiff
  Hessian of the mean loss L_n (what statsmodels uses for its standard errors); the
  expected information E[p(1−p) g gᵀ], g = ∂η/∂(θ, γ) = [σ·Δφ ; (θᵀΔφ)·ψ], is the
  closed-form alternative (they agree at the MLE in large samples).
  ``covariance``/``confidence_intervals`` evaluate the same observed information by
  the closed form of ``estimate.derivatives`` (one pass over the data instead of an
  autodiff Hessian; the tests check both against each other and finite differences).
* Cov(θ̂, γ̂) ≈ I⁻¹/n, by a Cholesky solve rather than an explicit inverse.
* Wald intervals estimate ± z_{1−α/2}·se; reward intervals and reward comparisons use
  the θ-block Σ_θ of the covariance.

Every function is pure and traceable. Called eagerly (concrete arrays), the functions
that invert the information raise ``ValueError`` when it is singular or badly
conditioned, reporting the condition number; under ``jit`` the condition number is
returned as data (``Intervals.condition_number``) and no exception can be raised.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.stats import norm

from hetrlhf import model
from hetrlhf import plackett_luce as rk
from hetrlhf.estimate import derivatives, ravel_params, unravel_params
from hetrlhf.types import (
    Comparisons,
    Intervals,
    Params,
    RewardComparison,
    RewardEstimate,
)

__all__ = [
    "compare_estimates",
    "compare_rewards",
    "condition_number",
    "confidence_intervals",
    "covariance",
    "default_max_condition",
    "difference_ztest",
    "fisher_information",
    "reward_interval",
    "sandwich_covariance",
    "standard_errors",
]


def default_max_condition(dtype) -> float:
    """Largest acceptable condition number: 0.01/ε (≈4.5e13 float64, ≈8.4e4 float32)."""
    return 0.01 / float(jnp.finfo(dtype).eps)


def _is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


def _dim(data) -> int:
    """d, the number of reward features (``Comparisons`` or ``Rankings``)."""
    return data.phi.shape[-1] if isinstance(data, rk.Rankings) else data.phi0.shape[-1]


def _num_obs(data) -> int:
    """n, the number of comparisons or rankings."""
    return data.phi.shape[-3] if isinstance(data, rk.Rankings) else data.y.shape[-1]


def fisher_information(params: Params, data: Comparisons, *, kind: str = "observed"):
    """Per-observation Fisher information at ``params``.

    Args:
      params: (θ, γ) with θ [d], γ [k].
      data: one dataset with n comparisons (or n Plackett–Luce ``Rankings``, whose
        loss and expected information come from ``hetrlhf.plackett_luce``).
      kind: "observed" — ∇²L_n(θ, γ) by autodiff (``jax.hessian``), the observed
        information divided by n; or "expected" — (1/n) Σ p_i(1−p_i) g_i g_iᵀ with
        g_i = [σ_i·Δφ_i ; (θᵀΔφ_i)·ψ_i] and p_i the model probability at ``params``.

    Returns:
      [d + k, d + k] matrix (θ block first, then γ).
    """
    d = _dim(data)
    loss = rk.loss if isinstance(data, rk.Rankings) else model.loss
    if kind == "observed":
        return jax.hessian(lambda x: loss(unravel_params(x, d), data))(
            ravel_params(params)
        )
    if kind == "expected" and isinstance(data, rk.Rankings):
        return rk.expected_information(params, data)
    if kind == "expected":
        sigma = model.rationality(params.gamma, data.psi, data.psi0)
        r = model.reward(params.theta, data.dphi)
        p = jax.nn.sigmoid(sigma * r)
        g = jnp.concatenate(
            [sigma[:, None] * data.dphi, r[:, None] * data.psi], axis=-1
        )
        return jnp.einsum("i,ij,il->jl", p * (1 - p), g, g) / data.y.shape[-1]
    raise ValueError(f"kind must be 'observed' or 'expected', got {kind!r}")


def condition_number(info: jax.Array) -> jax.Array:
    """λ_max/λ_min of a symmetric matrix; inf if it is not positive definite."""
    lam = jnp.linalg.eigvalsh(info)
    return jnp.where(lam[0] > 0, lam[-1] / jnp.where(lam[0] > 0, lam[0], 1.0), jnp.inf)


def _check_conditioning(info, cond, max_condition, what: str) -> None:
    if _is_traced(cond):
        return
    if not bool(jnp.all(jnp.isfinite(info))):
        raise ValueError(f"{what}: the information matrix contains NaN or inf")
    if not float(cond) <= max_condition:
        raise ValueError(
            f"{what}: the information matrix is singular or badly conditioned "
            f"(condition number {float(cond):.3g} > {max_condition:.3g}). Causes: θ ≈ 0 or "
            "σ ≡ 0 at the estimate, collinear features φ or covariates ψ, ψ0 in the span "
            "of ψ, or a fit that did not converge."
        )


def _info_cov_cond(params, data, kind):
    """(information [p, p], covariance I⁻¹/n [p, p], condition number []); pure.

    The observed information here is the closed-form Hessian of ``derivatives`` (one
    pass over the data); it is the same matrix as ``fisher_information``'s autodiff
    Hessian to rounding (checked in the tests), about an order of magnitude cheaper
    inside vmapped Monte Carlo studies.
    """
    if kind == "observed" and isinstance(data, Comparisons):
        info = derivatives(ravel_params(params), data)[2]
    else:
        info = fisher_information(params, data, kind=kind)
    cond = condition_number(info)
    # Cholesky solve instead of an explicit inverse; NaN if I is not positive definite
    # (only reachable under jit, where ``cond`` = inf reports it).
    chol = jax.scipy.linalg.cho_factor(info, lower=True)
    eye = jnp.eye(info.shape[-1], dtype=info.dtype)
    return info, jax.scipy.linalg.cho_solve(chol, eye) / _num_obs(data), cond


# Eager calls compile the whole computation once per shape instead of dispatching the
# autodiff Hessian op by op.
_info_cov_cond_jit = jax.jit(_info_cov_cond, static_argnames="kind")


def _covariance_and_condition(params, data, kind, max_condition, what):
    if kind not in ("observed", "expected"):
        raise ValueError(f"kind must be 'observed' or 'expected', got {kind!r}")
    traced = any(_is_traced(leaf) for leaf in jax.tree.leaves((params, data)))
    fn = _info_cov_cond if traced else _info_cov_cond_jit
    info, cov, cond = fn(params, data, kind=kind)
    if max_condition is None:
        max_condition = default_max_condition(info.dtype)
    _check_conditioning(info, cond, max_condition, what)
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
    return unravel_params(jnp.sqrt(jnp.diagonal(cov)), _dim(data))


def _z(alpha):
    return norm.ppf(1.0 - alpha / 2.0)


def _check_alpha(alpha) -> None:
    if not _is_traced(alpha) and not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")


def confidence_intervals(
    params: Params,
    data: Comparisons,
    alpha=0.05,
    *,
    method: str = "wald",
    key=None,
    kind: str = "observed",
    max_condition=None,
    **options,
) -> Intervals:
    """Confidence intervals for every coordinate of (θ, γ); Wald by default.

    The default (``method="wald"``) is θ̂_j ± z_{1−α/2}·se_j, se from I⁻¹/n. Other
    methods (``hetrlhf.small_sample``; better at small n or under misspecification):

    * "profile": profile-likelihood intervals {b : 2n(pL_j(b) − L_n(θ̂)) ≤ χ²₁(1−α)}
      (end points ±inf when the data cannot bound a coordinate); ``se`` is Wald's.
      With ``bartlett_draws=B`` (and ``key``) the critical value of each coordinate
      is multiplied by its parametric-bootstrap Bartlett factor (mean of the
      bootstrap LR statistics): the best-calibrated method at small n in our study.
    * "bootstrap": parametric bootstrap from the fitted model, B refits vmapped
      (``key`` required; options ``num_bootstrap=200``,
      ``interval="percentile"|"basic"|"studentized"``, fit options); ``se`` is the
      bootstrap standard deviation.
    * "sandwich": θ̂_j ± z·se_j with the robust covariance H⁻¹JH⁻¹/n (statsmodels'
      HC0), valid under a misspecified rationality.

    Args:
      params: the estimate (θ̂, γ̂), e.g. ``hr.fit(data).params``.
      data: the data it was fitted on (``Comparisons`` or ``rankings.Rankings``).
      alpha: 1 − confidence level.
      method: "wald" (default), "profile", "bootstrap" or "sandwich".
      key: PRNG key (``method="bootstrap"``, or "profile" with ``bartlett_draws``).
      kind: information used for the Wald standard errors ("observed" or "expected").
      max_condition: eager error threshold on the information's condition number;
        default ``default_max_condition(dtype)``.
      **options: options of the non-Wald methods (see ``hetrlhf.small_sample``).

    Returns:
      ``Intervals(estimate, se, lower, upper, condition_number)``; the first four are
      Params pytrees.
    """
    _check_alpha(alpha)
    if method != "wald":
        from hetrlhf import small_sample  # small_sample imports this module

        return small_sample.confidence_intervals(
            params,
            data,
            alpha,
            method=method,
            key=key,
            max_condition=max_condition,
            **options,
        )
    if key is not None or options:
        raise TypeError(
            "method='wald' takes no key or options, got "
            f"{sorted(options) + (['key'] if key is not None else [])}"
        )
    cov, cond = _covariance_and_condition(
        params, data, kind, max_condition, "confidence_intervals"
    )
    se = unravel_params(jnp.sqrt(jnp.diagonal(cov)), _dim(data))
    half = jax.tree.map(lambda s: _z(alpha) * s, se)
    lower = jax.tree.map(jnp.subtract, params, half)
    upper = jax.tree.map(jnp.add, params, half)
    return Intervals(params, se, lower, upper, cond)


def _theta_cov(params, data, cov):
    d = _dim(data)
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
    for name, est in (("est_a", est_a), ("est_b", est_b)):
        if not isinstance(est, RewardEstimate):
            raise TypeError(
                f"{name} must be a hetrlhf.RewardEstimate(mean, var), got "
                f"{type(est).__name__}"
            )
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


def sandwich_covariance(
    params: Params, data: Comparisons, cluster=None, *, num_clusters: int | None = None
) -> jax.Array:
    """Cluster-robust (sandwich) covariance H⁻¹ B H⁻¹ of (θ̂, γ̂), shape [d + k, d + k].

    H = Σ_i ∇²ℓ_i (observed information of the summed loss), B = Σ_c s_c s_cᵀ with
    s_c = Σ_{i ∈ c} ∇ℓ_i the score of cluster c (Huber 1967; White 1980; Liang &
    Zeger 1986), ℓ_i the negative log-likelihood of comparison i. Unlike I⁻¹/n it stays
    valid when the model is misspecified or when comparisons are dependent within
    clusters (e.g. several annotators labelling one item, or one prompt). No
    small-sample correction (CR0 / HC0); with ``cluster=None`` every comparison is its
    own cluster (HC0). Rows with Δφ = 0 contribute nothing (usable as padding).

    Args:
      params, data: the fit and its data (n comparisons).
      cluster: [n] int cluster ids in [0, num_clusters), or None.
      num_clusters: number of clusters (static; required with ``cluster``).

    Returns:
      [d + k, d + k] covariance, θ block first (``hetrlhf.small_sample.
      sandwich_covariance``, which also returns cond(H) and takes ``Rankings``).

    Raises (eagerly only):
      ValueError: H singular or badly conditioned.
    """
    from hetrlhf import small_sample

    cov, _ = small_sample.sandwich_covariance(
        params, data, cluster=cluster, num_clusters=num_clusters
    )
    return cov
