"""Launching studies as one process or as two local processes, and comparing runs.

Shared by the multi-process tests (``test_multiprocess.py``,
``test_multiprocess_studies.py``): the README's "Scaling out" commands, i.e. the
study's command with ``hetrlhf.parallel.local_process_flags`` appended once per
process, in the environment of ``parallel.local_worker_env``.
"""

import json
import pathlib
import subprocess
import sys

import numpy as np

from hetrlhf import parallel

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the repository (tests/<part>/)

# Fields that name the run, not its numbers: the devices and the process count, the
# XLA flags (they hold the forced device count), the config (paths) and wall times.
RUN_FIELDS = ("devices", "num_processes", "xla_flags", "config", "elapsed_s")


def study_command(study: str, out: pathlib.Path, overrides) -> list[str]:
    """``python -m experiments.<study> --config=configs/<study>.py`` writing to out."""
    return [
        sys.executable,
        "-m",
        f"experiments.{study}",
        f"--config=configs/{study}.py",
        f"--config.results_dir={out}",
        *overrides,
    ]


def run_single(command: list[str], *, devices: int, timeout: float) -> None:
    """Runs ``command`` as one process with ``devices`` CPU devices; asserts success."""
    proc = subprocess.run(
        command,
        cwd=ROOT,
        env=parallel.local_worker_env(devices),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def start_pair(command: list[str]) -> list[subprocess.Popen]:
    """Starts ``command`` as two local processes of one CPU device each (gloo)."""
    port = parallel.free_local_port()
    return [
        subprocess.Popen(
            [*command, *parallel.local_process_flags(port, 2, i)],
            cwd=ROOT,
            env=parallel.local_worker_env(1),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]


def wait(procs: list[subprocess.Popen], timeout: float) -> list[str]:
    """Waits for ``procs`` (killing any left on a timeout); asserts each succeeded."""
    try:
        outs = [p.communicate(timeout=timeout)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for i, (p, text) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"process {i}:\n{text[-4000:]}"
    return outs


def numbers(path: pathlib.Path) -> dict:
    """results.json without the fields that name the run (``RUN_FIELDS``)."""
    payload = json.loads(path.read_text())
    for key in RUN_FIELDS:
        payload.pop(key, None)
    return payload


def assert_same(a, b, where: str = "") -> None:
    """Equal nested JSON values, floats bit for bit (NaN equals NaN)."""
    if isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and isinstance(b, float):
        assert a == b or (np.isnan(a) and np.isnan(b)), f"{where}: {a!r} != {b!r}"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"
