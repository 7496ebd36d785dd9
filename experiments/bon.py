"""Best-of-N vs pessimistic best-of-N on simulated candidates, and Theorem 6's bound.

A simulated analogue of the BoN-vs-pBoN comparison of Liu, Lu & Sun (2025)'s Table 5
(which is a real-data experiment: LLM candidates, gold reward model Eurus-RM-7B); the
gold reward here is the simulator's θ*ᵀφ (DESIGN.md §A4).

For one seed (``make_replicate``): simulate n comparisons from a design, fit the
heterogeneous model (``hr.fit``) and its covariance, draw ``num_prompts`` prompts with
max(N) candidates each (``hetrlhf.data.simulate.simulate_candidates``), estimate every
candidate's reward with its Fisher variance (``hr.reward_interval``), and for each N of
the grid choose among the first N candidates by

* BoN: argmax_j r̂_j (``hr.best_of_n``),
* pBoN: argmax_j r̂_j − z_{1−α/2}·se_j (``hr.pessimistic_best_of_n``);

the outcome is the gold reward θ*ᵀφ of each choice averaged over prompts, the oracle
max_j θ*ᵀφ_j, a random candidate's mean, and the lower-tail (CVaR) mean over the worst
prompts. Seeds run through ``experiments.replicates`` (jitted, vmapped, sharded,
checkpointed chunks).
Averages are over the seeds whose fit converged with a well-conditioned information
(the others are counted); the Monte Carlo error is sd/√seeds over seeds, paired for
differences. The simulation constants are our design (DESIGN.md §6), not the paper's.

Theorem 6 (DESIGN.md §A5): every run's simulated pBoN suboptimality is printed beside
the theorem's bound; ``experiments/bon_theorem6.py`` says how, and the ``theorem6``
sweep adds runs at more training sizes n of one design.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np

import configs
import experiments
import hetrlhf as hr
from configs import bon as bon_config
from experiments import bon_theorem6 as theorem6
from hetrlhf import montecarlo as mc
from hetrlhf import reporting
from hetrlhf.alignment import selection
from hetrlhf.data import simulate
from hetrlhf.validation import condition_number, default_max_condition

matplotlib.use("Agg")
import matplotlib.pyplot as plt

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


def make_replicate(design: simulate.Design, n: int, config):
    """Returns ``replicate(key) -> Outcome`` for one seed; jit/vmap it at the call site.

    Args:
      design: simulation design (static).
      n: training comparisons (static).
      config: the study config: ``num_prompts`` P prompts per seed,
        ``num_candidates`` the pool sizes N (the first N of max(N) candidates),
        ``alpha`` pBoN's level, ``tail`` the share of the worst prompts in the
        lower-tail mean, ``fit`` keyword options of ``hr.fit``.
    """
    theta_star = jnp.asarray(design.theta)
    grid = tuple(int(g) for g in config.num_candidates)
    num_prompts, alpha, tail = int(config.num_prompts), config.alpha, config.tail
    fit_options = config.fit.to_dict()

    def replicate(key: jax.Array) -> Outcome:
        k_data, k_cand = jax.random.split(key)
        data = simulate.simulate(k_data, design, n)
        res = hr.fit(data, **fit_options)
        cond = condition_number(hr.fisher_information(res.params, data))
        cov = hr.covariance(res.params, data)  # traced: NaN rather than an error
        cand = simulate.simulate_candidates(k_cand, design, num_prompts, max(grid))
        gold = cand @ theta_star.astype(cand.dtype)  # [P, max N]
        est = hr.reward_interval(res.params, data, cand, cov=cov)

        out = {p: [] for p in (*POLICIES, "tail_bon", "tail_pbon", "changed", "phi")}
        for size in grid:
            g = gold[:, :size]
            sub = hr.RewardEstimate(est.mean[:, :size], est.var[:, :size])
            chosen = selection.evaluate_choices(sub, g, alpha)  # [P] each
            for policy in POLICIES:
                out[policy].append(getattr(chosen, policy).mean())
            out["tail_bon"].append(selection.tail_mean(chosen.bon, tail))
            out["tail_pbon"].append(selection.tail_mean(chosen.pbon, tail))
            out["changed"].append(jnp.mean(chosen.changed))
            best = jnp.argmax(g, axis=1)
            out["phi"].append(
                jnp.take_along_axis(cand, best[:, None, None], 1).mean(0)[0]
            )
        out = {k: jnp.stack(v) for k, v in out.items()}
        return Outcome(
            gold={k: out[k] for k in POLICIES},
            tail={"bon": out["tail_bon"], "pbon": out["tail_pbon"]},
            changed=out["changed"],
            oracle_phi=out["phi"],
            converged=res.converged,
            condition_number=cond,
        )

    return replicate


def usable(outcome: Outcome, max_condition: float) -> np.ndarray:
    """[S] bool: the seeds whose fit converged with a well-conditioned information."""
    return outcome.converged & (outcome.condition_number <= max_condition)


def summarize(outcome: Outcome, max_condition: float) -> dict:
    """Means ± MC errors over the usable seeds of one regime."""
    ok = usable(outcome, max_condition)
    summary = {
        "num_seeds": int(ok.size),
        "num_used": int(ok.sum()),
        "num_not_converged": int((~outcome.converged).sum()),
        "num_ill_conditioned": int((outcome.converged & ~ok).sum()),
        "median_condition_number": float(np.median(outcome.condition_number)),
    }
    if not ok.any():
        return summary
    gold = {k: v[ok] for k, v in outcome.gold.items()}
    tail = {k: v[ok] for k, v in outcome.tail.items()}
    series = {
        **gold,
        "pbon_minus_bon": gold["pbon"] - gold["bon"],
        "regret_bon": gold["oracle"] - gold["bon"],
        "regret_pbon": gold["oracle"] - gold["pbon"],
        "tail_bon": tail["bon"],
        "tail_pbon": tail["pbon"],
        "tail_pbon_minus_bon": tail["pbon"] - tail["bon"],
        "changed": outcome.changed[ok],
    }
    summary["stats"] = {
        name: dict(zip(("mean", "se"), mc.mean_se(x))) for name, x in series.items()
    }
    return summary


_ROWS = {
    "BoN": "bon",
    "pBoN": "pbon",
    "pBoN − BoN": "pbon_minus_bon",
    "oracle": "oracle",
    "random": "random",
    "regret BoN": "regret_bon",
    "regret pBoN": "regret_pbon",
    "worst-tail BoN": "tail_bon",
    "worst-tail pBoN": "tail_pbon",
    "worst-tail pBoN − BoN": "tail_pbon_minus_bon",
    "share changed": "changed",
}


def _regime_text(name: str, reg: dict, grid) -> str:
    s, df = reg["summary"], reg["feature_df"]
    text = (
        f"## {name}: design {reg['design']}, n = {reg['n']}, features "
        f"{'Gaussian' if math.isinf(df) else f'Student-t ν = {df:g}'}\n\n"
        f"Seeds used {s['num_used']}/{s['num_seeds']} (not converged "
        f"{s['num_not_converged']}, ill-conditioned {s['num_ill_conditioned']}); "
        f"median condition number {s['median_condition_number']:.3g}.\n\n"
    )
    if "stats" not in s:
        return text + "No usable seed: every fit failed (see the counts above)."
    rows = [
        [label, *(f"{m:.3f} ± {e:.3f}" for m, e in zip(*s["stats"][key].values()))]
        for label, key in _ROWS.items()
    ]
    bound = reg["theorem6"]["theorem6_bound"]
    rows.append(["Theorem 6 bound", *(f"{x:.3f}" for x in bound)])
    return text + reporting.markdown_table(
        ["policy", *(f"N = {g}" for g in grid)], rows
    )


def _table(payload: dict, config) -> str:
    grid = list(config.num_candidates)
    regimes = "\n\n".join(
        _regime_text(name, reg, grid) for name, reg in payload["regimes"].items()
    )
    return (
        "# Best-of-N vs pessimistic best-of-N: gold reward of the choice (our design)"
        f"\n\nα = {config.alpha} (pBoN picks argmax r̂ − z_{{1−α/2}}·se); "
        f"{config.num_prompts} prompts per seed; mean ± Monte Carlo error over seeds; "
        f"worst-tail = mean over the worst {config.tail:.0%} of prompts.\n\n"
        f"{regimes}\n\n{theorem6.table(payload['theorem6'], grid, config.alpha)}"
    )


def _figure(payload: dict, grid):
    """Top: mean gold reward vs N; bottom: the worst-tail mean (± 2 MC errors)."""
    regimes = payload["regimes"]
    fig, axes = plt.subplots(
        2, len(regimes), figsize=(4.5 * len(regimes), 7), squeeze=False
    )
    rows = (
        (("oracle", "oracle", "k--"), ("bon", "BoN", "o-"), ("pbon", "pBoN", "s-")),
        (("tail_bon", "BoN", "o-"), ("tail_pbon", "pBoN", "s-")),
    )
    ylabels = ("mean gold reward of the choice", "worst-tail mean gold reward")
    for col, (name, reg) in enumerate(regimes.items()):
        stats = reg["summary"].get("stats")
        for ax, curves, ylabel in zip(axes[:, col], rows, ylabels):
            if stats is None:
                ax.set_title(f"{name}: no usable seed")
                continue
            for key, label, style in curves:
                mean, se = stats[key]["mean"], stats[key]["se"]
                ax.errorbar(grid, mean, 2 * se, fmt=style, capsize=3, label=label)
            ax.set(xlabel="N candidates", ylabel=ylabel)
            ax.set_title(f"{name} (n = {reg['n']})", fontsize=9)
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _check_config(config) -> None:
    grid = tuple(config.num_candidates)
    if not grid or any(int(g) < 1 for g in grid):
        raise ValueError(f"config.num_candidates must be positive ints, got {grid}")
    configs.check_alpha(config)
    if not 0.0 < config.tail <= 1.0:
        raise ValueError(f"config.tail must lie in (0, 1], got {config.tail}")
    configs.check_int_fields(config, ("num_prompts", "num_seeds", "chunk_size"))
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
    t6_design = simulate.get_design(config.theorem6.design)
    taken = {int(r.n) for r in config.regimes.values() if regime_design(r) == t6_design}
    theorem6.check_config(config, taken)


def run(config) -> dict:
    """Runs every regime and the Theorem-6 sweep, writes ``config.results_dir`` and
    returns the payload."""
    config = experiments.prepare(config, bon_config.PRESETS)
    _check_config(config)
    grid = tuple(int(g) for g in config.num_candidates)
    max_condition = default_max_condition(jnp.dtype(config.precision))
    root = jax.random.key(config.seed)
    # Theorem 6's random streams (population information, sweep) are folded from the
    # root; the regimes' keys are the root's successive splits, as before the sweep
    # existed, so the regimes' numbers do not depend on it.
    info_key, sweep_key = (jax.random.fold_in(root, i) for i in (6, 7))
    infos: dict = {}

    def evaluate(name: str, design: simulate.Design, n: int, key) -> dict:
        """All seeds of one run (a design and a training size n), summarised."""
        replicate = make_replicate(design, n, config)
        keys = jax.random.split(key, config.num_seeds)
        outcome = experiments.replicates(config, replicate, keys, part=name)
        if design not in infos:  # population information of the design, once
            infos[design] = simulate.population_information(
                info_key, design, int(config.theorem6.fisher_sample_size)
            )
        ok = usable(outcome, max_condition)
        return {
            "summary": summarize(outcome, max_condition),
            "theorem6": theorem6.check(outcome, ok, infos[design], n, config.alpha),
            "per_seed": outcome._asdict(),
        }

    t6_design = simulate.get_design(config.theorem6.design)
    regimes, sweep, per_n = {}, {}, {}
    key = root
    for name, regime in config.regimes.items():
        key, sub = jax.random.split(key)
        design = regime_design(regime)
        run_ = evaluate(name, design, int(regime.n), sub)
        regimes[name] = {
            "design": regime.design,
            "n": int(regime.n),
            "feature_df": float(design.feature_df),
            **run_,
        }
        if design == t6_design and run_["theorem6"]:
            per_n[str(int(regime.n))] = {"run": name, **run_["theorem6"]}
    for n in config.theorem6.sample_sizes:
        name = f"theorem6_n{n}"
        sweep[str(n)] = evaluate(name, t6_design, n, jax.random.fold_in(sweep_key, n))
        if sweep[str(n)]["theorem6"]:
            per_n[str(n)] = {"run": name, **sweep[str(n)]["theorem6"]}
    payload = {
        "regimes": regimes,
        "theorem6": {
            "design": config.theorem6.design,
            "alpha": config.alpha,
            "quantile": "q_{1−α/2} read as the standard normal quantile z_{1−α/2}",
            "per_n": per_n,
            "sweep": sweep,
        },
    }
    figures = {
        "gold_vs_n": _figure(payload, grid),
        "theorem6": theorem6.figure(payload["theorem6"], grid),
    }
    experiments.write(config, payload, _table(payload, config), figures)
    return payload


if __name__ == "__main__":
    experiments.launch(run, "configs/bon.py")
