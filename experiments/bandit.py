"""Bandit study: variance-aware vs vanilla trust-region steps (Banerjee et al. 2025, §2).

(a) A 3-arm example: fixed true reward r and noise variances σ², many noise draws
    r̂ ~ N(r, Σ); the empirical risk P(⟨δ(r̂), r⟩ <= 0) of both steps next to the
    closed form ``policy.underperformance_probability``, with Monte Carlo standard
    errors; plus the KL-regularised policies (Gibbs, Sharpe tilt, variance-penalised)
    by Monte Carlo.
(b) Low vs high variance heterogeneity: many random instances (Figures 3–4
    analogues): histograms of the improvement ⟨δ, r⟩ and of the risks.

Run:  python -m experiments.bandit --config configs/bandit.py
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from tqdm import tqdm

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import configs
import experiments
from configs import bandit as bandit_config
from hetrlhf import montecarlo as mc
from hetrlhf import reporting
from hetrlhf.alignment import policy

_POLICIES = ("vanilla", "variance-aware")


def _risks(r, var, simplex):
    """[2] closed-form risks of the vanilla and the variance-aware step."""
    risk = functools.partial(
        policy.underperformance_probability, r, var, simplex=simplex
    )
    return jnp.stack([risk(variance_aware=False), risk(variance_aware=True)])


simulate_instance = jax.jit(
    policy.step_improvements, static_argnames=("num_draws", "simplex")
)
simulate_kl_policies = jax.jit(
    policy.kl_policy_improvements, static_argnames=("num_draws",)
)


@functools.partial(
    jax.jit, static_argnames=("num_arms", "num_instances", "num_draws", "simplex")
)
def simulate_heterogeneity(
    key,
    spread,
    reward_scale,
    mean_log_var,
    eps,
    *,
    num_arms,
    num_instances,
    num_draws,
    simplex,
):
    """Random instances at one heterogeneity level: risks and improvements.

    r ~ N(0, reward_scale² I_K); log σ²(a) = mean_log_var + spread·u(a), u ~ U(−1, 1)
    (our design).

    Returns:
      dict with r [N, K], var [N, K], risk [N, 2] (closed form),
      improvement [N, D, 2] (⟨δ(r̂), r⟩ per draw), for (vanilla, variance-aware).
    """
    k_r, k_u, k_draws = jax.random.split(key, 3)
    r = reward_scale * jax.random.normal(k_r, (num_instances, num_arms))
    u = jax.random.uniform(k_u, (num_instances, num_arms), minval=-1.0, maxval=1.0)
    var = jnp.exp(mean_log_var + spread * u)
    risk = jax.vmap(_risks, in_axes=(0, 0, None))(r, var, simplex)
    sim = functools.partial(simulate_instance, num_draws=num_draws, simplex=simplex)
    keys = jax.random.split(k_draws, num_instances)
    improvement = jax.vmap(sim, in_axes=(0, 0, 0, None))(keys, r, var, eps)
    return {"r": r, "var": var, "risk": risk, "improvement": improvement}


def _mean_se(x) -> tuple[float, float]:
    mean, se = mc.mean_se(np.ravel(x), np.float64)
    return float(mean), float(se)


def _check_config(config):
    if config.eps <= 0:
        raise ValueError(f"config.eps must be > 0, got {config.eps}")
    if len(config.example.reward) != len(config.example.var):
        raise ValueError(
            "config.example.reward and config.example.var differ in length"
        )
    het = config.heterogeneity
    if len(het.level_names) != len(het.log_spreads):
        raise ValueError(
            "config.heterogeneity.level_names and log_spreads differ in length"
        )
    for name, k in (
        ("example", len(config.example.reward)),
        ("heterogeneity", config.heterogeneity.num_arms),
    ):
        if math.sqrt(config.eps) > 1.0 / k:
            raise ValueError(
                f"config.eps = {config.eps} too large for the {name} study: √ε must be "
                f"<= 1/K = {1.0 / k:.4g} so that π₀ + δ stays a distribution"
            )


def _example_setting(improvement, closed, eps, num_draws) -> dict:
    """MC risk and mean improvement of both steps vs their closed-form risks."""
    out = {}
    for j, name in enumerate(_POLICIES):
        emp, emp_se = _mean_se(improvement[:, j] <= 0)
        gain, gain_se = _mean_se(improvement[:, j] / math.sqrt(eps))
        binom_se = math.sqrt(closed[j] * (1 - closed[j]) / num_draws)
        out[name] = {
            "risk_closed_form": float(closed[j]),
            "risk_monte_carlo": emp,
            "risk_monte_carlo_se": emp_se,
            "z": (emp - closed[j]) / binom_se if binom_se > 0 else float("nan"),
            "mean_improvement_over_sqrt_eps": gain,
            "mean_improvement_over_sqrt_eps_se": gain_se,
            "improvement_histogram": np.histogram(improvement[:, j], bins=60),
        }
    out["_improvement_sample"] = improvement[:2000]  # figure only
    return out


_KL_POLICIES = ("Gibbs KL (vanilla)", "Sharpe tilt", "variance-penalised")


def run_example(key, config):
    """(a) The fixed example: closed-form vs Monte Carlo risk, both settings."""
    cfg = config.example
    r = jnp.asarray(cfg.reward, dtype=jnp.zeros(()).dtype)
    var = jnp.asarray(cfg.var, dtype=r.dtype)
    k_steps, k_kl = jax.random.split(key)
    out, rows = {}, []
    for setting, simplex in (("simplex", True), ("unconstrained", False)):
        improvement = simulate_instance(
            k_steps, r, var, config.eps, num_draws=cfg.num_draws, simplex=simplex
        )
        closed = np.asarray(_risks(r, var, simplex))
        out[setting] = _example_setting(
            np.asarray(improvement), closed, config.eps, cfg.num_draws
        )
        fields = ("risk_closed_form", "risk_monte_carlo", "risk_monte_carlo_se", "z")
        fields += (
            "mean_improvement_over_sqrt_eps",
            "mean_improvement_over_sqrt_eps_se",
        )
        rows += [[setting, n, *(out[setting][n][f] for f in fields)] for n in _POLICIES]
    kl = np.asarray(
        simulate_kl_policies(k_kl, r, var, cfg.beta, num_draws=cfg.num_draws)
    )
    out["kl"] = {}
    for j, name in enumerate(_KL_POLICIES):
        (emp, emp_se), (gain, gain_se) = _mean_se(kl[:, j] <= 0), _mean_se(kl[:, j])
        out["kl"][name] = dict(
            zip(_KL_FIELDS, (emp, emp_se, gain, gain_se), strict=True)
        )
    kl_rows = [[name, *out["kl"][name].values()] for name in _KL_POLICIES]
    header = ["setting", "step", "risk (closed form)", "risk (MC)", "MC se", "z"]
    table = (
        f"### (a) {r.size}-arm example: r = {tuple(cfg.reward)}, σ² = {tuple(cfg.var)}, "
        f"ε = {config.eps}, {cfg.num_draws} noise draws\n\n"
        + reporting.markdown_table([*header, "E⟨δ,r⟩/√ε", "se"], rows, digits=4)
        + f"\n\nKL-regularised policies (π₀ uniform, β = {cfg.beta}, σ² normalised by "
        "λ_min; Monte Carlo only):\n\n"
        + reporting.markdown_table(
            ["policy", "risk (MC)", "MC se", "E⟨π−π₀,r⟩", "se"], kl_rows, digits=4
        )
    )
    return out, table


_KL_FIELDS = (
    "risk_monte_carlo",
    "risk_monte_carlo_se",
    "mean_improvement",
    "mean_improvement_se",
)


def _level_summary(res: dict, spread, eps) -> dict:
    """Risks and improvements of one heterogeneity level (closed form and MC)."""
    risk, improvement = res["risk"], res["improvement"] / math.sqrt(eps)
    per_instance_emp = np.mean(improvement <= 0, axis=1)  # [N, 2]
    lower = risk[:, 1] < risk[:, 0] - 1e-9
    summary = {
        "spread": spread,
        "frac_instances_variance_aware_lower_risk": float(np.mean(lower)),
        "mean_risk_reduction": _mean_se(risk[:, 0] - risk[:, 1]),
        "risk": risk,
        "risk_empirical_per_instance": per_instance_emp,
    }
    for j, name in enumerate(_POLICIES):
        emp, emp_se = _mean_se(per_instance_emp[:, j])
        gain, gain_se = _mean_se(improvement[..., j].mean(1))
        summary[name] = {
            "mean_risk_closed_form": float(risk[:, j].mean()),
            "risk_empirical": emp,
            "risk_empirical_se": emp_se,
            "mean_improvement_over_sqrt_eps": gain,
            "mean_improvement_over_sqrt_eps_se": gain_se,
            "q05_improvement_over_sqrt_eps": float(
                np.quantile(improvement[..., j], 0.05)
            ),
        }
    summary["_improvement"] = improvement  # for the figures; dropped from JSON
    return summary


def run_heterogeneity(key, config):
    """(b) Low vs high variance heterogeneity over random instances."""
    cfg = config.heterogeneity
    out, rows = {}, []
    levels = list(zip(cfg.level_names, cfg.log_spreads))
    keys = jax.random.split(key, len(levels))
    for (level, spread), k in tqdm(list(zip(levels, keys)), desc="heterogeneity"):
        res = simulate_heterogeneity(
            k,
            spread,
            cfg.reward_scale,
            cfg.mean_log_var,
            config.eps,
            num_arms=cfg.num_arms,
            num_instances=cfg.num_instances,
            num_draws=cfg.num_draws,
            simplex=cfg.simplex,
        )
        out[level] = s = _level_summary(
            jax.tree.map(np.asarray, res), spread, config.eps
        )
        fields = ("mean_risk_closed_form", "risk_empirical", "risk_empirical_se")
        fields += (
            "mean_improvement_over_sqrt_eps",
            "mean_improvement_over_sqrt_eps_se",
        )
        rows += [
            [level, spread, name, *(s[name][f] for f in fields),
             s[name]["q05_improvement_over_sqrt_eps"],
             s["frac_instances_variance_aware_lower_risk"]]
            for name in _POLICIES
        ]  # fmt: skip
    header = ["level", "spread", "step", "mean risk (closed form)", "risk (MC)"]
    header += ["MC se", "E⟨δ,r⟩/√ε", "se", "5% quantile ⟨δ,r⟩/√ε"]
    table = (
        f"### (b) Variance heterogeneity: {cfg.num_instances} instances × "
        f"{cfg.num_draws} draws, K = {cfg.num_arms}, r ~ N(0, {cfg.reward_scale}²), "
        f"log σ² = {cfg.mean_log_var} + spread·U(−1, 1), simplex = {cfg.simplex}\n\n"
        + reporting.markdown_table([*header, "frac. VA risk lower"], rows, digits=4)
    )
    return out, table


def _histograms(ax, data, bins, xlabel: str, zero: bool) -> None:
    """Overlaid histograms of both steps' columns of ``data`` [.., 2]."""
    for j, name in enumerate(_POLICIES):
        ax.hist(data[:, j], bins=bins, alpha=0.55, label=name)
    if zero:
        ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8)


