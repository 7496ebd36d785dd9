"""Tests of hetrlhf.btl.confidence (small-sample intervals) against independent references.

* profile intervals vs a brute-force profile (scipy.optimize inner fits + brentq) on
  an independent numpy likelihood;
* the sandwich covariance vs statsmodels' Logit(cov_type="HC0") (homogeneous model),
  vs a numpy closed form (heterogeneous model), and vs the Wald covariance in a large
  correctly specified sample;
* bootstrap Bartlett factors of the profile LR vs statsmodels' full and restricted
  (offset) Logit fits on the same bootstrap labels;
* the parametric bootstrap: smoke, agreement of the bootstrap sd with the Wald se, and
  (slow) Monte Carlo coverage with known truth.
"""

import jax
import numpy as np
import pytest
import scipy.optimize
import scipy.stats
import statsmodels.api as sm

import hetrlhf as hr
from hetrlhf.btl import confidence, model
from hetrlhf.data import simulate as sim
from hetrlhf.types import ravel_params

SMALL = sim.get_design("default", theta=(1.0, -0.7), gamma=(0.6,))


def _numpy_loss_grad(x, dphi, psi, psi0, y):
    d = dphi.shape[1]
    theta, gamma = x[:d], x[d:]
    r = dphi @ theta
    sigma = psi0 + psi @ gamma
    eta = sigma * r
    n = len(y)
    value = np.mean(np.logaddexp(0.0, eta) - y * eta)
    resid = (scipy.special.expit(eta) - y) / n
    grad = np.concatenate([dphi.T @ (resid * sigma), psi.T @ (resid * r)])
    return value, grad


def _brute_force_profile(data, alpha):
    """Profile interval end points by scipy: BFGS inner fits and brentq on the LR."""
    dphi, psi, psi0, y = (
        np.asarray(a) for a in (data.dphi, data.psi, data.psi0, data.y)
    )
    n, p = len(y), dphi.shape[1] + psi.shape[1]
    args = (dphi, psi, psi0, y)
    full = scipy.optimize.minimize(
        _numpy_loss_grad,
        np.r_[np.ones(dphi.shape[1]) * 0.1, np.zeros(psi.shape[1])],
        args=args,
        jac=True,
        method="BFGS",
        options={"gtol": 1e-12},
    )
    crit = scipy.stats.chi2.ppf(1 - alpha, 1)
    lower, upper = np.empty(p), np.empty(p)
    for j in range(p):
        others = np.arange(p) != j
        warm = [full.x[others]]

        def lr(b, j=j, others=others, warm=warm):
            def f(v):
                x = np.empty(p)
                x[others], x[j] = v, b
                value, grad = _numpy_loss_grad(x, *args)
                return value, grad[others]

            res = scipy.optimize.minimize(
                f, warm[0], jac=True, method="BFGS", options={"gtol": 1e-12}
            )
            return 2 * n * (res.fun - full.fun) - crit

        se = 1.0
        lower[j] = scipy.optimize.brentq(lr, full.x[j] - 20 * se, full.x[j], xtol=1e-12)
        upper[j] = scipy.optimize.brentq(lr, full.x[j], full.x[j] + 20 * se, xtol=1e-12)
    return full.x, lower, upper


@pytest.mark.slow  # ~9 s on the 2-core CI machine
def test_profile_matches_brute_force_scipy_profile():
    data = sim.simulate(jax.random.key(3), SMALL, 150)
    res = hr.fit(data)
    assert bool(res.converged)
    x_ref, lower_ref, upper_ref = _brute_force_profile(data, 0.05)
    np.testing.assert_allclose(ravel_params(res.params), x_ref, atol=1e-6)
    ci = hr.confidence_intervals(res.params, data, 0.05, method="profile")
    np.testing.assert_allclose(ravel_params(ci.lower), lower_ref, atol=2e-6)
    np.testing.assert_allclose(ravel_params(ci.upper), upper_ref, atol=2e-6)
    # The profile interval is not symmetric about the estimate, unlike Wald's.
    wald = hr.confidence_intervals(res.params, data, 0.05)
    assert not np.allclose(ravel_params(ci.lower), ravel_params(wald.lower), atol=1e-3)
    bounds = confidence.profile_bounds(res.params, data, 0.05)
    assert np.all(np.asarray(bounds.status) == confidence.FOUND)


