"""Studies on two local processes (JAX's distributed runtime, gloo on CPU).

The same command as the README's "Scaling out": each process runs the study with
``--coordinator_address --num_processes --process_id``. Checked: the tables equal a
single-process run with the same number of devices bit for bit (and its numbers), only
process 0 writes, and a run killed after its first checkpointed chunk resumes without
recomputing the finished chunks.
"""

import json
import signal
import time

from tests.studies.launch import (
    assert_same,
    numbers,
    run_single,
    start_pair,
    study_command,
    wait,
)


def _command(out, overrides):
    return study_command("coverage", out, ["--config.progress=False", *overrides])


COVERAGE = [
    "--config.num_replicates=40",
    "--config.sample_sizes=(200,)",
    "--config.chunk_size=20",
    "--config.vmap_size=10",
]


def test_coverage_on_two_processes_equals_one_process(tmp_path):
    single = tmp_path / "single"
    run_single(_command(single, COVERAGE), devices=2, timeout=900)
    pair = tmp_path / "pair"
    wait(start_pair(_command(pair, COVERAGE)), 900)
    assert (pair / "results.md").read_text() == (single / "results.md").read_text()
    assert_same(numbers(pair / "results.json"), numbers(single / "results.json"))
    assert json.loads((pair / "results.json").read_text())["num_processes"] == 2


def test_killed_two_process_run_resumes_without_recomputing(tmp_path):
    out = tmp_path / "run"
    # Four chunks long enough (n = 600) to kill the run between them.
    overrides = [
        "--config.num_replicates=400",
        "--config.sample_sizes=(600,)",
        "--config.chunk_size=100",
        "--config.vmap_size=25",
    ]
    procs = start_pair(_command(out, overrides))
    chunks = out / "checkpoints" / "n600"
    deadline = time.time() + 600
    while time.time() < deadline and not (chunks / "0").exists():
        time.sleep(0.05)
    assert (chunks / "0").exists(), "no chunk was checkpointed"
    for p in procs:  # orbax renames a finished chunk into place: "0" is complete
        p.send_signal(signal.SIGKILL)
        p.wait()
    finished = {
        c.name: c.stat().st_mtime_ns for c in chunks.iterdir() if c.name.isdigit()
    }
    assert finished and "3" not in finished
    wait(start_pair(_command(out, overrides)), 900)
    for name, mtime in finished.items():
        assert (chunks / name).stat().st_mtime_ns == mtime, f"chunk {name} recomputed"
    assert {c.name for c in chunks.iterdir() if c.name.isdigit()} == {
        "0",
        "1",
        "2",
        "3",
    }
    full = tmp_path / "uninterrupted"
    wait(start_pair(_command(full, overrides)), 900)
    assert (out / "results.md").read_text() == (full / "results.md").read_text()
