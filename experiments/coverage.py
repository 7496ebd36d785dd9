"""Coverage study: Wald intervals of (θ, γ) and Theorem 2's normality, by Monte Carlo.

An analogue of Liu, Lu & Sun (2025)'s Table 1 (coverage and length of Wald intervals
at n ∈ {200, 400, 600}) on our design.

For each n in ``config.sample_sizes``: ``num_replicates`` datasets from the design
(our design of DESIGN.md §6 by default, never the paper's numbers), each fitted by
``hr.fit`` with 1 − α Wald intervals from ``hr.confidence_intervals``. One replicate —
simulate → fit → intervals → covered? — is one jitted function, vmapped over PRNG keys
and run in checkpointed chunks (``checkpoint.run_chunked``) with the replicate axis
sharded over all devices.

Reported for every coordinate of θ and γ: coverage among the converged fits, mean
interval length, the Monte Carlo standard error of the coverage sqrt(ĉ(1 − ĉ)/R)
(R = number of converged fits), and bias / empirical sd / mean se of the estimates.
Fits that did not converge (``FitResult.converged`` False) are excluded from these and
counted; the coverage over all replicates (a non-converged fit's interval counts as
it is, a non-finite one as not covering) is also stored.

Theorem 2 (√n(τ̂ − τ*) ⇒ N(0, I⁻¹(τ*)), τ = (θ, γ)): per n and coordinate, the
z-scores (τ̂_j − τ*_j)/se_j of the converged fits should be N(0, 1). Reported: their
mean and sd, the Kolmogorov–Smirnov statistic and p-value against N(0, 1)
(``hetrlhf.theory.ks_normal``, scipy's ``kstest``), and a QQ plot (``zscores_qq.png``).
These are computed from the same replicates as the coverage (no extra fits).

Run:  python -m experiments.coverage --config configs/coverage.py
"""

from __future__ import annotations

import os
import time
from typing import NamedTuple

import jax
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from scipy.stats import norm

import configs
import experiments
import hetrlhf as hr
from configs import coverage as coverage_config
from hetrlhf import checkpoint, parallel, reporting, theory
from hetrlhf import simulate as sim
from hetrlhf.estimate import ravel_params


class Replicate(NamedTuple):
    """Outputs of one replicate (p = d + k coordinates, θ first)."""

    estimate: jax.Array  # [p]
    se: jax.Array  # [p]
    covered: jax.Array  # [p] bool: lower <= truth <= upper
    length: jax.Array  # [p] upper − lower
    converged: jax.Array  # [] bool
    num_steps: jax.Array  # [] int
    grad_norm: jax.Array  # []
    condition_number: jax.Array  # []


def make_replicate(
    design: sim.Design, n: int, *, alpha: float, information: str, method: str
):
    """One Monte Carlo replicate ``key -> Replicate`` (pure; vmap/jit at the call site)."""
    truth = ravel_params(sim.design_truth(design))

    def replicate(key: jax.Array) -> Replicate:
        data = sim.simulate(key, design, n)
        result = hr.fit(data, method=method)
        ci = hr.confidence_intervals(result.params, data, alpha, kind=information)
        lower, upper = ravel_params(ci.lower), ravel_params(ci.upper)
        return Replicate(
            estimate=ravel_params(ci.estimate),
            se=ravel_params(ci.se),
            covered=(lower <= truth) & (truth <= upper),  # False for NaN bounds
            length=upper - lower,
            converged=result.converged,
            num_steps=result.num_steps,
            grad_norm=result.grad_norm,
            condition_number=ci.condition_number,
        )

    return replicate


def coordinate_names(design: sim.Design) -> list[str]:
    return [f"θ{j + 1}" for j in range(design.d)] + [
        f"γ{j + 1}" for j in range(design.k)
    ]


