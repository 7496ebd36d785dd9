"""Config of the best-of-N study: a simulated analogue of Liu, Lu & Sun (2025)'s Table 5.

Paper A's Table 5 is a real-data experiment (LLM-generated candidates on held-out
prompts, gold reward model Eurus-RM-7B, N ∈ {20, 40, 60, 80, 128}, α = 0.05). Here
everything is simulated, with a known gold reward: a reward model is fitted
(``hr.fit``, heterogeneous model) on n simulated comparisons; for each prompt, N
candidate responses are drawn from the simulator and chosen by BoN (argmax r̂) and by
pessimistic BoN (argmax of the lower Wald bound r̂ − z·se); the gold reward θ*ᵀφ of
the choice is averaged over prompts, for the paper's N grid, and over many seeds (one
jitted program vmapped over seeds). Each regime is a simulation design and a training
size; the designs and sizes are ours, not the paper's. Beside the simulated pBoN
suboptimality of every run, the study prints Theorem 6's bound
3·q_{1−α/2}·‖Ĩ^{−1/2} E_s φ(s, a*(s))‖₂/√n (``hetrlhf.btl.theory.theorem6_bound``), and
a sweep over n on one design (``theorem6``) shows how both scale with n.

Run:
  python -m experiments.bon --config configs/bon.py
  python -m experiments.bon --config configs/bon.py --config.preset=full
  python -m experiments.bon --config configs/bon.py --config.alpha=0.1
"""

import ml_collections

# Fields set by each preset ("default" is the config below, about a minute on 2 CPUs).
PRESETS = {
    "full": {
        "num_seeds": 1000,
        "num_prompts": 500,
        "theorem6.sample_sizes": (150, 300, 600, 1000, 4000),
    },
}


def _regime(design: str, n: int, feature_df: float) -> ml_collections.ConfigDict:
    regime = ml_collections.ConfigDict()
    # Preset name of hetrlhf.data.simulate.PRESETS for the training data and candidates.
    regime.design = design
    # Number of training comparisons the reward model is fitted on.
    regime.n = n
    # Student-t degrees of freedom ν of the features (> 2; 0 keeps the design's own).
    regime.feature_df = feature_df
    return regime


def get_config():
    config = ml_collections.ConfigDict()
    # "default" (small, about two minutes on a 2-core CPU) or "full" (full size; our
    # constants).
    config.preset = "default"
    # Seed of jax.random.key; the whole study is reproducible from it.
    config.seed = 0
    # Float precision, set by the command before any array exists ("float64" or
    # "float32"; recorded in results.json). float64: standard errors and intervals
    # to statsmodels' accuracy on a CPU.
    config.precision = "float64"
    # Output directory for results.json, results.md and the PNG.
    config.results_dir = "results/bon"
    # Candidate pool sizes N (the N grid of the paper's Table 5). The pools are nested:
    # the
    # first N of max(N) candidates, so the N's share random numbers.
    config.num_candidates = (20, 40, 60, 80, 128)
    # Prompts per seed (each with max(N) fresh candidates).
    config.num_prompts = 200
    # Independent seeds (training set + fit + candidates), vmapped in chunks.
    config.num_seeds = 64
    # Seeds per jitted vmapped call (memory: chunk · prompts · max(N) · d floats).
    config.chunk_size = 64
    # Save each run's finished seed chunks under <results_dir>/checkpoints/<run> (a
    # regime's name, or theorem6_n<n>) and resume from them.
    config.checkpoint = False
    # Discard existing checkpoints instead of resuming.
    config.overwrite = False
    # Split the seed axis over all devices (jax.sharding.Mesh).
    config.shard = True
    # Show tqdm progress bars.
    config.progress = True
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
            "gaussian_small": _regime("default", 80, 0.0),
            "gaussian_large": _regime("default", 2000, 0.0),
        }
    )
    # Theorem 6: its bound is printed beside every regime's pBoN suboptimality; the
    # sweep below adds runs at more training sizes n of one design (same N grid,
    # prompts, seeds and α), on a random stream of its own (the regimes' numbers do not
    # depend on it).
    config.theorem6 = ml_collections.ConfigDict()
    # Preset of hetrlhf.data.simulate.PRESETS of the sweep (Gaussian features). The regimes
    # of this design with their own feature law (feature_df = 0) join the sweep's
    # table at their n.
    config.theorem6.design = "default"
    # Training sizes n of the sweep (one compiled program each, ~25 s on 2 cores).
    config.theorem6.sample_sizes = (300,)
    # Comparisons of the one large simulated sample that estimates the population
    # Fisher information I(θ*, γ*) of each design (Monte Carlo error ~ size^{-1/2}).
    config.theorem6.fisher_sample_size = 400_000
    return config
