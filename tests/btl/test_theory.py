"""Tests of hetrlhf.btl.theory against closed forms, scipy and independent computations."""

import math
import statistics

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

import hetrlhf as hr
from hetrlhf import montecarlo
from hetrlhf.btl import theory

Z975 = scipy.stats.norm.ppf(0.975)


def _random_information(rng, p):
    a = rng.normal(size=(p, p))
    return a @ a.T + 0.5 * np.eye(p)


@pytest.mark.parametrize(("d", "k"), [(3, 2), (5, 3), (1, 1), (2, 0)])
def test_profiled_information_is_the_inverse_of_the_theta_block_of_the_inverse(d, k):
    """Ĩ (Schur complement) == ((I⁻¹)_θθ)⁻¹, computed by two numpy inversions."""
    info = _random_information(np.random.default_rng(d + 10 * k), d + k)
    expected = np.linalg.inv(np.linalg.inv(info)[:d, :d])
    got = np.asarray(theory.profiled_information(jnp.asarray(info), d))
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(got, got.T)


def test_profiled_information_jits_and_rejects_bad_input():
    info = jnp.asarray(_random_information(np.random.default_rng(1), 4))
    np.testing.assert_allclose(
        jax.jit(theory.profiled_information, static_argnums=1)(info, 2),
        theory.profiled_information(info, 2),
        rtol=1e-12,
    )
    with pytest.raises(ValueError, match="square"):
        theory.profiled_information(info[:3], 2)
    with pytest.raises(ValueError, match="d must be"):
        theory.profiled_information(info, 5)
    bad = info.at[2:, 2:].set(jnp.zeros((2, 2)))
    with pytest.raises(ValueError, match="I_γγ"):
        theory.profiled_information(bad, 2)


def _tiny_design_data(theta: float, gamma: float) -> hr.Comparisons:
    """Four equally likely comparisons: Δφ ∈ {+1, −1} × ψ ∈ {0, 1}, ψ0 = 1, d = k = 1."""
    dphi = np.array([1.0, -1.0, 1.0, -1.0])
    psi = np.array([0.0, 0.0, 1.0, 1.0])
    return hr.Comparisons(
        phi0=jnp.zeros((4, 1)),
        phi1=jnp.asarray(dphi[:, None]),
        y=jnp.zeros(4),  # the expected information does not use the labels
        psi=jnp.asarray(psi[:, None]),
        psi0=jnp.ones(4),
    )


@pytest.mark.parametrize(("theta", "gamma"), [(1.0, 0.5), (0.7, -0.4), (2.0, 1.5)])
def test_theorem6_bound_on_a_tiny_design_by_hand(theta, gamma):
    """Δφ = ±1, ψ ∈ {0, 1} equally likely, d = k = 1.

    With w(η) = s(η)(1 − s(η)), w₀ = w(θ), w₁ = w((1+γ)θ), the rows give
    I_θθ = (w₀ + w₁(1+γ)²)/2, I_θγ = w₁(1+γ)θ/2, I_γγ = w₁θ²/2, so
    Ĩ = I_θθ − I_θγ²/I_γγ = w₀/2: the ψ = 1 annotators identify only the product
    (1+γ)θ, and their information about θ is profiled away. The bound is then
    3·z_{0.975}·|v|/sqrt(n·w₀/2).
    """
    data = _tiny_design_data(theta, gamma)
    params = hr.Params(jnp.array([theta]), jnp.array([gamma]))
    info = hr.fisher_information(params, data, kind="expected")
    s = 1.0 / (1.0 + math.exp(-theta))
    w0 = s * (1 - s)
    np.testing.assert_allclose(
        theory.profiled_information(info, 1), [[w0 / 2]], rtol=1e-12
    )
    v, n = 0.8, 250
    expected = 3 * Z975 * abs(v) / math.sqrt(n * w0 / 2)
    bound = theory.theorem6_bound(info, jnp.array([v]), n, 0.05)
    assert float(bound) == pytest.approx(expected, rel=1e-12)
    # Other levels use the matching normal quantile q_{1−α/2}.
    q90 = scipy.stats.norm.ppf(0.95)
    assert float(theory.theorem6_bound(info, jnp.array([v]), n, 0.1)) == pytest.approx(
        expected * q90 / Z975, rel=1e-12
    )


def test_theorem6_bound_matches_a_matrix_square_root():
    """‖Ĩ^{−1/2} v‖₂ by scipy's sqrtm of the numpy Schur complement (d = 3, k = 2)."""
    info = _random_information(np.random.default_rng(5), 5)
    v = np.array([0.3, -1.2, 0.5])
    a, b, c = info[:3, :3], info[:3, 3:], info[3:, 3:]
    tilde = a - b @ np.linalg.solve(c, b.T)
    root = np.real(scipy.linalg.sqrtm(np.linalg.inv(tilde)))
    expected = 3 * Z975 * np.linalg.norm(root @ v) / math.sqrt(40)
    got = theory.theorem6_bound(jnp.asarray(info), jnp.asarray(v), 40)
    assert float(got) == pytest.approx(expected, rel=1e-9)


def test_theorem6_bound_rejects_bad_input():
    info = jnp.asarray(_random_information(np.random.default_rng(2), 3))
    v = jnp.ones(2)
    with pytest.raises(ValueError, match="n must be"):
        theory.theorem6_bound(info, v, 0)
    with pytest.raises(ValueError, match="alpha"):
        theory.theorem6_bound(info, v, 10, alpha=1.0)
    with pytest.raises(ValueError, match="phi_star_mean"):
        theory.theorem6_bound(info, jnp.ones((2, 2)), 10)
    singular = jnp.zeros((3, 3)).at[2, 2].set(1.0)
    with pytest.raises(ValueError, match="not positive definite"):
        theory.theorem6_bound(singular, v, 10)


