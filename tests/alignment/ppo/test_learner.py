"""Tests of hetrlhf.alignment.ppo: hand-computed losses, closed forms, Monte Carlo, vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hetrlhf.alignment import ensemble, ppo
from hetrlhf.alignment.ppo import sampling
from hetrlhf.types import RewardEstimate


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


@pytest.mark.parametrize(
    "noise, correlation", [("gaussian", 1.0), ("gaussian", 0.3), ("uniform", 0.5)]
)
def test_per_policy_noise_moments_monte_carlo(noise, correlation):
    phi = jax.random.normal(jax.random.key(0), (6, 3))
    est = RewardEstimate(jnp.arange(6.0), jnp.array([0.5, 1.0, 2.0, 0.1, 3.0, 1.5]))
    ids = jnp.arange(6)
    keys = jax.random.split(jax.random.key(1), 20_000)
    draws = jax.vmap(
        lambda k: (
            ppo.per_policy_noise(
                k, est, phi, ids * 0, ids, noise=noise, correlation=correlation
            ).mean
        )
    )(keys)
    draws = np.asarray(draws)
    n = draws.shape[0]
    z = (draws.mean(0) - np.asarray(est.mean)) / np.sqrt(np.asarray(est.var) / n)
    assert np.all(np.abs(z) < 4.5)
    np.testing.assert_allclose(draws.var(0), est.var, rtol=0.06)
    if noise == "uniform":
        half = np.sqrt(3 * np.asarray(est.var))
        assert np.all(np.abs(draws - np.asarray(est.mean)) <= half + 1e-9)


def test_candidate_expected_gold_matches_numpy():
    feats = np.random.default_rng(0).normal(size=(4, 5, 3))
    theta = np.array([1.0, -1.0, 0.5])
    task = ppo.CandidateTask(feats, theta)
    params = task.init_params(jax.random.key(0))
    w = np.asarray(params["params"]["Dense_0"]["kernel"])[:, 0]
    logits = feats @ w
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    expected = np.mean(np.sum(probs * (feats @ theta), axis=-1))
    np.testing.assert_allclose(task.expected_gold(None, params), expected, rtol=1e-10)


def test_tiny_transformer_is_causal():
    model = ppo.TinyTransformer(num_prompts=3, vocab_size=5, seq_len=4)
    params = model.init(jax.random.key(0), jnp.int32(0), jnp.zeros(4, jnp.int32))
    a = jnp.array([1, 2, 3, 4])
    b = a.at[2].set(0)  # token 2 feeds the logits of positions 3 and later only
    apply = jax.jit(model.apply)
    la, _ = apply(params, jnp.int32(1), a)
    lb, _ = apply(params, jnp.int32(1), b)
    np.testing.assert_allclose(la[:3], lb[:3], atol=1e-12)
    assert not np.allclose(la[3], lb[3])
    assert la.shape == (4, 5)


def _candidate_setup(num_updates=20, **kwargs):
    theta = jnp.array([1.0, -0.5, 0.8])
    feats = jax.random.normal(jax.random.key(0), (16, 6, 3))
    task = ppo.CandidateTask(feats, theta)
    config = ppo.PPOConfig(
        num_updates=num_updates, num_prompts=8, group_size=4, **kwargs
    )
    return task, theta, config


@pytest.mark.parametrize(
    "penalty", ["mean_one", pytest.param("kl_reward", marks=pytest.mark.slow)]
)
def test_ppo_improves_vmap_matches_loop_and_equal_variances_give_vanilla(penalty):
    task, theta, config = _candidate_setup(num_updates=20, beta=0.01, penalty=penalty)

    def equal_var(params, phi):  # a reward source whose variances are all equal
        return RewardEstimate(phi @ params, jnp.full(phi.shape[:1], 2.0))

    train = ppo.make_train(config, task, equal_var)
    k0, k1 = jax.random.split(jax.random.key(2))
    keys = jnp.stack([k0, k0, k1, k1])
    flags = jnp.array([False, True, False, True])
    # Equal variances σ² = 2: with mean-1 weights the variance-aware run IS the
    # vanilla run; with raw σ² in the reward it is the vanilla run at β/σ² (β·w equal
    # bit for bit: dividing and multiplying by 2 is exact).
    va_beta = 0.01 if penalty == "mean_one" else 0.005
    betas = jnp.array([0.01, va_beta, 0.01, va_beta])
    out = jax.jit(jax.vmap(train, in_axes=(0, 0, None, 0)))(keys, flags, theta, betas)
    for a, b in ((0, 1), (2, 3)):
        jax.tree.map(
            lambda x, a=a, b=b: np.testing.assert_array_equal(x[a], x[b]),
            out.state.params,
        )
    # PPO on an accurate reward improves on the reference policy.
    learner = ppo.make_learner(config, task, equal_var)
    ref_gold = learner.evaluate(jax.random.key(0), learner.reference_params)
    gold = np.asarray(out.evaluation.expected_gold)
    assert np.all(gold > float(ref_gold.expected_gold) + 0.1)
    # One vmapped program = the policies trained one by one (float32: batched and
    # unbatched arithmetic differ in the last bits, which 20 updates amplify to ~2e-6
    # relative with the KL inside the advantages; hence 1e-5, was 1e-6 with the KL in
    # the loss only).
    single = jax.jit(train)(keys[2], flags[2], theta, betas[2])
    np.testing.assert_allclose(gold[2], single.evaluation.expected_gold, rtol=1e-5)
    assert out.metrics.gold.shape == (4, 20)


@pytest.mark.slow
def test_token_task_trains_under_vmap():
    d = 3
    task = ppo.TokenTask(
        jax.random.normal(jax.random.key(0), (5, d)),
        jax.random.normal(jax.random.key(1), (4, d)),
        jnp.ones(d),
        seq_len=3,
        policy=ppo.TinyTransformer(num_prompts=4, vocab_size=5, seq_len=3, embed_dim=8),
        num_eval_samples=4,
    )
    config = ppo.PPOConfig(
        num_updates=2, num_prompts=4, group_size=2, num_minibatches=2
    )
    heads = jax.random.normal(jax.random.key(2), (3, d))
    train = jax.jit(
        jax.vmap(
            ppo.make_train(config, task, ensemble.ensemble_reward), in_axes=(0, 0, None)
        )
    )
    out = train(jax.random.split(jax.random.key(3), 2), jnp.array([False, True]), heads)
    for field in out.evaluation:
        assert field.shape == (2,) and np.all(np.isfinite(field))
    actions = task.sample(
        jax.random.key(4), task.init_params(jax.random.key(0)), jnp.arange(4)
    )
    assert actions.shape == (4, 3) and actions.dtype == jnp.int32


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("num_updates", 0, "num_updates"),
        ("num_minibatches", 3, "divide"),
        ("clip_eps", 0.0, "clip_eps"),
        ("beta", float("nan"), "beta"),
        ("kl_estimator", "k2", "kl_estimator"),
        ("baseline", "none", "baseline"),
        ("reward_noise", "cauchy", "reward_noise"),
        ("noise_correlation", 1.5, "noise_correlation"),
        ("penalty", "k1", "penalty"),
        ("kl_control", "pid", "kl_control"),
        ("kl_target", 0.0, "kl_target"),
        ("num_eval_responses", 0, "num_eval_responses"),
    ],
)
def test_config_validation(field, value, match):
    task, _, config = _candidate_setup()
    with pytest.raises(ValueError, match=match):
        ppo.make_train(
            config._replace(**{field: value}), task, ensemble.ensemble_reward
        )


def test_adaptive_horizon_must_keep_beta_positive():
    """0.2·n/horizon >= 1 could flip β's sign (n = 8·4 = 32 samples per batch)."""
    task, _, config = _candidate_setup()
    bad = config._replace(kl_control="adaptive", kl_horizon=6.4)
    with pytest.raises(ValueError, match="kl_horizon"):
        ppo.make_train(bad, task, ensemble.ensemble_reward)
    ppo.make_train(bad._replace(kl_horizon=6.5), task, ensemble.ensemble_reward)


