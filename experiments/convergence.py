"""Convergence study: Algorithm 1's error vs T and vs n (Liu, Lu & Sun 2025, Theorem 1).

For each n in ``config.sample_sizes`` and each of ``num_replicates`` datasets from the
design (our design, DESIGN.md §6), Algorithm 1 (``hr.run_alternating``, alternating
gradient descent, the paper's estimator; the Gauss–Seidel order is our reading) runs T
iterations from (θ*, γ*) + δ, ‖δ‖ = ``init_radius``, recording the whole path; the MLE
β̂ is also computed by ``hr.fit`` (Newton). One replicate is one pure function, run
over PRNG keys by ``experiments.replicates`` (jitted, vmapped, sharded, checkpointed).

The second part, Algorithm 1 from the paper's U(−1, 1) starts at its fixed step sizes
(``paper_start``), is in ``experiments/convergence_starts.py``; its numbers are stored
here under "paper_start".

What the theory predicts (our reading of Theorem 1: linear convergence of the
optimisation error plus a statistical error of order n^{−1/2}):

* optimisation error ‖β_t − β̂‖ ≈ C ρ^t: on a log scale a line of slope log ρ, where
  ρ is the spectral radius of the linearised Algorithm-1 map
  M = [[I − η₁A, −η₁B], [−η₂Bᵀ(I − η₁A), I − η₂C + η₁η₂BᵀB]] for the Hessian
  H = [[A, B], [Bᵀ, C]] (θ block A, γ block C). Reported with H = the population
  information I(θ*, γ*) (the "theoretical slope") and with H = ∇²L_n(β̂) per dataset;
* estimation error ‖β_t − β*‖ falls with the optimisation error and then plateaus at
  ‖β̂ − β*‖, whose root mean square is ≈ sqrt(tr I⁻¹ / n): slope −1/2 on log-log axes.

Run:  python -m experiments.convergence --config configs/convergence.py
"""

from __future__ import annotations

import itertools
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
from configs import convergence as convergence_config
from experiments import convergence_starts as starts
from hetrlhf import montecarlo as mc
from hetrlhf import reporting
from hetrlhf.btl.model import derivatives
from hetrlhf.btl.theory import contraction_factors, iteration_matrix, spectral_radius
from hetrlhf.data import simulate as sim
from hetrlhf.types import ravel_params, unravel_params


class Replicate(NamedTuple):
    """Outputs of one replicate (p = d + k, T = num_steps)."""

    error_truth: jax.Array  # [T + 1] ‖β_t − β*‖, t = 0..T (β_0 the start)
    error_mle: jax.Array  # [T + 1] ‖β_t − β̂‖
    mle_error: jax.Array  # [] ‖β̂ − β*‖
    mle_converged: jax.Array  # [] bool
    alg1_converged: jax.Array  # [] bool (‖∇L_n(β_T)‖ <= tol)
    alg1_grad_norm: jax.Array  # []
    hessian: jax.Array  # [p, p] ∇²L_n(β̂)


def make_replicate(design: sim.Design, n: int, config):
    """One replicate ``key -> Replicate`` (pure; vmap/jit at the call site)."""
    truth = ravel_params(sim.design_truth(design))
    d, p = design.d, design.d + design.k

    def replicate(key: jax.Array) -> Replicate:
        key_data, key_init = jax.random.split(key)
        data = sim.simulate(key_data, design, n)
        direction = jax.random.normal(key_init, (p,), truth.dtype)
        start = truth + config.init_radius * direction / jnp.linalg.norm(direction)
        result, path, _ = hr.run_alternating(
            data,
            unravel_params(start, d),
            lr_theta=config.lr_theta,
            lr_gamma=config.lr_gamma,
            num_steps=config.num_steps,
            order=config.order,
            record=True,
        )
        iterates = jnp.concatenate([start[None], ravel_params(path)], axis=0)
        mle = hr.fit(data)
        mle_x = ravel_params(mle.params)
        return Replicate(
            error_truth=jnp.linalg.norm(iterates - truth, axis=-1),
            error_mle=jnp.linalg.norm(iterates - mle_x, axis=-1),
            mle_error=jnp.linalg.norm(mle_x - truth),
            mle_converged=mle.converged,
            alg1_converged=result.converged,
            alg1_grad_norm=result.grad_norm,
            hessian=derivatives(mle_x, data)[2],
        )

    return replicate


