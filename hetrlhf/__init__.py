"""hetrlhf: uncertainty-aware reward learning from heterogeneous human feedback.

Precision: inference (standard errors, intervals) is exact to statsmodels' level in
float64. On CPU enable it yourself before creating arrays:
``jax.config.update("jax_enable_x64", True)``; hetrlhf never flips the flag. float32 is
fine for the point estimates and on accelerators (tolerances follow the dtype).
"""

from hetrlhf import (
    bayes,
    calibration,
    checkpoint,
    data,
    ensemble,
    features,
    intervals,
    model,
    multitest,
    neural,
    parallel,
    plackett_luce,
    policy,
    ppo,
    simulate,
    small_sample,
    text_encoder,
    theory,
)
from hetrlhf.ensemble import ensemble_reward, train_ensemble
from hetrlhf.estimate import ConvergenceWarning, alternating_gd, fit, run_alternating
from hetrlhf.inference import (
    compare_estimates,
    compare_rewards,
    confidence_intervals,
    covariance,
    difference_ztest,
    fisher_information,
    reward_interval,
    sandwich_covariance,
    standard_errors,
)
from hetrlhf.intervals import interval_rewards
from hetrlhf.multitest import adjust_comparisons, adjust_pvalues, rank_with_groups
from hetrlhf.plackett_luce import Rankings, fit_rankings, rankings
from hetrlhf.selection import best_of_n, lower_confidence_bound, pessimistic_best_of_n
from hetrlhf.types import (
    Comparisons,
    FitResult,
    Intervals,
    Params,
    RewardComparison,
    RewardEstimate,
)
from hetrlhf.validation import comparisons

__version__ = "0.1.0"

__all__ = [
    "Comparisons",
    "ConvergenceWarning",
    "FitResult",
    "Intervals",
    "Params",
    "Rankings",
    "RewardComparison",
    "RewardEstimate",
    "adjust_comparisons",
    "adjust_pvalues",
    "alternating_gd",
    "bayes",
    "best_of_n",
    "calibration",
    "checkpoint",
    "compare_estimates",
    "compare_rewards",
    "comparisons",
    "confidence_intervals",
    "covariance",
    "data",
    "difference_ztest",
    "ensemble",
    "ensemble_reward",
    "features",
    "fisher_information",
    "fit",
    "fit_rankings",
    "interval_rewards",
    "intervals",
    "lower_confidence_bound",
    "model",
    "multitest",
    "neural",
    "parallel",
    "pessimistic_best_of_n",
    "plackett_luce",
    "policy",
    "ppo",
    "rank_with_groups",
    "rankings",
    "reward_interval",
    "run_alternating",
    "sandwich_covariance",
    "simulate",
    "small_sample",
    "standard_errors",
    "text_encoder",
    "theory",
    "train_ensemble",
]
