"""A command's stdout from a new Python: XLA reads XLA_FLAGS once, when its backend
starts, so a test of the flags (or of what they do) needs its own interpreter; so do
the scripts and commands the tests run as a user would."""

import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]  # the repository


def python(args, timeout: float = 600, env: dict | None = None) -> str:
    """stdout of ``python *args`` (a script, ``-m module``, ``-c code``) in the
    repository on CPU, with this process's environment updated by ``env``; an
    ``AssertionError`` with the end of its output if it fails, ``TimeoutExpired`` if
    it hangs."""
    proc = subprocess.run(
        [sys.executable, *args],
        env={**os.environ, "JAX_PLATFORMS": "cpu", **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout


def run(script: str, xla_flags: str, timeout: float = 240) -> str:
    """stdout of ``python -c script`` (``python``) with ``xla_flags`` as XLA_FLAGS."""
    return python(["-c", script], timeout, env={"XLA_FLAGS": xla_flags})
