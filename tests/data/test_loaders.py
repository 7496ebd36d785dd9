"""Tests of hetrlhf.data: strict loading, tie accounting, splits, ψ design, real files."""

import json
import os

import numpy as np
import pytest

import hetrlhf as hr
from hetrlhf import data
from hetrlhf.data import features as F

DATA_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")
if not os.path.isdir(DATA_DIR):
    DATA_DIR = "/work/shared/data"
needs_data = pytest.mark.skipif(
    not os.path.isdir(os.path.join(DATA_DIR, "tulu1_human_eval")),
    reason="real data folder not found",
)


def _row(i, label=1, **kw):
    row = {
        "prompt": f"prompt {i % 3}",
        "response_0": f"answer a{i}",
        "response_1": f"answer b{i}",
        "label": label,
        "annotator": f"ann{i % 2}",
    }
    row.update(kw)
    return row


def _write(tmp_path, lines, name="prefs.jsonl"):
    path = tmp_path / name
    path.write_text(
        "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    )
    return str(path)


def test_loads_valid_file_with_identity_fields(tmp_path):
    path = _write(tmp_path, [_row(0, 1), _row(1, 0), "", _row(2, 1)])
    records, summary = data.load_jsonl(path)
    assert [r.label for r in records] == [1, 0, 1]
    assert [r.line for r in records] == [1, 2, 4]
    assert records[1].response_0 == "answer a1"
    assert summary.num_rows == 3 and summary.num_blank == 1
    assert summary.num_records == 3 and summary.num_excluded() == 0
    assert summary.annotators == {"ann0": 2, "ann1": 1}


@pytest.mark.parametrize(
    "bad_line, needle",
    [
        ('{"prompt": "p", "response_0": ', "invalid JSON"),
        ("[1, 2, 3]", "expected a JSON object"),
    ],
)
def test_bad_json_names_file_and_line(tmp_path, bad_line, needle):
    path = _write(tmp_path, [_row(0), _row(1), bad_line, _row(3)])
    with pytest.raises(ValueError, match=needle) as err:
        data.load_jsonl(path)
    assert "line 3" in str(err.value) and path in str(err.value)


def test_missing_field_names_line_and_field(tmp_path):
    row = _row(1)
    del row["response_1"]
    path = _write(tmp_path, [_row(0), row])
    with pytest.raises(ValueError, match=r"line 2: field 'response_1'.*missing"):
        data.load_jsonl(path)


@pytest.mark.parametrize(
    "field, value",
    [("response_0", 3), ("response_1", None), ("prompt", ["x"]), ("annotator", 1.5)],
)
def test_wrong_type_names_line_and_field(tmp_path, field, value):
    path = _write(tmp_path, [_row(0), _row(1), _row(2, **{field: value})])
    with pytest.raises(ValueError, match=rf"line 3: field '{field}'.*must be"):
        data.load_jsonl(path)


@pytest.mark.parametrize("label", [2, -1, "1", True, 0.5, [1]])
def test_label_outside_allowed_set(tmp_path, label):
    path = _write(tmp_path, [_row(0), _row(1, label=label)])
    with pytest.raises(ValueError, match=r"line 2: field 'label'.*must be one of"):
        data.load_jsonl(path)


def test_field_mapping_and_custom_labels(tmp_path):
    rows = [
        {"q": "p", "a": "x", "b": "y", "pref": "B", "who": 7, "kind": "human"},
        {"q": "p", "a": "x", "b": "z", "pref": "A", "who": 8, "kind": "llm"},
        {"q": "r", "a": "x", "b": "z", "pref": "same", "who": 8, "kind": "llm"},
    ]
    fields = {
        "prompt": "q",
        "response_0": "a",
        "response_1": "b",
        "label": "pref",
        "annotator": "who",
        "annotator_type": "kind",
    }
    records, summary = data.load_jsonl(
        _write(tmp_path, rows),
        fields=fields,
        label_map={"A": 0, "B": 1},
        tie_values=("same",),
    )
    assert [r.label for r in records] == [1, 0]
    assert [r.annotator for r in records] == ["7", "8"]
    assert [r.annotator_type for r in records] == ["human", "llm"]
    assert summary.excluded["tie"] == (3,)
    # The error message names the canonical field and the JSON key.
    rows[1]["pref"] = "C"
    with pytest.raises(ValueError, match=r"line 2: field 'label' \(JSON key 'pref'\)"):
        data.load_jsonl(
            _write(tmp_path, rows, "b.jsonl"),
            fields=fields,
            label_map={"A": 0, "B": 1},
            tie_values=("same",),
        )


def test_bad_options():
    with pytest.raises(ValueError, match="ties"):
        data.load_jsonl("x.jsonl", ties="drop")
    with pytest.raises(ValueError, match="required names"):
        data.load_jsonl("x.jsonl", fields={"prompt": "p"})
    with pytest.raises(ValueError, match="unknown names"):
        data.load_jsonl("x.jsonl", fields={**data.FIELDS, "colour": "c"})
    with pytest.raises(ValueError, match="label_map values"):
        data.load_jsonl("x.jsonl", label_map={"a": 2})


def _tie_file(tmp_path):
    rows = [
        _row(0, 1, tie=False),
        _row(1, None, tie=True),
        _row(2, 0, tie=False),
        _row(3, None, tie=True),
        _row(4, 1, tie=False),
    ]
    fields = {**data.FIELDS, "tie": "tie"}
    return _write(tmp_path, rows), fields


def test_ties_are_counted_not_silently_dropped(tmp_path):
    path, fields = _tie_file(tmp_path)
    records, summary = data.load_jsonl(path, fields=fields)
    assert [r.line for r in records] == [1, 3, 5]
    assert summary.num_ties == 2
    assert summary.excluded["tie"] == (2, 4)
    assert summary.num_rows == summary.num_records + summary.num_excluded() == 5


def test_ties_error_and_keep(tmp_path):
    path, fields = _tie_file(tmp_path)
    with pytest.raises(ValueError, match=r"line 2: field 'label'.*tie"):
        data.load_jsonl(path, fields=fields, ties="error")
    records, summary = data.load_jsonl(path, fields=fields, ties="keep")
    assert [r.label for r in records] == [1, None, 0, None, 1]
    assert summary.num_ties == 2 and summary.num_excluded() == 0
    with pytest.raises(ValueError, match="tie"):
        data.labels(records)


def test_tie_flag_must_agree_with_label(tmp_path):
    path = _write(tmp_path, [_row(0, 1, tie=True)])
    with pytest.raises(ValueError, match=r"line 1: field 'tie'"):
        data.load_jsonl(path, fields={**data.FIELDS, "tie": "tie"})
    path = _write(tmp_path, [_row(0, 1, tie="no")], "b.jsonl")
    with pytest.raises(ValueError, match=r"line 1: field 'tie'.*true or false"):
        data.load_jsonl(path, fields={**data.FIELDS, "tie": "tie"})


def test_invalid_verdicts_are_excluded_and_counted(tmp_path):
    rows = [_row(0, 1, valid=True), _row(1, None, valid=False), _row(2, 0, valid=True)]
    records, summary = data.load_jsonl(
        _write(tmp_path, rows), fields={**data.FIELDS, "valid": "valid"}
    )
    assert len(records) == 2
    assert summary.excluded["invalid"] == (2,) and summary.num_ties == 0


def test_non_string_response_conversion_is_explicit(tmp_path):
    path = _write(tmp_path, [_row(0), _row(1, response_0=True)])
    with pytest.raises(
        ValueError, match=r"line 2: field 'response_0'.*non_string_text"
    ):
        data.load_jsonl(path)
    records, summary = data.load_jsonl(path, non_string_text="json")
    assert records[1].response_0 == "true"
    assert summary.num_coerced == 1 and summary.coerced_lines == (2,)


def test_covariates(tmp_path):
    rows = [_row(0, age=30, score=0.5), _row(1, age=40, score=1.5)]
    records, _ = data.load_jsonl(_write(tmp_path, rows), covariates=("age", "score"))
    psi = data.covariate_matrix(records, center=[35.0, 1.0], scale=[5.0, 0.5])
    np.testing.assert_allclose(psi, [[-1.0, -1.0], [1.0, 1.0]])
    rows[1]["age"] = "forty"
    with pytest.raises(ValueError, match=r"line 2: field 'covariate:age'"):
        data.load_jsonl(_write(tmp_path, rows, "b.jsonl"), covariates=("age",))


def test_split_by_prompt_keeps_prompts_on_one_side():
    rng = np.random.default_rng(1)
    records = [
        data.PreferenceRecord(
            prompt=f"p{rng.integers(40)}",
            response_0="a",
            response_1=f"b{i}",
            label=1,
            annotator="x",
            annotator_type=None,
            group=None,
            model_0=None,
            model_1=None,
            covariates=(),
            source="mem",
            line=i + 1,
        )
        for i in range(300)
    ]
    train, test = data.split_by_prompt(records, test_fraction=0.25, seed=3)
    assert not {r.prompt for r in train} & {r.prompt for r in test}
    assert sorted(r.line for r in train + test) == list(range(1, 301))
    num_prompts = len({r.prompt for r in records})
    assert len({r.prompt for r in test}) == round(0.25 * num_prompts)
    again, _ = data.split_by_prompt(records, test_fraction=0.25, seed=3)
    assert again == train
    other, _ = data.split_by_prompt(records, test_fraction=0.25, seed=4)
    assert {r.prompt for r in other} != {r.prompt for r in train}
    with pytest.raises(ValueError, match="test_fraction"):
        data.split_by_prompt(records, test_fraction=1.0, seed=0)


def test_unique_texts_round_trip(tmp_path):
    rows = [
        _row(0),
        {**_row(1), "response_0": "answer a0", "prompt": "prompt 0"},
        {**_row(2), "response_1": "answer a0", "prompt": "prompt 0"},
    ]
    records, _ = data.load_jsonl(_write(tmp_path, rows))
    index = data.unique_texts(records)
    for i, r in enumerate(records):
        assert index.pairs[index.index0[i]] == (r.prompt, r.response_0)
        assert index.pairs[index.index1[i]] == (r.prompt, r.response_1)
    # "answer a0" under "prompt 0" appears 3 times but is stored once.
    assert len(index.pairs) == len(
        {
            p
            for r in records
            for p in [(r.prompt, r.response_0), (r.prompt, r.response_1)]
        }
    )
    assert len(index.pairs) == 4


def test_one_hot_drops_reference_for_identifiability():
    values = ["a", "b", "b", "c", "c", "c", "d"]
    levels = data.fit_levels(values)
    assert levels.reference == "c" and levels.names == ("a", "b", "d")
    psi = data.one_hot(values, levels)
    np.testing.assert_array_equal(psi.sum(axis=1), [1, 1, 1, 0, 0, 0, 1])
    # With ALL levels, ψ0 ≡ 1 lies in the span of ψ and hr.comparisons rejects it.
    full = np.column_stack([psi, (np.array(values) == "c").astype(float)])
    rng = np.random.default_rng(0)
    phi0, phi1 = rng.normal(size=(7, 2)), rng.normal(size=(7, 2))
    y = np.array([0, 1, 0, 1, 1, 0, 1])
    with pytest.raises(ValueError, match="span"):
        hr.comparisons(phi0, phi1, y, psi=full)
    hr.comparisons(phi0, phi1, y, psi=psi)

    pooled = data.fit_levels(values, reference="b", min_count=2)
    assert pooled.names == ("c",) and pooled.pooled == ("a", "d")
    np.testing.assert_array_equal(
        data.one_hot(["a", "c", "b"], pooled), [[0], [1], [0]]
    )
    with pytest.raises(ValueError, match="not a level"):
        data.one_hot(["e"], levels)
    np.testing.assert_array_equal(
        data.one_hot(["e"], levels, unknown="reference"), [[0, 0, 0]]
    )
    with pytest.raises(ValueError, match="reference"):
        data.fit_levels(values, reference="z")


def test_to_comparisons_uses_the_right_rows(tmp_path):
    rows = [_row(i, label=i % 2) for i in range(6)]
    records, _ = data.load_jsonl(_write(tmp_path, rows))
    index = data.unique_texts(records)
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(len(index.pairs), 3))
    levels = data.fit_levels([r.annotator for r in records])
    cmp = data.to_comparisons(
        records, feats, index, psi=data.one_hot([r.annotator for r in records], levels)
    )
    lookup = dict(zip(index.pairs, feats))
    for i, r in enumerate(records):
        np.testing.assert_allclose(
            cmp.dphi[i],
            lookup[(r.prompt, r.response_1)] - lookup[(r.prompt, r.response_0)],
        )
    np.testing.assert_array_equal(cmp.y, [r.label for r in records])
    assert cmp.psi.shape == (6, 1)
    with pytest.raises(ValueError, match="unique texts"):
        data.to_comparisons(records, feats[:-1], index)


