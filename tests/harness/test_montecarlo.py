"""Tests of hetrlhf.montecarlo against scipy, statsmodels, the statistics module and
closed forms (never against its own output)."""

import math
import statistics

import numpy as np
import pytest
import scipy.stats
from statsmodels.stats.proportion import proportion_confint

from hetrlhf import montecarlo as mc

Z975 = scipy.stats.norm.ppf(0.975)


def test_proportion_is_the_normal_interval_of_statsmodels():
    rng = np.random.default_rng(0)
    hits = rng.uniform(size=(250, 2, 3)) < np.array([0.05, 0.5, 0.97])
    rate, se = mc.proportion(hits)
    assert rate.shape == se.shape == (2, 3)
    for idx in np.ndindex(2, 3):
        count = int(hits[(slice(None), *idx)].sum())
        assert rate[idx] == count / 250
        # statsmodels' normal (Wald) interval is p̂ ± z·sqrt(p̂(1 − p̂)/R).
        lo, hi = proportion_confint(count, 250, alpha=0.05, method="normal")
        assert se[idx] == pytest.approx((hi - lo) / (2 * Z975), rel=1e-12)
    empty_rate, empty_se = mc.proportion(np.zeros((0, 4), bool))
    assert np.isnan(empty_rate).all() and np.isnan(empty_se).all()
    with pytest.raises(ValueError, match="replicate axis"):
        mc.proportion(True)


def test_mean_se_is_scipy_sem():
    x = np.random.default_rng(1).normal(size=(40, 3))
    mean, se = mc.mean_se(x)
    np.testing.assert_allclose(mean, [statistics.fmean(c) for c in x.T], rtol=1e-13)
    np.testing.assert_allclose(se, scipy.stats.sem(x, axis=0, ddof=1), rtol=1e-13)
    # float32 values are averaged in float32 unless a dtype is given.
    x32 = x.astype(np.float32)
    assert mc.mean_se(x32)[0].dtype == np.float32
    np.testing.assert_allclose(mc.mean_se(x32)[0], x32.mean(0), rtol=1e-6)
    mean64, se64 = mc.mean_se(x32, np.float64)
    np.testing.assert_allclose(mean64, [statistics.fmean(c) for c in x32.T], rtol=1e-13)
    np.testing.assert_allclose(
        se64, scipy.stats.sem(x32.astype(np.float64), axis=0), rtol=1e-13
    )
    m1, s1 = mc.mean_se(np.array([2.5]))
    assert m1 == 2.5 and np.isnan(s1)  # one replicate: no standard error
    with pytest.raises(ValueError, match="replicate axis"):
        mc.mean_se(np.zeros((0, 2)))


def test_estimator_summary_by_the_statistics_module():
    rng = np.random.default_rng(2)
    truth = np.array([1.0, -0.5])
    est = truth + rng.normal(0.1, 0.3, size=(30, 2))
    se = rng.uniform(0.2, 0.4, size=(30, 2))
    s = mc.estimator_summary(est, se, truth)
    for j in range(2):
        assert s["bias"][j] == pytest.approx(
            statistics.fmean(est[:, j]) - truth[j], abs=1e-14
        )
        assert s["empirical_sd"][j] == pytest.approx(
            statistics.stdev(est[:, j]), rel=1e-12
        )
        assert s["mean_se"][j] == pytest.approx(statistics.fmean(se[:, j]), rel=1e-13)
    one = mc.estimator_summary(est[:1], se[:1], truth)
    assert np.all(np.isfinite(one["bias"])) and np.isnan(one["empirical_sd"]).all()
    none = mc.estimator_summary(est[:0], se[:0], truth)
    assert all(np.isnan(v).all() for v in none.values())
    with pytest.raises(ValueError, match="shape"):
        mc.estimator_summary(est, se[:, :1], truth)


def test_normality_of_z_scores():
    z = np.random.default_rng(4).normal(size=(200, 2))
    z[:, 1] = 1.5 * z[:, 1] + 0.5
    s = mc.normality(z)
    for j in range(2):
        ref = scipy.stats.kstest(z[:, j], "norm")
        assert s["ks_stat"][j] == pytest.approx(ref.statistic, rel=1e-12)
        assert s["ks_p"][j] == pytest.approx(ref.pvalue, rel=1e-12)
        assert s["z_mean"][j] == pytest.approx(statistics.fmean(z[:, j]), abs=1e-14)
        assert s["z_sd"][j] == pytest.approx(statistics.stdev(z[:, j]), rel=1e-12)
    assert list(s["num_z"]) == [200, 200]
    assert s["ks_p"][0] > 1e-3 and s["ks_p"][1] < 1e-6  # N(0.5, 1.5²) is rejected
    single = mc.normality(z[:1])
    assert np.isnan(single["z_sd"]).all() and np.isfinite(single["z_mean"]).all()


