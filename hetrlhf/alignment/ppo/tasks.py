"""PPO tasks: a prompt set, a Flax policy, features of responses, the gold reward.

Every task satisfies the ``Task`` protocol (the learner checks it): ``CandidateTask``
(softmax over N candidate responses per prompt, linear in their features) and
``TokenTask`` (a tiny causal transformer generating short token sequences, rewarded per
sequence through the sequence's features). Both draw actions by inverse CDF
(``sampling.inverse_cdf``: one uniform per candidate or token).

Sampling temperature τ: a task's policy IS the tempered distribution softmax(logits/τ)
everywhere — rollouts, PPO ratios, the KL to the (equally tempered) reference and the
evaluation — as TRL's newer on-policy trainers divide the logits by the generation
temperature. Paper B generates at temperature 1.5 (DESIGN.md §B3); whether its PPO
ratios and KL used tempered log-probabilities is not stated, so this reading is ours.
τ = 1 gives the untempered policy bit for bit.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from hetrlhf.alignment.ppo.sampling import inverse_cdf

__all__ = ["CandidatePolicy", "CandidateTask", "Task", "TinyTransformer", "TokenTask"]


@runtime_checkable
class Task(Protocol):
    """What the PPO learner needs of a task (shapes: B prompts, G responses each, T
    tokens per response, d features).

    Attributes:
      num_prompts: P, the size of the prompt set (prompt ids are 0..P−1).
      seq_len: T (1 for single actions).
    """

    num_prompts: int
    seq_len: int

    def init_params(self, key: jax.Array) -> Any:
        """Policy (and value) parameters at ``key``."""

    def sample(self, key: jax.Array, params: Any, prompt_ids: jax.Array) -> jax.Array:
        """One response per prompt: actions [B, T] int32."""

    def sample_uniform(
        self, u: jax.Array, params: Any, prompt_ids: jax.Array
    ) -> jax.Array:
        """G responses per prompt at the uniforms u [B, G, T]: actions [B, G, T] int32."""

    def evaluate(
        self, params: Any, prompt_ids: jax.Array, actions: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """(log π(a_t | s, a_<t) [B, G, T], V(s) [B]) of actions [B, G, T]."""

    def response_features(self, prompt_ids: jax.Array, actions: jax.Array) -> jax.Array:
        """φ(s, a) [B, ..., d] of actions [B, ..., T] (prompt_ids [B])."""

    def action_ids(self, actions: jax.Array) -> jax.Array:
        """Response codes [...] of actions [..., T], unique per response of a prompt."""

    def gold_reward(self, phi: jax.Array) -> jax.Array:
        """Gold reward r*(s, a) [...] of features φ [..., d]."""

    def expected_gold(self, key: jax.Array, params: Any) -> jax.Array:
        """[] E_{s uniform, a ~ π(·|s)}[r*(s, a)] (exact or Monte Carlo at ``key``)."""

    def policy_kl(self, key: jax.Array, params: Any, ref_params: Any) -> jax.Array:
        """[] E_{s uniform} KL(π(·|s) ‖ π_ref(·|s)) (exact or Monte Carlo at ``key``)."""

    def all_responses(self) -> tuple[jax.Array, jax.Array] | None:
        """Every response, (prompt_ids [P], actions [P, R, T]) with action codes 0..R−1,
        when the response set is small and finite; None otherwise. With it the learner
        forms the reference log-probabilities and features of all responses once and
        evaluates the reward model once per update on all of them."""


def _check_temperature(temperature) -> None:
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, (int, float))
        or not 0 < temperature < float("inf")
    ):
        raise ValueError(
            f"temperature must be a finite number > 0, got {temperature!r}"
        )


class CandidatePolicy(nn.Module):
    """Softmax policy over the N candidate responses of a prompt, linear in features.

    π(a_j | s) ∝ exp(wᵀφ(s, a_j)); value V(s) = vᵀ mean_j φ(s, a_j) + b.

    Attributes:
      init_scale: standard deviation of the initial w (the reference policy's
        sharpness when the reference is the initialisation).
    """

    init_scale: float = 1.0

    @nn.compact
    def __call__(self, features: jax.Array) -> tuple[jax.Array, jax.Array]:
        """features [N, d] -> (logits [N], value [])."""
        logits = nn.Dense(
            1, use_bias=False, kernel_init=nn.initializers.normal(self.init_scale)
        )(features)[..., 0]
        value = nn.Dense(1, kernel_init=nn.initializers.zeros)(jnp.mean(features, -2))[
            0
        ]
        return logits, value


class CandidateTask:
    """Prompts with N fixed candidate responses each (a contextual bandit).

    Args:
      features: [P, N, d] features φ(s_p, a_j) of every candidate of every prompt.
      gold_theta: [d] gold reward r*(s, a) = θ*ᵀφ(s, a) (used for evaluation only).
      policy: a Flax module mapping [N, d] candidate features to (logits [N], value []).
      temperature: τ > 0, the policy is softmax(logits/τ) (module doc).
    """

    def __init__(
        self,
        features,
        gold_theta,
        policy: nn.Module | None = None,
        temperature: float = 1.0,
    ):
        _check_temperature(temperature)
        features = jnp.asarray(features)
        gold_theta = jnp.asarray(gold_theta)
        if features.ndim != 3:
            raise ValueError(f"features must be [P, N, d], got shape {features.shape}")
        if gold_theta.shape != features.shape[-1:]:
            raise ValueError(
                f"gold_theta must have shape [d] = ({features.shape[-1]},), got {gold_theta.shape}"
            )
        if features.shape[1] < 2:
            raise ValueError(
                f"need N >= 2 candidates per prompt, got {features.shape[1]}"
            )
        if not (
            bool(jnp.all(jnp.isfinite(features)))
            and bool(jnp.all(jnp.isfinite(gold_theta)))
        ):
            raise ValueError("features and gold_theta must be finite")
        self.features = features
        self.gold_theta = gold_theta
        self.policy = CandidatePolicy() if policy is None else policy
        self.temperature = float(temperature)
        self.num_prompts = features.shape[0]
        self.seq_len = 1

    def init_params(self, key: jax.Array) -> Any:
        return self.policy.init(key, self.features[0])

    def _forward(self, params, prompt_ids):
        """(logits [B, N], value [B]) of the policy at the prompts ``prompt_ids``.

        When the batch covers a good share of the prompt set, the policy is applied to
        EVERY prompt's candidates and the batch's rows are gathered afterwards: the
        candidate features are then shared, not batched, so under a ``vmap`` over
        policies the forward pass is one large matmul (features [P·N, d] against the
        M policies' weights) instead of M small batched ones, and its gradient a
        single [M, P·N]·[P·N, d] contraction. Same values either way.
        """
        if self.num_prompts <= 4 * prompt_ids.shape[0]:
            logits, value = self._all_prompts(params)
            return logits[prompt_ids], value[prompt_ids]
        logits, value = jax.vmap(lambda p: self.policy.apply(params, self.features[p]))(
            prompt_ids
        )
        return logits / self.temperature, value

    def _all_prompts(self, params):
        """(tempered logits [P, N], value [P]) at every prompt."""
        logits, value = jax.vmap(lambda f: self.policy.apply(params, f))(self.features)
        return logits / self.temperature, value

    def sample(self, key, params, prompt_ids):
        """Draws one candidate per prompt: actions [B, 1] int32."""
        u = jax.random.uniform(key, prompt_ids.shape + (1, 1), self.features.dtype)
        return self.sample_uniform(u, params, prompt_ids)[:, 0]

    def sample_uniform(self, u, params, prompt_ids):
        """G candidates per prompt at the uniforms u [B, G, 1]: actions [B, G, 1] int32."""
        logits, _ = self._forward(params, prompt_ids)
        return inverse_cdf(u[..., 0], logits)[..., None]

    def evaluate(self, params, prompt_ids, actions):
        """(log π(a|s) [B, G, 1], V(s) [B]) of G responses per prompt, actions [B, G, 1].

        The logits of each prompt are formed once for its G responses.
        """
        logits, value = self._forward(params, prompt_ids)
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits), actions[..., 0], axis=-1)
        return logp[..., None], value

    def response_features(self, prompt_ids, actions):
        """φ(s, a) [B, ..., d] of actions [B, ..., 1] (prompt_ids [B])."""
        p = prompt_ids.reshape(prompt_ids.shape + (1,) * (actions.ndim - 2))
        return self.features[p, actions[..., 0]]

    def action_ids(self, actions):
        """Response codes [...] of actions [..., 1]: the candidate index."""
        return actions[..., 0]

    def all_responses(self):
        """Every response: (prompt_ids [P], actions [P, N, 1]), action codes 0..N−1."""
        actions = jnp.broadcast_to(
            jnp.arange(self.features.shape[1], dtype=jnp.int32)[None, :, None],
            self.features.shape[:2] + (1,),
        )
        return jnp.arange(self.num_prompts, dtype=jnp.int32), actions

    def gold_reward(self, phi):
        return phi @ self.gold_theta

    def expected_gold(self, key, params):
        """Exact E_{s uniform, a ~ π(·|s)}[r*(s, a)] over the whole prompt set."""
        del key
        probs = jax.nn.softmax(self._all_prompts(params)[0])
        return jnp.mean(jnp.sum(probs * (self.features @ self.gold_theta), axis=-1))

    def policy_kl(self, key, params, ref_params):
        """Exact mean over prompts of KL(π(·|s) ‖ π_ref(·|s)) (sums over candidates)."""
        del key
        logp = jax.nn.log_softmax(self._all_prompts(params)[0])
        ref_logp = jax.nn.log_softmax(self._all_prompts(ref_params)[0])
        return jnp.mean(jnp.sum(jnp.exp(logp) * (logp - ref_logp), axis=-1))


class TinyTransformer(nn.Module):
    """A tiny causal transformer policy over short token sequences.

    Input: a prompt token and the response tokens a_1..a_{T−1}; output: next-token
    logits for a_1..a_T and a value V(s) read at the prompt position.

    Attributes:
      num_prompts: size of the prompt vocabulary.
      vocab_size: V, size of the response vocabulary.
      seq_len: T, response length.
      embed_dim, num_heads, num_layers, mlp_dim: model sizes.
    """

    num_prompts: int
    vocab_size: int
    seq_len: int
    embed_dim: int = 32
    num_heads: int = 2
    num_layers: int = 1
    mlp_dim: int = 64

    @nn.compact
    def __call__(self, prompt_id: jax.Array, tokens: jax.Array):
        """prompt_id [], tokens [T] -> (logits [T, V], value [])."""
        chex.assert_rank([prompt_id, tokens], [0, 1])
        d = self.embed_dim
        x = jnp.concatenate(
            [
                nn.Embed(self.num_prompts, d, name="prompt_embed")(prompt_id)[None],
                nn.Embed(self.vocab_size, d, name="token_embed")(tokens[:-1]),
            ]
        )
        x = x + self.param("pos_embed", nn.initializers.normal(0.02), (self.seq_len, d))
        mask = nn.make_causal_mask(jnp.ones(self.seq_len))
        for _ in range(self.num_layers):
            h = nn.LayerNorm()(x)
            x = x + nn.MultiHeadDotProductAttention(
                num_heads=self.num_heads, qkv_features=d
            )(h, h, mask=mask)
            h = nn.LayerNorm()(x)
            x = x + nn.Dense(d)(nn.gelu(nn.Dense(self.mlp_dim)(h)))
        x = nn.LayerNorm()(x)
        logits = nn.Dense(self.vocab_size)(x)
        value = nn.Dense(1, kernel_init=nn.initializers.zeros)(x[0])[0]
        return logits, value


class TokenTask:
    """Prompts answered by short token sequences, rewarded through sequence features.

    φ(s, a) = ((1/T) Σ_t E[a_t]) ⊙ F[s]: the mean of the response tokens' feature
    vectors, modulated element-wise by the prompt's vector, so which tokens are good
    depends on the prompt. Gold reward r*(s, a) = θ*ᵀφ(s, a).

    Args:
      token_features: [V, d] E, one vector per response token.
      prompt_features: [P, d] F, one vector per prompt.
      gold_theta: [d] θ*.
      seq_len: T.
      policy: a Flax module (prompt_id [], tokens [T]) -> (logits [T, V], value []);
        a ``TinyTransformer`` by default.
      num_eval_samples: Monte Carlo responses per prompt in ``expected_gold`` and
        ``policy_kl``.
      temperature: τ > 0, the policy is softmax(logits/τ) (module doc).
    """

    def __init__(
        self,
        token_features,
        prompt_features,
        gold_theta,
        seq_len: int,
        policy: nn.Module | None = None,
        num_eval_samples: int = 64,
        temperature: float = 1.0,
    ):
        _check_temperature(temperature)
        token_features = jnp.asarray(token_features)
        prompt_features = jnp.asarray(prompt_features)
        gold_theta = jnp.asarray(gold_theta)
        if token_features.ndim != 2 or prompt_features.ndim != 2:
            raise ValueError(
                f"token_features [V, d] and prompt_features [P, d] must be 2-D, got "
                f"{token_features.shape} and {prompt_features.shape}"
            )
        d = token_features.shape[1]
        if prompt_features.shape[1] != d or gold_theta.shape != (d,):
            raise ValueError(
                f"prompt_features must be [P, {d}] and gold_theta [{d}], got "
                f"{prompt_features.shape} and {gold_theta.shape}"
            )
        if isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1:
            raise ValueError(f"seq_len must be an int >= 1, got {seq_len!r}")
        vocab, num_prompts = token_features.shape[0], prompt_features.shape[0]
        if vocab < 2:
            raise ValueError(f"need a vocabulary of V >= 2 tokens, got {vocab}")
        if vocab**seq_len >= 2**31:
            raise ValueError(
                f"V**T = {vocab}**{seq_len} responses do not fit an int32 code"
            )
        self.token_features = token_features
        self.prompt_features = prompt_features
        self.gold_theta = gold_theta
        self.seq_len = seq_len
        self.vocab_size = vocab
        self.num_prompts = num_prompts
        self.num_eval_samples = num_eval_samples
        self.temperature = float(temperature)
        self.policy = (
            TinyTransformer(num_prompts=num_prompts, vocab_size=vocab, seq_len=seq_len)
            if policy is None
            else policy
        )

    def init_params(self, key):
        return self.policy.init(
            key, jnp.int32(0), jnp.zeros((self.seq_len,), jnp.int32)
        )

    def _sample_one(self, u, params, prompt_id):
        """One response: token t is the inverse-CDF draw at uniform u[t]."""

        def body(t, tokens):
            logits, _ = self._apply(params, prompt_id, tokens)
            return tokens.at[t].set(inverse_cdf(u[t, None], logits[t])[0])

        return jax.lax.fori_loop(
            0, self.seq_len, body, jnp.zeros((self.seq_len,), jnp.int32)
        )

    def _apply(self, params, prompt_id, tokens):
        """(tempered logits [T, V], value []) of one prompt and response."""
        logits, value = self.policy.apply(params, prompt_id, tokens)
        return logits / self.temperature, value

    def sample(self, key, params, prompt_ids):
        """Autoregressive sampling: actions [B, T] int32 (one uniform per token)."""
        u = jax.random.uniform(
            key, (prompt_ids.shape[0], 1, self.seq_len), self.token_features.dtype
        )
        return self.sample_uniform(u, params, prompt_ids)[:, 0]

    def sample_uniform(self, u, params, prompt_ids):
        """G responses per prompt at the uniforms u [B, G, T]: actions [B, G, T] int32."""
        one = jax.vmap(self._sample_one, in_axes=(0, None, None))
        return jax.vmap(one, in_axes=(0, None, 0))(u, params, prompt_ids)

    def evaluate(self, params, prompt_ids, actions):
        """(log π(a_t | s, a_<t) [B, G, T], V(s) [B]) of actions [B, G, T]."""
        apply = jax.vmap(lambda p, a: self._apply(params, p, a), in_axes=(None, 0))
        logits, value = jax.vmap(apply)(prompt_ids, actions)
        logp = jnp.take_along_axis(
            jax.nn.log_softmax(logits), actions[..., None], axis=-1
        )
        # V(s) is read at the prompt position, before any response token (causal).
        return logp[..., 0], value[:, 0]

    def response_features(self, prompt_ids, actions):
        """φ(s, a) [B, ..., d] of actions [B, ..., T] (prompt_ids [B])."""
        p = prompt_ids.reshape(prompt_ids.shape + (1,) * (actions.ndim - 2))
        return jnp.mean(self.token_features[actions], axis=-2) * self.prompt_features[p]

    def action_ids(self, actions):
        """Response codes [...] of actions [..., T]: Σ_t a_t V^t."""
        powers = self.vocab_size ** jnp.arange(self.seq_len, dtype=jnp.int32)
        return jnp.sum(actions * powers, axis=-1)

    def all_responses(self) -> None:
        """None: V**T responses per prompt are too many to tabulate."""

    def gold_reward(self, phi):
        return phi @ self.gold_theta

    def expected_gold(self, key, params):
        """Monte Carlo E_{s uniform, a ~ π(·|s)}[r*(s, a)] (``num_eval_samples`` per prompt)."""
        prompt_ids = jnp.repeat(jnp.arange(self.num_prompts), self.num_eval_samples)
        actions = self.sample(key, params, prompt_ids)
        return jnp.mean(self.gold_reward(self.response_features(prompt_ids, actions)))

    def policy_kl(self, key, params, ref_params):
        """Monte Carlo E_s KL(π(·|s) ‖ π_ref(·|s)) over whole responses.

        KL of sequences = E_{a ~ π}[Σ_t KL(π(·|s, a_<t) ‖ π_ref(·|s, a_<t))]: each
        sampled prefix contributes the EXACT next-token KL over the vocabulary (a
        Rao–Blackwellised estimator: unbiased, and with less variance than the sampled
        log-ratio). ``num_eval_samples`` responses per prompt.
        """
        prompt_ids = jnp.repeat(jnp.arange(self.num_prompts), self.num_eval_samples)
        actions = self.sample(key, params, prompt_ids)

        def logp(p):
            logits, _ = jax.vmap(lambda s, a: self._apply(p, s, a))(prompt_ids, actions)
            return jax.nn.log_softmax(logits)

        lp, ref = logp(params), logp(ref_params)
        return jnp.mean(jnp.sum(jnp.exp(lp) * (lp - ref), axis=(-2, -1)))
