"""Studies: ``configs/<study>.py`` (ml_collections) + ``experiments/<study>.py``.

Every study module has ``run(config) -> dict`` (does the work, writes
``results/<study>/``, returns the payload) and ends with

    if __name__ == "__main__":
        experiments.launch(run, "configs/<study>.py")

so that ``python -m experiments.<study> --config configs/<study>.py --config.x=...``
works, while tests can import several study modules in one process (absl flags are
global: ``--config`` is defined only when a study runs as a command).
"""

from __future__ import annotations

from collections.abc import Callable


def launch(
    run: Callable, config_file: str, *, x64: bool = True, argv: list[str] | None = None
) -> None:
    """Defines ``--config`` and runs ``run(config)`` under ``absl.app``.

    Args:
      run: the study's ``run(config) -> dict``.
      config_file: default config file (e.g. ``"configs/coverage.py"``).
      x64: enable float64 before any array is made (studies that report standard
        errors on a CPU need it; the library itself never flips the flag).
      argv: command line (default ``sys.argv``).
    """
    import jax
    from absl import app
    from absl import logging as absl_logging
    from ml_collections import config_flags

    config = config_flags.DEFINE_config_file(
        "config", config_file, "Study configuration (ml_collections).", lock_config=True
    )

    def main(args):
        if len(args) > 1:
            raise app.UsageError(f"unexpected arguments: {args[1:]}")
        if x64:
            jax.config.update("jax_enable_x64", True)
        absl_logging.set_verbosity(absl_logging.WARNING)  # orbax logs saves at INFO
        run(config.value)

    app.run(main, argv=argv)
