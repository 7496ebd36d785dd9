"""Writing a ``PreferenceReport``: report.md, a self-contained report.html, report.json
and four plots (rationality forest plot, leaderboard, pairwise win rates, reliability).

The markdown and the HTML are rendered from one list of blocks, so they say the same
thing; the HTML embeds the plots as base64 PNGs (one file to send around).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from typing import Any

import numpy as np

from hetrlhf.own_data.analysis import PreferenceReport
from hetrlhf.reporting import markdown_table, to_jsonable

__all__ = ["plots", "summary", "to_json", "write_report"]


def _num(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    return f"{x:.{digits}f}"


def _p(p: float | None) -> str:
    if p is None:
        return "–"
    return f"{p:.2g}" if p >= 1e-4 else "<1e-4"


def _level(rep: PreferenceReport) -> str:
    return f"{100 * (1 - rep.alpha):g}%"


def _method(rep: PreferenceReport) -> str:
    prefs = rep.preferences
    text = {
        "wald": "Wald (observed information)",
        "sandwich": "sandwich (robust), "
        + (
            f"clustered by {prefs.cluster_by} ({prefs.num_clusters} clusters, CR0)"
            if prefs.cluster_by
            else "HC0"
        ),
        "profile": "profile likelihood (tests use Wald's covariance)",
        "bootstrap": f"percentile bootstrap, {rep.num_bootstrap} resamples of "
        + (f"whole {prefs.cluster_by} clusters" if prefs.cluster_by else "comparisons")
        + f", vmapped refits ({rep.bootstrap_failed} failed, excluded)",
    }[rep.intervals]
    return text


def _data_lines(rep: PreferenceReport) -> list[str]:
    prefs = rep.preferences
    s = prefs.summary
    lines = [
        f"file: {s.source}",
        (
            f"records: {s.num_rows}; ties excluded: {s.num_ties}; unusable records "
            f"skipped: {s.num_skipped}; comparisons used: {s.num_comparisons} "
            f"({len(prefs.count)} unique rows)"
        ),
    ]
    if prefs.items is not None:
        lines.append(
            f"items: {len(prefs.items)} (reward 0: {prefs.reference}); features: "
            f"{prefs.featurizer}"
        )
    else:
        lines.append(f"features: {prefs.featurizer} (d = {len(prefs.feature_names)})")
    if s.annotators:
        lines.append(f"annotators: {len(s.annotators)}")
    rationality = {
        "none": "none (everyone equally rational, σ ≡ 1)",
        "annotator": f"σ per annotator (reference σ = 1: {prefs.rationality_reference})",
        "covariates": "σ = 1 + γᵀψ, ψ = " + ", ".join(prefs.rationality_names),
    }[prefs.rationality]
    lines.append(f"rationality: {rationality}")
    lines.append(f"intervals ({_level(rep)}): {_method(rep)}")
    return lines


def _lr_line(rep: PreferenceReport) -> str:
    if rep.lr_test is None:
        return "LR test: no rationality model (--rationality none)."
    t = rep.lr_test
    verdict = (
        "annotators differ in rationality"
        if t.p < rep.alpha
        else "no evidence that annotators differ"
    )
    return (
        f"LR test of 'all annotators equally rational' (γ = 0): 2Δℓ = {t.stat:.2f}, "
        f"df = {t.df}, p = {_p(t.p)} → {verdict} at α = {rep.alpha:g}."
    )


def _rationality_table(rep: PreferenceReport) -> tuple[list[str], list[list[Any]]]:
    header = ["name", "parameter", "estimate", "lower", "upper", "comparisons", "flag"]
    rows = [
        [
            r.name,
            "σ" if r.parameter == "sigma" else "γ",
            _num(r.estimate),
            _num(r.lower),
            _num(r.upper),
            "–" if r.comparisons is None else str(r.comparisons),
            r.flag,
        ]
        for r in rep.rationality
    ]
    return header, rows


def _leaderboard_table(rep, limit=None) -> tuple[list[str], list[list[Any]]]:
    header = [
        "rank",
        "item",
        "reward",
        "lower",
        "upper",
        "group",
        "letters",
        "comparisons",
        "Holm p vs next",
    ]
    rows = [
        [
            r.rank,
            r.item + (" (ref)" if r.item == rep.preferences.reference else ""),
            _num(r.reward),
            _num(r.lower),
            _num(r.upper),
            r.rank_group,
            r.letters,
            r.comparisons,
            _p(r.p_vs_next),
        ]
        for r in rep.leaderboard[:limit]
    ]
    return header, rows


def _coefficient_table(rep) -> tuple[list[str], list[list[Any]]]:
    d = len(rep.preferences.feature_names)
    theta = np.asarray(rep.heterogeneous.params.theta)
    rows = [
        [name, _num(float(theta[j])), _num(rep.lower[j]), _num(rep.upper[j])]
        for j, name in enumerate(rep.names[:d])
    ]
    return ["feature", "θ", "lower", "upper"], rows


def _held_lines(rep) -> list[str]:
    h = rep.held_out
    if h is None:
        return ["No held-out evaluation (pass --holdout 0.2)."]
    unit = rep.preferences.cluster_by or "comparison"
    lines = [
        (
            f"held out: {h.num_test} comparisons (share {h.fraction:g} of the {unit}s; "
            f"seed {rep.seed}), trained on {h.num_train}"
        )
    ]
    for name in h.log_likelihood:
        lines.append(
            f"{name}: mean log-likelihood {h.log_likelihood[name]:.4f}, accuracy "
            f"{h.accuracy[name]:.3f}"
        )
    return lines


def summary(rep: PreferenceReport, *, max_items: int = 20) -> str:
    """The text ``hetrlhf fit`` prints: data, LR test, rationality, leaderboard."""
    out = ["hetrlhf fit — " + rep.preferences.summary.source, ""]
    out += _data_lines(rep)
    out += ["", _lr_line(rep), ""]
    if rep.rationality:
        out += ["Rationality:", markdown_table(*_rationality_table(rep)), ""]
    if rep.leaderboard is not None:
        more = len(rep.leaderboard) - max_items
        out += [
            "Leaderboard (same group: not separated by Holm-adjusted tests):",
            markdown_table(*_leaderboard_table(rep, max_items)),
        ]
        if more > 0:
            out.append(f"... {more} more items in report.md")
        out.append("")
    out += _held_lines(rep)
    return "\n".join(out)


def _blocks(rep: PreferenceReport) -> list[tuple]:
    prefs = rep.preferences
    blocks: list[tuple] = [("h1", "hetrlhf report"), ("h2", "Data")]
    blocks.append(("list", _data_lines(rep)))
    if prefs.summary.skipped:
        shown = [str(b) for b in prefs.summary.skipped[:50]]
        blocks.append(("p", "Unusable records skipped (--skip-bad):"))
        blocks.append(("list", shown))
    blocks += [("h2", "Are all annotators equally rational?"), ("p", _lr_line(rep))]
    if rep.rationality:
        blocks.append(("h2", "Rationality"))
        blocks.append(
            (
                "p",
                (
                    "σ scales how sharply an annotator's votes follow the reward: σ = 1 "
                    "for the reference, σ ≈ 0 random, σ < 0 adversarial. γ is the change "
                    "of σ per standard deviation of a numeric covariate. Flags: σ's "
                    "interval contains 0 (not distinguishable from random) or lies below "
                    "0 (adversarial)."
                ),
            )
        )
        blocks.append(("table", *_rationality_table(rep)))
        blocks.append(("img", "rationality", "Rationality estimates and intervals"))
    if rep.leaderboard is not None:
        blocks.append(("h2", "Leaderboard"))
        blocks.append(
            (
                "p",
                (
                    f"Rewards relative to {prefs.reference} (0), in the reference "
                    "annotator's units. Items in one group are not significantly "
                    "different from the group's leader; items sharing a letter are not "
                    f"significantly different from each other (Holm-adjusted pairwise "
                    f"z-tests at α = {rep.alpha:g}, all pairs in report.json)."
                ),
            )
        )
        blocks.append(("table", *_leaderboard_table(rep)))
        blocks.append(("img", "leaderboard", "Rewards with intervals"))
        blocks.append(("img", "win_rates", "Observed pairwise win rates"))
    elif prefs.features == "columns":
        blocks += [("h2", "Reward coefficients"), ("table", *_coefficient_table(rep))]
    else:
        blocks += [
            ("h2", "Reward"),
            (
                "p",
                (
                    f"The reward is linear in {len(prefs.feature_names)} components of "
                    f"{prefs.featurizer}; its coefficients are in report.json."
                ),
            ),
        ]
    blocks += [("h2", "Held-out evaluation"), ("list", _held_lines(rep))]
    blocks.append(
        ("img", "reliability", f"Reliability diagram ({rep.reliability_sample})")
    )
    return blocks


def _markdown(blocks) -> str:
    out = []
    for block in blocks:
        kind = block[0]
        if kind == "h1":
            out.append(f"# {block[1]}")
        elif kind == "h2":
            out.append(f"## {block[1]}")
        elif kind == "p":
            out.append(block[1])
        elif kind == "list":
            out.append("\n".join(f"- {line}" for line in block[1]))
        elif kind == "table":
            out.append(markdown_table(block[1], block[2]))
        elif kind == "img":
            out.append(f"![{block[2]}]({block[1]}.png)")
    return "\n\n".join(out) + "\n"


def _html(blocks, images: dict[str, bytes]) -> str:
    e = html.escape
    body = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{e(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{e(block[1])}</p>")
        elif kind == "list":
            body.append(
                "<ul>" + "".join(f"<li>{e(x)}</li>" for x in block[1]) + "</ul>"
            )
        elif kind == "table":
            head = "".join(f"<th>{e(str(h))}</th>" for h in block[1])
            rows = "".join(
                "<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>"
                for row in block[2]
            )
            body.append(f"<table><tr>{head}</tr>{rows}</table>")
        elif kind == "img" and block[1] in images:
            data = base64.b64encode(images[block[1]]).decode("ascii")
            body.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{e(block[2])}">'
                f"<figcaption>{e(block[2])}</figcaption></figure>"
            )
    style = (
        "body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;"
        "text-align:right}img{max-width:100%}"
    )
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><title>hetrlhf report'
        f"</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n"
    )


def to_json(rep: PreferenceReport) -> dict[str, Any]:
    """Every number of the report as plain JSON types."""
    prefs = rep.preferences
    s = prefs.summary
    payload: dict[str, Any] = {
        "source": s.source,
        "n_rows": s.num_rows,
        "n_ties": s.num_ties,
        "n_skipped": s.num_skipped,
        "skipped": [r._asdict() for r in s.skipped],
        "n_comparisons": s.num_comparisons,
        "n_unique_rows": len(prefs.count),
        "annotators": s.annotators,
        "features": {
            "mode": prefs.features,
            "featurizer": prefs.featurizer,
            "names": prefs.feature_names,
        },
        "intervals": {
            "method": rep.intervals,
            "alpha": rep.alpha,
            "num_bootstrap": rep.num_bootstrap,
            "bootstrap_failed": rep.bootstrap_failed,
        },
        "cluster": {"by": prefs.cluster_by, "num_clusters": prefs.num_clusters},
        "rationality_model": prefs.rationality,
        "rationality": [r._asdict() for r in rep.rationality],
        "lr_test": None if rep.lr_test is None else rep.lr_test._asdict(),
        "parameters": [
            {
                "name": name,
                "estimate": float(x),
                "lower": float(rep.lower[j]),
                "upper": float(rep.upper[j]),
            }
            for j, (name, x) in enumerate(
                zip(
                    rep.names,
                    np.concatenate(
                        [
                            np.asarray(rep.heterogeneous.params.theta),
                            np.asarray(rep.heterogeneous.params.gamma),
                        ]
                    ),
                    strict=True,
                )
            )
        ],
        "covariance": rep.covariance,
        "fits": {
            name: {
                "log_likelihood": fit.log_likelihood,
                "num_steps": fit.num_steps,
                "grad_norm": fit.grad_norm,
                "condition_number": fit.condition_number,
            }
            for name, fit in (
                ("homogeneous", rep.homogeneous),
                ("heterogeneous", rep.heterogeneous),
            )
        },
        "held_out": None if rep.held_out is None else rep.held_out._asdict(),
        "reliability": {
            "sample": rep.reliability_sample,
            "predicted": rep.reliability[0],
            "observed": rep.reliability[1],
            "count": rep.reliability[2],
        },
        "seed": rep.seed,
    }
    if rep.leaderboard is not None:
        payload["leaderboard"] = [r._asdict() for r in rep.leaderboard]
        payload["pairwise"] = {
            "items": prefs.items,
            "p_holm": rep.p_holm,
            "win_rate": rep.win_rate,
            "meetings": rep.meetings,
        }
    return to_jsonable(payload)


def plots(rep: PreferenceReport) -> dict[str, Any]:
    """name -> matplotlib Figure (forest, leaderboard, win rates, reliability)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = {}
    rows = [r for r in rep.rationality if r.flag != "reference"]
    if rows:
        fig, ax = plt.subplots(figsize=(6, 1 + 0.35 * len(rows)))
        ys = np.arange(len(rows))[::-1]
        est = np.array([r.estimate for r in rows])
        ax.errorbar(
            est,
            ys,
            xerr=[est - [r.lower for r in rows], [r.upper for r in rows] - est],
            fmt="o",
            capsize=3,
        )
        ax.axvline(0, color="grey", lw=0.8)
        if any(r.parameter == "sigma" for r in rows):
            ax.axvline(1, color="grey", lw=0.8, ls="--")
        ax.set_yticks(
            ys, [f"{r.name} ({'σ' if r.parameter == 'sigma' else 'γ'})" for r in rows]
        )
        ax.set_xlabel(
            f"estimate with {_level(rep)} interval (dashed: σ = 1, reference)"
        )
        figures["rationality"] = fig
    if rep.leaderboard is not None:
        board = rep.leaderboard
        fig, ax = plt.subplots(figsize=(6, 1 + 0.25 * len(board)))
        ys = np.arange(len(board))[::-1]
        est = np.array([r.reward for r in board])
        groups = np.array([r.rank_group for r in board])
        ax.errorbar(
            est,
            ys,
            xerr=[est - [r.lower for r in board], [r.upper for r in board] - est],
            fmt="none",
            ecolor="grey",
            capsize=2,
        )
        ax.scatter(est, ys, c=groups, cmap="tab10", zorder=3)
        ax.set_yticks(ys, [r.item for r in board], fontsize=8 if len(board) < 40 else 5)
        ax.set_xlabel(
            f"reward relative to {rep.preferences.reference} (colour: rank group)"
        )
        figures["leaderboard"] = fig

        order = [rep.preferences.items.index(r.item) for r in board]
        rate = rep.win_rate[np.ix_(order, order)]
        fig, ax = plt.subplots(figsize=(7, 6))
        im = ax.imshow(np.ma.masked_invalid(rate), cmap="RdBu", vmin=0, vmax=1)
        labels = [r.item for r in board]
        size = 8 if len(labels) < 30 else 4
        ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=size)
        ax.set_yticks(range(len(labels)), labels, fontsize=size)
        ax.set_xlabel("opponent")
        ax.set_ylabel("item (best first)")
        fig.colorbar(im, ax=ax, label="observed share of wins (blank: never met)")
        figures["win_rates"] = fig
    predicted, observed, count = rep.reliability
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    ax.scatter(predicted, observed, s=20 + 200 * count / max(count.max(), 1))
    ax.set_xlabel("predicted P(b wins)")
    ax.set_ylabel("observed share of b wins")
    ax.set_title(f"reliability ({rep.reliability_sample})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    figures["reliability"] = fig
    return figures


def write_report(rep: PreferenceReport, out_dir: str) -> dict[str, str]:
    """Writes report.md, report.html, report.json and the PNG plots into ``out_dir``.

    Returns:
      name -> path of every file written.
    """
    import matplotlib.pyplot as plt

    os.makedirs(out_dir, exist_ok=True)
    paths, images = {}, {}
    for name, fig in plots(rep).items():
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
        plt.close(fig)
        images[name] = buffer.getvalue()
        paths[name] = os.path.join(out_dir, f"{name}.png")
        with open(paths[name], "wb") as f:
            f.write(images[name])
    blocks = _blocks(rep)
    paths["markdown"] = os.path.join(out_dir, "report.md")
    with open(paths["markdown"], "w", encoding="utf-8") as f:
        f.write(_markdown([b for b in blocks if b[0] != "img" or b[1] in images]))
    paths["html"] = os.path.join(out_dir, "report.html")
    with open(paths["html"], "w", encoding="utf-8") as f:
        f.write(_html(blocks, images))
    paths["json"] = os.path.join(out_dir, "report.json")
    with open(paths["json"], "w", encoding="utf-8") as f:
        json.dump(to_json(rep), f, indent=2, ensure_ascii=False)
    return paths