def summarize(out: Replicate, truth: np.ndarray) -> dict:
    """Coverage, lengths and diagnostics of one sample size (numpy, per coordinate)."""
    covered = np.asarray(out.covered, bool)
    converged = np.asarray(out.converged, bool)
    estimate, se, length = (
        np.asarray(x, float) for x in (out.estimate, out.se, out.length)
    )
    num = covered.shape[0]
    num_conv = int(converged.sum())

    def rate(mask_rows):
        c = (
            covered[mask_rows].mean(0)
            if mask_rows.any()
            else np.full(truth.shape, np.nan)
        )
        return c, np.sqrt(c * (1 - c) / max(int(mask_rows.sum()), 1))

    coverage, mc_se = rate(converged)
    coverage_all, mc_se_all = rate(np.ones(num, bool))
    finite = np.isfinite(length).all(1)
    ok = converged & finite
    return {
        "num_replicates": num,
        "num_converged": num_conv,
        "num_not_converged": num - num_conv,
        "num_nonfinite_intervals": int((~finite).sum()),
        "coverage": coverage,
        "mc_se": mc_se,
        "coverage_all": coverage_all,
        "mc_se_all": mc_se_all,
        "mean_length": length[ok].mean(0) if ok.any() else np.full(truth.shape, np.nan),
        "bias": (estimate[ok] - truth).mean(0)
        if ok.any()
        else np.full(truth.shape, np.nan),
        "empirical_sd": estimate[ok].std(0, ddof=1)
        if ok.sum() > 1
        else np.full(truth.shape, np.nan),
        "mean_se": se[ok].mean(0) if ok.any() else np.full(truth.shape, np.nan),
        "joint_coverage": float(covered[converged].all(1).mean())
        if num_conv
        else float("nan"),
        "mean_num_steps": float(np.asarray(out.num_steps, float).mean()),
        "max_grad_norm": float(np.nanmax(np.asarray(out.grad_norm, float))),
        "max_condition_number": float(
            np.nanmax(np.asarray(out.condition_number, float))
        ),
    }


def zscores(out: Replicate, truth: np.ndarray) -> np.ndarray:
    """[R', p] z-scores (τ̂ − τ*)/se of the converged fits with finite intervals."""
    ok = np.asarray(out.converged, bool) & np.isfinite(np.asarray(out.length)).all(1)
    estimate, se = (np.asarray(x, float)[ok] for x in (out.estimate, out.se))
    return (estimate - truth) / se


def normality(z: np.ndarray) -> dict:
    """Theorem 2's check of one n: per-coordinate KS test of z against N(0, 1)."""
    stat, pval, count = theory.ks_normal(z)
    return {
        "ks_stat": stat,
        "ks_p": pval,
        "num_z": count,
        "z_mean": z.mean(0) if len(z) else np.full(z.shape[1], np.nan),
        "z_sd": z.std(0, ddof=1) if len(z) > 1 else np.full(z.shape[1], np.nan),
    }


def _normality_table(names, sizes, stats) -> str:
    header = ["parameter"]
    for n in sizes:
        header += [f"n={n} mean z", f"n={n} sd z", f"n={n} KS D", f"n={n} KS p"]
    rows = []
    for j, name in enumerate(names):
        row = [name]
        for n in sizes:
            s = stats[str(n)]
            row += [s["z_mean"][j], s["z_sd"][j], s["ks_stat"][j], s["ks_p"][j]]
        rows.append(row)
    return (
        "## Theorem 2: z-scores (τ̂ − τ*)/se of the converged fits vs N(0, 1)\n\n"
        "Mean and sd of z (N(0, 1): 0 and 1), Kolmogorov–Smirnov statistic D and "
        "p-value against N(0, 1) (scipy.stats.kstest). Under Theorem 2 the p-values "
        "are roughly uniform; the tests of one n share replicates, so they are not "
        "independent across coordinates.\n\n" + reporting.markdown_table(header, rows)
    )