def summarize(out: Replicate, n: int, d: int, trace_inv: float, config):
    """(summary, curves): errors, rates and RMSEs of one n, its mean error curves.

    Curves and rates use every replicate whose MLE converged (the reference point of
    ‖β_t − β̂‖); Algorithm 1 not reaching the tolerance within T steps is a result
    (counted), not a reason to drop a replicate.
    """
    good = out.mle_converged & np.isfinite(out.error_mle).all(1)
    lrs = (config.lr_theta, config.lr_gamma, config.order)
    rho_sample = contraction_factors(out.hessian, d, *lrs)
    rates = mc.log_linear_rate(out.error_mle[good])
    reached = out.error_mle[good] < 1e-6
    reach = np.argmax(reached, axis=1).astype(float)
    reach[~reached.any(1)] = np.nan
    summary = {
        "num_replicates": int(out.mle_error.shape[0]),
        "num_mle_not_converged": int((~out.mle_converged).sum()),
        "num_alg1_not_converged": int((~out.alg1_converged).sum()),
        "num_excluded_from_curves": int((~good).sum()),
        "num_alg1_not_within_1e-6": int((~reached.any(1)).sum()),
        "rmse_mle": float(np.sqrt(np.mean(out.mle_error[out.mle_converged] ** 2))),
        "rmse_alg1": float(np.sqrt(np.mean(out.error_truth[:, -1][good] ** 2))),
        "rmse_theory": float(np.sqrt(trace_inv / n)),
        "rho_sample_median": float(np.median(rho_sample)),
        "rate_empirical_median": float(np.nanmedian(rates)),
        "steps_to_1e-6_median": float(np.nanmedian(reach)) if reached.any() else None,
        "max_alg1_grad_norm": float(np.max(out.alg1_grad_norm)),
    }
    curves = {
        "geomean_error_mle": mc.geometric_mean(out.error_mle[good]),
        "geomean_error_truth": mc.geometric_mean(out.error_truth[good]),
        "rmse_error_truth": np.sqrt(np.mean(out.error_truth[good] ** 2, 0)),
    }
    return summary, curves


def check_config(config) -> None:
    """Raises ValueError naming the first bad field of a (resolved) convergence config."""
    configs.check_sample_sizes(config)
    configs.check_int_fields(
        config, ("num_replicates", "chunk_size", "num_steps", "fisher_sample_size")
    )
    configs.check_int_fields(config, ("vmap_size",), minimum=0)
    configs.check_positive(
        config, ("lr_theta", "lr_gamma", "init_radius", "paper_start.reach_tol")
    )
    configs.check_choice(config, "order", ("gauss_seidel", "jacobi"))
    configs.check_int_fields(
        config, ("paper_start.sample_size", "paper_start.num_starts"), minimum=2
    )
    ps = config.paper_start
    rates, steps = tuple(ps.learning_rates), tuple(ps.checkpoints)
    if not rates or not all(r > 0 for r in rates):
        raise ValueError(
            f"config.paper_start.learning_rates must be positive, got {rates}"
        )
    if (
        not steps
        or any(isinstance(t, bool) or not isinstance(t, int) for t in steps)
        or steps[0] < 1
        or any(b <= a for a, b in itertools.pairwise(steps))
    ):
        raise ValueError(
            "config.paper_start.checkpoints must be strictly increasing ints >= 1, "
            f"got {steps}"
        )
    if len(tuple(ps.rate_labels)) != len(rates):
        raise ValueError(
            "config.paper_start.rate_labels must have one label per learning rate, "
            f"got {len(tuple(ps.rate_labels))} for {len(rates)}"
        )


def run(config) -> dict:
    """Runs the study described by ``config``; writes results_dir; returns the payload."""
    config = experiments.prepare(config, convergence_config.PRESETS)
    check_config(config)
    design = sim.get_design(config.design)
    root = jax.random.key(config.seed)
    info = sim.population_information(
        jax.random.fold_in(root, 0), design, config.fisher_sample_size
    )
    lrs = (config.lr_theta, config.lr_gamma, config.order)
    rho_population = spectral_radius(iteration_matrix(info, design.d, *lrs))
    trace_inv = float(np.trace(np.linalg.inv(info)))
    per_n, curves = {}, {}
    for n in config.sample_sizes:
        keys = jax.random.split(jax.random.fold_in(root, n), config.num_replicates)
        replicate = make_replicate(design, n, config)
        out = experiments.replicates(config, replicate, keys, part=f"n{n}")
        per_n[str(n)], curves[str(n)] = summarize(out, n, design.d, trace_inv, config)
    paper_start = starts.evaluate(config, design, jax.random.fold_in(root, 1))

    sizes = np.array(config.sample_sizes, float)
    rmse = np.array([per_n[str(n)]["rmse_mle"] for n in config.sample_sizes])
    if len(sizes) >= 2:
        slope, intercept = np.polyfit(np.log(sizes), np.log(rmse), 1)
    else:  # one sample size: no slope to fit
        slope = intercept = float("nan")
    largest = per_n[str(config.sample_sizes[-1])]
    summary = {
        "rho_population": rho_population,
        "log10_rho_population": float(np.log10(rho_population)),
        "trace_inverse_information": trace_inv,
        "population_information_eigenvalues": np.linalg.eigvalsh(info),
        "fitted_log_log_slope_rmse_mle": float(slope),
        "theoretical_log_log_slope": -0.5,
        "empirical_rate_largest_n": largest["rate_empirical_median"],
    }
    payload = {
        "design": design._asdict(),
        "note": "our simulation design (DESIGN.md §6), not the paper's numbers",
        "summary": summary,
        "per_n": per_n,
        "curves": curves,
        "paper_start": paper_start,
    }
    table = _table(config, per_n, summary) + starts.table(config, paper_start)
    figures = {
        "error_vs_T": _figure_t(config, curves, rho_population),
        "error_vs_n": _figure_n(config, per_n, slope, intercept),
        "paper_start": starts.figure(paper_start),
    }
    experiments.write(config, payload, table, figures)
    return payload


