"""Config of the calibration study: is every reward-uncertainty source honest?

For each source of a ``RewardEstimate`` — Fisher intervals (``hr.reward_interval``),
the sandwich covariance, the reward ensemble (``hetrlhf.alignment.ensemble``:
bootstrap Bradley–Terry heads) and interval ("prompted") rewards from a simulated judge
— the study measures the coverage of nominal reward-difference intervals on held-out
comparisons, the expected calibration error (ECE) of the predicted preference
probabilities and a reliability diagram, on simulated data with known truth. The same
check on the PandaLM real data is the study ``calibration_real``
(``configs/calibration_real.py``, which shares the fields of ``shared_config``).

Run:
  python -m experiments.calibration --config configs/calibration.py
  python -m experiments.calibration --config configs/calibration.py --config.preset=full
"""

import ml_collections

# Fields set by each preset ("default" is the config below, about a minute on 2 cores).
PRESETS = {
    "full": {
        "sim.num_replicates": 1000,
        "sim.num_test": 1000,
    },
}


def shared_config(results_dir: str) -> ml_collections.ConfigDict:
    """The fields common to the simulated and the real-data calibration studies."""
    config = ml_collections.ConfigDict()
    # "default" (small, about a minute on a laptop CPU) or "full" (full size; our constants).
    config.preset = "default"
    # Seed of jax.random.key (and of the real-data splits); runs are reproducible.
    config.seed = 0
    # Float precision, set by the command before any array exists ("float64" or
    # "float32"; recorded in results.json). float64: standard errors and intervals
    # to statsmodels' accuracy on a CPU.
    config.precision = "float64"
    # Output directory for results.json, results.md and the PNGs.
    config.results_dir = results_dir
    # Nominal levels ℓ of the central intervals mean ± z_{(1+ℓ)/2}·sd.
    config.levels = (0.5, 0.8, 0.9, 0.95)
    # Number of equal-width bins of the ECE and the reliability diagram.
    config.num_bins = 10
    # Heads K of the reward ensemble (hetrlhf.alignment.ensemble), K >= 2.
    config.num_heads = 10
    # Training of the ensemble heads (hetrlhf.alignment.ensemble.fit_heads, adam), as in the
    # PPO study's ensemble.
    config.ensemble = ml_collections.ConfigDict()
    # Adam steps per head.
    config.ensemble.num_steps = 500
    # Adam step size.
    config.ensemble.learning_rate = 0.05
    # Each head on its own multinomial resample of the training rows (the source of
    # the ensemble's estimation variance; without it all heads converge to one MLE).
    config.ensemble.bootstrap = True
    # Standard deviation of the heads' N(0, s² I) initialisations.
    config.ensemble.init_scale = 1.0
    # Ridge coefficient on each head.
    config.ensemble.l2 = 0.0
    return config


def get_config():
    config = shared_config("results/calibration")

    # Simulated data with known truth.
    config.sim = ml_collections.ConfigDict()
    # Name of the hetrlhf.data.simulate design preset ("default" is our design of DESIGN.md §6).
    config.sim.design = "default"
    # Independent replicates (train set, fits, test set), vmapped in chunks.
    config.sim.num_replicates = 64
    # Replicates per jitted chunk (one progress-bar step each).
    config.sim.chunk_size = 32
    # Training comparisons per replicate.
    config.sim.num_train = 400
    # Held-out comparisons per replicate (intervals are checked on their Δφ).
    config.sim.num_test = 200
    # Simulated judge for the interval source: the judge's point score of a response
    # is its true reward plus N(0, τ²) noise, τ ~ Uniform(noise_low, noise_high) per
    # response, and it reports [score − h, score + h] with h = width_scale·√3·τ
    # (so the uniform variance h²/3 equals τ²·width_scale²).
    config.sim.judge_noise_low = 0.1
    config.sim.judge_noise_high = 1.0
    # One interval source per scale: 1.0 is an honest judge, 0.5 a judge whose
    # intervals are half as wide as its errors (over-confident).
    config.sim.width_scales = (1.0, 0.5)

    return config
