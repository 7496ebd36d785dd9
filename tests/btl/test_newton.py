"""``hetrlhf.btl.newton.minimize`` on objectives with independent references.

Minima against scipy's ``minimize`` (BFGS on the same objective, no derivative shared
beyond the gradient) and closed forms; the boundary cases of the loop (no step allowed,
a non-finite start, fixed coordinates, a count offset) against the objective's own
derivatives evaluated directly at the start.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

from hetrlhf.btl import newton

_A = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 1.5]])
_B = np.array([1.0, -2.0, 0.5])


def _objective(x):
    """Strictly convex: Σ exp(x_j) − b·x + ½ xᵀAx."""
    return (
        jnp.sum(jnp.exp(x))
        - jnp.asarray(_B, x.dtype) @ x
        + 0.5 * x @ (jnp.asarray(_A, x.dtype) @ x)
    )


def _derivs(fn):
    def derivs(x):
        hess = jax.hessian(fn)(x)
        return fn(x), jax.grad(fn)(x), hess, hess

    return derivs


def _scipy_min(x0, fixed=None):
    """BFGS over the free coordinates (numpy objective, analytic gradient)."""
    free = np.ones(3, bool) if fixed is None else ~fixed

    def full(z):
        x = np.array(x0, float)
        x[free] = z
        return x

    def f(z):
        x = full(z)
        return np.sum(np.exp(x)) - _B @ x + 0.5 * x @ _A @ x

    def g(z):
        x = full(z)
        return (np.exp(x) - _B + _A @ x)[free]

    res = optimize.minimize(f, np.asarray(x0)[free], jac=g, method="BFGS", tol=1e-12)
    return full(res.x)


X0 = np.array([0.3, -0.2, 1.0])


@pytest.mark.parametrize("dtype, atol", [(jnp.float64, 1e-9), (jnp.float32, 2e-4)])
def test_minimum_matches_scipy(dtype, atol):
    tol = newton.default_tol(dtype)
    state = jax.jit(lambda x: newton.minimize(_derivs(_objective), x, tol=tol))(
        jnp.asarray(X0, dtype)
    )
    assert state.x.dtype == dtype
    np.testing.assert_allclose(state.x, _scipy_min(X0), atol=atol)
    assert float(jnp.linalg.norm(state.grad)) <= tol
    assert 0 < int(state.count) < 20 and not bool(state.stalled)
    # The state's value and derivatives are those of its iterate.
    value, grad, hess, _ = _derivs(_objective)(state.x)
    np.testing.assert_allclose(state.value, value, rtol=1e-6)
    np.testing.assert_allclose(state.grad, grad, atol=10 * tol)
    np.testing.assert_allclose(state.hess, hess, rtol=1e-5)


def test_no_step_allowed_returns_the_start_evaluated():
    state = newton.minimize(
        _derivs(_objective), jnp.asarray(X0), tol=1e-12, max_steps=0
    )
    value, grad, hess, fisher = _derivs(_objective)(jnp.asarray(X0))
    np.testing.assert_array_equal(state.x, X0)
    np.testing.assert_allclose(state.value, value, rtol=1e-15)
    np.testing.assert_allclose(state.grad, grad, rtol=1e-15)
    np.testing.assert_allclose(state.hess, hess, rtol=1e-15)
    np.testing.assert_allclose(state.fisher, fisher, rtol=1e-15)
    np.testing.assert_allclose(
        state.direction,
        -np.linalg.solve(np.asarray(hess), np.asarray(grad)),
        rtol=1e-12,
    )
    assert int(state.count) == 0 and int(state.halvings) == 0
    assert float(state.step) == 1.0


def test_non_finite_start_stops_at_once():
    def derivs(x):
        value, grad, hess, fisher = _derivs(_objective)(x)
        return value * jnp.nan, grad * jnp.nan, hess, fisher

    state = newton.minimize(derivs, jnp.asarray(X0), tol=1e-12)
    np.testing.assert_array_equal(state.x, X0)
    assert np.isnan(float(state.value)) and np.all(np.isnan(state.grad))
    assert int(state.count) == 0


def test_fixed_coordinates_stay_and_the_others_are_optimal():
    fixed = np.array([False, True, False])
    state = jax.jit(
        lambda x: newton.minimize(
            _derivs(_objective), x, tol=1e-11, free=jnp.asarray(~fixed)
        )
    )(jnp.asarray(X0))
    assert float(state.x[1]) == X0[1]
    np.testing.assert_allclose(state.x, _scipy_min(X0, fixed), atol=1e-9)
    assert float(state.grad[1]) == 0.0  # the fixed coordinate's gradient is masked


def test_count_starts_from_count0():
    plain = newton.minimize(_derivs(_objective), jnp.asarray(X0), tol=1e-11)
    offset = newton.minimize(
        _derivs(_objective),
        jnp.asarray(X0),
        tol=1e-11,
        count0=jnp.asarray(3, jnp.int32),
    )
    np.testing.assert_array_equal(offset.x, plain.x)
    assert int(offset.count) == int(plain.count) + 3


def test_indefinite_hessian_falls_back_to_fisher_scoring():
    """f = (x₀² − 1)² + x₁²: H is indefinite at |x₀| < 1/√3; F = diag(8x₀² + 1, 2)."""

    def derivs(x):
        fn = lambda z: (z[0] ** 2 - 1) ** 2 + z[1] ** 2
        fisher = jnp.diag(jnp.stack([8 * x[0] ** 2 + 1, 2.0]))
        return fn(x), jax.grad(fn)(x), jax.hessian(fn)(x), fisher

    x0 = jnp.array([0.2, 0.7])
    grad, hess, fisher = derivs(x0)[1:]
    assert np.linalg.eigvalsh(np.asarray(hess)).min() < 0
    np.testing.assert_allclose(
        newton.direction(grad, hess, fisher),
        -np.linalg.solve(np.asarray(fisher), np.asarray(grad)),
        rtol=1e-12,
    )
    state = newton.minimize(derivs, x0, tol=1e-11)
    np.testing.assert_allclose(state.x, [1.0, 0.0], atol=1e-10)