def _qq_figure(names, sizes, zs):
    """One QQ panel per n: sorted z of every coordinate against N(0, 1) quantiles."""
    fig, axes = plt.subplots(
        1, len(sizes), figsize=(4 * len(sizes), 4), squeeze=False, sharey=True
    )
    for ax, n in zip(axes[0], sizes):
        z = zs[str(n)]
        lim = 4.0
        ax.plot([-lim, lim], [-lim, lim], "k-", lw=1)
        for j, name in enumerate(names):
            col = np.sort(z[:, j])
            q = norm.ppf((np.arange(1, col.size + 1) - 0.5) / col.size)
            ax.plot(q, col, ".", ms=2, label=name)
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_xlabel("N(0, 1) quantile")
        ax.set_title(f"n = {n}: {z.shape[0]} converged fits")
    axes[0, 0].set_ylabel("z = (τ̂ − τ*)/se, sorted")
    axes[0, -1].legend(fontsize=7, markerscale=4, loc="lower right")
    fig.tight_layout()
    return fig


def _tables(names, sizes, stats, config) -> str:
    level = 1 - config.alpha
    header = ["parameter"]
    for n in sizes:
        header += [f"n={n} coverage", f"n={n} length", f"n={n} MC se"]
    rows = []
    for j, name in enumerate(names):
        row = [name]
        for n in sizes:
            s = stats[str(n)]
            row += [s["coverage"][j], s["mean_length"][j], s["mc_se"][j]]
        rows.append(row)
    table1 = reporting.markdown_table(header, rows)

    header2 = [
        "n",
        "replicates",
        "not converged",
        "non-finite CIs",
        "joint coverage",
        "mean coverage (converged)",
        "mean coverage (all replicates)",
        "mean Newton steps",
    ]
    rows2 = [
        [
            n,
            s["num_replicates"],
            s["num_not_converged"],
            s["num_nonfinite_intervals"],
            s["joint_coverage"],
            float(np.mean(s["coverage"])),
            float(np.mean(s["coverage_all"])),
            s["mean_num_steps"],
        ]
        for n, s in ((n, stats[str(n)]) for n in sizes)
    ]
    table2 = reporting.markdown_table(header2, rows2)

    header3 = ["parameter", "truth"]
    for n in sizes:
        header3 += [f"n={n} bias", f"n={n} sd", f"n={n} mean se"]
    rows3 = []
    for j, name in enumerate(names):
        row = [name, stats["truth"][j]]
        for n in sizes:
            s = stats[str(n)]
            row += [s["bias"][j], s["empirical_sd"][j], s["mean_se"][j]]
        rows3.append(row)
    table3 = reporting.markdown_table(header3, rows3)
    r = config.num_replicates
    band = 1.96 * np.sqrt(level * (1 - level) / r)
    return (
        f"## Coverage of {level:.0%} Wald intervals — our design `{config.design}` "
        f"({r} replicates per n)\n\n"
        f"Coverage and mean length among the converged fits (R of them; non-converged "
        f"fits are excluded and counted below); MC se = sqrt(ĉ(1−ĉ)/R). Binomial "
        f"acceptance band around {level} at R = {r}: ±{band:.3f}.\n\n{table1}\n\n"
        f"## Convergence of the fits ('joint': all p intervals cover at once; 'all "
        f"replicates' keeps the non-converged fits)\n\n{table2}\n\n"
        f"## Estimates: bias, empirical sd and mean standard error (converged fits)\n\n"
        f"{table3}\n\n{_normality_table(names, sizes, stats)}\n"
    )


def _figure(names, sizes, stats, config):
    level = 1 - config.alpha
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    d = len([x for x in names if x.startswith("θ")])
    groups = (("θ", range(d)), ("γ", range(d, len(names))))
    r = config.num_replicates
    band = 1.96 * np.sqrt(level * (1 - level) / r)
    for ax, (label, idx) in zip(axes, groups):
        ax.axhline(level, color="k", lw=1)
        ax.axhspan(level - band, level + band, color="0.85", label="binomial 95% band")
        for j in idx:
            cov = np.array([stats[str(n)]["coverage"][j] for n in sizes])
            err = np.array([stats[str(n)]["mc_se"][j] for n in sizes])
            (line,) = ax.plot(sizes, cov, "o-", label=names[j])
            ax.fill_between(
                sizes, cov - err, cov + err, color=line.get_color(), alpha=0.2
            )
        ax.set_xlabel("n")
        ax.set_title(f"{label}: coverage ± MC se ({r} replicates)")
        ax.legend(fontsize=8, loc="lower right")
    axes[0].set_ylabel("coverage")
    fig.tight_layout()
    return fig


