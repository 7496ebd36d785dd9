"""Tests of hetrlhf.alignment.ppo.loss: the clipped surrogate and KL penalty by hand,
the KL weights and group advantages."""

import jax.numpy as jnp
import numpy as np
import pytest

from hetrlhf.alignment import ppo


def _np_clipped_surrogate(logp, old_logp, adv, eps):
    out = 0.0
    for b in range(logp.shape[0]):
        for t in range(logp.shape[1]):
            ratio = np.exp(logp[b, t] - old_logp[b, t])
            clipped = min(max(ratio, 1 - eps), 1 + eps)
            out += min(ratio * adv[b], clipped * adv[b])
    return -out / logp.size


def test_clipped_surrogate_matches_hand_computed_numpy():
    logp = np.log(np.array([[0.5, 0.2], [0.1, 0.9], [0.3, 0.3]]))
    old_logp = np.log(np.array([[0.25, 0.2], [0.2, 0.5], [0.35, 0.3]]))
    adv = np.array([1.5, -2.0, 0.7])
    loss, aux = ppo.ppo_loss(
        jnp.asarray(logp),
        jnp.asarray(old_logp),
        jnp.asarray(old_logp),
        jnp.asarray(adv),
        jnp.ones(3),
        clip_eps=0.2,
        beta=0.0,
    )
    # Row 0 token 0: ratio 2 -> clipped to 1.2 (A > 0); row 1 token 0: ratio 0.5 with
    # A < 0 -> min(−1, −1.6) = −1.6 (clipped at 0.8); row 1 token 1: ratio 1.8, A < 0 ->
    # unclipped −3.6.
    expected = -(1.2 * 1.5 + 1.0 * 1.5 - 1.6 - 3.6 + 0.7 * 0.3 / 0.35 + 0.7) / 6
    np.testing.assert_allclose(loss, expected, rtol=1e-12)
    np.testing.assert_allclose(loss, _np_clipped_surrogate(logp, old_logp, adv, 0.2))
    np.testing.assert_allclose(aux["clip_frac"], 3 / 6)


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_weighted_kl_penalty_matches_hand_computed(estimator):
    rng = np.random.default_rng(0)
    logp, old_logp, ref_logp = np.log(rng.uniform(0.05, 0.9, size=(3, 4, 2)))
    weights = np.array([0.5, 2.0, 1.0, 0.5])
    ratio = np.exp(logp - old_logp)
    u = np.exp(ref_logp - logp)
    per_tok = ratio * (np.log(1 / u) if estimator == "k1" else u - 1 - np.log(u))
    expected = np.mean(weights * per_tok.sum(axis=1))
    _, aux = ppo.ppo_loss(
        *map(jnp.asarray, (logp, old_logp, ref_logp)),
        jnp.zeros(4),
        jnp.asarray(weights),
        clip_eps=0.2,
        beta=1.0,
        kl_estimator=estimator,
    )
    np.testing.assert_allclose(aux["kl_penalty"], expected, rtol=1e-12)


def test_k1_penalty_expectation_is_variance_weighted_kl():
    """E_{a~π_old}[w ρ log(π/π_ref)] = Σ_a π(a) w(a) log(π(a)/π_ref(a)) (B2's penalty)."""
    pi = np.array([0.5, 0.3, 0.2])
    pi_old = np.array([0.2, 0.5, 0.3])
    pi_ref = np.array([0.4, 0.4, 0.2])
    w = np.array([2.0, 0.5, 1.0])
    # Enumerate the actions, each repeated in proportion to π_old (a 10-sample batch).
    counts = (pi_old * 10).astype(int)
    acts = np.repeat(np.arange(3), counts)
    col = lambda p: jnp.asarray(np.log(p[acts])[:, None])
    _, aux = ppo.ppo_loss(
        col(pi),
        col(pi_old),
        col(pi_ref),
        jnp.zeros(10),
        jnp.asarray(w[acts]),
        clip_eps=0.2,
        beta=1.0,
        kl_estimator="k1",
    )
    np.testing.assert_allclose(aux["kl_penalty"], np.sum(pi * w * np.log(pi / pi_ref)))


def test_kl_weights():
    var = jnp.array([1.0, 3.0, 0.0, 4.0])
    np.testing.assert_allclose(ppo.kl_weights(var, True), [0.5, 1.5, 0.0, 2.0])
    np.testing.assert_allclose(ppo.kl_weights(var, False), np.ones(4))
    np.testing.assert_allclose(ppo.kl_weights(jnp.full(4, 7.3), True), np.ones(4))
    np.testing.assert_allclose(ppo.kl_weights(jnp.zeros(4), True), np.ones(4))
    # Raw σ² (the k1-in-reward penalty) and λ_min scaling (every weight >= 1).
    np.testing.assert_allclose(ppo.kl_weights(var, True, "kl_reward"), var)
    pos = jnp.array([0.5, 2.0, 1.0])
    np.testing.assert_allclose(ppo.kl_weights(pos, True, "lambda_min"), [1, 4, 2])
    np.testing.assert_allclose(ppo.kl_weights(var, True, "lambda_min"), np.ones(4))
    for penalty in ("kl_reward", "lambda_min"):
        np.testing.assert_allclose(ppo.kl_weights(var, False, penalty), np.ones(4))
    with pytest.raises(ValueError, match="penalty"):
        ppo.kl_weights(var, True, "k2")


def test_group_advantages():
    r = np.array([1.0, 2.0, 6.0, -1.0, 0.0, 4.0])
    np.testing.assert_allclose(
        ppo.group_advantages(jnp.asarray(r), 3), [-2, -1, 3, -2, -1, 3]
    )
