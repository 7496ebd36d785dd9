"""KL control of the PPO learner: the adaptive controller, the k1 KL in the reward, the
policies' KL to the reference, temperature, and the β calibration."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hetrlhf.alignment import ppo
from hetrlhf.alignment.ppo import runs, world


class _TRLController:
    """TRL's AdaptiveKLController written out (Ziegler et al. 2019)."""

    def __init__(self, init_kl_coef, target, horizon):
        self.value, self.target, self.horizon = init_kl_coef, target, horizon

    def update(self, current, n_steps):
        proportional_error = np.clip(current / self.target - 1, -0.2, 0.2)
        self.value *= 1 + proportional_error * n_steps / self.horizon


def test_adaptive_beta_matches_a_hand_computed_sequence():
    """β0 = 0.3, target 0.7, horizon 19, n = 64 (gain 64/19): by hand,
    KL 0.1 → e = −0.2 → β·(1 − 0.2·64/19); 0.7 → e = 0; 2.0 → e = +0.2;
    0.75 → e = 0.05/0.7; 0.0 → e = −0.2."""
    # e·n/horizon: ±0.2·64/19 = ±12.8/19 and (0.05/0.7)·64/19 = 3.2/13.3.
    b1 = 0.3 * 6.2 / 19
    b3 = b1 * 31.8 / 19
    b4 = b3 * 16.5 / 13.3
    expected = [b1, b1, b3, b4, b4 * 6.2 / 19]
    beta, ours = 0.3, []
    for kl in (0.1, 0.7, 2.0, 0.75, 0.0):
        beta = ppo.adaptive_beta(beta, kl, target=0.7, horizon=19.0, num_steps=64)
        ours.append(float(beta))
    np.testing.assert_allclose(ours, expected, rtol=1e-6)


def _candidate_task(num_prompts=16, num_candidates=6, temperature=1.0):
    feats = jax.random.normal(jax.random.key(0), (num_prompts, num_candidates, 3))
    return ppo.CandidateTask(
        feats, jnp.array([1.0, -0.5, 0.8]), temperature=temperature
    )


def _judge(task):
    return {
        "theta": task.gold_theta,
        "u": jnp.array([0.6, 0.0, 0.8]),
        "h0": jnp.asarray(1.0),
        "spread": jnp.asarray(0.7),
    }


@pytest.mark.slow  # ~7 s on the 2-core CI machine
@pytest.mark.parametrize("penalty", ["kl_reward", "mean_one"])
def test_learner_controller_follows_trl_on_its_own_rollout_kl(penalty):
    """Per update: Metrics.beta is the β used; the next one is TRL's update with the
    rollout's mean Σ_t log(π_old/π_ref) and n = batch size."""
    task = _candidate_task()
    config = ppo.PPOConfig(
        num_updates=12,
        num_prompts=8,
        group_size=4,
        learning_rate=0.1,
        penalty=penalty,
        kl_control="adaptive",
        kl_target=0.05,
        kl_horizon=19.0,
        reward_noise="per_query",
    )
    train = jax.jit(ppo.make_train(config, task, ppo.judge_intervals))
    out = train(jax.random.key(1), True, _judge(task), 0.3)
    kl, beta = np.asarray(out.metrics.kl, np.float64), np.asarray(out.metrics.beta)
    ctl = _TRLController(0.3, 0.05, 19.0)
    for u in range(12):
        np.testing.assert_allclose(beta[u], ctl.value, rtol=1e-5)
        ctl.update(kl[u], 32)
    np.testing.assert_allclose(out.state.beta, ctl.value, rtol=1e-4)
    assert abs(kl[0]) < 1e-6 and np.ptp(beta) > 0.1  # starts at π_ref; β moved


def test_kl_in_reward_by_hand():
    r = jnp.array([1.0, -0.5])
    w = jnp.array([2.0, 0.25])
    old = jnp.log(jnp.array([[0.5, 0.2], [0.1, 0.4]]))
    ref = jnp.log(jnp.array([[0.25, 0.4], [0.2, 0.4]]))
    # Row 0: log(0.5/0.25) + log(0.2/0.4) = 0; row 1: log(0.1/0.2) + 0 = −log 2.
    out = ppo.kl_in_reward(r, w, old, ref, 0.3)
    np.testing.assert_allclose(out, [1.0, -0.5 + 0.3 * 0.25 * np.log(2)], atol=1e-6)


@pytest.mark.slow  # ~8 s on the 2-core CI machine
def test_rollout_kl_metric_is_the_batch_mean_sequence_log_ratio():
    task = _candidate_task()
    config = ppo.PPOConfig(num_updates=1, num_prompts=8, group_size=4, beta=0.1)
    learner = ppo.make_learner(
        config, task, ppo.judge_intervals, reference_key=jax.random.key(5)
    )
    # A policy away from π_ref, so the log-ratios are not all 0.
    state = learner.init(jax.random.key(2), False)
    state = state._replace(params=task.init_params(jax.random.key(6)))
    batch = learner.rollout(state, _judge(task))
    _, metrics = learner.update(state, _judge(task))
    expected = np.mean(np.sum(batch["old_logp"] - batch["ref_logp"], axis=-1))
    np.testing.assert_allclose(metrics.kl, expected, rtol=1e-5)
    assert abs(expected) > 1e-3


