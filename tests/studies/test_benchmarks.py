"""Smoke runs of every benchmark script through its command line, at tiny sizes.

The benchmarks hold the project's speed goals and ``device_check.py`` is what a lent
accelerator runs first: a script that no longer runs would be found only then. No
speed is asserted here (benchmarks, not timed tests); each script must exit 0, write
its files, and what it writes must hang together — every ratio the quotient of the
times it reports, every rate the work over the seconds, slopes the least-squares fit
of the rows written, coverage rates fractions of the replicates run, the float32
condition guard 0.01/ε, float32 fits within a hundredth of a standard error of
float64's on the same data, and the arena benchmark's vmapped bootstrap refits within
1e−5 of scipy's L-BFGS refits of the same resamples. (``ppo_speed.py`` runs inside
``device_check.py``.)
"""

from __future__ import annotations

import json
import math
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from tests.fresh_interpreter import python as run_python

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _fraction_of(rate, count):
    """rate is k / count for an integer k in [0, count]."""
    k = rate * count
    return 0.0 <= rate <= 1.0 and abs(k - round(k)) < 1e-9


def test_device_check_quick_runs_every_step(tmp_path):
    out = tmp_path / "device_check.json"
    run_python(
        ["benchmarks/device_check.py", "--quick", "--skip", "tests", f"--out={out}"]
    )
    d = json.loads(out.read_text())
    assert d["errors"] == {}
    assert list(d["steps"]) == [
        "device",
        "speed",
        "coverage",
        "ppo_speed",
        "coverage_speed",
    ]
    assert sum(step["seconds"] for step in d["steps"].values()) <= d["seconds"]
    assert d["device"] == "cpu" and d["tests"] is None

    speed = d["speed"]
    assert d["replicates_per_s"] == pytest.approx(
        speed["replicates"] / speed["seconds"], rel=1e-12
    )
    ppo = d["ppo_speed"]
    work = ppo["policies"] * ppo["updates"]
    for name, seconds in ppo["seconds"].items():
        assert ppo["policy_updates_per_s"][name] == pytest.approx(work / seconds)
        assert ppo["ratio_to_loop"][name] == pytest.approx(
            ppo["seconds"]["loop"] / seconds
        )
    assert d["policy_updates_per_s"] == max(ppo["policy_updates_per_s"].values())

    cov = d["coverage"]
    assert cov["precision"] == "float32"
    assert sorted(cov["by_n"], key=int) == ["200", "400", "600"]
    for row in cov["by_n"].values():
        assert len(row["coverage"]) == 8  # θ ∈ R^5, γ ∈ R^3
        converged = cov["replicates"] - row["num_not_converged"]
        assert all(_fraction_of(c, converged) for c in row["coverage"])
        lo, hi = row["band"]
        assert lo <= 0.95 <= hi
        assert row["num_outside_band"] == sum(
            not lo <= c <= hi for c in row["coverage"]
        )

    payload = d["coverage_speed"]["json"]  # one process and two (gloo)
    rows = payload["rows"]
    assert [(r["processes"], r["devices"]) for r in rows] == [(1, 1), (2, 1)]
    for row in rows:
        _check_coverage_speed_row(payload, row)


def _check_coverage_speed_row(payload, row, options=None):
    """options: the compiler options the row must record (None: the studies' -O2)."""
    sm = payload["statsmodels"]
    per_replicate = np.mean([x["wall_per_replicate"] for x in sm])
    replicates = payload["args"]["replicates"]
    assert payload["statsmodels_seconds"] == pytest.approx(per_replicate * replicates)
    base = payload["statsmodels_seconds"]
    for ratio, seconds in (
        ("run_ratio", "run_wall"),
        ("fit_intervals_ratio", "fit_intervals_wall"),
        ("one_off_ratio", "one_off_wall"),
        ("warm_one_off_ratio", "warm_one_off_wall"),
    ):
        assert row[seconds] > 0 and math.isfinite(row[seconds])
        assert row[ratio] == pytest.approx(base / row[seconds])
    assert row["one_off_wall"] == pytest.approx(
        row["compile_wall"] + row["first_run_wall"]
    )
    if options is None:
        options = {"xla_backend_optimization_level": 2}  # the studies' own, on a CPU
    assert row["compiler_options"] == options
    converged = replicates - row["not_converged"]
    assert len(row["coverage"]) == 8
    assert all(_fraction_of(c, converged) for c in row["coverage"])


