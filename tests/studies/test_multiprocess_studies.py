"""Every Monte Carlo study on two local processes equals one process, bit for bit.

Each case runs a study twice with a tiny config: once as one process with two CPU
devices, once as two processes with one device each (JAX's distributed runtime, gloo
collectives on CPU; the README's "Scaling out" command). Both runs have a two-device
mesh, so every chunk, shard and PRNG key is the same; the tables (results.md) and every
number of results.json must be equal (the fields that name the run -- devices, process
count, XLA flags, config -- are left out). Only process 0 writes.
"""

import json
import sys
import time

import numpy as np
import pytest

from tests.studies.launch import (
    assert_same,
    numbers,
    run_single,
    start_pair,
    study_command,
    wait,
)

# Tiny configs: each case (one 1-process and one 2-process run) takes well under a
# minute on an idle 2-core CPU.
STUDIES = {
    "ppo": [
        "--config.runs=('prompted:calibrated',)",
        "--config.sweep.runs=()",
        "--config.num_policies=4",
        "--config.num_reference_runs=4",
        "--config.num_prompts=16",
        "--config.ppo.num_updates=4",
        "--config.ppo.num_prompts=4",
        "--config.num_segments=2",
        "--config.checkpoint_every=1",
        "--config.calibration.grid_size=2",
        "--config.calibration.num_rounds=1",
        "--config.ensemble.num_steps=20",
        "--config.transformer.num_eval_samples=2",
    ],
    "bon": [
        "--config.num_seeds=4",
        "--config.chunk_size=4",
        "--config.num_prompts=8",
        "--config.num_candidates=(4,8)",
        "--config.theorem6.sample_sizes=()",
        "--config.theorem6.fisher_sample_size=2000",
        "--config.checkpoint=True",
    ],
    "small_sample": [
        "--config.sample_sizes=(200,)",
        "--config.num_replicates=4",
        "--config.chunk_size=4",
        "--config.num_bootstrap=8",
    ],
    "bayes_coverage": [
        "--config.sizes=(200,)",
        "--config.num_replicates=4",
        "--config.chunk_size=4",
        "--config.nuts.num_warmup=20",
        "--config.nuts.num_samples=20",
        "--config.nuts.num_chains=1",
        "--config.checkpoint=True",
    ],
    "calibration": [
        "--config.sim.num_replicates=4",
        "--config.sim.chunk_size=4",
        "--config.sim.num_train=200",
        "--config.sim.num_test=50",
        "--config.ensemble.num_steps=20",
    ],
    "ensemble": [
        "--config.real.enabled=False",
        "--config.num_steps=20",
        "--config.sim.num_train=200",
        "--config.sim.num_test=200",
    ],
    "reward_test": [
        "--config.sample_sizes=(200,)",
        "--config.num_replicates=4",
        "--config.chunk_size=4",
        "--config.vmap_size=2",
        "--config.gaps=(0.0,1.0)",
        "--config.fisher_sample_size=2000",
    ],
    "neural": [
        "--config.sizes=(300,)",
        "--config.kappas=(0.0,1.0)",
        "--config.num_replicates=4",
        "--config.chunk_size=4",
        "--config.num_test_pairs=50",
        "--config.net.hidden=(8,)",
        "--config.train.num_steps=100",
        "--config.bon.num_prompts=20",
        "--config.bon.num_candidates=5",
    ],
    "convergence": [
        "--config.sample_sizes=(250,)",
        "--config.num_replicates=4",
        "--config.chunk_size=4",
        "--config.vmap_size=2",
        "--config.num_steps=20",
        "--config.fisher_sample_size=2000",
        "--config.paper_start.num_starts=4",
        "--config.paper_start.checkpoints=(10,20)",
    ],
}


def _run_single(study, out):
    run_single(study_command(study, out, STUDIES[study]), devices=2, timeout=600)


def _run_pair(study, out):
    wait(start_pair(study_command(study, out, STUDIES[study])), 600)


