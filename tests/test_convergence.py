"""Tests of the convergence study (experiments/convergence.py): Algorithm 1's rate."""

import json

import numpy as np
import pytest

from configs import convergence as convergence_config
from experiments import convergence


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
    payload = convergence.run(config)

    for name in ("results.json", "results.md", "error_vs_T.png", "error_vs_n.png"):
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


def test_iteration_matrix_is_the_jacobian_of_one_step():
    """iteration_matrix against a finite-difference Jacobian of one quadratic step."""
    rng = np.random.default_rng(0)
    d, k = 3, 2
    a = rng.normal(size=(d + k, d + k))
    h = a @ a.T + np.eye(d + k)
    lr_t, lr_g = 0.3, 0.2

    def step(x, order):  # one step on the quadratic ½ xᵀHx (gradient Hx)
        theta, gamma = x[:d], x[d:]
        new_theta = theta - lr_t * (h @ x)[:d]
        z = np.concatenate([new_theta, gamma]) if order == "gauss_seidel" else x
        new_gamma = gamma - lr_g * (h @ z)[d:]
        return np.concatenate([new_theta, new_gamma])

    for order in ("gauss_seidel", "jacobi"):
        jac = np.stack(
            [step(e, order) for e in np.eye(d + k)], axis=1
        )  # linear map: columns are images of the unit vectors
        np.testing.assert_allclose(
            convergence.iteration_matrix(h, d, lr_t, lr_g, order), jac, atol=1e-12
        )


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
    assert not any(tmp_path.iterdir())
