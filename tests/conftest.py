"""Test configuration: CPU only, float64, fixed seeds (as numpyro's test/conftest.py)."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")

import jax
import numpy as np
import pytest

# Inference is checked against float64 references (statsmodels, scipy), so the tests
# run in float64. The library itself never flips this flag.
jax.config.update("jax_enable_x64", True)


@pytest.fixture(autouse=True)
def _reseed():
    np.random.seed(0)
