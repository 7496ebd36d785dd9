"""Benchmark: an arena-sized preference file, hetrlhf against its peers (ours).

The file: ``--items`` models (default 100) with rewards N(0, 1) (seed ``--seed``),
``--rows`` votes (default 50,000) between uniformly drawn pairs, Bradley–Terry outcomes,
no ties; written once as CSV (model_a, model_b, winner).

(a) Fit + sandwich intervals, from the CSV file to the intervals, each side in a fresh
    Python process (so its first call pays its own compilation) and then repeated in
    that process (warm, the median of ``--repeats``), each side twice: without JAX's
    persistent compilation cache, and with it (``hetrlhf.cli.enable_compilation_cache``
    in a fresh folder: one process fills it, a second fresh process is timed):
    * hetrlhf: ``hr.load_preferences`` (read, validate, aggregate to unique rows
      weighted by their counts) → ``own_data.analysis.fit_and_covariances`` (what
      ``hetrlhf fit`` runs: ``hr.fit``, ``hr.covariance`` and
      ``hr.sandwich_covariance`` (HC0) in one compiled program, rows padded with
      weight 0 to a bucket size) → z-intervals;
    * lmarena/arena-rank (if installed; ``pip install`` a checkout of
      github.com/lmarena/arena-rank): ``pandas.read_csv`` → ``PairDataset.from_pandas``
      (its own deduplication to unique (pair, outcome) rows) → ``BradleyTerry.fit``
      (L-BFGS) → ``compute_ratings_and_cis(ci_method="sandwich")``.
    Same ratings: arena-rank's ratings (scale = 1, base = e, init = 0: natural-log
    Bradley–Terry, mean ≈ 0) and ours (the reference item at 0) are compared after
    centring both; the standard errors of every item's contrast with the reference
    (invariant to the pinning) are compared with arena-rank's sandwich
    H⁻¹ G H⁻¹ built by its own ``compute_hessian_and_covariance`` (its 1e−5·n ridge
    on H is the only difference).
(b) Bootstrap, 1,000 resamples of the votes (``--draws``): hetrlhf's vmapped refits of
    weight vectors over the unique rows (``hr.confidence.resample_weights`` + a
    ``jax.vmap`` of ``hr.fit``, in chunks of 50) against a Python loop of refits with
    ``scipy.optimize.minimize(method="L-BFGS-B")`` — how FastChat's Elo notebook
    bootstraps — on the SAME weight vectors (weighted unique rows, a faster baseline
    than FastChat's refits of raw rows), gradient tolerance 1e−10. The scipy refits
    start from the full-data estimate (their best case); ``hr.fit`` starts cold, from
    its homogeneous fit, as always. Same intervals: the percentile intervals of the
    two sets of refits are compared.

Ratios are printed against the baseline measured in the same run. Timings vary with
the machine's load: run it on an idle machine. Every worker runs with
``OPENBLAS_NUM_THREADS=1`` (both sides): on a busy 2-core machine OpenBLAS threads,
spinning against XLA's, made one 99 × 99 LAPACK call (``eigvalsh``) take 80–160 ms
instead of 1 ms.

Run:
  python benchmarks/arena_speed.py                  # 100 items, 50,000 rows, B = 1000
  python benchmarks/arena_speed.py --draws 200 --loop_draws 100   # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's hetrlhf, not an installed one


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--draws", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument(
        "--loop_draws",
        type=int,
        default=None,
        help="resamples of the scipy loop (default: all; fewer are extrapolated)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="warm repetitions")
    parser.add_argument(
        "--parts", default="a,b", help="a (vs arena-rank), b (bootstrap)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "results" / "arena_speed"))
    parser.add_argument(
        "--worker", choices=("hetrlhf", "arena_rank"), help=argparse.SUPPRESS
    )
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def make_arena(path: str, num_items: int, num_rows: int, seed: int) -> None:
    """Writes the synthetic arena (see the module docstring)."""
    rng = np.random.default_rng(seed)
    reward = rng.normal(size=num_items)
    a = rng.integers(0, num_items, num_rows)
    b = (a + 1 + rng.integers(0, num_items - 1, num_rows)) % num_items
    p = 1.0 / (1.0 + np.exp(-(reward[b] - reward[a])))
    won_b = rng.uniform(size=num_rows) < p
    names = np.array([f"model_{i:03d}" for i in range(num_items)])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("model_a,model_b,winner\n")
        f.writelines(
            f"{names[a[i]]},{names[b[i]]},{'b' if won_b[i] else 'a'}\n"
            for i in range(num_rows)
        )


# ------------------------------------------------------------------ (a) workers ----


def _use_cache(folder: str | None) -> None:
    """JAX's persistent compilation cache in ``folder`` (None: off), as the command."""
    if folder is not None:
        from hetrlhf.cli import enable_compilation_cache

        enable_compilation_cache(folder)


