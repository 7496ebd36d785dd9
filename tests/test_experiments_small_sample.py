"""Smoke test of the small-sample interval study: the real entry point, shrunk."""

import json
import os

import numpy as np

from configs import small_sample as small_sample_config
from experiments import small_sample


def test_small_sample_study_smoke(tmp_path):
    config = small_sample_config.get_config()
    config.results_dir = str(tmp_path / "small_sample")
    config.sample_sizes = (80,)
    config.num_replicates = 6
    config.chunk_size = 3
    config.num_bootstrap = 12
    config.progress = False
    payload = small_sample.run(config)
    for name in ("results.json", "results.md", "coverage_by_method.png"):
        assert os.path.exists(os.path.join(config.results_dir, name)), name
    summary = payload["summary"]["80"]
    coverage = np.asarray(summary["coverage"])
    assert coverage.shape == (6, 8)  # methods × coordinates
    assert np.all((coverage >= 0) & (coverage <= 1))
    # Six replicates: the mean coverage over coordinates is still far from 0.
    assert coverage.mean() > 0.5
    with open(os.path.join(config.results_dir, "results.json")) as f:
        stored = json.load(f)
    assert stored["coordinates"][-1] == "γ3"
    with open(os.path.join(config.results_dir, "results.md")) as f:
        table = f.read()
    for method in config.methods:
        assert method in table
    # Checkpointed chunks: a second run resumes and reproduces the numbers.
    again = small_sample.run(config)
    np.testing.assert_array_equal(again["summary"]["80"]["coverage"], coverage)
