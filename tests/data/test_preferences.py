"""hetrlhf.data.preferences: reading preference files, encoding, and every bad-input case."""

import csv
import json

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import hetrlhf as hr
from hetrlhf.data import preferences as P


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def _arena_rows(n=300, seed=0, num_items=4, annotators=("x", "y", "z")):
    rng = np.random.default_rng(seed)
    strength = np.linspace(-1, 1, num_items)
    rows = []
    for i in range(n):
        a, b = rng.choice(num_items, 2, replace=False)
        p = 1 / (1 + np.exp(-(strength[b] - strength[a])))
        winner = "b" if rng.uniform() < p else "a"
        if i % 25 == 0:
            winner = "tie"
        who = annotators[i % len(annotators)]
        rows.append(
            [f"p{i % 40}", f"m{a}", f"m{b}", winner, who, f"{rng.uniform():.3f}"]
        )
    return ["prompt", "model_a", "model_b", "winner", "annotator", "speed"], rows


@pytest.fixture
def arena_csv(tmp_path):
    return _write_csv(tmp_path / "votes.csv", *_arena_rows())


# ------------------------------------------------------------------ reading --------


def test_csv_jsonl_parquet_give_the_same_comparisons(tmp_path, arena_csv):
    header, rows = _arena_rows()
    frame = pd.DataFrame(rows, columns=header)
    frame["speed"] = frame["speed"].astype(float)
    jsonl = tmp_path / "votes.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in frame.to_dict("records")) + "\n")
    parquet = tmp_path / "votes.parquet"
    frame.to_parquet(parquet)
    loaded = [
        P.load_preferences(p, rationality="annotator")
        for p in (arena_csv, str(jsonl), str(parquet))
    ]
    for other in loaded[1:]:
        np.testing.assert_array_equal(other.count, loaded[0].count)
        for a, b in zip(other.data, loaded[0].data, strict=True):
            np.testing.assert_array_equal(a, b)
    summary = loaded[0].summary
    assert summary.num_rows == 300
    assert summary.num_ties == 12  # every 25th row
    assert summary.num_comparisons == 288 == int(loaded[0].count.sum())


def test_aggregated_rows_have_the_raw_likelihood(arena_csv):
    """Unique rows with counts (b-vs-a flipped to a-vs-b) = the rows as written."""
    _, rows = _arena_rows()
    prefs = P.load_preferences(arena_csv, rationality="annotator")
    items = list(prefs.items)
    keep = [r for r in rows if r[3] != "tie"]
    eye = np.eye(len(items))[:, [items.index(v) for v in prefs.feature_names]]
    annotators = ["x", "y", "z"]
    ref = prefs.rationality_reference
    levels = [a for a in annotators if a != ref]
    psi = np.array([[float(r[4] == v) for v in levels] for r in keep])
    raw = hr.comparisons(
        eye[[items.index(r[1]) for r in keep]],
        eye[[items.index(r[2]) for r in keep]],
        np.array([float(r[3] == "b") for r in keep]),
        psi=psi,
    )
    assert prefs.rationality_names == tuple(f"annotator={v}" for v in levels)
    params = hr.Params(jnp.array([0.3, -0.7, 0.2]), jnp.array([0.5, -0.4]))
    # The loss of the weighted unique rows, Σ w ℓ / Σ w, is the raw rows' mean.
    np.testing.assert_allclose(
        hr.model.loss(params, prefs.data), hr.model.loss(params, raw), rtol=1e-12
    )
    np.testing.assert_array_equal(prefs.data.weight, prefs.count)
    assert prefs.count.sum() == raw.num_comparisons


def test_label_column_and_winner_aliases(tmp_path):
    rows = [["m0", "m1", 1], ["m1", "m0", 0], ["m0", "m1", 0], ["m1", "m2", 1]]
    rows += [["m2", "m0", 1], ["m0", "m2", 0], ["m2", "m1", 1]]
    by_label = P.load_preferences(
        _write_csv(tmp_path / "l.csv", ["model_a", "model_b", "label"], rows)
    )
    named = [[a, b, "model_b" if y else "model_a"] for a, b, y in rows]
    by_winner = P.load_preferences(
        _write_csv(tmp_path / "w.csv", ["model_a", "model_b", "winner"], named)
    )
    np.testing.assert_array_equal(by_label.count, by_winner.count)
    np.testing.assert_array_equal(by_label.data.y, by_winner.data.y)
    assert by_label.reference == "m2"  # the last in sorted order
    assert by_label.feature_names == ("m0", "m1")


