"""Config of the real-data calibration study (PandaLM: 3 humans + 2 LLM judges).

The simulated study's question (``configs/calibration.py``, whose shared fields —
seed, precision, levels, bins, ensemble — this config takes from ``shared_config``) on
real preferences, where the true reward is unknown: the intervals of the Fisher,
sandwich (clustered by prompt) and ensemble sources are checked by a split-half test,
the predicted probabilities by their ECE on held-out prompts, and annotator
disagreement (σ per annotator) is set beside estimation uncertainty (see
``experiments/calibration_real.py``).

Run:
  python -m experiments.calibration_real --config configs/calibration_real.py
  python -m experiments.calibration_real --config configs/calibration_real.py --config.preset=full
"""

import ml_collections

from configs import calibration

# Fields set by each preset ("default" is the config below, about half a minute on
# 2 cores).
PRESETS = {
    "full": {
        "num_splits": 50,
    },
}


def get_config():
    config = calibration.shared_config("results/calibration_real")
    # Folder holding pandalm_testset/ (relative to the repository root). The seed also
    # sets the train/test split of the prompts (and, + 1000 + j, the j-th halving).
    config.data_dir = "../shared/data"
    # Also use the two LLM judges as annotators (heterogeneous rationality).
    config.judges = True
    # Share of prompts held out as the test set.
    config.test_fraction = 0.3
    # Hash buckets of the n-gram features (before projection).
    config.hash_dim = 1024
    # Dimension d of the whitened SVD projection of the features (fitted on the
    # training Δφ only).
    config.num_components = 6
    # Random halvings of the training prompts for the split-half interval check.
    config.num_splits = 6
    # Annotators with fewer training rows are pooled with the reference.
    config.min_count = 20
    # Reference annotator (σ ≡ 1, the reward's unit); "" = the most frequent one.
    config.reference = "pandalm_h1"
    # Rows read per file (None: all; a small number for smoke tests).
    config.max_rows = ml_collections.config_dict.placeholder(int)
    return config
