"""Loading real pairwise preference files into validated ``Comparisons``.

A preference file is JSON Lines: one object per (annotator, comparison) with a prompt
s, two responses a⁰ and a¹, a label (1 if a¹ was preferred, 0 if a⁰ was, a tie value
otherwise) and the annotator's id (and optionally type and numeric covariates). The
JSON key of each field is given by a field map, so any file layout can be read.

The pipeline, each step a plain function:

    records, summary = load_jsonl(path, fields=...)          # strict, line-numbered errors
    train, test = split_by_prompt(records, test_fraction=0.3, seed=0)
    index = unique_texts(train)                               # featurize each text once
    features = featurizer(index.pairs)                        # [m, d]
    levels = fit_levels([r.annotator for r in train])         # one-hot, reference dropped
    psi = one_hot([r.annotator for r in train], levels)       # [n, k]
    data = to_comparisons(train, features, index, psi=psi)    # hr.comparisons validation

Nothing is ever dropped silently: ties and invalid verdicts are excluded only by an
explicit option and every exclusion is counted (with its line number) in the returned
``LoadSummary``.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax.numpy as jnp
import numpy as np

from hetrlhf.data import features
from hetrlhf.types import Comparisons
from hetrlhf.validation import comparisons

__all__ = [
    "FIELDS",
    "PANDALM_HUMAN_FIELDS",
    "PANDALM_JUDGE_FIELDS",
    "TULU1_FIELDS",
    "FeaturedSplit",
    "Levels",
    "LoadSummary",
    "PreferenceRecord",
    "TextIndex",
    "covariate_matrix",
    "featurize_split",
    "fit_levels",
    "labels",
    "load_jsonl",
    "load_pandalm",
    "load_tulu1",
    "merge_summaries",
    "one_hot",
    "split_by_prompt",
    "text_index",
    "to_comparisons",
    "unique_texts",
]

# Canonical field names. Required: prompt, response_0, response_1, label, annotator.
# Optional (read only when the field map names them): annotator_type, tie, valid,
# group, model_0, model_1.
REQUIRED_FIELDS = ("prompt", "response_0", "response_1", "label", "annotator")
OPTIONAL_FIELDS = ("annotator_type", "tie", "valid", "group", "model_0", "model_1")

# The default map: canonical name -> JSON key, identity on the required fields.
FIELDS: Mapping[str, str] = {name: name for name in REQUIRED_FIELDS}

# /work/shared/data/pandalm_testset/pandalm_human.jsonl (3 human annotators).
PANDALM_HUMAN_FIELDS: Mapping[str, str] = {
    "prompt": "prompt",
    "response_0": "response_0",
    "response_1": "response_1",
    "label": "label",
    "annotator": "annotator_id",
    "annotator_type": "annotator_type",
    "tie": "tie",
    "group": "item_id",
    "model_0": "model_0",
    "model_1": "model_1",
}
# pandalm_llm_judges.jsonl: the same plus the ``valid`` flag (False for the 25
# unparseable gpt-3.5-turbo verdicts).
PANDALM_JUDGE_FIELDS: Mapping[str, str] = {**PANDALM_HUMAN_FIELDS, "valid": "valid"}
# /work/shared/data/tulu1_human_eval/tulu1_human_eval.jsonl (16 annotators). The group
# is the comparison instance (prompt × model pair).
TULU1_FIELDS: Mapping[str, str] = {
    "prompt": "prompt",
    "response_0": "response_0",
    "response_1": "response_1",
    "label": "label",
    "annotator": "annotator_id",
    "tie": "tie",
    "group": "instance_index",
    "model_0": "model_0",
    "model_1": "model_1",
}


class PreferenceRecord(NamedTuple):
    """One labelled comparison as read from a file.

    Attributes:
      prompt: the prompt s.
      response_0, response_1: the two responses a⁰, a¹.
      label: 1 if ``response_1`` was preferred, 0 if ``response_0`` was, None for a tie
        (present only when loaded with ``ties="keep"``).
      annotator: annotator id (str).
      annotator_type: e.g. "human" or "llm_judge"; None when not mapped.
      group: id of the comparison item (e.g. PandaLM ``item_id``) as str, or None.
      model_0, model_1: names of the models that wrote the responses, or None.
      covariates: numeric annotator covariates, in the order of ``covariates=``.
      source: the file path.
      line: 1-based line number in ``source``.
    """

    prompt: str
    response_0: str
    response_1: str
    label: int | None
    annotator: str
    annotator_type: str | None
    group: str | None
    model_0: str | None
    model_1: str | None
    covariates: tuple[float, ...]
    source: str
    line: int


class LoadSummary(NamedTuple):
    """What a load kept and what it excluded, with reasons.

    Invariant: ``num_rows == num_records + sum(len(v) for v in excluded.values())``.

    Attributes:
      path: the file (for merged summaries, the files joined by ", ").
      num_rows: non-blank lines read (each one JSON object).
      num_blank: blank lines skipped.
      num_records: records returned.
      num_ties: rows whose label is a tie (kept or excluded).
      num_coerced: rows (kept or excluded as ties) with a non-string response converted
        to text (``non_string_text="json"``).
      excluded: reason -> 1-based line numbers of the rows excluded for it; reasons are
        "tie" (``ties="exclude"``) and "invalid" (the ``valid`` field is false).
      coerced_lines: 1-based line numbers of the rows with a converted response.
      annotators: annotator id -> number of records returned.
    """

    path: str
    num_rows: int
    num_blank: int
    num_records: int
    num_ties: int
    num_coerced: int
    excluded: Mapping[str, tuple[int, ...]]
    coerced_lines: tuple[int, ...]
    annotators: Mapping[str, int]

    def num_excluded(self, reason: str | None = None) -> int:
        """Rows excluded for ``reason`` (all reasons when None)."""
        if reason is None:
            return sum(len(v) for v in self.excluded.values())
        return len(self.excluded.get(reason, ()))


class Levels(NamedTuple):
    """Levels of a categorical covariate for a one-hot ψ with a dropped reference.

    Attributes:
      names: the levels that get a column, in column order.
      reference: the level with no column (its rows have ψ = 0, so σ = ψ0).
      pooled: levels seen fewer than ``min_count`` times; they get no column and are
        pooled with the reference.
    """

    names: tuple[str, ...]
    reference: str
    pooled: tuple[str, ...] = ()


class TextIndex(NamedTuple):
    """Unique (prompt, response) pairs of a set of records and where each row points.

    Attributes:
      pairs: the unique (prompt, response) texts, in order of first appearance.
      index0: [n] int, row of ``pairs`` holding (prompt_i, response_0_i).
      index1: [n] int, row of ``pairs`` holding (prompt_i, response_1_i).
    """

    pairs: tuple[tuple[str, str], ...]
    index0: np.ndarray
    index1: np.ndarray


class _RowError(ValueError):
    """A problem with one field of one row; ``load_jsonl`` adds the file and line."""

    def __init__(self, field: str, key: str, message: str):
        super().__init__(message)
        self.field = field
        self.key = key


def _describe(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _get(row: Mapping[str, Any], fields: Mapping[str, str], name: str) -> Any:
    key = fields[name]
    if key not in row:
        raise _RowError(name, key, "is missing")
    return row[key]


def _text(
    row: Mapping[str, Any], fields: Mapping[str, str], name: str, non_string_text: str
) -> tuple[str, bool]:
    value = _get(row, fields, name)
    if isinstance(value, str):
        return value, False
    scalar = isinstance(value, (bool, int)) or (
        isinstance(value, float) and math.isfinite(value)
    )
    if non_string_text == "json" and scalar:
        return json.dumps(value), True
    hint = (
        ' (pass non_string_text="json" to convert JSON booleans and numbers to text)'
        if scalar
        else ""
    )
    raise _RowError(
        name,
        fields[name],
        f"must be a string, got {type(value).__name__} {_describe(value)}{hint}",
    )


def _id(row: Mapping[str, Any], fields: Mapping[str, str], name: str) -> str:
    value = _get(row, fields, name)
    if isinstance(value, str) or (
        isinstance(value, int) and not isinstance(value, bool)
    ):
        return str(value)
    raise _RowError(
        name,
        fields[name],
        f"must be a string or an integer, got {type(value).__name__} {_describe(value)}",
    )


def _bool(row: Mapping[str, Any], fields: Mapping[str, str], name: str) -> bool:
    value = _get(row, fields, name)
    if not isinstance(value, bool):
        raise _RowError(
            name,
            fields[name],
            f"must be true or false, got {type(value).__name__} {_describe(value)}",
        )
    return value


def _label(
    row: Mapping[str, Any],
    fields: Mapping[str, str],
    label_map: Mapping[Any, int],
    tie_values: Sequence[Any],
) -> int | None:
    value = _get(row, fields, "label")
    allowed = [*label_map, *tie_values]
    # JSON true/false are Python bools, which compare equal to 1/0: accept them only
    # when the map names booleans explicitly.
    bool_ok = any(isinstance(v, bool) for v in allowed)
    if isinstance(value, bool) and not bool_ok or isinstance(value, (list, dict)):
        pass
    elif any(value is v or (v is not None and value == v) for v in tie_values):
        return None
    elif value in label_map:
        return int(label_map[value])
    raise _RowError(
        "label",
        fields["label"],
        f"must be one of {json.dumps(list(label_map))} or a tie value "
        f"{json.dumps(list(tie_values))}, got {_describe(value)}",
    )


def load_jsonl(
    path: str,
    *,
    fields: Mapping[str, str] = FIELDS,
    ties: str = "exclude",
    label_map: Mapping[Any, int] | None = None,
    tie_values: Sequence[Any] = (None,),
    non_string_text: str = "error",
    covariates: Sequence[str] = (),
    max_rows: int | None = None,
) -> tuple[list[PreferenceRecord], LoadSummary]:
    """Reads a JSON Lines file of pairwise preferences, strictly.

    Each non-blank line must be a JSON object with the keys named by ``fields``. A row
    is a tie when its label is one of ``tie_values`` (and, when a ``tie`` field is
    mapped, that field must agree with the label). A row whose mapped ``valid`` field is
    false (e.g. an unparseable LLM-judge verdict) is excluded, whatever its label.

    Args:
      path: the .jsonl file.
      fields: canonical name -> JSON key. Must map the required names "prompt",
        "response_0", "response_1", "label", "annotator"; may map "annotator_type",
        "tie", "valid", "group", "model_0", "model_1". A mapped key missing from a row
        is an error. See ``PANDALM_HUMAN_FIELDS``, ``PANDALM_JUDGE_FIELDS``,
        ``TULU1_FIELDS``.
      ties: "exclude" (default: dropped and counted in the summary), "error" (the
        first tie raises), or "keep" (returned with ``label=None``; such records cannot
        go into ``to_comparisons`` but can be used for win rates).
      label_map: raw label value -> 0/1; default {0: 0, 1: 1} (1 = response_1 won).
      tie_values: raw label values that mean a tie; default (None,) (JSON null).
      non_string_text: a response that is a JSON boolean or number (PandaLM has a few
        ``true``): "error" (default) raises naming the line and field; "json" converts
        it to its JSON text (``true`` -> "true") and counts it in the summary.
      covariates: JSON keys of numeric annotator covariates to read into
        ``PreferenceRecord.covariates`` (finite numbers, not booleans).
      max_rows: stop after this many non-blank lines (a small slice for tests).

    Returns:
      (records, summary).

    Raises:
      ValueError: naming the file, the 1-based line number and the field, for bad JSON,
        a row that is not an object, a missing field, a wrong type, a label outside
        ``label_map``/``tie_values``, a tie field disagreeing with the label, or a tie
        with ``ties="error"``. Also for a bad option or a field map without a required
        name. FileNotFoundError when ``path`` does not exist.
    """
    label_map = _check_options(fields, ties, non_string_text, label_map, max_rows)
    cov_fields = {f"covariate:{c}": c for c in covariates}
    source = os.fspath(path)
    records: list[PreferenceRecord] = []
    excluded: dict[str, list[int]] = {"tie": [], "invalid": []}
    coerced: list[int] = []
    num_rows = num_blank = num_ties = 0
    with open(source, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                num_blank += 1
                continue
            if max_rows is not None and num_rows >= max_rows:
                break
            num_rows += 1
            where = f"{source}, line {line_no}"
            parsed = _record_fields(
                line, where, fields, label_map, tie_values, non_string_text, cov_fields
            )
            if parsed is None:
                excluded["invalid"].append(line_no)
                continue
            fields_of_record, was_coerced = parsed
            if was_coerced:
                coerced.append(line_no)
            if fields_of_record["label"] is None:
                num_ties += 1
                if ties == "error":
                    raise ValueError(
                        f"{where}: field 'label' (JSON key {fields['label']!r}) is a tie "
                        "and ties='error' (use ties='exclude' to drop and count ties)"
                    )
                if ties == "exclude":
                    excluded["tie"].append(line_no)
                    continue
            records.append(
                PreferenceRecord(**fields_of_record, source=source, line=line_no)
            )
    summary = _summary(
        source, records, num_rows, num_blank, num_ties, excluded, coerced
    )
    return records, summary


def _summary(source, records, num_rows, num_blank, num_ties, excluded, coerced):
    return LoadSummary(
        path=source,
        num_rows=num_rows,
        num_blank=num_blank,
        num_records=len(records),
        num_ties=num_ties,
        num_coerced=len(coerced),
        excluded={k: tuple(v) for k, v in excluded.items()},
        coerced_lines=tuple(coerced),
        annotators=dict(sorted(Counter(r.annotator for r in records).items())),
    )


def _record_fields(line, where, fields, label_map, tie_values, non_string_text, cov):
    """``_parse_row`` of one line's JSON object; its errors name ``where``."""
    row = _json_object(line, where)
    try:
        return _parse_row(row, fields, label_map, tie_values, non_string_text, cov)
    except _RowError as exc:
        raise ValueError(
            f"{where}: field {exc.field!r} (JSON key {exc.key!r}) {exc}"
        ) from None


