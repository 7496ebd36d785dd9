"""Smoke tests of the bayes_coverage and neural studies with shrunken real configs."""

import json
import os

import numpy as np
import pytest

import configs
from configs import bayes_coverage as bayes_config
from configs import neural as neural_config
from experiments import bayes_coverage, neural


# ~20 s
def test_bayes_coverage_study_writes_sane_results(tmp_path, capsys):
    config = bayes_config.get_config()
    config.results_dir = str(tmp_path / "bayes")
    config.design.theta = (1.0, -0.5)
    config.design.gamma = (0.5,)
    config.sizes = (150,)
    config.num_replicates = 4
    config.chunk_size = 4
    config.nuts.num_warmup = 100
    config.nuts.num_samples = 100
    payload = bayes_coverage.run(config)
    out = tmp_path / "bayes"
    for name in ("results.json", "results.md", "coverage.png"):
        assert os.path.getsize(out / name) > 0, name
    with open(out / "results.json") as f:
        assert set(json.load(f)) == {
            "config",
            "devices",
            "names",
            "num_processes",
            "precision",
            "results",
            "xla_flags",
        }
    assert "| 150 | γ1 |" in capsys.readouterr().out
    s = payload["results"]["150"]
    assert s["num_used"] == 4 and s["max_r_hat"] < 1.2
    for c in ("θ1", "θ2", "γ1"):
        v = s["coords"][c]
        for key in ("wald_coverage", "credible_coverage", "frac_disagree"):
            assert 0.0 <= v[key] <= 1.0
        assert 0.7 < v["mean_sd_over_se"] < 1.4  # posterior sd ≈ Wald se
        assert v["mean_abs_mean_gap_over_se"] < 0.6
        assert v["credible_length"] > 0 and v["wald_length"] > 0


def test_bayes_coverage_config_presets_and_validation(tmp_path):
    config = bayes_config.get_config()
    config.preset = "full"
    assert configs.apply_preset(config, bayes_config.PRESETS).num_replicates == 500
    config = bayes_config.get_config()
    config.alpha = 1.5
    with pytest.raises(ValueError, match="config.alpha"):
        bayes_coverage.run(config)


# ~20 s
def test_neural_study_writes_sane_results(tmp_path, capsys):
    config = neural_config.get_config()
    config.results_dir = str(tmp_path / "neural")
    config.sizes = (300,)
    config.kappas = (0.0, 1.0)
    config.num_replicates = 2
    config.num_test_pairs = 50
    config.net.hidden = (8,)
    config.train.num_steps = 100
    config.bon.num_prompts = 20
    config.bon.num_candidates = 5
    payload = neural.run(config)
    out = tmp_path / "neural"
    for name in ("results.json", "results.md", "coverage.png"):
        assert os.path.getsize(out / name) > 0, name
    assert "| neural-split |" in capsys.readouterr().out
    for key, s in payload["results"].items():
        assert s["frac_loss_decreased"] == 1.0, key
        assert s["frac_linear_converged"] == 1.0, key
        for m in ("neural", "neural-split", "linear"):
            iv = s["intervals"][m]
            assert 0.0 <= iv["coverage"][0] <= 1.0
            assert iv["width"][0] > 0 and np.isfinite(iv["mean_z2"][0])
            sel = s["selection"][m]
            assert sel["bon"][0] <= s["oracle"][0] + 1e-9
    # κ = 0: the linear model is exact; its intervals are not wildly off.
    assert (
        payload["results"]["kappa=0.0,n=300"]["intervals"]["linear"]["coverage"][0]
        > 0.7
    )


def test_neural_config_validation(tmp_path):
    # (The nonlinear truth r* is tested in tests/data/test_simulate.py.)
    config = neural_config.get_config()
    config.design.theta = (1.0, -0.5)
    with pytest.raises(ValueError, match="d >= 3"):
        neural.run(config)
