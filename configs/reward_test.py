"""Config of the reward-test study (Liu, Lu & Sun 2025, Theorems 3–4; our design).

Monte Carlo check of the Wald inference on rewards: coverage of the 1 − α reward
intervals θ̂ᵀφ ± z·sqrt(φᵀΣ_θφ) (Theorem 3), and the size at α and the power curve of
the z-test of H0: r(s, a) = r(s, a′) (``hr.compare_rewards``, Theorem 4), with the
coverage of the reward-difference intervals at every true gap. One replicate =
simulate n comparisons → ``hr.fit`` → covariance → one test pair per gap and one new
response; jitted and vmapped over PRNG keys in checkpointed chunks, sharded over all
devices. The asymptotic power (population information at the truth) is drawn beside
the observed one.

Run:
  python -m experiments.reward_test --config configs/reward_test.py
  python -m experiments.reward_test --config configs/reward_test.py --config.preset=full
  python -m experiments.reward_test --config configs/reward_test.py --config.design=heavy
"""

import ml_collections

# Fields set by each preset ("default" is the config below, about a minute on a
# 2-core CPU).
PRESETS = {
    "full": {"num_replicates": 4000},
}


def get_config():
    config = ml_collections.ConfigDict()
    # "default" (small, about a minute on a laptop CPU) or "full" (4000 replicates;
    # our constants).
    config.preset = "default"
    # Seed of jax.random.key; the whole study is reproducible from it bit for bit.
    config.seed = 0
    # Float precision, set by the command before any array exists ("float64" or
    # "float32"; recorded in results.json). float64: standard errors and intervals
    # to statsmodels' accuracy on a CPU.
    config.precision = "float64"
    # Output directory for results.json, results.md, the PNGs and the checkpoints.
    config.results_dir = "results/reward_test"
    # Simulation design: a preset of hetrlhf.data.simulate.PRESETS ("default" = our design
    # of DESIGN.md §6).
    config.design = "default"
    # Sample sizes n (one Monte Carlo experiment each).
    config.sample_sizes = (200, 400, 600)
    # Monte Carlo replicates per sample size (each gives one independent test per gap,
    # so a rejection rate has a binomial error sqrt(p(1 − p)/R)).
    config.num_replicates = 400
    # Level α of the tests and 1 − level of the intervals (the paper's α = 0.05).
    config.alpha = 0.05
    # True reward gaps δ = r*(s, a) − r*(s, a′) of the test pairs, in reward units
    # (0 first: H0, the size; the others: the power curve).
    config.gaps = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
    # Comparisons of the one large simulated sample that estimates the population
    # Fisher information I(θ*, γ*) for the asymptotic power curve.
    config.fisher_sample_size = 400_000
    # Replicates per jitted chunk (one checkpoint per chunk; rounded up to a multiple
    # of the device count).
    config.chunk_size = 100
    # Replicates per vmapped batch inside a chunk (jax.lax.map over batches; 0: one
    # vmap over the whole chunk; use 0 on a GPU). Make chunk_size a multiple of it.
    config.vmap_size = 25
    # Save each finished chunk under <results_dir>/checkpoints and resume from it.
    config.checkpoint = True
    # Discard existing checkpoints instead of resuming.
    config.overwrite = False
    # Split the replicate axis over all devices (jax.sharding.Mesh).
    config.shard = True
    # Show tqdm progress bars.
    config.progress = True
    return config