def test_candidate_policy_kl_and_temperature_match_numpy():
    task = _candidate_task(temperature=2.0)
    params, ref = (
        task.init_params(jax.random.key(1)),
        task.init_params(jax.random.key(2)),
    )

    def probs(p):
        w = np.asarray(p["params"]["Dense_0"]["kernel"])[:, 0]
        logits = np.asarray(task.features) @ w / 2.0  # temperature 2
        e = np.exp(logits - logits.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    pi, pi_ref = probs(params), probs(ref)
    kl = np.mean(np.sum(pi * np.log(pi / pi_ref), axis=-1))
    np.testing.assert_allclose(task.policy_kl(None, params, ref), kl, rtol=1e-5)
    gold = np.mean(np.sum(pi * (np.asarray(task.features) @ [1.0, -0.5, 0.8]), -1))
    np.testing.assert_allclose(task.expected_gold(None, params), gold, rtol=1e-5)
    ids = jnp.arange(4)
    logp, _ = task.evaluate(params, ids, jnp.zeros((4, 1, 1), jnp.int32))
    np.testing.assert_allclose(logp[:, 0, 0], np.log(pi[:4, 0]), rtol=1e-5)
    # τ = 1 is the untempered policy bit for bit.
    plain = _candidate_task()
    logits, _ = jax.vmap(lambda f: plain.policy.apply(params, f))(plain.features)
    np.testing.assert_array_equal(
        plain.evaluate(params, ids, jnp.zeros((4, 1, 1), jnp.int32))[0][:, 0, 0],
        jax.nn.log_softmax(logits)[ids, 0],
    )


@pytest.mark.slow
def test_token_policy_kl_matches_exact_enumeration():
    """V = 3, T = 2: the exact sequence KL by enumerating the 9 responses; the
    Rao–Blackwellised Monte Carlo estimate within 4.5 of its standard errors."""
    v, t = 3, 2
    model = ppo.TinyTransformer(num_prompts=2, vocab_size=v, seq_len=t, embed_dim=8)
    task = ppo.TokenTask(
        np.eye(v),
        np.ones((2, v)),
        np.ones(v),
        seq_len=t,
        policy=model,
        num_eval_samples=4000,
        temperature=1.5,
    )
    params = jax.tree.map(lambda x: 3.0 * x, task.init_params(jax.random.key(0)))
    ref = task.init_params(jax.random.key(1))
    seqs = np.array([[a, b] for a in range(v) for b in range(v)], np.int32)

    def seq_logp(p, s):
        logits = jax.vmap(lambda a: model.apply(p, jnp.int32(s), a)[0])(seqs) / 1.5
        lp = np.asarray(jax.nn.log_softmax(logits), np.float64)
        return lp[np.arange(9), 0, seqs[:, 0]] + lp[np.arange(9), 1, seqs[:, 1]]

    exact = np.mean(
        [
            np.sum(
                np.exp(seq_logp(params, s)) * (seq_logp(params, s) - seq_logp(ref, s))
            )
            for s in range(2)
        ]
    )
    estimates = [
        float(task.policy_kl(jax.random.key(k), params, ref)) for k in range(5)
    ]
    se = np.std(estimates, ddof=1) / np.sqrt(5)
    assert exact > 0.05
    assert abs(np.mean(estimates) - exact) < 4.5 * se + 1e-3


def test_interpolate_beta_is_exact_for_a_power_law():
    grid = np.array([0.01, 0.1, 1.0, 10.0])
    kl = 0.3 * grid**-0.8
    beta, bracketed = runs.interpolate_beta(grid, kl, 0.7)
    np.testing.assert_allclose(beta, (0.7 / 0.3) ** (-1 / 0.8), rtol=1e-10)
    assert bracketed
    beta, bracketed = runs.interpolate_beta(grid, kl, 1e3)
    assert beta == pytest.approx(0.01) and not bracketed


@pytest.mark.slow
def test_calibration_reaches_its_target_kl():
    """Calibrate both arms to a target KL on calibration keys, then train fresh
    policies at the calibrated β: each arm's mean KL within 15% of the target (the
    calibration's interpolation error plus the seed-to-seed noise of 8 policies)."""
    task = _candidate_task(num_prompts=16, num_candidates=6)
    source = world.RewardSource("prompted", ppo.judge_intervals, _judge(task), "none")
    phi = task.features.reshape(-1, 3)
    w = world.World(task, task.init_params(jax.random.key(3)), {}, phi)
    config = ppo.PPOConfig(
        num_updates=20,
        num_prompts=8,
        group_size=4,
        learning_rate=0.05,
        penalty="kl_reward",
    )
    runner = runs.make_runner(config, w, source, num_policies=16)
    target = 0.2
    start = runs.start_betas(0.1, source, phi, "kl_reward")
    cal = runs.calibrate_betas(
        runner,
        jax.random.key(4),
        source.params,
        target=target,
        start=start,
        num_policies=8,
        grid_size=4,
        span=10.0,
        num_rounds=2,
    )
    keys, flags = runs.arm_keys(jax.random.key(5), 8)
    out = runs.train_policies(
        runner, keys, flags, np.repeat(cal["beta"], 8), source.params
    )
    kl = out["evaluation"].kl
    for arm in range(2):
        np.testing.assert_allclose(
            kl[arm * 8 : (arm + 1) * 8].mean(), target, rtol=0.15
        )
    assert all(row["bracketed"] for row in cal["rounds"][-1])
