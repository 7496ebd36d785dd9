"""Smoke tests of the ppo study with a shrunken real config (incl. checkpoint resume)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from configs import ppo as ppo_config
from experiments import ppo as ppo_study


def _small_config(tmp_path, **overrides):
    config = ppo_config.get_config()
    config.results_dir = str(tmp_path / "ppo")
    config.num_policies = 6
    config.num_prompts = 8
    config.num_candidates = 4
    config.ensemble.num_comparisons = 60
    config.ensemble.num_steps = 50
    config.ppo.num_updates = 4
    config.ppo.num_prompts = 4
    config.ppo.group_size = 2
    config.ppo.num_minibatches = 1
    config.num_segments = 2
    config.checkpoint_every = 1
    config.sweep.exponents = (0.0, 1.0)
    for k, v in overrides.items():
        node = config
        *parents, leaf = k.split(".")
        for p in parents:
            node = node[p]
        node[leaf] = v
    return config


def test_ppo_study_writes_tables_and_resumes(tmp_path, capsys):
    config = _small_config(tmp_path)
    payload = ppo_study.run(config)
    out = tmp_path / "ppo"
    for name in (
        "results.json",
        "results.md",
        "gold_histogram.png",
        "learning_curves.png",
        "sweep_variance.png",
    ):
        assert os.path.getsize(out / name) > 0, name
    text = capsys.readouterr().out
    for heading in ("Table 1", "Table 2", "Table 3", "Table 4"):
        assert heading in text
    with open(out / "results.json") as f:
        saved = json.load(f)
    main = saved["main"]
    assert len(main["gold_vanilla"]) == 6 and len(main["gold_variance_aware"]) == 6
    assert main["f_critical"] > 1.0 and 0.0 <= main["risk_vanilla"] <= 1.0
    np.testing.assert_allclose(
        main["f_stat"], main["var_vanilla"] / main["var_variance_aware"]
    )
    # s = 0: all variances equal, so both methods are the same run.
    s0 = payload["sweep"][0]
    assert s0["exponent"] == 0.0 and s0["var_cv"] < 1e-6
    np.testing.assert_array_equal(
        s0["result"]["gold_vanilla"], s0["result"]["gold_variance_aware"]
    )

    # A second run restores the finished checkpoints and reproduces the numbers.
    again = ppo_study.run(config)
    assert again["main"]["resumed_from_segment"] == 2
    np.testing.assert_allclose(
        again["main"]["gold_vanilla"], payload["main"]["gold_vanilla"]
    )


@pytest.mark.slow
def test_ppo_study_interval_rewards(tmp_path):
    config = _small_config(
        tmp_path,
        reward_source="interval",
        checkpoint_every=0,
        **{"sweep.enabled": False},
    )
    payload = ppo_study.run(config)
    assert np.all(np.isfinite(payload["main"]["gold_vanilla"]))
    assert payload["sweep"] == []
    assert os.path.getsize(tmp_path / "ppo" / "gold_histogram.png") > 0


_SHARDED = """
import jax
jax.config.update("jax_num_cpu_devices", 2)
jax.config.update("jax_enable_x64", True)
import json, pathlib, sys
import numpy as np
sys.path.insert(0, "tests")
from test_experiments_ppo import _small_config
from experiments import ppo as ppo_study
assert jax.device_count() == 2
out = {}
for shard in (False, True):
    config = _small_config(
        pathlib.Path(sys.argv[1]) / str(shard),
        shard=shard,
        checkpoint_every=0,
        **{"sweep.enabled": False},
    )
    res = ppo_study.run(config)["main"]
    out[str(shard)] = res["gold_vanilla"].tolist() + res["gold_variance_aware"].tolist()
print(json.dumps(out))
"""


@pytest.mark.slow
def test_ppo_study_sharded_over_two_devices_matches_one(tmp_path):
    """config.shard on 2 CPU devices trains the same policies as one vmap (subprocess)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(
        [sys.executable, "-c", _SHARDED, str(tmp_path)],
        check=False,
        cwd=root,
        env={**os.environ, "PYTHONPATH": root, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(out["True"]) == 12
    np.testing.assert_allclose(out["True"], out["False"], rtol=1e-6, atol=1e-8)
