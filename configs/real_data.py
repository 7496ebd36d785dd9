"""Real-data study: rationality by annotator on PandaLM and Tülu 1 human preferences.

Run:
  python -m experiments.real_data --config configs/real_data.py
  python -m experiments.real_data --config configs/real_data.py --config.preset=full
  python -m experiments.real_data --config configs/real_data.py \
      --config.featurizer=minilm   # needs the [text] extra and the weights (README)
"""

import os

import ml_collections

# Full size: more random prompt splits for the held-out metrics.
PRESETS = {
    "full": {
        "num_splits": 20,
    },
}

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def get_config():
    config = ml_collections.ConfigDict()
    # "default": small (about a minute on a 2-core CPU); "full": full size (PRESETS).
    config.preset = "default"
    # Seed of the first train/test split; split j uses seed + j.
    config.seed = 0
    # Float precision, set by the command before any array exists ("float64" or
    # "float32"; recorded in results.json). float64: standard errors and intervals
    # to statsmodels' accuracy on a CPU.
    config.precision = "float64"
    # Folder holding pandalm_testset/ and tulu1_human_eval/ (default ../shared/data
    # relative to the repository root).
    config.data_dir = os.path.normpath(os.path.join(_REPO_ROOT, "..", "shared", "data"))
    # Comma-separated datasets to run: "pandalm", "tulu1".
    config.datasets = "pandalm,tulu1"
    # Comma-separated rationality models to fit: "homogeneous" (σ ≡ 1, needed for the
    # likelihood-ratio test), "annotator_type" (PandaLM only: human vs LLM judge) and
    # "annotator" (one level per annotator id).
    config.models = "homogeneous,annotator_type,annotator"
    # Per-file row limit (0 = all rows); the smoke test uses a small slice.
    config.max_rows = 0
    # Train PandaLM on the two LLM judges' labels as well as the three humans'.
    config.pandalm_judges = True
    # Ties in the training labels: "exclude" (dropped and counted) or "error".
    config.ties = "exclude"
    # Share of prompts held out for the log-likelihood, accuracy and BoN evaluation.
    config.test_fraction = 0.3
    # Number of random prompt splits for the held-out metrics (mean and sd reported).
    config.num_splits = 3
    # Features φ(s, a): "hashed" (built-in n-grams) or "minilm" (the [text] extra: the
    # flax all-MiniLM-L6-v2 encoder of hetrlhf.data.text_encoder).
    config.featurizer = "hashed"
    # Hash buckets of the n-gram featurizer.
    config.hash_dim = 1024
    # SVD components kept from the n-gram / embedding block (fitted on training Δφ);
    # the pair statistics of hetrlhf.data.features.STATISTIC_NAMES are appended.
    config.num_components = 8
    # A pair statistic is used only if its Δφ is non-zero on at least this many
    # training rows (a rarer one, like "empty", can separate its rows: no finite MLE).
    config.min_feature_rows = 10
    # Embedding cache root for featurizer="minilm" ("" = hetrlhf's default cache dir).
    config.cache_dir = ""
    # Annotators with fewer training comparisons are pooled with the reference level.
    config.min_annotator_count = 20
    # Reference annotator of PandaLM's by-annotator model (σ ≡ 1 for it).
    config.pandalm_reference = "pandalm_h1"
    # Reference annotator of Tülu's model ("" = the most frequent in training).
    config.tulu1_reference = ""
    # Level of the Wald intervals and of the pessimistic best-of-N lower bound.
    config.alpha = 0.05
    # Bootstrap resamples of held-out prompts for the pBoN − BoN gold difference.
    config.num_bootstrap = 2000
    # Extra keyword options passed to hr.fit (empty: its defaults).
    config.fit = ml_collections.ConfigDict()
    # Where results.json, results.md and the plots go.
    config.results_dir = "results/real_data"
    return config