@pytest.mark.parametrize("study", sorted(STUDIES))
def test_study_on_two_processes_equals_one_process(study, tmp_path):
    start = time.perf_counter()
    single, pair = tmp_path / "single", tmp_path / "pair"
    _run_single(study, single)
    _run_pair(study, pair)
    assert (pair / "results.md").read_text() == (single / "results.md").read_text()
    assert_same(numbers(pair / "results.json"), numbers(single / "results.json"))
    assert json.loads((pair / "results.json").read_text())["num_processes"] == 2
    print(f"{study}: {time.perf_counter() - start:.1f} s")


_PYTREE_SCRIPT = r"""
import json, sys
import jax, numpy as np
from hetrlhf import checkpoint, parallel
directory = sys.argv[1]
# The flags a study reads (parallel.local_process_flags), after the directory.
flags = dict(arg[2:].split("=", 1) for arg in sys.argv[2:])
parallel.initialize_distributed(
    flags["coordinator_address"], int(flags["num_processes"]), int(flags["process_id"])
)
# float32 JAX: float64 / int64 / 0-d / bool leaves must still arrive exactly.
mine = {
    "f64": np.array([np.pi, 1 / 3]) * (1 + jax.process_index()),
    "i64": np.array(2**40 + jax.process_index(), np.int64),
    "flag": np.array([True, False]) ^ bool(jax.process_index()),
}
got = parallel.broadcast_from_primary(mine)
mesh = parallel.replicate_mesh()
keys = parallel.shard_replicates(jax.random.split(jax.random.key(3), 4), mesh)
state = {"keys": keys, "x": parallel.shard_replicates(np.arange(4.0), mesh)}
assert checkpoint.latest_step(directory) is None
checkpoint.save_pytree(directory, 5, state)
step = checkpoint.latest_step(directory)
back = checkpoint.restore_pytree(directory, step, state)
print("RESULT " + json.dumps({
    "f64": got["f64"].tolist(), "f64_dtype": str(got["f64"].dtype),
    "i64": int(got["i64"]), "i64_shape": list(got["i64"].shape),
    "flag": got["flag"].tolist(), "step": step,
    "x": np.asarray(back["x"]).tolist(),
    "keys": np.asarray(jax.random.key_data(back["keys"])).tolist(),
    "keys_in": np.asarray(jax.random.key_data(jax.random.split(jax.random.key(3), 4))).tolist(),
}))
"""


def test_broadcast_and_pytree_checkpoint_on_two_processes(tmp_path):
    """Process 0's values reach both processes exactly; a state sharded over the
    processes is saved once (by process 0) and restored on both."""
    command = [sys.executable, "-c", _PYTREE_SCRIPT, str(tmp_path / "ckpt")]
    outs = wait(start_pair(command), 300)
    results = [
        json.loads(line.removeprefix("RESULT "))
        for out in outs
        for line in out.splitlines()
        if line.startswith("RESULT ")
    ]
    assert len(results) == 2, outs
    for r in results:
        assert r["f64"] == [np.pi, 1 / 3] and r["f64_dtype"] == "float64"
        assert r["i64"] == 2**40 and r["i64_shape"] == []
        assert r["flag"] == [True, False]
        assert r["step"] == 5
        assert r["x"] == [0.0, 1.0, 2.0, 3.0]
        assert r["keys"] == r["keys_in"]
    assert sorted(
        c.name for c in (tmp_path / "ckpt").iterdir() if c.name.isdigit()
    ) == ["5"]


def test_ppo_on_two_processes_resumes_from_its_checkpoints(tmp_path):
    """A second run of the same two-process command restores the saved train states
    (process 0 reads them, both processes continue) and gives the same numbers."""
    out = tmp_path / "ppo"
    _run_pair("ppo", out)
    first = numbers(out / "results.json")
    table = (out / "results.md").read_text()
    _run_pair("ppo", out)
    second = numbers(out / "results.json")
    (run,) = first["runs"]
    assert first["runs"][run]["resumed_from_segment"] == 0
    assert second["runs"][run]["resumed_from_segment"] == 2  # num_segments: all saved
    for payload in (first, second):
        payload["runs"][run].pop("resumed_from_segment")
    assert_same(second, first)
    assert (out / "results.md").read_text() == table
