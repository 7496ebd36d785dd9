"""Best-of-N vs pessimistic best-of-N on simulated candidates (DESIGN.md §A4, Table 5).

For one seed (``make_replicate``): simulate n comparisons from a design, fit the
heterogeneous model (``hr.fit``) and its covariance, draw ``num_prompts`` prompts with
max(N) candidates each (``hetrlhf.simulate.simulate_candidates``), estimate every
candidate's reward with its Fisher variance (``hr.reward_interval``), and for each N of
the grid choose among the first N candidates by

* BoN: argmax_j r̂_j (``hr.best_of_n``),
* pBoN: argmax_j r̂_j − z_{1−α/2}·se_j (``hr.pessimistic_best_of_n``);

the outcome is the gold reward θ*ᵀφ of each choice averaged over prompts, the oracle
max_j θ*ᵀφ_j, a random candidate's mean, and the lower-tail (CVaR) mean over the worst
prompts. Seeds are vmapped in jitted chunks (``hetrlhf.checkpoint.run_chunked``).
Averages are over the seeds whose fit converged with a well-conditioned information
(the others are counted); the Monte Carlo error is sd/√seeds over seeds, paired for
differences. The simulation constants are our design (DESIGN.md §6), not the paper's.
"""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from tqdm import tqdm

import configs
import hetrlhf as hr
from configs import bon as bon_config
from hetrlhf import checkpoint, inference, reporting, simulate

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import experiments

POLICIES = ("bon", "pbon", "oracle", "random")


class Outcome(NamedTuple):
    """One seed's results; G = len(grid)."""

    gold: dict  # policy -> [G] mean gold reward of the choices over prompts
    tail: dict  # "bon"/"pbon" -> [G] mean gold reward of the worst ``tail`` prompts
    changed: jax.Array  # [G] share of prompts where pBoN's choice differs from BoN's
    converged: jax.Array  # [] the fit converged
    condition_number: jax.Array  # [] of the Fisher information at the fit


def regime_design(regime) -> simulate.Design:
    """The simulation design of a regime (its preset, ν overridden when > 0)."""
    if regime.feature_df:
        return simulate.get_design(regime.design, feature_df=float(regime.feature_df))
    return simulate.get_design(regime.design)


def _tail_mean(x: jax.Array, tail: float) -> jax.Array:
    """Mean of the ⌈tail·P⌉ smallest entries of x [P]."""
    m = max(1, math.ceil(tail * x.shape[0]))
    return jnp.sort(x)[:m].mean()


def make_replicate(
    design: simulate.Design,
    n: int,
    num_prompts: int,
    grid: tuple[int, ...],
    alpha: float,
    tail: float,
    fit_options: dict,
):
    """Returns ``replicate(key) -> Outcome`` for one seed; jit/vmap it at the call site.

    Args:
      design: simulation design (static).
      n: training comparisons (static).
      num_prompts: P prompts per seed (static).
      grid: candidate pool sizes N (static); pools are the first N of max(grid).
      alpha: level of pBoN's lower confidence bound.
      tail: share of the worst prompts in the lower-tail mean.
      fit_options: keyword options of ``hr.fit``.
    """
    theta_star = jnp.asarray(design.theta)

    def replicate(key: jax.Array) -> Outcome:
        k_data, k_cand = jax.random.split(key)
        data = simulate.simulate(k_data, design, n)
        res = hr.fit(data, **fit_options)
        cond = inference.condition_number(hr.fisher_information(res.params, data))
        cov = hr.covariance(res.params, data)  # traced: NaN rather than an error
        cand = simulate.simulate_candidates(k_cand, design, num_prompts, max(grid))
        gold = cand @ theta_star.astype(cand.dtype)  # [P, max N]
        est = hr.reward_interval(res.params, data, cand, cov=cov)

        def take(g, idx):
            return jnp.take_along_axis(g, idx[:, None], axis=1)[:, 0]

        out = {p: [] for p in POLICIES}
        tails = {"bon": [], "pbon": []}
        changed = []
        for size in grid:
            g = gold[:, :size]
            sub = hr.RewardEstimate(est.mean[:, :size], est.var[:, :size])
            b = hr.best_of_n(sub.mean)
            p = hr.pessimistic_best_of_n(sub, alpha)
            gb, gp = take(g, b), take(g, p)
            out["bon"].append(gb.mean())
            out["pbon"].append(gp.mean())
            out["oracle"].append(g.max(axis=1).mean())
            out["random"].append(g.mean())
            tails["bon"].append(_tail_mean(gb, tail))
            tails["pbon"].append(_tail_mean(gp, tail))
            changed.append(jnp.mean(b != p))
        return Outcome(
            gold={k: jnp.stack(v) for k, v in out.items()},
            tail={k: jnp.stack(v) for k, v in tails.items()},
            changed=jnp.stack(changed),
            converged=res.converged,
            condition_number=cond,
        )

    return replicate


