"""The estimator against statsmodels, from cold and from wrong starts, under jit/vmap."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import statsmodels.api as sm

import hetrlhf as hr
from hetrlhf.btl import estimate
from hetrlhf.types import ravel_params
from tests.reference import DESIGNS, numpy_loss, simulate, statsmodels_fit


def _data(name, n, seed):
    arrays = simulate(np.random.default_rng(seed), n, DESIGNS[name])
    return arrays, hr.comparisons(*arrays)


def _truth(name):
    design = DESIGNS[name]
    return np.concatenate([design.theta, design.gamma])


def _fit(data, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("error", hr.ConvergenceWarning)
        return hr.fit(data, **kwargs)


# ---------------------------------------------------------------- exactness -----------


@pytest.mark.parametrize("n", [200, 1000])
def test_homogeneous_fit_equals_statsmodels_logit(n):
    rng = np.random.default_rng(n)
    d = 4
    theta = np.array([1.0, -0.6, 0.3, 0.8])
    phi0, phi1 = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    psi0 = rng.uniform(0.5, 2.0, size=n)  # ψ0 ≠ 1: the Logit design is ψ0·Δφ
    x = psi0[:, None] * (phi1 - phi0)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-x @ theta))).astype(float)

    ref = sm.Logit(y, x).fit(method="newton", tol=1e-12, disp=0)  # no intercept
    data = hr.comparisons(phi0, phi1, y, psi0=psi0)
    result = _fit(data)
    ci = hr.confidence_intervals(result.params, data)

    assert bool(result.converged)
    assert result.params.gamma.shape == (0,)
    np.testing.assert_allclose(result.params.theta, ref.params, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ci.se.theta, ref.bse, rtol=1e-6)
    np.testing.assert_allclose(
        ci.lower.theta, ref.conf_int(0.05)[:, 0], rtol=1e-6, atol=1e-8
    )
    np.testing.assert_allclose(
        ci.upper.theta, ref.conf_int(0.05)[:, 1], rtol=1e-6, atol=1e-8
    )


@pytest.mark.parametrize(
    "name,n",
    [
        ("default", 600),
        ("default", 200),
        ("negative_gamma", 400),
        ("psi0_varying", 400),
        ("binary", 600),
        ("heavy", 400),
    ],
)
def test_heterogeneous_fit_equals_statsmodels(name, n):
    arrays, data = _data(name, n, seed=n + len(name))
    ref = statsmodels_fit(*arrays, start=_truth(name))
    result = _fit(data)  # cold start: no init
    ci = hr.confidence_intervals(result.params, data)

    assert bool(result.converged)
    assert float(result.grad_norm) <= 1e-9
    np.testing.assert_allclose(
        ravel_params(result.params), ref.params, rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(ravel_params(ci.se), ref.bse, rtol=1e-3)
    np.testing.assert_allclose(
        ravel_params(ci.lower), ref.conf_int[:, 0], rtol=1e-3, atol=1e-4
    )
    np.testing.assert_allclose(
        ravel_params(ci.upper), ref.conf_int[:, 1], rtol=1e-3, atol=1e-4
    )
    # Our optimum is at least as good as the reference's (same likelihood, numpy).
    ours = numpy_loss(np.asarray(ravel_params(result.params)), *arrays)
    assert ours <= ref.loss + 1e-12
    np.testing.assert_allclose(float(result.loss), ours, rtol=1e-12)


# ---------------------------------------------------------------- robustness ----------


@pytest.mark.parametrize(
    "name", ["default", "negative_gamma", "psi0_varying", "binary", "heavy"]
)
def test_wrong_basin_start_is_escaped(name):
    """θ → −θ with γ pushing σ < 0 is a local optimum of the biconvex loss."""
    arrays, data = _data(name, 400, seed=7)
    ref = statsmodels_fit(*arrays, start=_truth(name))
    design = DESIGNS[name]
    # σ = ψ0 + ψᵀγ ≈ −σ_true: flip θ and make every annotator anti-rational.
    bad = hr.Params(
        theta=-jnp.asarray(design.theta),
        gamma=-jnp.asarray(design.gamma)
        - 3.0 * np.sign(np.asarray(design.gamma) + 1e-12),
    )
    result = hr.fit(data, init=bad)
    # Either recovered (the same MLE) or honestly not converged.
    if bool(result.converged):
        np.testing.assert_allclose(
            ravel_params(result.params), ref.params, rtol=1e-5, atol=1e-7
        )
    assert not (bool(result.converged) and float(result.loss) > ref.loss + 1e-9)


@pytest.mark.slow  # ~4 s on the 2-core CI machine
def test_converged_never_means_worse_than_reference():
    """Random starts, including far and wrong-signed ones: converged ⇒ the global MLE."""
    arrays, data = _data("heavy", 300, seed=3)
    ref = statsmodels_fit(*arrays, start=_truth("heavy"))
    p = ref.params.size
    starts = np.random.default_rng(0).normal(scale=3.0, size=(64, p))
    d = len(DESIGNS["heavy"].theta)
    inits = hr.Params(jnp.asarray(starts[:, :d]), jnp.asarray(starts[:, d:]))
    results = jax.jit(jax.vmap(lambda init: hr.fit(data, init=init)))(inits)
    conv = np.asarray(results.converged)
    assert conv.mean() > 0.9
    np.testing.assert_allclose(
        np.asarray(ravel_params(results.params))[conv],
        np.broadcast_to(ref.params, (conv.sum(), p)),
        rtol=1e-5,
        atol=1e-7,
    )


def test_alternating_from_wrong_basin_is_not_reported_converged():
    """Algorithm 1 alone can't escape; it must not claim convergence at the wrong point."""
    arrays, data = _data("default", 400, seed=11)
    ref = statsmodels_fit(*arrays, start=_truth("default"))
    design = DESIGNS["default"]
    bad = hr.Params(-jnp.asarray(design.theta), jnp.asarray([-2.0, -2.0, -2.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", hr.ConvergenceWarning)  # either outcome is fine
        result = hr.fit(data, init=bad, method="alternating", num_steps=500)
    if bool(result.converged):
        assert float(result.loss) <= ref.loss + 1e-9


def test_fixed_step_count_is_not_a_stopping_rule():
    _arrays, data = _data("default", 600, seed=1)
    truth = DESIGNS["default"]
    init = hr.Params(jnp.asarray(truth.theta), jnp.asarray(truth.gamma))
    with pytest.warns(hr.ConvergenceWarning, match="gradient norm"):
        result = hr.fit(data, init=init, method="alternating", num_steps=5)
    assert not bool(result.converged)
    assert float(result.grad_norm) > 1e-6


def test_separated_data_are_not_converged():
    rng = np.random.default_rng(0)
    n, d = 50, 2
    phi0, phi1 = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    y = ((phi1 - phi0) @ np.array([1.0, -1.0]) > 0).astype(float)  # perfectly separable
    psi = rng.uniform(-1, 1, size=(n, 1))
    data = hr.comparisons(phi0, phi1, y, psi)
    with pytest.warns(hr.ConvergenceWarning, match="separated"):
        result = hr.fit(data)
    assert not bool(result.converged)


def test_unknown_method_and_missing_init():
    _, data = _data("default", 50, seed=0)
    with pytest.raises(ValueError, match="method"):
        hr.fit(data, method="lbfgs")
    with pytest.raises(ValueError, match="init"):
        hr.fit(data, method="alternating")


# ---------------------------------------------------------------- Algorithm 1 ---------


@pytest.mark.slow  # ~4 s on the 2-core CI machine
def test_algorithm1_monotone_and_reaches_the_same_optimum():
    _arrays, data = _data("default", 600, seed=5)
    newton = _fit(data)
    design = DESIGNS["default"]
    init = hr.Params(jnp.asarray(design.theta) * 0.5, jnp.zeros(3))
    result, path, losses = hr.run_alternating(
        data, init, lr_theta=0.2, lr_gamma=0.2, num_steps=3000, record=True
    )
    losses = np.asarray(losses)
    assert np.all(np.diff(losses) <= 1e-15), "loss increased for a small step size"
    assert path.theta.shape == (3000, 5)
    np.testing.assert_allclose(losses[-1], float(newton.loss), rtol=1e-10)
    np.testing.assert_allclose(
        ravel_params(result.params), ravel_params(newton.params), rtol=1e-4, atol=1e-5
    )


def test_alternating_solver_init_update_matches_algorithm1_written_out():
    """One Gauss–Seidel step equals the update written out with numpy gradients."""
    arrays, data = _data("default", 100, seed=2)
    _phi0, _phi1, _y, _psi, _psi0 = arrays
    x0 = np.array([0.3, 0.1, -0.2, 0.5, 0.0, 0.2, -0.1, 0.05])
    d, eta1, eta2 = 5, 0.4, 0.7

    def num_grad(x, idx, h=1e-6):
        g = np.zeros_like(x)
        for j in idx:
            e = np.zeros_like(x)
            e[j] = h
            g[j] = (numpy_loss(x + e, *arrays) - numpy_loss(x - e, *arrays)) / (2 * h)
        return g

    x1 = x0 - eta1 * num_grad(x0, range(d))
    x1 = x1 - eta2 * num_grad(x1, range(d, 8))
    solver = hr.alternating_gd(eta1, eta2)
    state = solver.update(
        solver.init(hr.Params(jnp.asarray(x0[:d]), jnp.asarray(x0[d:]))), data
    )
    np.testing.assert_allclose(ravel_params(state.params), x1, atol=1e-8)
    assert int(state.count) == 1


# ---------------------------------------------------------------- jit / vmap ----------


@pytest.mark.slow  # ~4 s on the 2-core CI machine
def test_vmapped_fit_equals_eager_fits():
    sets = [
        simulate(np.random.default_rng(s), 200, DESIGNS["default"]) for s in range(6)
    ]
    stacked = hr.Comparisons(
        *(jnp.asarray(np.stack([s[i] for s in sets])) for i in range(5))
    )
    batch = jax.jit(jax.vmap(hr.fit))(stacked)
    assert batch.params.theta.shape == (6, 5)
    for i, arrays in enumerate(sets):
        ref = statsmodels_fit(*arrays, start=_truth("default"))
        assert bool(batch.converged[i])
        np.testing.assert_allclose(
            np.asarray(ravel_params(batch.params))[i], ref.params, rtol=1e-5, atol=1e-7
        )


def test_float32_fit_is_close_to_float64():
    _arrays, data64 = _data("default", 600, seed=9)
    data32 = jax.tree.map(lambda a: a.astype(jnp.float32), data64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        r32 = hr.fit(data32)
    r64 = _fit(data64)
    assert r32.params.theta.dtype == jnp.float32
    assert bool(r32.converged)
    np.testing.assert_allclose(
        ravel_params(r32.params), ravel_params(r64.params), rtol=1e-3, atol=1e-3
    )


@pytest.mark.slow  # ~5 s on the 2-core CI machine
def test_algorithm1_converging_in_the_wrong_basin_is_not_converged():
    """Algorithm 1 run long enough to settle at a wrong-basin stationary point."""
    _arrays, data = _data("default", 400, seed=11)
    design = DESIGNS["default"]
    bad = hr.Params(-jnp.asarray(design.theta), jnp.asarray([-2.0, -2.0, -2.0]))
    result = hr.run_alternating(data, bad, num_steps=5000, lr_theta=0.5, lr_gamma=0.5)
    newton = _fit(data)
    if float(result.loss) > float(newton.loss) + 1e-9:
        assert not bool(result.converged)
    else:  # it found its way out: then it must agree with the global fit
        np.testing.assert_allclose(
            ravel_params(result.params),
            ravel_params(newton.params),
            rtol=1e-4,
            atol=1e-6,
        )


# ---------------------------------------------------------------- long runs -----------


@pytest.mark.slow  # ~5 s on the 2-core CI machine
def test_trace_alternating_matches_the_recorded_path():
    """Checkpoints, hit step, loss and gradient norm against run_alternating's path."""
    _arrays, data = _data("default", 200, seed=4)
    design = DESIGNS["default"]
    init = hr.Params(jnp.asarray(design.theta) + 0.3, jnp.asarray(design.gamma) - 0.2)
    target = hr.Params(jnp.asarray(design.theta), jnp.asarray(design.gamma))
    _, path, losses = hr.run_alternating(
        data,
        init,
        lr_theta=0.7,
        lr_gamma=0.7,
        num_steps=60,
        record=True,
        check_basin=False,
    )
    iterates = np.asarray(ravel_params(path))  # [60, p]: β_1..β_60
    dist = np.linalg.norm(iterates - np.asarray(ravel_params(target)), axis=1)
    radius = np.sort(dist)[len(dist) // 2]  # reached somewhere along the path
    first = int(np.argmax(dist <= radius)) + 1
    steps = (5, 20, 60)
    trace = estimate.trace_alternating(
        data,
        init,
        target,
        lr_theta=0.7,
        lr_gamma=0.7,
        checkpoints=steps,
        radius=radius,
    )
    idx = np.array(steps) - 1
    np.testing.assert_allclose(
        np.asarray(ravel_params(trace.params)), iterates[idx], rtol=1e-12
    )
    np.testing.assert_allclose(trace.loss, np.asarray(losses)[idx], rtol=1e-12)
    assert int(trace.hit_step) == first
    grads = [
        np.linalg.norm(
            ravel_params(jax.grad(hr.model.loss)(hr.Params(x[:5], x[5:]), data))
        )
        for x in iterates[idx]
    ]
    np.testing.assert_allclose(trace.grad_norm, grads, rtol=1e-10)
    never = estimate.trace_alternating(
        data, init, target, lr_theta=0.7, lr_gamma=0.7, checkpoints=(3,), radius=1e-9
    )
    assert int(never.hit_step) == -1
    with pytest.raises(ValueError, match="checkpoints"):
        estimate.trace_alternating(
            data,
            init,
            target,
            lr_theta=0.7,
            lr_gamma=0.7,
            checkpoints=(5, 5),
            radius=1.0,
        )


def test_mirror_basin():
    ref = hr.Params(jnp.array([1.0, -0.5]), jnp.array([0.5, 0.2]))
    params = hr.Params(
        jnp.array([[-1.0, 0.5], [-1.0, 0.5], [1.0, -0.5], [0.1, 0.0]]),
        jnp.array([[-0.5, -0.2], [0.5, 0.2], [-0.5, -0.2], [-1.0, 0.0]]),
    )
    np.testing.assert_array_equal(
        estimate.mirror_basin(params, ref), [True, False, False, False]
    )
    # k = 0: the reward alone decides.
    hom = hr.Params(jnp.array([1.0, -0.5]), jnp.zeros(0))
    flipped = hr.Params(jnp.array([-1.0, 0.5]), jnp.zeros(0))
    assert bool(estimate.mirror_basin(flipped, hom))
