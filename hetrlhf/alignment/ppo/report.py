"""Paper B's Tables 1–4 and Figs. 5–6 analogues from per-source arm results.

Input: ``{run: result}`` (a run is "<source>:<KL control>") with, per result, ``vanilla`` / ``variance_aware`` dicts
(``gold`` [m], ``kl`` [m], ``beta``, ``curves``), ``reference`` [r], ``tests``
(``arms.compare_arms``), ``sigma`` (Var(σ), mean σ², CV of σ²), ``kl_control``,
``calibration`` and ``sweep`` (as ``experiments/ppo.py`` builds them). Every row carries
the KL(π ‖ π_ref) of both arms: a variance reduction at a smaller KL budget proves
nothing.
"""

from __future__ import annotations

import numpy as np

from hetrlhf.reporting import markdown_table

__all__ = ["figures", "tables"]

_ARMS = (("vanilla", "vanilla PPO"), ("variance_aware", "variance-aware PPO"))


def _kl(res) -> list:
    return [float(np.mean(res[arm]["kl"])) for arm, _ in _ARMS]


def _kl_table(results) -> str:
    rows = []
    for name, r in results.items():
        cal = r.get("calibration")
        bracketed = (
            "—" if not cal else str(all(row["bracketed"] for row in cal["rounds"][-1]))
        )
        rows.append(
            [name, r["kl_control"], r["vanilla"]["beta"], r["variance_aware"]["beta"]]
            + [
                f"{np.mean(r[a]['kl']):.3f} ± {np.std(r[a]['kl'], ddof=1):.3f}"
                for a, _ in _ARMS
            ]
            + [f"{np.mean(r['reference_kl']):.3f}", bracketed]
        )
    return markdown_table(
        [
            "run",
            "KL control",
            "β (v)",
            "β (va), initial if adaptive",
            "KL (v) mean ± sd",
            "KL (va) mean ± sd",
            "KL (reference runs)",
            "calibration bracketed",
        ],
        rows,
        digits=4,
    )


def _table1(results, alpha) -> str:
    rows = []
    for name, r in results.items():
        t = r["tests"]
        rows.append(
            [name, *_kl(r), t["var_vanilla"], t["var_variance_aware"], t["f_stat"]]
            + [f"({t['f_df'][0]}, {t['f_df'][1]})", t["f_critical"], t["f_p"]]
            + [t["brown_forsythe_w"], t["brown_forsythe_p"]]
        )
    header = ["run", "KL (v)", "KL (va)", "var (v)", "var (va)", "F = ratio"]
    header += ["df", f"F crit (α={alpha})", "p (F, one-sided)"]
    header += ["Brown–Forsythe W", "p (BF, two-sided)"]
    return markdown_table(header, rows, digits=4)


def _table2(results, alpha) -> str:
    rows = [
        [name, *_kl(r), t["mean_vanilla"], t["mean_variance_aware"]]
        + [t["reference_mean"], t["welch_t"], t["welch_df"], t["welch_t_critical"]]
        + [t["welch_p"]]
        for name, r in results.items()
        for t in [r["tests"]]
    ]
    header = ["run", "KL (v)", "KL (va)", "mean (v)", "mean (va)", "reference"]
    header += ["Welch t", "df", f"t crit (two-sided, α={alpha})", "p (two-sided)"]
    return markdown_table(header, rows, digits=4)


def _table3(results) -> str:
    rows = [
        [name, *_kl(r), t["reference_mean"], t["risk"]["vanilla"]]
        + [t["risk"]["variance_aware"], t["risk_z"], t["risk_p"]]
        + [t["risk_p_two_sided"], t["risk_fisher_p"]]
        for name, r in results.items()
        for t in [r["tests"]]
    ]
    header = ["run", "KL (v)", "KL (va)", "mean of reference runs", "risk (v)"]
    header += ["risk (va)", "z", "p (z, one-sided)", "p (z, two-sided)"]
    header += ["p (Fisher, one-sided)"]
    return markdown_table(header, rows, digits=4)


def _paired_table(results) -> str:
    rows = [
        [name, t["pitman_morgan_r"], t["pitman_morgan_p"], t["paired_t"]]
        + [t["paired_t_p"], str(t["mcnemar_discordant"]), t["mcnemar_p"]]
        for name, r in results.items()
        for t in [r["tests"]]
    ]
    header = ["run", "Pitman–Morgan r", "p (one-sided)", "paired t"]
    header += ["p (two-sided)", "McNemar (b, c)", "p (exact, one-sided)"]
    return markdown_table(header, rows, digits=4)


def _table4(results) -> str:
    rows = []
    for name, r in results.items():
        for s in r["sweep"]:
            t = s["tests"]
            rows.append(
                [name, s["exponent"], s["var_sigma"], s["cv_var"], *_kl(s)]
                + [t["var_vanilla"], t["var_variance_aware"], t["f_stat"], t["f_p"]]
                + [t["mean_vanilla"], t["mean_variance_aware"], t["welch_p"]]
                + [t["risk"]["vanilla"], t["risk"]["variance_aware"]]
            )
    header = ["run", "s", "Var(σ)", "CV(σ²)", "KL (v)", "KL (va)", "var (v)"]
    header += ["var (va)", "F", "p (F)", "mean (v)", "mean (va)", "p (Welch)"]
    header += ["risk (v)", "risk (va)"]
    return markdown_table(header, rows, digits=4)