_COLUMNS = {
    "n": "n",
    "replicates": "num_replicates",
    "MLE not conv.": "num_mle_not_converged",
    "Alg.1 ‖∇L‖>tol": "num_alg1_not_converged",
    "RMSE MLE": "rmse_mle",
    "RMSE Alg.1 (T)": "rmse_alg1",
    "sqrt(tr I⁻¹/n)": "rmse_theory",
    "ratio": lambda s: s["rmse_mle"] / s["rmse_theory"],
    "empirical rate": "rate_empirical_median",
    "ρ(∇²L_n) median": "rho_sample_median",
    "steps to 1e-6": lambda s: (
        float("nan") if s["steps_to_1e-6_median"] is None else s["steps_to_1e-6_median"]
    ),
}


def _table(config, per_n, summary) -> str:
    records = [{"n": n, **per_n[str(n)]} for n in config.sample_sizes]
    table = reporting.records_table(records, _COLUMNS, digits=4)
    return (
        f"## Algorithm 1 convergence — our design `{config.design}`, η₁ = "
        f"{config.lr_theta}, η₂ = {config.lr_gamma}, {config.order}, T = "
        f"{config.num_steps}, {config.num_replicates} replicates per n\n\n"
        f"Theoretical contraction per iteration (population information): ρ = "
        f"{summary['rho_population']:.4f} (slope log10 ρ = "
        f"{summary['log10_rho_population']:.4f}); empirical rate at the largest n: "
        f"{summary['empirical_rate_largest_n']:.4f}. Log-log slope of the MLE's RMSE vs "
        f"n: {summary['fitted_log_log_slope_rmse_mle']:.3f} (theory −0.5). "
        "Replicates whose MLE (Newton) did not converge are left out of the curves "
        "and rates ('MLE not conv.'); 'Alg.1 ‖∇L‖>tol': Algorithm 1 runs whose gradient "
        "norm after T steps is still above the float64 tolerance (kept: a slow, "
        "linearly converging run is the result, not a failure). 'steps to 1e-6': "
        "median t with ‖β_t − β̂‖ < 1e-6.\n\n"
        f"{table}\n"
    )


def _figure_t(config, curves, rho):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    t = np.arange(config.num_steps + 1)
    for n in config.sample_sizes:
        c = curves[str(n)]
        (line,) = ax.semilogy(t, c["geomean_error_mle"], label=f"‖β_t − β̂‖, n={n}")
        ax.semilogy(t, c["geomean_error_truth"], "--", color=line.get_color(), lw=1)
    anchor = curves[str(config.sample_sizes[0])]["geomean_error_mle"][0]
    ax.semilogy(t, anchor * rho**t, "k:", lw=2, label=f"theory ρ^t, ρ = {rho:.3f}")
    ax.set_ylim(1e-13, 10)
    ax.set_xlabel("iteration t of Algorithm 1")
    ax.set_ylabel("error (geometric mean over replicates)")
    ax.set_title("solid: optimisation error ‖β_t − β̂‖; dashed: ‖β_t − β*‖")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _figure_n(config, per_n, slope, intercept):
    sizes = np.array(config.sample_sizes, float)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    rmse_mle = [per_n[str(n)]["rmse_mle"] for n in config.sample_sizes]
    rmse_alg1 = [per_n[str(n)]["rmse_alg1"] for n in config.sample_sizes]
    theory = [per_n[str(n)]["rmse_theory"] for n in config.sample_sizes]
    ax.loglog(sizes, rmse_mle, "o-", label=f"MLE (Newton), fitted slope {slope:.3f}")
    ax.loglog(
        sizes, rmse_alg1, "s--", label=f"Algorithm 1 after T = {config.num_steps}"
    )
    ax.loglog(sizes, theory, "k:", lw=2, label="theory sqrt(tr I⁻¹ / n), slope −1/2")
    ax.set_xlabel("n")
    ax.set_ylabel("RMSE ‖β − β*‖")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    experiments.launch(run, "configs/convergence.py")
