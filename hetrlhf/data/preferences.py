"""Your own preference file → validated comparisons (the input of ``hetrlhf fit``).

One comparison per row, in CSV, JSON Lines or Parquet (DESIGN.md §7):

* what was compared — items (arena style): ``model_a``, ``model_b``; or texts:
  ``prompt``, ``response_a``, ``response_b``;
* the outcome — ``winner`` ∈ {a, b, tie} (also arena's model_a / model_b /
  "tie (bothbad)"), or ``label`` ∈ {0, 1} (1: b won, hetrlhf's y); ties are excluded and
  counted;
* optionally ``annotator``, and any other column named as a rationality covariate
  (numeric: standardised; categorical: one-hot against a reference level) or as the
  cluster of dependent comparisons.

Features φ (``features=``): "items" — one-hot identity, the reference item pinned at
reward 0; "text" — sentence embeddings (``hetrlhf.data.features.embedding_features``, the
``[text]`` extra) when importable, hashed n-grams (``hashed_features``) otherwise, projected
to a few whitened components of Δφ (``fit_projection``); "columns:C1,C2" — precomputed
numbers in columns ``C1_a, C1_b, C2_a, C2_b``.

Rationality σ = 1 + γᵀψ (``rationality=``): "none" (the homogeneous model), "annotator"
(one σ per annotator, the reference annotator's σ = 1 fixing the scale), or covariate
columns.

Every unusable record is reported with its file, line (CSV/JSONL) or row (Parquet) and
field, and nothing is returned (``skip_bad=True`` drops them instead and counts them). A
design that cannot be fitted — a constant or collinear covariate, an annotator with one
comparison, items in disconnected groups, an item that won (or lost) every comparison —
is refused with a message naming the cause.

Rows are returned aggregated: the unique (Δφ, ψ, y, cluster) rows weighted by their
counts (``Comparisons.weight``; a pair written b-vs-a is turned into a-vs-b with the
label flipped, which leaves its likelihood unchanged), so ``hr.fit``, the intervals and
the sandwich of the unique rows are exactly those of the rows as written, at the cost of
U unique rows instead of n. ``holdout_split`` splits them for a held-out evaluation
(with text features, the projection refitted on the training comparisons only).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from hetrlhf.data import features as F
from hetrlhf.data import loaders as D
from hetrlhf.types import Comparisons
from hetrlhf.validation import column_rank, comparisons, default_float_dtype

__all__ = [
    "WINNERS",
    "BadRecord",
    "PreferenceFileError",
    "PreferenceSummary",
    "Preferences",
    "TextFeatures",
    "holdout_counts",
    "holdout_split",
    "load_preferences",
    "read_table",
]

# Accepted ``winner`` values (case-insensitive) -> y (1: b won), None for a tie.
WINNERS: dict[str, int | None] = {
    "a": 0,
    "model_a": 0,
    "b": 1,
    "model_b": 1,
    "tie": None,
    "tie (bothbad)": None,
    "both_bad": None,
}
_ITEM_COLUMNS = ("model_a", "model_b")
_TEXT_COLUMNS = ("prompt", "response_a", "response_b")
_MAX_LISTED = 20  # bad records spelled out in an error message


class BadRecord(NamedTuple):
    """One unusable record: where it is and what is wrong with it.

    Attributes:
      source: the file.
      where: "line N" (CSV, JSON Lines; the record's first line) or "row N" (Parquet,
        1-based).
      field: the column at fault.
      message: what is wrong.
    """

    source: str
    where: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.source}, {self.where}, field {self.field!r}: {self.message}"


class PreferenceFileError(ValueError):
    """Records that cannot be used; ``records`` lists every one of them."""

    def __init__(self, records: Sequence[BadRecord]):
        self.records = tuple(records)
        shown = "\n  ".join(str(r) for r in self.records[:_MAX_LISTED])
        more = len(self.records) - _MAX_LISTED
        tail = f"\n  ... and {more} more" if more > 0 else ""
        super().__init__(
            f"{len(self.records)} unusable record(s); nothing was fitted (pass "
            f"skip_bad=True / --skip-bad to drop and count them):\n  {shown}{tail}"
        )


def read_table(
    path: str,
) -> tuple[dict[str, np.ndarray], list[str], list[BadRecord]]:
    """Reads a CSV, JSON Lines or Parquet file into columns.

    CSV values are strings (an empty cell is missing, None); JSON Lines and Parquet
    keep their types (null / NaN is missing; a key absent from a JSON object is None).

    Args:
      path: a ``.csv``, ``.jsonl`` (or ``.ndjson``) or ``.parquet`` file.

    Returns:
      (columns, where, bad): column name -> [m] object array over the m records that
      could be parsed, each record's location ("line N": its first line; "row N"), and
      the records that could not (a CSV row with the wrong number of cells, bad JSON,
      not an object).

    Raises:
      FileNotFoundError: no such file.
      ValueError: an unknown extension, or an empty file.
    """
    source = os.fspath(path)
    ext = os.path.splitext(source)[1].lower()
    if ext not in (".csv", ".jsonl", ".ndjson", ".parquet"):
        raise ValueError(
            f"{source}: unknown file type {ext!r}; use .csv, .jsonl or .parquet"
        )
    if not os.path.exists(source):
        raise FileNotFoundError(f"{source}: no such file")
    where: list = []
    bad: list[BadRecord] = []
    if ext == ".csv":
        with open(source, newline="", encoding="utf-8") as f:
            header, cells, lines, wrong = _csv_columns(f.read())
        for line, problem in wrong:
            bad.append(
                BadRecord(source, f"line {line}", "-", f"{problem} cells than columns")
            )
        where = [f"line {w}" for w in lines]
        columns = {}
        for name, values in zip(header, cells, strict=True):
            column = np.empty(len(lines), dtype=object)
            column[:] = values
            column[column == ""] = None
            columns[name] = column
    elif ext in (".jsonl", ".ndjson"):
        records = []
        with open(source, encoding="utf-8") as f:
            for number, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                try:
                    row = json.loads(text)
                except json.JSONDecodeError as exc:
                    bad.append(
                        BadRecord(
                            source, f"line {number}", "-", f"invalid JSON ({exc.msg})"
                        )
                    )
                    continue
                if not isinstance(row, dict):
                    bad.append(
                        BadRecord(source, f"line {number}", "-", "not a JSON object")
                    )
                    continue
                records.append(row)
                where.append(f"line {number}")
        names = dict.fromkeys(k for r in records for k in r)
        columns = {}
        for name in names:
            column = np.empty(len(records), dtype=object)
            column[:] = [r.get(name) for r in records]
            columns[name] = column
    else:  # .parquet
        import pandas as pd

        frame = pd.read_parquet(source)
        frame = frame.astype(object).where(frame.notna(), None)
        columns = {name: frame[name].to_numpy(dtype=object) for name in frame.columns}
        where = [f"row {i}" for i in range(1, len(frame) + 1)]
    if not where and not bad:
        raise ValueError(f"{source}: no records")
    return columns, where, bad


def _csv_columns(text: str):
    """Cells of CSV text by column, over the records with as many cells as the header.

    Returns:
      (header, cells: one list per column, each record's first line number, the
      records with a wrong number of cells as (line, "more" | "fewer")). Blank lines
      are no records.

    Text without quotes or carriage returns has one record per line and no escapes, so
    splitting at newlines and commas gives what ``csv.reader`` gives; when every line
    has the header's number of cells, the cells of all lines are split at once (no
    list per record: several times quicker on 50,000 votes). Anything else goes
    through ``csv.reader``, which also handles cells spanning several lines.
    """
    if text and '"' not in text and "\r" not in text and not text.startswith("\n"):
        lines = text.split("\n")
        header = lines[0].split(",")
        width = len(header)
        numbers = [i + 1 for i in range(1, len(lines)) if lines[i]]
        commas = [lines[n - 1].count(",") for n in numbers]
        if all(c == width - 1 for c in commas):
            flat = (
                ",".join([lines[n - 1] for n in numbers]).split(",") if numbers else []
            )
            return header, [flat[j::width] for j in range(width)], numbers, []
        rows = [lines[n - 1].split(",") for n in numbers]
    else:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None) or []
        width = len(header)
        rows, numbers = [], []
        line = reader.line_num + 1
        for cells in reader:
            if cells:  # (a blank line has no cells)
                rows.append(cells)
                numbers.append(line)
            line = reader.line_num + 1
    good = [len(r) == width for r in rows]
    wrong = [
        (n, "more" if len(r) > width else "fewer")
        for r, n, ok in zip(rows, numbers, good, strict=True)
        if not ok
    ]
    rows = [r for r, ok in zip(rows, good, strict=True) if ok]
    numbers = [n for n, ok in zip(numbers, good, strict=True) if ok]
    cells = [list(c) for c in zip(*rows)] if rows else [[] for _ in header]
    return header, cells, numbers, wrong


class PreferenceSummary(NamedTuple):
    """What was read, kept and excluded.

    Attributes:
      source: the file.
      num_rows: records in the file.
      num_ties: ties (excluded).
      num_skipped: unusable records dropped (``skip_bad``).
      skipped: those records.
      num_comparisons: comparisons used (num_rows − num_ties − num_skipped).
      annotators: annotator -> comparisons used ({} without an annotator column).
    """

    source: str
    num_rows: int
    num_ties: int
    num_skipped: int
    skipped: tuple[BadRecord, ...]
    num_comparisons: int
    annotators: dict[str, int]


class TextFeatures(NamedTuple):
    """Text mode: the features of the texts before their projection to φ.

    Attributes:
      raw: [m, D] features of the m distinct (prompt, response) texts (sentence
        embeddings or hashed n-grams).
      sides: [n, 2] the rows of ``raw`` of the two responses of each comparison used,
        as written (the projection is fitted on the distinct pairs among them).
      num_components: the most whitened components kept.
    """

    raw: np.ndarray
    sides: np.ndarray
    num_components: int


class Preferences(NamedTuple):
    """Validated comparisons from a file, as unique rows weighted by their counts.

    Attributes:
      data: ``Comparisons`` of the U unique rows (validated by ``hr.comparisons``),
        ``data.weight`` [U] the number of comparisons behind each unique row.
      cluster: [U] cluster ids in [0, num_clusters), or None (independent rows).
      num_clusters: C (0 without clusters).
      cluster_by: the clustering column, or None.
      row_index: [n] the unique row of each comparison used (for splits).
      row_cluster: [n] the cluster of each comparison used, or None.
      features: "items", "text" or "columns".
      featurizer: what computed φ, in words (e.g. "hashed n-grams").
      feature_names: d names of the θ coordinates.
      rationality: "none", "annotator" or "covariates".
      rationality_names: k names of the γ coordinates.
      rationality_reference: the level with σ = 1 (annotator mode), else None.
      items: all K items (items mode; the reference included, reward 0), else None.
      reference: the reference item (items mode), else None.
      pair: [U, 2] the two sides of each unique row: indices into ``items`` (items
        mode) or into ``text.raw`` (text mode), else None.
      text: ``TextFeatures`` (text mode), else None.
      summary: ``PreferenceSummary``.
    """

    data: Comparisons
    cluster: np.ndarray | None
    num_clusters: int
    cluster_by: str | None
    row_index: np.ndarray
    row_cluster: np.ndarray | None
    features: str
    featurizer: str
    feature_names: tuple[str, ...]
    rationality: str
    rationality_names: tuple[str, ...]
    rationality_reference: str | None
    items: tuple[str, ...] | None
    reference: str | None
    pair: np.ndarray | None
    text: TextFeatures | None
    summary: PreferenceSummary

    @property
    def count(self) -> np.ndarray:
        """[U] comparisons behind each unique row (``data.weight`` as numpy)."""
        return np.asarray(self.data.weight)


# ------------------------------------------------------------------ field parsers --


class _FieldError(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _show(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def _missing(value: Any) -> bool:
    return value is None or (type(value) is float and math.isnan(value))


def _name(row: dict, field: str) -> str:
    """An id (item, annotator, cluster): a non-empty string or an integer."""
    value = row.get(field)
    if type(value) is str and value.strip():  # the common case, first
        return value.strip()
    if _missing(value) or (isinstance(value, str) and not value.strip()):
        raise _FieldError(field, "is missing")
    if isinstance(value, bool) or not isinstance(value, (str, int, np.integer)):
        raise _FieldError(
            field, f"must be a name (text or integer), got {_show(value)}"
        )
    return str(value).strip()


def _text(row: dict, field: str, *, empty_ok: bool) -> str:
    value = row.get(field)
    if value is None and empty_ok and field in row:
        return ""  # an empty CSV cell: an empty response
    if _missing(value):
        raise _FieldError(field, "is missing")
    if not isinstance(value, str):
        raise _FieldError(field, f"must be text, got {_show(value)}")
    return value


def _number(row: dict, field: str) -> float:
    value = row.get(field)
    if _missing(value):
        raise _FieldError(field, "is missing")
    if isinstance(value, bool):
        raise _FieldError(field, f"must be a number, got {_show(value)}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise _FieldError(field, f"must be a number, got {_show(value)}") from None
    if not math.isfinite(number):
        raise _FieldError(field, f"must be a finite number, got {_show(value)}")
    return number


def _outcome(row: dict, has_winner: bool, has_label: bool) -> int | None:
    """y (1: b won) or None for a tie."""
    y_winner = y_label = None
    if has_winner:
        value = row.get("winner")
        if _missing(value):
            raise _FieldError("winner", "is missing")
        key = str(value).strip().lower()
        if key not in WINNERS:
            raise _FieldError(
                "winner",
                f"must be a, b or tie (or model_a / model_b), got {_show(value)}",
            )
        y_winner = WINNERS[key]
        if y_winner is None:
            return None
    if has_label:
        value = row.get("label")
        if _missing(value) and has_winner:
            return y_winner
        try:
            number = float(value) if not isinstance(value, bool) else float("nan")
        except (TypeError, ValueError):
            number = float("nan")
        if number not in (0.0, 1.0):
            raise _FieldError("label", f"must be 0 or 1 (1: b won), got {_show(value)}")
        y_label = int(number)
        if has_winner and y_label != y_winner:
            raise _FieldError(
                "label", f"is {y_label} but winner says {row['winner']!r}"
            )
    return y_winner if y_label is None else y_label


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


# ------------------------------------------------------------------ the loader -----


def _parse_features(features: str) -> tuple[str, tuple[str, ...]]:
    if features in ("items", "text"):
        return features, ()
    if features.startswith("columns:"):
        names = tuple(
            c.strip() for c in features[len("columns:") :].split(",") if c.strip()
        )
        if not names:
            raise ValueError("features='columns:...' needs at least one column name")
        return "columns", names
    raise ValueError(
        f"features must be 'items', 'text' or 'columns:COL,...', got {features!r}"
    )


def _parse_rationality(rationality: str) -> tuple[str, tuple[str, ...]]:
    if rationality in ("none", "annotator"):
        return rationality, ()
    names = tuple(c.strip() for c in rationality.split(",") if c.strip())
    if not names:
        raise ValueError(
            f"rationality must be 'none', 'annotator' or column names, got {rationality!r}"
        )
    return "covariates", names


def _require_columns(source, columns, needed, purpose):
    missing = [c for c in needed if c not in columns]
    if missing:
        raise ValueError(
            f"{source}: {purpose} needs column(s) {missing}; the file has "
            f"{sorted(columns)}"
        )


class _Spec(NamedTuple):
    """What ``load_preferences`` reads from each record."""

    mode: str
    feature_columns: tuple[str, ...]
    has_winner: bool
    has_label: bool
    annotator: bool
    covariates: tuple[str, ...]
    numeric: dict[str, bool]
    cluster_by: str | None


def _parse_row(row: dict, spec: _Spec) -> dict[str, Any]:
    """One record, field by field: the reference parser (its errors name the field)."""
    record: dict[str, Any] = {"y": _outcome(row, spec.has_winner, spec.has_label)}
    if spec.mode == "items":
        a, b = _name(row, "model_a"), _name(row, "model_b")
        if a == b:
            raise _FieldError("model_b", f"is the same item as model_a ({a!r})")
        record["a"], record["b"] = a, b
    if spec.mode == "text" or spec.cluster_by == "prompt":
        record["prompt"] = _text(row, "prompt", empty_ok=False)
    if spec.mode == "text":
        record["a"] = _text(row, "response_a", empty_ok=True)
        record["b"] = _text(row, "response_b", empty_ok=True)
    if spec.mode == "columns":
        record["a"] = tuple(_number(row, f"{c}_a") for c in spec.feature_columns)
        record["b"] = tuple(_number(row, f"{c}_b") for c in spec.feature_columns)
    if spec.annotator:
        record["annotator"] = _name(row, "annotator")
    for c in spec.covariates:
        record[c] = _number(row, c) if spec.numeric[c] else _name(row, c)
    if spec.cluster_by is not None and spec.cluster_by != "prompt":
        record["cluster"] = _name(row, spec.cluster_by)
    return record


def _fast_names(column) -> tuple[list, np.ndarray]:
    values = [v.strip() if type(v) is str else "" for v in column]
    return values, np.array([bool(v) for v in values], dtype=bool)


def _to_float(value) -> float:
    if type(value) is float or type(value) is int:
        return float(value)
    if type(value) is str:
        try:
            return float(value)
        except ValueError:
            return math.nan
    return math.nan


def _fast_numbers(column) -> tuple[np.ndarray, np.ndarray]:
    values = np.array([_to_float(v) for v in column], dtype=np.float64)
    return values, np.isfinite(values)


def _fast_label(value) -> int:
    if type(value) is str:
        return {"0": 0, "1": 1}.get(value, -1)
    if (type(value) is int or type(value) is float) and value in (0, 1):
        return int(value)
    return -1


def _vector_parse(table, spec: _Spec, size: int) -> tuple[np.ndarray, dict]:
    """The common, clean records parsed column by column (a fast path).

    A record is marked clean only when every field is in the plainest valid form
    (e.g. a non-empty string name, a winner spelled as in ``WINNERS``); every other
    record goes to ``_parse_row``, which accepts it or says what is wrong, so the
    two paths cannot disagree on what is valid.

    Returns:
      (clean [m] bool, field -> [m] values, meaningful where clean).
    """
    ok = np.ones(size, dtype=bool)
    out: dict[str, Any] = {}
    y = None
    if spec.has_winner:
        keys = [v.strip().lower() if type(v) is str else None for v in table["winner"]]
        y = [WINNERS.get(k, -1) if k is not None else -1 for k in keys]
        ok &= np.array([v != -1 for v in y], dtype=bool)
    if spec.has_label:
        labels = [_fast_label(v) for v in table["label"]]
        if y is None:
            y = labels
            ok &= np.array([v != -1 for v in labels], dtype=bool)
        else:  # a tie needs no label; otherwise both must be given and agree
            ok &= np.array(
                [w is None or w == v for w, v in zip(y, labels, strict=True)],
                dtype=bool,
            )
    out["y"] = y
    if spec.mode == "items":
        out["a"], ok_a = _fast_names(table["model_a"])
        out["b"], ok_b = _fast_names(table["model_b"])
        ok &= (
            ok_a
            & ok_b
            & np.array(
                [a != b for a, b in zip(out["a"], out["b"], strict=True)], dtype=bool
            )
        )
    if spec.mode == "text" or spec.cluster_by == "prompt":
        out["prompt"] = list(table["prompt"])
        ok &= np.array([type(v) is str and v != "" for v in out["prompt"]], bool)
    if spec.mode == "text":
        for side in "ab":
            out[side] = list(table[f"response_{side}"])
            ok &= np.array([type(v) is str for v in out[side]], dtype=bool)
    if spec.mode == "columns":
        for side in "ab":
            blocks = [_fast_numbers(table[f"{c}_{side}"]) for c in spec.feature_columns]
            out[side] = list(map(tuple, np.stack([b[0] for b in blocks], axis=1)))
            for _, good in blocks:
                ok &= good
    names = ["annotator"] if spec.annotator else []
    names += [c for c in spec.covariates if not spec.numeric[c]]
    if spec.cluster_by is not None and spec.cluster_by != "prompt":
        out["cluster"], good = _fast_names(table[spec.cluster_by])
        ok &= good
    for c in names:
        out[c], good = _fast_names(table[c])
        ok &= good
    for c in spec.covariates:
        if spec.numeric[c]:
            values, good = _fast_numbers(table[c])
            out[c] = values.tolist()
            ok &= good
    return ok, out


def _parse_records(table, where, bad, spec: _Spec, source: str):
    """(kept: field -> values of the records kept, in file order; number of ties;
    item names of unused records).

    Clean records are read column by column (``_vector_parse``); only the others
    are parsed one by one (``_parse_row``).
    """
    size = len(where)
    clean, fast = _vector_parse(table, spec, size)
    parsed: dict[int, dict[str, Any]] = {}
    unused: set = set()  # item names seen in ties and unusable records
    item_columns = [table[c] for c in _ITEM_COLUMNS if c in table]
    for i in np.flatnonzero(~clean).tolist():
        try:
            parsed[i] = _parse_row({k: v[i] for k, v in table.items()}, spec)
        except _FieldError as exc:
            bad.append(BadRecord(source, where[i], exc.field, str(exc)))
            unused.update(column[i] for column in item_columns)
    y = fast["y"]
    outcome = [
        (y[i] if c else parsed[i]["y"] if i in parsed else -1)
        for i, c in enumerate(clean.tolist())
    ]
    ties = [i for i, v in enumerate(outcome) if v is None]
    for i in ties:
        unused.update(column[i] for column in item_columns)
    rows = [i for i, v in enumerate(outcome) if v is not None and v != -1]
    if parsed:
        kept = {
            f: [fast[f][i] if i not in parsed else parsed[i][f] for i in rows]
            for f in fast
        }
    else:
        kept = {f: [values[i] for i in rows] for f, values in fast.items()}
    return kept, len(ties), unused


def load_preferences(
    path: str,
    *,
    features: str | None = None,
    rationality: str | None = None,
    cluster: str | None = None,
    reference: str | None = None,
    annotator_reference: str | None = None,
    pool_rare: int = 0,
    num_components: int = 8,
    skip_bad: bool = False,
    cache_dir: str | None = None,
    dtype=None,
) -> Preferences:
    """Reads, validates and encodes a preference file (see the module docstring).

    Args:
      path: a .csv, .jsonl or .parquet file, one comparison per row.
      features: "items", "text" or "columns:COL,..." (columns COL_a and COL_b each);
        None: "items" when the file has model_a or model_b, else "text".
      rationality: "none", "annotator", or comma-separated covariate columns; None:
        "annotator" when the file has an annotator column, else "none".
      cluster: column whose equal values mark dependent comparisons ("prompt" for the
        prompt); None: by prompt for text data, independent rows otherwise; "none":
        independent rows.
      reference: items mode: the item pinned at reward 0 (default: the last in sorted
        order).
      annotator_reference: annotator mode: the annotator with σ = 1 (default: the one
        with most comparisons).
      pool_rare: annotator mode: annotators with fewer comparisons share the
        reference's σ (default 0: an annotator with one comparison is an error).
      num_components: text mode: whitened components of Δφ kept (fewer if the texts
        span fewer).
      skip_bad: drop unusable records (counted in the summary) instead of raising.
      cache_dir: text mode: the embedding cache (``features.default_cache_dir()``).
      dtype: float dtype of the arrays (JAX's default float when None).

    Returns:
      ``Preferences``.

    Raises:
      PreferenceFileError: unusable records (each with file, line or row, and field).
      ValueError: bad options or columns, no comparison left, or a design that cannot
        be fitted (the message names the cause).
    """
    if features is not None:
        _parse_features(features)  # bad options fail before the file is read
    if rationality is not None:
        _parse_rationality(rationality)
    table, where, bad = read_table(path)
    source = os.fspath(path)
    columns = set(table)
    if features is None:
        features = "items" if set(_ITEM_COLUMNS) & columns else "text"
    if rationality is None:
        rationality = "annotator" if "annotator" in columns else "none"
    mode, feature_columns = _parse_features(features)
    kind, covariate_columns = _parse_rationality(rationality)

    needed = list(_ITEM_COLUMNS if mode == "items" else ())
    if mode == "text":
        needed += _TEXT_COLUMNS
    if mode == "columns":
        needed += [f"{c}_{side}" for c in feature_columns for side in "ab"]
    _require_columns(source, columns, needed, f"features={features!r}")
    has_winner, has_label = "winner" in columns, "label" in columns
    if not (has_winner or has_label):
        raise ValueError(
            f"{source}: needs an outcome column 'winner' (a, b, tie) or 'label' (0, 1); "
            f"the file has {sorted(columns)}"
        )
    if kind == "annotator":
        _require_columns(source, columns, ["annotator"], "rationality='annotator'")
    _require_columns(source, columns, covariate_columns, "rationality")
    if cluster is None:
        cluster = "prompt" if mode == "text" else "none"
    cluster_by = None if cluster == "none" else cluster
    if cluster_by is not None:
        _require_columns(source, columns, [cluster_by], f"cluster={cluster!r}")
    spec = _Spec(
        mode=mode,
        feature_columns=feature_columns,
        has_winner=has_winner,
        has_label=has_label,
        annotator="annotator" in columns,
        covariates=covariate_columns,
        numeric={c: _mostly_numeric(table[c]) for c in covariate_columns},
        cluster_by=cluster_by,
    )
    numeric = spec.numeric
    kept, num_ties, unused = _parse_records(table, where, bad, spec, source)
    if bad and not skip_bad:
        raise PreferenceFileError(bad)
    if not kept["y"]:
        raise ValueError(
            f"{source}: no comparison left ({len(where) + len(bad)} records, {num_ties} "
            f"ties, {len(bad)} unusable)"
        )
    if cluster_by == "prompt":
        kept["cluster"] = kept["prompt"]
    num_kept = len(kept["y"])

    y = np.array(kept["y"], dtype=np.int64)
    items = item_ref = pair_codes = text = None
    if mode == "items":
        items, item_ref, code0, code1 = _encode_items(
            kept, y, reference, source, unused
        )
        phi_table = np.eye(len(items))[
            :, [i for i, v in enumerate(items) if v != item_ref]
        ]
        feature_names = tuple(v for v in items if v != item_ref)
        featurizer = "one-hot items"
    elif mode == "text":
        text, featurizer = _encode_texts(kept, num_components, cache_dir)
        code0, code1 = text.sides.T
        phi_table, dim = _project_texts(text, np.ones(num_kept, bool))
        featurizer = f"{featurizer}, {dim} whitened components"
        feature_names = tuple(f"text component {j + 1}" for j in range(dim))
    else:
        stacked = kept["a"] + kept["b"]
        phi_table, codes = np.unique(np.array(stacked), axis=0, return_inverse=True)
        codes = codes.reshape(-1)
        code0, code1 = codes[:num_kept], codes[num_kept:]
        featurizer = "columns"
        feature_names = feature_columns

    psi, rationality_names, ann_ref = _encode_rationality(
        kept, kind, covariate_columns, numeric, annotator_reference, pool_rare
    )
    if psi.shape[1]:
        psi_table, psi_code = np.unique(psi, axis=0, return_inverse=True)
        psi_code = psi_code.reshape(-1)
    else:
        psi_table, psi_code = np.zeros((1, 0)), np.zeros(num_kept, dtype=np.int64)
    if cluster_by is not None:
        cluster_names, row_cluster = np.unique(
            np.array([str(c) for c in kept["cluster"]]), return_inverse=True
        )
        row_cluster = row_cluster.reshape(-1)
        num_clusters = len(cluster_names)
    else:
        row_cluster, num_clusters = None, 0

    # Canonical orientation: (a, b, y) and (b, a, 1 − y) have the same likelihood.
    flip = code0 > code1
    lo, hi = np.where(flip, code1, code0), np.where(flip, code0, code1)
    y_canon = np.where(flip, 1 - y, y)
    keys = [lo, hi, psi_code, y_canon]
    if row_cluster is not None:
        keys.append(row_cluster)
    # One integer per (pair, ψ, label, cluster) class: a 1-D unique (fast) instead of
    # a unique over rows; the structured fallback for spaces beyond int64.
    dims = [int(k.max()) + 1 for k in keys]
    if math.prod(dims) < 2**62:
        flat = np.ravel_multi_index(keys, dims)
        classes, row_index, count = np.unique(
            flat, return_inverse=True, return_counts=True
        )
        unique = np.stack(np.unravel_index(classes, dims), axis=1)
    else:
        unique, row_index, count = np.unique(
            np.stack(keys, axis=1), axis=0, return_inverse=True, return_counts=True
        )
    row_index = row_index.reshape(-1)
    arrays = (
        phi_table[unique[:, 0]],
        phi_table[unique[:, 1]],
        unique[:, 3].astype(np.float64),
        psi_table[unique[:, 2]],
    )
    if mode == "items":
        # Identifiable by construction, so hr.comparisons' SVD rank checks (the
        # slowest step on an arena of 100 items) are skipped: a connected comparison
        # graph makes the one-hot Δφ of K − 1 items full rank, and ψ was checked by
        # _encode_rationality (a level with no row raises there).
        dtype = default_float_dtype() if dtype is None else dtype
        data = Comparisons(
            *(jnp.asarray(a, dtype) for a in arrays),
            psi0=jnp.ones(len(count), dtype),
            weight=jnp.asarray(count, dtype),
        )
    else:
        data = comparisons(*arrays[:3], psi=arrays[3], weight=count, dtype=dtype)
    if mode in ("items", "text"):
        pair_codes = unique[:, :2]
    annotators = (
        dict(sorted(Counter(kept["annotator"]).items()))
        if "annotator" in columns
        else {}
    )
    summary = PreferenceSummary(
        source=source,
        num_rows=len(where) + sum(b.field == "-" for b in bad),
        num_ties=num_ties,
        num_skipped=len(bad),
        skipped=tuple(bad),
        num_comparisons=num_kept,
        annotators=annotators,
    )
    return Preferences(
        data=data,
        cluster=None if row_cluster is None else unique[:, 4],
        num_clusters=num_clusters,
        cluster_by=cluster_by,
        row_index=row_index,
        row_cluster=row_cluster,
        features=mode,
        featurizer=featurizer,
        feature_names=tuple(feature_names),
        rationality=kind,
        rationality_names=rationality_names,
        rationality_reference=ann_ref,
        items=items,
        reference=item_ref,
        pair=pair_codes,
        text=text,
        summary=summary,
    )


def _mostly_numeric(values: Sequence[Any]) -> bool:
    """A covariate column is numeric when most of its present values are numbers.

    Then its non-numbers are bad records ("must be a number"); otherwise it is
    categorical and numbers are just level names.
    """
    present = [v for v in values if not _missing(v)]
    return bool(present) and sum(map(_is_number, present)) > len(present) / 2


def _encode_items(kept, y, reference, source, unused):
    """Item names, the reference, and each comparison's two item codes."""
    names = sorted(set(kept["a"]) | set(kept["b"]))
    seen = {str(v).strip() for v in unused if not _missing(v)} - {""}
    never = sorted(seen - set(names))
    if never:
        raise ValueError(
            f"{source}: item(s) {never[:10]} appear only in ties or unusable records: "
            "never compared, so their reward is not identified; remove them"
        )
    if reference is None:
        reference = names[-1]
    elif reference not in names:
        raise ValueError(f"reference {reference!r} is not an item; items: {names[:20]}")
    code = {v: i for i, v in enumerate(names)}
    code0 = np.array([code[v] for v in kept["a"]])
    code1 = np.array([code[v] for v in kept["b"]])
    num = len(names)
    if num < 2:
        raise ValueError(f"{source}: at least two items are needed, got {names}")
    graph = scipy.sparse.coo_matrix(
        (np.ones(len(code0)), (code0, code1)), shape=(num, num)
    )
    parts, label = scipy.sparse.csgraph.connected_components(graph, directed=False)
    if parts > 1:
        groups = [[names[i] for i in np.flatnonzero(label == g)] for g in range(parts)]
        shown = "; ".join(
            str(g[:5]) + ("..." if len(g) > 5 else "") for g in groups[:4]
        )
        raise ValueError(
            f"{source}: the items fall into {parts} groups never compared with each "
            f"other ({shown}): rewards of different groups are not comparable, so the "
            "design is not identifiable; fit each group separately or add comparisons"
        )
    winner = np.where(y == 1, code1, code0)
    loser = np.where(y == 1, code0, code1)
    wins = scipy.sparse.coo_matrix(
        (np.ones(len(code0)), (winner, loser)), shape=(num, num)
    )
    parts, label = scipy.sparse.csgraph.connected_components(
        wins, directed=True, connection="strong"
    )
    if parts > 1:
        # Some set of items beat (or lost to) everything outside it: the likelihood
        # keeps rising as their rewards move apart (Zermelo 1929; Ford 1957).
        won = np.bincount(winner, minlength=num)
        lost = np.bincount(loser, minlength=num)
        perfect = [names[i] for i in range(num) if won[i] == 0 or lost[i] == 0]
        detail = (
            f"item(s) {perfect[:10]} won all or lost all of their comparisons"
            if perfect
            else f"the items split into {parts} sets one of which never lost to another"
        )
        raise ValueError(
            f"{source}: separable data: {detail}, so the maximum-likelihood rewards "
            "are infinite (no finite estimate or interval); add comparisons or remove "
            "those items"
        )
    return tuple(names), reference, code0, code1


def _text_features(pairs, cache_dir):
    """(features [m, D], name): MiniLM with the [text] extra, else hashed n-grams."""
    try:
        emb, _ = F.embedding_features(pairs, cache_dir=cache_dir)
        return emb, "MiniLM sentence embeddings"
    except ImportError:
        return F.hashed_features(pairs), "hashed n-grams"


def _encode_texts(kept, num_components, cache_dir) -> tuple[TextFeatures, str]:
    """(``TextFeatures`` of the distinct (prompt, response) texts, featurizer name)."""
    position: dict[tuple[str, str], int] = {}
    prompts = kept["prompt"]
    code0 = np.array(
        [position.setdefault(k, len(position)) for k in zip(prompts, kept["a"])]
    )
    code1 = np.array(
        [position.setdefault(k, len(position)) for k in zip(prompts, kept["b"])]
    )
    raw, featurizer = _text_features(list(position), cache_dir)
    return TextFeatures(
        raw, np.stack([code0, code1], axis=1), num_components
    ), featurizer


def _project_texts(text: TextFeatures, rows: np.ndarray) -> tuple[np.ndarray, int]:
    """(φ [m, d] of every text, d): the projection fitted on the comparisons ``rows``.

    The leading ``num_components`` (at most the rank) whitened components of the
    uncentred Δφ over the distinct written pairs of the comparisons ``rows`` [n] bool
    (``features.fit_projection``), applied to every text.
    """
    pairs = np.unique(text.sides[rows], axis=0)
    dphi = text.raw[pairs[:, 1]] - text.raw[pairs[:, 0]]
    rank = column_rank(dphi)
    if rank == 0:
        raise ValueError("text features: the two responses of every pair are identical")
    dim = min(text.num_components, rank)
    projection = F.fit_projection(dphi, dim, center=False, whiten=True)
    return F.apply_projection(projection, text.raw), dim


def _encode_rationality(kept, kind, covariate_columns, numeric, reference, pool_rare):
    """(ψ [n, k], names, reference annotator) with every cause of trouble named."""
    n = len(kept["y"])
    if kind == "none":
        return np.zeros((n, 0)), (), None
    if kind == "annotator":
        values = kept["annotator"]
        counts = Counter(values)
        rare = sorted(v for v, c in counts.items() if c < max(pool_rare, 2))
        if rare and not pool_rare:
            raise ValueError(
                f"annotator(s) {rare[:10]} have a single comparison: their rationality "
                "σ cannot be estimated; remove their rows, or pool annotators with fewer "
                "than N comparisons with the reference (pool_rare=N / --pool-rare N)"
            )
        levels = D.fit_levels(values, reference=reference, min_count=max(pool_rare, 1))
        if not levels.names:
            raise ValueError(
                f"rationality='annotator' needs two annotators or more; got {sorted(counts)}"
            )
        names = tuple(f"annotator={v}" for v in levels.names)
        return D.one_hot(values, levels), names, levels.reference
    blocks, names = [], []
    for c in covariate_columns:
        values = kept[c]
        if numeric[c]:
            column = np.array(values, dtype=np.float64)
            sd = column.std()
            if not sd > 1e-12 * max(1.0, abs(column.mean())):
                raise ValueError(
                    f"rationality covariate {c!r} is constant ({column[0]:g} in every "
                    "comparison): with σ = 1 + γᵀψ its slope is not identified; drop it"
                )
            blocks.append(((column - column.mean()) / sd)[:, None])
            names.append(c)
        else:
            levels = D.fit_levels(values)
            if not levels.names:
                raise ValueError(
                    f"rationality covariate {c!r} is constant ({levels.reference!r} in "
                    "every comparison): its effect on σ is not identified; drop it"
                )
            blocks.append(D.one_hot(values, levels))
            names += [f"{c}={v}" for v in levels.names]
    psi = np.concatenate(blocks, axis=1)
    _check_collinear(psi, names)
    return psi, tuple(names), None


def _check_collinear(psi: np.ndarray, names: Sequence[str]) -> None:
    """Names the first covariate column in the span of ψ0 ≡ 1 and the earlier ones."""
    basis = np.ones((psi.shape[0], 1))
    for j, name in enumerate(names):
        candidate = np.column_stack([basis, psi[:, j]])
        if column_rank(candidate) < candidate.shape[1]:
            earlier = list(names[:j])
            raise ValueError(
                f"rationality covariate column {name!r} is collinear with "
                f"{earlier if earlier else 'the constant'} (and the constant ψ0 = 1): "
                "γ is not identified; drop one of them"
            )
        basis = candidate


def _held_out_rows(prefs: Preferences, fraction: float, seed: int) -> np.ndarray:
    """[n] bool: the comparisons held out (whole clusters when clustered)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout fraction must be in (0, 1), got {fraction}")
    unit = (
        prefs.row_cluster
        if prefs.row_cluster is not None
        else np.arange(len(prefs.row_index))
    )
    num_units = int(unit.max()) + 1
    if num_units < 2:
        raise ValueError("a holdout split needs at least two clusters or comparisons")
    num_test = min(max(round(fraction * num_units), 1), num_units - 1)
    test_units = np.random.default_rng(seed).permutation(num_units)[:num_test]
    return np.isin(unit, test_units)


def holdout_counts(
    prefs: Preferences, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Splits the comparisons into training and held-out counts over the unique rows.

    Whole clusters (e.g. prompts) are held out when the data are clustered, single
    comparisons otherwise: round(fraction·units) units (at least 1, at most all but 1),
    chosen by ``numpy.random.default_rng(seed)``.

    Args:
      prefs: the data.
      fraction: in (0, 1), the share held out.
      seed: the split's seed.

    Returns:
      (train [U], test [U]) counts; they add up to ``prefs.count``.
    """
    is_test = _held_out_rows(prefs, fraction, seed)
    size = len(prefs.count)
    test = np.bincount(prefs.row_index[is_test], minlength=size).astype(np.float64)
    return prefs.count - test, test


def holdout_split(
    prefs: Preferences, fraction: float, seed: int
) -> tuple[Comparisons, Comparisons]:
    """(train, test): the split of ``holdout_counts`` as weighted ``Comparisons``.

    Both are the U unique rows of ``prefs.data`` with the training and the held-out
    counts as weights (a row absent from one side has weight 0 there). With text
    features the projection of the texts' features is refitted on the training
    comparisons only, so nothing of the held-out comparisons enters the fit; both sides
    then use that projection (``d`` can be smaller than the full data's when the
    training pairs span fewer directions).

    Args:
      prefs: the data.
      fraction: in (0, 1), the share held out.
      seed: the split's seed.

    Returns:
      (train, test) ``Comparisons`` with weights.

    Raises:
      ValueError: a bad fraction, fewer than two units, or (text mode) training
        features without full rank.
    """
    train, test = holdout_counts(prefs, fraction, seed)
    data = prefs.data
    if prefs.text is not None:
        is_test = _held_out_rows(prefs, fraction, seed)
        table, _ = _project_texts(prefs.text, ~is_test)
        data = comparisons(
            table[prefs.pair[:, 0]],
            table[prefs.pair[:, 1]],
            data.y,
            psi=data.psi,
            weight=train,
            dtype=data.y.dtype,
        )
    dtype = data.y.dtype
    return (
        data._replace(weight=jnp.asarray(train, dtype)),
        data._replace(weight=jnp.asarray(test, dtype)),
    )
