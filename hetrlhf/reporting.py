"""Writing study results: JSON of every number, a markdown table, PNG plots.

Every study writes ``results/<study>/`` through ``write_results`` so the layout is the
same everywhere:

    results/<study>/results.json   every number (numpy/jax arrays become lists)
    results/<study>/results.md     the markdown table(s), also printed
    results/<study>/*.png          plots
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["markdown_table", "to_jsonable", "write_results"]


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