def test_normal_power_closed_form_and_simulation():
    lam = np.array([0.0, 0.5, 1.0, 2.0, 3.0])
    two = np.asarray(theory.normal_power(lam, 0.05))
    ref = scipy.stats.norm.sf(Z975 - lam) + scipy.stats.norm.cdf(-Z975 - lam)
    np.testing.assert_allclose(two, ref, rtol=1e-12)
    assert two[0] == pytest.approx(0.05, rel=1e-12)  # λ = 0: the size
    z95 = scipy.stats.norm.ppf(0.95)
    np.testing.assert_allclose(
        theory.normal_power(lam, 0.05, alternative="greater"),
        scipy.stats.norm.sf(z95 - lam),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        theory.normal_power(-lam, 0.05, alternative="less"),
        scipy.stats.norm.sf(z95 - lam),
        rtol=1e-12,
    )
    # Simulation: z ~ N(λ, 1); 200 000 draws → MC error <= 0.0012, tolerance 5 MC se.
    z = lam[:, None] + np.random.default_rng(0).normal(size=(lam.size, 200_000))
    observed = (np.abs(z) > Z975).mean(1)
    assert np.all(
        np.abs(observed - two) < 5 * np.sqrt(two * (1 - two) / 200_000) + 1e-4
    )
    with pytest.raises(ValueError, match="alternative"):
        theory.normal_power(lam, alternative="both")


def test_monte_carlo_checks_are_aliases_of_montecarlo():
    """ks_normal and binomial_band moved to hetrlhf.montecarlo (tested there)."""
    assert theory.ks_normal is montecarlo.ks_normal
    assert theory.binomial_band is montecarlo.binomial_band


def test_iteration_matrix_is_the_jacobian_of_one_step():
    """iteration_matrix against the Jacobian of one step on a quadratic (exact)."""
    rng = np.random.default_rng(0)
    d, k = 3, 2
    h = _random_information(rng, d + k)
    lr_t, lr_g = 0.3, 0.2

    def step(x, order):  # one step on the quadratic ½ xᵀHx (gradient Hx)
        theta, gamma = x[:d], x[d:]
        new_theta = theta - lr_t * (h @ x)[:d]
        z = np.concatenate([new_theta, gamma]) if order == "gauss_seidel" else x
        new_gamma = gamma - lr_g * (h @ z)[d:]
        return np.concatenate([new_theta, new_gamma])

    for order in ("gauss_seidel", "jacobi"):
        # A linear map: its columns are the images of the unit vectors.
        jac = np.stack([step(e, order) for e in np.eye(d + k)], axis=1)
        np.testing.assert_allclose(
            theory.iteration_matrix(h, d, lr_t, lr_g, order), jac, atol=1e-12
        )
    m = theory.iteration_matrix(h, d, lr_t, lr_g, "jacobi")
    assert theory.spectral_radius(m) == pytest.approx(
        max(abs(np.linalg.eigvals(m))), rel=1e-12
    )
    with pytest.raises(ValueError, match="order"):
        theory.iteration_matrix(h, d, lr_t, lr_g, "random")


def test_contraction_factors_closed_form():
    """Diagonal Hessians, Jacobi order: M = I − diag(η)H, so ρ = max_i |1 − η_i h_ii|."""
    diagonals = np.array([[0.5, 2.0, 1.0], [0.1, 0.2, 3.5]])
    hessians = np.stack([np.diag(h) for h in diagonals])
    eta = np.array([0.4, 0.4, 0.3])  # d = 2 θ coordinates at η₁, one γ at η₂
    expected = np.abs(1 - eta * diagonals).max(1)
    got = theory.contraction_factors(hessians, 2, 0.4, 0.3, "jacobi")
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    # Gauss–Seidel on a block-diagonal H (B = 0) has the same factor.
    np.testing.assert_allclose(
        theory.contraction_factors(hessians, 2, 0.4, 0.3, "gauss_seidel"),
        expected,
        rtol=1e-12,
    )


def test_theorem6_comparison_against_numpy():
    """Bound from the θ block of I⁻¹ (numpy), summaries by the statistics module."""
    rng = np.random.default_rng(7)
    d, k, n, alpha = 3, 2, 250, 0.1
    info = _random_information(rng, d + k)
    phi_star = rng.normal(size=(2, d))
    subopt = np.abs(rng.normal(0.05, 0.05, size=(40, 2)))
    out = theory.theorem6_comparison(subopt, phi_star, info, n, alpha)
    theta_cov = np.linalg.inv(info)[:d, :d]
    q = scipy.stats.norm.ppf(1 - alpha / 2)
    for j, v in enumerate(phi_star):
        bound = 3 * q * math.sqrt(v @ theta_cov @ v / n)
        assert out["theorem6_bound"][j] == pytest.approx(bound, rel=1e-10)
        col = subopt[:, j]
        assert out["suboptimality"][j] == pytest.approx(statistics.fmean(col))
        assert out["suboptimality_se"][j] == pytest.approx(
            statistics.stdev(col) / math.sqrt(40)
        )
        assert out["share_above_bound"][j] == np.mean(col > bound)
        assert out["suboptimality_q95"][j] == pytest.approx(
            np.sort(col)[37] * 0.95 + np.sort(col)[38] * 0.05
        )
    assert out["n"] == n
    np.testing.assert_allclose(
        out["profiled_information"], np.linalg.inv(theta_cov), rtol=1e-10
    )
