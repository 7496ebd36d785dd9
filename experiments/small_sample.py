"""Small-sample interval study: coverage of every interval method side by side.

For each n in ``config.sample_sizes``, ``num_replicates`` datasets from the design (our
design of DESIGN.md §6 by default, never the paper's numbers) are fitted by ``hr.fit``;
on each, every method in ``config.methods`` builds 1 − α intervals for every coordinate
of θ and γ: Wald, sandwich (H⁻¹JH⁻¹), profile likelihood (χ²₁-calibrated, and
Bartlett-corrected with factors from B bootstrap draws), and the parametric bootstrap's
percentile / basic / studentized intervals (one set of B refits serves all three). One
replicate is one jitted function, vmapped over PRNG keys and run in checkpointed chunks
(``checkpoint.run_chunked``), sharded over all devices.

Reported per method and coordinate: coverage, its Monte Carlo se, the median length
(profile intervals can be unbounded, so the mean is not robust) and, per method, which
coordinates lie inside the binomial acceptance band 0.95 ± 1.96·sqrt(0.95·0.05/R).
Non-converged fits are kept; a NaN interval counts as not covering.

Run:  python -m experiments.small_sample --config configs/small_sample.py
"""

from __future__ import annotations

import os
import time
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
from configs import small_sample as small_sample_config
from hetrlhf import checkpoint, parallel, reporting
from hetrlhf.btl import confidence
from hetrlhf.data import simulate as sim
from hetrlhf.types import ravel_params

ALL_METHODS = small_sample_config.METHODS
_BOOT = {
    "boot_percentile": "percentile",
    "boot_basic": "basic",
    "boot_t": "studentized",
}


class Replicate(NamedTuple):
    """Outputs of one replicate (M methods, p = d + k coordinates, θ first)."""

    covered: jax.Array  # [M, p] bool: lower <= truth <= upper
    length: jax.Array  # [M, p] upper − lower (inf for unbounded profile ends)
    converged: jax.Array  # [] bool, the fit
    profile_unbounded: jax.Array  # [] int, infinite profile end points
    profile_failed: jax.Array  # [] int, failed profile end points (NaN)
    boot_failed: jax.Array  # [] int, non-converged bootstrap refits


def make_replicate(design: sim.Design, n: int, config, methods=None):
    """One replicate ``key -> Replicate`` for ``methods`` (default: all of the config).

    Pure; vmap/jit at the call site. The data and the fit depend only on the key, so
    calls for different method subsets see the same replicates.
    """
    truth = ravel_params(sim.design_truth(design))
    methods = tuple(config.methods) if methods is None else tuple(methods)
    alpha = config.alpha

    def replicate(key: jax.Array) -> Replicate:
        key_data, key_boot = jax.random.split(key)
        data = sim.simulate(key_data, design, n)
        result = hr.fit(data)
        params = result.params
        zero = jnp.zeros((), jnp.int32)
        profile_unbounded = profile_failed = boot_failed = zero
        if any(m in _BOOT for m in methods):
            fits, draw_se = confidence.bootstrap_draws(
                key_boot, params, data, num_bootstrap=config.num_bootstrap
            )
        bounds = []
        for method in methods:
            if method in ("wald", "sandwich"):
                ci = hr.confidence_intervals(params, data, alpha, method=method)
                lower, upper = ravel_params(ci.lower), ravel_params(ci.upper)
            elif method in ("profile", "profile_bartlett"):
                scale = None
                if method == "profile_bartlett":
                    scale = confidence.bartlett_factors(
                        key_boot, params, data, num_bootstrap=config.num_bootstrap
                    ).factors
                prof = confidence.profile_bounds(
                    params,
                    data,
                    alpha,
                    max_distance=config.profile_max_distance,
                    scale=scale,
                )
                lower, upper = prof.lower, prof.upper
                profile_unbounded += jnp.sum(prof.status == confidence.UNBOUNDED)
                profile_failed += jnp.sum(prof.status == confidence.FAILED)
            else:
                out = confidence.intervals_from_draws(
                    params, data, fits, draw_se, alpha, interval=_BOOT[method]
                )
                lower, upper = (
                    ravel_params(out.intervals.lower),
                    ravel_params(out.intervals.upper),
                )
                boot_failed = jnp.maximum(boot_failed, out.num_failed)
            bounds.append((lower, upper))
        lower = jnp.stack([b[0] for b in bounds])
        upper = jnp.stack([b[1] for b in bounds])
        return Replicate(
            covered=(lower <= truth) & (truth <= upper),
            length=upper - lower,
            converged=result.converged,
            profile_unbounded=profile_unbounded.astype(jnp.int32),
            profile_failed=profile_failed.astype(jnp.int32),
            boot_failed=boot_failed.astype(jnp.int32),
        )

    return replicate


