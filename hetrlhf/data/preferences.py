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

Reading the file and checking its records is ``hetrlhf.data.preference_records``
(``read_table``, ``read_records``, ``BadRecord``, ``PreferenceFileError``; the public
names are re-exported here); this module encodes them (φ, ψ, clusters, unique rows).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
import scipy.sparse
import scipy.sparse.csgraph

from hetrlhf.data import features as F
from hetrlhf.data import loaders as D
from hetrlhf.data.preference_records import (
    WINNERS,
    BadRecord,
    PreferenceFileError,
    _missing,
    read_records,
    read_table,
)
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


# ------------------------------------------------------------------ the loader -----


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
    rec = read_records(
        path, features=features, rationality=rationality, cluster=cluster,
        skip_bad=skip_bad,
    )  # fmt: skip
    spec, kept = rec.spec, rec.kept
    y = np.array(kept["y"], dtype=np.int64)
    enc = _encode_features(rec, y, reference, num_components, cache_dir)
    psi, rationality_names, ann_ref = _encode_rationality(
        kept, rec.rationality, spec.covariates, spec.numeric, annotator_reference,
        pool_rare,
    )  # fmt: skip
    rows = _unique_rows(enc.code0, enc.code1, y, psi, kept.get("cluster"))
    data = _comparisons(enc.phi_table, rows, spec.mode == "items", dtype)
    return Preferences(
        data=data,
        cluster=None if rows.row_cluster is None else rows.unique[:, 4],
        num_clusters=rows.num_clusters,
        cluster_by=spec.cluster_by,
        row_index=rows.row_index,
        row_cluster=rows.row_cluster,
        features=spec.mode,
        featurizer=enc.featurizer,
        feature_names=tuple(enc.feature_names),
        rationality=rec.rationality,
        rationality_names=rationality_names,
        rationality_reference=ann_ref,
        items=enc.items,
        reference=enc.reference,
        pair=rows.unique[:, :2] if spec.mode in ("items", "text") else None,
        text=enc.text,
        summary=_summary(rec),
    )


def _summary(rec) -> PreferenceSummary:
    kept = rec.kept
    annotators = Counter(kept["annotator"]) if rec.spec.annotator else {}
    return PreferenceSummary(
        source=rec.source,
        num_rows=rec.num_rows,
        num_ties=rec.num_ties,
        num_skipped=len(rec.bad),
        skipped=rec.bad,
        num_comparisons=len(kept["y"]),
        annotators=dict(sorted(annotators.items())),
    )


class _Encoded(NamedTuple):
    """φ of the kept comparisons: a table of distinct sides and the two sides' rows."""

    phi_table: np.ndarray  # [m, d] features of the m distinct sides
    code0: np.ndarray  # [n] row of side a in phi_table
    code1: np.ndarray  # [n] row of side b
    featurizer: str
    feature_names: tuple
    items: tuple | None
    reference: str | None
    text: TextFeatures | None


def _encode_features(rec, y, reference, num_components, cache_dir) -> _Encoded:
    """The features of ``rec.spec.mode``: one-hot items, projected texts or columns."""
    kept, num_kept = rec.kept, len(y)
    items = item_ref = text = None
    if rec.spec.mode == "items":
        items, item_ref, code0, code1 = _encode_items(
            kept, y, reference, rec.source, rec.unused
        )
        phi_table = np.eye(len(items))[
            :, [i for i, v in enumerate(items) if v != item_ref]
        ]
        feature_names = tuple(v for v in items if v != item_ref)
        featurizer = "one-hot items"
    elif rec.spec.mode == "text":
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
        feature_names = rec.spec.feature_columns
    return _Encoded(
        phi_table, code0, code1, featurizer, feature_names, items, item_ref, text
    )


class _UniqueRows(NamedTuple):
    """The distinct (pair, ψ, label, cluster) classes of the kept comparisons."""

    unique: np.ndarray  # [U, 4 or 5] side a, side b, ψ row, y, (cluster)
    row_index: np.ndarray  # [n] class of each comparison
    count: np.ndarray  # [U] comparisons per class
    psi_table: np.ndarray  # [distinct ψ, k]
    row_cluster: np.ndarray | None  # [n] cluster of each comparison
    num_clusters: int


def _unique_rows(code0, code1, y, psi, cluster) -> _UniqueRows:
    """Aggregates comparisons into unique rows (a b-vs-a pair turned into a-vs-b with
    its label flipped: the same likelihood)."""
    num_kept = len(y)
    if psi.shape[1]:
        psi_table, psi_code = np.unique(psi, axis=0, return_inverse=True)
        psi_code = psi_code.reshape(-1)
    else:
        psi_table, psi_code = np.zeros((1, 0)), np.zeros(num_kept, dtype=np.int64)
    if cluster is not None:
        cluster_names, row_cluster = np.unique(
            np.array([str(c) for c in cluster]), return_inverse=True
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
    return _UniqueRows(
        unique, row_index.reshape(-1), count, psi_table, row_cluster, num_clusters
    )


def _comparisons(phi_table, rows: _UniqueRows, items: bool, dtype) -> Comparisons:
    """The weighted ``Comparisons`` of the unique rows."""
    unique = rows.unique
    arrays = (
        phi_table[unique[:, 0]],
        phi_table[unique[:, 1]],
        unique[:, 3].astype(np.float64),
        rows.psi_table[unique[:, 2]],
    )
    if not items:
        return comparisons(*arrays[:3], psi=arrays[3], weight=rows.count, dtype=dtype)
    # Identifiable by construction, so hr.comparisons' SVD rank checks (the slowest
    # step on an arena of 100 items) are skipped: a connected comparison graph makes
    # the one-hot Δφ of K − 1 items full rank, and ψ was checked by
    # _encode_rationality (a level with no row raises there).
    dtype = default_float_dtype() if dtype is None else dtype
    return Comparisons(
        *(jnp.asarray(a, dtype) for a in arrays),
        psi0=jnp.ones(len(rows.count), dtype),
        weight=jnp.asarray(rows.count, dtype),
    )


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
