"""Tests of hetrlhf.data.simulate against independent references (numpy, scipy, statsmodels)."""

import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import scipy.integrate
import scipy.special
import scipy.stats
import statsmodels.api as sm

from hetrlhf.btl import model
from hetrlhf.data import simulate as sim

# One jitted simulator, cached per static (design, n): keeping n = N across tests
# keeps the number of compilations (the dominant cost) small.
_SIMULATE = jax.jit(sim.simulate, static_argnums=(1, 2))
_CANDIDATES = jax.jit(sim.simulate_candidates, static_argnums=(1, 2, 3))
N = 40_000


def _draw(design, n=N, seed=0):
    return jax.tree.map(np.asarray, _SIMULATE(jax.random.key(seed), design, n))


def _numpy_probability(design, data):
    # Independent re-implementation of the generating law in numpy/scipy.
    theta = np.array(design.theta)
    gamma = np.array(design.gamma)
    sigma = data.psi0 + data.psi @ gamma + design.quadratic * data.psi[:, 0] ** 2
    eta = sigma * ((data.phi1 - data.phi0) @ theta)
    if design.link == "probit":
        return scipy.stats.norm.cdf(eta)
    return scipy.special.expit(eta)


@pytest.mark.parametrize("name", sorted(sim.PRESETS))
def test_shapes_and_dtypes_every_preset(name):
    # Shapes and dtypes by tracing the vmapped simulator (no compilation).
    design = sim.get_design(name)
    keys = jax.random.split(jax.random.key(1), 3)
    data = jax.eval_shape(jax.vmap(lambda k: sim.simulate(k, design, 7)), keys)
    assert data.phi0.shape == data.phi1.shape == (3, 7, 5)
    assert data.y.shape == data.psi0.shape == (3, 7)
    assert data.psi.shape == (3, 7, 3)
    assert data.weight is None
    assert all(leaf.dtype == jnp.float64 for leaf in jax.tree.leaves(data))
    cands = jax.eval_shape(lambda k: sim.simulate_candidates(k, design, 4, 6), keys[0])
    assert cands.shape == (4, 6, 5) and cands.dtype == jnp.float64


def test_vmapped_replicates_are_valid_and_independent():
    design = sim.get_design("binary")
    keys = jax.random.split(jax.random.key(1), 3)
    data = jax.jit(jax.vmap(lambda k: sim.simulate(k, design, 7)))(keys)
    for leaf in jax.tree.leaves(data):
        assert np.all(np.isfinite(leaf))
    assert set(np.unique(data.y)) <= {0.0, 1.0}
    assert not np.allclose(data.phi0[0], data.phi0[1])


def test_float32_and_determinism():
    design = sim.get_design("default")
    a = sim.simulate(jax.random.key(3), design, 50, dtype=jnp.float32)
    b = sim.simulate(jax.random.key(3), design, 50, dtype=jnp.float32)
    assert a.phi0.dtype == a.y.dtype == jnp.float32
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_homogeneous_design_k0():
    design = sim.get_design("default", gamma=())
    data = jax.eval_shape(lambda k: sim.simulate(k, design, 10), jax.random.key(0))
    assert data.psi.shape == (10, 0)
    data = _draw(design)
    np.testing.assert_array_equal(data.psi0, 1.0)


