"""Best-of-N vs pessimistic best-of-N on simulated candidates, and Theorem 6's bound.

A simulated analogue of the BoN-vs-pBoN comparison of Liu, Lu & Sun (2025)'s Table 5
(which is a real-data experiment: LLM candidates, gold reward model Eurus-RM-7B); the
gold reward here is the simulator's θ*ᵀφ (DESIGN.md §A4).

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

Theorem 6 (DESIGN.md §A5): for every run (each regime, and the ``theorem6`` sweep over
the training size n), the simulated suboptimality of pBoN, SubOpt = E_s[r*(s, a*(s)) −
r*(s, â(s))] (the "regret pBoN" row: oracle minus pBoN gold reward, averaged over
prompts, then over seeds), is printed beside the bound
3·q_{1−α/2}·‖Ĩ^{−1/2} E_s φ(s, a*(s))‖₂/√n of ``hetrlhf.theory.theorem6_bound``, with
Ĩ the profiled θ-information of the population Fisher information I(θ*, γ*) of the
run's design (``simulate.population_information``, one large simulated sample) and
E_s φ(s, a*(s)) the mean feature vector of the best candidate (averaged over the
run's prompts and seeds), for every N. We read q_{1−α/2} as the normal quantile
z_{1−α/2}. Also reported: the 95% quantile of the per-seed SubOpt and the share of
seeds whose SubOpt exceeds the bound.
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
from hetrlhf import checkpoint, inference, reporting, simulate, theory

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import experiments

POLICIES = ("bon", "pbon", "oracle", "random")


class Outcome(NamedTuple):
    """One seed's results; G = len(grid)."""

    gold: dict  # policy -> [G] mean gold reward of the choices over prompts
    tail: dict  # "bon"/"pbon" -> [G] mean gold reward of the worst ``tail`` prompts
    changed: jax.Array  # [G] share of prompts where pBoN's choice differs from BoN's
    oracle_phi: jax.Array  # [G, d] mean over prompts of φ(s, a*(s)), a* the best one
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
        changed, oracle_phi = [], []
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
            best = jnp.argmax(g, axis=1)
            oracle_phi.append(
                jnp.take_along_axis(cand, best[:, None, None], 1).mean(0)[0]
            )
        return Outcome(
            gold={k: jnp.stack(v) for k, v in out.items()},
            tail={k: jnp.stack(v) for k, v in tails.items()},
            changed=jnp.stack(changed),
            oracle_phi=jnp.stack(oracle_phi),
            converged=res.converged,
            condition_number=cond,
        )

    return replicate


