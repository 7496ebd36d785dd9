"""Config of the neural-reward study: last-layer Laplace intervals on a nonlinear truth.

Comparisons are simulated with the features, covariates and rationality of a
``hetrlhf.data.simulate`` design but a nonlinear true reward (our design)

    r*(φ) = θ*ᵀφ + κ·(φ₁φ₂ + ½φ₃²),

an MLP reward r(φ) = wᵀh(φ) is trained with the heterogeneous BTL loss
(``hetrlhf.btl.neural``), and the last-layer Laplace intervals of reward differences
r(a) − r(b) at fresh response pairs are checked for coverage, next to the linear
model's Wald intervals (``hr.compare_rewards``); best-of-N and pessimistic best-of-N
with both rewards are scored by the gold reward r*. κ = 0 is the linear control.

Run:
  python -m experiments.neural --config configs/neural.py
  python -m experiments.neural --config configs/neural.py --config.preset=full
  python -m experiments.neural --config configs/neural.py --config.kappas='(1.0,)'
"""

import ml_collections

# Fields set by each preset ("default" is the config below: a few minutes on a shared
# 2-core CPU).
PRESETS = {
    "full": {
        "num_replicates": 200,
        "sizes": (500, 2000, 8000),
        "kappas": (0.0, 0.5, 1.0),
        "net.hidden": (64,),
        "train.num_steps": 1000,
    },
}


def get_config():
    config = ml_collections.ConfigDict()
    # "default" (small) or "full" (full size; our constants).
    config.preset = "default"
    # Seed of jax.random.key; the whole study is reproducible from it.
    config.seed = 0
    # Float precision, set by the command before any array exists ("float64" or
    # "float32"; recorded in results.json). float64: standard errors and intervals
    # to statsmodels' accuracy on a CPU.
    config.precision = "float64"
    # Output directory for results.json, results.md and the PNG.
    config.results_dir = "results/neural"
    # Simulation design (features φ, covariates ψ, ψ0, rationality γ*, linear part θ*):
    # a hetrlhf.data.simulate preset name plus optional Design overrides; needs d >= 3.
    config.design = ml_collections.ConfigDict({"preset": "default"})
    # Strengths κ of the nonlinear part of r*(φ) = θ*ᵀφ + κ·(φ₁φ₂ + ½φ₃²).
    config.kappas = (0.0, 0.5)
    # Numbers of training comparisons n.
    config.sizes = (500, 2000)
    # Replicated datasets (one trained network each, vmapped) per (κ, n).
    config.num_replicates = 16
    # Fresh response pairs (a, b) per replicate at which r(a) − r(b) is covered.
    config.num_test_pairs = 500
    # 1 − nominal level of the intervals and of the pBoN lower bound.
    config.alpha = 0.05
    # Replicates per jitted, vmapped chunk (one checkpoint per chunk).
    config.chunk_size = 16
    # Save each finished chunk under <results_dir>/checkpoints/kappa<κ>_n<n> and resume
    # from it.
    config.checkpoint = True
    # Discard existing checkpoints instead of resuming.
    config.overwrite = False
    # Split the replicate axis over all devices (jax.sharding.Mesh).
    config.shard = True
    # Show tqdm progress bars.
    config.progress = True

    config.net = ml_collections.ConfigDict()
    # Hidden widths of the tanh feature network h; m = hidden[-1] last-layer weights.
    config.net.hidden = (32,)

    config.train = ml_collections.ConfigDict()
    # Full-batch Adam steps.
    config.train.num_steps = 500
    # Adam learning rate.
    config.train.learning_rate = 0.01
    # λ: weight decay / N(0, λ⁻¹) prior precision of all weights (also in the Laplace).
    config.train.prior_precision = 1.0
    # Newton steps polishing the last layer (w, γ) after Adam.
    config.train.num_newton_steps = 10

    config.bon = ml_collections.ConfigDict()
    # Prompts per replicate for the best-of-N evaluation.
    config.bon.num_prompts = 200
    # Candidates N per prompt.
    config.bon.num_candidates = 20
    return config