@needs_data
def test_real_slices_load():
    pandalm, s1 = data.load_pandalm(DATA_DIR, max_rows=40)
    assert s1.num_rows == 80 and s1.num_records + s1.num_excluded() == 80
    assert {r.annotator_type for r in pandalm} == {"human", "llm_judge"}
    assert all(isinstance(r.response_0, str) for r in pandalm)
    tulu, s2 = data.load_tulu1(DATA_DIR, max_rows=40)
    assert s2.num_rows == 40 and s2.num_records == 40 - s2.num_ties
    assert all(r.annotator.startswith("tulu1_ann") for r in tulu)


@needs_data
def test_real_counts_match_the_readmes():
    # Numbers stated in /work/shared/data/*/README.md.
    human, s = data.load_jsonl(
        os.path.join(DATA_DIR, "pandalm_testset", "pandalm_human.jsonl"),
        fields=data.PANDALM_HUMAN_FIELDS,
        ties="keep",
        non_string_text="json",
    )
    counts = {}
    for r in human:
        key = (r.annotator, {None: "tie", 0: "r0", 1: "r1"}[r.label])
        counts[key] = counts.get(key, 0) + 1
    assert counts == {
        ("pandalm_h1", "tie"): 97, ("pandalm_h1", "r0"): 427, ("pandalm_h1", "r1"): 475,
        ("pandalm_h2", "tie"): 116, ("pandalm_h2", "r0"): 417, ("pandalm_h2", "r1"): 466,
        ("pandalm_h3", "tie"): 113, ("pandalm_h3", "r0"): 411, ("pandalm_h3", "r1"): 475,
    }  # fmt: skip
    assert (
        s.num_coerced == 18
        and min(s.coerced_lines) == 472
        and max(s.coerced_lines) == 495
    )
    assert len({r.prompt for r in human}) == 170
    with pytest.raises(
        ValueError, match=r"pandalm_human.jsonl, line 472: field 'response_0'"
    ):
        data.load_jsonl(
            os.path.join(DATA_DIR, "pandalm_testset", "pandalm_human.jsonl"),
            fields=data.PANDALM_HUMAN_FIELDS,
        )
    _, judges = data.load_pandalm(DATA_DIR)
    assert judges.num_excluded("invalid") == 25
    tulu, t = data.load_tulu1(DATA_DIR)
    assert t.num_rows == 1141 and t.num_ties == 374 and len(tulu) == 767
    assert len(t.annotators) == 16


