"""Study `ppo`: vanilla vs variance-aware PPO per reward source (paper B's Tables 1–4).

Run:
    python -m experiments.ppo --config configs/ppo.py
    python -m experiments.ppo --config configs/ppo.py --config.preset=full
    python -m experiments.ppo --config configs/ppo.py --config.runs="('prompted:adaptive',)"
    python -m experiments.ppo --config configs/ppo.py --config.ppo.penalty=mean_one

The simulated world is ours (``hetrlhf.alignment.ppo.world``): a tiny causal transformer answers
each prompt with a short token sequence sampled at temperature 1.5 (paper B's generation
temperature), the gold reward is linear in the response's features (θ* of DESIGN.md §6),
and the policies are trained against three reward sources — the paper's two protocols
(``ensemble``: deterministic mean of a 10-head ensemble, shared by every policy;
``prompted``: a fresh uniform draw from a judge's interval on every query) and our
``per_policy_noise`` (one fixed realisation of the theory's noise model per policy).
What is the paper's and what is ours is said field by field below; DESIGN.md §B3
lists paper B's constants.
"""

import ml_collections

# Fields each preset changes ("default" is the config below). "full" has paper B's
# sizes (80 + 80 policies, 80 reference runs) with the default's world and PPO
# constants (ours), a finer β calibration and a recalibrated Table-4 sweep.
PRESETS = {
    "full": {
        "num_policies": 80,
        "num_reference_runs": 80,
        "num_segments": 4,
        "calibration.grid_size": 5,
        "sweep.exponents": (0.0, 1.0, 2.0),
        "sweep.calibrate": True,
        "transformer.num_eval_samples": 16,
    },
}


