"""Simulated comparison data with known truth (our designs, DESIGN.md §6).

The seed texts do not give the paper's simulation constants, so every design here is
*ours*. The default design (preset "default"):

    d = 5, k = 3
    φ(s, a¹), φ(s, a⁰) iid N(0, I_d)          (so Δφ ~ N(0, 2 I_d))
    ψ(x) iid Uniform(−1, 1)^k,  ψ0 ≡ 1
    θ* = (1.0, −0.5, 0.8, 0.3, −1.0),  γ* = (0.5, −0.3, 0.4)
    y ~ Bernoulli(sigmoid(σ_γ*(x) · θ*ᵀΔφ)),  σ_γ(x) = ψ0(x) + γᵀψ(x) ∈ [−0.2, 2.2]

Options of ``Design`` (named presets in ``PRESETS``) change one aspect at a time:
heavier heterogeneity, AR(1)-correlated features, class imbalance, a misspecified
rationality or link, binary covariates, ψ0 ≠ 1, heavy-tailed (Student-t) features.
``simulate_nonlinear`` keeps a design's φ, ψ, ψ0 and rationality but draws the labels
from a nonlinear reward r*(φ) = θ*ᵀφ + κ·(φ₁φ₂ + ½φ₃²) (``nonlinear_reward``; ours).

A ``Design`` is a NamedTuple of Python scalars and tuples: it is hashable and static
(pass it closed over or as a static argument), so ``simulate`` traces cleanly under
``jax.jit``/``jax.vmap`` with only the PRNG key traced:

>>> design = get_design("default")
>>> keys = jax.random.split(jax.random.key(0), 100)
>>> data = jax.vmap(lambda k: simulate(k, design, 400))(keys)   # leaves [100, 400, ...]
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from hetrlhf.btl.model import derivatives
from hetrlhf.types import Comparisons, Params, ravel_params
from hetrlhf.validation import default_float_dtype

__all__ = [
    "PRESETS",
    "Design",
    "design_from_config",
    "design_truth",
    "feature_covariance",
    "get_design",
    "label_probability",
    "nonlinear_reward",
    "population_information",
    "reward_gap_pairs",
    "simulate",
    "simulate_candidates",
    "simulate_nonlinear",
    "true_rationality",
    "validate_design",
]


class Design(NamedTuple):
    """A simulation design (static and hashable). Defaults are our design of §6.

    Attributes:
      theta: θ*, the reward coefficients (length d).
      gamma: γ*, the rationality coefficients (length k; k = 0 is homogeneous BTL).
      rho: AR(1) feature correlation: Cov(φ)_ij = ρ^|i−j| (0 gives I_d).
      phi1_shift: class imbalance. φ(s, a¹) has mean phi1_shift · θ*/‖θ*‖ and φ(s, a⁰)
        mean 0, so θ*ᵀΔφ has mean phi1_shift·‖θ*‖ and P(y = 1) moves away from 1/2.
      feature_df: degrees of freedom ν of multivariate Student-t features
        φ = μ + sqrt((ν−2)/W)·L z, W ~ χ²_ν, z ~ N(0, I) (covariance LLᵀ as for
        the Gaussian; heavy-tailed norms). ``math.inf`` gives Gaussian features.
      psi_dist: "uniform" (ψ iid Uniform(−1, 1)^k) or "binary" (ψ iid
        Bernoulli(psi_p)^k, values in {0, 1}).
      psi_p: success probability of binary covariates.
      psi0_low, psi0_high: ψ0(x) ~ Uniform(psi0_low, psi0_high), known to the
        estimator (equal end points give a constant ψ0; the default is ψ0 ≡ 1).
      quadratic: misspecified rationality. Labels are generated with
        σ(x) = ψ0 + γ*ᵀψ + quadratic·ψ₁², which the fitted model (linear in ψ) cannot
        represent when quadratic ≠ 0.
      link: "logistic" (the model) or "probit" (misspecified link: P(y = 1) = Φ(η)).
    """

    theta: tuple[float, ...] = (1.0, -0.5, 0.8, 0.3, -1.0)
    gamma: tuple[float, ...] = (0.5, -0.3, 0.4)
    rho: float = 0.0
    phi1_shift: float = 0.0
    feature_df: float = math.inf
    psi_dist: str = "uniform"
    psi_p: float = 0.5
    psi0_low: float = 1.0
    psi0_high: float = 1.0
    quadratic: float = 0.0
    link: str = "logistic"

    @property
    def d(self) -> int:
        """Number of reward features."""
        return len(self.theta)

    @property
    def k(self) -> int:
        """Number of rationality covariates."""
        return len(self.gamma)

    @property
    def well_specified(self) -> bool:
        """True when the data follow the fitted model exactly (θ*, γ* are the truth)."""
        return self.quadratic == 0.0 and self.link == "logistic"


PRESETS: dict[str, Design] = {
    # Our default design (DESIGN.md §6); σ ∈ [−0.2, 2.2].
    "default": Design(),
    # Heavy heterogeneity: σ ∈ [−2.7, 4.7], about a fifth of annotators adversarial.
    "heavy": Design(gamma=(1.5, -1.0, 1.2)),
    # AR(1)-correlated features, ρ = 0.7.
    "correlated": Design(rho=0.7),
    # Class imbalance: E[θ*ᵀΔφ] = 2.5‖θ*‖, P(y = 1) ≈ 0.90.
    "imbalanced": Design(phi1_shift=2.5),
    # Misspecified rationality: σ = 1 + γ*ᵀψ + ψ₁² (the fit is linear in ψ).
    "misspecified": Design(quadratic=1.0),
    # Binary annotator covariates ψ ∈ {0, 1}^3.
    "binary": Design(psi_dist="binary"),
    # Known, varying scale ψ0 ~ Uniform(1.5, 2.5) (mean 2).
    "scaled_psi0": Design(psi0_low=1.5, psi0_high=2.5),
    # Heavy-tailed features: multivariate Student-t with ν = 3 (unit covariance).
    "heavy_tailed": Design(feature_df=3.0),
}


def validate_design(design: Design) -> Design:
    """Checks a design's static fields; returns it unchanged.

    Raises:
      TypeError: ``design`` is not a ``Design``.
      ValueError: a field out of range, naming the field.
    """
    if not isinstance(design, Design):
        raise TypeError(
            f"design must be a hetrlhf.data.simulate.Design, got {type(design)}"
        )
    if design.d < 1:
        raise ValueError("design.theta must have at least one entry (d >= 1)")
    values = (*design.theta, *design.gamma)
    if not all(math.isfinite(v) for v in values):
        raise ValueError("design.theta and design.gamma must be finite")
    if all(v == 0 for v in design.theta):
        raise ValueError("design.theta is identically 0: the information is singular")
    if not -1.0 < design.rho < 1.0:
        raise ValueError(f"design.rho must lie in (-1, 1), got {design.rho}")
    if not math.isfinite(design.phi1_shift):
        raise ValueError(f"design.phi1_shift must be finite, got {design.phi1_shift}")
    if not design.feature_df > 2.0:
        raise ValueError(
            f"design.feature_df must be > 2 (finite covariance), got {design.feature_df}"
        )
    if design.psi_dist not in ("uniform", "binary"):
        raise ValueError(
            f"design.psi_dist must be 'uniform' or 'binary', got {design.psi_dist!r}"
        )
    if not 0.0 < design.psi_p < 1.0:
        raise ValueError(f"design.psi_p must lie in (0, 1), got {design.psi_p}")
    if not 0.0 < design.psi0_low <= design.psi0_high < math.inf:
        raise ValueError(
            "design.psi0_low, psi0_high must satisfy 0 < low <= high < inf, got "
            f"({design.psi0_low}, {design.psi0_high})"
        )
    if not math.isfinite(design.quadratic):
        raise ValueError(f"design.quadratic must be finite, got {design.quadratic}")
    if design.quadratic != 0.0 and design.k < 1:
        raise ValueError("design.quadratic != 0 needs at least one covariate (k >= 1)")
    if design.link not in ("logistic", "probit"):
        raise ValueError(
            f"design.link must be 'logistic' or 'probit', got {design.link!r}"
        )
    return design


def get_design(name: str = "default", **overrides) -> Design:
    """A named preset (see ``PRESETS``) with optional field overrides, validated.

    >>> get_design("heavy_tailed", feature_df=5.0).feature_df
    5.0
    """
    if name not in PRESETS:
        raise ValueError(f"unknown design {name!r}; choose one of {sorted(PRESETS)}")
    unknown = set(overrides) - set(Design._fields)
    if unknown:
        raise ValueError(
            f"unknown Design field(s) {sorted(unknown)}; see Design._fields"
        )
    fields = {
        k: tuple(float(x) for x in v) if k in ("theta", "gamma") else v
        for k, v in overrides.items()
    }
    return validate_design(PRESETS[name]._replace(**fields))


def design_from_config(config: ml_collections.ConfigDict | dict) -> Design:
    """A design from a (config) mapping: {"preset": name, <Design field>: value, ...}.

    Lists become tuples and ``None`` values are ignored, so a study config can hold
    ``config.design = ConfigDict({"preset": "default", "rho": 0.0, ...})``.
    """
    mapping = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    name = mapping.pop("preset", "default")
    return get_design(name, **{k: v for k, v in mapping.items() if v is not None})


def design_truth(design: Design, dtype=None) -> Params:
    """The generating parameters (θ*, γ*) as a ``Params`` of arrays.

    Under a misspecified design (``not design.well_specified``) these generate the
    data but are not the limit of the fitted model's estimator (that is the KL
    projection of the true law onto the model), so coverage of them is not expected.
    """
    dtype = default_float_dtype() if dtype is None else dtype
    return Params(
        theta=jnp.asarray(design.theta, dtype).reshape(design.d),
        gamma=jnp.asarray(design.gamma, dtype).reshape(design.k),
    )


def feature_covariance(design: Design) -> np.ndarray:
    """[d, d] covariance of φ(s, a) (either response): Toeplitz ρ^|i−j|."""
    idx = np.arange(design.d)
    return design.rho ** np.abs(idx[:, None] - idx[None, :]).astype(np.float64)


def _phi1_mean(design: Design) -> np.ndarray:
    theta = np.asarray(design.theta, np.float64)
    return design.phi1_shift * theta / np.linalg.norm(theta)


def _normal(key: jax.Array, shape: tuple[int, ...], dtype) -> jax.Array:
    """Standard normals drawn at float32 resolution, returned in ``dtype``.

    A float64 normal costs a 64-bit draw and a float64 inverse error function — about
    3× the CPU time of a float32 one, and the dominant cost of a vmapped Monte Carlo
    replicate. Features at float32 resolution (about 7 significant digits) are an
    equally valid design; everything downstream (labels, fits, intervals) is computed
    in ``dtype`` on the values drawn.
    """
    return _flat(jax.random.normal, key, shape).astype(dtype)


def _uniform(key: jax.Array, shape: tuple[int, ...], dtype, low=0.0, high=1.0):
    """Uniform(low, high) drawn at float32 resolution (see ``_normal``), in ``dtype``."""
    u = _flat(jax.random.uniform, key, shape).astype(dtype)
    return low + (high - low) * u


def _flat(sampler, key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """``sampler(key, shape, float32)`` drawn as one flat vector and reshaped.

    With JAX's (default) partitionable threefry the i-th number of a draw depends on
    its flat index only, so this is the same array bit for bit; but XLA:CPU
    vectorises the hash along the minor axis, and a minor axis of length d = 5 (or
    k = 3) wastes most of each vector: the flat draw takes about half the CPU time.
    """
    return sampler(key, (math.prod(shape),), jnp.float32).reshape(shape)


def _features(
    key: jax.Array, design: Design, shape: tuple[int, ...], dtype
) -> jax.Array:
    """Draws [*shape, d] features with mean 0 and covariance ``feature_covariance``."""
    key_z, key_w = jax.random.split(key)
    z = _normal(key_z, (*shape, design.d), dtype)
    if design.rho != 0.0:
        chol = jnp.asarray(np.linalg.cholesky(feature_covariance(design)), dtype)
        z = z @ chol.T
    if math.isinf(design.feature_df):
        return z
    # Multivariate t: one χ² mixing variable per feature vector (elliptical, so the
    # norms are heavy-tailed); the factor (ν−2) makes the covariance exactly LLᵀ.
    w = jax.random.chisquare(key_w, design.feature_df, shape, dtype)
    return z * jnp.sqrt((design.feature_df - 2.0) / w)[..., None]


def true_rationality(design: Design, psi: jax.Array, psi0: jax.Array) -> jax.Array:
    """Generating rationality ψ0 + γ*ᵀψ + quadratic·ψ₁², shape [...] (psi [..., k])."""
    gamma = jnp.asarray(design.gamma, psi.dtype).reshape(design.k)
    sigma = psi0 + psi @ gamma
    if design.quadratic != 0.0:
        sigma = sigma + design.quadratic * psi[..., 0] ** 2
    return sigma


def label_probability(design: Design, data: Comparisons) -> jax.Array:
    """True P(y_i = 1) under the design's generating law, shape [n].

    Args:
      design: the design the data were simulated from.
      data: one dataset (phi0, phi1 [n, d]; psi [n, k]; psi0 [n]).
    """
    theta = jnp.asarray(design.theta, data.phi0.dtype)
    eta = true_rationality(design, data.psi, data.psi0) * (data.dphi @ theta)
    if design.link == "probit":
        return jax.scipy.stats.norm.cdf(eta)
    return jax.nn.sigmoid(eta)


def simulate(key: jax.Array, design: Design, n: int, *, dtype=None) -> Comparisons:
    """Simulates n comparisons from ``design`` (pure, jit/vmap-compatible).

    ``design`` and ``n`` are static; only ``key`` is traced. No value checks are made
    on the arrays (they run under ``jit``); the design's static fields are checked.

    Args:
      key: PRNG key.
      design: the simulation design (e.g. ``get_design("default")``).
      n: number of comparisons (Python int).
      dtype: float dtype (default: JAX's default float, float64 under x64).

    Returns:
      ``Comparisons`` with phi0, phi1 [n, d], y [n] in {0., 1.}, psi [n, k], psi0 [n].
    """
    validate_design(design)
    dtype = default_float_dtype() if dtype is None else dtype
    k_phi0, k_phi1, k_psi, k_psi0, k_y = jax.random.split(key, 5)
    phi0 = _features(k_phi0, design, (n,), dtype)
    phi1 = _features(k_phi1, design, (n,), dtype) + jnp.asarray(
        _phi1_mean(design), dtype
    )
    if design.psi_dist == "binary":
        psi = jax.random.bernoulli(k_psi, design.psi_p, (n, design.k)).astype(dtype)
    else:
        psi = _uniform(k_psi, (n, design.k), dtype, -1.0, 1.0)
    if design.psi0_low == design.psi0_high:
        psi0 = jnp.full((n,), design.psi0_low, dtype)
    else:
        psi0 = _uniform(k_psi0, (n,), dtype, design.psi0_low, design.psi0_high)
    data = Comparisons(
        phi0=phi0, phi1=phi1, y=jnp.zeros((n,), dtype), psi=psi, psi0=psi0
    )
    p = label_probability(design, data)
    y = (_uniform(k_y, (n,), dtype) < p).astype(dtype)
    return data._replace(y=y)


def nonlinear_reward(phi: jax.Array, theta: jax.Array, kappa) -> jax.Array:
    """r*(φ) = θ*ᵀφ + κ·(φ₁φ₂ + ½φ₃²) (our nonlinear truth), shape [...].

    Args:
      phi: [..., d] features, d >= 3.
      theta: [d] linear part θ*.
      kappa: [] strength of the nonlinear part (0: the linear model is exact).
    """
    quad = phi[..., 0] * phi[..., 1] + 0.5 * phi[..., 2] ** 2
    return phi @ theta + kappa * quad


def simulate_nonlinear(key: jax.Array, design: Design, n: int, kappa) -> Comparisons:
    """n comparisons with the design's φ, ψ, ψ0 and rationality, labels from r*.

    y_i ~ Bernoulli(sigmoid(σ*(x_i)·(r*(φ_i¹) − r*(φ_i⁰)))), r* = ``nonlinear_reward``
    with the design's θ*, σ* the design's true rationality (``true_rationality``).
    Pure (``kappa`` may be traced); the features are those of ``simulate(k, design,
    n)`` with the first half of ``jax.random.split(key)``.
    """
    k_x, k_y = jax.random.split(key)
    data = simulate(k_x, design, n)
    theta = design_truth(design, data.phi0.dtype).theta
    sigma = true_rationality(design, data.psi, data.psi0)
    eta = sigma * (
        nonlinear_reward(data.phi1, theta, kappa)
        - nonlinear_reward(data.phi0, theta, kappa)
    )
    y = (jax.random.uniform(k_y, (n,), data.phi0.dtype) < jax.nn.sigmoid(eta)).astype(
        data.phi0.dtype
    )
    return data._replace(y=y)


def population_information(key: jax.Array, design: Design, size: int) -> np.ndarray:
    """Population Fisher information I(θ*, γ*) of a design, by Monte Carlo.

    I = E[p(1−p) g gᵀ], g = [σ·Δφ ; (θ*ᵀΔφ)·ψ], p = sigmoid(σ·θ*ᵀΔφ), at the truth,
    estimated by the average over one simulated sample of ``size`` comparisons (the
    expected-information form of ``estimate.derivatives``: it does not use the
    labels). Its Monte Carlo error is O(size^{−1/2}).

    Args:
      key: PRNG key.
      design: the simulation design (well specified: θ*, γ* are the model's truth).
      size: comparisons in the sample (Python int).

    Returns:
      [d + k, d + k] numpy matrix (θ block first), in JAX's default float.
    """
    truth = ravel_params(design_truth(design))
    data = jax.jit(lambda k: simulate(k, design, size))(key)
    return np.asarray(jax.jit(lambda x, dt: derivatives(x, dt)[3])(truth, data))


def reward_gap_pairs(
    key: jax.Array, design: Design, gaps: jax.Array, *, dtype=None
) -> tuple[jax.Array, jax.Array]:
    """Response pairs with a given true reward gap, for size and power studies.

    For each gap δ_e: φ_a, φ_b are drawn as two candidates of the design
    (``simulate_candidates``); the component of Δ = φ_a − φ_b along θ* is replaced so
    that θ*ᵀ(φ_a′ − φ_b) = δ_e exactly: φ_a′ = φ_b + Δ − (θ*ᵀΔ − δ_e)·θ*/‖θ*‖². δ = 0
    gives pairs under H0: r(s, a) = r(s, a′); the directions orthogonal to θ* keep the
    design's random spread, so the test's standard error varies across pairs as it
    would on real candidates.

    Args:
      key: PRNG key.
      design: the simulation design (θ* is the gold reward).
      gaps: [E] true reward differences δ_e = r*(a) − r*(b).
      dtype: float dtype (default: JAX's default float).

    Returns:
      (phi_a [E, d], phi_b [E, d]).
    """
    dtype = default_float_dtype() if dtype is None else dtype
    gaps = jnp.asarray(gaps, dtype)
    if gaps.ndim != 1:
        raise ValueError(f"gaps must have shape [E], got {gaps.shape}")
    cand = simulate_candidates(key, design, gaps.shape[0], 2, dtype=dtype)  # [E, 2, d]
    theta = jnp.asarray(design.theta, dtype)
    diff = cand[:, 0] - cand[:, 1]
    diff = diff - ((diff @ theta - gaps) / (theta @ theta))[:, None] * theta
    return cand[:, 1] + diff, cand[:, 1]


def simulate_candidates(
    key: jax.Array, design: Design, num_prompts: int, num_candidates: int, *, dtype=None
) -> jax.Array:
    """Candidate-response features for best-of-N studies, shape [P, N, d].

    Each candidate's φ(s, a_j) is drawn from the design's feature law for a response
    (the law of φ(s, a⁰): mean 0, covariance ``feature_covariance``, Student-t when
    ``feature_df`` is finite); the gold reward of candidate j is θ*ᵀφ(s, a_j).

    Args:
      key: PRNG key.
      design: the simulation design.
      num_prompts: P (Python int).
      num_candidates: N (Python int).
      dtype: float dtype (default: JAX's default float).
    """
    validate_design(design)
    dtype = default_float_dtype() if dtype is None else dtype
    return _features(key, design, (num_prompts, num_candidates), dtype)
