"""Variance-aware PPO (Banerjee, Saha & Gopalan 2025, §B2) — our formulation.

The paper's exact PPO objectives (its eqs. (5)–(6)) are not available to us; the
objective below is OUR formulation of "PPO whose per-sample KL penalty to the reference
policy is weighted by the reward variance". For a batch of prompts s and responses a
sampled from the behaviour policy π_old, with a reward estimate ``RewardEstimate(r̂, σ²)``:

    ρ        = π_θ(a|s) / π_old(a|s)                          (per token)
    L_clip   = −E[ min(ρ A, clip(ρ, 1 − ε, 1 + ε) A) ]        (clipped surrogate)
    L_KL     = E[ w(s, a) · KL_sample(s, a) ]
    L(θ)     = L_clip + β · L_KL  (+ c_v E[(V(s) − r̂)²] with a value baseline)

    w(s, a)  = σ²(s, a) / mean_batch(σ²)   variance-aware
    w(s, a)  = 1                            vanilla

so the penalty grows where the reward is uncertain; vanilla PPO is the SAME kernel with
unit weights (a traced boolean switch, so vanilla and variance-aware policies can be
trained side by side in one ``vmap``). The advantage is A = r̂ − baseline, with the
group baseline (the mean reward of the G responses drawn for the same prompt) or a
learned value V(s). The per-sample KL is importance weighted so that its expectation
under π_old is a divergence of π_θ itself (not only at π_θ = π_old):

    "k1": KL_sample = Σ_t ρ_t log(π_θ / π_ref)_t;
          E[w·KL_sample] = Σ_a π_θ(a) w(a) log(π_θ(a)/π_ref(a)), exactly B2's
          variance-weighted penalty (for one-token actions).
    "k3": KL_sample = Σ_t ρ_t (u_t − 1 − log u_t), u = π_ref / π_θ (Schulman's k3
          estimator; ≥ 0 per sample, 0 iff π_θ = π_ref on the sample).

For sequences the per-token ratio ρ_t is the usual PPO approximation of the prefix
importance weight (exact for single-token actions).

Noisy reward model. Each policy is trained against its own realisation of the reward
model, r̂ = mean + sqrt(var)·z, with z drawn once per (policy, prompt, response) from a
standard normal ("gaussian") or from Uniform(−√3, √3) ("uniform": interval rewards,
r̂ ~ Uniform(lo, hi)); the variance passed to the KL weights is the estimate's ``var``.
This is the noise model r̂ = r + ε, ε ~ N(0, diag σ²) of §B2, again our formulation of
the experiment.

A whole run is ``make_train(config, task, reward_fn) -> train(key, variance_aware,
reward_params)`` (purejaxrl style, ``lax.scan`` over updates), so

    train_v = jax.jit(jax.vmap(train, in_axes=(0, 0, None)))
    out = train_v(keys, variance_aware_flags, reward_params)

trains e.g. 80 vanilla and 80 variance-aware policies in one jitted program.

One update: draw num_prompts prompts uniformly (with replacement), G responses per
prompt from π_old, score them, then num_epochs passes of num_minibatches Adam steps.
The batch is kept in prompt groups ([num_prompts, G, ...]): a prompt's logits are formed
once for its G responses, and each minibatch is a random set of whole prompt groups
(as in GRPO; each epoch reshuffles the groups). All the randomness of an update comes
from ONE draw of uint32 words (prompt indices ⌊k·P/2²⁴⌋ and sampling uniforms k/2²⁴ from
their top 24 bits k, shuffles from stable argsorts of fresh words): on a CPU every separate
``jax.random`` call is a small rolled threefry loop, and the per-call cost dominated.

Two tasks ship with a Flax policy each (any module with the same call signature works):
``CandidateTask`` (softmax over N candidate responses per prompt, linear in their
features) and ``TokenTask`` (a tiny causal transformer generating short token
sequences, rewarded per sequence through the sequence's features). Both draw actions
by inverse CDF (``categorical``: one uniform per candidate or token), which on a CPU
is far cheaper under ``vmap`` than ``jax.random.categorical``'s Gumbel draws. A task
satisfies the ``Task`` protocol (``tasks.Task``); a task whose ``all_responses()`` is
not None (``CandidateTask``) lets the learner form the reference log-probabilities and
features of all responses once and evaluate the reward model once per update on all of
them instead of per policy.

Modules: ``loss`` (PPO loss, KL estimators, KL weights, advantages), ``rewards``
(reward sources), ``sampling`` (categorical draws and cheap random words), ``tasks``
(the ``Task`` protocol and the two tasks), ``learner`` (``PPOConfig``, the
``(init, update)`` learner, ``make_train``).
"""

from hetrlhf.ppo.learner import (
    Metrics,
    PolicyEval,
    PPOConfig,
    PPOLearner,
    TrainOutput,
    TrainState,
    evaluation_key,
    make_learner,
    make_train,
    run_updates,
)
from hetrlhf.ppo.loss import (
    adaptive_beta,
    group_advantages,
    kl_in_reward,
    kl_weights,
    ppo_loss,
)
from hetrlhf.ppo.rewards import (
    judge_intervals,
    per_policy_noise,
    per_query_uniform,
)
from hetrlhf.ppo.sampling import categorical
from hetrlhf.ppo.tasks import (
    CandidatePolicy,
    CandidateTask,
    Task,
    TinyTransformer,
    TokenTask,
)

__all__ = [
    "CandidatePolicy",
    "CandidateTask",
    "Metrics",
    "PPOConfig",
    "PPOLearner",
    "PolicyEval",
    "Task",
    "TinyTransformer",
    "TokenTask",
    "TrainOutput",
    "TrainState",
    "adaptive_beta",
    "categorical",
    "evaluation_key",
    "group_advantages",
    "judge_intervals",
    "kl_in_reward",
    "kl_weights",
    "make_learner",
    "make_train",
    "per_policy_noise",
    "per_query_uniform",
    "ppo_loss",
    "run_updates",
]
