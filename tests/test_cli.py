"""The ``hetrlhf fit`` command end to end on tiny files (``cli.main(argv)``)."""

import csv
import json
import os

import jax
import numpy as np
import pytest
from jax._src import compilation_cache

from hetrlhf import cli


@pytest.fixture
def votes(tmp_path):
    rng = np.random.default_rng(0)
    items = ["a1", "b2", "c3"]
    reward = {"a1": 0.6, "b2": 0.0, "c3": -0.6}
    path = tmp_path / "votes.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["model_a", "model_b", "winner", "annotator"])
        for i in range(240):
            a, b = rng.choice(items, 2, replace=False)
            who = ["u", "v"][i % 2]
            p = 1 / (1 + np.exp(-(reward[b] - reward[a])))
            writer.writerow([a, b, "b" if rng.uniform() < p else "a", who])
        writer.writerow(["a1", "b2", "tie", "u"])
    return str(path)


@pytest.fixture
def jax_cache(tmp_path):
    """A compilation-cache folder, switched off again after the test."""
    yield tmp_path / "jax_cache"
    jax.config.update("jax_compilation_cache_dir", None)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    compilation_cache.reset_cache()


@pytest.mark.slow  # ~4 s on the 2-core CI machine
def test_fit_writes_the_report(votes, tmp_path, capsys, jax_cache):
    out = tmp_path / "report"
    argv = ["fit", votes, "--out", str(out), "--holdout", "0.25"]
    status = cli.main([*argv, "--compilation-cache", str(jax_cache)])
    assert status == 0
    assert any(jax_cache.iterdir())  # the compiled fit program was kept
    printed = capsys.readouterr().out
    assert "LR test of 'all annotators equally rational'" in printed
    assert "Leaderboard" in printed
    payload = json.loads((out / "report.json").read_text())
    assert payload["n_rows"] == 241 and payload["n_ties"] == 1
    assert (
        payload["rationality_model"] == "annotator"
    )  # default with an annotator column
    assert [r["name"] for r in payload["rationality"]] == ["u", "v"]
    assert payload["lr_test"]["df"] == 1
    assert len(payload["leaderboard"]) == 3
    for name in ("report.md", "report.html", "rationality.png", "win_rates.png"):
        assert os.path.exists(out / name)


def test_bad_input_exits_2_naming_line_and_field(tmp_path, capsys):
    path = tmp_path / "bad.csv"
    path.write_text("model_a,model_b,winner\nx,y,a\nx,y,b\ny,x,perhaps\n")
    out = tmp_path / "never"
    status = cli.main(
        ["fit", str(path), "--out", str(out), "--quiet", "--compilation-cache", "none"]
    )
    assert status == 2
    err = capsys.readouterr().err
    assert f"{path}, line 4, field 'winner'" in err
    assert "nothing was fitted" in err
    assert not out.exists()


def test_skip_bad_counts_in_the_report(votes, tmp_path):
    with open(votes, "a") as f:
        f.write("a1,,b,u\n")
    out = tmp_path / "r"
    status = cli.main(
        [
            "fit",
            votes,
            "--out",
            str(out),
            "--skip-bad",
            "--quiet",
            "--rationality",
            "none",
            "--compilation-cache",
            "none",
        ]
    )
    assert status == 0
    payload = json.loads((out / "report.json").read_text())
    assert payload["n_skipped"] == 1
    assert payload["skipped"][0]["field"] == "model_b"
    assert "Unusable records skipped" in (out / "report.md").read_text()