def _spread_table(results) -> str:
    rows = []
    for name, r in results.items():
        for arm, _ in _ARMS:
            a = r[arm]
            rows.append(
                [
                    name,
                    arm,
                    np.var(a["gold"], ddof=1),
                    np.var(a["expected_gold"], ddof=1),
                ]
                + [np.var(r["reference"], ddof=1), np.std(a["kl"], ddof=1)]
                + [np.corrcoef(a["kl"], a["expected_gold"])[0, 1]]
            )
    header = ["run", "arm", "var(gold), 1 response/prompt", "var(E gold), Monte Carlo"]
    header += ["var(reference runs)", "sd(KL)", "corr(KL, E gold)"]
    return markdown_table(header, rows, digits=4)


def _sigma_table(results) -> str:
    rows = [
        [name, r["noise"], r["sigma"]["mean_var"], r["sigma"]["var_sigma"]]
        + [r["sigma"]["cv_var"]]
        for name, r in results.items()
    ]
    header = ["run", "observed as", "mean σ²", "Var(σ)", "CV(σ²)"]
    return markdown_table(header, rows, digits=4)


def tables(results: dict, *, alpha: float, heading: str, paired: bool) -> str:
    """The study's markdown: heading, σ summary, KL/β, Tables 1–3 (+ paired), 4."""
    parts = [
        heading,
        "### Reward uncertainty over reference-policy responses\n\n"
        + _sigma_table(results),
        "### KL(π ‖ π_ref) and β per arm\n\n" + _kl_table(results),
        "### Where the spread comes from: policies' gold variance (paper B's evaluation"
        " and Monte Carlo expectation) vs the evaluation noise of the reference runs"
        "\n\n" + _spread_table(results),
        "### Table 1: variance of the policies' gold rewards (F-test, df (m−1, m−1))"
        "\n\n" + _table1(results, alpha),
        "### Table 2: mean gold reward (Welch t-test)\n\n" + _table2(results, alpha),
        "### Table 3: risk = fraction of policies below the mean of the reference "
        "runs (two-proportion tests)\n\n" + _table3(results),
    ]
    if paired:
        parts.append("### Paired arms (shared keys)\n\n" + _paired_table(results))
    if any(r["sweep"] for r in results.values()):
        parts.append(
            "### Table 4 analogue: narrowing the spread of σ (σ²_s ∝ (σ²)^s at a "
            "fixed mean σ²; ours)\n\n" + _table4(results)
        )
    return "\n\n".join(parts) + "\n"


def _histograms(results, key: str, xlabel: str, with_reference: bool):
    import matplotlib.pyplot as plt

    n = len(results)
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 3.8), squeeze=False)
    for ax, (name, r) in zip(axes[0], results.items(), strict=True):
        samples = [r[arm][key] for arm, _ in _ARMS]
        if with_reference:
            samples.append(r["reference"])
        both = np.concatenate(samples)
        bins = np.linspace(both.min(), both.max(), 21) if np.ptp(both) > 0 else 10
        for (arm, label), x in zip(_ARMS, samples, strict=False):
            ax.hist(x, bins=bins, alpha=0.55, label=label)
        if with_reference:
            ax.hist(
                r["reference"], bins=bins, alpha=0.35, color="grey", label="reference"
            )
            ax.axvline(
                np.mean(r["reference"]), color="k", ls="--", label="mean of reference"
            )
        ax.set_title(name)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("policies")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def _curves(results):
    import matplotlib.pyplot as plt

    names = list(results)
    rows = (("gold", "gold reward of sampled responses"), ("kl", "rollout KL"))
    rows += (("beta", "β"),)
    fig, axes = plt.subplots(3, len(names), figsize=(5 * len(names), 8), squeeze=False)
    for j, name in enumerate(names):
        for i, (key, label) in enumerate(rows):
            ax = axes[i][j]
            for arm, arm_label in _ARMS:
                ax.plot(results[name][arm]["curves"][key], label=arm_label)
            ax.set_ylabel(label)
            if key == "beta":
                ax.set_yscale("log")
            if i == 0:
                ax.set_title(name)
        axes[-1][j].set_xlabel("update")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def figures(results: dict) -> dict:
    """Gold-reward and KL histograms per source (Figs. 5–6 analogues), learning
    curves (gold, KL, β), and the Table-4 sweep plot when there is a sweep."""
    import matplotlib.pyplot as plt

    out = {
        "gold_histograms": _histograms(
            results, "gold", "gold reward (one response per prompt)", True
        ),
        "kl_histograms": _histograms(results, "kl", "KL(π ‖ π_ref)", False),
        "learning_curves": _curves(results),
    }
    swept = {k: r for k, r in results.items() if r["sweep"]}
    if swept:
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, r in swept.items():
            x = [s["var_sigma"] for s in r["sweep"]]
            for arm, label in _ARMS:
                y = [s["tests"][f"var_{arm}"] for s in r["sweep"]]
                ax.plot(x, y, "o-", label=f"{name}: {label}")
        ax.set_xlabel("Var(σ) across reference responses")
        ax.set_ylabel("variance of the policies' gold rewards")
        ax.legend(fontsize=8)
        out["sweep_variance"] = fig
    return out