def get_config():
    config = ml_collections.ConfigDict()
    # "default" (small: all three sources in a few minutes on 2 CPU cores) or "full"
    # (paper B's 80 + 80 design and 80 reference runs); see PRESETS.
    config.preset = "default"
    # Master seed: world, reward sources, every policy and reference run derive from it.
    config.seed = 0
    # Float precision, set by the command before any array exists ("float64" or
    # "float32"; recorded in results.json). float32: policy training needs no
    # statsmodels-level standard errors.
    config.precision = "float32"
    # Output directory (results.json, results.md, PNGs, checkpoints/).
    config.results_dir = "results/ppo"
    # Runs, in order: "<source>:<KL control>". Sources (hetrlhf.alignment.ppo.world.SOURCES):
    # "ensemble" and "prompted" are paper B's protocols, "per_policy_noise" is ours.
    # KL control: "calibrated" (fixed β per arm, searched so that both arms' mean final
    # KL(π‖π_ref) hits kl.target: the methods compared at matched KL), "adaptive"
    # (Ziegler et al.'s controller as in TRL, one per policy) or "fixed"
    # (kl.fixed_betas). Paper B: fixed β calibrated to similar KL for its ensemble
    # (GPT-2) runs, the adaptive controller for its prompted runs.
    config.runs = (
        "ensemble:calibrated",
        "prompted:adaptive",
        "prompted:calibrated",
        "per_policy_noise:calibrated",
    )
    # Policies per arm (vanilla and variance-aware each); paper B trains 80.
    config.num_policies = 24
    # Runs of the untuned reference policy, evaluated like the policies (paper B: 80).
    config.num_reference_runs = 24
    # False: distinct keys per arm and per policy (independent samples; F, Welch and
    # two-proportion tests). True: policy i of both arms shares its key (paired tests
    # are added: Pitman–Morgan, paired t, McNemar).
    config.paired_keys = False
    # Significance level of the critical values.
    config.alpha = 0.05

    # ---- The simulated world (ours; hetrlhf.alignment.ppo.world).
    # "transformer" (tiny causal transformer generating token sequences) or
    # "candidates" (softmax over N candidates, linear in their features).
    config.policy = "transformer"
    # Sampling temperature τ of the policy (rollouts, ratios, KL, evaluation); paper
    # B generates at 1.5 (its top-k 50 / top-p 0.9 filters are not simulated).
    config.temperature = 1.5
    # Gold reward coefficients θ* (d = len(gold_theta)); DESIGN.md §6's θ*.
    config.gold_theta = (1.0, -0.5, 0.8, 0.3, -1.0)
    # Number of prompts; each policy is evaluated on all of them (paper B: ≈ 358).
    config.num_prompts = 128
    # Candidate responses per prompt (policy = "candidates").
    config.num_candidates = 8
    # The candidates' reference ("SFT") policy: weights alignment·θ*/‖θ*‖ + noise·N(0, I)
    # (policy = "candidates"; the transformer's reference is its random initialisation).
    config.reference_alignment = 1.0
    config.reference_noise = 0.3

    # The tiny transformer task (policy = "transformer").
    config.transformer = ml_collections.ConfigDict()
    # Response vocabulary size V and response length T.
    config.transformer.vocab_size = 8
    config.transformer.seq_len = 4
    # Model width, attention heads, layers.
    config.transformer.embed_dim = 16
    config.transformer.num_heads = 2
    config.transformer.num_layers = 1
    # Monte Carlo responses per prompt for a policy's expected gold reward and its KL
    # (diagnostics; the tables use one sampled response per prompt).
    config.transformer.num_eval_samples = 8

    # The reward ensemble (sources "ensemble" and "per_policy_noise"): K heads trained
    # on the SAME comparisons from independent initialisations, no bootstrap (paper B's
    # GPT-2 protocol); the data and the training budget are ours.
    config.ensemble = ml_collections.ConfigDict()
    # Number of heads K (paper B: 10).
    config.ensemble.num_heads = 10
    # Comparisons of random responses, labelled by the gold Bradley–Terry model.
    config.ensemble.num_comparisons = 200
    # Per-feature scale of the comparison features; a small scale is a direction the
    # preference data barely contrasts, where the heads keep their own inits.
    config.ensemble.data_scales = (1.0, 1.0, 1.0, 1.0, 0.1)
    # "sgd" (plain gradient descent: weakly contrasted directions stay near each head's
    # init) or "adam" (every head reaches the same maximum-likelihood estimate).
    config.ensemble.optimizer = "sgd"
    # Optimiser steps and step size per head.
    config.ensemble.num_steps = 500
    config.ensemble.learning_rate = 0.05
    # Resample each head's comparisons (paper B's GPT-2 heads do not).
    config.ensemble.bootstrap = False
    # Standard deviation of the heads' initialisations.
    config.ensemble.init_scale = 1.0

    # The simulated judge (source "prompted"): intervals [r* − h, r* + h] with
    # h(φ) = h0·exp(spread·uᵀφ − spread²), u a random unit vector (ours).
    config.judge = ml_collections.ConfigDict()
    # Typical half-width h0 (E[h²] = h0² for φ ~ N(0, I)).
    config.judge.h0 = 1.0
    # Log-scale spread of the half-widths (0: all equal).
    config.judge.spread = 1.0

    # Our per-policy noise source: the base source's mean and σ² plus one fixed
    # realisation of the noise per policy (hetrlhf.alignment.ppo.rewards.per_policy_noise).
    config.per_policy_noise = ml_collections.ConfigDict()
    # Base source: "ensemble" or "prompted".
    config.per_policy_noise.base = "ensemble"
    # "gaussian" (r̂ ~ N(mean, σ²)) or "uniform" (r̂ ~ U with the same moments).
    config.per_policy_noise.distribution = "gaussian"
    # Share of the noise variance that is smooth in the features (1: fully smooth).
    config.per_policy_noise.correlation = 1.0

    # ---- PPO (hetrlhf.alignment.ppo.PPOConfig). Our constants: paper B's (Tables 9–18) are
    # LLM-specific (lr ≈ 1.5e−5, batch 128, 192 steps); we keep the design, a bounded
    # number of updates on small sampled batches.
    config.ppo = ml_collections.ConfigDict()
    # Updates in the whole run (split into num_segments checkpointed segments).
    config.ppo.num_updates = 40
    # Prompts per update and responses per prompt (batch = num_prompts·group_size).
    config.ppo.num_prompts = 16
    config.ppo.group_size = 4
    # Epochs over each batch and minibatches per epoch (each minibatch: a random set of
    # num_prompts/num_minibatches whole prompt groups; must divide num_prompts).
    config.ppo.num_epochs = 2
    config.ppo.num_minibatches = 2
    # Adam step size and global gradient-norm clip.
    config.ppo.learning_rate = 0.03
    config.ppo.max_grad_norm = 1.0
    # Clipping ε of the surrogate.
    config.ppo.clip_eps = 0.2
    # Variance-aware penalty (hetrlhf.alignment.ppo.loss.PENALTIES): "kl_reward" (σ²-weighted k1
    # KL inside the reward with raw σ², DESIGN.md §B3's reading of paper B, TRL's
    # "kl"), "mean_one" (σ²/mean σ² weights on the KL in the loss) or "lambda_min"
    # (σ²/min σ² weights in the loss). See the README for the default's reason.
    config.ppo.penalty = "kl_reward"
    # KL estimator in the loss ("mean_one", "lambda_min"): "k3" or "k1".
    config.ppo.kl_estimator = "k3"
    # "group" (mean reward of the prompt's responses) or "value" baseline.
    config.ppo.baseline = "group"
    # Value-loss weight (value baseline only).
    config.ppo.value_coef = 0.5
    # Divide advantages by their batch standard deviation.
    config.ppo.normalize_advantages = False
    # Sampled responses per prompt in the evaluation (paper B: 1).
    config.ppo.num_eval_responses = 1

    # ---- KL control (see config.runs).
    config.kl = ml_collections.ConfigDict()
    # Common target KL: of the calibration (mean final KL(π‖π_ref)) and of the adaptive
    # controller (rollout KL); paper B's adaptive target is 0.7.
    config.kl.target = 0.7
    # Adaptive controller's horizon (paper B: 19) and initial β (vanilla,
    # variance-aware) (paper B: 0.3 / 0.1; which arm gets which is our reading, in the
    # order of its GPT-2 values). The controller's n is the batch size.
    config.kl.horizon = 19.0
    config.kl.adaptive_betas = (0.3, 0.1)
    # β (vanilla, variance-aware) of "fixed" (paper B's GPT-2 values, tuned for its
    # reward model's σ² scale, not ours).
    config.kl.fixed_betas = (0.2, 0.05)
    # Vanilla β at the centre of the calibration's first grid; the variance-aware
    # centre is it divided by the mean KL weight over reference responses.
    config.kl.beta = 0.3

    # β calibration ("calibrated" runs): each round trains num_policies per arm on
    # calibration keys, cycling over grid_size β values log-spaced over
    # [centre/span, centre·span], and interpolates log β in log KL over the points of
    # all rounds so far (isotonic fit); each round shrinks the span to one grid step.
    config.calibration = ml_collections.ConfigDict()
    config.calibration.grid_size = 4
    config.calibration.span = 10.0
    config.calibration.num_rounds = 2

    # Table 4 analogue (ours): narrow the spread of σ across responses by tempering,
    # σ²_s ∝ (σ²)^s at a fixed mean σ² (s = 0: all equal, s = 1: the source's own),
    # for these runs (paper B narrows its judge's reward range instead).
    config.sweep = ml_collections.ConfigDict()
    config.sweep.runs = ("prompted:calibrated",)
    config.sweep.exponents = (0.0, 1.0)
    # Recalibrate β at every exponent of a "calibrated" run (True: each row at matched
    # KL; False: the run's own β, so rows differ in KL as well).
    config.sweep.calibrate = False

    # Training is split into this many segments; the vmapped train state is saved with
    # orbax every checkpoint_every segments (0: never) and a rerun resumes from it.
    config.num_segments = 2
    config.checkpoint_every = 1
    # Resume from the latest checkpoint of an identical config if one exists.
    config.resume = True
    # Split the policy axis over all devices (jax.sharding.Mesh) when there are
    # several (e.g. XLA_FLAGS=--xla_force_host_platform_device_count=2 on a CPU).
    config.shard = True
    return config
