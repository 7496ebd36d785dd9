"""Reward-test study: Wald reward intervals and the reward-difference z-test (Theorems 3–4).

Liu, Lu & Sun (2025) show that estimated rewards and reward differences are
asymptotically normal (Theorems 3–4 in the numbering of DESIGN.md §A5), which gives
the Wald interval r̂ ± z_{1−α/2}·sqrt(φᵀΣ_θφ) and the z-test of H0: r(s, a) = r(s, a′)
(``hr.compare_rewards``). This study checks both by Monte Carlo on our design (DESIGN.md
§6; not the paper's numbers). For each n in ``config.sample_sizes``, each of
``num_replicates`` replicates simulates n comparisons, fits ``hr.fit`` and its
covariance, and then, with fresh candidates of the same design,

* one new response φ: does θ̂ᵀφ ± z·se cover the true reward θ*ᵀφ? (Theorem 3)
* one pair per true gap δ of ``config.gaps`` (``simulate.reward_gap_pairs``: two
  candidates whose difference is moved along θ* so that θ*ᵀ(φ_a − φ_b) = δ): the
  two-sided and the one-sided (H1: r_a > r_b) z-test at level α, and whether the
  difference interval Δ̂ ± z·se covers δ (Theorem 4).

Reported per n: the size at α (δ = 0) with its exact binomial 95% band and a binomial
test of "rejection probability = α" (``scipy.stats.binomtest``); the power curve over δ
beside the asymptotic power E[Φ(λ − z) + Φ(−λ − z)], λ = δ/se*, with se* the standard
error from the population information at the truth (``hetrlhf.btl.theory.normal_power``);
the coverages with their binomial bands. Only replicates whose fit converged count (the
others are counted). One replicate gives one test per gap, so rejections of one gap are
independent across replicates (different gaps of one replicate share its fit).

Run:  python -m experiments.reward_test --config configs/reward_test.py
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import configs
import experiments
import hetrlhf as hr
from configs import reward_test as reward_test_config
from hetrlhf import montecarlo as mc
from hetrlhf import reporting
from hetrlhf.btl import theory
from hetrlhf.data import simulate as sim


class Replicate(NamedTuple):
    """Outputs of one replicate (E gaps, d reward features)."""

    converged: jax.Array  # [] bool
    reward_covered: jax.Array  # [] bool: θ*ᵀφ in θ̂ᵀφ ± z·se
    reject: jax.Array  # [E] bool: two-sided p < α
    reject_greater: jax.Array  # [E] bool: one-sided (H1: r_a > r_b) p < α
    gap_covered: jax.Array  # [E] bool: δ in Δ̂ ± z·se
    estimate: jax.Array  # [E] Δ̂
    se: jax.Array  # [E] its standard error
    diff: jax.Array  # [E, d] φ_a − φ_b of the test pairs


def make_replicate(design: sim.Design, n: int, gaps: tuple[float, ...], alpha: float):
    """One replicate ``key -> Replicate`` (pure; vmap/jit at the call site)."""
    theta_star = jnp.asarray(design.theta)

    def replicate(key: jax.Array) -> Replicate:
        key_data, key_pairs, key_new = jax.random.split(key, 3)
        data = sim.simulate(key_data, design, n)
        result = hr.fit(data)
        cov = hr.covariance(result.params, data)  # traced: NaN rather than an error
        z = jax.scipy.stats.norm.ppf(1.0 - alpha / 2.0)
        phi = sim.simulate_candidates(key_new, design, 1, 1)[0, 0]
        est = hr.reward_interval(result.params, data, phi, cov=cov)
        truth = phi @ theta_star.astype(phi.dtype)
        gap = jnp.asarray(gaps, phi.dtype)
        phi_a, phi_b = sim.reward_gap_pairs(key_pairs, design, gap)
        test = hr.compare_rewards(result.params, data, phi_a, phi_b, cov=cov)
        return Replicate(
            converged=result.converged,
            reward_covered=jnp.abs(est.mean - truth) <= z * jnp.sqrt(est.var),
            reject=test.p_value < alpha,
            reject_greater=test.p_value_greater < alpha,
            gap_covered=jnp.abs(test.estimate - gap) <= z * test.se,
            estimate=test.estimate,
            se=test.se,
            diff=phi_a - phi_b,
        )

    return replicate


def summarize(
    out: Replicate, gaps, alpha: float, theta_cov: np.ndarray, n: int
) -> dict:
    """Size, power, coverage of one sample size (numpy).

    Args:
      out: [R]-stacked replicates.
      gaps: the E true gaps.
      alpha: the level.
      theta_cov: [d, d] θ-block of the population I⁻¹ (= Ĩ⁻¹), for the asymptotic
        power with se* = sqrt(Δᵀ Ĩ⁻¹ Δ / n).
      n: the sample size.
    """
    ok = np.asarray(out.converged, bool)
    gaps = np.asarray(gaps, float)
    reject = np.asarray(out.reject, bool)[ok]  # [R, E]
    diff = np.asarray(out.diff, float)[ok]  # [R, E, d]
    se_star = np.sqrt(np.einsum("red,df,ref->re", diff, theta_cov, diff) / n)
    power_theory = np.asarray(theory.normal_power(gaps[None, :] / se_star, alpha)).mean(
        0
    )
    null = np.flatnonzero(gaps == 0.0)
    power, power_mc_se = mc.proportion(reject)
    summary = {
        "num_replicates": int(ok.size),
        "num_not_converged": int((~ok).sum()),
        "gaps": gaps,
        "power": power,
        "power_mc_se": power_mc_se,
        "power_theory": power_theory,
        "power_greater": np.asarray(out.reject_greater, bool)[ok].mean(0),
        "reward_ci_coverage": mc.rate_check(
            np.asarray(out.reward_covered, bool)[ok], 1 - alpha
        ),
        "difference_ci_coverage": [
            mc.rate_check(np.asarray(out.gap_covered, bool)[ok, e], 1 - alpha)
            for e in range(gaps.size)
        ],
        "median_se": np.median(np.asarray(out.se, float)[ok], axis=0),
        "median_se_theory": np.median(se_star, axis=0),
    }
    if null.size:
        e = int(null[0])
        summary["size"] = mc.rate_check(reject[:, e], alpha)
        summary["size_greater"] = mc.rate_check(
            np.asarray(out.reject_greater, bool)[ok, e], alpha
        )
    return summary


def check_config(config) -> None:
    """Raises ValueError naming the first bad field of a (resolved) config."""
    configs.check_sample_sizes(config)
    configs.check_int_fields(
        config, ("num_replicates", "chunk_size", "fisher_sample_size")
    )
    configs.check_int_fields(config, ("vmap_size",), minimum=0)
    configs.check_alpha(config)
    gaps = tuple(config.gaps)
    if not gaps or not all(np.isfinite(g) and g >= 0 for g in gaps):
        raise ValueError(f"config.gaps must be finite and >= 0, got {gaps}")


def _rate_cell(r: dict) -> str:
    lo, hi = r["band"]
    return f"{r['rate']:.3f} [{lo:.3f}, {hi:.3f}]" + ("" if r["inside_band"] else " ✗")


def _table(config, stats_by_n) -> str:
    level = 1 - config.alpha
    records = [{"n": n, **stats_by_n[str(n)]} for n in config.sample_sizes]

    def size(key, fmt=_rate_cell, missing=""):
        return lambda s: fmt(s[key]) if "size" in s else missing

    first = reporting.records_table(
        records,
        {
            "n": "n",
            "converged fits R": lambda s: s["num_replicates"] - s["num_not_converged"],
            f"size, two-sided (α = {config.alpha}) [95% band]": size("size"),
            "binomial test p": size("size", lambda r: r["binom_p"], float("nan")),
            "size, one-sided H1: r_a > r_b [band]": size("size_greater"),
            f"reward CI coverage ({level:.0%}) [band]": lambda s: _rate_cell(
                s["reward_ci_coverage"]
            ),
        },
    )
    per_gap = {f"δ = {g:g}": j for j, g in enumerate(config.gaps)}
    power = reporting.records_table(
        records,
        {"n": "n"}
        | {
            h: lambda s, j=j: (
                f"{s['power'][j]:.3f} ± {s['power_mc_se'][j]:.3f} "
                f"(asympt. {s['power_theory'][j]:.3f})"
            )
            for h, j in per_gap.items()
        },
    )
    cover = reporting.records_table(
        records,
        {"n": "n"}
        | {
            h: lambda s, j=j: _rate_cell(s["difference_ci_coverage"][j])
            for h, j in per_gap.items()
        },
    )
    return (
        f"## Reward tests — our design `{config.design}`, "
        f"{config.num_replicates} replicates per n\n\n"
        "Size of the z-test of H0: r(s, a) = r(s, a′) (hr.compare_rewards) on pairs "
        "with a true gap δ = 0, with the exact binomial 95% band around α (✗: outside) "
        "and the binomial test of 'rejection probability = α'; coverage of the Wald "
        "interval of the reward of a new response (Theorem 3).\n\n"
        f"{first}\n\n"
        "## Power of the two-sided test vs the true gap δ (reward units)\n\n"
        "Observed rejection rate ± MC error; asympt.: the mean over the replicates' "
        "pairs of Φ(λ − z) + Φ(−λ − z), λ = δ/se*, se* from the population "
        "information at the truth (Theorem 4).\n\n"
        f"{power}\n\n"
        f"## Coverage of the {level:.0%} reward-difference intervals Δ̂ ± z·se of δ\n\n"
        f"{cover}\n"
    )


def _figure(config, stats_by_n):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    gaps = np.asarray(config.gaps, float)
    for n in config.sample_sizes:
        s = stats_by_n[str(n)]
        (line,) = axes[0].plot(gaps, s["power_theory"], "-", lw=1)
        axes[0].errorbar(
            gaps,
            s["power"],
            yerr=2 * s["power_mc_se"],
            fmt="o",
            color=line.get_color(),
            capsize=3,
            label=f"n = {n}",
        )
    axes[0].axhline(config.alpha, color="k", lw=1, ls=":")
    axes[0].set_xlabel("true reward gap δ")
    axes[0].set_ylabel("rejection rate (two-sided)")
    axes[0].set_title("power: observed ± 2 MC se (points), asymptotic (lines)")
    axes[0].legend(fontsize=8)
    sizes = list(config.sample_sizes)
    for j, n in enumerate(sizes):
        s = stats_by_n[str(n)]
        if "size" not in s:
            continue
        lo, hi = s["size"]["band"]
        axes[1].fill_between([j - 0.3, j + 0.3], lo, hi, color="0.85")
        axes[1].plot(j, s["size"]["rate"], "o", color="C0")
        axes[1].plot(j + 0.1, s["size_greater"]["rate"], "s", color="C1")
    axes[1].axhline(config.alpha, color="k", lw=1)
    axes[1].set_xticks(range(len(sizes)), [f"n = {n}" for n in sizes])
    axes[1].set_ylabel("size")
    axes[1].set_title("size at α: two-sided (o), one-sided (s), binomial 95% band")
    fig.tight_layout()
    return fig


def run(config) -> dict:
    """Runs the study described by ``config``; writes results_dir; returns the payload."""
    config = experiments.prepare(config, reward_test_config.PRESETS)
    check_config(config)
    design = sim.get_design(config.design)
    gaps = tuple(float(g) for g in config.gaps)
    root = jax.random.key(config.seed)
    info = sim.population_information(
        jax.random.fold_in(root, 0), design, config.fisher_sample_size
    )
    theta_cov = np.linalg.inv(
        np.asarray(theory.profiled_information(jnp.asarray(info), design.d))
    )
    stats_by_n, replicates = {}, {}
    for n in config.sample_sizes:
        keys = jax.random.split(jax.random.fold_in(root, n), config.num_replicates)
        replicate = make_replicate(design, n, gaps, config.alpha)
        out = experiments.replicates(config, replicate, keys, part=f"n{n}")
        stats_by_n[str(n)] = summarize(out, gaps, config.alpha, theta_cov, n)
        replicates[str(n)] = out._asdict()
    payload = {
        "design": design._asdict(),
        "note": "our simulation design (DESIGN.md §6), not the paper's numbers",
        "population_information": info,
        "summary": stats_by_n,
        "replicates": replicates,
    }
    experiments.write(
        config,
        payload,
        _table(config, stats_by_n),
        {"power_size": _figure(config, stats_by_n)},
    )
    return payload


if __name__ == "__main__":
    experiments.launch(run, "configs/reward_test.py")