def test_numeric_covariate_is_standardised_and_text_one_hot(arena_csv):
    prefs = P.load_preferences(arena_csv, rationality="speed,annotator")
    assert prefs.rationality_names[0] == "speed"
    assert prefs.rationality_names[1:] == ("annotator=y", "annotator=z")
    psi = np.repeat(np.asarray(prefs.data.psi), prefs.count.astype(int), axis=0)
    np.testing.assert_allclose(psi[:, 0].mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(psi[:, 0].std(), 1.0, rtol=1e-12)


def test_text_mode_clusters_by_prompt_and_names_the_featurizer(tmp_path):
    rng = np.random.default_rng(1)
    words = ["good", "bad", "clear", "vague", "short", "long", "kind", "rude"]
    rows = []
    for i in range(60):
        a = " ".join(rng.choice(words, 4))
        b = " ".join(rng.choice(words, 4))
        rows.append([f"question {i % 12}", a, b, "a" if i % 3 else "b"])
    path = _write_csv(
        tmp_path / "t.csv", ["prompt", "response_a", "response_b", "winner"], rows
    )
    prefs = P.load_preferences(path, features="text", num_components=3)
    assert prefs.cluster_by == "prompt" and prefs.num_clusters == 12
    assert prefs.featurizer.startswith(("hashed n-grams", "MiniLM"))
    assert prefs.data.phi0.shape[1] == 3


def test_columns_features(tmp_path):
    rows = [
        [1.0, 2.0, 0.5, 0.1, "b"],
        [3.0, 1.0, 0.2, 0.4, "a"],
        [0.0, 1.0, 1.0, 0.0, "a"],
    ]
    path = _write_csv(
        tmp_path / "c.csv", ["len_a", "len_b", "q_a", "q_b", "winner"], rows
    )
    prefs = P.load_preferences(path, features="columns:len,q")
    assert prefs.feature_names == ("len", "q")
    dphi = np.asarray(prefs.data.dphi)
    # Orientation may be flipped (with the label), so compare up to sign.
    expected = np.array([[1.0, -0.4], [-2.0, 0.2], [1.0, -1.0]])
    got = sorted(map(tuple, np.abs(dphi).round(6)))
    assert got == sorted(map(tuple, np.abs(expected).round(6)))


def test_holdout_counts_split_whole_clusters(arena_csv):
    prefs = P.load_preferences(arena_csv, cluster="prompt")
    train, test = P.holdout_counts(prefs, 0.25, seed=3)
    np.testing.assert_array_equal(train + test, prefs.count)
    assert 0 < test.sum() < prefs.count.sum()
    # A unique row belongs to one prompt, so it is wholly on one side.
    assert np.all((train == 0) | (test == 0))


def _text_rows(seed, n=80, prompts=16):
    rng = np.random.default_rng(seed)
    words = ["good", "bad", "clear", "vague", "short", "long", "kind", "rude", "fine"]
    rows = []
    for i in range(n):
        a, b = (" ".join(rng.choice(words, 5)) for _ in range(2))
        rows.append(
            [f"question {i % prompts}", a, b, "a" if rng.uniform() < 0.5 else "b"]
        )
    return ["prompt", "response_a", "response_b", "winner"], rows


def test_holdout_split_fits_the_text_projection_on_training_comparisons_only(tmp_path):
    header, rows = _text_rows(seed=4)
    prefs = P.load_preferences(
        _write_csv(tmp_path / "t.csv", header, rows), features="text", num_components=3
    )
    assert np.all(prefs.count == 1)  # every comparison its own pair and unique row
    train, test = P.holdout_split(prefs, 0.25, seed=0)
    np.testing.assert_array_equal(
        np.asarray(train.weight) + np.asarray(test.weight), prefs.count
    )
    used = np.asarray(train.weight) > 0
    # Whitened on the training pairs: their Δφ have identity second moment (the
    # full-data projection's would not on this subset).
    dphi = np.asarray(train.dphi)[used]
    np.testing.assert_allclose(dphi.T @ dphi / len(dphi), np.eye(3), atol=1e-10)
    full = np.asarray(prefs.data.dphi)[used]
    assert not np.allclose(full.T @ full / len(full), np.eye(3), atol=1e-3)
    # Nothing of the held-out texts enters: rewriting them leaves the training rows'
    # features as they were.
    names = np.unique([r[0] for r in rows])
    held = set(names[np.unique(prefs.cluster[np.asarray(test.weight) > 0])])
    assert 0 < len(held) < len(names)
    rewritten = [
        [r[0], r[1] + " zebra", r[2] + " yak", r[3]] if r[0] in held else r
        for r in rows
    ]
    other = P.load_preferences(
        _write_csv(tmp_path / "u.csv", header, rewritten),
        features="text",
        num_components=3,
    )
    train2, _ = P.holdout_split(other, 0.25, seed=0)
    np.testing.assert_array_equal(np.asarray(train2.weight), np.asarray(train.weight))
    np.testing.assert_allclose(
        np.asarray(train2.dphi)[used], dphi, rtol=1e-10, atol=1e-12
    )
    assert not np.allclose(
        other.data.dphi, prefs.data.dphi
    )  # the full fit does see them


# ------------------------------------------------------------------ bad records ----


def test_bad_records_are_reported_with_file_line_and_field(tmp_path):
    rows = [
        ["m0", "m1", "a"],
        ["m0", "m1", "maybe"],  # line 3: winner
        ["m0", "", "b"],  # line 4: model_b missing
        ["m1", "m1", "a"],  # line 5: same item
        ["m1", "m0", "b"],
    ]
    path = _write_csv(tmp_path / "bad.csv", ["model_a", "model_b", "winner"], rows)
    with pytest.raises(P.PreferenceFileError) as info:
        P.load_preferences(path)
    found = {(r.where, r.field) for r in info.value.records}
    assert found == {("line 3", "winner"), ("line 4", "model_b"), ("line 5", "model_b")}
    assert f"{path}, line 3, field 'winner'" in str(info.value)


def test_csv_line_numbers_count_multiline_cells(tmp_path):
    rows = [["p\nwith\nlines", "x", "y", "a"], ["p2", "x", "y", "sideways"]]
    path = _write_csv(
        tmp_path / "m.csv", ["prompt", "response_a", "response_b", "winner"], rows
    )
    with pytest.raises(P.PreferenceFileError) as info:
        P.load_preferences(path, features="text")
    (record,) = info.value.records
    assert record.where == "line 5" and record.field == "winner"


def test_csv_fast_path_reads_as_the_csv_module(tmp_path):
    """Files without quotes are split at newlines and commas; the same file with one
    quoted cell goes through csv.reader: same records, lines and bad records."""
    body = "m0,m1,a\n\nm1,m0,b,extra\nm0,m1\nm1,m2,b\n\nm2,m0,a\nm0,m2,b\n"
    plain = tmp_path / "plain.csv"
    plain.write_text("model_a,model_b,winner\n" + body)
    quoted = tmp_path / "quoted.csv"
    quoted.write_text('model_a,model_b,"winner"\n' + body)
    tables = [P.read_table(str(p)) for p in (plain, quoted)]
    (cols, where, bad), (cols2, where2, bad2) = tables
    assert where == where2 == ["line 2", "line 6", "line 8", "line 9"]
    assert [(b.where, b.message) for b in bad] == [
        ("line 4", "more cells than columns"),
        ("line 5", "fewer cells than columns"),
    ]
    assert [(b.where, b.message) for b in bad2] == [(b.where, b.message) for b in bad]
    for name in ("model_a", "model_b", "winner"):
        assert cols[name].tolist() == cols2[name].tolist()


def test_label_errors(tmp_path):
    rows = [["m0", "m1", "b", 1], ["m0", "m1", "a", 1], ["m0", "m1", "a", 2]]
    path = _write_csv(
        tmp_path / "l.csv", ["model_a", "model_b", "winner", "label"], rows
    )
    with pytest.raises(P.PreferenceFileError) as info:
        P.load_preferences(path)
    messages = {r.where: r.message for r in info.value.records}
    assert "winner says 'a'" in messages["line 3"]
    assert "must be 0 or 1" in messages["line 4"]


def test_jsonl_bad_json_and_parquet_rows(tmp_path):
    good = {"model_a": "m0", "model_b": "m1", "winner": "a"}
    path = tmp_path / "v.jsonl"
    path.write_text(json.dumps(good) + "\n{not json\n[1, 2]\n")
    with pytest.raises(P.PreferenceFileError) as info:
        P.load_preferences(str(path))
    assert {r.where for r in info.value.records} == {"line 2", "line 3"}
    frame = pd.DataFrame([good, {**good, "winner": None}])
    parquet = tmp_path / "v.parquet"
    frame.to_parquet(parquet)
    with pytest.raises(P.PreferenceFileError) as info:
        P.load_preferences(str(parquet))
    (record,) = info.value.records
    assert (record.where, record.field) == ("row 2", "winner")


def test_non_numeric_value_in_a_numeric_covariate(arena_csv, tmp_path):
    header, rows = _arena_rows()
    rows[7][5] = "fast"
    path = _write_csv(tmp_path / "c.csv", header, rows)
    with pytest.raises(P.PreferenceFileError) as info:
        P.load_preferences(path, rationality="speed")
    (record,) = info.value.records
    assert (record.where, record.field) == ("line 9", "speed")


def test_skip_bad_drops_and_counts(tmp_path):
    header, rows = _arena_rows()
    rows[3][3] = "??"
    rows[10][2] = ""
    path = _write_csv(tmp_path / "s.csv", header, rows)
    prefs = P.load_preferences(path, skip_bad=True)
    assert prefs.summary.num_skipped == 2
    assert prefs.summary.num_comparisons == 300 - 12 - 2
    assert {r.where for r in prefs.summary.skipped} == {"line 5", "line 12"}


def test_missing_columns_are_named(tmp_path):
    path = _write_csv(tmp_path / "x.csv", ["model_a", "winner"], [["m0", "a"]])
    with pytest.raises(ValueError, match=r"needs column\(s\) \['model_b'\]"):
        P.load_preferences(path)
    path = _write_csv(tmp_path / "y.csv", ["model_a", "model_b"], [["m0", "m1"]])
    with pytest.raises(ValueError, match="outcome column 'winner'"):
        P.load_preferences(path)


# ------------------------------------------------------------------ bad designs ----


def test_constant_covariates(arena_csv, tmp_path):
    header, rows = _arena_rows()
    for r in rows:
        r[5] = "0.5"
    path = _write_csv(
        tmp_path / "k.csv", header + ["site"], [r + ["lab"] for r in rows]
    )
    with pytest.raises(ValueError, match="covariate 'speed' is constant"):
        P.load_preferences(path, rationality="speed")
    with pytest.raises(ValueError, match="covariate 'site' is constant"):
        P.load_preferences(path, rationality="site")


def test_collinear_covariates_are_named(tmp_path):
    header, rows = _arena_rows()
    rows = [r + [str(2 * float(r[5]) + 1)] for r in rows]
    path = _write_csv(tmp_path / "c.csv", header + ["speed2"], rows)
    with pytest.raises(
        ValueError, match=r"column 'speed2' is collinear with \['speed'\]"
    ):
        P.load_preferences(path, rationality="speed,speed2")


def test_annotator_with_one_comparison(tmp_path):
    header, rows = _arena_rows()
    rows[0][3], rows[5][4] = "a", "solo"
    path = _write_csv(tmp_path / "a.csv", header, rows)
    with pytest.raises(ValueError, match=r"\['solo'\] have a single comparison"):
        P.load_preferences(path, rationality="annotator")
    prefs = P.load_preferences(path, rationality="annotator", pool_rare=2)
    assert "annotator=solo" not in prefs.rationality_names


def test_disconnected_items(tmp_path):
    rows = [["m0", "m1", "a"], ["m1", "m0", "a"], ["m2", "m3", "a"], ["m3", "m2", "a"]]
    path = _write_csv(tmp_path / "d.csv", ["model_a", "model_b", "winner"], rows)
    with pytest.raises(ValueError, match="2 groups never compared"):
        P.load_preferences(path)


def test_item_only_in_ties_was_never_compared(tmp_path):
    rows = [["m0", "m1", "a"], ["m1", "m0", "a"], ["m0", "m2", "tie"]]
    path = _write_csv(tmp_path / "t.csv", ["model_a", "model_b", "winner"], rows)
    with pytest.raises(ValueError, match=r"\['m2'\] appear only in ties"):
        P.load_preferences(path)


def test_an_unbeaten_item_is_separable(tmp_path):
    rows = [["m0", "m1", "a"], ["m1", "m0", "a"], ["m2", "m0", "a"], ["m1", "m2", "b"]]
    path = _write_csv(tmp_path / "s.csv", ["model_a", "model_b", "winner"], rows)
    with pytest.raises(ValueError, match=r"separable data: item\(s\) \['m2'\] won all"):
        P.load_preferences(path)


def test_unknown_reference_and_options(arena_csv):
    with pytest.raises(ValueError, match="reference 'nope' is not an item"):
        P.load_preferences(arena_csv, reference="nope")
    with pytest.raises(ValueError, match="features must be"):
        P.load_preferences(arena_csv, features="pixels")
    with pytest.raises(ValueError, match="unknown file type"):
        P.load_preferences(arena_csv.replace(".csv", ".xlsx"))
