"""Benchmark: the coverage study's replicates against a loop of statsmodels fits.

One replicate of the coverage study (our design of DESIGN.md §6: d = 5, k = 3,
n = 600 by default, 95% Wald intervals of every coordinate of θ and γ) is, in JAX,
``experiments.coverage.make_replicate``: simulate → ``hr.fit`` (Newton) → Wald
intervals (observed information) → covered?, one jitted program over the PRNG keys
(``lax.map`` over vmapped batches of ``--batch_size``, split over the devices). The
baseline, in the same run and on datasets of the same design: for each dataset the
homogeneous start (``sm.Logit`` on ψ0·Δφ, the cold start of ``hr.fit``), then a
``GenericLikelihoodModel`` of the same likelihood fitted by BFGS with the analytic
score and Hessian, and its Wald intervals (``conf_int``).

Measured for 1 and 2 CPU devices (``--xla_force_host_platform_device_count``), for
2 local processes of one device each (``--processes``: ``jax.distributed`` with gloo,
the replicate axis split over the global mesh, every timed step started at a
barrier; wall times are the slowest process's, CPU times the sum) and for float32 /
float64, each configuration in fresh processes, for two versions of the code: AFTER
(this checkout) and BEFORE (``--before_commit``, by default the commit this work
branched from, extracted with ``git archive`` into a temporary folder), each with
the XLA options its own studies compile the replicate program with
(``experiments.compiler_options()``: LLVM -O2 on a CPU since 2026-12-06, XLA's
default -O3 before; ``--opt_level`` sets one level for both):

* run — simulate + fit + intervals of ``--replicates`` replicates, compiled program,
  best of 3 runs (wall-clock);
* fit + intervals — the same program on datasets simulated beforehand (the part
  statsmodels does), best of 3;
* one-off, cold — what a user's first run costs: tracing + compilation (no
  persistent cache) + the first run;
* one-off, warm cache — the same in a second process that finds the compiled program
  in JAX's persistent compilation cache (filled by the first process).

Each is reported as seconds and as the ratio statsmodels-loop-time / JAX-time (the
statsmodels loop is timed on ``--statsmodels_replicates`` datasets twice, before and
after the JAX processes, and extrapolated to ``--replicates``; the mean is used).
Timings on a shared machine are noisy: the ratios, measured within one run, are what
to compare. Results: ``results/benchmarks/coverage_speed.{json,md}``.

Run:
  python benchmarks/coverage_speed.py                       # 1000 replicates, n = 600
  python benchmarks/coverage_speed.py --replicates=200 --statsmodels_replicates=20 --no_breakdown
  python benchmarks/coverage_speed.py --devices 2 --precisions float64 --no_before
  python benchmarks/coverage_speed.py --no_before --devices 1 --processes 2   # + 2 processes
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import math
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

ROOT = pathlib.Path(__file__).resolve().parents[1]
BRANCH_POINT = "2c73ac2"  # main when this work started (the BEFORE column)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicates", type=int, default=1000, help="JAX replicates")
    parser.add_argument(
        "--statsmodels_replicates",
        type=int,
        default=100,
        help="replicates of each statsmodels loop (extrapolated to --replicates)",
    )
    parser.add_argument("--n", type=int, default=600, help="comparisons per dataset")
    parser.add_argument("--design", default="default", help="simulation design preset")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--devices",
        type=int,
        nargs="+",
        default=[1, 2],
        help="CPU device counts to measure (XLA host platform device count)",
    )
    parser.add_argument(
        "--precisions",
        nargs="+",
        default=["float32", "float64"],
        choices=("float32", "float64"),
    )
    parser.add_argument(
        "--processes",
        type=int,
        nargs="*",
        default=[2],
        help="also time the study as this many local processes of one CPU device "
        "each (jax.distributed, gloo), for every precision; none: skip",
    )
    parser.add_argument(
        "--batch_size",
        type=int,
        default=25,
        help="vmap width: lax.map over vmapped batches (0: one vmap over all)",
    )
    parser.add_argument(
        "--no_breakdown",
        action="store_true",
        help="skip the fit + intervals program (one compilation less per process)",
    )
    parser.add_argument(
        "--no_before",
        action="store_true",
        help="measure this checkout only (no BEFORE column)",
    )
    parser.add_argument(
        "--before_commit",
        default=BRANCH_POINT,
        help="commit of the BEFORE column (git archive of this repository)",
    )
    parser.add_argument(
        "--opt_level",
        type=int,
        default=None,
        choices=(0, 1, 2, 3),
        help="XLA:CPU backend optimisation level (xla_backend_optimization_level) of "
        "both columns; default: what each version's study compiles with "
        "(experiments.compiler_options(): -O2 on a CPU now, XLA's -O3 before)",
    )
    parser.add_argument(
        "--prng_impl",
        default="threefry2x32",
        choices=("threefry2x32", "rbg", "unsafe_rbg"),
        help="JAX PRNG implementation of the simulation (the study's "
        "config.prng_impl: threefry = threefry2x32)",
    )
    parser.add_argument("--out", default=str(ROOT / "results" / "benchmarks"))
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is None:
        if args.replicates < 1:
            parser.error("--replicates must be >= 1")
        if args.statsmodels_replicates < 1:
            parser.error("--statsmodels_replicates must be >= 1")
        if args.n < 10:
            parser.error("--n must be >= 10")
        if any(d < 1 for d in args.devices):
            parser.error("--devices must be >= 1")
        if any(p < 2 for p in args.processes):
            parser.error("--processes must be >= 2 (one process is --devices 1)")
        if args.batch_size < 0:
            parser.error("--batch_size must be >= 0")
        multiple = math.lcm(*args.devices, *args.processes)
        if args.replicates % multiple:  # every device gets the same number of keys
            args.replicates += multiple - args.replicates % multiple
            print(
                f"--replicates rounded up to {args.replicates}, a multiple of the "
                f"device counts {args.devices}"
            )
    return args


# ------------------------------------------------------------------------------------
# statsmodels: the same likelihood as a GenericLikelihoodModel.
# ------------------------------------------------------------------------------------


def _statsmodels_model(derivatives: str = "analytic"):
    import numpy as np
    from statsmodels.base.model import GenericLikelihoodModel

    class HeterogeneousBTL(GenericLikelihoodModel):
        """y ~ Bernoulli(sigmoid((ψ0 + ψᵀγ)·θᵀΔφ)); exog = Δφ, extra params γ."""

        def __init__(self, y, dphi, psi, psi0, **kwds):
            k = psi.shape[1]
            super().__init__(
                y, dphi, extra_params_names=[f"gamma{j + 1}" for j in range(k)], **kwds
            )
            self.psi, self.psi0, self.d = psi, psi0, dphi.shape[1]

        def _parts(self, params):
            theta, gamma = params[: self.d], params[self.d :]
            r = self.exog @ theta
            sigma = self.psi0 + self.psi @ gamma
            return r, sigma, sigma * r

        def loglike(self, params):
            _, _, eta = self._parts(params)
            return float(np.sum(self.endog * eta - np.logaddexp(0.0, eta)))

        if derivatives == "analytic":

            def score(self, params):
                r, sigma, eta = self._parts(params)
                resid = self.endog - 1.0 / (1.0 + np.exp(-eta))
                g = np.hstack([sigma[:, None] * self.exog, r[:, None] * self.psi])
                return g.T @ resid

            def hessian(self, params):
                r, sigma, eta = self._parts(params)
                p = 1.0 / (1.0 + np.exp(-eta))
                g = np.hstack([sigma[:, None] * self.exog, r[:, None] * self.psi])
                h = -(g.T * (p * (1.0 - p))) @ g
                cross = (self.exog.T * (self.endog - p)) @ self.psi  # ∂²η/∂θ∂γ = Δφψᵀ
                h[: self.d, self.d :] += cross
                h[self.d :, : self.d] += cross.T
                return h

    return HeterogeneousBTL


def statsmodels_replicate(model_cls, data, truth, alpha):
    """Fits one dataset (numpy arrays) with statsmodels; returns its intervals."""
    import numpy as np
    import statsmodels.api as sm

    dphi = data["phi1"] - data["phi0"]
    y, psi, psi0 = data["y"], data["psi"], data["psi0"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hom = sm.Logit(y, psi0[:, None] * dphi).fit(disp=0)
        start = np.concatenate([hom.params, np.zeros(psi.shape[1])])
        res = model_cls(y, dphi, psi, psi0).fit(
            start_params=start, method="bfgs", maxiter=1000, disp=0, gtol=1e-8
        )
        ci = np.asarray(res.conf_int(alpha))
    lower, upper = ci[:, 0], ci[:, 1]
    return {
        "estimate": np.asarray(res.params),
        "covered": (lower <= truth) & (truth <= upper),
        "converged": bool(res.mle_retvals["converged"]),
    }


# ------------------------------------------------------------------------------------
# Workers (fresh processes): one configuration of one code version each.
# ------------------------------------------------------------------------------------


def _timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _worker_statsmodels(job) -> dict:
    import jax
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    from hetrlhf.data import simulate as sim
    from hetrlhf.types import ravel_params

    design = sim.get_design(job["design"])
    truth = np.asarray(ravel_params(sim.design_truth(design)))
    r = job["replicates"]
    keys = jax.random.split(jax.random.key(job["seed"]), r)
    data = jax.jit(jax.vmap(lambda k: sim.simulate(k, design, job["n"])))(keys)
    data = {
        f: np.asarray(getattr(data, f))
        for f in data._fields
        if getattr(data, f) is not None
    }
    model_cls = _statsmodels_model()
    one = {f: v[0] for f, v in data.items()}
    statsmodels_replicate(model_cls, one, truth, job["alpha"])  # lazy imports: untimed

    def loop():
        return [
            statsmodels_replicate(
                model_cls, {f: v[i] for f, v in data.items()}, truth, job["alpha"]
            )
            for i in range(r)
        ]

    rows, wall, cpu = _timed(loop)
    return {
        "replicates": r,
        "wall_per_replicate": wall / r,
        "cpu_per_replicate": cpu / r,
        "not_converged": int(sum(not row["converged"] for row in rows)),
        "coverage": np.mean([row["covered"] for row in rows], 0).tolist(),
    }


def _worker_jax(job) -> dict:
    """Times the replicate program of the code found on sys.path (one version)."""
    import jax
    import numpy as np
    from jax.experimental import multihost_utils

    jax.config.update("jax_enable_x64", job["precision"] == "float64")
    import experiments  # the XLA flags the studies set; compiler_options below
    from hetrlhf import parallel

    if job.get("processes", 1) > 1:  # before any array, as in the studies
        parallel.initialize_distributed(
            f"127.0.0.1:{job['port']}", job["processes"], job["process_id"]
        )
    if job["cache"]:
        jax.config.update("jax_compilation_cache_dir", job["cache"])
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
    import hetrlhf as hr
    from experiments import coverage
    from hetrlhf.data import simulate as sim
    from hetrlhf.types import ravel_params

    design = sim.get_design(job["design"])
    r, n, alpha = job["replicates"], job["n"], job["alpha"]
    truth = ravel_params(sim.design_truth(design))
    mesh = parallel.replicate_mesh() if jax.device_count() > 1 else None
    impl = job.get("prng_impl", "threefry2x32")
    keys = jax.random.split(jax.random.key(job["seed"], impl=impl), r)
    keys_in = parallel.shard_replicates(keys, mesh) if mesh is not None else keys
    if job["opt_level"] is not None:
        options = {"xla_backend_optimization_level": job["opt_level"]}
    else:  # the study's own (the BEFORE code has none: XLA's defaults)
        options = getattr(experiments, "compiler_options", dict)() or {}

    def program(fn):
        batch = jax.jit(parallel.batched_vmap(fn, job["batch_size"] or None))
        if mesh is not None:
            batch = jax.jit(parallel.sharded_map(batch, mesh))
        return batch

    def compile_(batch, x):
        return batch.lower(x).compile(compiler_options=options or None)

    def together(fn):
        # Several processes: every timed step starts at a barrier, so each
        # process's wall time is the step's (they are then combined by max).
        # JAX's own barrier: the BEFORE code (2c73ac2) has no parallel.barrier.
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"step{next(steps)}")
        return _timed(fn)

    steps = itertools.count()

    def best_of(exe, x, times=3):
        runs = [
            together(lambda: jax.block_until_ready(exe(x)))[1:] for _ in range(times)
        ]
        return min(runs)

    replicate = coverage.make_replicate(
        design, n, alpha=alpha, information="observed", method="newton"
    )
    exe, t_compile, c_compile = together(lambda: compile_(program(replicate), keys_in))
    out, t_first, c_first = together(lambda: jax.block_until_ready(exe(keys_in)))
    t_run, c_run = best_of(exe, keys_in)
    out = parallel.to_host(out)
    result = {
        "hetrlhf": hr.__file__,
        "device_count": jax.device_count(),
        "process_count": jax.process_count(),
        "compiler_options": options,
        "compile_wall": t_compile,
        "compile_cpu": c_compile,
        "first_run_wall": t_first,
        "run_wall": t_run,
        "run_cpu": c_run,
        "one_off_wall": t_compile + t_first,
        "one_off_cpu": c_compile + c_first,
        "coverage": np.asarray(out.covered, float).mean(0).tolist(),
        "not_converged": int((~np.asarray(out.converged, bool)).sum()),
        "mean_newton_steps": float(np.mean(out.num_steps)),
    }
    if job["breakdown"]:
        data = jax.jit(jax.vmap(lambda k: sim.simulate(k, design, n)))(keys)
        data_in = parallel.shard_replicates(data, mesh) if mesh is not None else data
        fit_information = getattr(hr.estimate, "fit_with_information", None)

        def fit_intervals(d):
            # The study's replicate without its simulation, in this version's API.
            if fit_information is not None:
                res, hess, _ = fit_information(d)
                ci = hr.confidence_intervals(res.params, d, alpha, information=hess)
            else:
                res = hr.fit(d)
                ci = hr.confidence_intervals(res.params, d, alpha)
            lower, upper = ravel_params(ci.lower), ravel_params(ci.upper)
            return (lower <= truth) & (truth <= upper), res.converged

        def simulate_only(key):
            return sim.simulate(key, design, n).y.mean()

        exe = compile_(program(fit_intervals), data_in)
        jax.block_until_ready(exe(data_in))
        result["fit_intervals_wall"], result["fit_intervals_cpu"] = best_of(
            exe, data_in
        )
        exe = compile_(program(simulate_only), keys_in)
        jax.block_until_ready(exe(keys_in))
        result["simulate_wall"], result["simulate_cpu"] = best_of(exe, keys_in)
    return result


def _run_worker(job: dict, root: pathlib.Path) -> dict:
    """Runs ``job`` in fresh worker processes of the code at ``root``.

    ``job['processes']`` (default 1) local processes, each with ``job['devices']``
    CPU devices (default 1); several processes run the same program on their parts
    of the global replicate axis (``jax.distributed``, gloo) and start each timed
    step at a barrier. Wall times: the slowest process's; CPU times: summed over
    the processes; everything else: process 0's.
    """
    processes = job.get("processes", 1)
    if str(ROOT) not in sys.path:  # this checkout's launcher helpers, installed or not
        sys.path.insert(0, str(ROOT))
    from hetrlhf import parallel

    devices = job.get("devices", 1)
    env = parallel.local_worker_env(devices if devices > 1 else None)
    env["PYTHONPATH"] = str(root)
    jobs = [job]
    if processes > 1:
        port = parallel.free_local_port()
        jobs = [{**job, "port": port, "process_id": i} for i in range(processes)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(pathlib.Path(__file__).resolve()), "--worker", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=root,
            env=env,
            text=True,
        )
        for _ in jobs
    ]
    # All processes are fed and drained at once (process 0 waits for the others
    # to register with the coordinator; a full stderr pipe must not block one).
    with concurrent.futures.ThreadPoolExecutor(len(procs)) as pool:
        outputs = list(
            pool.map(
                lambda pair: pair[0].communicate(json.dumps(pair[1]), timeout=900),
                zip(procs, jobs),
            )
        )
    for proc, (_, err) in zip(procs, outputs):
        if proc.returncode != 0:
            raise RuntimeError(f"worker {job} failed:\n{err[-4000:]}")
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    combined = dict(results[0])
    for key, value in results[0].items():
        if isinstance(value, float) and key.endswith("_wall"):
            combined[key] = max(r[key] for r in results)
        elif isinstance(value, float) and key.endswith("_cpu"):
            combined[key] = sum(r[key] for r in results)
    return combined


def _worker_main(spec: str) -> None:
    job = json.loads(sys.stdin.read() if spec == "-" else spec)
    sys.path.insert(0, os.getcwd())
    fn = _worker_statsmodels if job["kind"] == "statsmodels" else _worker_jax
    print(json.dumps(fn(job)))


# ------------------------------------------------------------------------------------
# Main.
# ------------------------------------------------------------------------------------


def _extract(commit: str, folder: pathlib.Path) -> pathlib.Path:
    """``git archive`` of ``commit`` of this repository, unpacked in ``folder``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", commit],
        capture_output=True,
        check=True,
    ).stdout
    folder.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def _ratio(sm_seconds, seconds):
    return None if seconds is None else sm_seconds / seconds


