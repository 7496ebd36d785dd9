"""One-shot check of a machine (CPU, GPU or TPU): float32 studies, speed, fast tests.

    python benchmarks/device_check.py             # sizes by backend (CPU: small)
    python benchmarks/device_check.py --quick     # smaller still

Runs, each step in its own subprocess with a time limit, every failure recorded and
none fatal (total under 10 minutes):

1. ``device``: the backend, its devices and the jax/jaxlib versions;
2. ``speed``: replicates per second of the coverage study's replicate (simulate → fit
   → Wald intervals, float32, n = 600, one jitted vmapped program over all devices,
   after compilation);
3. ``coverage``: the coverage study in float32 (``python -m experiments.coverage
   --config.precision=float32``), its coverage per n and coordinate against the exact
   95% binomial band, and its wall time including compilation;
4. ``ppo_speed``: ``benchmarks/ppo_speed.py`` (loop / vmap / sharded / 2 processes)
   → ``policy_updates_per_s`` (the best of its programs);
5. ``coverage_speed``: ``benchmarks/coverage_speed.py`` at a small size (float32, one
   device, this checkout only; its JSON and printed report);
6. ``tests``: ``pytest -q -x tests/btl/test_estimate.py tests/btl/test_inference.py`` (the
   fast statistical core, float64 on the CPU device).

Writes results/device_check.json with at least "device", "replicates_per_s",
"policy_updates_per_s", "coverage" and per step its seconds and error (if any).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
SPEED = r"""
import json, os, sys, time
import experiments  # the studies' XLA flags, before any computation
import jax
from experiments import coverage
from hetrlhf import parallel
from hetrlhf.data import simulate as sim
replicates, n = int(sys.argv[1]), int(sys.argv[2])
rep = coverage.make_replicate(sim.get_design("default"), n, alpha=0.05,
                              information="observed", method="newton")
mesh = parallel.replicate_mesh()
fn = parallel.sharded_map(jax.jit(jax.vmap(rep)), mesh)
keys = parallel.shard_replicates(jax.random.split(jax.random.key(0), replicates),
                                 mesh, pad=True)
jax.block_until_ready(fn(keys))
best = float("inf")
for _ in range(3):
    t = time.perf_counter(); jax.block_until_ready(fn(keys))
    best = min(best, time.perf_counter() - t)
print(json.dumps({"replicates": int(keys.shape[0]), "n": n, "seconds": best,
                  "replicates_per_s": keys.shape[0] / best}))
