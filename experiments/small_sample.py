"""Small-sample interval study: coverage of every interval method side by side.

For each n in ``config.sample_sizes``, ``num_replicates`` datasets from the design (our
design of DESIGN.md §6 by default, never the paper's numbers) are fitted by ``hr.fit``;
on each, every method in ``config.methods`` builds 1 − α intervals for every coordinate
of θ and γ: Wald, sandwich (H⁻¹JH⁻¹), profile likelihood (χ²₁-calibrated, and
Bartlett-corrected with factors from B bootstrap draws), and the parametric bootstrap's
percentile / basic / studentized intervals (one set of B refits serves all three). One
replicate is one pure function, run over PRNG keys by ``experiments.replicates``
(jitted, vmapped, sharded, checkpointed chunks).

Reported per method and coordinate: coverage, its Monte Carlo se, the median length
(profile intervals can be unbounded, so the mean is not robust) and, per method, which
coordinates lie inside the binomial acceptance band 0.95 ± 1.96·sqrt(0.95·0.05/R).
Non-converged fits are kept; a NaN interval counts as not covering.

Run:  python -m experiments.small_sample --config configs/small_sample.py
"""

from __future__ import annotations

import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")

import experiments
import hetrlhf as hr
from configs import small_sample as small_sample_config
from hetrlhf import montecarlo as mc
from hetrlhf import reporting
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


def summarize(out: Replicate, methods, alpha: float) -> dict:
    """Coverage, Monte Carlo se and median length per method and coordinate."""
    covered = np.asarray(out.covered, bool)  # [R, M, p]
    length = np.asarray(out.length, float)
    reps = covered.shape[0]
    coverage, mc_se = mc.proportion(covered)
    band = mc.normal_half_width(1.0 - alpha, reps)
    return {
        "methods": list(methods),
        "num_replicates": reps,
        "coverage": coverage,
        "mc_se": mc_se,
        "median_length": np.median(np.where(np.isnan(length), np.inf, length), 0),
        "num_infinite_length": np.sum(~np.isfinite(length), 0),
        "inside_band": np.abs(coverage - (1.0 - alpha)) <= band,
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
    band = mc.normal_half_width(level, config.num_replicates)
    parts = [
        (
            f"## Coverage of {level:.0%} intervals by method — our design "
            f"`{config.design}` ({config.num_replicates} replicates per n, B = "
            f"{config.num_bootstrap} bootstrap draws)\n\nBinomial acceptance band "
            f"around {level}: ±{band:.3f} (i.e. [{level - band:.3f}, "
            f"{level + band:.3f}]). `*` = outside the band.\n"
        )
    ]
    for n in sizes:
        s = stats[str(n)]
        coverage = {
            method: [
                f"{c:.3f}" + ("" if inside else "*")
                for c, inside in zip(s["coverage"][m], s["inside_band"][m])
            ]
            + [f"{s['coverage'][m].mean():.3f}", int(s["inside_band"][m].sum())]
            for m, method in enumerate(methods)
        }
        lengths = dict(zip(methods, s["median_length"]))
        parts += [
            f"### n = {n}: coverage\n\n"
            + reporting.column_table([*names, "mean", "# in band"], coverage),
            f"### n = {n}: median interval length\n\n"
            + reporting.column_table(names, lengths),
        ]
    inside = {
        f"n={n}": [
            _inside_text(
                names, stats[str(n)]["inside_band"][m], stats[str(n)]["coverage"][m]
            )
            for m in range(len(methods))
        ]
        for n in sizes
    }
    diagnostics = reporting.records_table(
        [{"n": n, **stats[str(n)]} for n in sizes],
        {
            "n": "n",
            "fits not converged": "num_not_converged",
            "profile ends unbounded": "profile_unbounded_ends",
            "profile ends failed": "profile_failed_ends",
            "bootstrap refits failed": "boot_failed_refits",
        },
    )
    parts += [
        "## Coordinates inside the band (outside ones listed with their coverage)\n\n"
        + reporting.column_table(methods, inside, first="method"),
        f"## Diagnostics\n\n{diagnostics}",
    ]
    return "\n\n".join(parts) + "\n"


def _groups(methods) -> list[list[str]]:
    """Methods with independent batched while loops, as separate programs.

    XLA:CPU runs independent loops of one program concurrently, and two batched
    LAPACK calls at once (one per loop) can deadlock its 2-thread pool on a 2-core
    machine (each blocks in ParallelBatchMap waiting for the other's tasks); the
    groups run on the same replicates.
    """
    groups = [
        [m for m in methods if m != "profile_bartlett" and m not in _BOOT],
        [m for m in methods if m == "profile_bartlett"],
        [m for m in methods if m in _BOOT],
    ]
    return [g for g in groups if g]


def run(config) -> dict:
    """Runs the study described by ``config``; writes results_dir; returns the payload."""
    config = experiments.prepare(config, small_sample_config.PRESETS)
    unknown = set(config.methods) - set(ALL_METHODS)
    if unknown:
        raise ValueError(
            f"config.methods: unknown {sorted(unknown)}; choose from {ALL_METHODS}"
        )
    design = sim.get_design(config.design)
    names = reporting.param_names(design.d, design.k)
    root = jax.random.key(config.seed)
    groups = _groups(config.methods)
    order = [m for g in groups for m in g]
    perm = [order.index(m) for m in config.methods]
    stats: dict = {}
    start = time.time()
    for n in config.sample_sizes:
        keys = jax.random.split(jax.random.fold_in(root, n), config.num_replicates)
        parts = [
            experiments.replicates(
                config,
                make_replicate(design, n, config, group),
                keys,
                part=f"n{n}_part{i}",
                desc=f"small_sample n={n} {'+'.join(group)}",
            )
            for i, group in enumerate(groups)
        ]
        out = Replicate(
            covered=np.concatenate([p.covered for p in parts], axis=1)[:, perm],
            length=np.concatenate([p.length for p in parts], axis=1)[:, perm],
            converged=parts[0].converged,
            profile_unbounded=sum(p.profile_unbounded for p in parts),
            profile_failed=sum(p.profile_failed for p in parts),
            boot_failed=sum(p.boot_failed for p in parts),
        )
        stats[str(n)] = summarize(out, config.methods, config.alpha)
    sizes = list(config.sample_sizes)
    payload = {
        "design": design._asdict(),
        "note": "our simulation design (DESIGN.md §6), not the paper's numbers",
        "coordinates": names,
        "truth": np.asarray(ravel_params(sim.design_truth(design)), float),
        "summary": stats,
        "elapsed_s": time.time() - start,
    }
    level = 1 - config.alpha
    half = mc.normal_half_width(level, config.num_replicates)
    panels = {
        f"n = {n}": dict(zip(config.methods, stats[str(n)]["coverage"])) for n in sizes
    }
    figure = reporting.coverage_by_coordinate(
        names,
        panels,
        level,
        dict.fromkeys(panels, (level - half, level + half)),
        bottom=level - 0.1,
    )
    experiments.write(
        config,
        payload,
        _tables(names, sizes, stats, config),
        {"coverage_by_method": figure},
    )
    return payload


if __name__ == "__main__":
    experiments.launch(run, "configs/small_sample.py")
