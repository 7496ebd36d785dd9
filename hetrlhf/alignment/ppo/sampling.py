"""Categorical sampling and cheap random words for the PPO learner (CPU tricks).

On a CPU every separate ``jax.random`` call is a small rolled threefry loop, and under a
``vmap`` over policies the per-call cost dominated a PPO update. So the learner draws
ONE block of uint32 words per update and turns them into what it needs here: prompt
indices (``uniform_index``), uniforms on [0, 1) (``unit_uniform``), minibatch shuffles
(``stable_argsort``), and categorical draws by inverse CDF (``inverse_cdf``: one uniform
per draw instead of N Gumbel words).
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

__all__ = [
    "categorical",
    "inverse_cdf",
    "stable_argsort",
    "uniform_index",
    "unit_uniform",
]


def categorical(key: jax.Array, logits: jax.Array) -> jax.Array:
    """Draws from softmax(logits) by inverse CDF: ONE uniform per draw (our sampler).

    a = #{j < N − 1 : F_j ≤ u·F_{N−1}} with F the cumulative sums of exp(logits − max)
    and u ~ Uniform[0, 1), i.e. the smallest j with u < F_j / F_{N−1}. The same
    distribution as ``jax.random.categorical`` (other draws), from 1 random word per
    row instead of N Gumbel words: on a CPU the threefry hashing of the Gumbel draws
    dominated a vmapped PPO update.

    Args:
      key: PRNG key.
      logits: [..., N] finite unnormalised log-probabilities.

    Returns:
      [...] int32 draws in 0..N−1.
    """
    if jnp.ndim(logits) < 1:
        raise ValueError(f"logits must have a category axis, got shape {logits.shape}")
    u = jax.random.uniform(key, logits.shape[:-1] + (1,), logits.dtype)
    return inverse_cdf(u, logits)[..., 0]


def inverse_cdf(u: jax.Array, logits: jax.Array) -> jax.Array:
    """Categories of softmax(logits) at cumulative probabilities u ∈ [0, 1).

    G draws share one distribution (the G responses of a prompt): its cumulative sums
    are formed once.

    Args:
      u: [..., G] uniforms.
      logits: [..., N] finite logits (the same leading axes).

    Returns:
      [..., G] int32 categories.
    """
    chex.assert_equal_shape_prefix([u, logits], u.ndim - 1)
    chex.assert_rank(logits, u.ndim)
    n = logits.shape[-1]
    w = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))
    # Cumulative sums as a matmul with a triangular 0/1 matrix: a tiny dot is cheaper
    # than a small-axis scan (reduce-window) on XLA:CPU.
    cdf = w @ jnp.triu(jnp.ones((n, n), w.dtype))
    below = cdf[..., None, :-1] <= (u * cdf[..., -1:])[..., None]
    return jnp.sum(below, axis=-1, dtype=jnp.int32)


def unit_uniform(bits: jax.Array, dtype) -> jax.Array:
    """Uniforms on [0, 1) from uint32 words: the top 24 bits, k·2⁻²⁴ (exact in float32)."""
    return (bits >> 8).astype(dtype) * (2.0**-24)


def uniform_index(bits: jax.Array, n: int) -> jax.Array:
    """⌊k·n/2²⁴⌋ ∈ 0..n−1 with k the top 24 bits of ``bits`` (exact integer arithmetic).

    Exactly uniform when n divides 2²⁴; otherwise each index has probability
    ⌊2²⁴/n⌋/2²⁴ or ⌈2²⁴/n⌉/2²⁴ (relative error < n/2²⁴). k·n is formed from two
    12-bit halves of k so that nothing overflows 32 bits for n < 2²⁰ (a float32 product
    u·n would round across integers for some k when n is not a power of 2).

    Args:
      bits: [...] uint32 words.
      n: a Python int, 1 ≤ n < 2²⁰ (``make_learner`` checks ``task.num_prompts``).

    Returns:
      [...] int32 indices.
    """
    k = bits >> 8
    z = (k >> 12) * jnp.uint32(n) + (((k & 0xFFF) * jnp.uint32(n)) >> 12)
    return (z >> 12).astype(jnp.int32)


def stable_argsort(keys: jax.Array) -> jax.Array:
    """``np.argsort(keys, kind="stable")`` of a small [n] uint32 vector, without a sort.

    XLA:CPU's sort is slow (~0.1 µs per element, no faster per element under ``vmap``),
    so for n ≤ 256 the stable ascending ranks are computed from an n×n comparison
    (vectorised) and inverted by one scatter; larger n use ``jnp.argsort``.

    Args:
      keys: [n] uint32 sort keys.

    Returns:
      [n] int32 permutation: the indices of ``keys`` in ascending (stable) order.
    """
    chex.assert_rank(keys, 1)
    n = keys.shape[0]
    if n > 256:
        return jnp.argsort(keys, stable=True).astype(jnp.int32)
    i = jnp.arange(n, dtype=jnp.int32)
    before = (keys[None, :] < keys[:, None]) | (
        (keys[None, :] == keys[:, None]) & (i[None, :] < i[:, None])
    )
    rank = jnp.sum(before, axis=1, dtype=jnp.int32)
    return jnp.zeros((n,), jnp.int32).at[rank].set(i, unique_indices=True)
