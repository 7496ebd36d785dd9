"""A script's stdout from a new Python: XLA reads XLA_FLAGS once, when its backend
starts, so a test of the flags (or of what they do) needs its own interpreter."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]  # the repository


def run(script: str, xla_flags: str, timeout: float = 240) -> str:
    """stdout of ``python -c script`` in the repository, on CPU, with ``xla_flags``;
    an ``AssertionError`` with the end of its stderr if it fails, ``TimeoutExpired``
    if it hangs."""
    env = {**os.environ, "XLA_FLAGS": xla_flags, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def python(args, timeout: float = 600) -> str:
    """stdout of ``python *args`` (a script, ``-m module``, ``-c code``) in the
    repository on CPU, with this process's environment; an ``AssertionError`` with the
    end of its output if it fails, ``TimeoutExpired`` if it hangs."""
    proc = subprocess.run(
        [sys.executable, *args],
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout
