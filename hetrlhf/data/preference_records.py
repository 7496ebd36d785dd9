"""Reading a preference file: its records, parsed and checked field by field.

The first half of ``hetrlhf.data.preferences.load_preferences`` (the file format is in
that module's docstring): ``read_table`` reads a CSV, JSON Lines or Parquet file into
columns; ``read_records`` resolves the options against the file's columns and parses
every record — clean ones column by column, the others one by one by a reference
parser whose errors name the file, line (or row) and field (``BadRecord``;
``PreferenceFileError`` lists them all). The encoding into comparisons is
``hetrlhf.data.preferences``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "WINNERS",
    "BadRecord",
    "PreferenceFileError",
    "Records",
    "read_records",
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
    read = {".csv": _read_csv, ".parquet": _read_parquet}.get(ext, _read_jsonl)
    columns, where, bad = read(source)
    if not where and not bad:
        raise ValueError(f"{source}: no records")
    return columns, where, bad


def _read_csv(source: str):
    """(columns, where, bad) of a CSV file: strings, an empty cell None."""
    with open(source, newline="", encoding="utf-8") as f:
        header, cells, lines, wrong = _csv_columns(f.read())
    bad = [
        BadRecord(source, f"line {line}", "-", f"{problem} cells than columns")
        for line, problem in wrong
    ]
    columns = {}
    for name, values in zip(header, cells, strict=True):
        column = np.empty(len(lines), dtype=object)
        column[:] = values
        column[column == ""] = None
        columns[name] = column
    return columns, [f"line {w}" for w in lines], bad


def _read_jsonl(source: str):
    """(columns, where, bad) of a JSON Lines file (a key absent from an object: None)."""
    records, where, bad = [], [], []
    with open(source, encoding="utf-8") as f:
        for number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as exc:
                message = f"invalid JSON ({exc.msg})"
                bad.append(BadRecord(source, f"line {number}", "-", message))
                continue
            if not isinstance(row, dict):
                bad.append(
                    BadRecord(source, f"line {number}", "-", "not a JSON object")
                )
                continue
            records.append(row)
            where.append(f"line {number}")
    columns = {}
    for name in dict.fromkeys(k for r in records for k in r):
        column = np.empty(len(records), dtype=object)
        column[:] = [r.get(name) for r in records]
        columns[name] = column
    return columns, where, bad


def _read_parquet(source: str):
    """(columns, where, bad) of a Parquet file (null / NaN: None)."""
    import pandas as pd

    frame = pd.read_parquet(source)
    frame = frame.astype(object).where(frame.notna(), None)
    columns = {name: frame[name].to_numpy(dtype=object) for name in frame.columns}
    return columns, [f"row {i}" for i in range(1, len(frame) + 1)], []


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


def _mostly_numeric(values: Sequence[Any]) -> bool:
    """A covariate column is numeric when most of its present values are numbers.

    Then its non-numbers are bad records ("must be a number"); otherwise it is
    categorical and numbers are just level names.
    """
    present = [v for v in values if not _missing(v)]
    return bool(present) and sum(map(_is_number, present)) > len(present) / 2


class Records(NamedTuple):
    """The records of a preference file, parsed and checked (``read_records``).

    Attributes:
      source: the file.
      num_rows: records in the file (parsed or not).
      kept: field -> [n] values of the n comparisons kept, in file order ("y", "a",
        "b", and as the spec asks "prompt", "annotator", covariates, "cluster").
      num_ties: ties (excluded).
      bad: the unusable records (dropped: ``skip_bad``).
      unused: item names seen only in ties and unusable records.
      spec: what was read from each record (features mode and columns, outcome
        columns, annotator, covariates and whether numeric, cluster column).
      rationality: "none", "annotator" or "covariates".
    """

    source: str
    num_rows: int
    kept: dict
    num_ties: int
    bad: tuple
    unused: set
    spec: _Spec
    rationality: str


def _resolve(source, columns, features, rationality, cluster):
    """(features mode, its columns, rationality kind, its columns, cluster column) of
    the options (None: the file's defaults), the columns they need checked."""
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
    if not {"winner", "label"} & columns:
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
    return mode, feature_columns, kind, covariate_columns, cluster_by


def read_records(
    path: str,
    *,
    features: str | None = None,
    rationality: str | None = None,
    cluster: str | None = None,
    skip_bad: bool = False,
) -> Records:
    """Reads a preference file and checks every record (``load_preferences``' options).

    Raises:
      PreferenceFileError: unusable records (unless ``skip_bad``).
      ValueError: bad options or columns, no comparison left.
    """
    if features is not None:
        _parse_features(features)  # bad options fail before the file is read
    if rationality is not None:
        _parse_rationality(rationality)
    table, where, bad = read_table(path)
    source = os.fspath(path)
    columns = set(table)
    mode, feature_columns, kind, covariate_columns, cluster_by = _resolve(
        source, columns, features, rationality, cluster
    )
    spec = _Spec(
        mode=mode,
        feature_columns=feature_columns,
        has_winner="winner" in columns,
        has_label="label" in columns,
        annotator="annotator" in columns,
        covariates=covariate_columns,
        numeric={c: _mostly_numeric(table[c]) for c in covariate_columns},
        cluster_by=cluster_by,
    )
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
    num_rows = len(where) + sum(b.field == "-" for b in bad)
    return Records(source, num_rows, kept, num_ties, tuple(bad), unused, spec, kind)