def _hetrlhf_worker(path: str, repeats: int, cache: str | None) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import scipy.stats

    import hetrlhf as hr
    from hetrlhf.own_data.analysis import fit_and_covariances

    _use_cache(cache)
    jnp.zeros(1).block_until_ready()  # backend start-up, outside the timings
    z = scipy.stats.norm.ppf(0.975)

    def run():
        t0 = time.perf_counter()
        prefs = hr.load_preferences(path)
        t1 = time.perf_counter()
        out = fit_and_covariances(prefs.data)
        res, cov = out.result, out.sandwich
        se = jnp.sqrt(jnp.diagonal(cov))
        lower, upper = res.params.theta - z * se, res.params.theta + z * se
        jax.block_until_ready((lower, upper))
        t2 = time.perf_counter()
        return prefs, res, se, t1 - t0, t2 - t1

    prefs, res, se, load0, fit0 = run()
    warm = [run()[3:] for _ in range(repeats)]
    items = list(prefs.items)
    rating = np.zeros(len(items))
    free = [items.index(v) for v in prefs.feature_names]
    rating[free] = np.asarray(res.params.theta)
    contrast_se = np.zeros(len(items))
    contrast_se[free] = np.asarray(se)
    return {
        "items": items,
        "reference": prefs.reference,
        "rating": rating.tolist(),
        "contrast_se": contrast_se.tolist(),
        "unique_rows": len(prefs.count),
        "converged": bool(res.converged),
        "first": {"load": load0, "compute": fit0},
        "warm": {
            "load": float(np.median([w[0] for w in warm])),
            "compute": float(np.median([w[1] for w in warm])),
        },
    }


def _arena_rank_worker(path: str, repeats: int, reference: str, cache) -> dict:
    import jax
    import jax.numpy as jnp
    import pandas as pd
    from arena_rank.models.bradley_terry import BradleyTerry
    from arena_rank.utils.data_utils import PairDataset

    _use_cache(cache)
    jnp.zeros(1).block_until_ready()
    outcome = {"a": "model_a", "b": "model_b"}

    def run():
        t0 = time.perf_counter()
        frame = pd.read_csv(path)
        frame["winner"] = frame["winner"].map(outcome)
        dataset = PairDataset.from_pandas(frame, reweighted=False)
        t1 = time.perf_counter()
        model = BradleyTerry(
            len(dataset.competitors), scale=1.0, base=float(np.e), init_rating=0.0
        )
        model.fit(dataset)
        out = model.compute_ratings_and_cis(dataset, ci_method="sandwich")
        jax.block_until_ready(out["rating_upper"])
        t2 = time.perf_counter()
        return dataset, model, out, t1 - t0, t2 - t1

    dataset, model, out, load0, fit0 = run()
    warm = [run()[3:] for _ in range(repeats)]
    # Its sandwich, built by its own function, for the standard errors of contrasts.
    n = float(jnp.sum(dataset.counts))
    hess, grad_cov = model.compute_hessian_and_covariance(
        model.params["ratings"],
        dataset.pairs,
        dataset.outcomes,
        dataset.counts,
        dataset.opt_weights,
        model.hessian_reg * n,
        len(dataset.competitors),
    )
    inv = np.linalg.inv(np.asarray(hess))
    cov = inv @ np.asarray(grad_cov) @ inv
    items = list(dataset.competitors)
    r = items.index(reference)
    var = np.diagonal(cov) + cov[r, r] - 2 * cov[:, r]
    return {
        "items": items,
        "rating": np.asarray(out["ratings"]).tolist(),
        "contrast_se": np.sqrt(np.maximum(var, 0.0)).tolist(),
        "unique_rows": len(dataset.outcomes),
        "first": {"load": load0, "compute": fit0},
        "warm": {
            "load": float(np.median([w[0] for w in warm])),
            "compute": float(np.median([w[1] for w in warm])),
        },
    }


