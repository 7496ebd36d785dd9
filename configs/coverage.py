"""Config of the coverage study (Liu, Lu & Sun 2025, Table 1 analogue; our design).

Monte Carlo coverage and mean length of the 95% Wald intervals of every coordinate of
θ and γ at n ∈ {200, 400, 600}. One replicate = simulate → fit → intervals → covered?,
jitted and vmapped over PRNG keys, in chunks (checkpointed: a killed run started again
with the same command continues), sharded over all devices.

Run:
  python -m experiments.coverage --config configs/coverage.py
  python -m experiments.coverage --config configs/coverage.py --config.preset=full
  python -m experiments.coverage --config configs/coverage.py --config.num_replicates=2000
  python -m experiments.coverage --config configs/coverage.py --config.design=heavy
"""

import ml_collections

# Fields set by each preset ("default" is the config below, about a minute on a
# 2-core CPU).
PRESETS = {
    "full": {"num_replicates": 1000},
}


def get_config():
    config = ml_collections.ConfigDict()
    # "default" (small, about a minute on a laptop CPU) or "full" (1000 replicates).
    config.preset = "default"
    # Seed of jax.random.key; the whole study is reproducible from it bit for bit.
    config.seed = 0
    # Float precision, set by the command before any array exists ("float64" or
    # "float32"; recorded in results.json). float64: standard errors and intervals
    # to statsmodels' accuracy on a CPU.
    config.precision = "float64"
    # Output directory for results.json, results.md, the PNGs and the checkpoints.
    config.results_dir = "results/coverage"
    # Simulation design: a preset of hetrlhf.data.simulate.PRESETS ("default" is our
    # design of DESIGN.md §6; also "heavy", "correlated", "binary", "scaled_psi0", ...).
    config.design = "default"
    # Sample sizes n (one Monte Carlo experiment each).
    config.sample_sizes = (200, 400, 600)
    # Monte Carlo replicates per sample size.
    config.num_replicates = 300
    # 1 − confidence level of the Wald intervals.
    config.alpha = 0.05
    # Information used for the standard errors: "observed" (Hessian) or "expected".
    config.information = "observed"
    # Solver of hr.fit: "newton" (default; cold start from the homogeneous fit).
    config.fit_method = "newton"
    # Run every sample size in ONE compiled program: each replicate simulates
    # max(sample_sizes) comparisons and gives the rows beyond its n weight 0 (the same
    # data and, to rounding, the same estimates as simulating n; one compilation
    # instead of one per n, for more work at the smaller n). False: one program per n.
    config.pad_sample_sizes = True
    # PRNG of the simulation: "threefry" (JAX's default, threefry2x32), or "rbg" /
    # "unsafe_rbg" (XLA's RngBitGenerator; different random numbers, so different
    # replicates; under vmap a batch's draws come from its first key, so the numbers
    # depend on vmap_size and the device count; meant for accelerators, where
    # threefry is slow — on a CPU it is not faster).
    config.prng_impl = "threefry"
    # Replicates per jitted chunk (one checkpoint per chunk; rounded up to a multiple
    # of the device count).
    config.chunk_size = 100
    # Replicates per vmapped batch inside a chunk (jax.lax.map over batches; 0: one
    # vmap over the whole chunk). Narrow batches stay in cache on a CPU (~1.7x less CPU
    # than a vmap over 1000); use 0 on a GPU. Make chunk_size a multiple of it (a
    # remainder compiles a second program).
    config.vmap_size = 25
    # Save each finished chunk under <results_dir>/checkpoints and resume from it.
    config.checkpoint = True
    # Discard existing checkpoints instead of resuming (needed after changing fields
    # of this config, which otherwise raises a clear error).
    config.overwrite = False
    # Split the replicate axis over all devices (jax.sharding.Mesh).
    config.shard = True
    # Show tqdm progress bars.
    config.progress = True
    return config
