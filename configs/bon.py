"""Config of the best-of-N study (Liu, Lu & Sun 2025, §A4 and Table 5).

A reward model is fitted (``hr.fit``, heterogeneous model) on n simulated comparisons;
for each prompt, N candidate responses are drawn from the simulator and chosen by BoN
(argmax r̂) and by pessimistic BoN (argmax of the lower Wald bound r̂ − z·se); the gold
reward θ*ᵀφ of the choice is averaged over prompts, for N ∈ {20, 40, 60, 80, 128}, and
over many seeds (one jitted program vmapped over seeds). Each regime is a simulation
design and a training size; the constants are our design, not the paper's.

Run:
  python -m experiments.bon --config configs/bon.py
  python -m experiments.bon --config configs/bon.py --config.preset=paper
  python -m experiments.bon --config configs/bon.py --config.alpha=0.1
"""

import ml_collections

# Fields set by each preset ("default" is the config below, about a minute on 2 CPUs).
PRESETS = {
    "paper": {
        "num_seeds": 1000,
        "num_prompts": 500,
    },
}


def _regime(design: str, n: int, feature_df: float) -> ml_collections.ConfigDict:
    regime = ml_collections.ConfigDict()
    # Preset name of hetrlhf.simulate.PRESETS for the training data and candidates.
    regime.design = design
    # Number of training comparisons the reward model is fitted on.
    regime.n = n
    # Student-t degrees of freedom ν of the features (> 2; 0 keeps the design's own).
    regime.feature_df = feature_df
    return regime


def get_config():
    config = ml_collections.ConfigDict()
    # "default" (small, about a minute on a laptop CPU) or "paper" (full size).
    config.preset = "default"
    # Seed of jax.random.key; the whole study is reproducible from it.
    config.seed = 0
    # Output directory for results.json, results.md and the PNG.
    config.results_dir = "results/bon"
    # Candidate pool sizes N (the paper's Table 5 grid). The pools are nested: the
    # first N of max(N) candidates, so the N's share random numbers.
    config.num_candidates = (20, 40, 60, 80, 128)
    # Prompts per seed (each with max(N) fresh candidates).
    config.num_prompts = 200
    # Independent seeds (training set + fit + candidates), vmapped in chunks.
    config.num_seeds = 64
    # Seeds per jitted vmapped call (memory: chunk · prompts · max(N) · d floats).
    config.chunk_size = 64
    # Orbax checkpoint root ("" = none); each regime's seed chunks are saved in
    # <checkpoint_dir>/<regime> and a rerun of the same config resumes from them.
    config.checkpoint_dir = ""
    # 1 − level of the lower confidence bound used by pBoN: r̂ − z_{1−α/2}·se.
    config.alpha = 0.05
    # Share of the worst prompts averaged for the lower-tail (CVaR) gold reward.
    config.tail = 0.1
    # Keyword options passed to hr.fit (empty: its defaults).
    config.fit = ml_collections.ConfigDict()
    # Regimes, by name. "heavy_small": heavy-tailed feature norms (ν = 2.5) and few
    # comparisons, where the reward of a far-out candidate is the most uncertain (the
    # regime where pessimism is expected to matter); "gaussian_large": Gaussian
    # features and many comparisons, where se is small and pBoN ≈ BoN.
    config.regimes = ml_collections.ConfigDict(
        {
            "heavy_small": _regime("heavy_tailed", 80, 2.5),
            "gaussian_small": _regime("paper", 80, 0.0),
            "gaussian_large": _regime("paper", 2000, 0.0),
        }
    )
    return config
