"""Smoke test of the bandit study with a shrunken real config."""

import json
import os

import numpy as np
import pytest

import configs
from configs import bandit as bandit_config
from experiments import bandit
from tests.conftest import run_study


def _small_config(tmp_path):
    config = bandit_config.get_config()
    config.results_dir = str(tmp_path / "bandit")
    config.example.num_draws = 20_000
    config.heterogeneity.num_instances = 60
    config.heterogeneity.num_draws = 30
    config.heterogeneity.num_arms = 4
    config.heterogeneity.num_bins = 10
    return config


def test_bandit_study_writes_sane_results(tmp_path, capsys):
    config = _small_config(tmp_path)
    payload = run_study(bandit, config)

    out = tmp_path / "bandit"
    for name in (
        "results.json",
        "results.md",
        "example.png",
        "heterogeneity_improvement.png",
        "heterogeneity_risk.png",
    ):
        assert os.path.getsize(out / name) > 0, name
    with open(out / "results.json") as f:
        saved = json.load(f)
    assert set(saved) == {"config", "example", "heterogeneity"}
    assert "| simplex | variance-aware |" in capsys.readouterr().out

    for setting in ("simplex", "unconstrained"):
        ex = payload["example"][setting]
        va, v = ex["variance-aware"], ex["vanilla"]
        assert 0 < va["risk_closed_form"] < v["risk_closed_form"] < 1
        for e in (va, v):  # Monte Carlo agrees with the closed form
            se = np.sqrt(e["risk_closed_form"] * (1 - e["risk_closed_form"]) / 20_000)
            assert abs(e["risk_monte_carlo"] - e["risk_closed_form"]) < 5 * se
    for name in ("Gibbs KL (vanilla)", "Sharpe tilt", "variance-penalised"):
        assert 0 <= payload["example"]["kl"][name]["risk_monte_carlo"] <= 1

    het = payload["heterogeneity"]
    assert list(het) == ["low", "high"]
    for level in het.values():
        risk = np.asarray(level["risk"])
        assert risk.shape == (60, 2) and np.all((risk >= 0) & (risk <= 1))
        assert np.all(risk[:, 1] <= risk[:, 0] + 1e-12)  # variance-aware never worse
        emp = np.asarray(level["risk_empirical_per_instance"])
        assert emp.shape == (60, 2)
        # Pooled empirical risk vs the mean closed-form risk.
        for j, name in enumerate(("vanilla", "variance-aware")):
            s = level[name]
            assert (
                abs(s["risk_empirical"] - s["mean_risk_closed_form"])
                < 5 * s["risk_empirical_se"] + 0.01
            )
            assert np.isfinite(s["mean_improvement_over_sqrt_eps"])
    # The gain of the variance-aware step grows with the heterogeneity.
    gain = {k: v["mean_risk_reduction"][0] for k, v in het.items()}
    assert gain["high"] > gain["low"] >= 0


def test_bandit_config_presets_and_validation(tmp_path):
    config = bandit_config.get_config()
    config.preset = "full"
    resolved = configs.apply_preset(config, bandit_config.PRESETS)
    assert resolved.heterogeneity.num_instances == 20_000
    config = _small_config(tmp_path)
    config.eps = 0.1  # √ε > 1/K: π₀ + δ could leave the simplex
    with pytest.raises(ValueError, match="config.eps"):
        run_study(bandit, config)
