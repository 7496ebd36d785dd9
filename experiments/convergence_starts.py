"""The convergence study's second part: Algorithm 1 as the paper runs it.

Liu, Lu & Sun (2025) start Algorithm 1 from θ0, γ0 ~ U(−1, 1) with small fixed step
sizes. For ``paper_start.num_starts`` datasets of n = ``paper_start.sample_size``
comparisons (our design), Algorithm 1 runs from one such start at every step size of
``paper_start.learning_rates`` (``hr.estimate.trace_alternating``, recorded at the
budgets ``paper_start.checkpoints``); each run is classified at each budget as at the
MLE β̂ (‖β_T − β̂‖ <= ``reach_tol``), on the mirror side (θᵀθ̂ < 0 and γᵀγ̂ < 0: the
basin θ → −θ, σ < 0), or between, beside the iterations the linearised map at β̂
predicts and the default solver ``hr.fit`` run cold and from the same start.

``evaluate(config, design, key)`` runs it (``experiments.replicates``) and returns the
summary that ``experiments.convergence`` stores under "paper_start"; ``table`` and
``figure`` present it.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import experiments
import hetrlhf as hr
from hetrlhf import reporting
from hetrlhf.btl.estimate import mirror_basin, trace_alternating
from hetrlhf.btl.model import derivatives
from hetrlhf.btl.theory import contraction_factors
from hetrlhf.data import simulate as sim
from hetrlhf.types import ravel_params, unravel_params


class PaperStart(NamedTuple):
    """One dataset and U(−1, 1) start (L step sizes, C checkpoints, p = d + k)."""

    start_error: jax.Array  # [] ‖β_0 − β̂‖
    start_mirror: jax.Array  # [] bool: β_0 on the mirror side of β̂
    error: jax.Array  # [L, C] ‖β_T − β̂‖ at each checkpoint T
    mirror: jax.Array  # [L, C] bool: β_T on the mirror side (θᵀθ̂ < 0, γᵀγ̂ < 0)
    grad_norm: jax.Array  # [L, C] ‖∇L_n(β_T)‖
    loss_gap: jax.Array  # [L, C] L_n(β_T) − L_n(β̂)
    hit_step: jax.Array  # [L] first t with ‖β_t − β̂‖ <= reach_tol (−1: none)
    mle_converged: jax.Array  # [] hr.fit(data) (cold start) converged
    mle_steps: jax.Array  # [] its Newton iterations (all phases)
    start_fit_converged: jax.Array  # [] hr.fit(data, init=β_0) converged
    start_fit_error: jax.Array  # [] its ‖β − β̂‖
    start_fit_steps: jax.Array  # [] its iterations (both runs it makes)
    hessian: jax.Array  # [p, p] ∇²L_n(β̂)


def make_paper_start(design: sim.Design, config):
    """``key -> PaperStart``: Algorithm 1 from θ0, γ0 ~ U(−1, 1) at every step size.

    The dataset (n = ``paper_start.sample_size``) and the start are drawn from the
    key; Algorithm 1 runs from the start at each fixed η₁ = η₂ of
    ``paper_start.learning_rates`` (vmapped) to the last checkpoint
    (``hr.estimate.trace_alternating``), and the default solver runs cold and from
    the same start. Pure; vmap/jit at the call site.
    """
    ps = config.paper_start
    d, p = design.d, design.d + design.k
    rates = tuple(float(r) for r in ps.learning_rates)
    steps = tuple(int(t) for t in ps.checkpoints)

    def replicate(key: jax.Array) -> PaperStart:
        key_data, key_init = jax.random.split(key)
        data = sim.simulate(key_data, design, ps.sample_size)
        mle = hr.fit(data)
        x0 = jax.random.uniform(key_init, (p,), data.y.dtype, -1.0, 1.0)
        start = unravel_params(x0, d)
        trace = jax.vmap(
            lambda lr: trace_alternating(
                data,
                start,
                mle.params,
                lr_theta=lr,
                lr_gamma=lr,
                checkpoints=steps,
                radius=ps.reach_tol,
                order=config.order,
            )
        )(jnp.asarray(rates, data.y.dtype))
        mle_x = ravel_params(mle.params)
        from_start = hr.fit(data, init=start)
        return PaperStart(
            start_error=jnp.linalg.norm(x0 - mle_x),
            start_mirror=mirror_basin(start, mle.params),
            error=jnp.linalg.norm(ravel_params(trace.params) - mle_x, axis=-1),
            mirror=mirror_basin(trace.params, mle.params),
            grad_norm=trace.grad_norm,
            loss_gap=trace.loss - mle.loss,
            hit_step=trace.hit_step,
            mle_converged=mle.converged,
            mle_steps=mle.num_steps,
            start_fit_converged=from_start.converged,
            start_fit_error=jnp.linalg.norm(ravel_params(from_start.params) - mle_x),
            start_fit_steps=from_start.num_steps,
            hessian=derivatives(mle_x, data)[2],
        )

    return replicate


def _median_or_none(x: np.ndarray):
    return float(np.median(x)) if x.size else None


def _per_rate(out: PaperStart, j: int, lr: float, d: int, config) -> dict:
    """Shares at the MLE / mirror side / between at each budget for step size ``lr``
    (the L axis index ``j``), iterations to the MLE, observed and predicted."""
    ps = config.paper_start
    error, mirror = out.error[:, j], out.mirror[:, j].astype(bool)
    reached = error <= ps.reach_tol  # [R, C]
    rho = contraction_factors(out.hessian, d, lr, lr, config.order)
    # Iterations the linearised map at β̂ needs to shrink ‖β_0 − β̂‖ to reach_tol
    # (a local prediction: exact near β̂, only indicative from far away).
    with np.errstate(divide="ignore", invalid="ignore"):
        predicted = np.log(ps.reach_tol / out.start_error) / np.log(rho)
    predicted = predicted[(rho < 1) & (out.start_error > ps.reach_tol)]
    hits = out.hit_step[:, j]
    return {
        "learning_rate": float(lr),
        "checkpoints": list(ps.checkpoints),
        "reached_mle": reached.mean(0),
        "mirror_side": mirror.mean(0),
        "between": (~reached & ~mirror).mean(0),
        "median_error": np.median(error, axis=0),
        "median_grad_norm": np.median(out.grad_norm[:, j], axis=0),
        "median_loss_gap": np.median(out.loss_gap[:, j], axis=0),
        "share_hit": float((hits >= 0).mean()),
        "iterations_to_mle_median": _median_or_none(hits[hits >= 0]),
        "iterations_to_mle_max": int(hits.max()) if (hits >= 0).all() else None,
        "rho_median": float(np.median(rho)),
        "predicted_iterations_median": _median_or_none(predicted),
    }


def summarize_paper_start(out: PaperStart, config, d: int) -> dict:
    """Fractions at the MLE / on the mirror side per step size and budget, iterations.

    Fractions are over the starts whose cold-start MLE converged (the reference point).
    The headline ``reached_mle`` / ``mirror_basin`` / ``undecided`` are those of the
    largest step size at the last budget — the run that settles every start here;
    small fixed steps follow the same gradient flow, more slowly (see ``per_rate``).
    """
    ps = config.paper_start
    ok = out.mle_converged.astype(bool)
    used = PaperStart(*(x[ok] for x in out))
    per_rate = {
        repr(float(lr)): _per_rate(used, j, lr, d, config)
        for j, lr in enumerate(ps.learning_rates)
    }
    last = int(np.argmax(ps.learning_rates))
    reached = used.error[:, last, -1] <= ps.reach_tol
    mirror = used.mirror[:, last, -1].astype(bool)
    start_fit_ok = used.start_fit_converged.astype(bool) & (
        used.start_fit_error <= ps.reach_tol
    )
    return {
        "reached_mle": float(reached.mean()),
        "mirror_basin": float(mirror.mean()),
        "undecided": float((~reached & ~mirror).mean()),
        "decided_by": {
            "learning_rate": float(ps.learning_rates[last]),
            "num_steps": int(ps.checkpoints[-1]),
        },
        "num_starts": int(ok.size),
        "num_mle_not_converged": int((~ok).sum()),
        "start_mirror_side": float(used.start_mirror.astype(bool).mean()),
        "median_start_error": float(np.median(used.start_error)),
        "per_rate": per_rate,
        "default_solver": {
            "cold_converged": float(ok.mean()),
            "cold_median_steps": float(np.median(out.mle_steps)),
            "from_start_reached_mle": float(start_fit_ok.mean()),
            "from_start_median_steps": float(np.median(used.start_fit_steps)),
        },
    }


def evaluate(config, design: sim.Design, key: jax.Array) -> dict:
    """Runs the starts (keys split from ``key``) and summarises them, with the
    per-start runs (all but the Hessians) under "runs"."""
    keys = jax.random.split(key, config.paper_start.num_starts)
    replicate = make_paper_start(design, config)
    out = experiments.replicates(config, replicate, keys, part="paper_start")
    summary = summarize_paper_start(out, config, design.d)
    summary["runs"] = {k: v for k, v in out._asdict().items() if k != "hessian"}
    return summary


def table(config, ps: dict) -> str:
    cfg = config.paper_start
    columns = {
        "η₁ = η₂": lambda r: f"{r['learning_rate']:g}",
        "provenance": "label",
    }
    for c, t in enumerate(cfg.checkpoints):
        columns[f"T={t}: at MLE / mirror / between (median ‖β_T − β̂‖)"] = (
            lambda r, c=c: (
                f"{r['reached_mle'][c]:.2f} / {r['mirror_side'][c]:.2f} / "
                f"{r['between'][c]:.2f} ({r['median_error'][c]:.2g})"
            )
        )
    columns["iterations to MLE (median)"] = lambda r: (
        "none reached"
        if r["iterations_to_mle_median"] is None
        else f"{r['iterations_to_mle_median']:.0f} ({r['share_hit']:.0%} reached)"
    )
    columns["predicted (linearised, median)"] = lambda r: (
        "nan"
        if r["predicted_iterations_median"] is None
        else f"{r['predicted_iterations_median']:.3g}"
    )
    records = [
        {"label": label, **r}
        for r, label in zip(ps["per_rate"].values(), cfg.rate_labels)
    ]
    ds, dec = ps["default_solver"], ps["decided_by"]
    return (
        f"\n## Algorithm 1 as the paper runs it: θ0, γ0 ~ U(−1, 1), fixed steps — "
        f"n = {cfg.sample_size}, {ps['num_starts']} starts\n\n"
        f"Basin of the start (Algorithm 1 at η = {dec['learning_rate']:g}, T = "
        f"{dec['num_steps']}): reached the MLE {ps['reached_mle']:.3f}, mirror basin "
        f"{ps['mirror_basin']:.3f}, undecided {ps['undecided']:.3f} (‖β_T − β̂‖ <= "
        f"{cfg.reach_tol:g} counts as reached; 'mirror': θᵀθ̂ < 0 and γᵀγ̂ < 0). "
        f"Starts on the mirror side at t = 0: {ps['start_mirror_side']:.3f}; median "
        f"‖β_0 − β̂‖ = {ps['median_start_error']:.2f}. Small fixed steps follow the "
        "same gradient flow more slowly: each row gives the shares at each budget T, "
        "the observed iterations to the MLE and those the linearised map at β̂ "
        "predicts (log(tol/‖β_0 − β̂‖)/log ρ). Default solver hr.fit: converged "
        f"{ds['cold_converged']:.3f} cold in a median {ds['cold_median_steps']:.0f} "
        f"Newton steps; from the same U(−1, 1) start it reaches the MLE in "
        f"{ds['from_start_reached_mle']:.3f} of the runs (median "
        f"{ds['from_start_median_steps']:.0f} steps, both of its runs counted).\n\n"
        + reporting.records_table(records, columns)
        + "\n"
    )


def figure(ps: dict):
    """Left: shares at the MLE (solid) and on the mirror side (dashed) vs T; right:
    median ‖β_T − β̂‖ vs T, per step size."""
    fig, (ax, ax_err) = plt.subplots(1, 2, figsize=(11, 4.5))
    for r in ps["per_rate"].values():
        t = r["checkpoints"]
        label = f"η = {r['learning_rate']:g}"
        (line,) = ax.semilogx(t, r["reached_mle"], "o-", label=label)
        ax.semilogx(t, r["mirror_side"], "s--", color=line.get_color(), lw=1)
        ax_err.loglog(t, r["median_error"], "o-", color=line.get_color(), label=label)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("iterations T of Algorithm 1")
    ax.set_ylabel("share of U(−1, 1) starts")
    ax.set_title(
        "solid: at the MLE; dashed: mirror side (θᵀθ̂ < 0, γᵀγ̂ < 0)", fontsize=9
    )
    ax.legend(fontsize=8)
    ax_err.set_xlabel("iterations T of Algorithm 1")
    ax_err.set_ylabel("median ‖β_T − β̂‖")
    ax_err.legend(fontsize=8)
    fig.tight_layout()
    return fig
