"""Study `ppo`: vanilla vs variance-aware PPO, 80 policies each (Banerjee et al. T1–T4).

    python -m experiments.ppo --config configs/ppo.py [--config.preset=paper]

Every policy starts at the same reference policy and is trained against its own
realisation of a noisy reward model (mean and variance from a K-head ensemble or from
interval rewards); all 2·80 policies are trained by one jitted ``vmap`` of the PPO run,
in segments, with the vmapped train state checkpointed by orbax. Each final policy is
scored by the GOLD reward; the study reports, as the paper's Tables 1–3, the variance of
the 80 gold rewards per method (F-test), their means (Welch t-test) and the empirical
risk P(policy worse than the reference) (two-proportion z-test and Fisher's exact test),
and, as Table 4, the same under a sweep of the spread of the reward variances.

The design and the PPO objective are our formulation (see ``configs/ppo.py`` and
``hetrlhf.ppo``); the numbers are not the paper's.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from scipy import stats
from tqdm import tqdm

import configs
from configs import ppo as ppo_config
from hetrlhf import checkpoint, parallel, ppo
from hetrlhf.alignment import ensemble, interval_rewards
from hetrlhf.reporting import markdown_table, write_results
from hetrlhf.types import RewardEstimate

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import experiments

# --------------------------------------------------------------------------------------
# Reward sources. Both are ``fn(params, phi [B, d]) -> RewardEstimate``; PPO only ever sees
# the estimate.


def interval_reward(params: dict, phi: jax.Array) -> RewardEstimate:
    """Simulated judge intervals [r − h, r + h] around the gold reward r = θ*ᵀφ.

    h(φ) = h0·exp(spread·uᵀφ − spread²); reward ~ Uniform(lo, hi): mean r, var (2h)²/12.
    """
    h = params["h0"] * jnp.exp(
        params["spread"] * (phi @ params["u"]) - params["spread"] ** 2
    )
    r = phi @ params["theta"]
    return interval_rewards.interval_moments(r - h, r + h)


def _tempered(reward_fn):
    """Wraps a source so its variances become scale·var^s (the Table-4 sweep)."""

    def fn(params, phi):
        est = reward_fn(params["base"], phi)
        return RewardEstimate(est.mean, params["scale"] * est.var ** params["exponent"])

    return fn


def _tempering(base_params, reward_fn, phi_ref, exponent):
    """Params of ``_tempered`` with the mean variance over ``phi_ref`` kept fixed."""
    var = np.asarray(reward_fn(base_params, phi_ref).var, np.float64)
    scale = var.mean() / np.mean(var**exponent)
    dtype = jnp.zeros(()).dtype
    return {
        "base": base_params,
        "exponent": jnp.asarray(exponent, dtype),
        "scale": jnp.asarray(scale, dtype),
    }


# --------------------------------------------------------------------------------------
# The simulated world: prompts, the reference policy, the reward source.


def build_world(config, key) -> dict[str, Any]:
    """Prompt set, task, reference params, reward source and reference features."""
    dtype = jnp.zeros(()).dtype
    theta = jnp.asarray(config.gold_theta, dtype)
    d = theta.shape[0]
    k_task, k_ref, k_data, k_ens, k_u, k_phi = jax.random.split(key, 6)
    reference_params = None
    if config.policy == "candidates":
        features = jax.random.normal(
            k_task, (config.num_prompts, config.num_candidates, d), dtype
        )
        task = ppo.CandidateTask(features, theta)
        params = task.init_params(k_ref)
        w = config.reference_alignment * theta / jnp.linalg.norm(theta)
        w = w + config.reference_noise * jax.random.normal(k_ref, (d,), dtype)
        params["params"]["Dense_0"]["kernel"] = w[:, None].astype(
            params["params"]["Dense_0"]["kernel"].dtype
        )
        reference_params = params
        phi_ref = features.reshape(-1, d)
    elif config.policy == "transformer":
        t = config.transformer
        k_tok, k_prm = jax.random.split(k_task)
        task = ppo.TokenTask(
            jax.random.normal(k_tok, (t.vocab_size, d), dtype),
            jax.random.normal(k_prm, (config.num_prompts, d), dtype),
            theta,
            seq_len=t.seq_len,
            policy=ppo.TinyTransformer(
                num_prompts=config.num_prompts,
                vocab_size=t.vocab_size,
                seq_len=t.seq_len,
                embed_dim=t.embed_dim,
                num_heads=t.num_heads,
                num_layers=t.num_layers,
            ),
            num_eval_samples=t.num_eval_samples,
        )
        reference_params = task.init_params(k_ref)
        ids = jnp.repeat(jnp.arange(config.num_prompts), 16)
        phi_ref = task.response_features(ids, task.sample(k_phi, reference_params, ids))
    else:
        raise ValueError(
            f"config.policy must be 'candidates' or 'transformer', got {config.policy!r}"
        )

    info: dict[str, Any] = {}
    if config.reward_source == "ensemble":
        e = config.ensemble
        n = e.num_comparisons
        k0, k1, ky = jax.random.split(k_data, 3)
        if config.policy == "candidates":
            scales = jnp.asarray(e.data_scales, dtype)
            if scales.shape != (d,):
                raise ValueError(f"config.ensemble.data_scales must have {d} entries")
            phi0 = scales * jax.random.normal(k0, (n, d), dtype)
            phi1 = scales * jax.random.normal(k1, (n, d), dtype)
        else:  # uniformly random responses to random prompts
            L, V = config.transformer.seq_len, config.transformer.vocab_size
            kp, ka, kb = jax.random.split(k0, 3)
            ids = jax.random.randint(kp, (n,), 0, config.num_prompts)
            phi0 = task.response_features(ids, jax.random.randint(ka, (n, L), 0, V))
            phi1 = task.response_features(ids, jax.random.randint(kb, (n, L), 0, V))
        p = jax.nn.sigmoid((phi1 - phi0) @ theta)
        y = jax.random.bernoulli(ky, p).astype(dtype)
        heads = ensemble.train_ensemble(
            k_ens,
            np.asarray(phi0),
            np.asarray(phi1),
            np.asarray(y),
            num_heads=e.num_heads,
            num_steps=e.num_steps,
            learning_rate=e.learning_rate,
            bootstrap=e.bootstrap,
            init_scale=e.init_scale,
        )
        base_fn, base_params, noise = ensemble.ensemble_reward, heads, "gaussian"
        info["ensemble_heads"] = heads
    elif config.reward_source == "interval":
        u = jax.random.normal(k_u, (d,), dtype)
        base_params = {
            "theta": theta,
            "u": u / jnp.linalg.norm(u),
            "h0": jnp.asarray(config.interval.h0, dtype),
            "spread": jnp.asarray(config.interval.spread, dtype),
        }
        base_fn, noise = interval_reward, "uniform"
    else:
        raise ValueError(
            f"config.reward_source must be 'ensemble' or 'interval', got {config.reward_source!r}"
        )
    est = base_fn(base_params, phi_ref)
    info["reference_set_var"] = est.var
    info["reference_set_rmse"] = jnp.sqrt(jnp.mean((est.mean - phi_ref @ theta) ** 2))
    return {
        "task": task,
        "reference_params": reference_params,
        "reward_fn": _tempered(base_fn),
        "base_fn": base_fn,
        "base_params": base_params,
        "noise": noise,
        "phi_ref": phi_ref,
        "info": info,
    }


# --------------------------------------------------------------------------------------
# Running 2·M policies in segments with orbax checkpoints.


def _config_hash(config, name: str) -> str:
    relevant = {
        k: v
        for k, v in config.to_dict().items()
        if k
        not in ("results_dir", "resume", "checkpoint_every", "sweep", "alpha", "preset")
    }
    blob = json.dumps([name, relevant], sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def make_runner(config, world):
    """Jitted, vmapped (init, segment, evaluate) of the PPO learner.

    With ``config.shard`` and several devices, the policy axis of the train state is
    split over all of them (``parallel.sharded_map``; the policies never communicate)
    and ``runner["place"]`` puts a state there; otherwise ``place`` is the identity.
    """
    pc = ppo.PPOConfig(
        num_updates=config.ppo.num_updates,
        num_prompts=config.ppo.num_prompts,
        group_size=config.ppo.group_size,
        num_epochs=config.ppo.num_epochs,
        num_minibatches=config.ppo.num_minibatches,
        learning_rate=config.ppo.learning_rate,
        max_grad_norm=config.ppo.max_grad_norm,
        clip_eps=config.ppo.clip_eps,
        beta=config.ppo.beta,
        kl_estimator=config.ppo.kl_estimator,
        baseline=config.ppo.baseline,
        value_coef=config.ppo.value_coef,
        normalize_advantages=config.ppo.normalize_advantages,
        reward_noise=world["noise"],
        noise_correlation=config.noise_correlation,
    )
    if config.num_segments < 1 or pc.num_updates % config.num_segments:
        raise ValueError(
            f"config.num_segments={config.num_segments} must be >= 1 and divide "
            f"ppo.num_updates={pc.num_updates}"
        )
    learner = ppo.make_learner(
        pc,
        world["task"],
        world["reward_fn"],
        reference_params=world["reference_params"],
        eval_key=jax.random.fold_in(jax.random.key(config.seed), 7),
    )
    per_segment = pc.num_updates // config.num_segments
    init = jax.jit(jax.vmap(learner.init))
    segment = jax.vmap(
        lambda s, rp: ppo.run_updates(learner, s, rp, per_segment), in_axes=(0, None)
    )
    evaluate = jax.vmap(learner.evaluate)
    mesh = None
    if config.shard and jax.device_count() > 1:
        mesh = parallel.replicate_mesh()
        if (2 * config.num_policies) % mesh.size:
            raise ValueError(
                f"config.shard: the 2·num_policies = {2 * config.num_policies} "
                f"policies must be a multiple of the {mesh.size} devices"
            )
        # The reward parameters are shared (replicated), the policies split.
        segment = parallel.sharded_map(segment, mesh, replicated=(1,))
        evaluate = parallel.sharded_map(evaluate, mesh)

    def place(tree):
        return tree if mesh is None else parallel.shard_replicates(tree, mesh)

    ref_gold = float(jax.jit(learner.evaluate)(learner.reference_params))
    return {
        "init": init,
        "segment": jax.jit(segment),
        "evaluate": jax.jit(evaluate),
        "place": place,
        "ref_gold": ref_gold,
        "per_segment": per_segment,
    }


def run_policies(config, runner, reward_params, name: str) -> dict[str, Any]:
    """Trains M vanilla + M variance-aware policies; returns their gold rewards."""
    m = config.num_policies
    keys = jax.random.split(jax.random.fold_in(jax.random.key(config.seed), 11), m)
    # The same M keys for both methods: policy i of each method sees the same
    # reward-model realisation and the same prompts at the first update.
    keys = jnp.concatenate([keys, keys])
    flags = jnp.concatenate([jnp.zeros(m, bool), jnp.ones(m, bool)])
    state = runner["init"](keys, flags)
    curve = np.full((2 * m, config.ppo.num_updates), np.nan)
    start = 0
    directory = os.path.join(
        config.results_dir, "checkpoints", f"{name}-{_config_hash(config, name)}"
    )
    if config.checkpoint_every > 0 and config.resume:
        latest = checkpoint.latest_step(directory)
        if latest is not None:
            restored = checkpoint.restore_pytree(
                directory, latest, {"state": state, "curve": curve}
            )
            state, curve = restored["state"], np.array(restored["curve"])
            start = latest
    state = runner["place"](state)
    u = runner["per_segment"]
    for seg in tqdm(range(start, config.num_segments), desc=name, leave=False):
        state, metrics = runner["segment"](state, reward_params)
        curve[:, seg * u : (seg + 1) * u] = np.asarray(metrics.gold)
        done = seg + 1
        if config.checkpoint_every > 0 and (
            done % config.checkpoint_every == 0 or done == config.num_segments
        ):
            checkpoint.save_pytree(
                directory, done, {"state": state, "curve": curve}, max_to_keep=1
            )
    gold = np.asarray(runner["evaluate"](state.params), np.float64)
    return {
        "gold_vanilla": gold[:m],
        "gold_variance_aware": gold[m:],
        "reference_gold": runner["ref_gold"],
        "curve_vanilla": np.nanmean(curve[:m], axis=0),
        "curve_variance_aware": np.nanmean(curve[m:], axis=0),
        "resumed_from_segment": start,
    }


# --------------------------------------------------------------------------------------
# Statistics (Tables 1–3).


def compare(gold_v, gold_va, reference, alpha) -> dict[str, float]:
    """F-test of variances, Welch t-test of means, risk P(gold < reference) with tests."""
    gold_v, gold_va = np.asarray(gold_v, float), np.asarray(gold_va, float)
    n1, n2 = gold_v.size, gold_va.size
    var_v, var_va = gold_v.var(ddof=1), gold_va.var(ddof=1)
    f_stat = var_v / var_va if var_va > 0 else math.inf
    f_crit = stats.f.ppf(1 - alpha, n1 - 1, n2 - 1)
    f_p = stats.f.sf(f_stat, n1 - 1, n2 - 1)
    welch = stats.ttest_ind(gold_v, gold_va, equal_var=False)
    x1, x2 = int(np.sum(gold_v < reference)), int(np.sum(gold_va < reference))
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (p1 - p2) / se if se > 0 else 0.0
    fisher = stats.fisher_exact([[x1, n1 - x1], [x2, n2 - x2]])
    return {
        "var_vanilla": var_v,
        "var_variance_aware": var_va,
        "f_stat": f_stat,
        "f_critical": f_crit,
        "f_p_value": f_p,
        "mean_vanilla": gold_v.mean(),
        "mean_variance_aware": gold_va.mean(),
        "mean_difference": gold_v.mean() - gold_va.mean(),
        "welch_t": float(welch.statistic),
        "welch_df": float(welch.df),
        "welch_p_value": float(welch.pvalue),
        "risk_vanilla": p1,
        "risk_variance_aware": p2,
        "risk_difference": p1 - p2,
        "risk_z": z,
        "risk_z_p_value": 2 * stats.norm.sf(abs(z)),
        "risk_fisher_p_value": float(fisher.pvalue),
    }


def _histogram(result, title):
    fig, ax = plt.subplots(figsize=(6, 4))
    both = np.concatenate([result["gold_vanilla"], result["gold_variance_aware"]])
    bins = np.linspace(both.min(), both.max(), 25) if np.ptp(both) > 0 else 10
    ax.hist(result["gold_vanilla"], bins=bins, alpha=0.6, label="vanilla PPO")
    ax.hist(
        result["gold_variance_aware"], bins=bins, alpha=0.6, label="variance-aware PPO"
    )
    ax.axvline(result["reference_gold"], color="k", ls="--", label="reference policy")
    ax.set_xlabel("gold reward of the trained policy")
    ax.set_ylabel("policies")
    ax.set_title(title)
    ax.legend()
    return fig


def run(config) -> dict[str, Any]:
    """Runs the study; writes results/ppo/ and returns the payload."""
    config = configs.apply_preset(config, ppo_config.PRESETS)
    key = jax.random.key(config.seed)
    world = build_world(config, jax.random.fold_in(key, 0))
    runner = make_runner(config, world)
    m, alpha = config.num_policies, config.alpha

    main_params = _tempering(
        world["base_params"], world["base_fn"], world["phi_ref"], 1.0
    )
    main = run_policies(config, runner, main_params, "main")
    main_stats = compare(
        main["gold_vanilla"], main["gold_variance_aware"], main["reference_gold"], alpha
    )

    sweep = []
    if config.sweep.enabled:
        for s in tqdm(config.sweep.exponents, desc="sweep"):
            rp = _tempering(world["base_params"], world["base_fn"], world["phi_ref"], s)
            var = np.asarray(world["reward_fn"](rp, world["phi_ref"]).var)
            # s = 1 is the main run (same variances): reuse it.
            res = main if s == 1.0 else run_policies(config, runner, rp, f"sweep_{s:g}")
            sweep.append(
                dict(
                    exponent=float(s),
                    var_cv=float(var.std() / var.mean()),
                    **compare(
                        res["gold_vanilla"],
                        res["gold_variance_aware"],
                        res["reference_gold"],
                        alpha,
                    ),
                    result=res,
                )
            )

    st = main_stats
    df = f"({m - 1}, {m - 1})"
    var = np.asarray(world["info"]["reference_set_var"])
    heading = (
        f"## PPO study: {m} vanilla vs {m} variance-aware policies\n\n"
        f"policy = {config.policy}, reward source = {config.reward_source}, "
        f"β = {config.ppo.beta}, {config.ppo.num_updates} updates; reward-estimate σ² over "
        f"the prompt set: mean {var.mean():.3f}, CV {var.std() / var.mean():.2f}; "
        f"reward-mean RMSE vs gold {float(world['info']['reference_set_rmse']):.3f}. "
        "Our simulation and PPO formulation, not the paper's numbers.\n"
    )
    t1 = markdown_table(
        [
            "var (vanilla)",
            "var (variance-aware)",
            "F = ratio",
            f"F crit {df}, α={alpha}",
            "p (F-test)",
            "reject H0",
        ],
        [
            [
                st["var_vanilla"],
                st["var_variance_aware"],
                st["f_stat"],
                st["f_critical"],
                st["f_p_value"],
                bool(st["f_stat"] > st["f_critical"]),
            ]
        ],
        digits=4,
    )
    t2 = markdown_table(
        ["mean (vanilla)", "mean (variance-aware)", "difference", "Welch t", "df", "p"],
        [
            [
                st["mean_vanilla"],
                st["mean_variance_aware"],
                st["mean_difference"],
                st["welch_t"],
                st["welch_df"],
                st["welch_p_value"],
            ]
        ],
        digits=4,
    )
    t3 = markdown_table(
        [
            "reference gold",
            "risk (vanilla)",
            "risk (variance-aware)",
            "difference",
            "z",
            "p (z)",
            "p (Fisher)",
        ],
        [
            [
                main["reference_gold"],
                st["risk_vanilla"],
                st["risk_variance_aware"],
                st["risk_difference"],
                st["risk_z"],
                st["risk_z_p_value"],
                st["risk_fisher_p_value"],
            ]
        ],
        digits=4,
    )
    text = (
        heading
        + "\n### Table 1: variance of the policies' gold rewards (F-test, H1: vanilla > variance-aware)\n\n"
        + t1
        + "\n\n### Table 2: mean gold reward (Welch t-test)\n\n"
        + t2
        + "\n\n### Table 3: empirical risk P(gold reward < reference policy's)\n\n"
        + t3
        + "\n"
    )
    if sweep:
        t4 = markdown_table(
            [
                "exponent s",
                "CV of σ²",
                "var (v)",
                "var (va)",
                "F",
                "p (F)",
                "mean (v)",
                "mean (va)",
                "p (Welch)",
                "risk (v)",
                "risk (va)",
            ],
            [
                [
                    r["exponent"],
                    r["var_cv"],
                    r["var_vanilla"],
                    r["var_variance_aware"],
                    r["f_stat"],
                    r["f_p_value"],
                    r["mean_vanilla"],
                    r["mean_variance_aware"],
                    r["welch_p_value"],
                    r["risk_vanilla"],
                    r["risk_variance_aware"],
                ]
                for r in sweep
            ],
            digits=4,
        )
        text += (
            "\n### Table 4: sweep over the spread of the reward variances "
            "(σ²_s ∝ (σ²)^s, same mean; s = 0: all equal)\n\n" + t4 + "\n"
        )

    figures = {
        "gold_histogram": _histogram(
            main, f"{config.reward_source} rewards, {config.policy}"
        )
    }
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(main["curve_vanilla"], label="vanilla PPO")
    ax.plot(main["curve_variance_aware"], label="variance-aware PPO")
    ax.axhline(main["reference_gold"], color="k", ls="--", label="reference policy")
    ax.set_xlabel("update")
    ax.set_ylabel("mean gold reward of sampled responses")
    ax.legend()
    figures["learning_curves"] = fig
    if sweep:
        fig, ax = plt.subplots(figsize=(6, 4))
        cv = [r["var_cv"] for r in sweep]
        ax.plot(cv, [r["var_vanilla"] for r in sweep], "o-", label="vanilla")
        ax.plot(
            cv, [r["var_variance_aware"] for r in sweep], "s-", label="variance-aware"
        )
        ax.set_xlabel("coefficient of variation of the reward variances")
        ax.set_ylabel("variance of the policies' gold rewards")
        ax.legend()
        figures["sweep_variance"] = fig

    payload = {
        "config": config,
        "main": dict(**main, **main_stats),
        "sweep": sweep,
        "reference_set_var": var,
    }
    write_results(config.results_dir, payload, text, figures)
    return payload


if __name__ == "__main__":
    experiments.launch(run, "configs/ppo.py", x64=False)