def _check_options(fields, ties, non_string_text, label_map, max_rows) -> dict:
    """Checks ``load_jsonl``'s options; returns the label map (default {0: 0, 1: 1})."""
    if ties not in ("exclude", "error", "keep"):
        raise ValueError(f"ties must be 'exclude', 'error' or 'keep', got {ties!r}")
    if non_string_text not in ("error", "json"):
        raise ValueError(
            f"non_string_text must be 'error' or 'json', got {non_string_text!r}"
        )
    missing = [name for name in REQUIRED_FIELDS if name not in fields]
    if missing:
        raise ValueError(f"fields must map the required names {missing}")
    unknown = sorted(set(fields) - set(REQUIRED_FIELDS) - set(OPTIONAL_FIELDS))
    if unknown:
        raise ValueError(
            f"fields has unknown names {unknown}; allowed: "
            f"{list(REQUIRED_FIELDS) + list(OPTIONAL_FIELDS)}"
        )
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be >= 1 or None, got {max_rows}")
    label_map = {0: 0, 1: 1} if label_map is None else dict(label_map)
    bad_targets = sorted({v for v in label_map.values() if v not in (0, 1)})
    if bad_targets:
        raise ValueError(f"label_map values must be 0 or 1, got {bad_targets}")
    return label_map