@pytest.mark.parametrize(
    "design",
    [
        sim.get_design("default"),
        sim.get_design("heavy"),
        sim.get_design("imbalanced"),
        sim.get_design("misspecified"),
        sim.get_design("default", link="probit", psi0_low=2.0, psi0_high=2.0),
        sim.get_design("binary"),
        sim.get_design("scaled_psi0"),
    ],
    ids=["default", "heavy", "imbalanced", "misspecified", "probit", "binary", "psi0"],
)
def test_label_frequencies_match_model_probabilities(design):
    data = _draw(design, seed=4)
    p = _numpy_probability(design, data)
    np.testing.assert_allclose(
        np.asarray(sim.label_probability(design, data)), p, rtol=1e-10, atol=1e-12
    )
    # Overall: Σy ~ Poisson-binomial with mean Σp, variance Σp(1−p).
    z = (data.y.sum() - p.sum()) / np.sqrt(np.sum(p * (1 - p)))
    assert abs(z) < 4.0, z
    # Within 10 probability bins: chi-square goodness of fit.
    edges = np.quantile(p, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
    stat = 0.0
    for b in range(10):
        m = bins == b
        stat += (data.y[m].sum() - p[m].sum()) ** 2 / np.sum(p[m] * (1 - p[m]))
    assert stat < scipy.stats.chi2.ppf(0.9999, 10), stat


def test_imbalanced_design_is_imbalanced():
    data = _draw(sim.get_design("imbalanced"))
    assert data.y.mean() > 0.85


def test_correlated_feature_covariance_matches_design():
    design = sim.get_design("correlated")  # ρ = 0.7
    n = N
    data = _draw(design, seed=5)
    idx = np.arange(5)
    target = 0.7 ** np.abs(idx[:, None] - idx[None, :])
    for phi in (data.phi0, data.phi1):
        np.testing.assert_allclose(phi.mean(0), 0.0, atol=5 / np.sqrt(n))
        cov = np.cov(phi, rowvar=False)
        # se of a sample covariance entry ≈ sqrt((1 + ρ_ij²)/n) ≤ sqrt(2/n).
        np.testing.assert_allclose(cov, target, atol=5 * np.sqrt(2 / n))
    cands = np.asarray(_CANDIDATES(jax.random.key(6), design, 400, 100)).reshape(-1, 5)
    np.testing.assert_allclose(
        np.cov(cands, rowvar=False), target, atol=5 * np.sqrt(2 / n)
    )


def test_imbalanced_feature_means():
    design = sim.get_design("imbalanced")
    n = N
    data = _draw(design, seed=7)
    theta = np.array(design.theta)
    np.testing.assert_allclose(
        data.phi1.mean(0), 2.5 * theta / np.linalg.norm(theta), atol=5 / np.sqrt(n)
    )
    np.testing.assert_allclose(data.phi0.mean(0), 0.0, atol=5 / np.sqrt(n))
    np.testing.assert_allclose(np.cov(data.phi1, rowvar=False), np.eye(5), atol=0.04)


@pytest.mark.slow  # ~4 s on the 2-core CI machine
def test_heavy_tailed_marginals_are_student_t():
    # Each coordinate of a multivariate t (ν = 3) with unit covariance is
    # sqrt((ν−2)/ν)·t_ν; compare with scipy's t distribution (KS test).
    design = sim.get_design("heavy_tailed")
    data = _draw(design, seed=8)
    scale = math.sqrt(1.0 / 3.0)
    for j in (0, 3):
        res = scipy.stats.kstest(data.phi0[:, j], scipy.stats.t(df=3, scale=scale).cdf)
        assert res.pvalue > 1e-4, res
    # Heavy tails: a Gaussian of the same covariance essentially never has ‖φ‖ > 8.
    norms = np.linalg.norm(data.phi0, axis=1)
    assert np.mean(norms > 8) > 1e-3


def test_covariate_laws():
    n = N
    default = _draw(sim.get_design("default"), seed=10)
    assert default.psi.min() >= -1 and default.psi.max() <= 1
    for j in range(3):
        res = scipy.stats.kstest(default.psi[:, j], scipy.stats.uniform(-1, 2).cdf)
        assert res.pvalue > 1e-4
    binary = _draw(sim.get_design("binary"), seed=11)
    assert set(np.unique(binary.psi)) == {0.0, 1.0}
    np.testing.assert_allclose(binary.psi.mean(0), 0.5, atol=5 * np.sqrt(0.25 / n))
    scaled = _draw(sim.get_design("scaled_psi0"), seed=12)
    assert scaled.psi0.min() >= 1.5 and scaled.psi0.max() <= 2.5
    res = scipy.stats.kstest(scaled.psi0, scipy.stats.uniform(1.5, 1.0).cdf)
    assert res.pvalue > 1e-4
    const2 = _draw(
        sim.get_design("default", link="probit", psi0_low=2.0, psi0_high=2.0)
    )
    np.testing.assert_array_equal(const2.psi0, 2.0)


def test_sigma_range_default_design():
    design = sim.get_design("default")
    data = _draw(design, seed=13)
    sigma = data.psi0 + data.psi @ np.array(design.gamma)
    # Theoretical range 1 ± (0.5 + 0.3 + 0.4) = [−0.2, 2.2].
    assert -0.2 <= sigma.min() < -0.1
    assert 2.1 < sigma.max() <= 2.2


def test_log_likelihood_is_highest_near_truth():
    design = sim.get_design("default")
    data = jax.tree.map(jnp.asarray, _draw(design, seed=14))
    truth = sim.design_truth(design)
    at_truth = model.loss(truth, data)
    rng = np.random.default_rng(0)
    for _ in range(10):
        dt, dg = rng.normal(size=5), rng.normal(size=3)
        scale = 0.15 / np.sqrt(np.sum(dt**2) + np.sum(dg**2))
        perturbed = truth._replace(
            theta=truth.theta + scale * dt, gamma=truth.gamma + scale * dg
        )
        assert model.loss(perturbed, data) > at_truth


def test_homogeneous_special_case_statsmodels_logit():
    # γ* = 0: labels follow a plain logistic regression on Δφ without intercept, so
    # statsmodels' Logit MLE must be consistent for θ* (Wald χ² test).
    design = sim.get_design("correlated", gamma=(0.0, 0.0, 0.0))
    data = _draw(design, seed=15)
    res = sm.Logit(data.y, data.phi1 - data.phi0).fit(disp=0)
    err = res.params - np.array(design.theta)
    wald = err @ np.linalg.solve(res.cov_params(), err)
    assert wald < scipy.stats.chi2.ppf(0.999, 5), (wald, res.params)
    assert np.all(np.abs(err) < 4 * res.bse)


def test_design_truth_and_config():
    truth = sim.design_truth(sim.get_design("heavy"))
    np.testing.assert_array_equal(truth.theta, [1.0, -0.5, 0.8, 0.3, -1.0])
    np.testing.assert_array_equal(truth.gamma, [1.5, -1.0, 1.2])
    cfg = ml_collections.ConfigDict(
        {"preset": "correlated", "rho": 0.3, "gamma": [0.1, 0.2], "link": None}
    )
    design = sim.design_from_config(cfg)
    assert design == sim.Design(rho=0.3, gamma=(0.1, 0.2))
    assert sim.get_design() == sim.Design() == sim.PRESETS["default"]
    assert not sim.get_design("misspecified").well_specified
    hash(design)  # static: usable as a jit static argument


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"rho": 1.0}, "rho"),
        ({"feature_df": 2.0}, "feature_df"),
        ({"psi_dist": "normal"}, "psi_dist"),
        ({"psi_p": 0.0}, "psi_p"),
        ({"psi0_low": 0.0}, "psi0_low"),
        ({"psi0_low": 2.0, "psi0_high": 1.0}, "psi0_low"),
        ({"link": "cauchit"}, "link"),
        ({"theta": (0.0, 0.0)}, "theta"),
        ({"gamma": (), "quadratic": 1.0}, "quadratic"),
        ({"gamma": (float("nan"),)}, "finite"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_designs_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sim.get_design("default", **kwargs)


def test_unknown_preset_and_wrong_type():
    with pytest.raises(ValueError, match="unknown design"):
        sim.get_design("nope")
    with pytest.raises(TypeError, match="Design"):
        sim.simulate(jax.random.key(0), {"rho": 0.0}, 5)


def test_population_information_against_quadrature():
    """d = k = 1, Δφ ~ N(0, 2), ψ ~ U(−1, 1): I = E[w(η) g gᵀ] by 2-D quadrature."""
    design = sim.get_design("default", theta=(0.8,), gamma=(0.6,))
    got = sim.population_information(jax.random.key(3), design, 400_000)

    def integrand(u, psi, i, j):
        sigma = 1.0 + 0.6 * psi
        eta = sigma * 0.8 * u
        s = 1.0 / (1.0 + np.exp(-eta))
        g = (sigma * u, 0.8 * u * psi)
        density = scipy.stats.norm.pdf(u, scale=np.sqrt(2.0)) * 0.5
        return s * (1 - s) * g[i] * g[j] * density

    ref = np.zeros((2, 2))
    for i, j in ((0, 0), (0, 1), (1, 1)):
        ref[i, j] = ref[j, i] = scipy.integrate.dblquad(
            integrand, -1.0, 1.0, -12.0, 12.0, args=(i, j), epsabs=1e-10
        )[0]
    # Monte Carlo with 400 000 comparisons: errors of ~0.2% of sqrt(I_ii·I_jj) over
    # seeds 0–2 (the off-diagonal entry is small, so its relative error is larger);
    # tolerance 1% of that scale.
    scale = np.sqrt(np.outer(np.diag(ref), np.diag(ref)))
    assert np.all(np.abs(got - ref) <= 0.01 * scale), (got, ref)


def test_reward_gap_pairs_have_the_exact_gap_and_keep_the_rest():
    design = sim.get_design("correlated")
    gaps = jnp.array([0.0, 0.5, -1.0, 2.0])
    key = jax.random.key(7)
    phi_a, phi_b = sim.reward_gap_pairs(key, design, gaps)
    theta = np.asarray(design.theta)
    np.testing.assert_allclose(
        (np.asarray(phi_a) - np.asarray(phi_b)) @ theta, gaps, atol=1e-12
    )
    # φ_b and the part of Δ orthogonal to θ* are the design's own candidates.
    cand = np.asarray(sim.simulate_candidates(key, design, 4, 2))
    np.testing.assert_array_equal(np.asarray(phi_b), cand[:, 1])
    proj = np.eye(5) - np.outer(theta, theta) / (theta @ theta)
    np.testing.assert_allclose(
        (np.asarray(phi_a) - np.asarray(phi_b)) @ proj,
        (cand[:, 0] - cand[:, 1]) @ proj,
        atol=1e-12,
    )
    with pytest.raises(ValueError, match="gaps"):
        sim.reward_gap_pairs(key, design, jnp.zeros((2, 2)))


def test_nonlinear_reward_closed_form():
    phi = jnp.asarray([[1.0, 2.0, 3.0, 0.0], [0.5, -1.0, 0.0, 2.0]])
    theta = jnp.asarray([1.0, 0.0, -1.0, 0.5])
    np.testing.assert_allclose(
        sim.nonlinear_reward(phi, theta, 2.0),
        [1.0 - 3.0 + 2.0 * (2.0 + 4.5), 0.5 + 1.0 + 2.0 * (-0.5)],
    )
    np.testing.assert_allclose(sim.nonlinear_reward(phi, theta, 0.0), phi @ theta)


def test_simulate_nonlinear_labels_follow_the_nonlinear_law():
    """Label frequencies by decile of P(y = 1), recomputed in numpy, match it."""
    design = sim.get_design("default")
    kappa = 0.7
    data = jax.tree.map(
        np.asarray,
        jax.jit(sim.simulate_nonlinear, static_argnums=(1, 2))(
            jax.random.key(3), design, N, kappa
        ),
    )
    theta, gamma = np.array(design.theta), np.array(design.gamma)

    def reward(phi):  # numpy re-implementation of r*
        return phi @ theta + kappa * (phi[:, 0] * phi[:, 1] + 0.5 * phi[:, 2] ** 2)

    sigma = data.psi0 + data.psi @ gamma
    p = scipy.special.expit(sigma * (reward(data.phi1) - reward(data.phi0)))
    edges = np.quantile(p, np.linspace(0, 1, 11))
    bins = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, 9)
    for b in range(10):
        m = bins == b
        expected, var = p[m].mean(), (p[m] * (1 - p[m])).sum() / m.sum() ** 2
        assert abs(data.y[m].mean() - expected) < 4.5 * math.sqrt(var), b
    # The features are those of the linear simulator with the same key half.
    linear = _SIMULATE(jax.random.split(jax.random.key(3))[0], design, N)
    np.testing.assert_array_equal(data.phi1, np.asarray(linear.phi1))