def _spawn(worker: str, path: str, repeats: int, cache=None) -> dict | None:
    cmd = [sys.executable, __file__, "--worker", worker, "--csv", path]
    cmd += ["--repeats", str(repeats)] + ([] if cache is None else ["--cache", cache])
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run(
        cmd, check=False, capture_output=True, text=True, cwd=ROOT, env=env
    )
    if proc.returncode:
        print(proc.stderr[-3000:], file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ (b) bootstrap --


def _bootstrap(path: str, draws: int, loop_draws: int, seed: int) -> dict:
    import jax

    jax.config.update("jax_enable_x64", True)
    import scipy.optimize

    import hetrlhf as hr
    from hetrlhf.types import ravel_params

    prefs = hr.load_preferences(path)
    data = prefs.data
    full = hr.fit(data)  # the estimate the scipy refits start from
    counts = hr.confidence.resample_weights(jax.random.key(seed), data, draws)
    refits = jax.jit(
        jax.vmap(lambda d, w: hr.fit(d._replace(weight=w)), in_axes=(None, 0))
    )
    chunk = 50
    t0 = time.perf_counter()
    compiled = refits.lower(data, counts[:chunk]).compile()
    t1 = time.perf_counter()
    ours, ok = [], []
    for start in range(0, draws, chunk):
        res = compiled(data, counts[start : start + chunk])
        ours.append(np.asarray(ravel_params(res.params)))
        ok.append(np.asarray(res.converged))
    t2 = time.perf_counter()
    ours, ok = np.concatenate(ours), np.concatenate(ok)

    # The baseline: a loop of scipy L-BFGS refits of the same count vectors.
    dphi = np.asarray(data.dphi)
    y = np.asarray(data.y)

    def loss_grad(theta, w):
        eta = dphi @ theta
        total = w.sum()
        value = np.sum(w * (np.logaddexp(0.0, eta) - y * eta)) / total
        grad = dphi.T @ (w * (scipy.special.expit(eta) - y)) / total
        return value, grad

    loop_draws = draws if loop_draws is None else min(loop_draws, draws)
    host_counts = np.asarray(counts)
    start = np.asarray(full.params.theta)  # the same warm start as the vmapped refits
    t3 = time.perf_counter()
    theirs = []
    for b in range(loop_draws):
        sol = scipy.optimize.minimize(
            loss_grad,
            start,
            args=(host_counts[b],),
            jac=True,
            method="L-BFGS-B",
            options={"gtol": 1e-10, "ftol": 1e-15, "maxiter": 10_000},
        )
        theirs.append(sol.x)
    t4 = time.perf_counter()
    theirs = np.array(theirs)
    per_refit_loop = (t4 - t3) / loop_draws
    lo = [np.quantile(x, 0.025, axis=0) for x in (ours[:loop_draws], theirs)]
    hi = [np.quantile(x, 0.975, axis=0) for x in (ours[:loop_draws], theirs)]
    return {
        "draws": draws,
        "loop_draws": loop_draws,
        "converged": int(ok.sum()),
        "compile_s": t1 - t0,
        "vmapped_s": t2 - t1,
        "loop_s_measured": t4 - t3,
        "loop_s_for_all_draws": per_refit_loop * draws,
        "max_refit_diff": float(np.max(np.abs(ours[:loop_draws] - theirs))),
        "max_interval_diff": float(
            max(np.max(np.abs(lo[0] - lo[1])), np.max(np.abs(hi[0] - hi[1])))
        ),
    }


# ------------------------------------------------------------------ main -----------


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.worker == "hetrlhf":
        print(json.dumps(_hetrlhf_worker(args.csv, args.repeats, args.cache)))
        return {}
    if args.worker == "arena_rank":
        reference = os.environ["ARENA_REFERENCE"]
        out = _arena_rank_worker(args.csv, args.repeats, reference, args.cache)
        print(json.dumps(out))
        return {}
    path = os.path.join(args.out, f"arena_{args.items}x{args.rows}.csv")
    if not os.path.exists(path):
        make_arena(path, args.items, args.rows, args.seed)
    print(
        f"arena file: {path} ({args.items} items, {args.rows} rows, seed {args.seed})"
    )
    parts = set(args.parts.split(","))
    result = {"args": vars(args)}
    if "a" in parts:
        result.update(_part_a(path, args))
    if "b" in parts:
        result["bootstrap"] = _part_b(path, args)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(result, f, indent=2)
    return result


def _both_ways(worker: str, path: str, repeats: int) -> dict | None:
    """{"": no persistent cache, "cached": a fresh process reading a filled cache}."""
    plain = _spawn(worker, path, repeats)
    if plain is None:
        return None
    with tempfile.TemporaryDirectory(prefix=f"{worker}_jax_cache_") as folder:
        _spawn(worker, path, 0, folder)  # fills the cache
        cached = _spawn(worker, path, repeats, folder)
    return {"": plain, "cached": cached}


def _total(r: dict, when: str) -> float:
    return r[when]["load"] + r[when]["compute"]


def _part_a(path: str, args) -> dict:
    ours = _both_ways("hetrlhf", path, args.repeats)
    if ours is None:
        raise RuntimeError("the hetrlhf worker failed (see stderr)")
    try:
        import arena_rank  # noqa: F401

        os.environ["ARENA_REFERENCE"] = ours[""]["reference"]
        theirs = _both_ways("arena_rank", path, args.repeats)
    except ImportError:
        theirs = None
        print("arena-rank is not installed: (a) runs hetrlhf only")
    result = {"hetrlhf": ours, "arena_rank": theirs}
    print("\n(a) fit + sandwich intervals (seconds; load = read + encode the CSV)")
    print("| | first call: load | compute | total | warm: load | compute | total |")
    print("|---|---|---|---|---|---|---|")
    for name, runs in (("hetrlhf", ours), ("arena-rank", theirs)):
        for mode, r in (runs or {}).items():
            if r is None:
                continue
            f, w = r["first"], r["warm"]
            label = name + (", persistent cache filled earlier" if mode else "")
            print(
                f"| {label} | {f['load']:.2f} | {f['compute']:.2f} | "
                f"{_total(r, 'first'):.2f} | {w['load']:.2f} | {w['compute']:.2f} | "
                f"{_total(r, 'warm'):.2f} |"
            )
    if theirs is not None:
        a_run, b_run = ours[""], theirs[""]
        order = [b_run["items"].index(v) for v in a_run["items"]]
        a = np.array(a_run["rating"])
        b = np.array(b_run["rating"])[order]
        diff = np.max(np.abs((a - a.mean()) - (b - b.mean())))
        se_a = np.array(a_run["contrast_se"])
        se_b = np.array(b_run["contrast_se"])[order]
        keep = se_a > 0
        se_diff = np.max(np.abs(se_a[keep] / se_b[keep] - 1))
        pairs = {
            "no cache": ("", ""),
            "both cached": ("cached", "cached"),
            "hetrlhf fit's default (cached) vs arena-rank's (none)": ("cached", ""),
        }
        ratios = {
            label: {
                when: _total(theirs[mode_b], when) / _total(ours[mode_a], when)
                for when in ("first", "warm")
            }
            for label, (mode_a, mode_b) in pairs.items()
            if ours[mode_a] is not None and theirs[mode_b] is not None
        }
        result["comparison"] = {
            "max_rating_diff": float(diff),
            "max_contrast_se_rel_diff": float(se_diff),
            "speedup": ratios,
        }
        print(
            f"ratings: max |diff| after centring {diff:.2e}; contrast standard errors: "
            f"max relative diff {se_diff:.2e}; unique rows: hetrlhf "
            f"{a_run['unique_rows']}, arena-rank {b_run['unique_rows']}"
        )
        for label, r in ratios.items():
            print(
                f"speed-up of hetrlhf ({label}): first call {r['first']:.1f}x, warm "
                f"{r['warm']:.1f}x"
            )
    return result


def _part_b(path: str, args) -> dict:
    boot = _bootstrap(path, args.draws, args.loop_draws, args.seed)
    extrapolated = boot["loop_draws"] < boot["draws"]
    print(f"\n(b) bootstrap, {boot['draws']} resamples of the votes")
    print(
        f"hetrlhf vmapped refits: {boot['vmapped_s']:.1f} s (+ {boot['compile_s']:.1f} s "
        f"compile; {boot['converged']} converged)"
    )
    print(
        f"scipy L-BFGS loop: {boot['loop_s_for_all_draws']:.1f} s"
        + (
            f" (measured {boot['loop_s_measured']:.1f} s on {boot['loop_draws']} "
            "resamples, extrapolated)"
            if extrapolated
            else ""
        )
    )
    total = boot["vmapped_s"] + boot["compile_s"]
    print(
        f"speed-up: {boot['loop_s_for_all_draws'] / boot['vmapped_s']:.1f}x run, "
        f"{boot['loop_s_for_all_draws'] / total:.1f}x with compilation; same refits to "
        f"{boot['max_refit_diff']:.1e}, same percentile intervals to "
        f"{boot['max_interval_diff']:.1e}"
    )
    return boot


if __name__ == "__main__":
    main()