@pytest.mark.slow  # ~6 s on the 2-core CI machine
def test_profile_homogeneous_matches_statsmodels_likelihood_ratio():
    """Homogeneous model: the profile end point's LR equals χ²₁(0.9) by statsmodels' fits."""
    data = sim.simulate(jax.random.key(4), sim.get_design("default", gamma=()), 120)
    res = hr.fit(data)
    ci = hr.confidence_intervals(res.params, data, 0.1, method="profile")
    dphi, y = np.asarray(data.dphi), np.asarray(data.y)
    llf = sm.Logit(y, dphi).fit(disp=0).llf
    for j in range(dphi.shape[1]):
        for b in (float(ci.lower.theta[j]), float(ci.upper.theta[j])):
            others = np.delete(dphi, j, axis=1)
            constrained = sm.Logit(y, others, offset=b * dphi[:, j]).fit(disp=0).llf
            np.testing.assert_allclose(
                2 * (llf - constrained), scipy.stats.chi2.ppf(0.9, 1), atol=1e-6
            )


@pytest.mark.slow  # ~10 s on the 2-core CI machine
def test_profile_traces_under_jit_and_vmap():
    keys = jax.random.split(jax.random.key(5), 3)
    data = jax.vmap(lambda k: sim.simulate(k, SMALL, 150))(keys)

    def one(d):
        fit = hr.fit(d)
        return hr.confidence_intervals(fit.params, d, method="profile")

    out = jax.jit(jax.vmap(one))(data)
    assert out.lower.theta.shape == (3, 2)
    assert np.all(np.asarray(out.lower.theta) < np.asarray(out.estimate.theta))
    assert np.all(np.asarray(out.upper.gamma) > np.asarray(out.estimate.gamma))
    single = jax.tree.map(lambda a: a[1], data)
    eager = confidence.profile_bounds(
        jax.tree.map(lambda a: a[1], out.estimate), single
    )
    np.testing.assert_allclose(out.upper.theta[1], eager.upper[:2], rtol=1e-8)


