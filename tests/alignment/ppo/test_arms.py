"""hetrlhf.alignment.ppo.arms: the arm comparisons against statsmodels and closed forms."""

import numpy as np
import pytest
from scipy import special, stats
from statsmodels.stats import oneway
from statsmodels.stats.proportion import proportions_ztest
from statsmodels.stats.weightstats import ttest_ind as sm_ttest_ind

from hetrlhf.alignment.ppo import arms


def _samples(seed=0, n1=40, n2=35):
    rng = np.random.default_rng(seed)
    return rng.normal(1.0, 1.5, n1), rng.normal(0.8, 1.0, n2), rng.normal(0.9, 1.0, 30)


def test_f_test_matches_the_incomplete_beta_closed_form():
    v, va, ref = _samples()
    out = arms.compare_arms(v, va, ref)
    f = np.var(v, ddof=1) / np.var(va, ddof=1)
    d1, d2 = v.size - 1, va.size - 1
    np.testing.assert_allclose(out["f_stat"], f, rtol=1e-12)
    assert out["f_df"] == [d1, d2]
    # P(F > f) = I_{d2/(d2 + d1 f)}(d2/2, d1/2) (regularised incomplete beta).
    p = special.betainc(d2 / 2, d1 / 2, d2 / (d2 + d1 * f))
    np.testing.assert_allclose(out["f_p"], p, rtol=1e-10)
    # The (79, 79) critical value paper B quotes, F_0.95 = 1.45.
    crit = arms.compare_arms(*_samples(1, 80, 80))["f_critical"]
    np.testing.assert_allclose(crit, 1.45, atol=0.005)


def test_brown_forsythe_is_anova_of_absolute_median_deviations():
    v, va, ref = _samples(2)
    out = arms.compare_arms(v, va, ref)
    dev = [np.abs(v - np.median(v)), np.abs(va - np.median(va))]
    res = oneway.anova_oneway(dev, use_var="equal")
    np.testing.assert_allclose(out["brown_forsythe_w"], res.statistic, rtol=1e-10)
    np.testing.assert_allclose(out["brown_forsythe_p"], res.pvalue, rtol=1e-8)
    # One-sided version: half the two-sided p in the direction of the data.
    vanilla_wider = dev[0].mean() > dev[1].mean()
    half = out["brown_forsythe_p"] / 2
    np.testing.assert_allclose(
        out["brown_forsythe_p_one_sided"], half if vanilla_wider else 1 - half
    )


def test_welch_matches_statsmodels():
    v, va, ref = _samples(3)
    out = arms.compare_arms(v, va, ref, alpha=0.1)
    t, p, df = sm_ttest_ind(v, va, usevar="unequal")
    np.testing.assert_allclose([out["welch_t"], out["welch_p"]], [t, p], rtol=1e-10)
    np.testing.assert_allclose(out["welch_df"], df, rtol=1e-10)
    np.testing.assert_allclose(out["welch_t_critical"], stats.t.ppf(0.95, df))


def test_risk_is_the_fraction_below_the_mean_of_the_reference_runs():
    v = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    va = np.array([1.9, 2.1, 2.15, 3.0, 5.0, 6.0])
    ref = np.array([1.0, 2.0, 3.5])  # mean 2.1667; median 2.0 would differ
    out = arms.compare_arms(v, va, ref)
    assert out["risk"] == {"vanilla": 3 / 5, "variance_aware": 3 / 6}
    np.testing.assert_allclose(out["reference_mean"], 6.5 / 3)
    z, p = proportions_ztest([3, 3], [5, 6], alternative="larger")
    np.testing.assert_allclose([out["risk_z"], out["risk_p"]], [z, p], rtol=1e-12)
    _, p2 = proportions_ztest([3, 3], [5, 6])
    np.testing.assert_allclose(out["risk_p_two_sided"], p2, rtol=1e-12)
    # Fisher's exact one-sided p = P(X >= 3), X ~ Hypergeometric(11 policies, 6 below
    # the reference, 5 drawn for vanilla).
    np.testing.assert_allclose(
        out["risk_fisher_p"], stats.hypergeom.sf(2, 11, 6, 5), rtol=1e-12
    )


