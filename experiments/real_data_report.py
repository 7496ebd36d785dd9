"""Tables and figures of the real-data study (``experiments/real_data.py``), from its
payload: data summary, rationality σ = 1 + γ with Wald intervals, model comparison
(train loss, LR test, held-out metrics over the splits whose fit was ok), best-of-N
vs pessimistic best-of-N on held-out prompts."""

from __future__ import annotations

import jax
import matplotlib
import numpy as np
import scipy.stats

from hetrlhf import reporting
from hetrlhf.btl import confidence

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def rationality(values: list, levels, fit, d: int, alpha) -> dict:
    """σ = 1 + γ per level with Wald intervals (NaN when the fit is not ok).

    ``values``: [n] the level of each row fitted; ``levels``: their ``Levels``;
    ``fit``: the study's ``Fit`` (params, cov [d + k, d + k], status).
    """
    counts = {v: values.count(v) for v in set(values)}
    k = len(levels.names)
    ok = fit.status == "ok"  # no intervals from a bad fit: NaN, the status says why
    se = np.sqrt(np.diag(fit.cov))[d:] if ok else np.full(k, np.nan)
    z = float(scipy.stats.norm.ppf(1 - alpha / 2))
    gamma = np.asarray(fit.params.gamma)
    return {
        "reference": levels.reference,
        "pooled": list(levels.pooled),
        "reference_n": counts[levels.reference] + sum(counts[v] for v in levels.pooled),
        "levels": [
            {
                "level": name,
                "n": counts[name],
                "gamma": float(gamma[j]),
                "se": float(se[j]),
                "lower": float(gamma[j] - z * se[j]),
                "upper": float(gamma[j] + z * se[j]),
            }
            for j, name in enumerate(levels.names)
        ],
    }


def bon_summary(cols: dict, key, num_bootstrap: int, alpha) -> dict:
    """BoN/pBoN over the splits, with a bootstrap interval clustered by prompt.

    ``cols``: per ``selection.Choices`` field and "prompt", a list over the splits of
    [P_split] arrays.
    """
    cat = {name: np.concatenate(v) for name, v in cols.items()}
    diff, lo, hi = confidence.cluster_bootstrap_mean(
        key,
        cat["pbon"] - cat["bon"],
        list(cat["prompt"]),
        num_bootstrap=num_bootstrap,
        alpha=alpha,
    )
    return {
        "num_splits_used": len(cols["bon"]),
        "num_prompts": int(len(cat["bon"]) / len(cols["bon"])),
        "mean_candidates": float(cat["num_candidates"].mean()),
        **{k: float(cat[k].mean()) for k in ("random", "bon", "pbon", "oracle")},
        "pbon_minus_bon": diff,
        "pbon_minus_bon_lower": lo,
        "pbon_minus_bon_upper": hi,
        "changed": float(cat["changed"].mean()),
    }


def bon_summaries(bon_rows: dict, key, num_bootstrap: int, alpha) -> dict:
    """``bon_summary`` of each model's columns, one split of ``key`` per model."""
    summaries = {}
    for model, cols in bon_rows.items():
        key, sub = jax.random.split(key)
        summaries[model] = bon_summary(cols, sub, num_bootstrap, alpha)
    return summaries


def mean_sd(per_model: dict) -> dict:
    """Mean, sd and values over the splits of each held-out metric of each model."""
    return {
        model: {
            name: {"mean": float(np.mean(v)), "sd": float(np.std(v)), "values": v}
            for name, v in metrics.items()
        }
        for model, metrics in per_model.items()
    }


def _ok_mean_sd(held: dict, name: str, digits: int) -> str:
    """ "mean ± sd" of a held-out metric over the splits whose fit was ok, or "—"."""
    if name not in held:
        return "—"
    values = [v for v, ok in zip(held[name]["values"], held["ok"]["values"]) if ok]
    if not values:
        return "— (no ok fit)"
    return f"{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}"


def _verdict(entry: dict, lv: dict) -> str:
    if entry["status"] != "ok":
        return f"no interval: {entry['status']}"
    if lv["lower"] > 0:
        return "more rational"
    return "less rational" if lv["upper"] < 0 else "no evidence"


def _fits(datasets: dict, levels: bool = False):
    """(dataset, model, inference entry) of every fitted model (with levels only)."""
    for name, ds in datasets.items():
        for model, entry in ds["inference"].items():
            if not model.startswith("_") and (not levels or "levels" in entry):
                yield name, model, entry


