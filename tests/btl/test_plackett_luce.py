"""Tests of hetrlhf.rankings (Plackett–Luce with the rationality scale).

References: the K = 2 case against hr.fit / hr.confidence_intervals on the same
comparisons; the item-level homogeneous model against ``choix``; the likelihood against
a loop-by-loop numpy implementation and exact normalisation over all K! orders; the
expected information against the exact expectation of the score outer product over all
orders; the Gumbel sampler against the softmax first-choice probabilities.
"""

import itertools

import choix
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import hetrlhf as hr
from hetrlhf.btl import plackett_luce as rk
from hetrlhf.data import simulate as sim
from hetrlhf.types import Params, ravel_params


def _random_rankings(seed, n, num_items, d, k, theta, gamma):
    rng = np.random.default_rng(seed)
    phi = rng.normal(size=(n, num_items, d))
    psi = rng.uniform(-1, 1, size=(n, k))
    params = Params(jnp.asarray(theta), jnp.asarray(gamma))
    base = hr.Rankings(
        jnp.asarray(phi),
        jnp.tile(jnp.arange(num_items, dtype=jnp.int32), (n, 1)),
        jnp.asarray(psi),
        jnp.ones(n),
    )
    order = rk.simulate_orders(jax.random.key(seed), params, base)
    return hr.rankings(phi, np.asarray(order), psi), params


def _numpy_log_likelihood(theta, gamma, phi, order, psi, psi0):
    out = np.zeros(phi.shape[0])
    for i in range(phi.shape[0]):
        u = (psi0[i] + psi[i] @ gamma) * (phi[i] @ theta)
        rest = list(order[i])
        while len(rest) > 1:
            out[i] += u[rest[0]] - np.log(np.sum(np.exp(u[rest])))
            rest = rest[1:]
    return out


@pytest.mark.slow  # ~20 s; run by .ci/run and `pytest -m slow`
def test_pairwise_is_the_k2_case_with_identical_numbers():
    data = sim.simulate(jax.random.key(0), sim.get_design("default"), 300)
    y = np.asarray(data.y).astype(int)
    phi = np.stack([np.asarray(data.phi0), np.asarray(data.phi1)], axis=1)
    order = np.stack([y, 1 - y], axis=1)  # winner first
    ranks = hr.rankings(phi, order, np.asarray(data.psi), np.asarray(data.psi0))
    pair, rank = hr.fit(data), hr.fit(ranks)
    assert bool(pair.converged) and bool(rank.converged)
    np.testing.assert_allclose(
        ravel_params(rank.params), ravel_params(pair.params), rtol=1e-9
    )
    np.testing.assert_allclose(rank.loss, pair.loss, rtol=1e-12)
    np.testing.assert_allclose(
        rk.log_likelihood(pair.params, ranks),
        hr.model.log_likelihood(pair.params, data),
        rtol=1e-12,
        atol=1e-14,
    )
    for kind in ("observed", "expected"):
        np.testing.assert_allclose(
            hr.fisher_information(pair.params, ranks, kind=kind),
            hr.fisher_information(pair.params, data, kind=kind),
            rtol=1e-10,
            atol=1e-13,
        )
    for method in ("wald", "sandwich"):
        a = hr.confidence_intervals(pair.params, ranks, method=method)
        b = hr.confidence_intervals(pair.params, data, method=method)
        for x, ref in ((a.lower, b.lower), (a.upper, b.upper)):
            np.testing.assert_allclose(ravel_params(x), ravel_params(ref), rtol=1e-8)
    # from_comparisons builds the same rankings inside traced code.
    traced = jax.jit(rk.from_comparisons)(data)
    np.testing.assert_array_equal(traced.order, ranks.order)
    np.testing.assert_allclose(traced.phi, ranks.phi)


