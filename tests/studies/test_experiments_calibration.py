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
    config.real.max_rows = 150
    config.real.hash_dim = 64
    config.real.num_components = 3
    config.real.num_splits = 2
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
    assert set(saved) == {"config", "simulation", "real"}
    printed = capsys.readouterr().out
    assert "| fisher |" in printed and "Annotator disagreement" in printed

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


def test_study_ensemble_is_the_library_ensemble():
    """The study's padded-data ensemble = hetrlhf.alignment.ensemble.train_ensemble (bootstrap)
    on the real rows; padding rows change nothing."""
    import jax

    from hetrlhf.alignment import ensemble
    from hetrlhf.data import simulate as hsim

    data = hsim.simulate(jax.random.key(0), hsim.get_design("default"), 60)
    test_dphi = jax.random.normal(jax.random.key(1), (7, 5))
    opts = ensemble.EnsembleOptions(num_heads=4, num_steps=40, bootstrap=True)
    key = jax.random.key(2)
    options = ensemble.EnsembleOptions(num_heads=4, num_steps=40, bootstrap=True)
    heads = ensemble.train_ensemble(key, data, options).params
    ref = ensemble.ensemble_reward(heads, test_dphi)
    got, _ = study._ensemble(key, data, 60, test_dphi, ens=opts)
    np.testing.assert_allclose(got.mean, ref.mean, rtol=1e-10)
    np.testing.assert_allclose(got.var, ref.var, rtol=1e-10)
    # Without the bootstrap, zero-Δφ padding rows leave the fit unchanged.
    opts = opts._replace(bootstrap=False)
    plain, _ = study._ensemble(key, data, 60, test_dphi, ens=opts)
    padded, _ = study._ensemble(key, study._pad(data, 75), 60, test_dphi, ens=opts)
    np.testing.assert_allclose(padded.mean, plain.mean, rtol=1e-8)
    np.testing.assert_allclose(padded.var, plain.var, rtol=1e-8)