def _json_object(line: str, where: str) -> dict:
    """One line's JSON object; ValueError naming ``where`` otherwise."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{where}: invalid JSON ({exc.msg} at column {exc.colno})"
        ) from None
    if not isinstance(row, dict):
        # A malformed file, like bad JSON: ValueError, as the other row errors.
        raise ValueError(  # noqa: TRY004
            f"{where}: expected a JSON object, got {type(row).__name__}"
        )
    return row


def _parse_row(row, fields, label_map, tie_values, non_string_text, cov_fields):
    """One row's ``PreferenceRecord`` fields (without source and line) and whether a
    response was converted to text; None for a row marked invalid.

    Raises:
      _RowError: naming the field at fault.
    """
    if "valid" in fields and not _bool(row, fields, "valid"):
        return None
    label = _label(row, fields, label_map, tie_values)
    if "tie" in fields:
        tie = _bool(row, fields, "tie")
        if tie != (label is None):
            raise _RowError(
                "tie",
                fields["tie"],
                f"is {json.dumps(tie)} but the label is "
                f"{_describe(row[fields['label']])}",
            )
    prompt, _ = _text(row, fields, "prompt", "error")
    response_0, c0 = _text(row, fields, "response_0", non_string_text)
    response_1, c1 = _text(row, fields, "response_1", non_string_text)
    annotator = _id(row, fields, "annotator")
    optional = {
        name: _id(row, fields, name) if name in fields else None
        for name in ("annotator_type", "group", "model_0", "model_1")
    }
    cov = []
    for name, key in cov_fields.items():
        value = _get(row, cov_fields, name)
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise _RowError(
                name, key, f"must be a finite number, got {_describe(value)}"
            )
        cov.append(float(value))
    record = {
        "prompt": prompt,
        "response_0": response_0,
        "response_1": response_1,
        "label": label,
        "annotator": annotator,
        "covariates": tuple(cov),
        **optional,
    }
    return record, bool(c0 or c1)


def merge_summaries(summaries: Sequence[LoadSummary]) -> LoadSummary:
    """Adds up the counts of several loads (line numbers are per file, concatenated)."""
    if not summaries:
        raise ValueError("summaries must not be empty")
    excluded: dict[str, tuple[int, ...]] = {}
    annotators: Counter = Counter()
    for s in summaries:
        for reason, lines in s.excluded.items():
            excluded[reason] = excluded.get(reason, ()) + tuple(lines)
        annotators.update(s.annotators)
    return LoadSummary(
        path=", ".join(s.path for s in summaries),
        num_rows=sum(s.num_rows for s in summaries),
        num_blank=sum(s.num_blank for s in summaries),
        num_records=sum(s.num_records for s in summaries),
        num_ties=sum(s.num_ties for s in summaries),
        num_coerced=sum(s.num_coerced for s in summaries),
        excluded=excluded,
        coerced_lines=sum((tuple(s.coerced_lines) for s in summaries), ()),
        annotators=dict(sorted(annotators.items())),
    )


def load_pandalm(
    data_dir: str,
    *,
    judges: bool = True,
    ties: str = "exclude",
    non_string_text: str = "json",
    max_rows: int | None = None,
) -> tuple[list[PreferenceRecord], LoadSummary]:
    """Loads the PandaLM test set (3 humans, optionally the 2 LLM judges).

    Args:
      data_dir: the folder holding ``pandalm_testset/`` (e.g. ``../shared/data``).
      judges: also load ``pandalm_llm_judges.jsonl`` (annotator_type "llm_judge");
        its invalid (unparseable) verdicts are excluded and counted as "invalid".
      ties: as in ``load_jsonl``.
      non_string_text: default "json": the 6 items whose response is the JSON boolean
        ``true`` are converted to the text "true" and counted in the summary.
      max_rows: per-file row limit (a slice for tests).

    Returns:
      (records, summary) with the files' summaries merged.
    """
    folder = os.path.join(data_dir, "pandalm_testset")
    files = [("pandalm_human.jsonl", PANDALM_HUMAN_FIELDS)]
    if judges:
        files.append(("pandalm_llm_judges.jsonl", PANDALM_JUDGE_FIELDS))
    records, summaries = [], []
    for name, fields in files:
        recs, summary = load_jsonl(
            os.path.join(folder, name),
            fields=fields,
            ties=ties,
            non_string_text=non_string_text,
            max_rows=max_rows,
        )
        records += recs
        summaries.append(summary)
    return records, merge_summaries(summaries)


def load_tulu1(
    data_dir: str, *, ties: str = "exclude", max_rows: int | None = None
) -> tuple[list[PreferenceRecord], LoadSummary]:
    """Loads the Tülu 1 human evaluation (16 annotators, about 33% ties).

    Args:
      data_dir: the folder holding ``tulu1_human_eval/`` (e.g. ``../shared/data``).
      ties: as in ``load_jsonl``.
      max_rows: row limit (a slice for tests).

    Returns:
      (records, summary).
    """
    path = os.path.join(data_dir, "tulu1_human_eval", "tulu1_human_eval.jsonl")
    return load_jsonl(path, fields=TULU1_FIELDS, ties=ties, max_rows=max_rows)


def split_by_prompt(
    records: Sequence[PreferenceRecord],
    *,
    test_fraction: float,
    seed: int,
    key: Callable[[PreferenceRecord], str] = lambda r: r.prompt,
) -> tuple[list[PreferenceRecord], list[PreferenceRecord]]:
    """Splits records into train and test so that no prompt is on both sides.

    The unique prompts are sorted, permuted with ``numpy.random.default_rng(seed)``,
    and the first round(test_fraction · P) of them (at least 1, at most P − 1) go to
    the test side; every record follows its prompt. Split human and judge records
    together (concatenate first) so that one prompt never lands on both sides.

    Args:
      records: the records (any mix of files).
      test_fraction: in (0, 1), the share of prompts held out.
      seed: the split's seed.
      key: the grouping key (default: the prompt text).

    Returns:
      (train, test), each in the input order.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    prompts = sorted({key(r) for r in records})
    if len(prompts) < 2:
        raise ValueError(
            f"records have {len(prompts)} distinct prompt(s); a split needs at least 2"
        )
    num_test = min(max(round(test_fraction * len(prompts)), 1), len(prompts) - 1)
    order = np.random.default_rng(seed).permutation(len(prompts))
    test_prompts = {prompts[i] for i in order[:num_test]}
    train = [r for r in records if key(r) not in test_prompts]
    test = [r for r in records if key(r) in test_prompts]
    return train, test


