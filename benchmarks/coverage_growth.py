"""Benchmark: how the coverage study's cost grows with n and with the replicates.

The coverage study's replicate program (``experiments.coverage.make_replicate``:
simulate → ``hr.fit`` → Wald intervals → covered?, ``lax.map`` over vmapped batches
of ``--batch_size``, over all CPU devices) is compiled for each point and run
(best of ``--repeats``):

* against n ∈ ``--sizes`` (default 200 … 20,000) at ``--replicates_for_n`` replicates;
* against the number of replicates ∈ ``--replicate_counts`` (default 10² … 10⁴;
  add 100000 for 10⁵) at n = ``--n``.

Reported: seconds per replicate at each point (wall-clock and process CPU), and the
slopes of log(seconds) against log(n) and log(replicates) fitted by least squares —
1 is linear growth (a replicate's Newton passes are O(n·(d + k)²); a run over R
replicates is R independent programs' worth of work). Results:
``results/benchmarks/coverage_growth.{json,md,png}``.

Run:
  python benchmarks/coverage_growth.py
  python benchmarks/coverage_growth.py --replicate_counts 100 1000 10000 100000
  python benchmarks/coverage_growth.py --devices 2 --precision float32
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[200, 600, 2000, 6000, 20000]
    )
    parser.add_argument("--replicates_for_n", type=int, default=200)
    parser.add_argument(
        "--replicate_counts", type=int, nargs="+", default=[100, 1000, 10000]
    )
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--design", default="default")
    parser.add_argument("--batch_size", type=int, default=25)
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument(
        "--precision", default="float64", choices=("float32", "float64")
    )
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "results" / "benchmarks"))
    args = parser.parse_args(argv)
    if min(args.sizes) < 10 or min(args.replicate_counts) < 1:
        parser.error("--sizes must be >= 10 and --replicate_counts >= 1")
    if len(set(args.sizes)) < 2 or len(set(args.replicate_counts)) < 2:
        parser.error(
            "--sizes and --replicate_counts need two different values each (a slope)"
        )
    if args.devices < 1 or args.repeats < 1 or args.batch_size < 0:
        parser.error("--devices, --repeats must be >= 1, --batch_size >= 0")
    return args


def slope(x, y) -> float:
    """Least-squares slope of log(y) against log(x)."""
    import numpy as np

    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def main(argv=None) -> dict:
    args = parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    if args.devices > 1:
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "")
            + f" --xla_force_host_platform_device_count={args.devices}"
        )
    sys.path.insert(0, str(ROOT))
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", args.precision == "float64")
    import experiments  # the XLA flags and the compiler options the studies set
    from experiments.coverage import make_replicate
    from hetrlhf import parallel
    from hetrlhf.data import simulate as sim

    design = sim.get_design(args.design)
    mesh = parallel.replicate_mesh() if jax.device_count() > 1 else None
    # The studies' own per-program options (LLVM -O2 on a CPU; none elsewhere).
    options = experiments.compiler_options()

    def measure(n, r):
        r = -(-r // jax.device_count()) * jax.device_count()
        keys = jax.random.split(jax.random.key(args.seed), r)
        keys = parallel.shard_replicates(keys, mesh) if mesh is not None else keys
        fn = make_replicate(
            design, n, alpha=0.05, information="observed", method="newton"
        )
        batch = jax.jit(parallel.batched_vmap(fn, args.batch_size or None))
        if mesh is not None:
            batch = jax.jit(parallel.sharded_map(batch, mesh))
        start = time.perf_counter()
        exe = batch.lower(keys).compile(compiler_options=options)
        compile_s = time.perf_counter() - start
        jax.block_until_ready(exe(keys))
        best = (float("inf"), float("inf"))
        for _ in range(args.repeats):
            wall, cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(exe(keys))
            best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
        row = {
            "n": n,
            "replicates": r,
            "seconds": best[0],
            "cpu_seconds": best[1],
            "seconds_per_replicate": best[0] / r,
            "cpu_per_replicate": best[1] / r,
            "compile_seconds": compile_s,
        }
        print(
            f"n = {n:6d}, R = {r:6d}: {best[0]:8.3f} s ({1e3 * best[0] / r:.3f} ms "
            f"per replicate; CPU {1e3 * best[1] / r:.3f} ms); compile {compile_s:.1f} s",
            flush=True,
        )
        return row

    print(
        f"coverage_growth: {jax.device_count()} device(s), {args.precision}, batch "
        f"{args.batch_size}, design '{args.design}'; load "
        + " ".join(f"{x:.1f}" for x in os.getloadavg()),
        flush=True,
    )
    by_n = [measure(n, args.replicates_for_n) for n in args.sizes]
    by_r = [measure(args.n, r) for r in args.replicate_counts]
    slopes = {
        "seconds_vs_n": slope(args.sizes, [x["seconds"] for x in by_n]),
        "cpu_seconds_vs_n": slope(args.sizes, [x["cpu_seconds"] for x in by_n]),
        "seconds_vs_replicates": slope(
            [x["replicates"] for x in by_r], [x["seconds"] for x in by_r]
        ),
        "cpu_seconds_vs_replicates": slope(
            [x["replicates"] for x in by_r], [x["cpu_seconds"] for x in by_r]
        ),
    }

    def table(rows, key):
        lines = [
            f"| {key} | seconds | ms per replicate | CPU ms per replicate | compile s |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {x[key]} | {x['seconds']:.3f} | {1e3 * x['seconds_per_replicate']:.3f} "
            f"| {1e3 * x['cpu_per_replicate']:.3f} | {x['compile_seconds']:.1f} |"
            for x in rows
        ]
        return "\n".join(lines)

    text = (
        f"# Coverage study: cost against n and against the replicates\n\n"
        f"{jax.device_count()} CPU device(s), {args.precision}, vmapped batches of "
        f"{args.batch_size}, best of {args.repeats} runs, compiler options "
        f"{options or 'XLA defaults'}; load at the end "
        + " ".join(f"{x:.1f}" for x in os.getloadavg())
        + f".\n\nAgainst n ({args.replicates_for_n} replicates): log-log slope of the "
        f"run time {slopes['seconds_vs_n']:.2f} (CPU {slopes['cpu_seconds_vs_n']:.2f})"
        f"\n\n{table(by_n, 'n')}\n\nAgainst the replicates (n = {args.n}): log-log "
        f"slope {slopes['seconds_vs_replicates']:.2f} (CPU "
        f"{slopes['cpu_seconds_vs_replicates']:.2f})\n\n"
        f"{table(by_r, 'replicates')}\n"
    )
    print("\n" + text)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "args": vars(args),
        "compiler_options": options,
        "by_n": by_n,
        "by_replicates": by_r,
        **slopes,
    }
    (out / "coverage_growth.json").write_text(json.dumps(payload, indent=1))
    (out / "coverage_growth.md").write_text(text)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, rows, key, label in (
        (axes[0], by_n, "n", f"n ({args.replicates_for_n} replicates)"),
        (axes[1], by_r, "replicates", f"replicates (n = {args.n})"),
    ):
        x = np.array([row[key] for row in rows], float)
        for field, name in (
            ("seconds_per_replicate", "wall"),
            ("cpu_per_replicate", "CPU"),
        ):
            ax.loglog(x, [row[field] for row in rows], "o-", label=name)
        ax.set(xlabel=label, ylabel="seconds per replicate")
        ax.legend()
    axes[0].set_title(f"slope of total time vs n: {slopes['seconds_vs_n']:.2f}")
    axes[1].set_title(
        f"slope of total time vs R: {slopes['seconds_vs_replicates']:.2f}"
    )
    fig.tight_layout()
    fig.savefig(out / "coverage_growth.png", dpi=120)
    print(f"wrote {out}/coverage_growth.{{json,md,png}}")
    return payload


if __name__ == "__main__":
    main()