def test_ks_normal_against_scipy_and_by_hand():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(300, 3))
    z[:, 1] += 0.4  # shifted column: must be rejected
    z[5, 2] = np.nan  # a failed fit is dropped from its column only
    stat, pval, count = mc.ks_normal(z)
    assert list(count) == [300, 300, 299]
    for j in range(3):
        col = z[np.isfinite(z[:, j]), j]
        ref = scipy.stats.kstest(col, "norm")
        assert stat[j] == pytest.approx(ref.statistic, rel=1e-12)
        assert pval[j] == pytest.approx(ref.pvalue, rel=1e-12)
        # D by hand: the largest gap between the empirical and the normal CDF.
        x = np.sort(col)
        cdf = scipy.stats.norm.cdf(x)
        m = x.size
        d_hand = max(
            (np.arange(1, m + 1) / m - cdf).max(), (cdf - np.arange(m) / m).max()
        )
        assert stat[j] == pytest.approx(d_hand, rel=1e-12)
    assert pval[1] < 1e-4 and pval[0] > 1e-3
    empty = mc.ks_normal(np.full((4, 1), np.nan))
    assert np.isnan(empty[1][0]) and empty[2][0] == 0
    with pytest.raises(ValueError, match="shape"):
        mc.ks_normal(np.zeros(5))


@pytest.mark.parametrize(("rate", "trials"), [(0.05, 400), (0.95, 300), (0.05, 60)])
def test_binomial_band_by_brute_force(rate, trials):
    """Band from the binomial pmf summed by hand (math.comb), not scipy's quantiles."""
    lo, hi = mc.binomial_band(rate, trials)
    pmf = np.array(
        [
            math.comb(trials, k) * rate**k * (1 - rate) ** (trials - k)
            for k in range(trials + 1)
        ]
    )
    k_lo, k_hi = round(lo * trials), round(hi * trials)
    assert pmf[k_lo : k_hi + 1].sum() >= 0.95
    assert pmf[:k_lo].sum() <= 0.025 and pmf[k_hi + 1 :].sum() <= 0.025
    # Tightest: moving either end inwards leaves a tail above 2.5%.
    assert pmf[: k_lo + 1].sum() > 0.025 and pmf[k_hi:].sum() > 0.025
    with pytest.raises(ValueError, match="trials"):
        mc.binomial_band(rate, 0)
    with pytest.raises(ValueError, match="rate"):
        mc.binomial_band(1.5, trials)


@pytest.mark.parametrize(("rate", "trials"), [(0.95, 100), (0.05, 400), (0.5, 37)])
def test_normal_half_width(rate, trials):
    """statsmodels' normal interval at p̂ = rate; ≈ 95% binomial probability."""
    lo, hi = proportion_confint(rate * trials, trials, alpha=0.05, method="normal")
    assert mc.normal_half_width(rate, trials, z=Z975) == pytest.approx(
        (hi - lo) / 2, rel=1e-12
    )
    half = mc.normal_half_width(rate, trials)  # z = 1.96, the studies' band
    assert half == pytest.approx(1.96 / Z975 * (hi - lo) / 2, rel=1e-12)
    k = np.arange(trials + 1)
    inside = np.abs(k / trials - rate) <= half
    prob = scipy.stats.binom.pmf(k, trials, rate)[inside].sum()
    assert 0.9 < prob < 0.99  # normal approximation of a discrete law
    with pytest.raises(ValueError, match="trials"):
        mc.normal_half_width(rate, 0)
    with pytest.raises(ValueError, match="rate"):
        mc.normal_half_width(-0.1, trials)


def test_rate_check_against_scipy():
    hits = np.zeros(300, bool)
    hits[:24] = True  # 24 rejections in 300 tests of nominal size 0.05
    r = mc.rate_check(hits, 0.05)
    assert r["rate"] == 24 / 300
    assert r["mc_se"] == pytest.approx(math.sqrt(0.05 * 0.95 / 300), rel=1e-12)
    lo, hi = scipy.stats.binom.interval(0.95, 300, 0.05)
    assert r["band"] == [lo / 300, hi / 300]
    assert r["inside_band"] == (lo <= 24 <= hi)
    assert r["binom_p"] == pytest.approx(
        scipy.stats.binomtest(24, 300, 0.05).pvalue, rel=1e-12
    )
    with pytest.raises(ValueError, match="shape"):
        mc.rate_check(np.zeros((3, 2), bool), 0.05)
    with pytest.raises(ValueError, match="trials"):
        mc.rate_check(np.zeros(0, bool), 0.05)


def test_geometric_mean_is_scipy_gmean():
    x = np.random.default_rng(5).uniform(0.1, 3.0, size=(20, 4))
    np.testing.assert_allclose(
        mc.geometric_mean(x), scipy.stats.gmean(x, axis=0), rtol=1e-13
    )
    assert mc.geometric_mean(np.array([[0.0], [4.0]]))[0] == pytest.approx(
        math.sqrt(1e-300 * 4.0)
    )  # zeros are floored, not -inf


def test_log_linear_rate_recovers_geometric_decay():
    t = np.arange(60)
    rho = np.array([0.9, 0.5, 0.99])
    errors = 3.0 * rho[:, None] ** t
    # The fast curve reaches round-off: points at or below the floor are left out.
    errors[1, 40:] = 1e-16
    errors[2, 30] = np.nan  # a non-finite point is left out
    np.testing.assert_allclose(mc.log_linear_rate(errors), rho, rtol=1e-10)
    few = mc.log_linear_rate(np.full((1, 60), 1e-12))  # nothing above the floor
    assert np.isnan(few).all()
    with pytest.raises(ValueError, match="shape"):
        mc.log_linear_rate(np.ones(5))
