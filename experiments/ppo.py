"""Study `ppo`: vanilla vs variance-aware PPO per reward source (paper B's Tables 1–4).

    python -m experiments.ppo --config configs/ppo.py [--config.preset=full]

For each reward source (``hetrlhf.alignment.ppo.world``: the paper's ``ensemble`` and ``prompted``
protocols and our ``per_policy_noise``): choose β per arm (calibrated to a common target
KL, the adaptive controller, or fixed), train the two arms of policies in one vmapped
program (independent keys per arm and per policy by default), evaluate every policy and
the reference runs alike (one sampled response per prompt, gold-scored, averaged over
the prompts), and compare the arms (``hetrlhf.alignment.ppo.arms``). The tables follow paper B's
Tables 1–4 with the KL of each arm beside every row; the world, the PPO constants and
hence every number are ours.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import jax
import matplotlib
import numpy as np

import configs
from configs import ppo as ppo_config
from hetrlhf.alignment.ppo import arms, report, rewards, runs, world
from hetrlhf.alignment.ppo.learner import PPOConfig

matplotlib.use("Agg")

import experiments

ARMS = ("vanilla", "variance_aware")
_PPO_FIELDS = tuple(f for f in PPOConfig._fields if f not in ("beta", "kl_target"))


def _checkpoint_dir(config, *parts: str) -> str:
    """results_dir/checkpoints/<parts>-<hash of the config fields that shape a run>."""
    ignore = ("results_dir", "resume", "checkpoint_every", "preset", "alpha")
    relevant = {k: v for k, v in config.to_dict().items() if k not in ignore}
    blob = json.dumps([parts, relevant], sort_keys=True, default=str)
    tag = hashlib.sha1(blob.encode()).hexdigest()[:12]
    return os.path.join(config.results_dir, "checkpoints", f"{'-'.join(parts)}-{tag}")


CONTROLS = ("calibrated", "adaptive", "fixed")


def parse_run(run: str) -> tuple[str, str]:
    """ "<source>:<KL control>" -> (source, control), both checked."""
    source, _, control = run.partition(":")
    if source not in world.SOURCES or control not in CONTROLS:
        raise ValueError(
            f"config.runs entry {run!r} must be '<source>:<control>' with a source in "
            f"{world.SOURCES} and a control in {CONTROLS}"
        )
    return source, control


def ppo_settings(config, source: world.RewardSource, control: str) -> PPOConfig:
    """The PPOConfig of a run: config.ppo, the source's observation noise, the KL
    control."""
    fields = {f: config.ppo[f] for f in _PPO_FIELDS if f in config.ppo}
    return PPOConfig(
        **fields,
        beta=config.kl.beta,
        kl_control="adaptive" if control == "adaptive" else "fixed",
        kl_target=config.kl.target,
        kl_horizon=config.kl.horizon,
        reward_noise=source.noise,
        noise_correlation=config.per_policy_noise.correlation,
    )


def choose_betas(config, w, source, control, runner, key, params, run) -> tuple:
    """[β_vanilla, β_VA] (initial β for the adaptive controller) and the calibration."""
    if control == "adaptive":
        return list(config.kl.adaptive_betas), None
    if control == "fixed":
        return list(config.kl.fixed_betas), None
    cal = runs.calibrate_betas(
        runner,
        key,
        params,
        target=config.kl.target,
        start=runs.start_betas(config.kl.beta, source, w.phi_ref, config.ppo.penalty),
        num_policies=config.num_policies,
        grid_size=config.calibration.grid_size,
        span=config.calibration.span,
        num_rounds=config.calibration.num_rounds,
        directory=_checkpoint_dir(config, run, "calibration"),
        checkpoint_every=config.checkpoint_every,
        resume=config.resume,
    )
    return cal["beta"], cal


def run_arms(config, runner, key, betas, reward_params, name: str) -> dict:
    """Both arms trained and evaluated; per arm gold, kl, expected gold, curves."""
    m = config.num_policies
    keys, flags = runs.arm_keys(key, m, paired=config.paired_keys)
    per_policy = np.repeat(np.asarray(betas, np.float64), m)
    out = runs.train_policies(
        runner,
        keys,
        flags,
        per_policy,
        reward_params,
        directory=_checkpoint_dir(config, name),
        checkpoint_every=config.checkpoint_every,
        resume=config.resume,
        desc=name,
    )
    ev = out["evaluation"]
    result = {"resumed_from_segment": out["resumed_from_segment"]}
    for i, arm in enumerate(ARMS):
        sl = slice(i * m, (i + 1) * m)
        result[arm] = {
            "beta": betas[i],
            "gold": ev.gold[sl],
            "kl": ev.kl[sl],
            "expected_gold": ev.expected_gold[sl],
            "curves": {k: v[sl].mean(axis=0) for k, v in out["curves"].items()},
        }
    return result


def sigma_summary(source_fn, reward_params, phi_ref) -> dict:
    """Spread of the reward uncertainty over reference responses: Var(σ) (paper B's
    Table-4 measure), mean σ², CV of σ²."""
    var = np.asarray(source_fn(reward_params, phi_ref).var, np.float64)
    sigma = np.sqrt(var)
    return {
        "var_sigma": sigma.var(ddof=1),
        "mean_var": var.mean(),
        "cv_var": var.std() / var.mean(),
    }


def run_one(config, w: world.World, run: str, key) -> dict:
    """One run "<source>:<control>": β, the two arms, the reference runs, the tests,
    and the Table-4 sweep when the run is in config.sweep.runs."""
    name, control = parse_run(run)
    base = w.sources[name]

    def params_at(s):
        return rewards.tempering(base.params, base.fn, w.phi_ref, s)

    swept = run in config.sweep.runs
    source = base
    if swept:  # one program for the main run and the sweep: the tempered source
        source = base._replace(fn=rewards.tempered(base.fn), params=params_at(1.0))
    params = source.params
    runner = runs.make_runner(
        ppo_settings(config, source, control),
        w,
        source,
        num_segments=config.num_segments,
        shard=config.shard,
        num_policies=2 * config.num_policies,
    )
    k_cal, k_main, k_ref, k_sweep = jax.random.split(key, 4)
    betas, cal = choose_betas(config, w, source, control, runner, k_cal, params, run)
    main = run_arms(config, runner, k_main, betas, params, run)
    reference = runs.reference_runs(runner, k_ref, config.num_reference_runs)
    result = {
        "source": name,
        "kl_control": control,
        "noise": source.noise,
        "calibration": cal,
        **main,
        "reference": reference.gold,
        "reference_kl": reference.kl,
        "sigma": sigma_summary(source.fn, params, w.phi_ref),
        "tests": _tests(config, main, reference.gold),
        "sweep": [],
    }
    for s in config.sweep.exponents if swept else ():
        rp, b, cal_s = params_at(s), betas, None
        res = main
        if s != 1.0:
            tag = f"{run}-s{s:g}"
            if config.sweep.calibrate:
                b, cal_s = choose_betas(
                    config,
                    w,
                    source._replace(params=rp),
                    control,
                    runner,
                    k_cal,
                    rp,
                    tag,
                )
            res = run_arms(config, runner, k_sweep, b, rp, tag)
        res = {k: v for k, v in res.items() if k != "resumed_from_segment"}
        summary = sigma_summary(source.fn, rp, w.phi_ref)
        tests = _tests(config, res, reference.gold)
        result["sweep"].append(
            {"exponent": s, **summary, **res, "tests": tests, "calibration": cal_s}
        )
    return result


def _tests(config, res, reference):
    return arms.compare_arms(
        res["vanilla"]["gold"],
        res["variance_aware"]["gold"],
        reference,
        alpha=config.alpha,
        paired=config.paired_keys,
    )


def _check(config) -> None:
    configs.check_int_fields(config, ("num_policies", "num_reference_runs"), minimum=3)
    configs.check_int_fields(config, ("num_segments",), minimum=1)
    if not config.runs or len(set(config.runs)) != len(config.runs):
        raise ValueError(f"config.runs must be distinct and non-empty: {config.runs}")
    for run in (*config.runs, *config.sweep.runs):
        parse_run(run)


def run(config) -> dict[str, Any]:
    """Runs the study; writes results/ppo/ and returns the payload."""
    config = experiments.prepare(config, ppo_config.PRESETS)
    _check(config)
    key = jax.random.key(config.seed)
    names = [parse_run(run)[0] for run in config.runs]
    w = world.build_world(jax.random.fold_in(key, 0), config, names)
    results = {
        run: run_one(config, w, run, jax.random.fold_in(key, 1 + i))
        for i, run in enumerate(config.runs)
    }
    text = report.tables(
        results, alpha=config.alpha, heading=_heading(config), paired=config.paired_keys
    )
    payload = {"runs": results, "sidedness": arms.SIDEDNESS}
    experiments.write(config, payload, text, report.figures(results))
    return payload


def _heading(config) -> str:
    p = config.ppo
    keys = (
        "paired keys" if config.paired_keys else "independent keys per arm and policy"
    )
    return (
        f"## PPO study: {config.num_policies} vanilla vs {config.num_policies} "
        f"variance-aware policies per reward source, {config.num_reference_runs} "
        "reference runs\n\n"
        f"policy = {config.policy} (τ = {config.temperature}), {config.num_prompts} "
        f"prompts; {p.num_updates} updates of {p.num_prompts}×{p.group_size} sampled "
        f"responses; penalty = {p.penalty}; {keys}; each policy scored by the gold "
        "reward of one sampled response per prompt, averaged over the prompts. Our "
        "simulation and constants: the numbers are not paper B's."
    )


if __name__ == "__main__":
    experiments.launch(run, "configs/ppo.py")
