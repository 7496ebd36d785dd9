"""Smoke test of the small-sample interval study: the real entry point, shrunk."""

import json
import os

import numpy as np

from configs import small_sample as small_sample_config
from experiments import small_sample
from tests import fresh_interpreter


# ~20 s
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
    assert coverage.shape == (7, 8)  # methods × coordinates
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


_WIDE_BOOTSTRAP = """
import jax
jax.config.update("jax_enable_x64", True)
from configs import small_sample as small_sample_config
from experiments import small_sample
from hetrlhf.data import simulate as sim

config = small_sample_config.get_config()
config.num_bootstrap = 100
design = sim.get_design("default")
replicate = small_sample.make_replicate(design, 200, config, ["boot_t"])
out = jax.jit(jax.vmap(replicate))(jax.random.split(jax.random.key(0), 25))
print("coverage", float(out.covered.mean()), "failed", int(out.boot_failed.sum()))
"""


def test_wide_vmapped_bootstrap_does_not_deadlock():
    """25 replicates × 100 refits = 2,500 vmapped fits in one program.

    This exact program deadlocked XLA:CPU on 2 cores (jaxlib 0.10.2) while each Newton
    step issued two batched LAPACK Cholesky calls that could run concurrently: both
    intra-op threads blocked in ``ParallelBatchMap`` waiting for each other's tasks.
    The solver now factors both matrices in one call. Run in a subprocess with a
    timeout so that a regression fails instead of hanging the test run.
    """
    out = fresh_interpreter.run(
        _WIDE_BOOTSTRAP, os.environ.get("XLA_FLAGS", ""), timeout=300
    )
    words = out.split()
    coverage, failed = float(words[1]), int(words[3])
    assert failed == 0
    # 25 replicates × 8 coordinates of 95% bootstrap-t intervals.
    assert 0.85 <= coverage <= 1.0
