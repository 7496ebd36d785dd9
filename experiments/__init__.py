"""Studies: ``configs/<study>.py`` (ml_collections) + ``experiments/<study>.py``.

The shared study plumbing lives here, once:

* ``launch(run, config_file)`` — the command line: ``--config`` (absl
  ``config_flags``, ``--config.field=value`` overrides), the float precision the
  config asks for (``config.precision``: "float64" or "float32"; set here, by the
  command, before any array exists — the library never flips it), JAX's persistent
  compilation cache (``--compilation_cache DIR|none``; on by default), then
  ``run(config)``;
* ``prepare(config, presets)`` — resolves the preset and checks the precision;
* ``replicates(config, fn, keys, *shared, part=...)`` — a pure ``key -> outputs``
  function over many keys: jitted (on a CPU at LLVM -O2: ``compiler_options``),
  vmapped in narrow batches, split over all devices, run in chunks that are
  checkpointed with orbax and resumed after a kill; numpy outputs (``shared``
  arrays are traced arguments common to all replicates);
* ``write(config, payload, table, figures)`` — results.json (with the precision and
  the devices recorded), results.md (printed) and the PNGs, by process 0 only.

Several processes (``--coordinator_address=HOST:PORT --num_processes=N
--process_id=I``, or detected on SLURM / Open MPI / a TPU pod): every process runs the
same study on one global mesh (``hetrlhf.parallel.initialize_distributed``), each
computing its devices' slice of every chunk; the outputs are gathered to every process,
process 0 keeps the checkpoints and writes the results.

Every study module has ``run(config) -> dict`` (does the work, writes
``results/<study>/``, returns the payload) and ends with

    if __name__ == "__main__":
        experiments.launch(run, "configs/<study>.py")

so that ``python -m experiments.<study> --config configs/<study>.py --config.x=...``
works, while tests can import several study modules in one process (absl flags are
global: ``--config`` is defined only when a study runs as a command). A study with a
second, separate experiment keeps it in a module of its own that the study imports
and whose numbers it stores (``convergence_starts`` for ``convergence``,
``bon_theorem6`` for ``bon``); such a module has no ``run``, and neither has a
module of a study's tables and figures (``real_data_report``, ``calibration_report``).
A second experiment with its own command is a study of its own that imports the first
one's helpers (``calibration_real`` imports ``calibration``).

Monte Carlo summaries (rates, bands, means, z-scores) come from
``hetrlhf.montecarlo``, tables and coverage figures from ``hetrlhf.reporting``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jaxlib
import numpy as np

import configs
from hetrlhf import checkpoint, parallel, reporting

# XLA flags of the studies (XLA reads XLA_FLAGS when its backend starts, i.e. at the
# first computation, after this import); each is set unless the user set that flag:
# * README "Known issues": jax 0.10's XLA:CPU YNNPACK fusion computes float32 row-wise
#   weighted sums broadcast back over their rows wrong beyond the first 128 KiB, so the
#   fusion is off;
# * README "Speed of the coverage study": XLA:CPU's older loop emitters instead of its
#   MLIR fusion emitters compile the studies' programs sooner at the same run time, the
#   numbers the same up to round-off (CPU only; other backends ignore the flag);
# * README "Known issues": XLA:CPU's memory-minimising (DFS) instruction scheduler
#   instead of its concurrency-optimised one: jaxlib 0.10's batched LAPACK kernels
#   (Cholesky, eigh, LU, triangular solve) split a large batch over XLA's thread
#   pool and block a pool thread until it is done, so two such calls that XLA runs
#   at once deadlock a 2-thread pool (a 2-core machine); with this scheduler the
#   programs that hung finish (tests/harness/test_lapack_deadlock.py).
STUDY_XLA_FLAGS = (
    "--xla_cpu_use_fusion_emitters=false",
    "--xla_cpu_enable_concurrency_optimized_scheduler=false",
) + (
    ("--xla_cpu_experimental_ynn_fusion_type=",)
    if jaxlib.__version__.startswith("0.10.")
    else ()
)


# XLA options of the studies' replicate programs (``replicates``) on a CPU: LLVM's
# -O2 instead of XLA:CPU's default -O3 compiles them in about two thirds of the time
# at the same run time; the coverage study's float64 numbers stay bit for bit the
# same, other studies' move at round-off (README "Speed of the coverage study").
# Per program, not in XLA_FLAGS: the vmapped PPO program ran
# slower at -O2, and on an accelerator the flag would reach its own compiler too.
STUDY_CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 2}


def compiler_options() -> dict | None:
    """The replicate programs' XLA options: ``STUDY_CPU_COMPILER_OPTIONS`` where JAX
    runs on a CPU, None (XLA's defaults) on an accelerator."""
    if jax.default_backend() != "cpu":
        return None
    return dict(STUDY_CPU_COMPILER_OPTIONS)


def _with_study_flags(flags: str) -> str:
    for flag in STUDY_XLA_FLAGS:
        if flag.split("=")[0] not in flags:
            flags = f"{flags} {flag}".strip()
    return flags


os.environ["XLA_FLAGS"] = _with_study_flags(os.environ.get("XLA_FLAGS", ""))

__all__ = [
    "PRECISIONS",
    "STUDY_CPU_COMPILER_OPTIONS",
    "STUDY_XLA_FLAGS",
    "compiler_options",
    "enable_compilation_cache",
    "fingerprint",
    "launch",
    "prepare",
    "replicates",
    "write",
]

PRECISIONS = ("float64", "float32")

# Config fields that change how a study runs, not what it computes: left out of the
# fingerprint that checkpoints are matched against.
RUNTIME_FIELDS = ("results_dir", "progress", "overwrite", "checkpoint", "shard")


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(
            f"config.precision must be one of {PRECISIONS}, got {precision!r}"
        )


def launch(run: Callable, config_file: str, *, argv: list[str] | None = None) -> None:
    """Defines ``--config`` and runs ``run(config)`` under ``absl.app``.

    The command sets JAX's float precision from ``config.precision`` before any
    array is made (float64 for statsmodels-level inference on a CPU, float32 for the
    policy studies and accelerators): the one place a study's precision is chosen.

    Args:
      run: the study's ``run(config) -> dict``.
      config_file: default config file (e.g. ``"configs/coverage.py"``).
      argv: command line (default ``sys.argv``).
    """
    from absl import app, flags
    from absl import logging as absl_logging
    from ml_collections import config_flags

    config = config_flags.DEFINE_config_file(
        "config", config_file, "Study configuration (ml_collections).", lock_config=True
    )
    coordinator = flags.DEFINE_string(
        "coordinator_address",
        None,
        "HOST:PORT of process 0, to run the study on several processes (with "
        "--num_processes and --process_id; on SLURM, Open MPI or a TPU pod they are "
        "detected and may be left out).",
    )
    num_processes = flags.DEFINE_integer(
        "num_processes", None, "Number of processes of a multi-process run."
    )
    process_id = flags.DEFINE_integer(
        "process_id", None, "This process's index, 0 .. num_processes - 1."
    )
    cache = flags.DEFINE_string(
        "compilation_cache",
        None,
        "Folder of JAX's persistent compilation cache (default: "
        "$JAX_COMPILATION_CACHE_DIR, else ~/.cache/hetrlhf/jax), or 'none' to turn "
        "it off. A second run of a study then loads its compiled programs instead of "
        "compiling them.",
    )

    def main(args):
        if len(args) > 1:
            raise app.UsageError(f"unexpected arguments: {args[1:]}")
        _check_precision(config.value.precision)
        jax.config.update("jax_enable_x64", config.value.precision == "float64")
        enable_compilation_cache(cache.value)
        parallel.initialize_distributed(
            coordinator.value, num_processes.value, process_id.value
        )
        absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs saves at INFO
        run(config.value)

    app.run(main, argv=argv)


def enable_compilation_cache(path: str | None = None) -> str | None:
    """Turns on JAX's persistent compilation cache for this process (the command's
    ``--compilation_cache``); the library never does.

    Every compiled program (however quick to compile) is stored in ``path`` and
    loaded by later runs instead of compiled again.

    Args:
      path: the folder; None: ``$JAX_COMPILATION_CACHE_DIR`` if set, else
        ``~/.cache/hetrlhf/jax`` (``$HETRLHF_CACHE_DIR/jax``); "none": leave the
        cache off.

    Returns:
      The folder used, or None when off.
    """
    if path is not None and path.lower() == "none":
        return None
    from hetrlhf.cli import enable_compilation_cache as enable

    path = path or os.environ.get("JAX_COMPILATION_CACHE_DIR") or None
    path = enable(path)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    return path


def prepare(config, presets: Mapping[str, Mapping[str, Any]]):
    """The config with its preset applied; checks that JAX runs in its precision.

    Raises:
      ValueError: unknown preset or precision, or a precision JAX is not set to (a
        study called from Python: set ``jax_enable_x64`` to match, or change
        ``config.precision``).
    """
    config = configs.apply_preset(config, presets)
    _check_precision(config.precision)
    x64 = bool(jax.config.jax_enable_x64)
    if x64 != (config.precision == "float64"):
        raise ValueError(
            f"config.precision={config.precision!r} but jax_enable_x64 is {x64}: run "
            "the study as a command (it sets the precision), or call "
            "jax.config.update('jax_enable_x64', "
            f"{config.precision == 'float64'}) before creating arrays"
        )
    return config


def fingerprint(config, **extra) -> dict:
    """The config's fields that determine the numbers (+ ``extra``), JSON-able."""
    fields = {k: v for k, v in config.to_dict().items() if k not in RUNTIME_FIELDS}
    return {**fields, **extra}


@functools.lru_cache(maxsize=32)
def _program(fn: Callable, vmap_size: int | None) -> Callable:
    """``jax.jit`` of ``fn(key, *shared)`` vmapped over keys (shared: not mapped).

    Memoised: calls with the same ``fn`` (e.g. at several values of a shared
    argument) reuse one compiled program.
    """

    def batch(keys, *shared):
        return parallel.batched_vmap(lambda key: fn(key, *shared), vmap_size)(keys)

    return jax.jit(batch)


def replicates(
    config,
    fn: Callable[..., Any],
    keys: jax.Array,
    *shared,
    part: str,
    vmap_size: int | None = None,
    chunk_size: int | None = None,
    desc: str | None = None,
    xla_defaults: bool = False,
):
    """Runs a pure ``key -> pytree`` function over ``keys``; numpy outputs [R, ...].

    ``jax.jit`` of ``fn`` vmapped in batches of ``vmap_size`` (``config.vmap_size``
    if the config has one; 0 or None: one vmap per chunk), compiled with
    ``compiler_options()``, ``config.chunk_size`` keys
    per chunk, split over all devices when ``config.shard`` (default True) and there
    are several, each finished chunk saved under ``<results_dir>/checkpoints/<part>``
    when ``config.checkpoint`` (a rerun of the same command resumes;
    ``config.overwrite`` starts afresh).

    Args:
      config: a resolved study config (``chunk_size``, ``checkpoint``, ``overwrite``,
        ``progress``, ``results_dir``; optional ``shard``, ``vmap_size``).
      fn: one replicate, ``fn(key, *shared) -> pytree`` of arrays (pure).
      keys: [R] PRNG keys.
      *shared: arrays common to every replicate, passed to ``fn`` as traced arguments
        (their values share one compiled program; name them in ``part``).
      part: name of this set of replicates (checkpoint folder, fingerprint).
      vmap_size: overrides ``config.vmap_size``.
      chunk_size: overrides ``config.chunk_size``.
      desc: progress-bar label (default: ``part``).
      xla_defaults: compile with XLA's default options instead of
        ``compiler_options()`` (a study whose numbers follow the round-off of its
        program, e.g. MCMC chains, keeps them across this choice).

    A config without ``checkpoint`` / ``overwrite`` / ``progress`` fields runs
    without checkpoints, afresh, with a progress bar.
    """
    if vmap_size is None:
        vmap_size = config.get("vmap_size", 0)
    if chunk_size is None:
        chunk_size = config.chunk_size
    directory = (
        os.path.join(config.results_dir, "checkpoints", part)
        if config.get("checkpoint", False)
        else None
    )
    # One device: no mesh. A one-device mesh splits nothing, and its shard_map
    # changes XLA:CPU's schedule: in the neural study two batched LAPACK calls
    # (Cholesky, eigh) then ran at once and deadlocked the 2-thread pool of a
    # 2-core machine (jaxlib 0.10.2, ParallelBatchMap).
    shard = config.get("shard", True) and jax.device_count() > 1
    mesh = parallel.replicate_mesh() if shard else None
    out = checkpoint.run_chunked(
        _program(fn, vmap_size or None),
        keys,
        chunk_size=chunk_size,
        directory=directory,
        fingerprint=fingerprint(config, part=part),
        desc=desc or part,
        mesh=mesh,
        overwrite=config.get("overwrite", False),
        progress=config.get("progress", True),
        shared=shared,
        compiler_options=None if xla_defaults else compiler_options(),
    )
    return jax.tree.map(np.asarray, out)


def write(
    config, payload: Mapping[str, Any], table: str, figures=None
) -> dict[str, str]:
    """Writes results.json (+ config, precision, devices), results.md and PNGs.

    Only process 0 writes (and prints); the others close the figures and return {}.
    """
    if not parallel.is_primary():
        import matplotlib.pyplot as plt

        for fig in (figures or {}).values():
            plt.close(fig)
        return {}
    payload = {
        "config": config.to_dict(),
        "precision": config.precision,
        "devices": [str(d) for d in jax.devices()],
        "num_processes": jax.process_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        **payload,
    }
    return reporting.write_results(config.results_dir, payload, table, figures)
