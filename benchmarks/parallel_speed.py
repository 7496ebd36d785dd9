"""Benchmark: one vmapped jitted program vs a sequential Python loop (same process).

    python -m benchmarks.parallel_speed
    python -m benchmarks.parallel_speed --num_policies=80 --num_updates=100 --repeats=3
    python -m benchmarks.parallel_speed --repeats=3 --devices=2   # + policies sharded

Two workloads, each timed after compilation (the first call of every jitted function is
a warm-up and excluded), best of ``--repeats``, wall and CPU time (``process_time``):

* the K-head reward ensemble (``hetrlhf.alignment.ensemble.fit_heads``): K heads in one
  ``vmap`` vs a Python loop calling the jitted single-head fit K times;
* PPO (``hetrlhf.alignment.ppo.make_train`` on a ``CandidateTask``): M policies (half vanilla,
  half variance-aware) in one ``jax.jit(jax.vmap(train))`` vs (a) a Python loop
  calling the jitted single-policy ``train`` (a ``lax.scan`` over updates) M times,
  and (b) the naive sequential implementation, a Python loop over policies and over
  updates calling the jitted single-policy update step.

``--devices=N`` (N > 1) gives the process N CPU devices (``jax_num_cpu_devices``) and
also times the vmapped PPO program with its policy axis split over them
(``hetrlhf.parallel.sharded_map``: one vmapped program of M/N policies per device, run
side by side). The baselines do not change: the loop (a) and the one-device vmap run
on the default device, and every ratio divides the SAME loop time.

Measured on the 2-core CPU (jax 0.10.2, M = 80, 100 updates, idle machine, three runs
of ``--repeats=10 --devices=2``): the vmapped program takes 0.061–0.071 s (9–12 µs of CPU
per policy-update), the loop of compiled single-policy runs 0.123–0.152 s, so
loop/vmap = 1.9–2.3× on one device and 4.3–4.7× with the policies sharded over the two
cores; the per-update Python loop takes 1.1–1.9 s, 17–26× the vmapped program.

Why the ratio against the compiled loop stays small on a CPU: both sides run the same
lean kernel (the batch kept in prompt groups, one random draw per update, the reward
model and reference log-probabilities formed once on all responses), so a single
policy's update is ~200 small XLA thunks at ~60 ns each (12–20 µs), near the per-thunk
floor, while the vmapped program still pays XLA:CPU's per-element cost on tiny
batched shapes (batched 64×5 matvecs of the linear policy, log-softmax reductions over
8 candidates, the rolled threefry loop over the update's random words). Every change
that made the vmapped program leaner also made the single-policy run leaner (this
kernel made the vmapped program 2.5× and the compiled loop 3× faster than the
previous one, whose ratios were 2.1–2.5× and 3.9–5.1× sharded). The per-update loop
also pays jax's dispatch of a 14-leaf state (~130–200 µs per call here). On
accelerators every small kernel launch costs and the single-policy loop is far slower.

Both sides run the same kernels on the same inputs; the vmapped (and sharded) outputs
are checked against the loop's before the ratios are printed.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import app, flags

from hetrlhf import parallel
from hetrlhf.alignment import ensemble, ppo
from hetrlhf.btl.confidence import resample_weights
from hetrlhf.types import Comparisons

_HEADS = flags.DEFINE_integer("num_heads", 10, "ensemble heads K")
_N = flags.DEFINE_integer("num_comparisons", 400, "comparisons the heads are fit on")
_DIM = flags.DEFINE_integer("dim", 5, "feature dimension d")
_STEPS = flags.DEFINE_integer("num_steps", 500, "adam steps per head")
_POLICIES = flags.DEFINE_integer(
    "num_policies", 80, "PPO policies M (half of each kind)"
)
_UPDATES = flags.DEFINE_integer("num_updates", 100, "PPO updates per policy")
_REPEATS = flags.DEFINE_integer("repeats", 5, "timed repetitions (best is reported)")
_DEVICES = flags.DEFINE_integer(
    "devices",
    1,
    "CPU devices (jax_num_cpu_devices); > 1 also times the vmapped PPO program with "
    "its policy axis sharded over them",
)


def _best_times(fns: dict, repeats: int) -> dict[str, float]:
    """Best wall and CPU (``process_time``, all threads) seconds of each function.

    Calls are interleaved (fair under shared load). Keys: ``name`` (wall) and
    ``name_cpu``. On a shared machine the CPU time is the more honest measure; the
    wall time also credits XLA's use of a second core.
    """
    for fn in fns.values():
        jax.block_until_ready(fn())  # warm-up: compilation excluded
    best = dict.fromkeys(list(fns) + [f"{n}_cpu" for n in fns], np.inf)
    for _ in range(repeats):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(fn())
            best[name] = min(best[name], time.perf_counter() - start)
            best[f"{name}_cpu"] = min(
                best[f"{name}_cpu"], time.process_time() - start_cpu
            )
    return best


def bench_ensemble(num_heads, n, d, num_steps, repeats) -> dict[str, float]:
    """Seconds for K heads: vmapped (one program) vs a loop of single-head fits."""
    k_x, k_y, k_init, k_boot = jax.random.split(jax.random.key(0), 4)
    dphi = jax.random.normal(k_x, (n, d))
    y = jax.random.bernoulli(k_y, jax.nn.sigmoid(dphi @ jnp.ones(d))).astype(dphi.dtype)
    data = Comparisons(jnp.zeros_like(dphi), dphi, y, jnp.zeros((n, 0)), jnp.ones(n))
    params = ensemble.init_ensemble(k_init, num_heads, d, dtype=dphi.dtype)
    weights = resample_weights(k_boot, data, num_heads)
    fit = jax.jit(
        lambda p, w: (
            ensemble.fit_heads(
                p, data, w, optimizer=optax.adam(0.05), num_steps=num_steps
            ).params
        )
    )

    def vmapped():
        return fit(params, weights)

    def loop():
        return jnp.concatenate(
            [fit(params[k : k + 1], weights[k : k + 1]) for k in range(num_heads)]
        )

    np.testing.assert_allclose(vmapped(), loop(), rtol=1e-4, atol=1e-5)
    t = _best_times({"vmap": vmapped, "loop": loop}, repeats)
    return {
        "vmap_s": t["vmap"],
        "loop_s": t["loop"],
        "ratio": t["loop"] / t["vmap"],
        "cpu_ratio": t["loop_cpu"] / t["vmap_cpu"],
    }


def bench_ppo(num_policies, num_updates, repeats) -> dict[str, float]:
    """Seconds for M PPO runs: one vmapped program vs a loop of single-policy runs.

    With several devices, the vmapped program is also run with its policy axis split
    over all of them (``hetrlhf.parallel.sharded_map``: one vmapped program per device
    on its share of the policies); the loop and the one-device vmap run on the default
    device.
    """
    k_feat, k_ens, k_pol = jax.random.split(jax.random.key(1), 3)
    d = 5
    theta = jnp.asarray([1.0, -0.5, 0.8, 0.3, -1.0])
    task = ppo.CandidateTask(jax.random.normal(k_feat, (64, 8, d)), theta)
    heads = theta + 0.5 * jax.random.normal(k_ens, (10, d))
    config = ppo.PPOConfig(num_updates=num_updates, reward_noise="per_policy_gaussian")
    train = ppo.make_train(config, task, ensemble.ensemble_reward)
    keys = jax.random.split(k_pol, num_policies)
    flags_ = jnp.arange(num_policies) >= num_policies // 2
    train_v = jax.jit(
        jax.vmap(lambda k, f: train(k, f, heads).evaluation.expected_gold)
    )
    train_1 = jax.jit(lambda k, f: train(k, f, heads).evaluation.expected_gold)

    def vmapped():
        return train_v(keys, flags_)

    def loop():
        return jnp.stack([train_1(keys[i], flags_[i]) for i in range(num_policies)])

    fns = {"vmap": vmapped, "loop": loop}
    if jax.device_count() > 1:
        mesh = parallel.replicate_mesh()
        train_s = parallel.sharded_map(train_v, mesh)
        keys_s, flags_s = parallel.shard_replicates((keys, flags_), mesh)

        def sharded():
            return train_s(keys_s, flags_s)

        fns["sharded"] = sharded

    # The naive sequential implementation: a Python loop over policies AND over
    # updates, each update one call of the jitted single-policy step.
    learner = ppo.make_learner(config, task, ensemble.ensemble_reward)
    init_1 = jax.jit(learner.init)
    update_1 = jax.jit(lambda s: learner.update(s, heads)[0])
    evaluate_1 = jax.jit(lambda k, p: learner.evaluate(k, p).expected_gold)

    def naive():
        out = []
        for i in range(num_policies):
            state = init_1(keys[i], flags_[i])
            for _ in range(num_updates):
                state = update_1(state)
            out.append(evaluate_1(ppo.evaluation_key(keys[i]), state.params))
        return jnp.stack(out)

    # Sampled trajectories are chaotic: a last-bit difference between the batched and
    # the unbatched float32 arithmetic can flip one sampled action and move a policy a
    # little, so require agreement for most policies rather than all.
    looped = loop()
    for name in set(fns) - {"loop"}:
        close = np.isclose(fns[name](), looped, rtol=1e-3, atol=1e-4)
        if close.mean() < 0.9:
            raise AssertionError(
                f"{name} and looped PPO runs agree for {close.mean():.0%} only"
            )
    t = _best_times(fns, repeats)
    t2 = _best_times({"vmap": vmapped, "naive": naive}, 1)
    t["naive"], t["vmap"] = t2["naive"], min(t["vmap"], t2["vmap"])
    t["naive_cpu"], t["vmap_cpu"] = t2["naive_cpu"], min(t["vmap_cpu"], t2["vmap_cpu"])
    out = {
        "vmap_s": t["vmap"],
        "loop_s": t["loop"],
        "naive_s": t["naive"],
        "vmap_cpu_s": t["vmap_cpu"],
        "loop_cpu_s": t["loop_cpu"],
        "ratio": t["loop"] / t["vmap"],
        "cpu_ratio": t["loop_cpu"] / t["vmap_cpu"],
        "naive_ratio": t["naive"] / t["vmap"],
        "naive_cpu_ratio": t["naive_cpu"] / t["vmap_cpu"],
        "us_per_policy_update_vmap_cpu": 1e6
        * t["vmap_cpu"]
        / (num_policies * num_updates),
        "us_per_policy_update_loop_cpu": 1e6
        * t["loop_cpu"]
        / (num_policies * num_updates),
    }
    if "sharded" in fns:
        out.update(
            sharded_s=t["sharded"],
            sharded_cpu_s=t["sharded_cpu"],
            sharded_ratio=t["loop"] / t["sharded"],
            sharded_cpu_ratio=t["loop_cpu"] / t["sharded_cpu"],
        )
    return out


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    if _DEVICES.value < 1:
        raise app.UsageError("--devices must be >= 1")
    if _DEVICES.value > 1:
        if _POLICIES.value % _DEVICES.value:
            raise app.UsageError("--num_policies must be a multiple of --devices")
        # Before the CPU backend starts (the first jax.devices() below).
        jax.config.update("jax_num_cpu_devices", _DEVICES.value)
    device = jax.devices()[0]
    print(
        f"device: {device.platform} ({device.device_kind}), {jax.device_count()} device(s)"
    )
    e = bench_ensemble(_HEADS.value, _N.value, _DIM.value, _STEPS.value, _REPEATS.value)
    print(
        f"ensemble {_HEADS.value} heads x {_STEPS.value} adam steps (n={_N.value}, "
        f"d={_DIM.value}): vmap {e['vmap_s']:.4f} s, loop {e['loop_s']:.4f} s, "
        f"ratio loop/vmap = {e['ratio']:.1f}x (CPU time: {e['cpu_ratio']:.1f}x)"
    )
    p = bench_ppo(_POLICIES.value, _UPDATES.value, _REPEATS.value)
    print(
        f"PPO {_POLICIES.value} policies x {_UPDATES.value} updates: vmap "
        f"{p['vmap_s']:.3f} s, loop {p['loop_s']:.3f} s, ratio loop/vmap = "
        f"{p['ratio']:.1f}x (CPU time: vmap {p['vmap_cpu_s']:.3f} s = "
        f"{p['us_per_policy_update_vmap_cpu']:.1f} us per policy-update, loop "
        f"{p['loop_cpu_s']:.3f} s = {p['us_per_policy_update_loop_cpu']:.1f} us, "
        f"ratio {p['cpu_ratio']:.1f}x)"
    )
    if "sharded_s" in p:
        print(
            f"PPO {_POLICIES.value} policies sharded over {jax.device_count()} devices: "
            f"{p['sharded_s']:.3f} s, ratio loop/sharded = {p['sharded_ratio']:.1f}x "
            f"(CPU time: {p['sharded_cpu_s']:.3f} s, ratio {p['sharded_cpu_ratio']:.1f}x)"
        )
    print(
        f"PPO {_POLICIES.value} policies, Python loop over policies and updates "
        f"(jitted update step): {p['naive_s']:.3f} s, ratio naive/vmap = "
        f"{p['naive_ratio']:.1f}x (CPU time: {p['naive_cpu_ratio']:.1f}x)"
    )


if __name__ == "__main__":
    app.run(main)