def unique_texts(records: Sequence[PreferenceRecord]) -> TextIndex:
    """The unique (prompt, response) pairs, so features are computed once per text.

    Args:
      records: n records.

    Returns:
      ``TextIndex`` with the pairs in order of first appearance and, for each record,
      the rows of its two responses.
    """
    position: dict[tuple[str, str], int] = {}
    index0 = np.empty(len(records), dtype=np.int64)
    index1 = np.empty(len(records), dtype=np.int64)
    for i, r in enumerate(records):
        index0[i] = position.setdefault((r.prompt, r.response_0), len(position))
        index1[i] = position.setdefault((r.prompt, r.response_1), len(position))
    return TextIndex(pairs=tuple(position), index0=index0, index1=index1)


def text_index(
    records: Sequence[PreferenceRecord], position: Mapping[tuple[str, str], int]
) -> TextIndex:
    """Where each record's two responses sit in a table of texts.

    Args:
      records: n records.
      position: (prompt, response) -> row of the table, covering every text of
        ``records`` (e.g. ``unique_texts`` of a superset, as a dict).

    Returns:
      ``TextIndex`` with ``pairs`` the table (in row order) and the rows of each record.
    """
    return TextIndex(
        pairs=tuple(position),
        index0=np.array(
            [position[(r.prompt, r.response_0)] for r in records], np.int64
        ),
        index1=np.array(
            [position[(r.prompt, r.response_1)] for r in records], np.int64
        ),
    )


