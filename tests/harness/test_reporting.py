"""Tests of hetrlhf.reporting: tables (exact text), JSON conversion and figures."""

import json

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from hetrlhf import reporting


def test_param_names():
    assert reporting.param_names(2, 1) == ["θ1", "θ2", "γ1"]
    assert reporting.param_names(3, 0) == ["θ1", "θ2", "θ3"]


def test_column_table_text():
    table = reporting.column_table(
        ["θ1", "γ1"],
        {"n=10 coverage": np.array([0.9, 1.0]), "count": [3, 4]},
        digits=2,
    )
    assert table == (
        "| parameter | n=10 coverage | count |\n"
        "|---|---|---|\n"
        "| θ1 | 0.90 | 3 |\n"
        "| γ1 | 1.00 | 4 |"
    )
    with pytest.raises(ValueError, match="'count' has 1 values for 2 names"):
        reporting.column_table(["θ1", "γ1"], {"count": [3]})


def test_records_table_keys_and_functions():
    records = [{"n": 200, "a": 1.0, "b": 3.0}, {"n": 400, "a": 2.0, "b": float("nan")}]
    table = reporting.records_table(
        records, {"n": "n", "a": "a", "a/b": lambda r: r["a"] / r["b"]}, digits=1
    )
    assert table.splitlines()[2:] == ["| 200 | 1.0 | 0.3 |", "| 400 | 2.0 | nan |"]


def test_to_jsonable_and_write_results(tmp_path):
    payload = {"x": np.arange(3.0), "nan": np.float64("nan"), "flag": np.bool_(True)}
    paths = reporting.write_results(
        str(tmp_path), payload, "| a |\n|---|", {}, echo=False
    )
    with open(paths["json"]) as f:
        stored = json.load(f)
    assert stored == {
        "x": [0.0, 1.0, 2.0],
        "nan": None,
        "flag": True,
    }


def test_coverage_vs_n_figure():
    sizes = [100, 200, 400]
    cov = np.array([[0.9, 0.95, 0.97], [0.92, 0.94, 0.96], [0.95, 0.95, 0.95]])
    fig = reporting.coverage_vs_n(
        sizes,
        cov,
        0.01 * np.ones((3, 3)),
        ["θ1", "θ2", "γ1"],
        {"θ": range(2), "γ": range(2, 3)},
        0.95,
        0.02,
    )
    axes = fig.axes
    assert len(axes) == 2 and [a.get_title() for a in axes] == ["θ", "γ"]
    lines = [ln for ln in axes[0].get_lines() if ln.get_label() == "θ2"]
    np.testing.assert_array_equal(lines[0].get_ydata(), cov[:, 1])
    # The band is drawn from 0.93 to 0.97 around the nominal line at 0.95.
    (band,) = axes[1].patches
    lo = band.get_y()  # a Rectangle in axes-x, data-y coordinates
    assert (lo, lo + band.get_height()) == pytest.approx((0.93, 0.97))
    assert any(list(ln.get_ydata()) == [0.95, 0.95] for ln in axes[1].get_lines())
    plt.close(fig)


def test_coverage_by_coordinate_figure():
    panels = {
        "n = 200": {"Wald": [0.9, 0.95], "profile": [0.93, 0.96]},
        "n = 600": {"Wald": [0.94, 0.95], "profile": [0.95, 0.95]},
    }
    bands = {"n = 200": (0.92, 0.98), "n = 600": (0.93, 0.97)}
    fig = reporting.coverage_by_coordinate(["θ1", "γ1"], panels, 0.95, bands)
    assert [a.get_title() for a in fig.axes] == list(panels)
    points = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "profile"]
    np.testing.assert_array_equal(points[0].get_ydata(), [0.93, 0.96])
    assert fig.axes[0].get_ylim()[0] == pytest.approx(0.75)
    (band,) = fig.axes[1].patches
    assert (band.get_y(), band.get_y() + band.get_height()) == pytest.approx(
        bands["n = 600"]
    )
    plt.close(fig)


def test_columns_by_group_order():
    groups = {"n=1": {"a": [1], "b": [2]}, "n=2": {"a": [3], "b": [4]}}
    cols = reporting.columns_by_group(groups, [("A", "a"), ("B", "b")])
    assert list(cols.items()) == [
        ("n=1 A", [1]),
        ("n=1 B", [2]),
        ("n=2 A", [3]),
        ("n=2 B", [4]),
    ]