def coordinate_names(design: sim.Design) -> list[str]:
    return [f"θ{j + 1}" for j in range(design.d)] + [
        f"γ{j + 1}" for j in range(design.k)
    ]


def band_half_width(alpha: float, num_replicates: int) -> float:
    """Half-width of the binomial 95% acceptance band around the nominal 1 − α."""
    level = 1.0 - alpha
    return 1.96 * float(np.sqrt(level * (1.0 - level) / num_replicates))


def summarize(out: Replicate, methods, alpha: float) -> dict:
    """Coverage, Monte Carlo se and median length per method and coordinate."""
    covered = np.asarray(out.covered, bool)  # [R, M, p]
    length = np.asarray(out.length, float)
    reps = covered.shape[0]
    coverage = covered.mean(0)
    band = band_half_width(alpha, reps)
    inside = np.abs(coverage - (1.0 - alpha)) <= band
    return {
        "methods": list(methods),
        "num_replicates": reps,
        "coverage": coverage,
        "mc_se": np.sqrt(coverage * (1 - coverage) / reps),
        "median_length": np.median(np.where(np.isnan(length), np.inf, length), 0),
        "num_infinite_length": np.sum(~np.isfinite(length), 0),
        "inside_band": inside,
        "band_half_width": band,
        "num_not_converged": int(reps - np.asarray(out.converged).sum()),
        "profile_unbounded_ends": int(np.asarray(out.profile_unbounded).sum()),
        "profile_failed_ends": int(np.asarray(out.profile_failed).sum()),
        "boot_failed_refits": int(np.asarray(out.boot_failed).sum()),
    }


def _inside_text(names, inside, coverage) -> str:
    if inside.all():
        return "all"
    out = [f"{names[j]} {coverage[j]:.3f}" for j in np.flatnonzero(~inside)]
    return "all but " + ", ".join(out) if inside.any() else "none"


def _tables(names, sizes, stats, config) -> str:
    methods = list(config.methods)
    level = 1 - config.alpha
    band = band_half_width(config.alpha, config.num_replicates)
    parts = [
        (
            f"## Coverage of {level:.0%} intervals by method — our design `{config.design}` "
            f"({config.num_replicates} replicates per n, B = {config.num_bootstrap} "
            f"bootstrap draws)\n\nBinomial acceptance band around {level}: ±{band:.3f} "
            f"(i.e. [{level - band:.3f}, {level + band:.3f}]). `*` = outside the band.\n"
        )
    ]
    for n in sizes:
        s = stats[str(n)]
        rows = []
        for j, name in enumerate(names):
            rows.append(
                [name]
                + [
                    f"{s['coverage'][m, j]:.3f}"
                    + ("" if s["inside_band"][m, j] else "*")
                    for m in range(len(methods))
                ]
            )
        rows.append(["mean"] + [f"{c:.3f}" for c in s["coverage"].mean(1)])
        rows.append(["# in band"] + [int(c) for c in s["inside_band"].sum(1)])
        parts.append(
            f"### n = {n}: coverage\n\n"
            + reporting.markdown_table(["parameter", *methods], rows)
        )
        rows = [
            [name] + [s["median_length"][m, j] for m in range(len(methods))]
            for j, name in enumerate(names)
        ]
        parts.append(
            f"### n = {n}: median interval length\n\n"
            + reporting.markdown_table(["parameter", *methods], rows)
        )
    rows = [
        [method]
        + [
            _inside_text(
                names, stats[str(n)]["inside_band"][m], stats[str(n)]["coverage"][m]
            )
            for n in sizes
        ]
        for m, method in enumerate(methods)
    ]
    parts.append(
        "## Coordinates inside the band (outside ones listed with their coverage)\n\n"
        + reporting.markdown_table(["method", *[f"n={n}" for n in sizes]], rows)
    )
    rows = [
        [
            n,
            stats[str(n)]["num_not_converged"],
            stats[str(n)]["profile_unbounded_ends"],
            stats[str(n)]["profile_failed_ends"],
            stats[str(n)]["boot_failed_refits"],
        ]
        for n in sizes
    ]
    parts.append(
        "## Diagnostics\n\n"
        + reporting.markdown_table(
            [
                "n",
                "fits not converged",
                "profile ends unbounded",
                "profile ends failed",
                "bootstrap refits failed",
            ],
            rows,
        )
    )
    return "\n\n".join(parts) + "\n"