class FeaturedSplit(NamedTuple):
    """A train/test split with features fitted on the training rows (``featurize_split``).

    Attributes:
      train: validated ``Comparisons`` of the training records (``to_comparisons``).
      test: ``Comparisons`` of the test records, for scoring with parameters fitted on
        ``train`` (not validated: a small held-out set need not identify θ).
      phi: [m, d] features φ of every text of the table.
      feature_map: the ``features.FeatureMap`` fitted on the training Δφ only.
      train_index, test_index: ``TextIndex`` of each side into the table.
    """

    train: Comparisons
    test: Comparisons
    phi: np.ndarray
    feature_map: features.FeatureMap
    train_index: TextIndex
    test_index: TextIndex


def featurize_split(
    train: Sequence[PreferenceRecord],
    test: Sequence[PreferenceRecord],
    raw: np.ndarray,
    position: Mapping[tuple[str, str], int],
    num_components: int,
    *,
    block: int | None = None,
    min_feature_rows: int = 1,
    psi_train: np.ndarray | None = None,
    psi_test: np.ndarray | None = None,
) -> FeaturedSplit:
    """Text → features → projection → ``Comparisons``, fitted on the training rows.

    The feature map (``features.fit_feature_map``: a whitened SVD of the text block of
    the training Δφ, plus the scaled pair statistics after ``block``) is fitted on the
    TRAINING comparisons only and applied to every text, so nothing of the test side
    leaks into the features.

    Args:
      train, test: records without ties (disjoint prompts: ``split_by_prompt``).
      raw: [m, D] raw features of the texts of the table (``features.text_features``
        or ``hashed_features``).
      position: (prompt, response) -> row of ``raw``.
      num_components: dimensions kept from the text block.
      block: width of the text block of ``raw`` (None: every column is projected).
      min_feature_rows: training rows on which a statistic must differ to be kept.
      psi_train, psi_test: annotator covariates of each side, or None (k = 0).

    Returns:
      ``FeaturedSplit``.
    """
    train_index = text_index(train, position)
    test_index = text_index(test, position)
    dphi = raw[train_index.index1] - raw[train_index.index0]
    feature_map = features.fit_feature_map(
        dphi, num_components, block=block, min_rows=min_feature_rows
    )
    phi = features.apply_feature_map(feature_map, raw)
    n = len(test)
    scored = Comparisons(
        phi0=jnp.asarray(phi[test_index.index0]),
        phi1=jnp.asarray(phi[test_index.index1]),
        y=jnp.asarray(labels(test)),
        psi=jnp.asarray(np.zeros((n, 0)) if psi_test is None else psi_test),
        psi0=jnp.ones(n),
    )
    return FeaturedSplit(
        to_comparisons(train, phi, train_index, psi=psi_train),
        scored,
        phi,
        feature_map,
        train_index,
        test_index,
    )


