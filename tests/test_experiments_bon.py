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
    return config


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


def test_bad_config_raises(tmp_path):
    config = _small_config(tmp_path)
    config.alpha = 1.5
    with pytest.raises(ValueError, match="alpha"):
        bon.run(config)
    config = _small_config(tmp_path)
    config.regimes = {"bad": bon_config._regime("heavy_tailed", 60, 1.5)}
    with pytest.raises(ValueError, match="feature_df"):
        bon.run(config)