def _mean_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and Monte Carlo standard error over axis 0 ([S, G] -> [G], [G])."""
    s = x.shape[0]
    se = x.std(axis=0, ddof=1) / np.sqrt(s) if s > 1 else np.full(x.shape[1:], np.nan)
    return x.mean(axis=0), se


def summarize(outcome: Outcome, max_condition: float) -> dict:
    """Means ± MC errors over the usable seeds of one regime."""
    cond = np.asarray(outcome.condition_number)
    ok = np.asarray(outcome.converged) & (cond <= max_condition)
    summary = {
        "num_seeds": int(ok.size),
        "num_used": int(ok.sum()),
        "num_not_converged": int((~np.asarray(outcome.converged)).sum()),
        "num_ill_conditioned": int((np.asarray(outcome.converged) & ~ok).sum()),
        "median_condition_number": float(np.median(cond)),
    }
    if not ok.any():
        return summary
    gold = {k: np.asarray(v)[ok] for k, v in outcome.gold.items()}
    stats = {}
    for name, x in [
        *gold.items(),
        ("pbon_minus_bon", gold["pbon"] - gold["bon"]),
        ("regret_bon", gold["oracle"] - gold["bon"]),
        ("regret_pbon", gold["oracle"] - gold["pbon"]),
        ("tail_bon", np.asarray(outcome.tail["bon"])[ok]),
        ("tail_pbon", np.asarray(outcome.tail["pbon"])[ok]),
        (
            "tail_pbon_minus_bon",
            np.asarray(outcome.tail["pbon"])[ok] - np.asarray(outcome.tail["bon"])[ok],
        ),
        ("changed", np.asarray(outcome.changed)[ok]),
    ]:
        mean, se = _mean_se(x)
        stats[name] = {"mean": mean, "se": se}
    summary["stats"] = stats
    return summary


def _cell(stat: dict, j: int, digits: int = 3) -> str:
    return f"{stat['mean'][j]:.{digits}f} ± {stat['se'][j]:.{digits}f}"


_ROWS = (
    ("BoN", "bon"),
    ("pBoN", "pbon"),
    ("pBoN − BoN", "pbon_minus_bon"),
    ("oracle", "oracle"),
    ("random", "random"),
    ("regret BoN", "regret_bon"),
    ("regret pBoN", "regret_pbon"),
    ("worst-tail BoN", "tail_bon"),
    ("worst-tail pBoN", "tail_pbon"),
    ("worst-tail pBoN − BoN", "tail_pbon_minus_bon"),
    ("share changed", "changed"),
)


def _table(payload: dict) -> str:
    cfg = payload["config"]
    grid = list(cfg["num_candidates"])
    out = [
        "# Best-of-N vs pessimistic best-of-N: gold reward of the choice (our design)",
        "",
        (
            f"α = {cfg['alpha']} (pBoN picks argmax r̂ − z_{{1−α/2}}·se); "
            f"{cfg['num_prompts']} prompts per seed; mean ± Monte Carlo error over seeds; "
            f"worst-tail = mean over the worst {cfg['tail']:.0%} of prompts."
        ),
    ]
    for name, reg in payload["regimes"].items():
        s = reg["summary"]
        df = reg["feature_df"]
        out += [
            "",
            (
                f"## {name}: design {reg['design']}, n = {reg['n']}, "
                f"features {'Gaussian' if math.isinf(df) else f'Student-t ν = {df:g}'}"
            ),
            "",
            (
                f"Seeds used {s['num_used']}/{s['num_seeds']} (not converged "
                f"{s['num_not_converged']}, ill-conditioned {s['num_ill_conditioned']}); "
                f"median condition number {s['median_condition_number']:.3g}."
            ),
            "",
        ]
        if "stats" not in s:
            out.append("No usable seed: every fit failed (see the counts above).")
            continue
        rows = [
            [label, *(_cell(s["stats"][key], j) for j in range(len(grid)))]
            for label, key in _ROWS
        ]
        out.append(
            reporting.markdown_table(["policy", *(f"N = {g}" for g in grid)], rows)
        )
    return "\n".join(out)


def _figure(payload: dict):
    """Top: mean gold reward vs N; bottom: the worst-tail mean (± 2 MC errors)."""
    grid = np.array(payload["config"]["num_candidates"])
    regimes = list(payload["regimes"].items())
    fig, axes = plt.subplots(
        2, len(regimes), figsize=(4.5 * len(regimes), 7), squeeze=False
    )
    rows = (
        (("oracle", "oracle", "k--"), ("bon", "BoN", "o-"), ("pbon", "pBoN", "s-")),
        (("tail_bon", "BoN", "o-"), ("tail_pbon", "pBoN", "s-")),
    )
    for col, (name, reg) in enumerate(regimes):
        stats = reg["summary"].get("stats")
        for row, (curves, ylabel) in enumerate(
            zip(rows, ("mean gold reward of the choice", "worst-tail mean gold reward"))
        ):
            ax = axes[row, col]
            if stats is None:
                ax.set_title(f"{name}: no usable seed")
                continue
            for key, label, style in curves:
                ax.errorbar(
                    grid,
                    np.asarray(stats[key]["mean"]),
                    yerr=2 * np.asarray(stats[key]["se"]),
                    fmt=style,
                    capsize=3,
                    label=label,
                )
            ax.set_xlabel("N candidates")
            ax.set_ylabel(ylabel)
            ax.set_title(f"{name} (n = {reg['n']})", fontsize=9)
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _check_config(config) -> None:
    grid = tuple(config.num_candidates)
    if not grid or any(int(g) < 1 for g in grid):
        raise ValueError(f"config.num_candidates must be positive ints, got {grid}")
    if not 0.0 < config.alpha < 1.0:
        raise ValueError(f"config.alpha must lie in (0, 1), got {config.alpha}")
    if not 0.0 < config.tail <= 1.0:
        raise ValueError(f"config.tail must lie in (0, 1], got {config.tail}")
    for name in ("num_prompts", "num_seeds", "chunk_size"):
        if config[name] < 1:
            raise ValueError(f"config.{name} must be >= 1, got {config[name]}")
    if not config.regimes:
        raise ValueError("config.regimes names no regime")
    for name, regime in config.regimes.items():
        if regime.n < 1:
            raise ValueError(f"config.regimes.{name}.n must be >= 1, got {regime.n}")
        if regime.feature_df and regime.feature_df <= 2:
            raise ValueError(
                f"config.regimes.{name}.feature_df must be > 2 (finite variance) or 0, "
                f"got {regime.feature_df}"
            )


def run(config) -> dict:
    """Runs every regime, writes ``config.results_dir`` and returns the payload."""
    jax.config.update("jax_enable_x64", True)
    config = configs.apply_preset(config, bon_config.PRESETS)
    _check_config(config)
    grid = tuple(int(g) for g in config.num_candidates)
    max_condition = inference.default_max_condition(jnp.float64)
    payload = {"config": config.to_dict(), "regimes": {}}
    key = jax.random.key(config.seed)
    for name, regime in tqdm(config.regimes.items(), desc="regimes"):
        key, sub = jax.random.split(key)
        design = regime_design(regime)
        replicate = make_replicate(
            design,
            int(regime.n),
            int(config.num_prompts),
            grid,
            config.alpha,
            config.tail,
            config.fit.to_dict(),
        )
        outcome = checkpoint.run_chunked(
            jax.jit(jax.vmap(replicate)),
            jax.random.split(sub, config.num_seeds),
            chunk_size=config.chunk_size,
            directory=(
                os.path.join(os.path.abspath(config.checkpoint_dir), name)
                if config.checkpoint_dir
                else None
            ),
            fingerprint={"config": config.to_dict(), "regime": name},
            desc=name,
        )
        payload["regimes"][name] = {
            "design": regime.design,
            "n": int(regime.n),
            "feature_df": float(design.feature_df),
            "summary": summarize(outcome, max_condition),
            "per_seed": outcome._asdict(),
        }
    table = _table(payload)
    reporting.write_results(
        config.results_dir, payload, table, {"gold_vs_n": _figure(payload)}
    )
    return payload


if __name__ == "__main__":
    experiments.launch(run, "configs/bon.py")
