"""PPO policy updates per second: loop vs vmap vs 2 devices vs 2 processes.

    python benchmarks/ppo_speed.py                       # 80 policies, 20 updates
    python benchmarks/ppo_speed.py --policies 16 --updates 4 --repeats 2   # quick

The program is the ``ppo`` study's own (``experiments.ppo`` config, the "prompted"
reward source at fixed β, ``hetrlhf.alignment.ppo.runs.make_runner``): M policies
(half vanilla, half variance-aware) trained for U updates. Timed after compilation
(the first call of each program is a warm-up), best of ``--repeats``, in one run:

* ``loop``: a Python loop over the M policies, each through the compiled
  single-policy program (a runner of 1 policy);
* ``vmap``: one program vmapped over the M policies, on one device;
* ``sharded_2_devices``: the same program with its policy axis split over the
  process's 2 CPU devices (``hetrlhf.parallel.sharded_map``);
* ``2_processes``: two processes (this script with ``--worker``), one device each,
  JAX's distributed runtime with gloo collectives on one global mesh: the sharded
  program of the study's multi-process runs (the outputs gathered to both).

Reported: policy updates per second M·U/s of each and their ratios to the loop.
The main process gives itself 2 CPU devices; on a GPU/TPU machine "devices" are the
accelerators it has (the 2-process case then gives each process its devices).
Writes results/benchmarks/ppo_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
import jax
import numpy as np

import experiments  # noqa: F401  (the studies' XLA flags, before any computation)
from hetrlhf import parallel


def _parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--policies", type=int, default=80, help="M (even)")
    ap.add_argument("--updates", type=int, default=20, help="U updates per policy")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--devices", type=int, default=2, help="CPU devices (main)")
    ap.add_argument("--no_processes", action="store_true", help="skip 2 processes")
    ap.add_argument("--out", default="results/benchmarks/ppo_speed.json")
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def _setup(num_policies, num_updates, shard):
    """(segment(state) -> state, state) of the study's program for M policies."""
    from configs import ppo as ppo_config
    from experiments import ppo as ppo_study
    from hetrlhf.alignment.ppo import runs, world

    config = ppo_config.get_config()
    config.ppo.num_updates = num_updates
    w = world.build_world(jax.random.key(0), config, ["prompted"])
    source = w.sources["prompted"]
    runner = runs.make_runner(
        ppo_study.ppo_settings(config, source, "fixed"),
        w,
        source,
        shard=shard,
        num_policies=num_policies if shard else None,
    )
    return runner, source.params, config


def _states(runner, config, keys, flags):
    betas = np.where(np.asarray(flags), *config.kl.fixed_betas[::-1])
    return runner.init(keys, flags, jax.numpy.asarray(betas, jax.numpy.float32))


def _best(fn, repeats) -> float:
    jax.block_until_ready(fn())  # warm-up: compilation excluded
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def _keys(m):
    from hetrlhf.alignment.ppo import runs

    return runs.arm_keys(jax.random.key(1), m // 2)


def _in_process(args) -> dict:
    m = args.policies
    keys, flags = _keys(m)
    out = {}
    runner, params, config = _setup(m, args.updates, shard=False)
    state = _states(runner, config, keys, flags)
    out["vmap"] = _best(lambda: runner.segment(state, params)[0], args.repeats)
    single, params1, _ = _setup(1, args.updates, shard=False)
    states = [
        _states(single, config, keys[i : i + 1], flags[i : i + 1]) for i in range(m)
    ]

    def loop():
        return [single.segment(s, params1)[0] for s in states]

    out["loop"] = _best(loop, args.repeats)
    if jax.device_count() > 1:
        sharded, params2, _ = _setup(m, args.updates, shard=True)
        placed = sharded.place(_states(sharded, config, keys, flags))
        out["sharded_2_devices"] = _best(
            lambda: sharded.segment(placed, params2)[0], args.repeats
        )
    return out


def _worker(args) -> None:
    parallel.initialize_distributed(f"127.0.0.1:{args.port}", 2, args.worker)
    m = args.policies
    keys, flags = _keys(m)
    runner, params, config = _setup(m, args.updates, shard=True)
    state = runner.place(_states(runner, config, keys, flags))

    def step():  # as the study: the segment, then its metrics gathered to all
        new, metrics = runner.segment(state, params)
        parallel.to_host(metrics.gold)
        return new

    seconds = _best(step, args.repeats)
    if parallel.is_primary():
        print(json.dumps({"2_processes": seconds}), flush=True)


def _two_processes(args) -> float | None:
    port = parallel.free_local_port()
    platforms = os.environ.get("JAX_PLATFORMS", "cpu")
    env = parallel.local_worker_env(None, platforms=platforms)
    cmd = [sys.executable, os.path.abspath(__file__), "--port", str(port)]
    cmd += ["--policies", str(args.policies), "--updates", str(args.updates)]
    cmd += ["--repeats", str(args.repeats)]
    procs = [
        subprocess.Popen(
            [*cmd, "--worker", str(i)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=900) for p in procs]
    for p, (_, err) in zip(procs, outs):
        if p.returncode:
            print(f"2-process run failed:\n{err[-2000:]}", file=sys.stderr)
            return None
    line = [x for x in outs[0][0].splitlines() if x.startswith("{")][-1]
    return json.loads(line)["2_processes"]


def main(argv=None) -> dict:
    args = _parse(argv)
    if args.worker is not None:
        _worker(args)
        return {}
    if args.policies % 2:
        raise ValueError(f"--policies must be even, got {args.policies}")
    # CPU devices of this process (set before any backend starts; other backends
    # ignore it).
    jax.config.update("jax_num_cpu_devices", args.devices)
    seconds = _in_process(args)
    if not args.no_processes:
        two = _two_processes(args)
        if two is not None:
            seconds["2_processes"] = two
    updates = args.policies * args.updates
    result = {
        "device": str(jax.devices()[0]),
        "num_devices": jax.device_count(),
        "policies": args.policies,
        "updates": args.updates,
        "seconds": seconds,
        "policy_updates_per_s": {k: updates / v for k, v in seconds.items()},
        "ratio_to_loop": {k: seconds["loop"] / v for k, v in seconds.items()},
    }
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
    print(f"{args.policies} policies x {args.updates} updates on {result['device']}")
    for k, v in seconds.items():
        print(
            f"  {k:>18}: {v:8.3f} s  {updates / v:10.0f} policy updates/s  "
            f"{seconds['loop'] / v:6.2f}x loop"
        )
    return result


if __name__ == "__main__":
    main()