@pytest.mark.slow  # ~6 s on the 2-core CI machine
def test_bartlett_statistics_match_statsmodels_restricted_logit():
    """Bootstrap LR*_bj vs statsmodels on the same bootstrap labels (homogeneous model).

    With no rationality covariates the model is a logistic regression without
    intercept on ψ0·Δφ, so LR*_bj = 2(llf(full Logit) − llf(Logit with coordinate j
    held at its bootstrap-world truth x̂_j through an offset)), by statsmodels.
    """
    rng = np.random.default_rng(11)
    n, d = 150, 3
    phi0, phi1 = rng.normal(size=(2, n, d))
    psi0 = rng.uniform(0.5, 2.0, size=n)
    eta = psi0 * ((phi1 - phi0) @ np.array([0.8, -0.5, 0.3]))
    y = rng.binomial(1, scipy.special.expit(eta))
    data = hr.comparisons(phi0, phi1, y, psi0=psi0)
    params = hr.fit(data).params
    key, num = jax.random.key(5), 12
    out = confidence.bartlett_factors(key, params, data, num_bootstrap=num)
    assert out.statistics.shape == (num, d)
    np.testing.assert_array_equal(np.asarray(out.num_used), num)
    x_hat = np.asarray(params.theta)
    exog = psi0[:, None] * (phi1 - phi0)
    expected = np.empty((num, d))
    for b, k in enumerate(jax.random.split(key, num)):
        y_b = np.asarray(model.family(data).resample(k, params, data).y)
        full = sm.Logit(y_b, exog).fit(disp=0, method="newton", tol=1e-12)
        for j in range(d):
            others = np.arange(d) != j
            restricted = sm.Logit(
                y_b, exog[:, others], offset=x_hat[j] * exog[:, j]
            ).fit(disp=0, method="newton", tol=1e-12)
            expected[b, j] = 2.0 * (full.llf - restricted.llf)
    np.testing.assert_allclose(out.statistics, expected, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(out.factors, expected.mean(0), rtol=1e-6, atol=1e-8)


@pytest.mark.slow  # ~11 s on the 2-core CI machine
def test_profile_scale_equals_a_changed_chi2_level():
    """Critical value c·χ²₁(1−α) is the χ²₁ profile at level α' = 1 − F(c·χ²₁(1−α))."""
    data = sim.simulate(jax.random.key(4), SMALL, 300)
    params = hr.fit(data).params
    c, alpha = 1.3, 0.05
    alpha2 = 1.0 - scipy.stats.chi2.cdf(c * scipy.stats.chi2.ppf(1 - alpha, 1), 1)
    scaled = confidence.profile_bounds(params, data, alpha, scale=np.full(3, c))
    plain = confidence.profile_bounds(params, data, alpha2)
    np.testing.assert_allclose(scaled.lower, plain.lower, rtol=1e-7)
    np.testing.assert_allclose(scaled.upper, plain.upper, rtol=1e-7)
    unscaled = confidence.profile_bounds(params, data, alpha)
    assert np.all(np.asarray(scaled.lower) < np.asarray(unscaled.lower))
    assert np.all(np.asarray(scaled.upper) > np.asarray(unscaled.upper))


@pytest.mark.slow  # ~10 s on the 2-core CI machine
def test_bartlett_profile_through_confidence_intervals():
    data = sim.simulate(jax.random.key(8), SMALL, 200)
    params = hr.fit(data).params
    key = jax.random.key(2)
    ci = hr.confidence_intervals(
        params, data, method="profile", key=key, bartlett_draws=50
    )
    factors = confidence.bartlett_factors(key, params, data, num_bootstrap=50)
    direct = confidence.profile_bounds(params, data, 0.05, scale=factors.factors)
    np.testing.assert_allclose(ravel_params(ci.lower), direct.lower, rtol=1e-10)
    np.testing.assert_allclose(ravel_params(ci.upper), direct.upper, rtol=1e-10)
    with pytest.raises(ValueError, match="needs a PRNG key"):
        hr.confidence_intervals(params, data, method="profile", bartlett_draws=50)
    with pytest.raises(ValueError, match="bartlett_draws must be an int >= 2"):
        hr.confidence_intervals(
            params, data, method="profile", key=key, bartlett_draws=1
        )


@pytest.mark.slow  # ~4 s on the 2-core CI machine
def test_sandwich_matches_statsmodels_hc0_homogeneous_logit():
    design = sim.get_design("correlated", gamma=())
    data = sim.simulate(jax.random.key(6), design, 300)
    res = hr.fit(data)
    ref = sm.Logit(np.asarray(data.y), np.asarray(data.dphi)).fit(
        disp=0, cov_type="HC0"
    )
    cov = confidence.sandwich_covariance(res.params, data)
    np.testing.assert_allclose(cov, ref.cov_params(), rtol=1e-7)
    ci = hr.confidence_intervals(res.params, data, 0.05, method="sandwich")
    np.testing.assert_allclose(ci.lower.theta, ref.conf_int(0.05)[:, 0], rtol=1e-7)
    np.testing.assert_allclose(ci.upper.theta, ref.conf_int(0.05)[:, 1], rtol=1e-7)


@pytest.mark.slow  # ~5 s on the 2-core CI machine
def test_sandwich_heterogeneous_matches_numpy_closed_form():
    data = sim.simulate(jax.random.key(7), sim.get_design("binary"), 250)
    res = hr.fit(data)
    x = np.asarray(ravel_params(res.params))
    dphi, psi, psi0, y = (
        np.asarray(a) for a in (data.dphi, data.psi, data.psi0, data.y)
    )
    n, d = dphi.shape
    r, sigma = dphi @ x[:d], psi0 + psi @ x[d:]
    p = scipy.special.expit(sigma * r)
    g = np.hstack([sigma[:, None] * dphi, r[:, None] * psi])
    scores = (y - p)[:, None] * g
    # Hessian by central differences of the independent numpy gradient.
    h = 1e-6
    hess = np.stack(
        [
            (
                _numpy_loss_grad(x + h * e, dphi, psi, psi0, y)[1]
                - _numpy_loss_grad(x - h * e, dphi, psi, psi0, y)[1]
            )
            / (2 * h)
            for e in np.eye(len(x))
        ]
    )
    bread = np.linalg.inv(hess)
    ref = bread @ (scores.T @ scores / n) @ bread / n
    cov = confidence.sandwich_covariance(res.params, data)
    np.testing.assert_allclose(cov, ref, rtol=1e-5, atol=1e-10)


@pytest.mark.slow  # ~5 s on the 2-core CI machine
def test_sandwich_equals_wald_in_large_correct_samples():
    data = sim.simulate(jax.random.key(8), sim.get_design("default"), 40_000)
    res = hr.fit(data)
    sandwich = hr.confidence_intervals(res.params, data, method="sandwich")
    wald = hr.confidence_intervals(res.params, data)
    np.testing.assert_allclose(
        ravel_params(sandwich.se), ravel_params(wald.se), rtol=0.04
    )


@pytest.mark.slow  # ~6 s on the 2-core CI machine
def test_sandwich_differs_from_wald_under_misspecification():
    # σ = 1 + γᵀψ + 2ψ₁² is not linear in ψ: J ≠ H, so the two se's part.
    data = sim.simulate(
        jax.random.key(9), sim.get_design("misspecified", quadratic=2.0), 40_000
    )
    res = hr.fit(data)
    ratio = ravel_params(
        hr.confidence_intervals(res.params, data, method="sandwich").se
    ) / ravel_params(hr.confidence_intervals(res.params, data).se)
    assert np.max(np.abs(np.asarray(ratio) - 1.0)) > 0.08


@pytest.mark.slow  # ~4 s on the 2-core CI machine
def test_bootstrap_smoke_and_sd_close_to_wald_se():
    data = sim.simulate(jax.random.key(10), SMALL, 150)
    res = hr.fit(data)
    out = confidence.bootstrap_intervals(
        jax.random.key(11), res.params, data, num_bootstrap=200
    )
    assert out.converged.shape == (200,)
    assert int(out.num_failed) == 0
    ci = out.intervals
    for lo, est, hi in zip(
        ravel_params(ci.lower), ravel_params(ci.estimate), ravel_params(ci.upper)
    ):
        assert lo < est < hi
    wald_se = ravel_params(hr.confidence_intervals(res.params, data).se)
    # sd of 200 draws has relative Monte Carlo error ≈ 5%; at n = 150 the sampling
    # distribution is not yet normal, so allow 30%.
    np.testing.assert_allclose(ravel_params(ci.se), wald_se, rtol=0.3)
    basic = hr.confidence_intervals(
        res.params,
        data,
        method="bootstrap",
        key=jax.random.key(11),
        interval="basic",
        num_bootstrap=200,
    )
    # Same draws: basic = 2θ̂ − percentile reflected.
    np.testing.assert_allclose(
        ravel_params(basic.lower),
        2 * ravel_params(res.params) - ravel_params(ci.upper),
        rtol=1e-10,
    )
    student = hr.confidence_intervals(
        res.params,
        data,
        method="bootstrap",
        key=jax.random.key(11),
        interval="studentized",
        num_bootstrap=200,
    )
    assert np.all(np.isfinite(ravel_params(student.lower)))


def test_bad_input_errors():
    data = sim.simulate(jax.random.key(12), SMALL, 150)
    params = hr.fit(data).params
    with pytest.raises(ValueError, match="method must be one of"):
        hr.confidence_intervals(params, data, method="jackknife")
    with pytest.raises(ValueError, match="PRNG key"):
        hr.confidence_intervals(params, data, method="bootstrap")
    with pytest.raises(ValueError, match="interval must be"):
        confidence.bootstrap_intervals(jax.random.key(0), params, data, interval="bca")
    with pytest.raises(ValueError, match="alpha"):
        hr.confidence_intervals(params, data, 1.5, method="profile")
    with pytest.raises(TypeError, match="method='wald' takes no"):
        hr.confidence_intervals(params, data, num_bootstrap=10)
    with pytest.raises(TypeError, match="data must be"):
        confidence.sandwich_covariance(params, (data.phi0, data.y))
    # Default behaviour is Wald, unchanged.
    default = hr.confidence_intervals(params, data)
    wald = hr.confidence_intervals(params, data, method="wald")
    np.testing.assert_array_equal(ravel_params(default.lower), ravel_params(wald.lower))


@pytest.mark.slow
def test_profile_and_bootstrap_coverage_monte_carlo():
    """Coverage with known truth at n = 200 (binomial 99.9% band around 0.95)."""
    reps, n = 300, 200
    truth = np.asarray(ravel_params(sim.design_truth(SMALL)))
    keys = jax.random.split(jax.random.key(13), reps)

    def one(key):
        k_data, k_boot = jax.random.split(key)
        data = sim.simulate(k_data, SMALL, n)
        params = hr.fit(data).params
        prof = hr.confidence_intervals(params, data, method="profile")
        boot = confidence.bootstrap_intervals(
            k_boot, params, data, num_bootstrap=200, interval="studentized"
        ).intervals
        return [(ravel_params(c.lower), ravel_params(c.upper)) for c in (prof, boot)]

    out = jax.jit(jax.vmap(one))(keys)
    band = 3.29 * np.sqrt(0.95 * 0.05 / reps)
    for lower, upper in out:
        cover = np.mean((np.asarray(lower) <= truth) & (truth <= np.asarray(upper)), 0)
        assert np.all(np.abs(cover - 0.95) <= band), cover
