"""``estimate.pad_rows(..., weighted=False)``: unweighted Δφ = 0 padding rows leave the
MLE and the covariance I⁻¹/n of the unpadded data unchanged (the reference is the fit of
the unpadded data; the covariance also against a finite-difference Hessian)."""

import jax
import jax.flatten_util
import numpy as np
import pytest

import hetrlhf as hr
from hetrlhf.btl.estimate import pad_rows
from hetrlhf.data import simulate as hsim


@pytest.mark.slow  # ~20 s (two fits compile)
def test_unweighted_padding_keeps_the_fit_and_the_covariance():
    data = hsim.simulate(jax.random.key(3), hsim.get_design("default"), 300)
    padded = pad_rows(data, 420, weighted=False)
    assert padded.weight is None and padded.y.shape == (420,)
    np.testing.assert_array_equal(padded.psi0[300:], 1.0)
    np.testing.assert_array_equal(padded.phi0[300:], 0.0)
    np.testing.assert_array_equal(padded.phi1[:300], data.phi1)
    # The padded mean gradient is 300/420 of the real one: the same tolerance.
    got = hr.fit(padded, tol=1e-10 * 300 / 420)
    ref = hr.fit(data, tol=1e-10)
    np.testing.assert_allclose(got.params.theta, ref.params.theta, rtol=1e-7)
    np.testing.assert_allclose(got.params.gamma, ref.params.gamma, rtol=1e-7)
    cov = np.asarray(hr.covariance(ref.params, data))
    np.testing.assert_allclose(hr.covariance(ref.params, padded), cov, rtol=1e-10)
    # Covariance = inverse of the finite-difference Hessian of the summed loss.
    flat, unravel = jax.flatten_util.ravel_pytree(ref.params)

    @jax.jit
    def total(x):
        return 300 * hr.model.loss(unravel(x), data)

    h = 1e-4
    eye = np.eye(flat.size) * h
    hess = np.array(
        [
            [
                (
                    total(flat + a + b)
                    - total(flat + a - b)
                    - total(flat - a + b)
                    + total(flat - a - b)
                )
                / (4 * h * h)
                for b in eye
            ]
            for a in eye
        ]
    )
    np.testing.assert_allclose(cov, np.linalg.inv(hess), rtol=1e-4)


def test_unweighted_padding_refuses_weighted_data():
    data = hsim.simulate(jax.random.key(4), hsim.get_design("default"), 20)
    weighted = data._replace(weight=np.ones(20))
    with pytest.raises(ValueError, match="weighted=False"):
        pad_rows(weighted, 30, weighted=False)
    assert pad_rows(weighted, 30).weight.shape == (30,)
    with pytest.raises(ValueError, match="size"):
        pad_rows(data, 10, weighted=False)
