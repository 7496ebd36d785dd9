"""Study `ensemble`: K-head reward ensemble variances (Banerjee et al. Figure 8 analogue).

Run:
    python -m experiments.ensemble --config configs/ensemble.py
    python -m experiments.ensemble --config configs/ensemble.py --config.preset=full
    python -m experiments.ensemble --config configs/ensemble.py --config.real.enabled=False

A bootstrapped K-head linear reward ensemble is trained on simulated comparisons
(``hetrlhf.data.simulate``, our design) and on the real preference files in
``../shared/data`` (hashed n-gram features projected to a few dimensions); the study
reports the distribution, over held-out pairs, of the per-response reward variance
across heads and of the variance of the chosen − rejected reward difference.
"""

import ml_collections

# Fields each preset changes ("default" is the config below).
PRESETS = {
    "full": {
        "sim.num_train": 2000,
        "sim.num_test": 5000,
        "num_steps": 2000,
        "real.num_components": 32,
        "real.hash_dim": 4096,
    },
}


def get_config():
    config = ml_collections.ConfigDict()
    # "default" (small, well under a minute on a 2-core CPU) or "full" (full size); see PRESETS.
    config.preset = "default"
    # Master seed (data simulation, head initialisations, bootstrap resamples).
    config.seed = 0
    # Float precision, set by the command before any array exists ("float64" or
    # "float32"; recorded in results.json). float32: policy and ensemble training
    # need no statsmodels-level standard errors.
    config.precision = "float32"
    # Output directory (results.json, results.md, PNGs).
    config.results_dir = "results/ensemble"
    # Number of heads K (the paper uses 10).
    config.num_heads = 10
    # Resample the training comparisons independently for each head.
    config.bootstrap = True
    # Adam steps and step size (all heads in one jitted lax.scan).
    config.num_steps = 500
    config.learning_rate = 0.05
    # Ridge coefficient on each head (keeps high-dimensional real-data heads finite).
    config.l2 = 1e-3
    # Standard deviation of the heads' independent initialisations.
    config.init_scale = 1.0
    # Histogram bins.
    config.num_bins = 40

    # Simulated data (hetrlhf.data.simulate).
    config.sim = ml_collections.ConfigDict()
    # Name of the simulation design (hetrlhf.data.simulate.PRESETS).
    config.sim.design = "default"
    # Training and held-out comparisons.
    config.sim.num_train = 400
    config.sim.num_test = 2000

    # Real data (hetrlhf.data loaders + hetrlhf.data.features.hashed_features).
    config.real = ml_collections.ConfigDict()
    # Include the real-data part.
    config.real.enabled = True
    # Folder holding pandalm_testset/ and tulu1_human_eval/.
    config.real.data_dir = "../shared/data"
    # Which files: any of "pandalm" (3 humans + 2 LLM judges) and "tulu1" (16 humans).
    config.real.datasets = ("pandalm", "tulu1")
    # Hash buckets of the n-gram featurizer.
    config.real.hash_dim = 1024
    # Dimensions kept by the SVD projection of the training Δφ (whitened).
    config.real.num_components = 16
    # Share of prompts held out for the variance distributions.
    config.real.test_fraction = 0.3
    return config
