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
    neural,
    multitest,
    parallel,
    policy,
    ppo,
    simulate,
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
from hetrlhf.multitest import adjust_comparisons, adjust_pvalues, rank_with_groups
from hetrlhf.intervals import interval_rewards
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
