"""Studies on two local processes (JAX's distributed runtime, gloo on CPU).

The same command as the README's "Scaling out": each process runs the study with
``--coordinator_address --num_processes --process_id``. Checked: the tables equal a
single-process run with the same number of devices bit for bit (and its numbers), only
process 0 writes, and a run killed after its first checkpointed chunk resumes without
recomputing the finished chunks.
"""

import json
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the repository (tests/<part>/)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(devices: int = 1) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    flags = env.get("XLA_FLAGS", "").replace(
        "--xla_force_host_platform_device_count", "--ignored"
    )
    env["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={devices}"
    return env


def _command(study: str, out: pathlib.Path, overrides: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        f"experiments.{study}",
        f"--config=configs/{study}.py",
        f"--config.results_dir={out}",
        "--config.progress=False",
        *overrides,
    ]


def _start_pair(study, out, overrides):
    port = _free_port()
    return [
        subprocess.Popen(
            [
                *_command(study, out, overrides),
                f"--coordinator_address=127.0.0.1:{port}",
                "--num_processes=2",
                f"--process_id={i}",
            ],
            cwd=ROOT,
            env=_env(1),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]


def _wait(procs, timeout=900):
    outs = [p.communicate(timeout=timeout)[0] for p in procs]
    for p, text in zip(procs, outs):
        assert p.returncode == 0, text[-4000:]
    return outs


def _numbers(path: pathlib.Path):
    """results.json without the fields that name the run (devices, processes, XLA flags
    -- they hold the forced device count -- and paths)."""
    payload = json.loads(path.read_text())
    for key in ("devices", "num_processes", "xla_flags", "config"):
        payload.pop(key, None)
    return payload


def _assert_same(a, b, where=""):
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == b or (np.isnan(a) and np.isnan(b)), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


COVERAGE = [
    "--config.num_replicates=40",
    "--config.sample_sizes=(200,)",
    "--config.chunk_size=20",
    "--config.vmap_size=10",
]


def test_coverage_on_two_processes_equals_one_process(tmp_path):
    single = tmp_path / "single"
    proc = subprocess.run(
        _command("coverage", single, COVERAGE),
        cwd=ROOT,
        env=_env(2),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    pair = tmp_path / "pair"
    _wait(_start_pair("coverage", pair, COVERAGE))
    assert (pair / "results.md").read_text() == (single / "results.md").read_text()
    _assert_same(_numbers(pair / "results.json"), _numbers(single / "results.json"))
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
    procs = _start_pair("coverage", out, overrides)
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
    _wait(_start_pair("coverage", out, overrides))
    for name, mtime in finished.items():
        assert (chunks / name).stat().st_mtime_ns == mtime, f"chunk {name} recomputed"
    assert {c.name for c in chunks.iterdir() if c.name.isdigit()} == {
        "0",
        "1",
        "2",
        "3",
    }
    full = tmp_path / "uninterrupted"
    _wait(_start_pair("coverage", full, overrides))
    assert (out / "results.md").read_text() == (full / "results.md").read_text()
