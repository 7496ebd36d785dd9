"""hetrlhf: uncertainty-aware reward learning from heterogeneous human feedback.

One house, two wings (the README's "Layout" section says where everything lives):

* ``hetrlhf.btl`` — Liu, Lu & Sun: the statistics of heterogeneous preferences (the
  likelihood of pairwise and K-wise data, the Newton solver, Algorithm 1, Fisher
  inference, confidence intervals, multiple testing, Bayes, a neural reward);
* ``hetrlhf.alignment`` — Banerjee, Saha & Gopalan: acting on reward uncertainty
  (ensembles, interval rewards, calibration, best-of-N, the bandit policies, PPO);
* ``hetrlhf.data`` — simulation, loaders of real preference files, text features;
* ``checkpoint``, ``parallel``, ``montecarlo``, ``reporting`` — the study harness
  (chunked and sharded replicates; Monte Carlo rates, bands and z-scores; tables);
  ``cpu_lapack`` — which batched LAPACK calls of a compiled XLA:CPU program split over
  its thread pool (the jaxlib 0.10 deadlock, README "Known issues").

Precision: inference (standard errors, intervals) is exact to statsmodels' level in
float64. On CPU enable it yourself before creating arrays:
``jax.config.update("jax_enable_x64", True)``; hetrlhf never flips the flag. float32 is
fine for the point estimates and on accelerators (tolerances follow the dtype).
"""

import sys

from hetrlhf import alignment, btl, checkpoint, data, montecarlo, parallel, reporting
from hetrlhf.alignment import calibration, ensemble, policy, ppo, selection
from hetrlhf.alignment.ensemble import ensemble_reward, train_ensemble
from hetrlhf.alignment.interval_rewards import interval_rewards
from hetrlhf.alignment.selection import (
    best_of_n,
    lower_confidence_bound,
    pessimistic_best_of_n,
)
from hetrlhf.btl import (
    bayes,
    confidence,
    estimate,
    inference,
    model,
    multitest,
    neural,
    newton,
    plackett_luce,
    theory,
)
from hetrlhf.btl.confidence import confidence_intervals, sandwich_covariance
from hetrlhf.btl.estimate import (
    ConvergenceWarning,
    alternating_gd,
    fit,
    fit_rankings,
    run_alternating,
)
from hetrlhf.btl.inference import (
    compare_estimates,
    compare_rewards,
    covariance,
    difference_ztest,
    fisher_information,
    reward_interval,
    standard_errors,
)
from hetrlhf.btl.multitest import adjust_comparisons, adjust_pvalues, rank_with_groups
from hetrlhf.data import features, loaders, preferences, simulate, text_encoder
from hetrlhf.data.preferences import Preferences, load_preferences
from hetrlhf.own_data.analysis import PreferenceReport, report
from hetrlhf.own_data.files import write_report
from hetrlhf.types import (
    Comparisons,
    FitResult,
    Intervals,
    Params,
    Rankings,
    RewardComparison,
    RewardEstimate,
)
from hetrlhf.validation import comparisons, rankings

__version__ = "0.2.0"

# Module paths of release 0.1 (a flat package), kept as aliases for one release:
# ``import hetrlhf.inference`` and ``from hetrlhf import small_sample`` still work.
# ``hetrlhf.intervals`` (interval-valued rewards) is gone: it shared its name with the
# confidence intervals ``hr.Intervals``; use ``hetrlhf.alignment.interval_rewards``.
_OLD_PATHS = {
    "model": model,
    "newton": newton,
    "estimate": estimate,
    "inference": inference,
    "small_sample": confidence,
    "plackett_luce": plackett_luce,
    "multitest": multitest,
    "bayes": bayes,
    "neural": neural,
    "theory": theory,
    "ensemble": ensemble,
    "calibration": calibration,
    "selection": selection,
    "policy": policy,
    "simulate": simulate,
    "features": features,
    "preferences": preferences,
    "text_encoder": text_encoder,
}
for _name, _module in _OLD_PATHS.items():
    sys.modules.setdefault(f"hetrlhf.{_name}", _module)
del _name, _module

__all__ = [
    "Comparisons",
    "ConvergenceWarning",
    "FitResult",
    "Intervals",
    "Params",
    "PreferenceReport",
    "Preferences",
    "Rankings",
    "RewardComparison",
    "RewardEstimate",
    "adjust_comparisons",
    "adjust_pvalues",
    "alignment",
    "alternating_gd",
    "bayes",
    "best_of_n",
    "btl",
    "calibration",
    "checkpoint",
    "compare_estimates",
    "compare_rewards",
    "comparisons",
    "confidence",
    "confidence_intervals",
    "covariance",
    "data",
    "difference_ztest",
    "ensemble",
    "ensemble_reward",
    "estimate",
    "features",
    "fisher_information",
    "fit",
    "fit_rankings",
    "inference",
    "interval_rewards",
    "load_preferences",
    "loaders",
    "lower_confidence_bound",
    "model",
    "montecarlo",
    "multitest",
    "neural",
    "newton",
    "own_data",
    "parallel",
    "pessimistic_best_of_n",
    "plackett_luce",
    "policy",
    "ppo",
    "preferences",
    "rank_with_groups",
    "rankings",
    "report",
    "reporting",
    "reward_interval",
    "run_alternating",
    "sandwich_covariance",
    "selection",
    "simulate",
    "standard_errors",
    "text_encoder",
    "theory",
    "train_ensemble",
    "write_report",
]
