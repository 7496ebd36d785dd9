"""Smoke test of the ensemble study with a shrunken real config (simulated + real data)."""

import json
import os

import numpy as np

from configs import ensemble as ensemble_config
from experiments import ensemble as ensemble_study
from tests.conftest import run_study


def test_ensemble_study_writes_sane_results(tmp_path, capsys):
    config = ensemble_config.get_config()
    config.results_dir = str(tmp_path / "ensemble")
    config.num_steps = 100
    config.sim.num_train = 150
    config.sim.num_test = 300
    config.real.data_dir = os.path.join(
        os.path.dirname(__file__), "..", "..", "..", "shared", "data"
    )
    config.real.datasets = ("tulu1",)
    config.real.hash_dim = 128
    config.real.num_components = 4
    payload = run_study(ensemble_study, config)

    out = tmp_path / "ensemble"
    for name in ("results.json", "results.md", "variance_histograms.png"):
        assert os.path.getsize(out / name) > 0, name
    assert "chosen − rejected" in capsys.readouterr().out
    with open(out / "results.json") as f:
        saved = json.load(f)
    assert set(saved["results"]) == {"simulated", "real:tulu1"}
    for res in payload["results"].values():
        assert np.all(np.asarray(res["response_var"]) >= 0)
        assert np.all(np.asarray(res["diff_var"]) >= 0)
        assert 0.5 < res["accuracy"] <= 1.0
    sim = payload["results"]["simulated"]
    assert sim["response_var"].shape == (600,) and sim["diff_var"].shape == (300,)
    # Bootstrap heads disagree, but not wildly, on the simulated design.
    assert 0 < sim["response_summary"]["mean"] < 1.0