def test_item_level_homogeneous_matches_choix():
    num_items, n, size = 6, 400, 4
    strengths = np.array([0.0, 0.8, -0.5, 1.2, 0.3, -1.0])
    np.random.seed(1)
    data = choix.generate_rankings(strengths, n, size=size)
    items = np.array([list(r) for r in data])  # best first
    # One-hot features with item 0 as the reference (utility 0): d = M − 1.
    phi = np.eye(num_items)[items][:, :, 1:]
    order = np.tile(np.arange(size), (n, 1))
    res = hr.fit(hr.rankings(phi, order))
    assert bool(res.converged)
    ref = choix.ilsr_rankings(num_items, data, alpha=0.0, tol=1e-12, max_iter=1000)
    np.testing.assert_allclose(res.params.theta, ref[1:] - ref[0], atol=1e-6)
    # Shuffled presentation order with the same rankings gives the same fit.
    perm = np.random.default_rng(2).permuted(np.tile(np.arange(size), (n, 1)), axis=1)
    shown = np.take_along_axis(items, perm, axis=1)
    order2 = np.argsort(perm, axis=1)  # position of the best, second, ... in `shown`
    res2 = hr.fit(hr.rankings(np.eye(num_items)[shown][:, :, 1:], order2))
    np.testing.assert_allclose(res2.params.theta, res.params.theta, atol=1e-9)


def test_log_likelihood_matches_numpy_loops_and_normalises():
    data, params = _random_rankings(3, 20, 4, 3, 2, [0.7, -0.4, 1.1], [0.5, -0.3])
    ref = _numpy_log_likelihood(
        np.asarray(params.theta),
        np.asarray(params.gamma),
        np.asarray(data.phi),
        np.asarray(data.order),
        np.asarray(data.psi),
        np.asarray(data.psi0),
    )
    np.testing.assert_allclose(rk.log_likelihood(params, data), ref, rtol=1e-12)
    # Σ over all K! orders of P(order) = 1 for every row.
    total = np.zeros(20)
    for perm in itertools.permutations(range(4)):
        order = jnp.tile(jnp.asarray(perm, jnp.int32), (20, 1))
        total += np.exp(rk.log_likelihood(params, data._replace(order=order)))
    np.testing.assert_allclose(total, 1.0, rtol=1e-12)


@pytest.mark.slow  # ~4 s on the 2-core CI machine
def test_expected_information_averages_to_exact_score_outer_product():
    """E over all K! orders of the returned information = E[s sᵀ] (one ranking at a time)."""
    data, params = _random_rankings(4, 3, 3, 2, 1, [0.9, -0.6], [0.4])
    x = ravel_params(params)
    perms = [jnp.asarray(p, jnp.int32)[None] for p in itertools.permutations(range(3))]
    for i in range(3):
        row = jax.tree.map(lambda a, i=i: a[i : i + 1], data)
        outer, info = np.zeros((3, 3)), np.zeros((3, 3))
        for order in perms:
            d = row._replace(order=order)
            prob = float(np.exp(rk.log_likelihood(params, d)[0]))
            score = jax.grad(
                lambda v, d=d: rk.log_likelihood(Params(v[:2], v[2:]), d)[0]
            )(x)
            outer += prob * np.outer(score, score)
            info += prob * np.asarray(rk.expected_information(params, d))
        np.testing.assert_allclose(info, outer, rtol=1e-10, atol=1e-14)
        # Any single order gives a positive semi-definite matrix.
        assert np.linalg.eigvalsh(rk.expected_information(params, d))[0] > -1e-12


def test_gumbel_sampler_first_choice_frequencies():
    phi = np.array([[[1.0, 0.0], [0.0, 1.0], [-1.0, 0.5]]])
    params = Params(jnp.array([0.8, -0.4]), jnp.zeros(0))
    base = hr.Rankings(
        jnp.asarray(np.repeat(phi, 20_000, 0)),
        jnp.tile(jnp.arange(3, dtype=jnp.int32), (20_000, 1)),
        jnp.zeros((20_000, 0)),
        jnp.ones(20_000),
    )
    orders = np.asarray(rk.simulate_orders(jax.random.key(5), params, base))
    freq = np.bincount(orders[:, 0], minlength=3) / 20_000
    probs = np.exp(phi[0] @ np.asarray(params.theta))
    probs /= probs.sum()
    np.testing.assert_allclose(freq, probs, atol=4 * np.sqrt(0.25 / 20_000))


