"""Variance-aware PPO (Banerjee, Saha & Gopalan 2025; DESIGN.md §B2–§B3).

Paper B's PPO objectives (its eqs. (5)–(6)) are not available to us (DESIGN.md §B3), so
the objective is a stated choice. For prompts s and responses a sampled from the
behaviour policy π_old, with a reward estimate ``RewardEstimate(r̂, σ²)``:

    ρ        = π_θ(a|s) / π_old(a|s)                          (per token)
    L_clip   = −E[ min(ρ A, clip(ρ, 1 − ε, 1 + ε) A) ]        (clipped surrogate)

and a KL penalty to the reference policy weighted by w(s, a) (variance-aware) or 1
(vanilla) in one of three forms (``PPOConfig.penalty``, ``loss.PENALTIES``):

    "kl_reward"  R = r̂ − β·w·Σ_t log(π_old/π_ref)_t, w = σ² (raw): TRL's "kl" penalty
                 inside the reward, σ²-weighted — DESIGN.md §B3's most plausible
                 reading of paper B (advantages A from R; no KL term in the loss);
    "mean_one"   L = L_clip + β·E[w·KL_sample], w = σ²/mean_batch(σ²) (ours: a weighted
                 trust region with the same average weight in both arms);
    "lambda_min" the same with w = σ²/min_batch(σ²) ≥ 1 (the scaling of
                 ``hetrlhf.alignment.policy.variance_aware_step``).

In the loss forms the per-sample KL is importance weighted ("k1": Σ_t ρ_t log(π_θ/π_ref),
whose expectation under π_old is Σ_a π_θ(a) w(a) log(π_θ(a)/π_ref(a)), the
variance-weighted penalty of §B2; "k3": Σ_t ρ_t (u_t − 1 − log u_t), u = π_ref/π_θ).
Vanilla PPO is the SAME kernel with unit weights (a traced boolean switch, so both arms
train side by side in one ``vmap``). A = R − baseline, with the group baseline (mean
reward of the G responses drawn for the same prompt) or a learned value V(s).

β per policy (``train(key, variance_aware, reward_params, beta)``): fixed, or adapted
after every update by the controller of Ziegler et al. (2019) as TRL implements it
(``loss.adaptive_beta``); ``runs.calibrate_betas`` searches per-arm fixed β that give
both arms the same KL(π ‖ π_ref).

Reward sources (``rewards``, ``world``): how a query observes the estimate is
``PPOConfig.reward_noise`` — "none" (deterministic, shared by every policy: paper B's
ensemble protocol), "per_query" (a fresh uniform draw from a judge's interval on every
query: paper B's prompted protocol), "per_policy_*" (one fixed realisation per policy of
the theory's noise model: our design).

A whole run is ``make_train(config, task, reward_fn) -> train(key, variance_aware,
reward_params, beta)`` (purejaxrl style, ``lax.scan`` over updates), so

    train_v = jax.jit(jax.vmap(train, in_axes=(0, 0, None, 0)))
    out = train_v(keys, variance_aware_flags, reward_params, betas)

trains e.g. 80 vanilla and 80 variance-aware policies in one jitted program; each
policy's run and final evaluation (``PolicyEval``: gold of one sampled response per
prompt, expected gold, KL to π_ref) are functions of its own key.

One update: draw num_prompts prompts uniformly (with replacement), G responses per
prompt from π_old, score them, then num_epochs passes of num_minibatches Adam steps.
The batch is kept in prompt groups ([num_prompts, G, ...]): a prompt's logits are formed
once for its G responses, and each minibatch is a random set of whole prompt groups
(as in GRPO; each epoch reshuffles the groups). All the randomness of an update comes
from ONE draw of uint32 words (prompt indices ⌊k·P/2²⁴⌋ and sampling uniforms k/2²⁴ from
their top 24 bits k, shuffles from stable argsorts of fresh words, per-query reward
uniforms): on a CPU every separate ``jax.random`` call is a small rolled threefry loop,
and the per-call cost dominated.

Two tasks ship with a Flax policy each (any module with the same call signature works):
``CandidateTask`` (softmax over N candidate responses per prompt, linear in their
features) and ``TokenTask`` (a tiny causal transformer generating short token
sequences, rewarded per sequence through the sequence's features), both optionally
sampled at a temperature. Both draw actions by inverse CDF (``categorical``: one
uniform per candidate or token), which on a CPU is far cheaper under ``vmap`` than
``jax.random.categorical``'s Gumbel draws. A task satisfies the ``Task`` protocol; a
task whose ``all_responses()`` is not None (``CandidateTask``) lets the learner form
the reference log-probabilities and features of all responses once and evaluate the
reward model once per update on all of them instead of per policy.

Modules: ``loss`` (PPO loss, KL estimators, penalty weights, the KL-in-reward form, the
adaptive controller), ``rewards`` (how a source is observed; the simulated judge;
tempering), ``sampling`` (categorical draws and cheap random words), ``tasks`` (the
``Task`` protocol and the two tasks), ``learner`` (``PPOConfig``, the ``(init,
update)`` learner, ``make_train``), ``world`` (the study's simulated world and reward
sources), ``runs`` (many policies per program, checkpointed; reference runs; β
calibration), ``arms`` (the tests comparing the two arms), ``report`` (paper B's
Tables 1–4 and Figs. 5–6 analogues).
"""

from hetrlhf.alignment.ppo.learner import (
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
from hetrlhf.alignment.ppo.loss import (
    adaptive_beta,
    group_advantages,
    kl_in_reward,
    kl_weights,
    ppo_loss,
)
from hetrlhf.alignment.ppo.rewards import (
    judge_intervals,
    per_policy_noise,
    per_query_uniform,
)
from hetrlhf.alignment.ppo.sampling import categorical
from hetrlhf.alignment.ppo.tasks import (
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
