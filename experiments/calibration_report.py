"""Tables and figures of the calibration studies (``experiments/calibration.py``,
``experiments/calibration_real.py``): coverage ± Monte Carlo se, scale factor, ECE and
a verdict per source; reliability diagrams and coverage curves; the real-data study's
rationality (annotator disagreement) and estimation-uncertainty tables."""

from __future__ import annotations

import matplotlib
import numpy as np
from scipy import stats

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import hetrlhf as hr
from hetrlhf import reporting
from hetrlhf.btl import multitest

ENSEMBLE_NOTE = (
    "ensemble = hetrlhf.alignment.ensemble (bootstrap BT heads without rationality, "
    "σ ≡ 1 in its predicted probabilities)"
)


def _verdict(res, levels):
    """'over-confident by ×s' / 'under-confident' / 'calibrated' from coverage."""
    cov, se = np.asarray(res["coverage"]), np.asarray(res["coverage_se"])
    gap = cov - np.asarray(levels)
    if np.all(np.abs(gap) <= 2 * se + 0.01):
        return "calibrated"
    kind = "over-confident" if gap.mean() < 0 else "under-confident"
    return f"{kind} (sd ×{res['sd_scale']:.2f} needed)"


def coverage_table(sources, levels, check):
    """Markdown table: coverage ± se per level, scale factor, ECE, verdict per source."""
    header = ["source"] + [f"cov. {int(100 * lv)}%" for lv in levels]
    header += ["scale s", "ECE", "verdict"]
    rows = []
    for name, res in sources.items():
        if "coverage" in res:
            cells = [
                f"{c:.3f} ± {s:.3f}"
                for c, s in zip(res["coverage"], res["coverage_se"])
            ]
            rows.append(
                [name, *cells, res["sd_scale"], res["ece"], _verdict(res, levels)]
            )
        else:
            rows.append([name] + ["-"] * len(levels) + ["-", res["ece"], "-"])
    return f"{check}\n\n" + reporting.markdown_table(header, rows)


def _reliability_axes(ax, title, res, color):
    ax.plot([0, 1], [0, 1], "k:", lw=1)
    for name, r in res["sources"].items():
        rel = r["reliability"]
        keep = rel["count"] > 0
        ax.plot(
            rel["mean_prob"][keep],
            rel["mean_label"][keep],
            "o-",
            ms=3,
            color=color[name],
            label=f"{name} (ECE {r['ece']:.3f})",
        )
    ax.set_xlabel("predicted P(y = 1)")
    ax.set_ylabel("observed frequency of y = 1")
    ax.set_title(f"reliability, {title}")
    ax.legend(fontsize=7)


def _coverage_axes(ax, title, res, color, levels):
    ax.plot([0.45, 1], [0.45, 1], "k:", lw=1)
    for name, r in res["sources"].items():
        if "coverage" in r:
            ax.errorbar(
                levels,
                r["coverage"],
                yerr=2 * np.asarray(r["coverage_se"]),
                marker="o",
                ms=3,
                capsize=2,
                color=color[name],
                label=name,
            )
    ax.set_xlabel("nominal level")
    ax.set_ylabel("empirical coverage")
    ax.set_title(f"reward-difference intervals, {title}")
    ax.legend(fontsize=7)


def figures(parts, levels):
    """Reliability diagrams and coverage curves, one panel per (title, results) part."""
    names = list(dict.fromkeys(n for _, res in parts for n in res["sources"]))
    color = {n: f"C{i}" for i, n in enumerate(names)}
    figs = {}
    for fig_name, draw in (("reliability", _reliability_axes), ("coverage", None)):
        fig, axes = plt.subplots(
            1, len(parts), figsize=(5.5 * len(parts), 4.6), squeeze=False
        )
        for ax, (title, res) in zip(axes[0], parts):
            if draw is None:
                _coverage_axes(ax, title, res, color, levels)
            else:
                draw(ax, title, res, color)
        figs[fig_name] = fig
    return figs