@pytest.mark.slow  # ~20 s; truth recovery is also covered by the choix and K = 2 tests
def test_heterogeneous_fit_recovers_truth_and_intervals_trace():
    data, truth = _random_rankings(6, 400, 4, 3, 2, [1.0, -0.5, 0.8], [0.5, -0.4])
    res = hr.fit(data)
    assert bool(res.converged)
    ci = hr.confidence_intervals(res.params, data)
    z = (ravel_params(res.params) - ravel_params(truth)) / ravel_params(ci.se)
    assert np.all(np.abs(np.asarray(z)) < 4.0)
    boot = hr.confidence_intervals(
        res.params, data, method="bootstrap", key=jax.random.key(0), num_bootstrap=20
    )
    assert np.all(np.asarray(ravel_params(boot.lower) < ravel_params(boot.upper)))
    est = hr.reward_interval(res.params, data, jnp.ones((2, 3)))
    assert est.mean.shape == (2,) and np.all(np.asarray(est.var) > 0)


def test_rankings_validation_errors():
    phi = np.random.default_rng(0).normal(size=(5, 3, 2))
    order = np.tile([2, 0, 1], (5, 1))
    hr.rankings(phi, order)  # valid
    with pytest.raises(ValueError, match="3-D"):
        hr.rankings(phi[0], order)
    with pytest.raises(ValueError, match="K >= 2"):
        hr.rankings(phi[:, :1], order[:, :1])
    with pytest.raises(ValueError, match="not a permutation"):
        hr.rankings(phi, np.tile([0, 0, 1], (5, 1)))
    with pytest.raises(ValueError, match="integers"):
        hr.rankings(phi, order + 0.5)
    with pytest.raises(ValueError, match="order must have shape"):
        hr.rankings(phi, order[:, :2])
    bad = phi.copy()
    bad[1, 1, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        hr.rankings(bad, order)
    with pytest.raises(ValueError, match="psi0 is identically 0"):
        hr.rankings(phi, order, psi0=np.zeros(5))
    with pytest.raises(ValueError, match="span"):
        hr.rankings(phi, order, psi=np.ones((5, 1)))
    with pytest.raises(TypeError, match="numeric"):
        hr.rankings(phi.astype(str), order)
    # One-hot item features without a reference item: the all-ones direction cancels.
    onehot = np.eye(3)[np.tile([0, 1, 2], (5, 1))]
    with pytest.raises(ValueError, match="rank 2 < d = 3"):
        hr.rankings(onehot, order)


@pytest.mark.slow
def test_plackett_luce_wald_coverage_monte_carlo():
    reps, n = 300, 300
    theta, gamma = jnp.array([1.0, -0.5, 0.8]), jnp.array([0.5, -0.4])
    truth = np.r_[theta, gamma]

    def one(key):
        k1, k2, k3 = jax.random.split(key, 3)
        phi = jax.random.normal(k1, (n, 4, 3))
        psi = jax.random.uniform(k2, (n, 2), minval=-1, maxval=1)
        base = hr.Rankings(phi, jnp.zeros((n, 4), jnp.int32), psi, jnp.ones(n))
        data = base._replace(order=rk.simulate_orders(k3, Params(theta, gamma), base))
        ci = hr.confidence_intervals(hr.fit(data).params, data)
        return ravel_params(ci.lower), ravel_params(ci.upper)

    lower, upper = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(7), reps))
    cover = np.mean((np.asarray(lower) <= truth) & (truth <= np.asarray(upper)), 0)
    assert np.all(np.abs(cover - 0.95) <= 3.29 * np.sqrt(0.95 * 0.05 / reps)), cover