@needs_data
def test_real_pipeline_builds_valid_comparisons():
    records, _ = data.load_tulu1(DATA_DIR, max_rows=300)
    train, test = data.split_by_prompt(records, test_fraction=0.3, seed=0)
    assert not {r.prompt for r in train} & {r.prompt for r in test}
    index = data.unique_texts(train)
    raw = F.hashed_features(index.pairs, F.HashingConfig(dim=256))
    proj = F.fit_projection(raw[index.index1] - raw[index.index0], 5, center=False)
    levels = data.fit_levels([r.annotator for r in train], min_count=10)
    psi = data.one_hot([r.annotator for r in train], levels)
    cmp = data.to_comparisons(train, F.apply_projection(proj, raw), index, psi=psi)
    assert cmp.phi0.shape == (len(train), 5)
    assert cmp.psi.shape == (len(train), len(levels.names))


@needs_data
def test_featurize_split_fits_features_on_training_rows_only():
    records, _ = data.load_tulu1(DATA_DIR, max_rows=300)
    train, test = data.split_by_prompt(records, test_fraction=0.3, seed=0)
    index = data.unique_texts(train + test)
    raw = F.hashed_features(index.pairs, F.HashingConfig(dim=128))
    position = {pair: i for i, pair in enumerate(index.pairs)}
    levels = data.fit_levels([r.annotator for r in train], min_count=10)
    psi = data.one_hot([r.annotator for r in train], levels)
    split = data.featurize_split(train, test, raw, position, 5, psi_train=psi)
    # The projection of the training Δφ, by hand.
    n = len(train)
    proj = F.fit_projection(
        raw[index.index1[:n]] - raw[index.index0[:n]], 5, center=False, whiten=True
    )
    phi = F.apply_projection(proj, raw)
    np.testing.assert_array_equal(split.phi, phi)
    ref = data.to_comparisons(
        train, phi, data.TextIndex(index.pairs, index.index0[:n], index.index1[:n]),
        psi=psi,
    )  # fmt: skip
    for a, b in zip(split.train, ref):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(split.test.phi0, phi[index.index0[n:]])
    np.testing.assert_array_equal(split.test.y, data.labels(test))
    assert split.test.psi.shape == (len(test), 0)
    # Nothing of the test side enters the features: other test texts, same map.
    other = data.featurize_split(train, test[:5], raw, position, 5, psi_train=psi)
    np.testing.assert_array_equal(other.phi, split.phi)


def test_text_index_points_into_a_given_table(tmp_path):
    records, _ = data.load_jsonl(_write(tmp_path, [_row(i) for i in range(4)]))
    table = data.unique_texts(records[::-1])
    position = {pair: i for i, pair in enumerate(table.pairs)}
    index = data.text_index(records, position)
    assert index.pairs == table.pairs
    for i, r in enumerate(records):
        assert index.pairs[index.index0[i]] == (r.prompt, r.response_0)
        assert index.pairs[index.index1[i]] == (r.prompt, r.response_1)
