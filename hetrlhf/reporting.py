"""Writing study results: JSON of every number, a markdown table, PNG plots.

Every study writes ``results/<study>/`` through ``write_results`` so the layout is the
same everywhere:

    results/<study>/results.json   every number (numpy/jax arrays become lists)
    results/<study>/results.md     the markdown table(s), also printed
    results/<study>/*.png          plots

Tables: ``markdown_table`` (header + rows), ``column_table`` (one row per coordinate,
one column per named [p] array; ``columns_by_group`` names them "n=200 coverage", ...),
``records_table`` (one row per dict, columns picked by
key or function); ``param_names`` labels the coordinates θ1…θd, γ1…γk. Figures of
Monte Carlo rates: ``nominal_band`` (the nominal level and its acceptance band on an
axis), ``coverage_vs_n`` (coverage ± MC error against the sample size) and
``coverage_by_coordinate`` (one panel per setting, coordinates on the x axis).
matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "column_table",
    "columns_by_group",
    "coverage_by_coordinate",
    "coverage_vs_n",
    "markdown_table",
    "nominal_band",
    "param_names",
    "records_table",
    "to_jsonable",
    "write_results",
]


def _fmt(value: Any, digits: int) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    value = float(value)
    if math.isnan(value):
        return "nan"
    return f"{value:.{digits}f}"


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[Any]], *, digits: int = 3
) -> str:
    """A GitHub markdown table; floats are printed with ``digits`` decimals."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
    ]
    for row in rows:
        if len(row) != len(header):
            raise ValueError(
                f"row {row!r} has {len(row)} cells, header has {len(header)}"
            )
        lines.append("| " + " | ".join(_fmt(v, digits) for v in row) + " |")
    return "\n".join(lines)


def param_names(d: int, k: int) -> list[str]:
    """["θ1", …, "θd", "γ1", …, "γk"]: labels of the coordinates in ``ravel_params``
    order (θ first)."""
    return [f"θ{j + 1}" for j in range(d)] + [f"γ{j + 1}" for j in range(k)]


def column_table(
    names: Sequence[str],
    columns: Mapping[str, Sequence[Any]],
    *,
    first: str = "parameter",
    digits: int = 3,
) -> str:
    """A markdown table with a row per name and a column per entry of ``columns``.

    Args:
      names: [p] row labels (e.g. ``param_names``).
      columns: header -> [p] values (e.g. "n=200 coverage" -> coverage per coordinate).
      first: header of the label column.
      digits: decimals of floats.
    """
    for header, values in columns.items():
        if len(values) != len(names):
            raise ValueError(
                f"column {header!r} has {len(values)} values for {len(names)} names"
            )
    rows = [
        [name, *(values[j] for values in columns.values())]
        for j, name in enumerate(names)
    ]
    return markdown_table([first, *columns], rows, digits=digits)


