"""``estimate.fit_with_information`` and ``confidence_intervals(..., information=)``.

The fit's last Newton pass already holds the Hessian and the expected information at
the estimate; intervals built from them must be those computed from the data (which
the inference tests check against statsmodels and finite differences).
"""

import jax
import numpy as np
import pytest

import hetrlhf as hr
from hetrlhf.btl import estimate, model
from hetrlhf.data import simulate as sim
from hetrlhf.types import ravel_params


@pytest.fixture(scope="module")
def fitted():
    data = sim.simulate(jax.random.key(2), sim.get_design("heavy"), 500)
    result, hessian, expected = jax.jit(estimate.fit_with_information)(data)
    return data, result, hessian, expected


def test_matrices_are_the_derivatives_at_the_estimate(fitted):
    data, result, hessian, expected = fitted
    assert bool(result.converged)
    _, _, h, f = model.derivatives(ravel_params(result.params), data)
    np.testing.assert_allclose(hessian, h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(expected, f, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        hessian, hr.fisher_information(result.params, data), rtol=1e-9, atol=1e-12
    )
    same = hr.fit(data)
    np.testing.assert_array_equal(
        ravel_params(same.params), ravel_params(result.params)
    )


@pytest.mark.parametrize("kind", ["observed", "expected"])
def test_intervals_from_the_fit_equal_intervals_from_the_data(fitted, kind):
    data, result, hessian, expected = fitted
    info = hessian if kind == "observed" else expected
    a = hr.confidence_intervals(result.params, data, 0.1, kind=kind, information=info)
    b = hr.confidence_intervals(result.params, data, 0.1, kind=kind)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=1e-10)


def test_bad_information_raises(fitted):
    data, result, hessian, _ = fitted
    with pytest.raises(ValueError, match="information must have shape"):
        hr.confidence_intervals(result.params, data, information=hessian[:3, :3])
    with pytest.raises(TypeError, match="method='wald' only"):
        hr.confidence_intervals(
            result.params, data, method="sandwich", information=hessian
        )
