"""hetrlhf: uncertainty-aware reward learning from heterogeneous human feedback."""

from hetrlhf import model
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
