"""float32 vs float64 on the same replicates: coverage, agreement, failures (CPU).

The precision contract (README "Precision") rests on these numbers. For each n, R
datasets of our design (DESIGN.md §6) are simulated once in float64; each is fitted
(``hr.fit``, default Newton solver) with Wald intervals (``hr.confidence_intervals``,
observed information, condition number reported) twice: on the float64 data under
``jax_enable_x64``, and on the same data rounded to float32 without it. Reported per
precision and n: the coverage of every coordinate of (θ, γ) against the exact 95%
binomial band of a 1 − α rate over R replicates, the fraction of fits not converged
and of information matrices beyond the dtype's condition-number guard
(``hetrlhf.validation.default_max_condition``: 0.01/ε); between the precisions, on the
replicates where both converged: max and 99th percentile of |θ̂₃₂ − θ̂₆₄|/se₆₄ and
|se₃₂ − se₆₄|/se₆₄ over replicates and coordinates.

    python benchmarks/precision.py                      # n ∈ {200, 400, 600}, R = 1000
    python benchmarks/precision.py --replicates 200     # quicker

Writes results/benchmarks/precision.json and .md. The float64 flag is switched per
block with ``jax.enable_x64`` (a benchmark, not the library).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import jax
import numpy as np

# The studies' XLA flags (README "Known issues": XLA:CPU's YNNPACK fusion miscompiles
# float32 reductions), set before any computation.
import experiments  # noqa: F401
import hetrlhf as hr
from hetrlhf import montecarlo as mc
from hetrlhf.data import simulate as sim
from hetrlhf.types import ravel_params
from hetrlhf.validation import default_max_condition


def _fit_and_intervals(alpha):
    def one(data):
        res = hr.fit(data)
        ci = hr.confidence_intervals(res.params, data, alpha)
        return {
            "estimate": ravel_params(ci.estimate),
            "se": ravel_params(ci.se),
            "lower": ravel_params(ci.lower),
            "upper": ravel_params(ci.upper),
            "converged": res.converged,
            "condition_number": ci.condition_number,
        }

    return jax.jit(jax.vmap(one))


def _simulate(design, n, replicates, seed):
    with jax.enable_x64(True):
        keys = jax.random.split(jax.random.key(seed), replicates)
        data = jax.jit(jax.vmap(lambda k: sim.simulate(k, design, n)))(keys)
        return jax.tree.map(np.asarray, data)


def _run(data, x64: bool, alpha: float, chunk: int):
    """Fits + intervals of every replicate in ``data`` (numpy, float64)."""
    dtype = np.float64 if x64 else np.float32
    with jax.enable_x64(x64):
        fn = _fit_and_intervals(alpha)
        cast = jax.tree.map(lambda x: x.astype(dtype), data)
        num = cast.y.shape[0]
        start = time.perf_counter()
        parts = []
        for i in range(0, num, chunk):
            part = jax.tree.map(lambda x, i=i: x[i : i + chunk], cast)
            parts.append(jax.tree.map(np.asarray, fn(part)))
        seconds = time.perf_counter() - start
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out["seconds"] = seconds
    return out


def _summary(out, truth, alpha, dtype):
    covered = (out["lower"] <= truth) & (truth <= out["upper"])
    converged = out["converged"].astype(bool)
    band = mc.binomial_band(1 - alpha, int(converged.sum()))
    coverage = covered[converged].mean(0)
    guard = default_max_condition(dtype)
    cond = out["condition_number"]
    return {
        "coverage": coverage.tolist(),
        "band": list(band),
        "inside_band": bool(((coverage >= band[0]) & (coverage <= band[1])).all()),
        "num_outside_band": int(((coverage < band[0]) | (coverage > band[1])).sum()),
        "fraction_not_converged": float(1 - converged.mean()),
        "fraction_ill_conditioned": float(np.mean(~(cond <= guard))),
        "max_condition_number": float(np.nanmax(cond)),
        "condition_guard": guard,
        "seconds": out["seconds"],
    }


def _agreement(o32, o64, truth):
    """Differences between the precisions on the replicates where both converged."""
    both = o32["converged"].astype(bool) & o64["converged"].astype(bool)
    se = o64["se"][both]
    d_est = np.abs(o32["estimate"][both] - o64["estimate"][both]) / se
    d_se = np.abs(o32["se"][both] - se) / se
    cov32 = (o32["lower"] <= truth) & (truth <= o32["upper"])
    cov64 = (o64["lower"] <= truth) & (truth <= o64["upper"])
    return {
        "num_both_converged": int(both.sum()),
        "max_abs_dest_over_se": float(np.max(d_est)),
        "p99_abs_dest_over_se": float(np.quantile(d_est, 0.99)),
        "max_abs_dse_over_se": float(np.max(d_se)),
        "p99_abs_dse_over_se": float(np.quantile(d_se, 0.99)),
        "num_coverage_differs": int((cov32 != cov64)[both].sum()),
    }


def _table(results, names) -> str:
    lines = [
        (
            "| n | precision | coverage per coordinate | 95% band | all inside | "
            "not converged | ill-conditioned | max cond | s (with compile) |"
        ),
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, r in results["sizes"].items():
        for p in ("float64", "float32"):
            s = r[p]
            cov = " ".join(f"{c:.3f}" for c in s["coverage"])
            lines.append(
                f"| {n} | {p} | {cov} | [{s['band'][0]:.3f}, {s['band'][1]:.3f}] | "
                f"{'yes' if s['inside_band'] else 'NO'} | "
                f"{s['fraction_not_converged']:.4f} | "
                f"{s['fraction_ill_conditioned']:.4f} | "
                f"{s['max_condition_number']:.3g} | {s['seconds']:.1f} |"
            )
    lines += [
        "",
        f"Coordinates: {', '.join(names)}.",
        "",
        (
            "| n | replicates (both converged) | max abs(Δ estimate)/se | p99 | "
            "max abs(Δ se)/se | p99 | intervals' coverage differs |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for n, r in results["sizes"].items():
        a = r["agreement"]
        lines.append(
            f"| {n} | {a['num_both_converged']} | {a['max_abs_dest_over_se']:.2e} | "
            f"{a['p99_abs_dest_over_se']:.2e} | {a['max_abs_dse_over_se']:.2e} | "
            f"{a['p99_abs_dse_over_se']:.2e} | {a['num_coverage_differs']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[200, 400, 600])
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--chunk", type=int, default=250)
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--design", default="default")
    ap.add_argument("--out", default="results/benchmarks/precision")
    args = ap.parse_args(argv)

    design = sim.get_design(args.design)
    truth = np.concatenate([np.ravel(design.theta), np.ravel(design.gamma)])
    names = [f"θ{i + 1}" for i in range(design.d)] + [
        f"γ{i + 1}" for i in range(design.k)
    ]
    results = {
        "device": str(jax.devices()[0]),
        "design": args.design,
        "replicates": args.replicates,
        "alpha": args.alpha,
        "seed": args.seed,
        "sizes": {},
    }
    for n in args.sizes:
        data = _simulate(design, n, args.replicates, args.seed + n)
        o64 = _run(data, True, args.alpha, args.chunk)
        o32 = _run(data, False, args.alpha, args.chunk)
        agree = _agreement(o32, o64, truth)
        results["sizes"][str(n)] = {
            "float64": _summary(o64, truth, args.alpha, np.float64),
            "float32": _summary(o32, truth, args.alpha, np.float32),
            "agreement": agree,
        }
        print(f"n = {n}: done", flush=True)
    table = _table(results, names)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(results, f, indent=2)
    with open(args.out + ".md", "w") as f:
        f.write(
            f"## float32 vs float64 ({args.replicates} replicates per n, design "
            f"{args.design!r}, {results['device']})\n\n" + table
        )
    print(table)
    return results


if __name__ == "__main__":
    main()