def test_two_proportion_ztest_degenerate_pool():
    assert arms.two_proportion_ztest(0, 10, 0, 12) == (0.0, 0.5, 1.0)


def test_paired_tests_match_closed_forms():
    rng = np.random.default_rng(4)
    common = rng.normal(size=30)
    v = common + rng.normal(0, 1.2, 30)
    va = 0.5 * common + rng.normal(0.1, 0.6, 30)
    ref = rng.normal(0.0, 1.0, 25)
    out = arms.compare_arms(v, va, ref, paired=True)
    # Pitman–Morgan (textbook form): t = (F − 1)√(n − 2) / (2√(F(1 − r²))).
    n, f = v.size, np.var(v, ddof=1) / np.var(va, ddof=1)
    r = np.corrcoef(v, va)[0, 1]
    t = (f - 1) * np.sqrt(n - 2) / (2 * np.sqrt(f * (1 - r**2)))
    np.testing.assert_allclose(out["pitman_morgan_p"], stats.t.sf(t, n - 2), rtol=1e-8)
    d = v - va
    t_paired = d.mean() / (d.std(ddof=1) / np.sqrt(n))
    np.testing.assert_allclose(out["paired_t"], t_paired, rtol=1e-10)
    np.testing.assert_allclose(
        out["paired_t_p"], 2 * stats.t.sf(abs(t_paired), n - 1), rtol=1e-8
    )
    below_v, below_va = v < ref.mean(), va < ref.mean()
    b, c = int(np.sum(below_v & ~below_va)), int(np.sum(~below_v & below_va))
    assert out["mcnemar_discordant"] == [b, c]
    np.testing.assert_allclose(out["mcnemar_p"], stats.binom.sf(b - 1, b + c, 0.5))
    assert set(out["sidedness"]) >= {"f_p", "welch_p", "risk_p", "pitman_morgan_p"}


def test_paired_tests_of_identical_arms_are_defined():
    """Paired keys can give identical arms (e.g. a few updates, one evaluation key):
    every statistic stays a number (no evidence: p = 1, or 1/2 one-sided at t = 0)."""
    x = np.array([0.375, 0.125, 0.75, 0.25])  # x + 0.5 is exact
    out = arms.compare_arms(x, x.copy(), np.array([0.0, 0.5, 1.0]), paired=True)
    assert (out["pitman_morgan_r"], out["pitman_morgan_p"]) == (0.0, 0.5)
    assert (out["paired_t"], out["paired_t_p"]) == (0.0, 1.0)
    assert out["mcnemar_p"] == 1.0 and out["f_p"] == pytest.approx(0.5)
    shifted = arms.compare_arms(x + 0.5, x, np.array([0.0, 0.5, 1.0]), paired=True)
    assert shifted["paired_t"] == np.inf and shifted["paired_t_p"] == 0.0


@pytest.mark.slow
def test_f_test_size_under_the_null_by_simulation():
    """Independent normal arms of equal variance: the one-sided F-test rejects at
    α = 0.05 in 5% of 2000 simulated studies (± 4.5 binomial standard errors)."""
    rng = np.random.default_rng(5)
    rejections = [
        arms.compare_arms(rng.normal(size=20), rng.normal(size=20), rng.normal(size=5))[
            "f_p"
        ]
        < 0.05
        for _ in range(2000)
    ]
    assert abs(np.mean(rejections) - 0.05) < 4.5 * np.sqrt(0.05 * 0.95 / 2000)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"vanilla": [1.0, 2.0]}, "vanilla"),
        ({"reference": [1.0, np.nan, 2.0]}, "reference"),
        ({"alpha": 1.0}, "alpha"),
        ({"paired": True, "variance_aware": [1.0, 2.0, 3.0, 4.0]}, "paired"),
    ],
)
def test_bad_input_is_named(kwargs, match):
    args = {
        "vanilla": [1.0, 2.0, 3.0],
        "variance_aware": [1.0, 2.5, 3.0],
        "reference": [0.0, 1.0, 2.0],
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        arms.compare_arms(**args)