def _figure(names, sizes, stats, config):
    methods = list(config.methods)
    level = 1 - config.alpha
    band = band_half_width(config.alpha, config.num_replicates)
    fig, axes = plt.subplots(1, len(sizes), figsize=(4.5 * len(sizes), 4), sharey=True)
    axes = np.atleast_1d(axes)
    x = np.arange(len(names))
    width = 0.8 / len(methods)
    for ax, n in zip(axes, sizes):
        s = stats[str(n)]
        ax.axhspan(level - band, level + band, color="0.85", label="binomial band")
        ax.axhline(level, color="k", lw=1)
        for m, method in enumerate(methods):
            ax.bar(
                x + (m - (len(methods) - 1) / 2) * width,
                s["coverage"][m] - (level - 0.1),
                width,
                bottom=level - 0.1,
                label=method,
            )
        ax.set_xticks(x, names)
        ax.set_ylim(level - 0.1, 1.0)
        ax.set_title(f"n = {n}")
    axes[0].set_ylabel("coverage")
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def run(config) -> dict:
    """Runs the study described by ``config``; writes results_dir; returns the payload."""
    config = configs.apply_preset(config, small_sample_config.PRESETS)
    unknown = set(config.methods) - set(ALL_METHODS)
    if unknown:
        raise ValueError(
            f"config.methods: unknown {sorted(unknown)}; choose from {ALL_METHODS}"
        )
    design = sim.get_design(config.design)
    names = coordinate_names(design)
    mesh = parallel.replicate_mesh() if config.shard else None
    fingerprint = {
        k: v
        for k, v in config.to_dict().items()
        if k not in ("results_dir", "progress", "overwrite", "checkpoint", "shard")
    }
    root = jax.random.key(config.seed)
    stats: dict = {}
    start = time.time()
    # Methods with independent batched while loops run as separate programs on the
    # same replicates: XLA:CPU runs independent loops concurrently, and two batched
    # LAPACK calls at once (one per loop) can deadlock its 2-thread pool on a 2-core
    # machine (each blocks in ParallelBatchMap waiting for the other's tasks).
    groups = [
        [m for m in config.methods if m != "profile_bartlett" and m not in _BOOT],
        [m for m in config.methods if m == "profile_bartlett"],
        [m for m in config.methods if m in _BOOT],
    ]
    for n in config.sample_sizes:
        keys = jax.random.split(jax.random.fold_in(root, n), config.num_replicates)
        parts = []
        for part, group in enumerate(g for g in groups if g):
            directory = (
                os.path.abspath(
                    os.path.join(config.results_dir, "checkpoints", f"n{n}_part{part}")
                )
                if config.checkpoint
                else None
            )
            parts.append(
                checkpoint.run_chunked(
                    jax.jit(jax.vmap(make_replicate(design, n, config, group))),
                    keys,
                    chunk_size=config.chunk_size,
                    directory=directory,
                    fingerprint={**fingerprint, "n": n, "methods": group},
                    desc=f"small_sample n={n} {'+'.join(group)}",
                    mesh=mesh,
                    overwrite=config.overwrite,
                    progress=config.progress,
                )
            )
        parts = [jax.tree.map(np.asarray, p) for p in parts]
        out = Replicate(
            covered=np.concatenate([p.covered for p in parts], axis=1),
            length=np.concatenate([p.length for p in parts], axis=1),
            converged=parts[0].converged,
            profile_unbounded=sum(p.profile_unbounded for p in parts),
            profile_failed=sum(p.profile_failed for p in parts),
            boot_failed=sum(p.boot_failed for p in parts),
        )
        order = [m for g in groups for m in g]
        perm = [order.index(m) for m in config.methods]
        out = out._replace(covered=out.covered[:, perm], length=out.length[:, perm])
        stats[str(n)] = summarize(
            jax.tree.map(np.asarray, out), config.methods, config.alpha
        )
    elapsed = time.time() - start
    sizes = list(config.sample_sizes)
    payload = {
        "config": config.to_dict(),
        "design": design._asdict(),
        "note": "our simulation design (DESIGN.md §6), not the paper's numbers",
        "coordinates": names,
        "truth": np.asarray(ravel_params(sim.design_truth(design)), float),
        "summary": stats,
        "elapsed_s": elapsed,
    }
    table = _tables(names, sizes, stats, config)
    reporting.write_results(
        config.results_dir,
        payload,
        table,
        {"coverage_by_method": _figure(names, sizes, stats, config)},
    )
    print(
        f"{config.num_replicates} replicates × {len(sizes)} sample sizes × "
        f"{len(config.methods)} methods in {elapsed:.1f} s on {jax.device_count()} device(s)"
    )
    return payload


if __name__ == "__main__":
    experiments.launch(run, "configs/small_sample.py")
