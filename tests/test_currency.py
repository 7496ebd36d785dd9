"""One uncertainty currency: consumers act on a RewardEstimate, not on its source."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

import hetrlhf as hr
from hetrlhf.btl import multitest
from hetrlhf.btl.inference import compare_estimates


def _fisher_setup(n=400):
    """Homogeneous BTL data, fitted by statsmodels (independent of hr.fit)."""
    rng = np.random.default_rng(0)
    d = 3
    phi0, phi1 = rng.normal(size=(2, n, d))
    theta = np.array([1.0, -0.6, 0.4])
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(phi1 - phi0) @ theta))).astype(float)
    data = hr.comparisons(phi0, phi1, y)
    res = sm.Logit(y, phi1 - phi0).fit(disp=0)
    params = hr.Params(jnp.asarray(res.params), jnp.zeros((0,)))
    return data, params, res


def _three_sources(mean, var):
    """The same (mean, var) produced by an interval judge and a hand-built ensemble."""
    mean, var = np.asarray(mean), np.asarray(var)
    half = np.sqrt(3.0 * var)  # Uniform(lo, hi) has variance (hi − lo)²/12
    interval = hr.interval_rewards(mean - half, mean + half)
    a = np.sqrt(var / 2.0)  # two heads m ± a: sample variance (ddof 1) = 2a²
    heads = np.stack([mean - a, mean + a])
    ensemble = hr.RewardEstimate(
        jnp.asarray(heads.mean(0)), jnp.asarray(heads.var(0, ddof=1))
    )
    return interval, ensemble


@pytest.mark.slow  # ~6 s on the 2-core CI machine
def test_same_estimate_same_choice_whatever_the_source():
    data, params, _ = _fisher_setup(n=60)
    rng = np.random.default_rng(1)
    # 8 prompts × 20 candidates; candidate scales differ so the variances differ a lot.
    phi = rng.normal(size=(8, 20, 3)) * rng.uniform(0.2, 3.0, size=(8, 20, 1))
    fisher = jax.jit(hr.reward_interval)(params, data, jnp.asarray(phi))
    interval, ensemble = _three_sources(fisher.mean, fisher.var)
    for other in (interval, ensemble):
        np.testing.assert_allclose(other.mean, fisher.mean, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(other.var, fisher.var, rtol=1e-10, atol=1e-14)

    for alpha in (0.05, 0.5):
        choice = np.asarray(hr.pessimistic_best_of_n(fisher, alpha))
        # Hand computation of argmax(mean − z·sd).
        z = stats.norm.ppf(1 - alpha / 2)
        lcb = np.asarray(fisher.mean) - z * np.sqrt(np.asarray(fisher.var))
        np.testing.assert_array_equal(choice, lcb.argmax(-1))
        for other in (interval, ensemble):
            np.testing.assert_array_equal(
                hr.pessimistic_best_of_n(other, alpha), choice
            )
    # The check is not vacuous: pessimism changes the choice on some prompts.
    assert np.any(hr.pessimistic_best_of_n(fisher, 0.05) != hr.best_of_n(fisher.mean))

    # Comparisons of candidates 0 and 1 (treated as independent estimates).
    ref = compare_estimates(
        hr.RewardEstimate(fisher.mean[:, 0], fisher.var[:, 0]),
        hr.RewardEstimate(fisher.mean[:, 1], fisher.var[:, 1]),
    )
    for other in (interval, ensemble):
        got = compare_estimates(
            hr.RewardEstimate(other.mean[:, 0], other.var[:, 0]),
            hr.RewardEstimate(other.mean[:, 1], other.var[:, 1]),
        )
        np.testing.assert_allclose(got.p_value, ref.p_value, rtol=1e-8)

    # Ranking with groups is the same too.
    ranks = [
        multitest.rank_with_groups(hr.RewardEstimate(e.mean[0], e.var[0]))
        for e in (fisher, interval, ensemble)
    ]
    for r in ranks[1:]:
        np.testing.assert_array_equal(r.group, ranks[0].group)
        assert r.letters == ranks[0].letters


def test_compare_estimates_hand_formula_and_errors():
    a = hr.RewardEstimate(jnp.array([1.0, 0.0]), jnp.array([0.2, 0.5]))
    b = hr.RewardEstimate(jnp.array([0.5, 0.3]), jnp.array([0.1, 0.4]))
    cov = jnp.array([0.05, -0.1])
    cmp = compare_estimates(a, b, cov)
    var = np.array([0.2 + 0.1 - 0.1, 0.5 + 0.4 + 0.2])
    z = np.array([0.5, -0.3]) / np.sqrt(var)
    np.testing.assert_allclose(cmp.se, np.sqrt(var), rtol=1e-12)
    np.testing.assert_allclose(cmp.z, z, rtol=1e-12)
    np.testing.assert_allclose(cmp.p_value, 2 * stats.norm.sf(np.abs(z)), rtol=1e-10)
    np.testing.assert_allclose(cmp.p_value_greater, stats.norm.sf(z), rtol=1e-10)
    np.testing.assert_allclose(cmp.p_value_less, stats.norm.cdf(z), rtol=1e-10)
    with pytest.raises(TypeError, match="est_b"):
        compare_estimates(a, (b.mean, b.var))
    with pytest.raises(TypeError, match="RewardEstimate"):
        hr.pessimistic_best_of_n((a.mean, a.var))


def test_compare_rewards_is_compare_estimates_with_the_fisher_covariance():
    data, params, res = _fisher_setup()
    rng = np.random.default_rng(2)
    phi_a, phi_b = rng.normal(size=(2, 5, 3))
    cov = hr.covariance(params, data)
    direct = hr.compare_rewards(params, data, phi_a, phi_b, cov=cov)
    est_a = hr.reward_interval(params, data, phi_a, cov=cov)
    est_b = hr.reward_interval(params, data, phi_b, cov=cov)
    cov_ab = jnp.einsum("bi,ij,bj->b", phi_a, cov, phi_b)
    via = compare_estimates(est_a, est_b, cov_ab)
    for f in ("estimate", "se", "z", "p_value"):
        np.testing.assert_allclose(getattr(via, f), getattr(direct, f), rtol=1e-9)
    # Independent reference: statsmodels' Wald test of the contrast θᵀ(φ_a − φ_b).
    for k in range(5):
        t = res.t_test((phi_a[k] - phi_b[k])[None, :])
        np.testing.assert_allclose(direct.estimate[k], t.effect[0], rtol=1e-6)
        np.testing.assert_allclose(direct.se[k], t.sd[0, 0], rtol=1e-5)
        np.testing.assert_allclose(direct.p_value[k], t.pvalue, rtol=1e-4)


def test_consumers_trace_under_jit_and_vmap():
    est = hr.RewardEstimate(
        jax.random.normal(jax.random.key(0), (4, 5)),
        jax.random.uniform(jax.random.key(1), (4, 5)),
    )
    choice = jax.jit(hr.pessimistic_best_of_n)(est, 0.1)
    np.testing.assert_array_equal(choice, hr.pessimistic_best_of_n(est, 0.1))
    cmp = jax.jit(jax.vmap(compare_estimates))(
        hr.RewardEstimate(est.mean[:, 0], est.var[:, 0]),
        hr.RewardEstimate(est.mean[:, 1], est.var[:, 1]),
    )
    assert cmp.p_value.shape == (4,)


@pytest.mark.slow  # ~4 s on the 2-core CI machine
def test_sandwich_covariance_matches_statsmodels_cluster_robust():
    data, params, res = _fisher_setup(n=300)
    groups = np.arange(300) // 4  # 75 clusters of 4 comparisons
    ref = sm.Logit(np.asarray(data.y), np.asarray(data.dphi)).fit(
        disp=0, cov_type="cluster", cov_kwds={"groups": groups, "use_correction": False}
    )
    ours = hr.sandwich_covariance(params, data, jnp.asarray(groups), num_clusters=75)
    np.testing.assert_allclose(ours, ref.cov_params(), rtol=1e-6)
    # Every row its own cluster: HC0.
    hc0 = sm.Logit(np.asarray(data.y), np.asarray(data.dphi)).fit(
        disp=0, cov_type="HC0"
    )
    np.testing.assert_allclose(
        hr.sandwich_covariance(params, data), hc0.cov_params(), rtol=1e-6
    )
    del res
