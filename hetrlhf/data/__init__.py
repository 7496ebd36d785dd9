"""Data in and out of the model: ``simulate`` (designs with known truth), ``loaders``
(real preference files: JSONL, PandaLM, Tülu; records → ``Comparisons``),
``features`` (hashed n-grams, sentence embeddings, projections) and ``pools``
(best-of-N candidate pools from pairwise records).

The names of ``loaders`` are re-exported here, so ``hr.data.load_pandalm`` (the path of
release 0.1, when ``hetrlhf.data`` was the loaders module) keeps working.
"""

from hetrlhf.data import features, loaders, pools, simulate, text_encoder
from hetrlhf.data.loaders import (
    FIELDS,
    PANDALM_HUMAN_FIELDS,
    PANDALM_JUDGE_FIELDS,
    TULU1_FIELDS,
    FeaturedSplit,
    Levels,
    LoadSummary,
    PreferenceRecord,
    TextIndex,
    covariate_matrix,
    featurize_split,
    fit_levels,
    labels,
    level_covariates,
    load_jsonl,
    load_pandalm,
    load_tulu1,
    merge_summaries,
    one_hot,
    split_by_prompt,
    text_index,
    to_comparisons,
    unique_texts,
)

__all__ = [
    "FIELDS",
    "PANDALM_HUMAN_FIELDS",
    "PANDALM_JUDGE_FIELDS",
    "TULU1_FIELDS",
    "FeaturedSplit",
    "Levels",
    "LoadSummary",
    "PreferenceRecord",
    "TextIndex",
    "covariate_matrix",
    "features",
    "featurize_split",
    "fit_levels",
    "labels",
    "level_covariates",
    "load_jsonl",
    "load_pandalm",
    "load_tulu1",
    "loaders",
    "merge_summaries",
    "one_hot",
    "pools",
    "simulate",
    "split_by_prompt",
    "text_encoder",
    "text_index",
    "to_comparisons",
    "unique_texts",
]
