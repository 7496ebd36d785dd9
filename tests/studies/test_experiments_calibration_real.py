"""Smoke test of the real-data calibration study (experiments/calibration_real.py)."""

import json
import os

import numpy as np
import pytest

import configs
from configs import calibration_real as real_config
from experiments import calibration_real as study


def _tiny_config(tmp_path):
    config = real_config.get_config()
    config.results_dir = str(tmp_path / "calibration_real")
    config.num_heads = 3
    config.ensemble.num_steps = 50
    config.max_rows = 150
    config.hash_dim = 64
    config.num_components = 3
    config.num_splits = 2
    return config


def test_calibration_real_study_smoke(tmp_path, capsys):
    config = _tiny_config(tmp_path)
    payload = study.run(config)
    out = tmp_path / "calibration_real"
    for name in ("results.json", "results.md", "reliability.png", "coverage.png"):
        assert os.path.getsize(out / name) > 0, name
    with open(out / "results.json") as f:
        saved = json.load(f)
    assert {"config", "real", "precision"} <= set(saved)
    printed = capsys.readouterr().out
    assert "| fisher |" in printed and "Annotator disagreement" in printed
    real = payload["real"]
    assert set(real["sources"]) == {
        "fisher",
        "sandwich",
        "ensemble",
        "plug-in (no variance)",
    }
    assert np.all(np.isfinite(real["sources"]["fisher"]["coverage"]))
    rat = real["rationality"]
    assert rat["pandalm_h1"]["sigma"] == 1.0
    for r in rat.values():
        assert r["lower"] <= r["sigma"] <= r["upper"]
    ranks = sorted(v["rank"] for v in real["llm_ranking"].values())
    assert ranks == list(range(1, len(ranks) + 1))


def test_calibration_real_config_presets_and_validation(tmp_path):
    config = real_config.get_config()
    config.preset = "full"
    assert configs.apply_preset(config, real_config.PRESETS).num_splits == 50
    config = _tiny_config(tmp_path)
    config.levels = (0.5, 1.2)
    with pytest.raises(ValueError, match="config.levels"):
        study.run(config)


def test_sandwich_se_clips_rounding_zeros_and_rejects_negative_variances():
    from experiments.calibration_report import sandwich_se

    cov = np.diag([4.0, -3.5e-15, 0.25])
    np.testing.assert_array_equal(sandwich_se(cov), [2.0, 0.0, 0.5])
    with pytest.raises(ValueError, match="negative variance"):
        sandwich_se(np.diag([4.0, -0.1]))
