"""BoN and pessimistic BoN vs numpy/scipy computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import hetrlhf as hr


def test_best_of_n_is_argmax_per_prompt():
    mean = np.random.default_rng(0).normal(size=(6, 10))
    np.testing.assert_array_equal(hr.best_of_n(jnp.asarray(mean)), mean.argmax(-1))


@pytest.mark.parametrize("alpha", [0.05, 0.2])
def test_pessimistic_best_of_n_maximises_the_lower_bound(alpha):
    rng = np.random.default_rng(1)
    mean, var = rng.normal(size=(8, 20)), rng.exponential(size=(8, 20))
    est = hr.RewardEstimate(jnp.asarray(mean), jnp.asarray(var))
    lcb = mean - stats.norm.ppf(1 - alpha / 2) * np.sqrt(var)
    np.testing.assert_array_equal(hr.pessimistic_best_of_n(est, alpha), lcb.argmax(-1))
    # vmapped over prompts gives the same
    per_prompt = jax.vmap(
        lambda m, v: hr.pessimistic_best_of_n(hr.RewardEstimate(m, v), alpha)
    )
    np.testing.assert_array_equal(per_prompt(est.mean, est.var), lcb.argmax(-1))


def test_pessimism_avoids_the_uncertain_candidate():
    est = hr.RewardEstimate(jnp.array([1.0, 1.2]), jnp.array([0.01, 1.0]))
    assert int(hr.best_of_n(est.mean)) == 1
    assert int(hr.pessimistic_best_of_n(est)) == 0
    # with zero variance pBoN is BoN
    assert int(hr.pessimistic_best_of_n(est._replace(var=jnp.zeros(2)))) == 1


def test_pessimistic_needs_a_reward_estimate():
    with pytest.raises(TypeError, match="RewardEstimate"):
        hr.pessimistic_best_of_n(jnp.zeros(3))


def test_evaluate_choices_matches_a_numpy_loop_over_ragged_pools():
    rng = np.random.default_rng(0)
    sizes = [3, 1, 5, 2]
    mean, var, gold = (rng.normal(size=(4, 5)) for _ in range(3))
    var = np.abs(var) + 0.1
    mask = np.arange(5)[None, :] < np.array(sizes)[:, None]
    got = hr.selection.evaluate_choices(
        hr.RewardEstimate(jnp.asarray(mean), jnp.asarray(var)),
        jnp.asarray(gold),
        0.1,
        jnp.asarray(mask),
    )
    z = stats.norm.ppf(0.95)
    for p, n in enumerate(sizes):
        b = int(np.argmax(mean[p, :n]))
        q = int(np.argmax(mean[p, :n] - z * np.sqrt(var[p, :n])))
        assert float(got.bon[p]) == gold[p, b]
        assert float(got.pbon[p]) == gold[p, q]
        np.testing.assert_allclose(float(got.random[p]), gold[p, :n].mean())
        assert float(got.oracle[p]) == gold[p, :n].max()
        assert bool(got.changed[p]) == (b != q)
        assert int(got.num_candidates[p]) == n


def test_tail_mean_is_the_mean_of_the_worst_share():
    x = jnp.asarray(np.random.default_rng(1).normal(size=10))
    np.testing.assert_allclose(
        float(hr.selection.tail_mean(x, 0.25)), np.sort(np.asarray(x))[:3].mean()
    )
    assert float(hr.selection.tail_mean(x, 1e-6)) == float(jnp.min(x))
    with pytest.raises(ValueError, match="tail"):
        hr.selection.tail_mean(x, 0.0)
