"""Reward sources of the PPO learner: per-query judge draws, the shared deterministic
ensemble, the per-policy realisation (hetrlhf.alignment.ppo.rewards / world / learner.rollout)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from hetrlhf.alignment import ensemble, ppo
from hetrlhf.alignment.ppo import rewards, sampling
from hetrlhf.types import RewardEstimate


def test_per_query_uniform_draws_are_uniform_on_the_interval():
    """r̂ = a + (b − a)·u: KS test against U(a, b), mean = midpoint, var = (b−a)²/12."""
    a, b = -0.7, 2.3
    est = rewards.judge_intervals(
        {"theta": jnp.ones(1), "u": jnp.ones(1), "h0": 1.5, "spread": 0.0},
        jnp.full((1,), 0.8)[:, None],
    )  # r = 0.8, h = 1.5: the interval [−0.7, 2.3]
    np.testing.assert_allclose([est.mean[0], est.var[0]], [0.8, 3.0**2 / 12])
    n = 100_000
    bits = jax.random.bits(jax.random.key(0), (n,), jnp.uint32)
    u = sampling.unit_uniform(bits, jnp.float32)
    draws = np.asarray(
        rewards.per_query_uniform(
            u, RewardEstimate(*(jnp.full(n, x[0]) for x in est))
        ).mean,
        np.float64,
    )
    assert draws.min() >= a - 1e-6 and draws.max() <= b + 1e-6
    assert stats.kstest(draws, stats.uniform(a, b - a).cdf).pvalue > 1e-3
    # Mean and variance within 4.5 standard errors (var of s² for a uniform:
    # (μ4 − σ⁴)/n with μ4 = (b − a)⁴/80).
    sd = (b - a) / np.sqrt(12)
    assert abs(draws.mean() - 0.8) < 4.5 * sd / np.sqrt(n)
    se_var = np.sqrt(((b - a) ** 4 / 80 - sd**4) / n)
    assert abs(draws.var(ddof=1) - sd**2) < 4.5 * se_var


class _PerSampleTask(ppo.CandidateTask):
    """No response table: the reward source is evaluated per policy inside the vmap
    (the route a token task takes), here on a cheap candidate task."""

    def all_responses(self):
        return None


def _setup(noise, num_prompts=2, num_candidates=4):
    """A small candidate task (frequent repeats of each response)."""
    task = _PerSampleTask(
        jax.random.normal(jax.random.key(0), (num_prompts, num_candidates, 3)),
        jnp.array([1.0, -0.5, 0.3]),
    )
    config = ppo.PPOConfig(
        num_updates=1, num_prompts=4, group_size=4, reward_noise=noise
    )
    return task, config


def _rollouts(task, config, reward_fn, reward_params, num_policies, seed=3):
    learner = ppo.make_learner(config, task, reward_fn)
    keys = jax.random.split(jax.random.key(seed), num_policies)
    state = jax.vmap(learner.init)(keys, jnp.zeros(num_policies, bool))
    out = jax.jit(jax.vmap(learner.rollout, in_axes=(0, None)))(state, reward_params)
    return jax.tree.map(np.asarray, out)


@pytest.mark.slow  # ~4 s on the 2-core CI machine
def test_ensemble_source_is_deterministic_and_bit_identical_across_policies():
    """Every policy that samples a response observes the same reward, bit for bit:
    the ensemble mean at its features (vmapped over policies, per-sample route)."""
    task, config = _setup("none")
    heads = jax.random.normal(jax.random.key(2), (10, 3))
    out = _rollouts(task, config, ensemble.ensemble_reward, heads, num_policies=16)
    seen, policies = {}, {}
    for i in range(16):
        for p, codes, obs in zip(
            out["prompt_ids"][i], out["codes"][i], out["observed"][i], strict=True
        ):
            for c, r in zip(codes, obs, strict=True):
                seen.setdefault((int(p), int(c)), set()).add(float(r))
                policies.setdefault((int(p), int(c)), set()).add(i)
    # Responses sampled by several policies (each of 8 possible by most of them) ...
    assert sum(len(v) >= 8 for v in policies.values()) >= 4
    # ... observed with one value each.
    assert all(len(v) == 1 for v in seen.values())
    # ... and it is the ensemble mean, the variance the heads' variance.
    phi = task.response_features(
        jnp.asarray(out["prompt_ids"][0]), jnp.asarray(out["actions"][0])
    )
    assert phi.shape == (4, 4, 3)
    est = ensemble.ensemble_reward(heads, phi.reshape(-1, 3))
    np.testing.assert_allclose(out["observed"][0].ravel(), est.mean, rtol=1e-6)
    np.testing.assert_allclose(out["var"][0].ravel(), est.var, rtol=1e-6)


def test_per_policy_noise_is_fixed_within_a_policy_and_differs_across_policies():
    task, config = _setup("per_policy_gaussian")
    heads = jax.random.normal(jax.random.key(2), (10, 3))
    out = _rollouts(task, config, ensemble.ensemble_reward, heads, num_policies=8)
    per_policy = []
    for i in range(8):
        seen = {}
        for p, codes, obs in zip(
            out["prompt_ids"][i], out["codes"][i], out["observed"][i], strict=True
        ):
            for c, r in zip(codes, obs, strict=True):
                seen.setdefault((int(p), int(c)), set()).add(float(r))
        assert all(len(v) == 1 for v in seen.values())
        per_policy.append(seen)
    common = set(per_policy[0]) & set(per_policy[1])
    assert common and all(per_policy[0][k] != per_policy[1][k] for k in common)


def test_prompted_source_draws_fresh_per_query_with_midpoint_mean_and_uniform_var():
    """The learner's per-query rewards (many policies and repeated responses): each
    observation r̂ − midpoint, scaled by the half-width h, is U(−1, 1): mean 0 and
    variance 1/3, i.e. r̂ has mean (a + b)/2 and variance (b − a)²/12. Tolerances: 4.5
    standard errors (about 7 in a million two-sided under the truth)."""
    task, config = _setup("per_query")
    judge = {
        "theta": task.gold_theta,
        "u": jnp.array([0.6, 0.8, 0.0]),
        "h0": jnp.asarray(1.0),
        "spread": jnp.asarray(0.5),
    }
    out = _rollouts(task, config, rewards.judge_intervals, judge, num_policies=256)
    mid = out["gold"]  # the judge is centred on the gold reward
    half = np.sqrt(3 * out["var"])
    assert np.ptp(half) > 0.1  # widths vary across responses
    z = ((out["observed"] - mid) / half).ravel().astype(np.float64)
    n = z.size
    assert np.all(np.abs(z) <= 1 + 1e-5)
    assert abs(z.mean()) < 4.5 * np.sqrt(1 / 3 / n)
    se_var = np.sqrt((1 / 5 - 1 / 9) / n)  # μ4 − σ⁴ of U(−1, 1)
    assert abs(z.var() - 1 / 3) < 4.5 * se_var
    # Fresh draws: a response seen twice is (almost surely) observed differently.
    seen = {}
    for i in range(4):
        for p, codes, obs in zip(
            out["prompt_ids"][i], out["codes"][i], out["observed"][i], strict=True
        ):
            for c, r in zip(codes, obs, strict=True):
                seen.setdefault((int(p), int(c)), []).append(float(r))
    repeated = [v for v in seen.values() if len(v) > 1]
    assert repeated and all(len(set(v)) == len(v) for v in repeated)


@pytest.mark.parametrize("exponent", [0.0, 0.5, 2.0])
def test_tempering_keeps_the_mean_variance(exponent):
    phi = jax.random.normal(jax.random.key(0), (200, 3))
    judge = {
        "theta": jnp.ones(3),
        "u": jnp.array([1.0, 0.0, 0.0]),
        "h0": 1.0,
        "spread": 1.0,
    }
    fn = rewards.tempered(rewards.judge_intervals)
    params = rewards.tempering(judge, rewards.judge_intervals, phi, exponent)
    var = np.asarray(rewards.judge_intervals(judge, phi).var, np.float64)
    out = fn(params, phi)
    np.testing.assert_allclose(out.var.mean(), var.mean(), rtol=1e-5)
    np.testing.assert_allclose(
        out.var, var**exponent * var.mean() / np.mean(var**exponent), rtol=1e-4
    )
    np.testing.assert_array_equal(out.mean, rewards.judge_intervals(judge, phi).mean)
