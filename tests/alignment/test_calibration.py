"""Calibration metrics against hand computations, and the study's smoke test."""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, special, stats

import configs
import hetrlhf as hr
from configs import calibration as calibration_config
from experiments import calibration as study
from hetrlhf.alignment import calibration


def test_ece_and_reliability_by_hand():
    prob = jnp.array([0.05, 0.15, 0.12, 0.55, 0.58, 0.95, 1.0, 0.5])
    y = jnp.array([0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    # 10 bins: [0, .1): {.05}; [.1, .2): {.15, .12}; [.5, .6): {.55, .58, .5};
    # [.9, 1.0]: {.95, 1.0} (1.0 falls in the last, closed bin).
    gaps = [
        (1, abs(0.0 - 0.05)),
        (2, abs(0.5 - 0.135)),
        (3, abs(2 / 3 - (0.55 + 0.58 + 0.5) / 3)),
        (2, abs(1.0 - 0.975)),
    ]
    hand = sum(c * g for c, g in gaps) / 8
    np.testing.assert_allclose(
        calibration.expected_calibration_error(prob, y, 10), hand, rtol=1e-12
    )
    rel = calibration.reliability_curve(prob, y, 10)
    np.testing.assert_array_equal(rel.count, [1, 2, 0, 0, 0, 3, 0, 0, 0, 2])
    np.testing.assert_allclose(rel.mean_label[5], 2 / 3)
    # A perfectly calibrated toy case: in every bin the frequency equals the prob.
    p2 = jnp.array([0.25] * 4 + [0.75] * 4)
    y2 = jnp.array([1, 0, 0, 0, 1, 1, 1, 0], float)
    assert float(calibration.expected_calibration_error(p2, y2, 10)) == 0.0


def test_coverage_and_scale_by_hand():
    est = hr.RewardEstimate(jnp.zeros(4), jnp.array([1.0, 1.0, 4.0, 0.25]))
    truth = jnp.array([0.5, 1.5, 2.5, 0.4])  # |z| = 0.5, 1.5, 1.25, 0.8
    cov = calibration.interval_coverage(est, truth, jnp.array([0.5, 0.8, 0.9, 0.95]))
    # z thresholds 0.674, 1.2816, 1.645, 1.96
    np.testing.assert_allclose(cov, [0.25, 0.75, 1.0, 1.0])
    s = calibration.sd_scale(est, truth)
    np.testing.assert_allclose(
        s, np.median([0.5, 1.5, 1.25, 0.8]) / stats.norm.ppf(0.75)
    )
    # Monte Carlo: a calibrated Gaussian source covers at the nominal level.
    rng = np.random.default_rng(0)
    sd = rng.uniform(0.1, 3.0, 20000)
    mean = rng.normal(size=20000)
    truth = mean + sd * rng.normal(size=20000)
    est = hr.RewardEstimate(jnp.asarray(mean), jnp.asarray(sd**2))
    cov = calibration.interval_coverage(est, jnp.asarray(truth), jnp.array([0.5, 0.9]))
    np.testing.assert_allclose(cov, [0.5, 0.9], atol=0.012)
    np.testing.assert_allclose(
        calibration.sd_scale(est, jnp.asarray(truth)), 1.0, atol=0.03
    )
    with pytest.raises(TypeError, match="RewardEstimate"):
        calibration.interval_coverage((mean, sd), truth, jnp.array([0.5]))


def test_predictive_probability_vs_quadrature():
    for mu, v, sigma in [
        (0.7, 0.0, 1.3),
        (0.7, 0.5, 1.3),
        (-1.2, 2.0, 0.8),
        (2.0, 4.0, -0.5),
    ]:
        got = float(
            calibration.predictive_probability(
                hr.RewardEstimate(jnp.array(mu), jnp.array(v)), jnp.array(sigma)
            )
        )
        if v == 0:
            np.testing.assert_allclose(got, special.expit(sigma * mu), rtol=1e-12)
            continue
        exact = integrate.quad(
            lambda t, m=mu, w=v, s=sigma: (
                special.expit(s * t) * stats.norm.pdf(t, m, np.sqrt(w))
            ),
            -np.inf,
            np.inf,
        )[0]
        assert abs(got - exact) < 0.01, (mu, v, sigma, got, exact)


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


@pytest.mark.slow  # ~20 s; run by .ci/run and `pytest -m slow`
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