def sandwich_se(sandwich_cov) -> np.ndarray:
    """Standard errors sqrt(diag) of a sandwich covariance [p, p] -> [p].

    A clustered sandwich gives a parameter whose rows all lie in one cluster a variance
    of exactly 0 in theory (its score sums to 0 at the MLE), which rounding can make
    -1e-15: such variances are clipped to 0 (the callers flag them), not left to NaN.
    """
    var = np.diagonal(np.asarray(sandwich_cov))
    scale = max(float(np.max(np.abs(var))), np.finfo(var.dtype).tiny)
    if np.any(var < -1e-8 * scale):
        raise ValueError(
            f"sandwich covariance has a negative variance: {var.min():.3g}"
        )
    return np.sqrt(np.clip(var, 0.0, None))


def rationality(params, tr, sandwich_cov, train, levels):
    """σ̂ = 1 + γ̂ per annotator with Fisher and sandwich 95% intervals."""
    z95 = stats.norm.ppf(0.975)
    ci = hr.confidence_intervals(params, tr)
    counts, types = {}, {}
    for r in train:
        counts[r.annotator] = counts.get(r.annotator, 0) + 1
        types[r.annotator] = r.annotator_type
    d = tr.phi0.shape[-1]
    se_sw = sandwich_se(sandwich_cov)
    ref = levels.reference
    rat = {ref: {"sigma": 1.0, "se": 0.0, "lower": 1.0, "upper": 1.0}}
    rows = [[ref, types[ref], counts[ref], 1.0, "reference", "-", "-", "-"]]
    for j, name in enumerate(levels.names):
        g, se, sw = float(ci.estimate.gamma[j]), float(ci.se.gamma[j]), se_sw[d + j]
        s = 1.0 + g
        rat[name] = {
            "sigma": s,
            "se": se,
            "lower": s - z95 * se,
            "upper": s + z95 * se,
            "se_sandwich": float(sw),
            "sandwich_degenerate": bool(sw == 0.0),
        }
        fisher_ci = f"[{s - z95 * se:.3f}, {s + z95 * se:.3f}]"
        sandwich_ci = f"[{s - z95 * sw:.3f}, {s + z95 * sw:.3f}]"
        if sw == 0.0:  # every row of this annotator in one cluster: no sandwich se
            sandwich_ci = "degenerate (one cluster)"
        row = [name, types[name], counts[name], s, se, fisher_ci, float(sw)]
        rows.append([*row, sandwich_ci])
    for name in levels.pooled:
        rows.append([name, types[name], counts[name], 1.0, "pooled", "-", "-", "-"])
    header = ["annotator", "type", "train rows", "σ̂ = 1 + γ̂", "se (Fisher)"]
    header += ["95% CI (Fisher)", "se (sandwich)", "95% CI (sandwich)"]
    return rat, reporting.markdown_table(header, rows)


def estimation(params, tr, ests, sandwich_cov, alpha=0.05):
    """Spread and significance of the held-out Δ̂ under Fisher and sandwich."""
    ci = hr.confidence_intervals(params, tr)
    d = tr.phi0.shape[-1]
    cols = []
    for est in (ests["fisher"], ests["sandwich"]):
        se_diff = np.sqrt(np.asarray(est.var))
        adj = multitest.adjust_comparisons(hr.inference.difference_ztest(est))
        cols.append(
            [
                float(np.median(se_diff)),
                f"{np.quantile(se_diff, 0.1):.3f} / {np.quantile(se_diff, 0.9):.3f}",
                float(np.median(np.abs(np.asarray(est.mean)))),
                float(np.mean(np.asarray(adj.p_value) < alpha)),
                float(np.mean(np.asarray(adj.p_holm) < alpha)),
                float(np.mean(np.asarray(adj.p_bh) < alpha)),
            ]
        )
    cols[0].append(float(np.max(np.asarray(ci.se.theta))))
    cols[1].append(float(np.max(sandwich_se(sandwich_cov)[:d])))
    names = [
        "median se of held-out Δ̂",
        "10% / 90% quantile of se(Δ̂)",
        "median |Δ̂|",
        "held-out pairs with Δ ≠ 0 at 5% (raw)",
        "  … Holm-adjusted",
        "  … BH-adjusted",
        "max se of θ̂_j",
    ]
    rows = [[n, f, w] for n, f, w in zip(names, *cols)]
    rows.append(
        ["condition number of the information", float(ci.condition_number), "-"]
    )
    out = {str(r[0]): {"fisher": r[1], "sandwich": r[2]} for r in rows}
    header = ["estimation uncertainty", "Fisher", "sandwich (by prompt)"]
    return out, reporting.markdown_table(header, rows)
