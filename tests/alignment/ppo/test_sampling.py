"""Tests of hetrlhf.alignment.ppo.sampling: sort-free argsort, the 24-bit uniform grid,
inverse-CDF and categorical draws, and the tasks' samples against their likelihoods
(chi-square)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from hetrlhf.alignment import ppo
from hetrlhf.alignment.ppo import sampling


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


@pytest.mark.slow  # ~9 s on the 2-core CI machine
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