def tables(payload: dict) -> str:
    """The study's markdown: data, rationality, model comparison, best-of-N."""
    cfg, datasets = payload["config"], payload["datasets"]
    data_rows = [
        [name, s["num_rows"], s["num_records"], s["num_ties"],
         len(s["excluded"].get("tie", ())), len(s["excluded"].get("invalid", ())),
         s["num_coerced"], ds["num_prompts"], len(s["annotators"]),
         ds["inference"]["_design"]["d"]]
        for name, ds in datasets.items() for s in [ds["summary"]]
    ]  # fmt: skip
    sigma_rows = []
    for name, model, entry in _fits(datasets, levels=True):
        ref = f"{entry['reference']} (ref)"
        sigma_rows.append([name, model, ref, entry["reference_n"], 0.0, 0.0, 1.0, 1.0, 1.0, "reference"])  # fmt: skip
        sigma_rows += [
            [name, model, lv["level"], lv["n"], lv["gamma"], lv["se"], 1 + lv["gamma"],
             1 + lv["lower"], 1 + lv["upper"], _verdict(entry, lv)]
            for lv in entry["levels"]
        ]  # fmt: skip
    model_rows = [
        [name, model, entry["k"], entry["loss"], entry.get("lr_stat", float("nan")),
         entry.get("lr_p_value", float("nan")),
         f"{entry['status']}; splits ok {sum(held['ok']['values'])}/{len(held['ok']['values'])}",
         _ok_mean_sd(held, "log_likelihood", 4), _ok_mean_sd(held, "accuracy", 3),
         _ok_mean_sd(held, "accuracy_human", 3)]
        for name, model, entry in _fits(datasets)
        for held in [datasets[name]["held_out"][model]]
    ]  # fmt: skip
    bon_rows = [
        [name, model, b["num_prompts"], b["mean_candidates"], b["random"], b["bon"],
         b["pbon"], b["oracle"],
         f"{b['pbon_minus_bon']:+.4f} [{b['pbon_minus_bon_lower']:+.4f}, {b['pbon_minus_bon_upper']:+.4f}]",
         b["changed"]]
        for name, ds in datasets.items() for model, b in ds["bon"].items()
    ]  # fmt: skip
    table = reporting.markdown_table
    return "\n".join([
        "# Real-data study: rationality by annotator, held-out fit, BoN vs pBoN", "",
        (f"Features: {payload['featurizer']}, {cfg['num_components']} SVD components "
         f"+ pair statistics; ties: {cfg['ties']}; {cfg['num_splits']} prompt "
         f"split(s), test fraction {cfg['test_fraction']}; α = {cfg['alpha']}."), "",
        "## Data", "",
        table(["dataset", "rows", "used", "ties", "ties excluded", "invalid excluded",
               "non-string responses converted", "prompts", "annotators", "d"], data_rows),
        "", "## Rationality σ = 1 + γ relative to the reference (fit on all rows, Wald CI)", "",
        table(["dataset", "model", "level", "n", "γ", "se", "σ", "σ lower", "σ upper",
               "vs reference"], sigma_rows),
        "", "## Model comparison (train loss and LR test on all rows; held-out mean ± sd over the splits whose fit was ok)", "",
        table(["dataset", "model", "k", "train loss", "LR stat", "LR p",
               "fit status (all rows; splits)", "held-out log-lik", "held-out acc",
               "held-out acc (human rows)"], model_rows, digits=4),
        "", "## Best-of-N on held-out prompts (gold = human win rate of the chosen response)", "",
        table(["dataset", "model", "prompts/split", "mean N", "random", "BoN", "pBoN",
               "oracle", "pBoN − BoN [CI]", "share changed"], bon_rows, digits=4),
    ])  # fmt: skip


def _rationality_figure(panels: list):
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False
    )
    for ax, (name, model, entry) in zip(axes[0], panels):
        lvs = entry["levels"]
        labels = [f"{entry['reference']} (ref)"] + [lv["level"] for lv in lvs]
        lo = [0.0] + [lv["gamma"] - lv["lower"] for lv in lvs]
        hi = [0.0] + [lv["upper"] - lv["gamma"] for lv in lvs]
        y = np.arange(len(labels))
        sigma = [1.0] + [1 + lv["gamma"] for lv in lvs]
        ax.errorbar(sigma, y, xerr=[lo, hi], fmt="o", capsize=3)
        ax.axvline(1.0, color="grey", ls="--", lw=1)
        ax.axvline(0.0, color="red", ls=":", lw=1)
        ax.set_yticks(y, labels, fontsize=7)
        ax.set_xlabel("rationality σ = 1 + γ")
        ax.set_title(f"{name}: {model}", fontsize=9)
    fig.tight_layout()
    return fig


def _bon_figure(bars: list):
    fig, ax = plt.subplots(figsize=(1.8 * len(bars) + 2, 3.5))
    x = np.arange(len(bars))
    policies = (("random", "random"), ("bon", "BoN"), ("pbon", "pBoN"))
    for j, (key, label) in enumerate((*policies, ("oracle", "oracle"))):
        ax.bar(x + 0.2 * (j - 1.5), [b[key] for _, b in bars], 0.2, label=label)
    ax.set_xticks(x, [label for label, _ in bars], fontsize=7)
    ax.set_ylabel("gold human win rate of the choice")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def figures(payload: dict) -> dict:
    """Rationality intervals per fitted model, best-of-N bars."""
    datasets = payload["datasets"]
    panels = list(_fits(datasets, levels=True))
    bars = [
        (f"{name}\n{model}", b)
        for name, ds in datasets.items()
        for model, b in ds["bon"].items()
    ]
    figs = {"rationality": _rationality_figure(panels)} if panels else {}
    if bars:
        figs["best_of_n"] = _bon_figure(bars)
    return figs
