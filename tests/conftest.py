"""Test configuration: CPU only, float64, fixed seeds (as numpyro's test/conftest.py)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")
# The studies' XLA flags (experiments.STUDY_XLA_FLAGS: the YNNPACK fusion of jax 0.10's
# XLA:CPU off — README "Known issues"; test_policy checks hr.policy's kernel with the
# fusion on, in a fresh interpreter — the faster-compiling loop emitters, and the
# memory-minimising scheduler against the LAPACK deadlock). Set before jax starts a
# backend.
import jax
import numpy as np
import pytest

import experiments  # noqa: F401  (sets XLA_FLAGS)

# Inference is checked against float64 references (statsmodels, scipy), so the tests
# run in float64. The library itself never flips this flag.
jax.config.update("jax_enable_x64", True)


@pytest.fixture(autouse=True)
def _reseed():
    np.random.seed(0)


def run_study(study, config):
    """``study.run(config)`` in the precision its config asks for (as the command does:
    ``experiments.launch`` sets it; the tests otherwise run in float64)."""
    with jax.enable_x64(config.precision == "float64"):
        return study.run(config)


@pytest.fixture(scope="session")
def minilm_dir():
    """The MiniLM model folder of hetrlhf.data.text_encoder.find_model_dir.

    Skips the test without the [text] extra or the weights, except where
    HETRLHF_REQUIRE_TEXT=1 (set by .ci/run, which installs both): there it fails, so CI
    cannot silently skip the text path.
    """
    from hetrlhf.data import text_encoder

    try:
        import safetensors  # noqa: F401
        import tokenizers  # noqa: F401

        return text_encoder.find_model_dir()
    except (ImportError, FileNotFoundError) as exc:
        message = f"MiniLM weights or the [text] extra not installed: {exc}"
        if os.environ.get("HETRLHF_REQUIRE_TEXT") == "1":
            pytest.fail(message)
        pytest.skip(message)