def fit_levels(
    values: Sequence[str], *, reference: str | None = None, min_count: int = 1
) -> Levels:
    """Chooses the levels of a one-hot ψ, dropping one reference level.

    Why a reference is dropped: σ_γ(x) = ψ0(x) + γᵀψ(x) with ψ0 ≡ 1. A one-hot with ALL
    levels sums to 1 in every row, so ψ0 would lie in the span of ψ and (θ, γ) would
    not be identified (``hr.comparisons`` rejects it). With the reference dropped,
    σ = 1 for the reference level and σ = 1 + γ_j for level j: γ_j > 0 means level j
    is more rational (its labels follow the reward more sharply) than the reference,
    γ_j < 0 less, and 1 + γ_j < 0 adversarial. The reference thereby fixes the scale of
    θ (the reward is in the reference annotators' units).

    Args:
      values: the categorical covariate of the training rows (e.g. annotator ids).
      reference: the level without a column; default: the most frequent level (the
        best-estimated baseline), ties broken by sorted order.
      min_count: levels seen fewer times get no column and are pooled with the
        reference (a level absent from the training rows cannot be estimated).

    Returns:
      ``Levels`` with the column levels in sorted order.
    """
    counts = Counter(values)
    if not counts:
        raise ValueError("values must not be empty")
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    if reference is None:
        reference = min(counts, key=lambda v: (-counts[v], v))
    elif reference not in counts:
        raise ValueError(
            f"reference {reference!r} is not among the levels {sorted(counts)}"
        )
    others = sorted(v for v in counts if v != reference)
    names = tuple(v for v in others if counts[v] >= min_count)
    pooled = tuple(v for v in others if counts[v] < min_count)
    return Levels(names=names, reference=reference, pooled=pooled)


