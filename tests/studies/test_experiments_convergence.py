"""Tests of the convergence study (experiments/convergence.py): Algorithm 1's rate."""

import json

import numpy as np
import pytest

from configs import convergence as convergence_config
from experiments import convergence


# ~70 s on a busy 2-core CPU (two programs)
def test_smoke_rate_matches_linearised_map(tmp_path):
    config = convergence_config.get_config()
    config.sample_sizes = (300,)
    config.num_replicates = 8
    config.chunk_size = 8
    config.vmap_size = 4
    config.num_steps = 120
    config.fisher_sample_size = 50_000
    config.results_dir = str(tmp_path)
    config.progress = False
    config.checkpoint = False
    config.paper_start.sample_size = 200
    config.paper_start.num_starts = 6
    config.paper_start.checkpoints = (5, 60, 400)
    payload = convergence.run(config)

    for name in (
        "results.json",
        "results.md",
        "error_vs_T.png",
        "error_vs_n.png",
        "paper_start.png",
    ):
        assert (tmp_path / name).stat().st_size > 0, name
    assert json.loads((tmp_path / "results.json").read_text())["per_n"]["300"]
    s = payload["per_n"]["300"]
    assert s["num_replicates"] == 8 and s["num_mle_not_converged"] == 0
    # The observed per-step contraction of ‖β_t − β̂‖ equals the spectral radius of
    # the Jacobian of one Algorithm-1 step at β̂ (numpy eigenvalues of a matrix built
    # from the Hessian, independent of the iteration itself).
    assert abs(s["rate_empirical_median"] - s["rho_sample_median"]) < 0.01
    assert 0.8 < s["rate_empirical_median"] < 1.0
    rho = payload["summary"]["rho_population"]
    assert abs(s["rho_sample_median"] - rho) < 0.03  # n = 300 vs the population
    # The error to the MLE falls by orders of magnitude over T = 120 steps.
    curve = np.asarray(payload["curves"]["300"]["geomean_error_mle"])
    assert curve.shape == (121,)
    assert curve[-1] < 1e-2 * curve[0]
    assert np.all(np.diff(np.log(curve[20:])) < 0)
    # Statistical error of the MLE: RMSE within a factor 2 of sqrt(tr I⁻¹ / n).
    assert 0.5 < s["rmse_mle"] / s["rmse_theory"] < 2.0
    assert np.isnan(payload["summary"]["fitted_log_log_slope_rmse_mle"])  # one n

    # Algorithm 1 from U(−1, 1) starts: the paper's tiny constant cannot arrive in 400
    # steps (its linearised rate predicts millions); our step η = 1 arrives from every
    # start, and the default solver from the same starts reaches the same MLE.
    ps = payload["paper_start"]
    _check_paper_start(ps, config.paper_start.reach_tol)
    tiny, _, ours = ps["per_rate"].values()
    assert tiny["learning_rate"] == 5e-5 and ours["learning_rate"] == 1.0
    assert np.all(np.asarray(tiny["reached_mle"]) == 0)
    assert tiny["predicted_iterations_median"] > 1e5
    assert ps["reached_mle"] == 1.0 and ps["mirror_basin"] == 0.0
    assert ours["iterations_to_mle_max"] <= 400
    assert ps["default_solver"]["from_start_reached_mle"] == 1.0


def test_bad_config_fields_raise(tmp_path):
    for field, value, match in [
        ("num_steps", 0, "num_steps"),
        ("init_radius", 0.0, "init_radius"),
        ("lr_theta", -1.0, "lr_theta"),
        ("order", "random", "order"),
        ("sample_sizes", (1,), "sample_sizes"),
    ]:
        config = convergence_config.get_config()
        config.results_dir = str(tmp_path)
        config[field] = value
        with pytest.raises(ValueError, match=match):
            convergence.run(config)
    for field, value, match in [
        ("checkpoints", (100, 100), "checkpoints"),
        ("checkpoints", (0, 10), "checkpoints"),
        ("learning_rates", (5e-5, -1.0, 1.0), "learning_rates"),
        ("rate_labels", ("ours",), "rate_labels"),
        ("num_starts", 1, "num_starts"),
        ("reach_tol", 0.0, "reach_tol"),
    ]:
        config = convergence_config.get_config()
        config.results_dir = str(tmp_path)
        config.paper_start[field] = value
        with pytest.raises(ValueError, match=f"paper_start.{match}"):
            convergence.run(config)
    assert not any(tmp_path.iterdir())


def _check_paper_start(ps, reach_tol):
    """paper_start's shares and iterations recomputed from its per-start runs."""
    runs = {k: np.asarray(v) for k, v in ps["runs"].items()}
    ok = runs["mle_converged"].astype(bool)
    assert ok.all() and ps["num_starts"] == ok.size
    reached = runs["error"] <= reach_tol  # [R, L, C]
    mirror = runs["mirror"].astype(bool)
    for j, rate in enumerate(ps["per_rate"].values()):
        np.testing.assert_allclose(rate["reached_mle"], reached[:, j].mean(0))
        np.testing.assert_allclose(rate["mirror_side"], mirror[:, j].mean(0))
        total = np.add(rate["reached_mle"], rate["mirror_side"]) + rate["between"]
        np.testing.assert_allclose(total, 1.0)
        hits = runs["hit_step"][:, j]
        assert rate["share_hit"] == np.mean(hits >= 0)
        # A run counted as at the MLE at a checkpoint has hit it by then.
        for c, t in enumerate(rate["checkpoints"]):
            assert np.all((hits[reached[:, j, c]] >= 1) & (hits[reached[:, j, c]] <= t))
    assert ps["reached_mle"] == reached[:, -1, -1].mean()
    assert ps["mirror_basin"] == mirror[:, -1, -1].mean()
    # Starting from the MLE's side of the loss is the start's own property at t = 0.
    assert ps["start_mirror_side"] == runs["start_mirror"].mean()