def _has_commit(commit: str) -> bool:
    proc = subprocess.run(
        ["git", "cat-file", "-e", f"{commit}^{{commit}}"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    return proc.returncode == 0


def test_coverage_speed_table(tmp_path):
    from benchmarks.coverage_speed import parse_args

    # The script's default BEFORE: its code is extracted from git and run by the
    # current worker (a shallow clone lacks it: then this checkout only).
    before = parse_args([]).before_commit
    with_before = _has_commit(before)
    run_python(
        [
            "benchmarks/coverage_speed.py",
            "--replicates=50",
            "--statsmodels_replicates=10",
            "--n=100",
            "--devices",
            "1",
            "--precisions",
            "float64",
            "--processes",
            f"--out={tmp_path}",
        ]
        + ([f"--before_commit={before}"] if with_before else ["--no_before"])
    )
    payload = json.loads((tmp_path / "coverage_speed.json").read_text())
    rows = payload["rows"]
    versions = ([f"before ({before})"] if with_before else []) + ["after"]
    assert [r["version"] for r in rows] == versions
    lines = [
        line.strip("|").split("|")
        for line in (tmp_path / "coverage_speed.md").read_text().splitlines()
        if line.startswith("| ")
    ]
    header = [h.strip() for h in lines[0]]
    assert len(lines) == 1 + len(rows)
    for row, cells in zip(rows, lines[1:]):
        assert (row["processes"], row["devices"], row["precision"]) == (
            1,
            1,
            "float64",
        )
        # 2c73ac2 predates the studies' compiler options: XLA's defaults.
        options = {} if row["version"].startswith("before") else None
        _check_coverage_speed_row(payload, row, options)
        assert row["run_ratio_cpu"] == pytest.approx(
            payload["statsmodels_cpu_seconds"] / row["run_cpu"]
        )
        printed = dict(zip(header, (c.strip() for c in cells)))
        assert printed["version"] == row["version"]
        for column, key in (
            ("run ×", "run_ratio"),
            ("one-off cold ×", "one_off_ratio"),
        ):
            assert float(printed[column]) == pytest.approx(row[key], rel=1e-2)


def test_coverage_growth_slopes(tmp_path):
    run_python(
        [
            "benchmarks/coverage_growth.py",
            "--sizes",
            "50",
            "100",
            "--replicates_for_n=20",
            "--replicate_counts",
            "10",
            "30",
            "--n=50",
            "--repeats=1",
            f"--out={tmp_path}",
        ]
    )
    d = json.loads((tmp_path / "coverage_growth.json").read_text())
    assert d["compiler_options"] == {"xla_backend_optimization_level": 2}
    assert [x["n"] for x in d["by_n"]] == [50, 100]
    assert [x["replicates"] for x in d["by_replicates"]] == [10, 30]
    for x in d["by_n"] + d["by_replicates"]:
        assert x["seconds_per_replicate"] == pytest.approx(
            x["seconds"] / x["replicates"]
        )
    for key, rows, axis in (
        ("seconds_vs_n", d["by_n"], "n"),
        ("seconds_vs_replicates", d["by_replicates"], "replicates"),
    ):
        x = np.log([r[axis] for r in rows])
        y = np.log([r["seconds"] for r in rows])
        assert d[key] == pytest.approx((y[1] - y[0]) / (x[1] - x[0]), rel=1e-9)
    png = (tmp_path / "coverage_growth.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_coverage_growth_refuses_a_single_point():
    proc = subprocess.run(
        [sys.executable, "benchmarks/coverage_growth.py", "--replicate_counts", "100"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    assert "two different values" in proc.stderr


def test_precision_agreement(tmp_path):
    out = tmp_path / "precision"  # the script adds .json and .md
    run_python(
        [
            "benchmarks/precision.py",
            "--sizes",
            "100",
            "200",
            "--replicates=20",
            "--chunk=10",
            f"--out={out}",
        ]
    )
    d = json.loads((tmp_path / "precision.json").read_text())
    assert (tmp_path / "precision.md").exists()
    assert sorted(d["sizes"], key=int) == ["100", "200"]
    for by_precision in d["sizes"].values():
        for precision, eps in (("float32", 2.0**-23), ("float64", 2.0**-52)):
            row = by_precision[precision]
            assert row["condition_guard"] == pytest.approx(0.01 / eps)
            lo, hi = row["band"]
            outside = sum(not lo <= c <= hi for c in row["coverage"])
            assert row["num_outside_band"] == outside
            assert row["inside_band"] == (outside == 0)
        agreement = by_precision["agreement"]
        assert agreement["num_both_converged"] == 20
        assert agreement["max_abs_dest_over_se"] < 1e-2
        assert agreement["max_abs_dse_over_se"] < 1e-2
        assert agreement["num_coverage_differs"] == 0
        assert (
            by_precision["float32"]["coverage"] == by_precision["float64"]["coverage"]
        )


def test_arena_speed_bootstrap_agrees_with_scipy(tmp_path):
    run_python(
        [
            "benchmarks/arena_speed.py",
            "--items=10",
            "--rows=500",
            "--draws=20",
            "--loop_draws=5",
            "--repeats=1",
            f"--out={tmp_path}",
        ]
    )
    d = json.loads((tmp_path / "results.json").read_text())
    fits = d["hetrlhf"]
    # The leaderboard from the CSV and from its cache: the same numbers.
    assert fits[""]["rating"] == fits["cached"]["rating"]
    assert fits[""]["contrast_se"] == fits["cached"]["contrast_se"]
    fit = fits[""]
    assert fit["converged"]
    ref = fit["items"].index(fit["reference"])
    assert fit["rating"][ref] == 0.0 and fit["contrast_se"][ref] == 0.0
    assert all(se > 0 for i, se in enumerate(fit["contrast_se"]) if i != ref)
    boot = d["bootstrap"]
    assert boot["converged"] == boot["draws"] == 20
    # The vmapped bootstrap refits against a loop of scipy L-BFGS refits of the same
    # resamples (scipy's gradient tolerance bounds the agreement).
    assert boot["max_refit_diff"] < 1e-5
    assert boot["max_interval_diff"] < 1e-5


def test_parallel_speed_prints_both_programs():
    out = run_python(
        [
            "benchmarks/parallel_speed.py",
            "--num_comparisons=200",
            "--num_heads=4",
            "--num_policies=4",
            "--num_steps=10",
            "--num_updates=2",
            "--repeats=1",
        ]
    )
    assert "ensemble 4 heads x 10 adam steps" in out
    assert "PPO 4 policies x 2 updates" in out
    ratios = [
        float(line.split("ratio loop/vmap = ")[1].split("x")[0])
        for line in out.splitlines()
        if "ratio loop/vmap = " in line
    ]
    assert len(ratios) == 2 and all(r > 0 for r in ratios)


@pytest.mark.skipif(
    not (ROOT.parent / "shared" / "data").is_dir()
    and not pathlib.Path("/work/shared/data").is_dir(),
    reason="real data folder not found (the script's texts)",
)
def test_text_encoder_speed_runs(minilm_dir):
    out = run_python(
        ["benchmarks/text_encoder_speed.py", "--max_texts=16", "--repeats=1"]
    )
    assert "| flax (hetrlhf.data.text_encoder) |" in out