def one_hot(
    values: Sequence[str], levels: Levels, *, unknown: str = "error"
) -> np.ndarray:
    """One-hot ψ [n, len(levels.names)] with the reference (and pooled) levels as 0.

    Args:
      values: [n] categorical values.
      levels: from ``fit_levels`` on the training rows.
      unknown: a value that is neither a column level, the reference nor pooled:
        "error" (default) raises; "reference" treats it as the reference (σ = ψ0).

    Returns:
      [n, k] float64 array.
    """
    if unknown not in ("error", "reference"):
        raise ValueError(f"unknown must be 'error' or 'reference', got {unknown!r}")
    column = {name: j for j, name in enumerate(levels.names)}
    known = set(column) | {levels.reference} | set(levels.pooled)
    psi = np.zeros((len(values), len(levels.names)))
    for i, v in enumerate(values):
        if v in column:
            psi[i, column[v]] = 1.0
        elif v not in known and unknown == "error":
            raise ValueError(
                f"values[{i}] = {v!r} is not a level of {levels}; pass "
                "unknown='reference' to map unseen levels to the reference"
            )
    return psi


def level_covariates(
    train_values: Sequence[str],
    values: Sequence[str],
    *,
    reference: str | None = None,
    min_count: int = 1,
) -> tuple[Levels, np.ndarray | None, np.ndarray | None]:
    """One-hot ψ of a categorical column, levels fitted on the training rows.

    ``fit_levels(train_values, reference=, min_count=)``, then ``one_hot`` of both
    row sets; a value of ``values`` unseen in training is scored as the reference.

    Args:
      train_values: [n] the column on the training rows.
      values: [m] the column on other rows (e.g. held out; may be ``train_values``).
      reference: the level without a column (default: the most frequent).
      min_count: rarer training levels are pooled with the reference.

    Returns:
      (levels, ψ_train [n, k], ψ [m, k]); both ψ are None when k = 0 (every level is
      the reference or pooled with it).
    """
    levels = fit_levels(train_values, reference=reference, min_count=min_count)
    if not levels.names:
        return levels, None, None
    return (
        levels,
        one_hot(train_values, levels),
        one_hot(values, levels, unknown="reference"),
    )