def columns_by_group(
    groups: Mapping[str, Mapping[str, Any]], columns: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """Columns of a wide table: ``"<group> <label>" -> groups[group][key]``.

    E.g. groups "n=200", "n=400" of per-n summaries and columns [("coverage",
    "coverage"), ("MC se", "mc_se")] give "n=200 coverage", "n=200 MC se", "n=400
    coverage", ... in that order (for ``column_table``).
    """
    return {
        f"{group} {label}": values[key]
        for group, values in groups.items()
        for label, key in columns
    }


def records_table(
    records: Sequence[Mapping[str, Any]],
    columns: Mapping[str, str | Callable[[Mapping[str, Any]], Any]],
    *,
    digits: int = 3,
) -> str:
    """A markdown table with a row per record (a dict of one setting's numbers).

    Args:
      records: one mapping per row (e.g. a summary per sample size).
      columns: header -> the record's key, or a function of the record.
      digits: decimals of floats.
    """
    rows = [[f(r) if callable(f) else r[f] for f in columns.values()] for r in records]
    return markdown_table(list(columns), rows, digits=digits)


def nominal_band(ax, level: float, lo: float, hi: float, label="binomial 95% band"):
    """Draws the nominal ``level`` (a line) and its acceptance band [lo, hi] (shaded)."""
    ax.axhspan(lo, hi, color="0.85", label=label)
    ax.axhline(level, color="k", lw=1)


def coverage_vs_n(
    sizes: Sequence[int],
    coverage,
    mc_se,
    names: Sequence[str],
    panels: Mapping[str, Sequence[int]],
    level: float,
    half_width: float,
):
    """Coverage ± Monte Carlo error against n, one line per coordinate, with the band.

    Args:
      sizes: [S] sample sizes.
      coverage, mc_se: [S, p] coverage and its MC standard error per n and coordinate.
      names: [p] coordinate labels.
      panels: panel title -> the coordinates (indices) it shows, e.g. θ and γ.
      level: the nominal coverage.
      half_width: half-width of the acceptance band around ``level``.

    Returns:
      A matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    coverage, mc_se = np.asarray(coverage), np.asarray(mc_se)
    fig, axes = plt.subplots(
        1, len(panels), figsize=(5.5 * len(panels), 4), sharey=True, squeeze=False
    )
    for ax, (title, idx) in zip(axes[0], panels.items()):
        nominal_band(ax, level, level - half_width, level + half_width)
        for j in idx:
            cov, err = coverage[:, j], mc_se[:, j]
            (line,) = ax.plot(sizes, cov, "o-", label=names[j])
            ax.fill_between(
                sizes, cov - err, cov + err, color=line.get_color(), alpha=0.2
            )
        ax.set_xlabel("n")
        ax.set_title(title)
        ax.legend(fontsize=8, loc="lower right")
    axes[0, 0].set_ylabel("coverage")
    fig.tight_layout()
    return fig


def coverage_by_coordinate(
    names: Sequence[str],
    panels: Mapping[str, Mapping[str, Sequence[float]]],
    level: float,
    bands: Mapping[str, tuple[float, float]],
    *,
    bottom: float | None = None,
):
    """One panel per setting: the coverage of each coordinate by every method.

    Args:
      names: [p] coordinate labels (the x axis).
      panels: panel title -> method -> [p] coverage.
      level: the nominal coverage.
      bands: panel title -> (lo, hi) acceptance band around ``level``.
      bottom: lower y limit (default: the lowest band end − 0.1, at most 0.75).

    Returns:
      A matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(panels), figsize=(5 * len(panels), 4), sharey=True, squeeze=False
    )
    x = np.arange(len(names))
    for ax, (title, methods) in zip(axes[0], panels.items()):
        nominal_band(ax, level, *bands[title])
        width = 0.8 / len(methods)
        for m, (label, cov) in enumerate(methods.items()):
            ax.plot(x + (m - (len(methods) - 1) / 2) * width, cov, "o", label=label)
        ax.set_xticks(x, names)
        ax.set_title(title)
    if bottom is None:
        bottom = min(0.75, min(lo for lo, _ in bands.values()) - 0.1)
    axes[0, 0].set_ylim(bottom, 1.0)
    axes[0, 0].set_ylabel("coverage")
    axes[0, -1].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def to_jsonable(obj: Any) -> Any:
    """Converts arrays, NamedTuples, numpy scalars and ConfigDicts to plain JSON types."""
    if hasattr(obj, "to_dict") and callable(obj.to_dict):  # ml_collections.ConfigDict
        return to_jsonable(obj.to_dict())
    if hasattr(obj, "_asdict"):  # NamedTuple
        return {k: to_jsonable(v) for k, v in obj._asdict().items()}
    if isinstance(obj, Mapping):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, (str, bool, type(None))):
        return obj
    if isinstance(obj, (int, float)):
        return None if isinstance(obj, float) and not math.isfinite(obj) else obj
    arr = np.asarray(obj)
    if arr.dtype.kind in "fc":
        arr = arr.astype(float)
        return (
            None
            if arr.ndim == 0 and not np.isfinite(arr)
            else (
                float(arr) if arr.ndim == 0 else [to_jsonable(v) for v in arr.tolist()]
            )
        )
    return arr.tolist()


def write_results(
    out_dir: str,
    payload: Mapping[str, Any],
    table: str,
    figures: Mapping[str, Any] | None = None,
    *,
    echo: bool = True,
) -> dict[str, str]:
    """Writes ``results.json``, ``results.md`` and one PNG per figure into ``out_dir``.

    Args:
      out_dir: directory, created if missing (e.g. ``results/coverage``).
      payload: every number of the study (arrays allowed).
      table: markdown text (one or more tables with headings).
      figures: name -> matplotlib Figure; saved as ``<name>.png`` and closed.
      echo: print the table to stdout.

    Returns:
      name -> path of every file written.
    """
    os.makedirs(out_dir, exist_ok=True)
    paths = {"json": os.path.join(out_dir, "results.json")}
    with open(paths["json"], "w") as f:
        json.dump(to_jsonable(payload), f, indent=2, sort_keys=True)
    paths["markdown"] = os.path.join(out_dir, "results.md")
    with open(paths["markdown"], "w") as f:
        f.write(table.rstrip() + "\n")
    for name, fig in (figures or {}).items():
        import matplotlib.pyplot as plt

        path = os.path.join(out_dir, f"{name}.png")
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        paths[name] = path
    if echo:
        print(table)
        print(f"\nwrote {', '.join(sorted(paths.values()))}")
    return paths