def _mean_se(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and Monte Carlo standard error over axis 0 ([S, G] -> [G], [G])."""
    s = x.shape[0]
    se = x.std(axis=0, ddof=1) / np.sqrt(s) if s > 1 else np.full(x.shape[1:], np.nan)
    return x.mean(axis=0), se


def usable(outcome: Outcome, max_condition: float) -> np.ndarray:
    """[S] bool: the seeds whose fit converged with a well-conditioned information."""
    cond = np.asarray(outcome.condition_number)
    return np.asarray(outcome.converged) & (cond <= max_condition)


def summarize(outcome: Outcome, max_condition: float) -> dict:
    """Means ± MC errors over the usable seeds of one regime."""
    cond = np.asarray(outcome.condition_number)
    ok = usable(outcome, max_condition)
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


def theorem6_check(
    outcome: Outcome, ok: np.ndarray, info: np.ndarray, n: int, alpha: float
) -> dict:
    """Theorem 6's bound beside the simulated pBoN suboptimality of one run, per N.

    Args:
      outcome: the run's per-seed outcomes (S seeds, G pool sizes).
      ok: [S] usable seeds (``usable``).
      info: [p, p] population Fisher information I(θ*, γ*) of the run's design.
      n: training comparisons of the run.
      alpha: pBoN's level.

    Returns:
      {} without a usable seed; else [G] arrays "suboptimality" (mean over seeds of
      oracle − pBoN gold reward), "suboptimality_se", "suboptimality_q95" (over
      seeds), "share_above_bound", "theorem6_bound", and "phi_star_mean" [G, d],
      "population_information" [p, p], "profiled_information" [d, d].
    """
    if not ok.any():
        return {}
    phi_star = np.asarray(outcome.oracle_phi)[ok].mean(0)  # [G, d]
    info = jnp.asarray(info)
    bound = np.array(
        [float(theory.theorem6_bound(info, jnp.asarray(v), n, alpha)) for v in phi_star]
    )
    gold = outcome.gold
    subopt = (np.asarray(gold["oracle"]) - np.asarray(gold["pbon"]))[ok]  # [S, G]
    mean, se = _mean_se(subopt)
    return {
        "n": int(n),
        "suboptimality": mean,
        "suboptimality_se": se,
        "suboptimality_q95": np.quantile(subopt, 0.95, axis=0),
        "share_above_bound": (subopt > bound).mean(0),
        "theorem6_bound": bound,
        "phi_star_mean": phi_star,
        "population_information": np.asarray(info),
        "profiled_information": np.asarray(
            theory.profiled_information(info, phi_star.shape[-1])
        ),
    }


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
        t6 = reg["theorem6"]
        rows.append(["Theorem 6 bound", *(f"{x:.3f}" for x in t6["theorem6_bound"])])
        out.append(
            reporting.markdown_table(["policy", *(f"N = {g}" for g in grid)], rows)
        )
    out += ["", _theorem6_table(payload["theorem6"], grid, cfg["alpha"])]
    return "\n".join(out)


def _theorem6_table(t6: dict, grid: list, alpha: float) -> str:
    """SubOpt ± MC error / 95% seed quantile / share of seeds above the bound, per n."""
    header = ["n", "run", *(f"N = {g}" for g in grid)]
    rows = []
    for n_key in sorted(t6["per_n"], key=int):
        e = t6["per_n"][n_key]
        cells = [
            f"{m:.3f} ± {se:.3f} (q95 {q:.3f}) ≤ {b:.3f}? {share:.0%} above"
            for m, se, q, b, share in zip(
                e["suboptimality"],
                e["suboptimality_se"],
                e["suboptimality_q95"],
                e["theorem6_bound"],
                e["share_above_bound"],
            )
        ]
        rows.append([int(n_key), e["run"], *cells])
    return (
        f"## Theorem 6: simulated pBoN suboptimality vs the bound — design "
        f"`{t6['design']}`, α = {alpha}\n\n"
        "Each cell: SubOpt = E_s[r*(a*) − r*(â_pBoN)] (mean over seeds ± MC error; "
        "q95: 95% quantile over seeds) ≤ 3·z_{1−α/2}·‖Ĩ^{−1/2} E_s φ(s, a*)‖₂/√n "
        "(Ĩ from the population information at the truth), and the share of seeds "
        "whose SubOpt exceeds the bound. Runs: the regimes of this design and the "
        "sweep's sizes (their own random stream).\n\n"
        + reporting.markdown_table(header, rows)
    )


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


def _theorem6_figure(payload: dict):
    """SubOpt of pBoN (± 2 MC errors) and Theorem 6's bound vs n, log-log, per N."""
    t6 = payload["theorem6"]
    grid = payload["config"]["num_candidates"]
    sizes = sorted(int(n) for n in t6["per_n"])
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for j, size in enumerate(grid):
        rows = [t6["per_n"][str(n)] for n in sizes]
        sub = np.array([r["suboptimality"][j] for r in rows])
        se = np.array([r["suboptimality_se"][j] for r in rows])
        bound = np.array([r["theorem6_bound"][j] for r in rows])
        (line,) = ax.plot(sizes, bound, "--", lw=1)
        ax.errorbar(
            sizes,
            sub,
            yerr=2 * se,
            fmt="o-",
            color=line.get_color(),
            capsize=3,
            label=f"N = {size}",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("training comparisons n")
    ax.set_ylabel("pBoN suboptimality (solid) and Theorem 6 bound (dashed)")
    ax.set_title(f"design {t6['design']}, α = {t6['alpha']}", fontsize=9)
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
    size = config.theorem6.fisher_sample_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(
            f"config.theorem6.fisher_sample_size must be an int >= 1, got {size!r}"
        )
    sweep = tuple(config.theorem6.sample_sizes)
    if any(isinstance(n, bool) or not isinstance(n, int) or n < 2 for n in sweep):
        raise ValueError(f"config.theorem6.sample_sizes must be ints >= 2, got {sweep}")
    t6_design = simulate.get_design(config.theorem6.design)
    taken = {int(r.n) for r in config.regimes.values() if regime_design(r) == t6_design}
    if len(set(sweep)) != len(sweep) or taken & set(sweep):
        raise ValueError(
            f"config.theorem6.sample_sizes {sweep} must be distinct and differ from the "
            f"n of the regimes of design {config.theorem6.design!r} ({sorted(taken)})"
        )


def _run(name, design, n, key, config, grid) -> Outcome:
    """All seeds of one run (a design and a training size n), in checkpointed chunks."""
    replicate = make_replicate(
        design,
        int(n),
        int(config.num_prompts),
        grid,
        config.alpha,
        config.tail,
        config.fit.to_dict(),
    )
    return checkpoint.run_chunked(
        jax.jit(jax.vmap(replicate)),
        jax.random.split(key, config.num_seeds),
        chunk_size=config.chunk_size,
        directory=(
            os.path.join(os.path.abspath(config.checkpoint_dir), name)
            if config.checkpoint_dir
            else None
        ),
        fingerprint={"config": config.to_dict(), "regime": name},
        desc=name,
    )


def run(config) -> dict:
    """Runs every regime and the Theorem-6 sweep, writes ``config.results_dir`` and
    returns the payload."""
    jax.config.update("jax_enable_x64", True)
    config = configs.apply_preset(config, bon_config.PRESETS)
    _check_config(config)
    grid = tuple(int(g) for g in config.num_candidates)
    max_condition = inference.default_max_condition(jnp.float64)
    payload = {"config": config.to_dict(), "regimes": {}}
    root = jax.random.key(config.seed)
    # Theorem 6's random streams (population information, sweep) are folded from the
    # root; the regimes' keys are the root's successive splits, as before the sweep
    # existed, so the regimes' numbers do not depend on it.
    info_key, sweep_key = (jax.random.fold_in(root, i) for i in (6, 7))
    infos: dict = {}

    def population_information(design):
        if design not in infos:
            infos[design] = simulate.population_information(
                info_key, design, int(config.theorem6.fisher_sample_size)
            )
        return infos[design]

    t6_design = simulate.get_design(config.theorem6.design)
    per_n: dict = {}
    key = root
    for name, regime in tqdm(config.regimes.items(), desc="regimes"):
        key, sub = jax.random.split(key)
        design = regime_design(regime)
        outcome = _run(name, design, regime.n, sub, config, grid)
        ok = usable(outcome, max_condition)
        check = theorem6_check(
            outcome, ok, population_information(design), int(regime.n), config.alpha
        )
        payload["regimes"][name] = {
            "design": regime.design,
            "n": int(regime.n),
            "feature_df": float(design.feature_df),
            "summary": summarize(outcome, max_condition),
            "theorem6": check,
            "per_seed": outcome._asdict(),
        }
        if design == t6_design and check:
            per_n[str(int(regime.n))] = {"run": name, **check}
    sweep: dict = {}
    for n in tqdm(config.theorem6.sample_sizes, desc="Theorem 6 sweep"):
        name = f"theorem6_n{n}"
        outcome = _run(
            name, t6_design, n, jax.random.fold_in(sweep_key, n), config, grid
        )
        ok = usable(outcome, max_condition)
        check = theorem6_check(
            outcome, ok, population_information(t6_design), int(n), config.alpha
        )
        sweep[str(n)] = {
            "summary": summarize(outcome, max_condition),
            "theorem6": check,
            "per_seed": outcome._asdict(),
        }
        if check:
            per_n[str(n)] = {"run": name, **check}
    payload["theorem6"] = {
        "design": config.theorem6.design,
        "alpha": config.alpha,
        "quantile": "q_{1−α/2} read as the standard normal quantile z_{1−α/2}",
        "per_n": per_n,
        "sweep": sweep,
    }
    table = _table(payload)
    reporting.write_results(
        config.results_dir,
        payload,
        table,
        {"gold_vs_n": _figure(payload), "theorem6": _theorem6_figure(payload)},
    )
    return payload


if __name__ == "__main__":
    experiments.launch(run, "configs/bon.py")
