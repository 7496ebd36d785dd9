"""Smoke test of the best-of-N study with a shrunken real config, and MC checks."""

import json
import os

import numpy as np
import pytest
import scipy.integrate
import scipy.stats

from configs import bon as bon_config
from experiments import bon


def _expected_max_std_normal(num: int) -> float:
    """E[max of num iid N(0, 1)] = ∫ z · num·φ(z)Φ(z)^(num−1) dz (order statistics)."""
    pdf = lambda z: (
        z * num * scipy.stats.norm.pdf(z) * scipy.stats.norm.cdf(z) ** (num - 1)
    )
    return scipy.integrate.quad(pdf, -12, 12)[0]


def _small_config(tmp_path):
    config = bon_config.get_config()
    config.results_dir = str(tmp_path / "bon")
    config.num_candidates = (3, 12)
    config.num_prompts = 150
    config.num_seeds = 12
    config.chunk_size = 12
    config.regimes = {"small": bon_config._regime("default", 60, 0.0)}
    config.theorem6.sample_sizes = ()  # the sweep has its own (slow) test
    config.theorem6.fisher_sample_size = 100_000
    return config


def _check_theorem6(entry, per_seed, n, alpha):
    """A run's Theorem-6 numbers recomputed with numpy/scipy from its per-seed data."""
    info = np.asarray(entry["population_information"])
    d = len(entry["phi_star_mean"][0])
    # Ĩ⁻¹ is the θ block of I⁻¹ (an independent route to the profiled information).
    theta_cov = np.linalg.inv(info)[:d, :d]
    q = scipy.stats.norm.ppf(1 - alpha / 2)
    for j, v in enumerate(np.asarray(entry["phi_star_mean"])):
        expected = 3 * q * np.sqrt(v @ theta_cov @ v / n)
        assert entry["theorem6_bound"][j] == pytest.approx(expected, rel=1e-8)
    gold = {k: np.asarray(v) for k, v in per_seed["gold"].items()}
    subopt = gold["oracle"] - gold["pbon"]  # every seed is usable in these runs
    np.testing.assert_allclose(entry["suboptimality"], subopt.mean(0), rtol=1e-12)
    np.testing.assert_allclose(
        entry["share_above_bound"],
        (subopt > np.asarray(entry["theorem6_bound"])).mean(0),
    )


def test_bon_study_writes_sane_results(tmp_path, capsys):
    payload = bon.run(_small_config(tmp_path))

    out = tmp_path / "bon"
    for name in ("results.json", "results.md", "gold_vs_n.png"):
        assert os.path.getsize(out / name) > 0, name
    with open(out / "results.json") as f:
        saved = json.load(f)
    assert set(saved["regimes"]) == {"small"}
    printed = capsys.readouterr().out
    assert "| policy | N = 3 | N = 12 |" in printed

    reg = payload["regimes"]["small"]
    s = reg["summary"]
    assert s["num_used"] >= 10  # n = 60 comparisons, d + k = 8: fits should work
    per_seed = reg["per_seed"]
    gold = {k: np.asarray(v) for k, v in per_seed["gold"].items()}
    # The oracle is never beaten, and every policy beats nothing on average.
    assert np.all(gold["bon"] <= gold["oracle"] + 1e-12)
    assert np.all(gold["pbon"] <= gold["oracle"] + 1e-12)
    st = s["stats"]
    for j in range(2):
        assert st["random"]["mean"][j] < st["bon"]["mean"][j]
        assert st["random"]["mean"][j] < st["pbon"]["mean"][j]
        assert 0 <= st["changed"]["mean"][j] <= 1
    # Independent reference: Gaussian candidates, gold = θ*ᵀφ ~ N(0, ‖θ*‖²), so the
    # oracle's mean is ‖θ*‖·E[max of N standard normals]; the random choice's is 0.
    norm_theta = np.linalg.norm(
        bon.regime_design(_small_config(tmp_path).regimes.small).theta
    )
    for j, size in enumerate((3, 12)):
        expected = norm_theta * _expected_max_std_normal(size)
        assert abs(st["oracle"]["mean"][j] - expected) < 4 * st["oracle"]["se"][j]
        assert abs(st["random"]["mean"][j]) < 4 * st["random"]["se"][j]

    # Theorem 6: bound and suboptimality recomputed; the design's Gaussian candidates
    # give E_s φ(s, a*) = θ*/‖θ*‖·E[max of N standard normals] (the oracle's mean
    # feature vector, compared with its Monte Carlo estimate over 12 × 150 prompts).
    t6 = reg["theorem6"]
    assert s["num_used"] == 12
    _check_theorem6(t6, per_seed, 60, 0.05)
    theta = np.asarray(bon.regime_design(_small_config(tmp_path).regimes.small).theta)
    for j, size in enumerate((3, 12)):
        v = theta / np.linalg.norm(theta) * _expected_max_std_normal(size)
        np.testing.assert_allclose(t6["phi_star_mean"][j], v, atol=0.1)
    assert payload["theorem6"]["per_n"]["60"]["run"] == "small"
    assert "## Theorem 6" in printed and os.path.getsize(out / "theorem6.png") > 0


def test_bad_config_raises(tmp_path):
    config = _small_config(tmp_path)
    config.alpha = 1.5
    with pytest.raises(ValueError, match="alpha"):
        bon.run(config)
    config = _small_config(tmp_path)
    config.regimes = {"bad": bon_config._regime("heavy_tailed", 60, 1.5)}
    with pytest.raises(ValueError, match="feature_df"):
        bon.run(config)
    config = _small_config(tmp_path)
    config.theorem6.sample_sizes = (60,)  # taken by the regime "small"
    with pytest.raises(ValueError, match="theorem6.sample_sizes"):
        bon.run(config)


# ~100 s (three compiled runs)
def test_theorem6_sweep_over_n(tmp_path):
    """The sweep adds runs at more n; the bound falls like 1/√n and holds."""
    config = _small_config(tmp_path)
    config.num_candidates = (20, 128)
    config.num_seeds = 24
    config.chunk_size = 24
    config.theorem6.sample_sizes = (200, 800)
    payload = bon.run(config)
    per_n = payload["theorem6"]["per_n"]
    assert sorted(per_n, key=int) == ["60", "200", "800"]
    for n in (200, 800):
        run = payload["theorem6"]["sweep"][str(n)]
        _check_theorem6(per_n[str(n)], run["per_seed"], n, config.alpha)
        assert per_n[str(n)]["run"] == f"theorem6_n{n}"
    b200, b800 = (np.asarray(per_n[n]["theorem6_bound"]) for n in ("200", "800"))
    # Same design, so the same E_s φ(s, a*) up to Monte Carlo error: ratio ≈ 2.
    np.testing.assert_allclose(b200 / b800, 2.0, rtol=0.05)
    for entry in per_n.values():
        assert np.all(np.asarray(entry["suboptimality"]) < entry["theorem6_bound"])
