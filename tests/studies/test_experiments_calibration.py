"""Smoke test of the calibration study (experiments/calibration.py), its configs, and
its ensemble against the library's."""

import json
import os

import numpy as np
import pytest

import configs
from configs import calibration as calibration_config
from experiments import calibration as study


def _tiny_config(tmp_path):
    config = calibration_config.get_config()
    config.results_dir = str(tmp_path / "calibration")
    config.num_heads = 3
    config.ensemble.num_steps = 50
    config.sim.num_replicates = 4
    config.sim.chunk_size = 4
    config.sim.num_train = 150
    config.sim.num_test = 30
    return config


# ~20 s
def test_calibration_study_smoke(tmp_path, capsys):
    config = _tiny_config(tmp_path)
    payload = study.run(config)
    out = tmp_path / "calibration"
    for name in ("results.json", "results.md", "reliability.png", "coverage.png"):
        assert os.path.getsize(out / name) > 0, name
    with open(out / "results.json") as f:
        saved = json.load(f)
    assert {"config", "simulation", "precision"} <= set(saved) and "real" not in saved
    printed = capsys.readouterr().out
    assert "| fisher |" in printed

    sim = payload["simulation"]["sources"]
    assert set(sim) == {
        "fisher",
        "sandwich",
        "ensemble",
        "interval x1",
        "interval x0.5",
        "plug-in (no variance)",
    }
    for name, res in sim.items():
        assert 0.0 <= res["ece"] <= 1.0
        if "coverage" in res:
            cov = np.asarray(res["coverage"])
            assert cov.shape == (4,) and np.all(np.diff(cov) >= 0)
            assert np.all((cov >= 0) & (cov <= 1))
    # The honest judge covers about right, the half-width judge clearly less.
    assert sim["interval x0.5"]["coverage"][3] < sim["interval x1"]["coverage"][3] - 0.1
    assert sim["interval x0.5"]["sd_scale"] > 1.5


def test_calibration_config_presets_and_validation(tmp_path):
    config = calibration_config.get_config()
    config.preset = "full"
    assert (
        configs.apply_preset(config, calibration_config.PRESETS).sim.num_replicates
        == 1000
    )
    config = _tiny_config(tmp_path)
    config.levels = (0.5, 1.2)
    with pytest.raises(ValueError, match="config.levels"):
        study.run(config)
    config = _tiny_config(tmp_path)
    config.num_heads = 1
    with pytest.raises(ValueError, match="num_heads"):
        study.run(config)
