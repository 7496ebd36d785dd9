"""Tests of hetrlhf.btl.neural: last-layer Laplace vs statsmodels, training, pBoN plumbing."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import statsmodels.api as sm

import hetrlhf as hr
from hetrlhf.btl import neural
from hetrlhf.data import simulate

NET = neural.FeatureMLP((8,))


@pytest.fixture(scope="module")
def fixed_features():
    """Homogeneous data (k = 0) and a random, frozen feature network."""
    design = simulate.get_design("correlated", theta=(1.0, -0.7, 0.5), gamma=())
    data = simulate.simulate(jax.random.key(0), design, 400)
    params = neural.init_params(jax.random.key(1), NET, data)
    hdata = neural.feature_data(NET, params.body, data)
    logit = sm.Logit(np.asarray(data.y), np.asarray(hdata.dphi)).fit(
        disp=0, tol=1e-12, maxiter=100
    )
    return data, params, hdata, logit


@pytest.mark.slow  # ~6 s on the 2-core CI machine
def test_laplace_covariance_equals_statsmodels_logit(fixed_features):
    # With fixed features h and γ absent, the last layer is logistic regression of y
    # on h(φ¹) − h(φ⁰) without intercept: its Laplace covariance at the MLE is
    # statsmodels' inverse observed information.
    data, params, _, logit = fixed_features
    at_mle = params._replace(head=hr.Params(jnp.asarray(logit.params), jnp.zeros(0)))
    lap = neural.last_layer_laplace(NET, at_mle, data, prior_precision=0.0)
    np.testing.assert_allclose(lap.cov, logit.cov_params(), rtol=1e-7, atol=1e-12)
    # A reward difference's variance is the statsmodels variance of the contrast.
    phi = simulate.simulate_candidates(
        jax.random.key(2),
        simulate.get_design("default", theta=(1.0, -0.7, 0.5), gamma=()),
        5,
        2,
    )
    est = neural.reward_difference(NET, at_mle, lap, phi[:, 0], phi[:, 1])
    dh = np.asarray(
        NET.apply(params.body, phi[:, 0]) - NET.apply(params.body, phi[:, 1])
    )
    np.testing.assert_allclose(est.mean, dh @ logit.params, rtol=1e-10)
    np.testing.assert_allclose(
        est.var, np.einsum("ij,jk,ik->i", dh, logit.cov_params(), dh), rtol=1e-7
    )


def test_refit_last_layer_reaches_statsmodels_mle(fixed_features):
    _, params, hdata, logit = fixed_features
    head = neural.refit_last_layer(params.head, hdata, 0.0, num_steps=25)
    np.testing.assert_allclose(head.theta, logit.params, rtol=1e-7, atol=1e-7)


def test_laplace_with_prior_adds_precision(fixed_features):
    # λ > 0: Cov = (n·I + λ·I_m)⁻¹ with I from statsmodels' Hessian at the same point.
    data, params, _, logit = fixed_features
    at_mle = params._replace(head=hr.Params(jnp.asarray(logit.params), jnp.zeros(0)))
    lap = neural.last_layer_laplace(NET, at_mle, data, prior_precision=3.0)
    precision = -sm.Logit(
        np.asarray(data.y), np.asarray(neural.feature_data(NET, params.body, data).dphi)
    ).hessian(logit.params)
    np.testing.assert_allclose(
        lap.cov, np.linalg.inv(precision + 3.0 * np.eye(8)), rtol=1e-7, atol=1e-12
    )


@pytest.mark.slow  # ~6 s on the 2-core CI machine
def test_heterogeneous_last_layer_matches_linear_inference():
    # Identity features (a Dense layer frozen at the identity): the neural reward is
    # the linear heterogeneous model, so its Laplace is hr.covariance of hr.fit.
    design = simulate.get_design("default", theta=(1.0, -0.5, 0.8), gamma=(0.5, -0.3))
    data = simulate.simulate(jax.random.key(3), design, 500)
    net = neural.FeatureMLP((3,), activation=lambda x: x)
    params = neural.init_params(jax.random.key(4), net, data)
    body = jax.tree.map(lambda x: x, params.body)
    body["params"]["Dense_0"]["kernel"] = jnp.eye(3)
    body["params"]["Dense_0"]["bias"] = jnp.zeros(3)
    res = hr.fit(data)
    p = neural.NeuralParams(body, res.params)
    lap = neural.last_layer_laplace(net, p, data)
    np.testing.assert_allclose(lap.cov, hr.covariance(res.params, data), rtol=1e-9)
    phi = jnp.asarray(np.random.default_rng(0).normal(size=(4, 6, 3)))
    est = neural.reward_estimate(net, p, lap, phi)
    ref = hr.reward_interval(res.params, data, phi)
    np.testing.assert_allclose(est.mean, ref.mean, rtol=1e-10)
    np.testing.assert_allclose(est.var, ref.var, rtol=1e-9)
    assert hr.pessimistic_best_of_n(est).shape == (4,)


@pytest.mark.slow  # ~8 s on the 2-core CI machine
def test_training_decreases_loss_and_vmaps():
    design = simulate.get_design("heavy", theta=(1.0, -0.5, 0.8), gamma=(0.8, -0.6))
    keys = jax.random.split(jax.random.key(5), 2)
    data = jax.vmap(lambda k: simulate.simulate(k, design, 300))(keys)
    train = neural.make_train(
        NET, num_steps=150, learning_rate=0.02, prior_precision=1.0, num_newton_steps=5
    )
    params, losses = jax.jit(jax.vmap(train))(keys, data)
    assert losses.shape == (2, 150)
    losses = np.asarray(losses)
    assert np.all(losses[:, -1] < 0.8 * losses[:, 0])
    assert np.all(np.diff(losses[:, 100:], axis=1) < 1e-6)  # late steps: monotone
    for i in range(2):
        one = jax.tree.map(lambda x, i=i: x[i], params)
        d_i = jax.tree.map(lambda x, i=i: x[i], data)
        # The Newton polish lowers the objective below the last Adam value.
        assert float(neural.objective(NET, one, d_i, 1.0)) <= losses[i, -1] + 1e-9
        # The polished last layer is stationary: gradient of n·L_n + λ/2‖w‖² ≈ 0.
        hdata = neural.feature_data(NET, one.body, d_i)
        x = jnp.concatenate([one.head.theta, one.head.gamma])
        grad = jax.grad(neural._head_objective)(x, hdata, 1.0, 8)
        assert float(jnp.linalg.norm(grad)) < 1e-6


@pytest.mark.slow  # ~9 s on the 2-core CI machine
def test_singular_features_raise():
    design = simulate.get_design("default", theta=(1.0, -0.5), gamma=())
    data = simulate.simulate(jax.random.key(6), design, 100)
    net = neural.FeatureMLP((4,))
    params = neural.init_params(jax.random.key(7), net, data)
    body = jax.tree.map(jnp.zeros_like, params.body)  # h ≡ 0: no information
    with pytest.raises(ValueError, match="badly conditioned"):
        neural.last_layer_laplace(net, params._replace(body=body), data)
