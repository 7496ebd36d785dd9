"""Real-data study: who is more rational, and does pessimism help best-of-N?

Fits the homogeneous Bradley–Terry model and the heterogeneous model (rationality
σ = 1 + γᵀψ by annotator, and for PandaLM by annotator type human vs LLM judge) on real
LLM preference data (/work/shared/data: PandaLM test set, Tülu 1 human evaluation) and
reports the following (our study design). Paper A has real-data experiments — its
Table 5 compares BoN and pBoN on LLM-generated candidates for held-out prompts, scored
by the gold reward model Eurus-RM-7B, for N ∈ {20, 40, 60, 80, 128} — but neither its
candidates nor a gold reward model are in the data here, so that table is not
reproduced: part 3 below is our substitute (human win rates as gold, the models'
responses as candidates), and ``experiments/bon.py`` is a simulated analogue.

1. γ with Wald intervals from a fit on all rows (``hr.confidence_intervals``), with
   a likelihood-ratio test of the homogeneous model against the heterogeneous one.
2. Held-out mean log-likelihood and accuracy of each model on prompts not seen in
   training (``num_splits`` random splits by prompt; ties excluded and counted).
3. BoN vs pessimistic BoN on held-out prompts. Pairwise data have no N-candidate
   pools, so the candidates of a held-out prompt are all its distinct responses (the
   5 PandaLM models, sometimes with truncated variants; Tülu's 4 models), and the gold
   score of a candidate is its human win rate on that prompt: the share of held-out
   human labels involving it that it won, a tie counting one half. Only human labels
   are gold (the LLM judges' labels are training data only). Prompts with fewer than
   two candidates are skipped and counted. The pBoN − BoN difference gets a bootstrap
   interval that resamples held-out prompts (clustered over the splits).

Rationality coding (ψ, ψ0): ψ0 ≡ 1 and ψ is the one-hot of the annotator level with
a reference level dropped (``hetrlhf.data.level_covariates``; why: ``fit_levels``), so
σ = 1 + γ_j for level j and θ is in the reference's units. References: PandaLM by
annotator type — the humans (γ is the LLM judges' shift); by annotator —
``pandalm_h1``; Tülu — the most frequent training annotator (``tulu1_reference`` to fix
one). Levels with fewer than ``min_annotator_count`` training rows are pooled with the
reference, and so is a held-out row of an unseen level.

Every fit is ``hetrlhf.own_data.analysis.diagnosed_fit``: a fit that does not converge,
whose rows are perfectly separated, or whose information is singular is reported with
that status (and no intervals), never raised or hidden.

Features φ(s, a): hashed n-grams of the response (or MiniLM sentence embeddings with
the [text] extra) projected by an SVD fitted on the training Δφ (uncentered, whitened)
to ``num_components`` dimensions, plus the pair statistics of
``hetrlhf.data.features.STATISTIC_NAMES`` scaled to unit RMS of their training differences
(a statistic whose difference is always 0 in training is dropped).

Tables and figures: ``experiments/real_data_report.py``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
from tqdm import tqdm

import experiments
import hetrlhf as hr
from configs import real_data as real_data_config
from experiments import real_data_report
from hetrlhf import data as D
from hetrlhf.btl import inference
from hetrlhf.data import features as F
from hetrlhf.own_data import analysis

_DATASETS = ("pandalm", "tulu1")
_MODELS = ("homogeneous", "annotator_type", "annotator")


class ModelSpec(NamedTuple):
    """One rationality model: ψ from a categorical column with a reference level."""

    name: str
    column: Callable[[D.PreferenceRecord], str] | None
    reference: str | None


def _load(config, name: str):
    """(training records, summary, gold human records with ties kept, model specs)."""
    if name not in _DATASETS:
        raise ValueError(
            f"config.datasets: unknown dataset {name!r}; known: {_DATASETS}"
        )
    wanted = [m.strip() for m in config.models.split(",") if m.strip()]
    unknown = set(wanted) - set(_MODELS)
    if unknown:
        raise ValueError(
            f"config.models: unknown model(s) {sorted(unknown)}; known: {_MODELS}"
        )
    pandalm = name == "pandalm"
    load = D.load_pandalm if pandalm else D.load_tulu1
    judges = (
        [{"judges": config.pandalm_judges}, {"judges": False}] if pandalm else [{}] * 2
    )
    options = {"max_rows": config.max_rows or None}
    records, summary = load(config.data_dir, ties=config.ties, **options, **judges[0])
    gold, _ = load(config.data_dir, ties="keep", **options, **judges[1])
    reference = config.pandalm_reference if pandalm else config.tulu1_reference or None
    specs = [
        ModelSpec("homogeneous", None, None),
        ModelSpec("annotator_type", lambda r: r.annotator_type, "human"),
        ModelSpec("annotator", lambda r: r.annotator, reference),
    ]
    if not pandalm:  # Tülu has one annotator type
        del specs[1]
    return records, summary, gold, [s for s in specs if s.name in wanted]


def _fit(config, cmp: hr.Comparisons) -> analysis.DiagnosedFit:
    return analysis.diagnosed_fit(cmp, fit_options=config.fit.to_dict())


def _psi(spec: ModelSpec, train, rows, min_count: int):
    """(levels, ψ of ``train``, ψ of ``rows``); all None for k = 0."""
    if spec.column is None:
        return None, None, None
    return D.level_covariates(
        [spec.column(r) for r in train],
        [spec.column(r) for r in rows],
        reference=spec.reference,
        min_count=min_count,
    )


def _held_out(params, cmp: hr.Comparisons, types: np.ndarray | None) -> dict:
    ll = np.asarray(hr.model.log_likelihood(params, cmp))
    correct = np.asarray((hr.model.logits(params, cmp) > 0) == (cmp.y == 1))
    out = {"log_likelihood": float(ll.mean()), "accuracy": float(correct.mean())}
    if types is not None:
        for t in sorted(set(types)):
            out[f"log_likelihood_{t}"] = float(ll[types == t].mean())
            out[f"accuracy_{t}"] = float(correct[types == t].mean())
    return out


def _inference(config, prep) -> dict:
    """Full-data fits: γ intervals per model and likelihood-ratio tests."""
    records, raw = prep.records, prep.features
    index = D.text_index(records, prep.position)
    feature_map = F.fit_feature_map(
        raw.raw[index.index1] - raw.raw[index.index0],
        config.num_components,
        block=raw.block,
        min_rows=config.min_feature_rows,
    )
    phi = F.apply_feature_map(feature_map, raw.raw)
    out, hom_loss = {}, None
    for spec in prep.specs:
        levels, psi, _ = _psi(spec, records, records, config.min_annotator_count)
        if spec.column is not None and psi is None:
            continue
        cmp = D.to_comparisons(records, phi, index, psi=psi)
        fit = _fit(config, cmp)
        n = cmp.num_comparisons
        entry = {
            "k": int(cmp.psi.shape[1]),
            "d": int(cmp.phi0.shape[1]),
            "n": int(n),
            **{
                f: getattr(fit, f)
                for f in analysis.DiagnosedFit._fields
                if f not in ("params", "cov")
            },
        }
        if spec.column is None:
            hom_loss = fit.loss if fit.converged else None
        else:
            values = [spec.column(r) for r in records]
            entry.update(
                real_data_report.rationality(
                    values, levels, fit, entry["d"], config.alpha
                )
            )
            if hom_loss is not None and fit.converged:
                lr = inference.likelihood_ratio_test(
                    -n * hom_loss, -n * fit.loss, entry["k"]
                )
                entry["lr_stat"], entry["lr_p_value"] = lr.stat, lr.p
        out[spec.name] = entry
    kept = zip(raw.statistic_names, feature_map.keep, strict=True)
    out["_design"] = {
        "d": int(phi.shape[1]),
        "explained": feature_map.projection.explained,
        "stats_kept": [name for name, k in kept if k],
    }
    return out


def _evaluate_split(config, prep, split: int):
    """One prompt split: held-out metrics and BoN/pBoN choices of every model."""
    train, test = D.split_by_prompt(
        prep.records, test_fraction=config.test_fraction, seed=config.seed + split
    )
    pools = D.pools.candidate_pools(prep.gold, {r.prompt for r in test}, prep.position)
    types = np.array([r.annotator_type or "all" for r in test])
    types = types if len(set(types)) > 1 else None
    held, bon, status = {}, {}, {}
    for spec in prep.specs:
        _, psi_train, psi_test = _psi(spec, train, test, config.min_annotator_count)
        if spec.column is not None and psi_train is None:
            continue
        data = D.featurize_split(
            train,
            test,
            prep.features.raw,
            prep.position,
            config.num_components,
            block=prep.features.block,
            min_feature_rows=config.min_feature_rows,
            psi_train=psi_train,
            psi_test=psi_test,
        )
        fit = _fit(config, data.train)
        held[spec.name] = _held_out(fit.params, data.test, types)
        held[spec.name].update(converged=fit.converged, ok=fit.status == "ok")
        status[spec.name] = fit.status
        if pools.prompts and fit.status == "ok":
            chosen = D.pools.pool_choices(
                fit.params, data.train, data.phi, pools, config.alpha, cov=fit.cov
            )
            bon[spec.name] = {k: np.asarray(v) for k, v in chosen._asdict().items()}
            bon[spec.name]["prompt"] = np.array(pools.prompts, dtype=object)
    return held, bon, pools.skipped, status


def _evaluate_splits(config, key, prep) -> dict:
    """Held-out log-likelihood, accuracy and BoN/pBoN over ``num_splits`` splits."""
    per_model: dict = defaultdict(lambda: defaultdict(list))
    bon_rows: dict = defaultdict(lambda: defaultdict(list))
    statuses: dict = defaultdict(lambda: defaultdict(int))
    skipped = []
    for split in tqdm(range(config.num_splits), desc="splits", leave=False):
        held, bon, num_skipped, status = _evaluate_split(config, prep, split)
        skipped.append(num_skipped)
        for model, metrics in held.items():
            statuses[model][status[model]] += 1
            for name, value in metrics.items():
                per_model[model][name].append(value)
        for model, cols in bon.items():
            for name, value in cols.items():
                bon_rows[model][name].append(np.asarray(value))
    return {
        "held_out": real_data_report.mean_sd(per_model),
        "bon": real_data_report.bon_summaries(
            bon_rows, key, config.num_bootstrap, config.alpha
        ),
        "skipped_prompts": skipped,
        "fit_status": {m: dict(c) for m, c in statuses.items()},
    }


class Prepared(NamedTuple):
    """One dataset loaded and featurized (features of every distinct text, unfitted)."""

    records: list  # training-eligible records (ties excluded)
    summary: D.LoadSummary
    gold: list  # human records with ties kept (the BoN gold standard)
    specs: list  # the rationality models to fit
    position: dict  # (prompt, response) -> row of ``features.raw``
    features: F.RawFeatures  # raw features of every distinct text


def prepare(config, name: str) -> Prepared:
    """Loads dataset ``name`` and computes the raw features of its distinct texts."""
    records, summary, gold, specs = _load(config, name)
    position = D.pools.text_positions([*records, *gold])
    features = F.text_features(
        list(position),
        config.featurizer,
        hash_dim=config.hash_dim,
        cache_dir=config.cache_dir or None,
    )
    return Prepared(records, summary, gold, specs, position, features)


def run(config) -> dict:
    """Runs the study on the datasets of ``config`` and writes ``config.results_dir``."""
    config = experiments.prepare(config, real_data_config.PRESETS)
    if config.ties not in ("exclude", "error"):
        raise ValueError(
            f"config.ties must be 'exclude' or 'error', got {config.ties!r}"
        )
    names = [n.strip() for n in config.datasets.split(",") if n.strip()]
    if not names:
        raise ValueError("config.datasets names no dataset")
    key = jax.random.key(config.seed)
    datasets: dict[str, Any] = {}
    for name in tqdm(names, desc="datasets"):
        prep = prepare(config, name)
        key, sub = jax.random.split(key)
        datasets[name] = {
            "summary": prep.summary._asdict(),
            "num_prompts": len({r.prompt for r in prep.records}),
            "inference": _inference(config, prep),
            **_evaluate_splits(config, sub, prep),
        }
    # What computed the text features (the minilm featurizer's implementation).
    payload = {"featurizer": prep.features.featurizer, "datasets": datasets}
    table = real_data_report.tables({"config": config.to_dict(), **payload})
    experiments.write(config, payload, table, real_data_report.figures(payload))
    return payload


if __name__ == "__main__":
    experiments.launch(run, "configs/real_data.py")
