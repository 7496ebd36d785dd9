"""Config of the small-sample interval study: Wald, sandwich, profile, bootstrap.

Monte Carlo coverage and length of 95% intervals of every coordinate of θ and γ at
n ∈ {200, 400, 600} for every interval method of ``hr.confidence_intervals``
(``hetrlhf.btl.confidence``), side by side on the same replicates. Our design (DESIGN.md
§6), not the paper's numbers.

Run:
  python -m experiments.small_sample --config configs/small_sample.py
  python -m experiments.small_sample --config configs/small_sample.py --config.preset=full
  python -m experiments.small_sample --config configs/small_sample.py \
      --config.num_replicates=400 --config.design=heavy
"""

import ml_collections

# Fields set by each preset ("default" is the config below: a few minutes on a 2-core
# CPU; "full": 1000 replicates and 400 bootstrap draws — a GPU job).
PRESETS = {
    "full": {"num_replicates": 1000, "num_bootstrap": 400},
}

# Every interval method the study knows (the default compares them all).
METHODS = (
    "wald",
    "sandwich",
    "profile",
    "profile_bartlett",
    "boot_percentile",
    "boot_basic",
    "boot_t",
)


def get_config():
    config = ml_collections.ConfigDict()
    # "default" (small CPU run) or "full" (full size; our constants).
    config.preset = "default"
    # Seed of jax.random.key; the study is reproducible from it bit for bit.
    config.seed = 0
    # Float precision, set by the command before any array exists ("float64" or
    # "float32"; recorded in results.json). float64: standard errors and intervals
    # to statsmodels' accuracy on a CPU.
    config.precision = "float64"
    # Output directory for results.json, results.md, the PNGs and the checkpoints.
    config.results_dir = "results/small_sample"
    # Simulation design: a preset name of hetrlhf.data.simulate.PRESETS ("default" = ours, DESIGN.md §6).
    config.design = "default"
    # Sample sizes n (one Monte Carlo experiment each).
    config.sample_sizes = (200, 400, 600)
    # Monte Carlo replicates per sample size (the same replicates for every method).
    config.num_replicates = 100
    # 1 − confidence level.
    config.alpha = 0.05
    # Interval methods compared: "wald", "sandwich", "profile" (χ²₁ calibration),
    # "profile_bartlett" (critical values times bootstrap Bartlett factors from
    # num_bootstrap draws), and the parametric bootstrap's "boot_percentile",
    # "boot_basic", "boot_t" (studentized); the three bootstrap intervals share one set
    # of refits.
    config.methods = METHODS
    # Bootstrap draws B per replicate (refits vmapped over draws; also the draws of the
    # Bartlett factors).
    config.num_bootstrap = 100
    # Profile search range, in Wald half-widths (beyond it an end point is reported
    # unbounded, ±inf, and counts as covering only if the truth is on that side).
    config.profile_max_distance = 50.0
    # Replicates per jitted chunk (one checkpoint per chunk).
    config.chunk_size = 25
    # Save each finished chunk under <results_dir>/checkpoints and resume from it.
    config.checkpoint = True
    # Discard existing checkpoints instead of resuming.
    config.overwrite = False
    # Split the replicate axis over all devices (jax.sharding.Mesh).
    config.shard = True
    # Show tqdm progress bars.
    config.progress = True
    return config
