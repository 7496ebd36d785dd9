"""hr.comparisons: every bad input raises a clear error naming the argument."""

import numpy as np
import pytest

import hetrlhf as hr


def _good(n=20, d=3, k=2, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "phi0": rng.normal(size=(n, d)),
        "phi1": rng.normal(size=(n, d)),
        "y": rng.integers(0, 2, size=n),
        "psi": rng.uniform(-1, 1, size=(n, k)),
        "psi0": np.ones(n),
    }


def test_good_input_gives_a_pytree_of_float_arrays():
    data = hr.comparisons(**_good())
    assert isinstance(data, hr.Comparisons)
    assert (
        data.phi0.shape == (20, 3)
        and data.psi.shape == (20, 2)
        and data.y.shape == (20,)
    )
    assert data.y.dtype == data.phi0.dtype
    homogeneous = hr.comparisons(_good()["phi0"], _good()["phi1"], _good()["y"])
    assert homogeneous.psi.shape == (20, 0)
    np.testing.assert_array_equal(homogeneous.psi0, np.ones(20))


def _with(**changes):
    kwargs = _good()
    kwargs.update(changes)
    return kwargs


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (_with(phi0=np.zeros((20,))), "phi0"),
        (_with(phi1=np.zeros((19, 3))), "phi0 and phi1"),
        (
            _with(
                phi0=np.zeros((0, 3)),
                phi1=np.zeros((0, 3)),
                y=np.zeros(0),
                psi=np.zeros((0, 2)),
                psi0=np.zeros(0),
            ),
            "n >= 1",
        ),
        (_with(y=np.zeros(19)), "y"),
        (_with(y=np.full(20, 2)), "labels 0 and 1"),
        (_with(y=np.r_[np.zeros(19), 0.5]), "labels 0 and 1"),
        (_with(phi0=np.r_[np.full((1, 3), np.nan), np.zeros((19, 3))]), "phi0"),
        (_with(phi1=np.r_[np.full((1, 3), np.inf), np.zeros((19, 3))]), "phi1"),
        (_with(psi=np.full((20, 2), np.nan)), "psi"),
        (_with(psi=np.zeros((19, 2))), "psi"),
        (_with(psi0=np.zeros(20)), "psi0 is identically 0"),
        (_with(psi0=np.ones(19)), "psi0"),
        (_with(psi0=np.r_[np.ones(19), np.inf]), "psi0"),
        (_with(psi=np.ones((20, 2))), "psi"),  # constant columns: collinear
        (_with(psi=np.column_stack([np.ones(20), np.linspace(-1, 1, 20)])), "psi0"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(kwargs, match):
    with pytest.raises(ValueError, match=match):
        hr.comparisons(**kwargs)


def test_prompt_only_feature_is_not_identified():
    kwargs = _good()
    kwargs["phi1"][:, 0] = kwargs["phi0"][:, 0]  # cancels in Δφ
    with pytest.raises(ValueError, match="rank"):
        hr.comparisons(**kwargs)


def test_non_numeric_input_is_a_type_error():
    with pytest.raises(TypeError, match="phi0"):
        hr.comparisons(**_with(phi0=[["a", "b", "c"]] * 20))


def test_fit_rejects_non_comparisons():
    with pytest.raises(TypeError, match="Comparisons"):
        hr.fit({"phi0": 1})
