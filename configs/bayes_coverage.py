"""Config of the Bayesian coverage study: NUTS credible vs Wald confidence intervals.

Replicated datasets from our simulation design (DESIGN.md §6), each fitted by the MLE
(Wald intervals, ``hr.confidence_intervals``) and sampled by NUTS under weak N(0, s²)
priors (equal-tailed credible intervals, ``hetrlhf.btl.bayes``); coverage of the true
(θ*, γ*) per coordinate, interval lengths, and how far the two summaries differ.

Run:
  python -m experiments.bayes_coverage --config configs/bayes_coverage.py
  python -m experiments.bayes_coverage --config configs/bayes_coverage.py --config.preset=full
  python -m experiments.bayes_coverage --config configs/bayes_coverage.py --config.sizes='(200,)'
"""

import ml_collections

# Fields set by each preset ("default" is the config below: a few minutes on a shared
# 2-core CPU, most of it NUTS compilation).
PRESETS = {
    "full": {
        "num_replicates": 500,
        "sizes": (200, 400, 600),
        "nuts.num_warmup": 500,
        "nuts.num_samples": 1000,
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
    config.results_dir = "results/bayes_coverage"
    # Simulation design: a hetrlhf.data.simulate preset name plus optional Design overrides.
    config.design = ml_collections.ConfigDict({"preset": "default"})
    # Numbers of comparisons n per dataset.
    config.sizes = (200, 600)
    # Replicated datasets per n (binomial band half-width ≈ 1.96·sqrt(.95·.05/R)).
    config.num_replicates = 48
    # Replicates per jitted, vmapped chunk (one progress-bar tick, one checkpoint).
    config.chunk_size = 16
    # 1 − nominal level of both kinds of interval.
    config.alpha = 0.05
    # Save each finished chunk under <results_dir>/checkpoints/n<n> and resume from it.
    config.checkpoint = False
    # Discard existing checkpoints instead of resuming.
    config.overwrite = False
    # Split the replicate axis over all devices (jax.sharding.Mesh).
    config.shard = True
    # Show tqdm progress bars.
    config.progress = True

    config.nuts = ml_collections.ConfigDict()
    # Prior standard deviation s of every θ_j and γ_l (N(0, s²), our weak prior).
    config.nuts.prior_scale = 10.0
    # Warm-up (adaptation) iterations per chain, discarded.
    config.nuts.num_warmup = 300
    # Posterior draws kept per chain.
    config.nuts.num_samples = 500
    # Chains per dataset (all started at the MLE; split-R̂ is reported).
    config.nuts.num_chains = 2
    # NUTS dual-averaging target acceptance probability.
    config.nuts.target_accept_prob = 0.8
    # NUTS maximum tree depth.
    config.nuts.max_tree_depth = 8
    return config
