"""Tests of the reward-test study (experiments/reward_test.py): size, power, coverage."""

import json

import numpy as np
import pytest
import scipy.stats

from configs import reward_test as reward_test_config
from experiments import reward_test

Z975 = scipy.stats.norm.ppf(0.975)


def _fake_replicates(rng, num, gaps, d=3):
    """Replicate arrays with known rejection patterns (no fits)."""
    e = len(gaps)
    return reward_test.Replicate(
        converged=np.r_[np.ones(num - 2, bool), False, False],
        reward_covered=rng.uniform(size=num) < 0.93,
        reject=rng.uniform(size=(num, e)) < np.linspace(0.06, 0.9, e),
        reject_greater=rng.uniform(size=(num, e)) < 0.05,
        gap_covered=rng.uniform(size=(num, e)) < 0.95,
        estimate=rng.normal(size=(num, e)),
        se=rng.uniform(0.2, 0.4, size=(num, e)),
        diff=rng.normal(size=(num, e, d)),
    )


def test_summary_against_scipy():
    """Rates, bands, binomial tests and the asymptotic power recomputed with scipy."""
    rng = np.random.default_rng(0)
    gaps = (0.0, 0.5, 2.0)
    out = _fake_replicates(rng, 302, gaps)
    a = rng.normal(size=(3, 3))
    theta_cov = a @ a.T + np.eye(3)
    s = reward_test.summarize(out, gaps, 0.05, theta_cov, n=250)
    ok = out.converged
    assert s["num_replicates"] == 302 and s["num_not_converged"] == 2
    k = int(out.reject[ok, 0].sum())
    assert s["size"]["rate"] == k / 300
    assert s["size"]["binom_p"] == pytest.approx(
        scipy.stats.binomtest(k, 300, 0.05).pvalue, rel=1e-12
    )
    lo, hi = scipy.stats.binom.interval(0.95, 300, 0.05)
    assert s["size"]["band"] == [lo / 300, hi / 300]
    assert s["size"]["inside_band"] == (lo <= k <= hi)
    cov = s["reward_ci_coverage"]
    assert cov["rate"] == out.reward_covered[ok].mean()
    assert cov["band"] == [x / 300 for x in scipy.stats.binom.interval(0.95, 300, 0.95)]
    np.testing.assert_allclose(s["power"], out.reject[ok].mean(0))
    # Asymptotic power: mean over pairs of the two-sided rejection probability at
    # λ = δ / sqrt(Δᵀ Σ Δ / n), by scipy's normal distribution.
    diff = out.diff[ok]
    se_star = np.sqrt(np.einsum("red,df,ref->re", diff, theta_cov, diff) / 250)
    lam = np.asarray(gaps) / se_star
    expected = scipy.stats.norm.sf(Z975 - lam) + scipy.stats.norm.cdf(-Z975 - lam)
    np.testing.assert_allclose(s["power_theory"], expected.mean(0), rtol=1e-10)
    assert s["power_theory"][0] == pytest.approx(0.05, rel=1e-12)


def test_bad_config_fields_raise(tmp_path):
    for field, value, match in [
        ("alpha", 0.0, "alpha"),
        ("gaps", (), "gaps"),
        ("gaps", (0.0, -1.0), "gaps"),
        ("num_replicates", 0, "num_replicates"),
        ("sample_sizes", (100, 100), "duplicates"),
        ("preset", "paper", "preset"),
    ]:
        config = reward_test_config.get_config()
        config.results_dir = str(tmp_path)
        config[field] = value
        with pytest.raises(ValueError, match=match):
            reward_test.run(config)
    assert not any(tmp_path.iterdir())


# ~30 s
def test_smoke_study_size_power_coverage(tmp_path, capsys):
    config = reward_test_config.get_config()
    config.sample_sizes = (300,)
    config.num_replicates = 120
    config.chunk_size = 60
    config.vmap_size = 30
    config.gaps = (0.0, 1.0, 4.0)
    config.fisher_sample_size = 50_000
    config.results_dir = str(tmp_path)
    config.progress = False
    config.checkpoint = False
    payload = reward_test.run(config)
    for name in ("results.json", "results.md", "power_size.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert "## Power of the two-sided test" in capsys.readouterr().out
    saved = json.loads((tmp_path / "results.json").read_text())
    s = saved["summary"]["300"]
    reps = {k: np.asarray(v) for k, v in saved["replicates"]["300"].items()}
    ok = reps["converged"].astype(bool)
    assert ok.sum() >= 118
    # Every test pair has the requested true gap (θ*ᵀΔ = δ).
    theta = np.asarray(saved["design"]["theta"])
    np.testing.assert_allclose(
        reps["diff"] @ theta, np.broadcast_to(config.gaps, (120, 3)), atol=1e-10
    )
    # The z statistic and the decisions agree with scipy's normal tail.
    p_two = 2 * scipy.stats.norm.sf(np.abs(reps["estimate"] / reps["se"]))
    np.testing.assert_array_equal(reps["reject"], p_two < 0.05)
    # 120 replicates: size and coverage only grossly checked (exact band at 99.9%).
    lo, hi = scipy.stats.binom.interval(0.999, int(ok.sum()), 0.05)
    assert lo <= s["size"]["rate"] * ok.sum() <= hi
    lo, hi = scipy.stats.binom.interval(0.999, int(ok.sum()), 0.95)
    assert lo <= s["reward_ci_coverage"]["rate"] * ok.sum() <= hi
    # A gap of 4 reward units is found almost always, and so the asymptotics say.
    assert s["power"][2] > 0.9 and s["power_theory"][2] > 0.9
    assert s["power"][0] < s["power"][1] < s["power"][2] + 1e-12
    assert payload["summary"]["300"]["size"]["rate"] == s["size"]["rate"]