def covariate_matrix(
    records: Sequence[PreferenceRecord],
    *,
    center: np.ndarray | None = None,
    scale: np.ndarray | None = None,
) -> np.ndarray:
    """Numeric annotator covariates as ψ [n, c], optionally standardized.

    ψ must not contain a constant column (with ψ0 ≡ 1 it would put ψ0 in the span of
    ψ; ``hr.comparisons`` rejects that). Centering moves the reference point: σ = 1 at
    the training mean of the covariates. Use the training rows' mean and standard
    deviation for the test rows too.

    Args:
      records: n records loaded with ``covariates=``.
      center: [c] subtracted from each row, or None.
      scale: [c] positive divisors, or None.

    Returns:
      [n, c] float64 array.
    """
    if not records:
        raise ValueError("records must not be empty")
    widths = {len(r.covariates) for r in records}
    if len(widths) != 1:
        raise ValueError(
            f"records have different numbers of covariates: {sorted(widths)}"
        )
    psi = np.array([r.covariates for r in records], dtype=np.float64).reshape(
        len(records), widths.pop()
    )
    if center is not None:
        psi = psi - np.asarray(center, dtype=np.float64)
    if scale is not None:
        scale = np.asarray(scale, dtype=np.float64)
        if np.any(~np.isfinite(scale)) or np.any(scale <= 0):
            raise ValueError(f"scale must be finite and positive, got {scale}")
        psi = psi / scale
    return psi


def labels(records: Sequence[PreferenceRecord]) -> np.ndarray:
    """[n] labels as float64 in {0, 1}; raises on a tie (label None)."""
    ties = [r.line for r in records if r.label is None]
    if ties:
        raise ValueError(
            f"records contain {len(ties)} tie(s) (label None, e.g. {records[0].source}"
            f" line {ties[0]}); load with ties='exclude' to drop and count them"
        )
    return np.array([r.label for r in records], dtype=np.float64)


def to_comparisons(
    records: Sequence[PreferenceRecord],
    features: np.ndarray,
    index: TextIndex,
    *,
    psi: np.ndarray | None = None,
    psi0: np.ndarray | None = None,
    dtype=None,
) -> Comparisons:
    """Builds validated ``Comparisons`` from records and per-text features.

    Args:
      records: n records without ties.
      features: [m, d] features φ(s, a) of ``index.pairs``.
      index: ``unique_texts(records)`` (or of a superset whose rows match ``records``).
      psi: [n, k] annotator covariates (``one_hot``/``covariate_matrix``) or None for
        the homogeneous model.
      psi0: [n] known scale or None (ψ0 ≡ 1).
      dtype: passed to ``hr.comparisons``.

    Returns:
      ``Comparisons`` validated by ``hetrlhf.comparisons`` (which raises if Δφ is not
      full rank or ψ0 is in the span of ψ).
    """
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] != len(index.pairs):
        raise ValueError(
            f"features must have shape [m, d] with m = {len(index.pairs)} unique texts, "
            f"got {features.shape}"
        )
    if len(index.index0) != len(records):
        raise ValueError(
            f"index has {len(index.index0)} rows but there are {len(records)} records"
        )
    y = labels(records)
    return comparisons(
        features[index.index0],
        features[index.index1],
        y,
        psi=psi,
        psi0=psi0,
        dtype=dtype,
    )
