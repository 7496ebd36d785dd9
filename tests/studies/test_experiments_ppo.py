"""Smoke tests of the ppo study with a shrunken real config (incl. checkpoint resume)."""

import json
import os
import subprocess
import sys

import numpy as np

from configs import ppo as ppo_config
from experiments import ppo as ppo_study
from tests.conftest import run_study


def _small_config(tmp_path, **overrides):
    config = ppo_config.get_config()
    config.results_dir = str(tmp_path / "ppo")
    config.num_policies = 4
    config.num_reference_runs = 5
    config.num_prompts = 6
    config.transformer.embed_dim = 8
    config.transformer.num_eval_samples = 2
    config.ensemble.num_comparisons = 60
    config.ensemble.num_steps = 50
    config.ppo.num_updates = 2
    config.ppo.num_prompts = 4
    config.ppo.group_size = 2
    config.ppo.num_minibatches = 1
    config.calibration.grid_size = 2
    config.calibration.num_rounds = 1
    config.num_segments = 2
    config.checkpoint_every = 1
    for k, v in overrides.items():
        node = config
        *parents, leaf = k.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = v
    return config


def test_ppo_study_writes_every_table_and_key_and_resumes(tmp_path, capsys):
    config = _small_config(tmp_path)
    payload = run_study(ppo_study, config)
    out = tmp_path / "ppo"
    for name in (
        "results.json",
        "results.md",
        "gold_histograms.png",
        "kl_histograms.png",
        "learning_curves.png",
        "sweep_variance.png",
    ):
        assert os.path.getsize(out / name) > 0, name
    text = capsys.readouterr().out
    for heading in ("Table 1", "Table 2", "Table 3", "Table 4", "KL(π ‖ π_ref)"):
        assert heading in text
    with open(out / "results.json") as f:
        saved = json.load(f)
    assert set(saved["runs"]) == set(config.runs)  # (JSON keys are sorted)
    sources = {r["source"] for r in saved["runs"].values()}
    assert sources == {"ensemble", "prompted", "per_policy_noise"}
    for run in saved["runs"].values():
        for arm in ("vanilla", "variance_aware"):
            assert len(run[arm]["gold"]) == 4 and len(run[arm]["kl"]) == 4
            assert np.all(np.asarray(run[arm]["kl"]) >= 0)
        assert len(run["reference"]) == 5
        t = run["tests"]
        np.testing.assert_allclose(
            t["f_stat"],
            np.var(run["vanilla"]["gold"], ddof=1)
            / np.var(run["variance_aware"]["gold"], ddof=1),
        )
        for k in ("f_p", "welch_t", "welch_p", "risk_p"):
            assert np.isfinite(t[k]), k
        assert set(t["risk"]) == {"vanilla", "variance_aware"}
        below = np.mean(np.asarray(run["vanilla"]["gold"]) < np.mean(run["reference"]))
        assert t["risk"]["vanilla"] == below
    # The adaptive run's β moves; the calibrated runs record their calibration.
    adaptive = saved["runs"]["prompted:adaptive"]
    assert np.ptp(adaptive["vanilla"]["curves"]["beta"]) > 0
    assert saved["runs"]["ensemble:calibrated"]["calibration"]["rounds"]
    sweep = payload["runs"]["prompted:calibrated"]["sweep"]
    assert [s["exponent"] for s in sweep] == [0.0, 1.0]
    assert sweep[0]["cv_var"] < 1e-6 and sweep[1]["cv_var"] > 0.1

    # A second run restores the finished checkpoints and reproduces the numbers.
    again = run_study(ppo_study, config)
    run = again["runs"]["ensemble:calibrated"]
    assert run["resumed_from_segment"] == 2
    np.testing.assert_allclose(
        run["vanilla"]["gold"],
        payload["runs"]["ensemble:calibrated"]["vanilla"]["gold"],
    )


def test_ppo_study_paired_keys_on_candidates(tmp_path):
    config = _small_config(
        tmp_path,
        policy="candidates",
        paired_keys=True,
        checkpoint_every=0,
        runs=("prompted:fixed",),
        **{"sweep.runs": ()},
    )
    payload = run_study(ppo_study, config)
    tests = payload["runs"]["prompted:fixed"]["tests"]
    for k in ("pitman_morgan_p", "paired_t_p", "mcnemar_p"):
        assert 0.0 <= tests[k] <= 1.0
    assert "Paired arms" in (tmp_path / "ppo" / "results.md").read_text()


_SHARDED = """
import jax
jax.config.update("jax_num_cpu_devices", 2)
import json, pathlib, sys
import numpy as np
from tests.studies.test_experiments_ppo import _small_config
from experiments import ppo as ppo_study
# After the imports: tests.conftest (imported above) turns float64 on for the unit tests.
jax.config.update("jax_enable_x64", False)  # the study's float32
assert jax.device_count() == 2
out = {}
for shard in (False, True):
    config = _small_config(
        pathlib.Path(sys.argv[1]) / str(shard),
        policy="candidates",
        shard=shard,
        checkpoint_every=0,
        runs=("ensemble:fixed",),
        **{"sweep.runs": ()},
    )
    res = ppo_study.run(config)["runs"]["ensemble:fixed"]
    out[str(shard)] = [
        float(x) for arm in ("vanilla", "variance_aware") for x in res[arm]["gold"]
    ]
print(json.dumps(out))
"""


def test_ppo_study_sharded_over_two_devices_matches_one(tmp_path):
    """config.shard on 2 CPU devices trains the same policies as one vmap (subprocess)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [sys.executable, "-c", _SHARDED, str(tmp_path)],
        check=False,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["True"]) == 8
    np.testing.assert_allclose(out["True"], out["False"], rtol=1e-5, atol=1e-6)
