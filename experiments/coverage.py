"""Coverage study: Wald intervals of (θ, γ) and Theorem 2's normality, by Monte Carlo.

An analogue of Liu, Lu & Sun (2025)'s Table 1 (coverage and length of Wald intervals
at n ∈ {200, 400, 600}) on our design.

For each n in ``config.sample_sizes``: ``num_replicates`` datasets from the design
(our design of DESIGN.md §6 by default, never the paper's numbers), each fitted by
``hr.fit`` with 1 − α Wald intervals from ``hr.confidence_intervals``. One replicate —
simulate → fit → intervals → covered? — is one pure function, run over PRNG keys by
``experiments.replicates`` (jitted, vmapped, sharded, checkpointed chunks).

Reported for every coordinate of θ and γ: coverage among the converged fits, mean
interval length, the Monte Carlo standard error of the coverage sqrt(ĉ(1 − ĉ)/R)
(R = number of converged fits), and bias / empirical sd / mean se of the estimates.
Fits that did not converge (``FitResult.converged`` False) are excluded from these and
counted; the coverage over all replicates (a non-converged fit's interval counts as
it is, a non-finite one as not covering) is also stored.

Theorem 2 (√n(τ̂ − τ*) ⇒ N(0, I⁻¹(τ*)), τ = (θ, γ)): per n and coordinate, the
z-scores (τ̂_j − τ*_j)/se_j of the converged fits should be N(0, 1). Reported: their
mean and sd, the Kolmogorov–Smirnov statistic and p-value against N(0, 1)
(``hetrlhf.montecarlo.normality``, scipy's ``kstest``), and a QQ plot
(``zscores_qq.png``). These are computed from the same replicates as the coverage.

Run:  python -m experiments.coverage --config configs/coverage.py
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from scipy.stats import norm

import configs
import experiments
import hetrlhf as hr
from configs import coverage as coverage_config
from hetrlhf import montecarlo as mc
from hetrlhf import reporting
from hetrlhf.btl import estimate
from hetrlhf.data import simulate as sim
from hetrlhf.types import ravel_params


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
    design: sim.Design,
    n: int,
    *,
    alpha: float,
    information: str,
    method: str,
    padded: bool = False,
):
    """One Monte Carlo replicate (pure; vmap/jit at the call site).

    ``padded=False``: ``key -> Replicate`` for n comparisons. ``padded=True``:
    ``(key, size) -> Replicate`` with n the largest sample size and ``size`` <= n a
    traced [] int: n comparisons are simulated and those from row ``size`` on get
    weight 0, so every sample size runs in one compiled program. The first ``size``
    rows are those ``simulate(key, design, size)`` draws (the i-th draw depends only
    on its index under JAX's default threefry), so the estimates are those of the
    unpadded replicate up to rounding (weighted sums instead of means).

    The intervals use the information of the fit's last Newton pass
    (``estimate.fit_with_information``: the same matrix, one pass less).
    """
    truth = ravel_params(sim.design_truth(design))

    def replicate(key: jax.Array, size=None) -> Replicate:
        data = sim.simulate(key, design, n)
        if padded:
            rows = jnp.arange(n) < size
            data = data._replace(weight=rows.astype(data.y.dtype))
        if method != "newton":
            raise ValueError(f"method must be 'newton', got {method!r}")
        result, hessian, expected = estimate.fit_with_information(data)
        info = hessian if information == "observed" else expected
        ci = hr.confidence_intervals(
            result.params, data, alpha, kind=information, information=info
        )
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


def summarize(out: Replicate, truth: np.ndarray) -> tuple[dict, np.ndarray]:
    """Coverage, lengths, estimates and Theorem 2's normality of one sample size.

    Returns:
      (summary, z [R', p] z-scores (τ̂ − τ*)/se of the converged fits with finite
      intervals).
    """
    covered, converged = out.covered.astype(bool), out.converged.astype(bool)
    ok = converged & np.isfinite(out.length).all(1)  # converged, finite intervals
    coverage, mc_se = mc.proportion(covered[converged])
    coverage_all, mc_se_all = mc.proportion(covered)
    nan = np.full(truth.shape, np.nan)
    z = (out.estimate[ok] - truth) / out.se[ok]
    return {
        "num_replicates": len(covered),
        "num_converged": int(converged.sum()),
        "num_not_converged": int((~converged).sum()),
        "num_nonfinite_intervals": int((~np.isfinite(out.length).all(1)).sum()),
        "coverage": coverage,
        "mc_se": mc_se,
        "coverage_all": coverage_all,
        "mc_se_all": mc_se_all,
        "mean_length": out.length[ok].mean(0) if ok.any() else nan,
        **mc.estimator_summary(out.estimate[ok], out.se[ok], truth),
        "joint_coverage": float(covered[converged].all(1).mean())
        if converged.any()
        else float("nan"),
        "mean_num_steps": float(np.asarray(out.num_steps, float).mean()),
        "max_grad_norm": float(np.nanmax(out.grad_norm)),
        "max_condition_number": float(np.nanmax(out.condition_number)),
        **mc.normality(z),
    }, z


def _tables(names, sizes, stats, config) -> str:
    level, r = 1 - config.alpha, config.num_replicates
    per_n = {f"n={n}": stats[str(n)] for n in sizes}
    coverage = reporting.column_table(
        names,
        reporting.columns_by_group(
            per_n,
            [("coverage", "coverage"), ("length", "mean_length"), ("MC se", "mc_se")],
        ),
    )
    fits = reporting.records_table(
        [{"n": n, **stats[str(n)]} for n in sizes],
        {
            "n": "n",
            "replicates": "num_replicates",
            "not converged": "num_not_converged",
            "non-finite CIs": "num_nonfinite_intervals",
            "joint coverage": "joint_coverage",
            "mean coverage (converged)": lambda s: float(np.mean(s["coverage"])),
            "mean coverage (all replicates)": lambda s: float(
                np.mean(s["coverage_all"])
            ),
            "mean Newton steps": "mean_num_steps",
        },
    )
    estimates = reporting.column_table(
        names,
        {
            "truth": stats["truth"],
            **reporting.columns_by_group(
                per_n,
                [("bias", "bias"), ("sd", "empirical_sd"), ("mean se", "mean_se")],
            ),
        },
    )
    normality = reporting.column_table(
        names,
        reporting.columns_by_group(
            per_n,
            [
                ("mean z", "z_mean"),
                ("sd z", "z_sd"),
                ("KS D", "ks_stat"),
                ("KS p", "ks_p"),
            ],
        ),
    )
    band = mc.normal_half_width(level, r)
    return (
        f"## Coverage of {level:.0%} Wald intervals — our design `{config.design}` "
        f"({r} replicates per n)\n\n"
        f"Coverage and mean length among the converged fits (R of them; non-converged "
        f"fits are excluded and counted below); MC se = sqrt(ĉ(1−ĉ)/R). Binomial "
        f"acceptance band around {level} at R = {r}: ±{band:.3f}.\n\n{coverage}\n\n"
        f"## Convergence of the fits ('joint': all p intervals cover at once; 'all "
        f"replicates' keeps the non-converged fits)\n\n{fits}\n\n"
        f"## Estimates: bias, empirical sd and mean standard error (converged fits)\n\n"
        f"{estimates}\n\n"
        "## Theorem 2: z-scores (τ̂ − τ*)/se of the converged fits vs N(0, 1)\n\n"
        "Mean and sd of z (N(0, 1): 0 and 1), Kolmogorov–Smirnov statistic D and "
        "p-value against N(0, 1) (scipy.stats.kstest). Under Theorem 2 the p-values "
        "are roughly uniform; the tests of one n share replicates, so they are not "
        f"independent across coordinates.\n\n{normality}\n"
    )


def _qq_figure(names, sizes, zs):
    """One QQ panel per n: sorted z of every coordinate against N(0, 1) quantiles."""
    fig, axes = plt.subplots(
        1, len(sizes), figsize=(4 * len(sizes), 4), squeeze=False, sharey=True
    )
    lim = 4.0
    for ax, n in zip(axes[0], sizes):
        z = zs[str(n)]
        ax.plot([-lim, lim], [-lim, lim], "k-", lw=1)
        for j, name in enumerate(names):
            col = np.sort(z[:, j])
            q = norm.ppf((np.arange(1, col.size + 1) - 0.5) / col.size)
            ax.plot(q, col, ".", ms=2, label=name)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="N(0, 1) quantile")
        ax.set_title(f"n = {n}: {z.shape[0]} converged fits")
    axes[0, 0].set_ylabel("z = (τ̂ − τ*)/se, sorted")
    axes[0, -1].legend(fontsize=7, markerscale=4, loc="lower right")
    fig.tight_layout()
    return fig


# config.prng_impl -> JAX's PRNG implementation (jax.random.key(..., impl=...)).
PRNG_IMPLS = {"threefry": "threefry2x32", "rbg": "rbg", "unsafe_rbg": "unsafe_rbg"}


def check_config(config) -> None:
    """Raises ValueError naming the first bad field of a (resolved) coverage config."""
    configs.check_sample_sizes(config)
    configs.check_choice(config, "prng_impl", tuple(PRNG_IMPLS))
    configs.check_int_fields(config, ("num_replicates", "chunk_size"))
    configs.check_int_fields(config, ("vmap_size",), minimum=0)
    configs.check_alpha(config)
    configs.check_choice(config, "information", ("observed", "expected"))
    if config.fit_method != "newton":
        raise ValueError(
            "config.fit_method must be 'newton' (the alternating method needs a start "
            f"near the truth; see the convergence study), got {config.fit_method!r}"
        )


def run(config) -> dict:
    """Runs the study described by ``config``; writes results_dir; returns the payload."""
    config = experiments.prepare(config, coverage_config.PRESETS)
    check_config(config)
    design = sim.get_design(config.design)
    names = reporting.param_names(design.d, design.k)
    truth = np.asarray(ravel_params(sim.design_truth(design)), float)
    root = jax.random.key(config.seed, impl=PRNG_IMPLS[config.prng_impl])
    sizes = list(config.sample_sizes)
    stats, zs, replicates = {"truth": truth}, {}, {}
    options = {
        "alpha": config.alpha,
        "information": config.information,
        "method": config.fit_method,
    }
    if config.pad_sample_sizes:  # one program for every n
        padded = make_replicate(design, max(sizes), padded=True, **options)
    for n in sizes:
        keys = jax.random.split(jax.random.fold_in(root, n), config.num_replicates)
        if config.pad_sample_sizes:
            size = np.asarray(n, np.int32)  # traced, not static: one program
            out = experiments.replicates(config, padded, keys, size, part=f"n{n}")
        else:
            replicate = make_replicate(design, n, **options)
            out = experiments.replicates(config, replicate, keys, part=f"n{n}")
        stats[str(n)], zs[str(n)] = summarize(out, truth)
        replicates[str(n)] = out._asdict()
    theorem2_keys = ("ks_p", "ks_stat", "num_z", "z_mean", "z_sd")
    payload = {
        "design": design._asdict(),
        "note": "our simulation design (DESIGN.md §6), not the paper's numbers",
        "coordinates": names,
        "truth": truth,
        "summary": stats,
        "theorem2": {
            str(n): {
                name: {key: stats[str(n)][key][j] for key in theorem2_keys}
                for j, name in enumerate(names)
            }
            for n in sizes
        },
        "replicates": replicates,
    }
    level, r = 1 - config.alpha, config.num_replicates
    figure = reporting.coverage_vs_n(
        sizes,
        [stats[str(n)]["coverage"] for n in sizes],
        [stats[str(n)]["mc_se"] for n in sizes],
        names,
        {
            f"θ: coverage ± MC se ({r} replicates)": range(design.d),
            f"γ: coverage ± MC se ({r} replicates)": range(design.d, len(names)),
        },
        level,
        mc.normal_half_width(level, r),
    )
    experiments.write(
        config,
        payload,
        _tables(names, sizes, stats, config),
        {"coverage": figure, "zscores_qq": _qq_figure(names, sizes, zs)},
    )
    return payload


if __name__ == "__main__":
    experiments.launch(run, "configs/coverage.py")