def _table(rows) -> str:
    cols = [
        ("version", "version"),
        ("processes", "processes"),
        ("devices per process", "devices"),
        ("precision", "precision"),
        ("run s", "run_wall"),
        ("run ×", "run_ratio"),
        ("run × CPU", "run_ratio_cpu"),
        ("fit+CI s", "fit_intervals_wall"),
        ("fit+CI ×", "fit_intervals_ratio"),
        ("fit+CI × CPU", "fit_intervals_ratio_cpu"),
        ("simulate s", "simulate_wall"),
        ("compile s (cold)", "compile_wall"),
        ("one-off cold s", "one_off_wall"),
        ("one-off cold ×", "one_off_ratio"),
        ("compile s (warm cache)", "warm_compile_wall"),
        ("one-off warm s", "warm_one_off_wall"),
        ("one-off warm ×", "warm_one_off_ratio"),
    ]

    def fmt(v):
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.1f}" if v >= 10 else f"{v:.3g}"
        return str(v)

    lines = [
        "| " + " | ".join(c for c, _ in cols) + " |",
        "|" + "---|" * len(cols),
    ]
    lines += [
        "| " + " | ".join(fmt(row.get(k)) for _, k in cols) + " |" for row in rows
    ]
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.worker is not None:
        _worker_main(args.worker)
        return {}
    base = {
        "design": args.design,
        "n": args.n,
        "alpha": args.alpha,
        "seed": args.seed,
    }
    print(
        f"coverage_speed: {args.replicates} replicates, n = {args.n}, design "
        f"'{args.design}', devices {args.devices}, {args.precisions}, batch "
        f"{args.batch_size}; statsmodels {args.statsmodels_replicates} × 2; "
        f"{os.cpu_count()} CPU cores, load "
        + " ".join(f"{x:.1f}" for x in os.getloadavg()),
        flush=True,
    )
    sm_job = {**base, "kind": "statsmodels", "replicates": args.statsmodels_replicates}
    statsmodels = [_run_worker(sm_job, ROOT)]
    print(
        f"statsmodels: {1e3 * statsmodels[0]['wall_per_replicate']:.2f} ms/replicate",
        flush=True,
    )
    versions = [("after", ROOT)]
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="coverage_speed_"))
    rows = []
    try:
        if not args.no_before:
            before = _extract(args.before_commit, tmp / "before")
            versions.insert(0, (f"before ({args.before_commit})", before))
        for version, root in versions:
            configurations = [(d, 1) for d in args.devices]
            configurations += [(1, p) for p in args.processes]
            for devices, processes in configurations:
                for precision in args.precisions:
                    cache = tmp / f"cache_{len(rows)}"
                    job = {
                        **base,
                        "kind": "jax",
                        "replicates": args.replicates,
                        "processes": processes,
                        "devices": devices,
                        "precision": precision,
                        "batch_size": args.batch_size,
                        "opt_level": args.opt_level,
                        "cache": str(cache),
                        "breakdown": not args.no_breakdown,
                        "prng_impl": args.prng_impl,
                    }
                    cold = _run_worker(job, root)
                    warm = _run_worker({**job, "breakdown": False}, root)
                    row = {
                        "version": version,
                        "processes": processes,
                        "devices": devices,
                        "precision": precision,
                        **cold,
                        "warm_compile_wall": warm["compile_wall"],
                        "warm_one_off_wall": warm["one_off_wall"],
                        "warm_run_wall": warm["run_wall"],
                    }
                    rows.append(row)
                    print(
                        f"{version:18s} {processes} proc × {devices} dev "
                        f"{precision}: run "
                        f"{row['run_wall']:.3f} s, compile {row['compile_wall']:.2f} s "
                        f"(warm cache {row['warm_compile_wall']:.2f} s)",
                        flush=True,
                    )
        statsmodels.append(_run_worker(sm_job, ROOT))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    per_rep = sum(s["wall_per_replicate"] for s in statsmodels) / len(statsmodels)
    sm_seconds = per_rep * args.replicates
    cpu_rep = sum(s["cpu_per_replicate"] for s in statsmodels) / len(statsmodels)
    sm_cpu = cpu_rep * args.replicates
    for row in rows:
        row["run_ratio"] = _ratio(sm_seconds, row["run_wall"])
        row["run_ratio_cpu"] = _ratio(sm_cpu, row["run_cpu"])
        row["fit_intervals_ratio"] = _ratio(sm_seconds, row.get("fit_intervals_wall"))
        row["fit_intervals_ratio_cpu"] = _ratio(sm_cpu, row.get("fit_intervals_cpu"))
        row["one_off_ratio"] = _ratio(sm_seconds, row["one_off_wall"])
        row["warm_one_off_ratio"] = _ratio(sm_seconds, row["warm_one_off_wall"])
    table = _table(rows)
    header = (
        f"# Coverage study speed: {args.replicates} replicates, n = {args.n} "
        f"(design '{args.design}', PRNG {args.prng_impl}), against a statsmodels "
        "loop\n\n"
        f"statsmodels loop: {1e3 * per_rep:.2f} ms per replicate (wall; mean of "
        + ", ".join(f"{1e3 * s['wall_per_replicate']:.2f}" for s in statsmodels)
        + f" ms over {args.statsmodels_replicates} replicates, timed before and after "
        f"the JAX processes; {1e3 * cpu_rep:.2f} ms CPU) → {sm_seconds:.2f} s for "
        f"{args.replicates}. "
        f"{os.cpu_count()} CPU cores; load at the end "
        + " ".join(f"{x:.1f}" for x in os.getloadavg())
        + ". × = statsmodels time / JAX time (wall-clock; × CPU: process CPU time, "
        "all threads — robust to other jobs, but blind to the gain of a second "
        "device). run: simulate + fit + "
        "intervals (best of 3); fit+CI: on datasets simulated beforehand; one-off: "
        "tracing + compilation + first run, without (cold) and with (warm) a filled "
        "persistent compilation cache.\n\n"
    )
    text = header + table + "\n"
    print("\n" + text)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        "args": {k: v for k, v in vars(args).items() if k != "worker"},
        "statsmodels": statsmodels,
        "statsmodels_seconds": sm_seconds,
        "statsmodels_cpu_seconds": sm_cpu,
        "rows": rows,
    }
    (out / "coverage_speed.json").write_text(json.dumps(payload, indent=1))
    (out / "coverage_speed.md").write_text(text)
    print(f"wrote {out / 'coverage_speed.json'}, {out / 'coverage_speed.md'}")
    return payload


if __name__ == "__main__":
    main()
