"""Config of the bandit study (Banerjee, Saha & Gopalan 2025, §2 and Figures 3–4).

Variance-aware vs vanilla trust-region steps on K-armed bandits with a noisy reward
model r̂ ~ N(r, diag(σ²)): (a) a 3-arm example, Monte Carlo risk vs the closed form;
(b) many random instances with low vs high spread of the arm variances. The
constants are our design (the paper's exact simulation constants are not available to us).

Run:
  python -m experiments.bandit --config configs/bandit.py
  python -m experiments.bandit --config configs/bandit.py --config.preset=full
  python -m experiments.bandit --config configs/bandit.py --config.heterogeneity.num_arms=10
"""

import ml_collections

# Fields set by each preset ("default" is the config below, ≈ 10 s on a 2-core CPU).
PRESETS = {
    "full": {
        "example.num_draws": 2_000_000,
        "heterogeneity.num_instances": 20_000,
        "heterogeneity.num_draws": 500,
    },
}


def get_config():
    config = ml_collections.ConfigDict()
    # "default" (small, about ten seconds on a laptop CPU) or "full" (full size; our constants).
    config.preset = "default"
    # Seed of jax.random.key; the whole study is reproducible from it.
    config.seed = 0
    # Output directory for results.json, results.md and the PNGs.
    config.results_dir = "results/bandit"
    # Squared radius ε of the vanilla trust region ‖π − π₀‖² <= ε; the variance-aware
    # ellipsoid uses ε′ = λ_min(Σ)·ε. π₀ is uniform, and √ε <= 1/K keeps π₀ + δ a
    # distribution. The risks do not depend on ε (only the step length does).
    config.eps = 0.01

    # (a) The 3-arm example.
    config.example = ml_collections.ConfigDict()
    # True rewards r of the three arms: arm 1 is best, arms 2 and 3 are close.
    config.example.reward = (0.6, 0.3, 0.2)
    # Reward-model noise variances σ²: arm 3's reward estimate is very unreliable.
    config.example.var = (0.1, 0.1, 4.0)
    # Number of noise draws r̂ ~ N(r, Σ) (vmapped).
    config.example.num_draws = 200_000
    # β of the KL-regularised policies (vanilla Gibbs, Sharpe tilt, variance-penalised)
    # evaluated by Monte Carlo alongside the trust-region steps.
    config.example.beta = 0.5

    # (b) Low vs high variance heterogeneity over random instances.
    config.heterogeneity = ml_collections.ConfigDict()
    # Number of arms K per instance.
    config.heterogeneity.num_arms = 5
    # Number of random bandit instances per heterogeneity level (vmapped).
    config.heterogeneity.num_instances = 2000
    # Noise draws r̂ per instance (vmapped), for the improvement histograms and the
    # empirical risk.
    config.heterogeneity.num_draws = 200
    # True rewards r ~ N(0, reward_scale² I_K).
    config.heterogeneity.reward_scale = 1.0
    # log σ²(a) = mean_log_var + spread · u(a), u(a) ~ Uniform(−1, 1): the geometric
    # mean variance is exp(mean_log_var) at every heterogeneity level.
    config.heterogeneity.mean_log_var = 0.0
    # Names of the heterogeneity levels, one per entry of ``log_spreads``.
    config.heterogeneity.level_names = ("low", "high")
    # Spread of log σ² at each level (σ² within a factor e^{±spread} of the mean).
    config.heterogeneity.log_spreads = (0.25, 2.5)
    # Constrain steps to 1ᵀδ = 0 (π stays a distribution).
    config.heterogeneity.simplex = True
    # Number of histogram bins in the figures.
    config.heterogeneity.num_bins = 60
    return config
