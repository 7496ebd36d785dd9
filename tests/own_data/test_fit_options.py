"""``own_data.analysis.fit_and_covariances(..., fit_options=)``: the options reach
``hr.fit`` (the real-data study's fits), and the padded weighted fit is the plain fit
(references: ``hr.fit`` and ``hr.covariance`` of the unpadded data)."""

import jax
import numpy as np
import pytest

import hetrlhf as hr
from hetrlhf.data import simulate as hsim
from hetrlhf.own_data import analysis


@pytest.mark.slow  # ~15 s idle (three compiles)
def test_fit_options_reach_the_fit_and_padding_changes_nothing():
    data = hsim.simulate(jax.random.key(11), hsim.get_design("default"), 150)
    out = analysis.fit_and_covariances(data)
    ref = hr.fit(data)
    assert bool(out.result.converged) and not bool(out.separated)
    np.testing.assert_allclose(out.result.params.theta, ref.params.theta, rtol=1e-8)
    np.testing.assert_allclose(out.result.params.gamma, ref.params.gamma, rtol=1e-8)
    np.testing.assert_allclose(out.result.loss, ref.loss, rtol=1e-10)
    np.testing.assert_allclose(
        out.covariance, hr.covariance(ref.params, data), rtol=1e-6
    )
    one = analysis.fit_and_covariances(data, fit_options={"max_steps": 1})
    # Ignored options would give the converged fit above.
    assert not bool(one.result.converged)
    assert int(one.result.num_steps) < int(out.result.num_steps)
