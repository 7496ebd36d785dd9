"""Study `ppo`: 80 vanilla vs 80 variance-aware PPO policies (Banerjee et al. Tables 1–4).

Run:
    python -m experiments.ppo --config configs/ppo.py
    python -m experiments.ppo --config configs/ppo.py --config.preset=paper
    python -m experiments.ppo --config configs/ppo.py --config.reward_source=interval
    python -m experiments.ppo --config configs/ppo.py --config.policy=transformer

Our simulation design (the paper's PPO objectives and constants are not available):
prompts with candidate responses whose features are N(0, I_d); gold reward θ*ᵀφ with the
design θ* of DESIGN.md §6; a reward estimate (mean, var) from a bootstrapped 10-head
ensemble trained on comparisons that under-cover some feature directions, or from
simulated interval ("prompted") rewards; each policy is trained against its own
realisation of the noisy reward model (see ``hetrlhf.ppo.noisy_reward``).
"""

import ml_collections

# Fields each preset changes ("default" is the config below).
PRESETS = {
    "paper": {
        "num_prompts": 256,
        "num_candidates": 16,
        "ensemble.num_comparisons": 400,
        "ppo.num_updates": 300,
        "ppo.num_prompts": 32,
        "num_segments": 6,
        "sweep.exponents": (0.0, 0.5, 1.0, 1.5, 2.0, 3.0),
        "transformer.num_eval_samples": 256,
    },
}


def get_config():
    config = ml_collections.ConfigDict()
    # "default" (small, ~1-2 min on a 2-core CPU) or "paper" (full size); see PRESETS.
    config.preset = "default"
    # Master seed: data, reward model, reference policy and every policy derive from it.
    config.seed = 0
    # Output directory (results.json, results.md, PNGs, checkpoints/).
    config.results_dir = "results/ppo"
    # Policies per method (vanilla and variance-aware each); the paper trains 80.
    config.num_policies = 80
    # "candidates" (softmax over N candidates, linear in features) or "transformer"
    # (tiny causal transformer generating token sequences).
    config.policy = "candidates"
    # "ensemble" (10-head bootstrap ensemble: mean, sample variance) or "interval"
    # (simulated judge intervals [r − h, r + h]: mean r, variance (2h)²/12).
    config.reward_source = "ensemble"
    # Gold reward coefficients θ* (d = len(gold_theta)); DESIGN.md §6's θ*.
    config.gold_theta = (1.0, -0.5, 0.8, 0.3, -1.0)
    # Number of prompts in the prompt set.
    config.num_prompts = 64
    # Candidate responses per prompt (policy = "candidates").
    config.num_candidates = 8
    # The reference ("SFT") policy for policy = "candidates": weights
    # alignment·θ*/‖θ*‖ + noise·N(0, I). For the transformer it is a random init.
    config.reference_alignment = 1.0
    config.reference_noise = 0.3
    # Realisation of the noisy reward model seen by each policy: share of its variance
    # that is smooth in the features (1: fully smooth, 0: independent per response).
    config.noise_correlation = 1.0

    # The K-head reward ensemble (reward_source = "ensemble").
    config.ensemble = ml_collections.ConfigDict()
    # Number of heads K.
    config.ensemble.num_heads = 10
    # Comparisons the ensemble is trained on (features N(0, diag(data_scales²)), labels
    # from the gold Bradley–Terry model).
    config.ensemble.num_comparisons = 200
    # Per-feature scale of the comparison data; small scales = under-covered directions,
    # where the heads disagree (heterogeneous variances). With isotropic data (all 1)
    # the variances are less heterogeneous and the two methods differ much less.
    config.ensemble.data_scales = (1.0, 1.0, 1.0, 1.0, 0.1)
    # Bootstrap each head's data (gives the ensemble its spread).
    config.ensemble.bootstrap = True
    # Adam steps and step size per head.
    config.ensemble.num_steps = 500
    config.ensemble.learning_rate = 0.05
    # Standard deviation of the heads' initialisations.
    config.ensemble.init_scale = 1.0

    # Simulated interval rewards (reward_source = "interval"): half-width
    # h(φ) = h0·exp(spread·uᵀφ − spread²) with u a fixed random unit vector, centred on
    # the gold reward.
    config.interval = ml_collections.ConfigDict()
    # Typical half-width h0 (E[h²] = h0² for φ ~ N(0, I)).
    config.interval.h0 = 3.0
    # Log-scale spread of the half-widths (0: all equal).
    config.interval.spread = 1.0

    # The tiny transformer task (policy = "transformer").
    config.transformer = ml_collections.ConfigDict()
    # Response vocabulary size V and response length T.
    config.transformer.vocab_size = 8
    config.transformer.seq_len = 4
    # Model width, attention heads, layers.
    config.transformer.embed_dim = 32
    config.transformer.num_heads = 2
    config.transformer.num_layers = 1
    # Monte Carlo responses per prompt when evaluating a policy's gold reward.
    config.transformer.num_eval_samples = 64

    # PPO hyperparameters (hetrlhf.ppo.PPOConfig).
    config.ppo = ml_collections.ConfigDict()
    # Updates in the whole run (split into num_segments checkpointed segments).
    config.ppo.num_updates = 100
    # Prompts per update and responses per prompt (batch = num_prompts·group_size).
    config.ppo.num_prompts = 16
    config.ppo.group_size = 4
    # Epochs over each batch and minibatches per epoch (each minibatch: a random set of
    # num_prompts/num_minibatches whole prompt groups; must divide num_prompts).
    config.ppo.num_epochs = 2
    config.ppo.num_minibatches = 2
    # Adam step size and global gradient-norm clip.
    config.ppo.learning_rate = 0.02
    config.ppo.max_grad_norm = 1.0
    # Clipping ε and KL coefficient β.
    config.ppo.clip_eps = 0.2
    config.ppo.beta = 0.3
    # "k3" or "k1" per-sample KL estimator (see hetrlhf.ppo).
    config.ppo.kl_estimator = "k3"
    # "group" (mean reward of the prompt's responses) or "value" baseline.
    config.ppo.baseline = "group"
    # Value-loss weight (value baseline only).
    config.ppo.value_coef = 0.5
    # Divide advantages by their batch standard deviation.
    config.ppo.normalize_advantages = False

    # Training is split into this many segments; the vmapped train state is saved with
    # orbax every checkpoint_every segments (0: never) and a rerun resumes from it.
    config.num_segments = 4
    config.checkpoint_every = 2
    # Resume from the latest checkpoint of an identical config if one exists.
    config.resume = True
    # Split the policy axis over all devices (jax.sharding.Mesh) when there are
    # several (e.g. XLA_FLAGS=--xla_force_host_platform_device_count=2 on a CPU).
    config.shard = True

    # Table 4 analogue: sweep the spread of the reward variances by tempering them,
    # σ²_s ∝ (σ²)^s rescaled to the same mean (s = 0: all equal, s = 1: the source's own).
    config.sweep = ml_collections.ConfigDict()
    # Run the sweep.
    config.sweep.enabled = True
    # Exponents s.
    config.sweep.exponents = (0.0, 0.5, 1.0, 2.0)

    # Significance level of the tests.
    config.alpha = 0.05
    return config
