"""The best-of-N study's Theorem 6 check (Liu, Lu & Sun 2025; DESIGN.md §A5).

For every run of ``experiments.bon`` (each regime, and the ``theorem6`` sweep over the
training size n), the simulated suboptimality of pBoN, SubOpt = E_s[r*(s, a*(s)) −
r*(s, â(s))] (the "regret pBoN" row: oracle minus pBoN gold reward, averaged over
prompts, then over seeds), is printed beside the bound
3·q_{1−α/2}·‖Ĩ^{−1/2} E_s φ(s, a*(s))‖₂/√n of ``hetrlhf.btl.theory.theorem6_bound``, with
Ĩ the profiled θ-information of the population Fisher information I(θ*, γ*) of the
run's design (``simulate.population_information``, one large simulated sample) and
E_s φ(s, a*(s)) the mean feature vector of the best candidate (averaged over the
run's prompts and seeds), for every N (``hetrlhf.btl.theory.theorem6_comparison``). We
read q_{1−α/2} as the normal quantile z_{1−α/2}. Also reported: the 95% quantile of
the per-seed SubOpt and the share of seeds whose SubOpt exceeds the bound.
"""

from __future__ import annotations

import matplotlib
import numpy as np

import configs
from hetrlhf import reporting
from hetrlhf.btl import theory

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def check_config(config, taken: set[int]) -> None:
    """Raises ValueError for bad ``config.theorem6`` fields; ``taken``: the n of the
    regimes of the sweep's design (the sweep must add other sizes)."""
    configs.check_int_fields(config, ("theorem6.fisher_sample_size",))
    sweep = tuple(config.theorem6.sample_sizes)
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 2 for n in sweep):
        raise ValueError(f"config.theorem6.sample_sizes must be ints >= 2, got {sweep}")
    if len(set(sweep)) != len(sweep) or taken & set(sweep):
        raise ValueError(
            f"config.theorem6.sample_sizes {sweep} must be distinct and differ from the "
            f"n of the regimes of design {config.theorem6.design!r} ({sorted(taken)})"
        )


def check(outcome, ok: np.ndarray, info, n: int, alpha: float):
    """Theorem 6's bound beside the simulated pBoN suboptimality of the usable seeds
    ``ok`` of one run (``theory.theorem6_comparison``); {} without a usable seed."""
    if not ok.any():
        return {}
    subopt = (outcome.gold["oracle"] - outcome.gold["pbon"])[ok]  # [S, G]
    phi_star = outcome.oracle_phi[ok].mean(0)  # [G, d]
    return theory.theorem6_comparison(subopt, phi_star, info, n, alpha)


def table(t6: dict, grid, alpha: float) -> str:
    """SubOpt ± MC error (q95) ≤ bound? and the share above it, per run n and N."""
    records = [t6["per_n"][n] for n in sorted(t6["per_n"], key=int)]
    rows = reporting.records_table(
        records,
        {"n": "n", "run": "run"}
        | {
            f"N = {g}": lambda e, j=j: (
                f"{e['suboptimality'][j]:.3f} ± {e['suboptimality_se'][j]:.3f} (q95 "
                f"{e['suboptimality_q95'][j]:.3f}) ≤ {e['theorem6_bound'][j]:.3f}? "
                f"{e['share_above_bound'][j]:.0%} above"
            )
            for j, g in enumerate(grid)
        },
    )
    return (
        "## Theorem 6: simulated pBoN suboptimality vs the bound — design "
        f"`{t6['design']}`, α = {alpha}\n\n"
        "Each cell: SubOpt = E_s[r*(a*) − r*(â_pBoN)] (mean over seeds ± MC error; "
        "q95: 95% quantile over seeds) ≤ 3·z_{1−α/2}·‖Ĩ^{−1/2} E_s φ(s, a*)‖₂/√n "
        "(Ĩ from the population information at the truth), and the share of seeds "
        "whose SubOpt exceeds the bound. Runs: the regimes of this design and the "
        f"sweep's sizes (their own random stream).\n\n{rows}"
    )


def figure(t6: dict, grid):
    """SubOpt of pBoN (± 2 MC errors) and Theorem 6's bound vs n, log-log, per N."""
    sizes = sorted(int(n) for n in t6["per_n"])
    rows = [t6["per_n"][str(n)] for n in sizes]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for j, size in enumerate(grid):
        sub, se, bound = (
            np.array([r[key][j] for r in rows])
            for key in ("suboptimality", "suboptimality_se", "theorem6_bound")
        )
        (line,) = ax.plot(sizes, bound, "--", lw=1)
        ax.errorbar(
            sizes,
            sub,
            2 * se,
            fmt="o-",
            color=line.get_color(),
            capsize=3,
            label=f"N = {size}",
        )
    ax.set(xscale="log", yscale="log", xlabel="training comparisons n")
    ax.set_ylabel("pBoN suboptimality (solid) and Theorem 6 bound (dashed)")
    ax.set_title(f"design {t6['design']}, α = {t6['alpha']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