def check_config(config) -> None:
    """Raises ValueError naming the first bad field of a (resolved) coverage config."""
    configs.check_sample_sizes(config)
    configs.check_int_fields(config, ("num_replicates", "chunk_size"))
    configs.check_int_fields(config, ("vmap_size",), minimum=0)
    if not 0.0 < config.alpha < 1.0:
        raise ValueError(f"config.alpha must lie in (0, 1), got {config.alpha}")
    if config.information not in ("observed", "expected"):
        raise ValueError(
            "config.information must be 'observed' or 'expected', got "
            f"{config.information!r}"
        )
    if config.fit_method != "newton":
        raise ValueError(
            "config.fit_method must be 'newton' (the alternating method needs a start "
            f"near the truth; see the convergence study), got {config.fit_method!r}"
        )


def run(config) -> dict:
    """Runs the study described by ``config``; writes results_dir; returns the payload."""
    config = configs.apply_preset(config, coverage_config.PRESETS)
    check_config(config)
    design = sim.get_design(config.design)
    names = coordinate_names(design)
    truth = np.asarray(ravel_params(sim.design_truth(design)), float)
    mesh = parallel.replicate_mesh() if config.shard else None
    fingerprint = {
        k: v
        for k, v in config.to_dict().items()
        if k not in ("results_dir", "progress", "overwrite", "checkpoint", "shard")
    }
    root = jax.random.key(config.seed)
    stats: dict = {"truth": truth}
    replicates: dict = {}
    zs: dict = {}
    start = time.time()
    for n in config.sample_sizes:
        replicate = make_replicate(
            design,
            n,
            alpha=config.alpha,
            information=config.information,
            method=config.fit_method,
        )
        keys = jax.random.split(jax.random.fold_in(root, n), config.num_replicates)
        directory = (
            os.path.join(config.results_dir, "checkpoints", f"n{n}")
            if config.checkpoint
            else None
        )
        out = checkpoint.run_chunked(
            jax.jit(parallel.batched_vmap(replicate, config.vmap_size or None)),
            keys,
            chunk_size=config.chunk_size,
            directory=directory,
            fingerprint={**fingerprint, "n": n},
            desc=f"coverage n={n}",
            mesh=mesh,
            overwrite=config.overwrite,
            progress=config.progress,
        )
        out = jax.tree.map(np.asarray, out)
        zs[str(n)] = zscores(out, truth)
        stats[str(n)] = {**summarize(out, truth), **normality(zs[str(n)])}
        replicates[str(n)] = out._asdict()
    elapsed = time.time() - start

    sizes = list(config.sample_sizes)
    payload = {
        "config": config.to_dict(),
        "design": design._asdict(),
        "note": "our simulation design (DESIGN.md §6), not the paper's numbers",
        "coordinates": names,
        "truth": truth,
        "summary": stats,
        "theorem2": {
            str(n): {
                name: {
                    key: stats[str(n)][key][j]
                    for key in ("ks_p", "ks_stat", "num_z", "z_mean", "z_sd")
                }
                for j, name in enumerate(names)
            }
            for n in sizes
        },
        "replicates": replicates,
    }
    table = _tables(names, sizes, stats, config)
    reporting.write_results(
        config.results_dir,
        payload,
        table,
        {
            "coverage": _figure(names, sizes, stats, config),
            "zscores_qq": _qq_figure(names, sizes, zs),
        },
    )
    print(
        f"{config.num_replicates} replicates × {len(sizes)} sample sizes in "
        f"{elapsed:.1f} s on {jax.device_count()} device(s)"
    )
    return payload


if __name__ == "__main__":
    experiments.launch(run, "configs/coverage.py")