def _figures(example, hetero, config):
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    cells = [
        (s, n, example[s][n]) for s in ("simplex", "unconstrained") for n in _POLICIES
    ]
    x = np.arange(len(cells))
    axes[0].bar(
        x - 0.2, [e["risk_closed_form"] for *_, e in cells], 0.4, label="closed form"
    )
    axes[0].bar(x + 0.2, [e["risk_monte_carlo"] for *_, e in cells], 0.4,
                yerr=[1.96 * e["risk_monte_carlo_se"] for *_, e in cells], capsize=3,
                label="Monte Carlo ± 1.96 se")  # fmt: skip
    axes[0].set_xticks(x, [f"{s}\n{n}" for s, n, _ in cells], fontsize=8)
    axes[0].set(ylabel="P(⟨δ, r⟩ ≤ 0)", title="(a) risk of the example")
    axes[0].legend(fontsize=8)
    sample = example["simplex"]["_improvement_sample"] / math.sqrt(config.eps)
    bins = np.linspace(sample.min(), sample.max(), 50)
    _histograms(axes[1], sample, bins, "⟨δ(r̂), r⟩ / √ε (simplex)", zero=True)
    axes[1].set_title("(a) improvement over π₀, first 2000 draws")
    figs = {"example": fig}
    for kind in ("improvement", "risk"):
        fig, axes = plt.subplots(
            1, len(hetero), figsize=(5.5 * len(hetero), 3.8), squeeze=False
        )
        for ax, (level, res) in zip(axes[0], hetero.items()):
            if kind == "improvement":
                data, xlabel = res["_improvement"].reshape(-1, 2), "⟨δ(r̂), r⟩ / √ε"
            else:
                data, xlabel = res["risk"], "P(⟨δ, r⟩ ≤ 0) per instance (closed form)"
            bins = np.linspace(
                data.min(), data.max(), config.heterogeneity.num_bins + 1
            )
            _histograms(ax, data, bins, xlabel, zero=kind == "improvement")
            ax.set_title(f"{level} heterogeneity (spread {res['spread']})")
        figs[f"heterogeneity_{kind}"] = fig
    return figs


def run(config) -> dict:
    """Runs the study, writes ``config.results_dir`` and returns the payload."""
    config = configs.apply_preset(config, bandit_config.PRESETS)
    _check_config(config)
    key_example, key_hetero = jax.random.split(jax.random.key(config.seed))
    example, table_a = run_example(key_example, config)
    hetero, table_b = run_heterogeneity(key_hetero, config)
    figures = _figures(example, hetero, config)
    for level in hetero.values():
        del level["_improvement"]
    for setting in ("simplex", "unconstrained"):
        del example[setting]["_improvement_sample"]
    payload = {"config": config, "example": example, "heterogeneity": hetero}
    reporting.write_results(
        config.results_dir, payload, table_a + "\n\n" + table_b, figures
    )
    return payload


if __name__ == "__main__":
    experiments.launch(run, "configs/bandit.py")