"""


def _sizes(backend: str, quick: bool) -> dict:
    if backend == "cpu":
        sizes = {"speed_replicates": 400, "coverage_replicates": 200, "policies": 16}
        sizes |= {"updates": 10, "coverage_speed_replicates": 200}
    else:
        sizes = {"speed_replicates": 4000, "coverage_replicates": 1000, "policies": 80}
        sizes |= {"updates": 20, "coverage_speed_replicates": 1000}
    if quick:
        sizes = {k: max(2, v // 4) for k, v in sizes.items()}
    return sizes


def _run(cmd, timeout, env=None):
    start = time.perf_counter()
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise RuntimeError(
            f"exit {proc.returncode}: {(proc.stdout + proc.stderr)[-2000:]}"
        )
    return proc.stdout, seconds


def _last_json(text: str) -> dict:
    return json.loads([x for x in text.splitlines() if x.startswith("{")][-1])


def step_device() -> dict:
    import jax
    import jaxlib

    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "device": str(devices[0].device_kind),
        "devices": [str(d) for d in devices],
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
    }


def step_speed(sizes) -> dict:
    out, _ = _run(
        [sys.executable, "-c", SPEED, str(sizes["speed_replicates"]), "600"], 300
    )
    return _last_json(out)


def step_coverage(sizes, results_dir) -> dict:
    from hetrlhf import montecarlo as mc

    r = sizes["coverage_replicates"]
    _, seconds = _run(
        [
            sys.executable,
            "-m",
            "experiments.coverage",
            "--config=configs/coverage.py",
            "--config.precision=float32",
            f"--config.num_replicates={r}",
            f"--config.results_dir={results_dir}",
            "--config.checkpoint=False",
            "--config.progress=False",
        ],
        420,
    )
    with open(os.path.join(results_dir, "results.json")) as f:
        payload = json.load(f)
    summary, out = payload["summary"], {}
    for n, s in summary.items():
        if n == "truth":
            continue
        lo, hi = mc.binomial_band(0.95, max(1, int(s["num_converged"])))
        out[n] = {
            "coverage": s["coverage"],
            "band": [lo, hi],
            "num_outside_band": int(sum(not lo <= c <= hi for c in s["coverage"])),
            "num_not_converged": s["num_not_converged"],
        }
    return {
        "precision": payload["precision"],
        "replicates": r,
        "seconds_with_compile": seconds,
        "by_n": out,
    }


def step_ppo(sizes, out_file) -> dict:
    _run(
        [
            sys.executable,
            "benchmarks/ppo_speed.py",
            f"--policies={sizes['policies']}",
            f"--updates={sizes['updates']}",
            "--repeats=2",
            f"--out={out_file}",
        ],
        420,
    )
    with open(out_file) as f:
        return json.load(f)


def step_coverage_speed(sizes, results_dir) -> dict:
    folder = os.path.join(results_dir, "coverage_speed")  # its --out is a folder
    out, seconds = _run(
        [
            sys.executable,
            "benchmarks/coverage_speed.py",
            f"--replicates={sizes['coverage_speed_replicates']}",
            "--statsmodels_replicates=50",
            "--n=200",
            "--devices=1",
            "--precisions=float32",
            "--no_before",
            f"--out={folder}",
        ],
        300,
    )
    result = {"seconds": seconds, "report": out[-3000:]}
    found = os.path.join(folder, "coverage_speed.json")
    if os.path.exists(found):
        with open(found) as f:
            result["json"] = json.load(f)
    return result


def step_tests() -> dict:
    out, seconds = _run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            "tests/btl/test_estimate.py",
            "tests/btl/test_inference.py",
        ],
        300,
    )
    return {"seconds": seconds, "summary": out.strip().splitlines()[-1]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes")
    ap.add_argument("--out", default="results/device_check.json")
    ap.add_argument(
        "--skip", nargs="*", default=[], help="steps to skip (e.g. tests ppo_speed)"
    )
    args = ap.parse_args(argv)
    os.chdir(ROOT)
    report: dict = {"steps": {}, "errors": {}}
    start = time.perf_counter()

    def record(name, fn, *a):
        if name in args.skip:
            return None
        t = time.perf_counter()
        try:
            value = fn(*a)
        except Exception as exc:  # noqa: BLE001 -- recorded, not fatal
            report["errors"][name] = "".join(
                traceback.format_exception_only(type(exc), exc)
            )[-3000:]
            value = None
        report["steps"][name] = {"seconds": time.perf_counter() - t}
        print(f"{name}: {'FAILED' if name in report['errors'] else 'ok'}", flush=True)
        return value

    device = record("device", step_device) or {}
    report["device"] = device.get("device")
    report["backend"] = device.get("backend")
    report["device_info"] = device
    sizes = _sizes(device.get("backend", "cpu"), args.quick)
    report["sizes"] = sizes
    speed = record("speed", step_speed, sizes)
    report["replicates_per_s"] = None if speed is None else speed["replicates_per_s"]
    report["speed"] = speed
    results_dir = os.path.join(os.path.dirname(args.out) or ".", "device_check")
    report["coverage"] = record("coverage", step_coverage, sizes, results_dir)
    ppo_file = os.path.join(results_dir, "ppo_speed.json")
    ppo = record("ppo_speed", step_ppo, sizes, ppo_file)
    report["policy_updates_per_s"] = (
        None if ppo is None else max(ppo["policy_updates_per_s"].values())
    )
    report["ppo_speed"] = ppo
    report["coverage_speed"] = record(
        "coverage_speed", step_coverage_speed, sizes, results_dir
    )
    report["tests"] = record("tests", step_tests)
    report["seconds"] = time.perf_counter() - start
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=2)
    print(
        json.dumps(
            {
                k: report[k]
                for k in ("device", "replicates_per_s", "policy_updates_per_s")
            }
        )
    )
    print(f"errors: {sorted(report['errors']) or 'none'}; {report['seconds']:.0f} s")
    return report


if __name__ == "__main__":
    main()
