"""The ``hetrlhf`` command: ``hetrlhf fit votes.csv --out report/``.

    hetrlhf fit FILE --out DIR [--features items|text|columns:COL,...]
        [--reference ITEM] [--rationality none|annotator|COL,...]
        [--cluster prompt|COL|none] [--intervals wald|sandwich|profile|bootstrap]
        [--alpha 0.05] [--holdout 0.2] [--seed 0] [--bootstrap-draws 1000]
        [--pool-rare N] [--components 8] [--skip-bad] [--quiet]
        [--compilation-cache DIR|none]

Reads the file (``hetrlhf.data.preferences``), fits and tests (``hetrlhf.own_data.analysis``), prints
the summary and writes report.md, report.html, report.json and the plots
(``hetrlhf.own_data.files``). Bad input exits with status 2 and a message naming the
file, line and field (or the cause); nothing is written then.

Precision: the command enables float64 (``--precision float32`` to keep JAX's default):
standard errors and intervals are exact to statsmodels' level in float64.

Compilation: the command keeps JAX's compiled programs in a persistent cache (JAX's
``jax_compilation_cache_dir``; default ``<hetrlhf cache>/jax``, i.e.
``~/.cache/hetrlhf/jax`` or ``$HETRLHF_CACHE_DIR/jax``; ``--compilation-cache none``
turns it off), so only the first run on data of a given size compiles; the fits pad
their rows to a few bucket sizes (``hetrlhf.btl.estimate.padded_size``), so files of
similar size share the cached programs. The library never turns the cache on by itself:
in Python, ``jax.config.update("jax_compilation_cache_dir", path)`` does it.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

__all__ = ["build_parser", "enable_compilation_cache", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hetrlhf",
        description="Reward and annotator rationality from your own preference data.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    fit = commands.add_parser(
        "fit",
        help="fit a preference file and write a report",
        description="One comparison per row (CSV, JSONL or Parquet): model_a, model_b "
        "(or prompt, response_a, response_b), winner in {a, b, tie} (or label in "
        "{0, 1}: 1 = b won), optional annotator and covariate columns.",
    )
    fit.add_argument("file", help="the .csv, .jsonl or .parquet file")
    fit.add_argument("--out", required=True, help="folder for the report")
    fit.add_argument(
        "--features",
        default=None,
        help="items (one-hot identity; default when model_a/model_b exist), text "
        "(sentence embeddings with the [text] extra, hashed n-grams otherwise), or "
        "columns:COL,... (numbers in COL_a and COL_b)",
    )
    fit.add_argument(
        "--reference", help="items: the item with reward 0 (default: last in order)"
    )
    fit.add_argument(
        "--rationality",
        default=None,
        help="none, annotator (σ per annotator; default when an annotator column "
        "exists), or covariate columns COL,... (numeric: standardised; text: one-hot)",
    )
    fit.add_argument(
        "--annotator-reference", help="annotator with σ = 1 (default: most comparisons)"
    )
    fit.add_argument(
        "--pool-rare",
        type=int,
        default=0,
        help="annotators with fewer comparisons share the reference's σ",
    )
    fit.add_argument(
        "--cluster",
        default=None,
        help="prompt, a column, or none: comparisons sharing a value are dependent "
        "(default: prompt for text data, none otherwise)",
    )
    fit.add_argument(
        "--intervals",
        default="wald",
        choices=("wald", "sandwich", "profile", "bootstrap"),
    )
    fit.add_argument("--alpha", type=float, default=0.05, help="1 − confidence level")
    fit.add_argument(
        "--holdout", type=float, default=None, help="share held out for evaluation"
    )
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--bootstrap-draws", type=int, default=1000)
    fit.add_argument(
        "--components", type=int, default=8, help="text: components of the features"
    )
    fit.add_argument("--cache-dir", help="text: embedding cache folder")
    fit.add_argument(
        "--skip-bad",
        action="store_true",
        help="drop unusable records (counted in the report) instead of stopping",
    )
    fit.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    fit.add_argument("--precision", default="float64", choices=("float64", "float32"))
    fit.add_argument(
        "--compilation-cache",
        default=None,
        help="folder of JAX's persistent compilation cache (default: the hetrlhf "
        "cache's jax/ folder), or none",
    )
    return parser


def enable_compilation_cache(path: str | None = None) -> str:
    """Turns on JAX's persistent compilation cache in ``path`` (a process setting).

    Every compiled program is written there and read back by later processes instead
    of being compiled again — also the small ones of eager calls (a report compiles
    about 70: on ``examples/arena_votes.csv`` the report then takes 1.3 s instead of
    3.2 s when only programs that took 0.2 s or more are kept; JAX's default keeps
    those of 1 s or more). For applications (the command, benchmarks); the library
    never calls it.

    Args:
      path: the folder; None: ``jax/`` in ``features.default_cache_dir()``.

    Returns:
      The folder used.
    """
    import jax

    from hetrlhf.data.features import default_cache_dir

    path = os.path.join(default_cache_dir(), "jax") if path is None else path
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return path


def main(argv: list[str] | None = None) -> int:
    """Runs the command; returns the exit status (0 ok, 2 bad input or fit)."""
    args = build_parser().parse_args(argv)
    import jax

    if args.precision == "float64":
        jax.config.update("jax_enable_x64", True)
    if args.compilation_cache != "none":
        enable_compilation_cache(args.compilation_cache)
    from hetrlhf.own_data import analysis
    from hetrlhf.own_data import files as report_files

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            rep = analysis.report(
                args.file,
                features=args.features,
                rationality=args.rationality,
                cluster=args.cluster,
                reference=args.reference,
                annotator_reference=args.annotator_reference,
                pool_rare=args.pool_rare,
                num_components=args.components,
                skip_bad=args.skip_bad,
                cache_dir=args.cache_dir,
                intervals=args.intervals,
                alpha=args.alpha,
                holdout=args.holdout,
                seed=args.seed,
                num_bootstrap=args.bootstrap_draws,
                progress=not args.quiet,
            )
    except (ValueError, FileNotFoundError) as exc:
        print(f"hetrlhf fit: error: {exc}", file=sys.stderr)
        return 2
    paths = report_files.write_report(rep, args.out)
    if not args.quiet:
        print(report_files.summary(rep))
        print(f"\nwrote {', '.join(sorted(paths.values()))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