def test_task_validation():
    with pytest.raises(ValueError, match="features must be"):
        ppo.CandidateTask(np.zeros((3, 4)), np.zeros(4))
    with pytest.raises(ValueError, match="gold_theta"):
        ppo.CandidateTask(np.zeros((3, 4, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        ppo.CandidateTask(np.full((3, 4, 2), np.nan), np.zeros(2))
    with pytest.raises(ValueError, match="seq_len"):
        ppo.TokenTask(np.zeros((5, 2)), np.zeros((3, 2)), np.zeros(2), seq_len=0)
    with pytest.raises(ValueError, match="temperature"):
        ppo.CandidateTask(np.zeros((3, 4, 2)), np.zeros(2), temperature=0.0)
    with pytest.raises(TypeError, match="task must satisfy"):
        ppo.make_train(ppo.PPOConfig(), object(), ensemble.ensemble_reward)


@pytest.mark.parametrize("n", [1, 2, 7, 64, 256, 300])
def test_sort_free_argsort_equals_numpy_stable_argsort(n):
    rng = np.random.default_rng(n)
    keys = rng.integers(0, 2**32, size=(40, n), dtype=np.uint32)
    keys[:20] %= 5  # many ties: the order among equal keys must be stable
    ours = jax.jit(jax.vmap(sampling.stable_argsort))(jnp.asarray(keys))
    np.testing.assert_array_equal(ours, np.argsort(keys, axis=1, kind="stable"))


def test_unit_uniform_is_exact_24_bit_grid():
    bits = jnp.array([0, 255, 256, 2**31, 2**32 - 1], jnp.uint32)
    u = np.asarray(sampling.unit_uniform(bits, jnp.float32), np.float64)
    np.testing.assert_array_equal(u, np.array([0, 0, 1, 2**23, 2**24 - 1]) / 2**24)
    assert u.max() < 1.0


@pytest.mark.parametrize("n", [1, 7, 64, 1000, 2**20 - 3])
def test_uniform_index_hits_each_index_as_often_as_the_24_bit_grid_allows(n):
    """Every 24-bit grid point maps to ⌊k·n/2²⁴⌋ (exact integer arithmetic): the count of
    each index is ⌊2²⁴/n⌋ or ⌈2²⁴/n⌉."""
    k = np.arange(2**24, dtype=np.uint64)
    bits = jnp.asarray((k << 8) | (k & 255)).astype(jnp.uint32)  # low bits ignored
    idx = np.asarray(jax.jit(sampling.uniform_index, static_argnums=1)(bits, n))
    np.testing.assert_array_equal(idx, (k * n) >> 24)
    counts = np.bincount(idx, minlength=n)
    assert counts.min() >= 2**24 // n and counts.max() <= -(-(2**24) // n)


def test_candidate_forward_paths_agree():
    """All-prompts-then-gather (small prompt sets) = per-prompt forward (large ones)."""
    feats = jax.random.normal(jax.random.key(0), (12, 5, 3))
    task = ppo.CandidateTask(feats, jnp.ones(3))
    params = task.init_params(jax.random.key(1))
    params = jax.tree.map(lambda x: x + 0.3, params)  # non-zero value head
    ids = jnp.array([3, 3, 0, 11])  # 12 prompts <= 4 * 4: the all-prompts path
    actions = jnp.array([[0, 2], [4, 4], [2, 1], [1, 0]], jnp.int32)[..., None]
    logp, value = task.evaluate(params, ids, actions)
    assert logp.shape == (4, 2, 1) and value.shape == (4,)
    w = np.asarray(params["params"]["Dense_0"]["kernel"])[:, 0]
    logits = np.asarray(feats)[np.asarray(ids)] @ w
    ref = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    np.testing.assert_allclose(
        logp[..., 0],
        np.take_along_axis(ref, np.asarray(actions[..., 0]), 1),
        rtol=1e-10,
    )
    v = params["params"]["Dense_1"]
    ref_v = np.asarray(feats)[np.asarray(ids)].mean(1) @ np.asarray(v["kernel"])[:, 0]
    np.testing.assert_allclose(value, ref_v + float(v["bias"][0]), rtol=1e-10)
    # A batch of 2 from 12 prompts takes the per-prompt path: the same numbers.
    logp2, value2 = task.evaluate(params, ids[:2], actions[:2])
    np.testing.assert_allclose(logp2, logp[:2], rtol=1e-12)
    np.testing.assert_allclose(value2, value[:2], rtol=1e-12)
    # Features of G responses per prompt.
    np.testing.assert_array_equal(
        task.response_features(ids, actions),
        np.asarray(feats)[np.asarray(ids)[:, None], np.asarray(actions[..., 0])],
    )


class _NoTable(ppo.CandidateTask):
    """A CandidateTask whose ``all_responses()`` is None: the learner's per-sample route."""

    def __init__(self, task):
        super().__init__(task.features, task.gold_theta, task.policy)

    def all_responses(self):
        return None


@pytest.mark.parametrize(
    "baseline, noise",
    [
        ("group", "none"),
        pytest.param("value", "per_policy_gaussian", marks=pytest.mark.slow),
        pytest.param("group", "per_query", marks=pytest.mark.slow),
    ],
)
def test_response_table_route_equals_per_sample_route(baseline, noise):
    """Reference log-probs and rewards from the all-responses table (formed once) are
    the per-sample ones: the same runs."""
    task, theta, config = _candidate_setup(
        num_updates=5, baseline=baseline, reward_noise=noise
    )
    heads = theta + 0.3 * jax.random.normal(jax.random.key(7), (4, 3))
    keys = jax.random.split(jax.random.key(8), 2)
    flags = jnp.array([False, True])
    outs = [
        jax.jit(
            jax.vmap(ppo.make_train(config, t, ensemble.ensemble_reward), (0, 0, None))
        )(keys, flags, heads)
        for t in (task, _NoTable(task))
    ]
    assert _NoTable(task).all_responses() is None and task.all_responses() is not None
    for a, b in zip(jax.tree.leaves(outs[0]), jax.tree.leaves(outs[1]), strict=True):
        if jnp.issubdtype(a.dtype, jnp.floating):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def _softmax(logits):
    p = np.exp(logits - logits.max(-1, keepdims=True))
    return p / p.sum(-1, keepdims=True)


def test_inverse_cdf_matches_numpy_searchsorted():
    """The category at u is the first one whose cumulative probability exceeds u."""
    logits = np.array([[0.3, -1.0, 2.0, 0.0, -0.5], [5.0, 5.0, -3.0, 0.0, 1.0]])
    u = np.linspace(0.0, 1.0, 2001, endpoint=False)
    for row in logits:
        cdf = np.cumsum(_softmax(row))
        keep = np.min(np.abs(u[:, None] - cdf[None, :]), axis=1) > 1e-9
        # All the uniforms as G draws from one distribution (one row of logits) ...
        ours = sampling.inverse_cdf(jnp.asarray(u[keep]), jnp.asarray(row))
        # ... and as one draw from each of K copies of it.
        ours_rows = sampling.inverse_cdf(
            jnp.asarray(u[keep])[:, None], jnp.broadcast_to(row, (keep.sum(), row.size))
        )[:, 0]
        np.testing.assert_array_equal(ours_rows, ours)
        ref = np.minimum(np.searchsorted(cdf, u[keep], side="right"), row.size - 1)
        np.testing.assert_array_equal(ours, ref)


def test_categorical_frequencies_match_softmax_chi_square():
    from scipy import stats

    logits = np.array(
        [[0.3, -1.0, 2.0, 0.0, -0.5, 1.2], [1.0, 1.0, -0.7, 0.0, 0.4, 2.2]]
    )
    draws = np.asarray(
        jax.jit(ppo.categorical)(
            jax.random.key(3), jnp.broadcast_to(logits, (40_000,) + logits.shape)
        )
    )
    assert draws.dtype == np.int32 and draws.shape == (40_000, 2)
    for r in range(2):
        counts = np.bincount(draws[:, r], minlength=6)
        p = stats.chisquare(counts, 40_000 * _softmax(logits[r])).pvalue
        assert p > 1e-3, (r, counts, p)
    with pytest.raises(ValueError, match="category axis"):
        ppo.categorical(jax.random.key(0), jnp.float32(1.0))


def test_candidate_sample_frequencies_match_policy_chi_square():
    from scipy import stats

    feats = np.random.default_rng(1).normal(size=(3, 5, 2))
    task = ppo.CandidateTask(feats, np.ones(2))
    params = task.init_params(jax.random.key(2))
    w = np.asarray(params["params"]["Dense_0"]["kernel"])[:, 0]
    probs = _softmax(feats @ w)  # [3, 5], the policy written out in numpy
    n = 20_000
    prompt_ids = jnp.repeat(jnp.arange(3), n)
    actions = np.asarray(jax.jit(task.sample)(jax.random.key(4), params, prompt_ids))
    assert actions.shape == (3 * n, 1) and actions.dtype == np.int32
    for s in range(3):
        counts = np.bincount(actions[s * n : (s + 1) * n, 0], minlength=5)
        p = stats.chisquare(counts, n * probs[s]).pvalue
        assert p > 1e-3, (s, counts, p)


def test_token_sample_frequencies_match_sequence_likelihood_chi_square():
    """Autoregressive draws of T = 2 tokens match π(a1|s)·π(a2|s, a1) (chi-square)."""
    from scipy import stats

    v, t = 3, 2
    model = ppo.TinyTransformer(num_prompts=2, vocab_size=v, seq_len=t, embed_dim=8)
    task = ppo.TokenTask(
        np.eye(v), np.ones((2, v)), np.ones(v), seq_len=t, policy=model
    )
    params = task.init_params(jax.random.key(0))
    params = jax.tree.map(lambda x: 3.0 * x, params)  # a less uniform policy
    n = 5_000
    seqs = np.array([[a, b] for a in range(v) for b in range(v)], np.int32)
    apply_all = jax.jit(
        jax.vmap(lambda s, a: model.apply(params, s, a)[0], in_axes=(None, 0))
    )
    sample = jax.jit(task.sample)
    for s in range(2):
        # Exact probabilities of all V**T sequences from the model's logits.
        logits = np.asarray(apply_all(jnp.int32(s), jnp.asarray(seqs)), np.float64)
        logp = np.log(_softmax(logits))
        probs = np.exp(logp[:, 0, :][np.arange(9), seqs[:, 0]])
        probs *= np.exp(logp[:, 1, :][np.arange(9), seqs[:, 1]])
        np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-5)
        actions = np.asarray(
            sample(jax.random.key(10 + s), params, jnp.full((n,), s, jnp.int32))
        )
        counts = np.bincount(actions[:, 0] * v + actions[:, 1], minlength=v * v)
        p = stats.chisquare(counts, n * probs / probs.sum()).pvalue
        assert p > 1e-3, (s, counts, probs, p)
