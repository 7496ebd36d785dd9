"""Real-data calibration study: are the reward-uncertainty sources honest on PandaLM?

The simulated study's sources and metrics (``experiments/calibration.py``) on real
preferences (PandaLM: 3 humans + 2 LLM judges; ties excluded; hashed n-gram features,
whitened SVD projection fitted on the training Δφ): Fisher, sandwich (clustered by
prompt: one prompt's items and annotators are dependent) and the bootstrap ensemble
(``hetrlhf.alignment.calibration.difference_sources``); the interval source needs
interval-valued judge scores, which the real data do not have.

The true reward is unknown, so the intervals are checked by a split-half test. The
training prompts are halved at random; both halves are fitted; on each held-out
comparison z = (Δ̂_A − Δ̂_B)/sqrt(v_A + v_B) is N(0, 1) when both variances are right
(both halves estimate the same (pseudo-true) parameter), so the coverage of
|Δ̂_A − Δ̂_B| <= z_ℓ·sqrt(v_A + v_B) checks the variance at half the sample size. Rows
of one PandaLM item (5 annotators) are not independent; Fisher and the ensemble's row
bootstrap both ignore that, which this check exposes. The ECE of the predicted
probabilities is that of the full-train fit on held-out labels. The study also
separates annotator disagreement (σ_γ̂(x) per annotator, with Wald intervals) from
estimation uncertainty (se of reward differences; the five LLMs ranked by mean reward
with Holm significance groups).

Run:  python -m experiments.calibration_real --config configs/calibration_real.py
"""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

import experiments
import hetrlhf as hr
from configs import calibration_real as real_config
from experiments import calibration as sim_study
from experiments import calibration_report
from hetrlhf import data as hdata
from hetrlhf import reporting
from hetrlhf.alignment import calibration
from hetrlhf.btl import model, multitest
from hetrlhf.btl.estimate import pad_rows
from hetrlhf.data import features as hfeatures
from hetrlhf.types import RewardEstimate


def _load(config):
    """PandaLM records split by prompt, projected features, training/test data."""
    records, summary = hdata.load_pandalm(
        config.data_dir, judges=config.judges, ties="exclude", max_rows=config.max_rows
    )
    train, test = hdata.split_by_prompt(
        records, test_fraction=config.test_fraction, seed=config.seed
    )
    index = hdata.unique_texts(train + test)
    raw = hfeatures.hashed_features(
        index.pairs, hfeatures.HashingConfig(dim=config.hash_dim)
    )
    tr_rows, te_rows = np.arange(len(train)), np.arange(len(train), len(records))
    dphi_train = raw[index.index1[tr_rows]] - raw[index.index0[tr_rows]]
    proj = hfeatures.fit_projection(
        dphi_train, config.num_components, center=False, whiten=True
    )
    phi = hfeatures.apply_projection(proj, raw)
    levels = hdata.fit_levels(
        [r.annotator for r in train],
        reference=config.reference or None,
        min_count=config.min_count,
    )
    psi_tr = hdata.one_hot([r.annotator for r in train], levels)
    psi_te = hdata.one_hot([r.annotator for r in test], levels, unknown="reference")

    def subset(rows):
        return hdata.TextIndex(index.pairs, index.index0[rows], index.index1[rows])

    tr = hdata.to_comparisons(train, phi, subset(tr_rows), psi=psi_tr)
    te = hdata.to_comparisons(test, phi, subset(te_rows), psi=psi_te)
    return records, summary, train, test, index, phi, levels, tr, te


def _llm_ranking(params, tr, sandwich_cov, records, index, phi, alpha=0.05):
    """The LLMs ranked by the mean reward of their responses, Holm groups.

    se of a model's mean reward: estimation (θ̂, sandwich covariance clustered by
    prompt, correlated across models through Σ_θ) plus the sampling of its responses
    (s²_m / n_m, independent across models).
    """
    d = tr.phi0.shape[-1]
    models = sorted({m for r in records for m in (r.model_0, r.model_1) if m})
    rows_of = {m: set() for m in models}
    for i, r in enumerate(records):
        rows_of[r.model_0].add(int(index.index0[i]))
        rows_of[r.model_1].add(int(index.index1[i]))
    mean_phi = np.stack([phi[sorted(rows_of[m])].mean(0) for m in models])
    sig = np.asarray(sandwich_cov)[:d, :d]
    est = hr.reward_interval(params, tr, jnp.asarray(mean_phi), cov=sandwich_cov)
    theta = np.asarray(params.theta)
    sampling = np.array(
        [
            np.var(phi[sorted(rows_of[m])] @ theta, ddof=1) / len(rows_of[m])
            for m in models
        ]
    )
    full_cov = mean_phi @ sig @ mean_phi.T + np.diag(sampling)
    est = RewardEstimate(est.mean, jnp.asarray(np.diag(full_cov)))
    ranked = multitest.rank_with_groups(est, alpha, cov=jnp.asarray(full_cov))
    out = {
        models[m]: {
            "mean": float(est.mean[m]),
            "se": float(np.sqrt(est.var[m])),
            "rank": int(ranked.rank[m]),
            "group": int(ranked.group[m]),
            "letters": ranked.letters[m],
        }
        for m in range(len(models))
    }
    rows = [
        [models[m], len(rows_of[models[m]]), *list(out[models[m]].values())]
        for m in ranked.order
    ]
    header = ["model", "responses", "mean reward", "se", "rank", "group", "letters"]
    return out, reporting.markdown_table(header, rows)


def _split_half(key, config, kernel, train, tr, te, cluster, size):
    """Per source, the [num_splits, m] differences Δ̂_A − Δ̂_B with variance v_A + v_B."""
    diffs = {}
    pos = {id(r): i for i, r in enumerate(train)}
    keys = jax.random.split(key, config.num_splits)
    for s in tqdm(range(config.num_splits), desc="real split-half"):
        halves = hdata.split_by_prompt(
            train, test_fraction=0.5, seed=config.seed + 1000 + s
        )
        est_halves = []
        for half, k in zip(halves, jax.random.split(keys[s])):
            idx = np.array([pos[id(r)] for r in half])
            # numpy indexing and padding: halves differ in size, and jnp ops on
            # new shapes would compile once per shape.
            sub = jax.tree.map(lambda a, i=idx: np.asarray(a)[i], tr)
            src = kernel(
                k,
                pad_rows(sub, size, weighted=False),
                te.dphi,
                num_real=len(idx),
                cluster=_pad_ids(cluster[idx], size),
            )
            est_halves.append(src.estimates)
        for name, a in est_halves[0].items():
            b = est_halves[1][name]
            diffs.setdefault(name, []).append(
                RewardEstimate(a.mean - b.mean, a.var + b.var)
            )
    return {
        name: RewardEstimate(
            np.stack([e.mean for e in ds]), np.stack([e.var for e in ds])
        )
        for name, ds in diffs.items()
    }


def _pad_ids(c, size):
    """Cluster ids padded with cluster 0 (padding rows contribute nothing)."""
    return jnp.asarray(np.concatenate([c, np.zeros(size - len(c), c.dtype)]))


def run_real(key, config):
    """Full-train sources and ECE, split-half interval check, the three tables."""
    records, summary, train, test, index, phi, levels, tr, te = _load(config)
    # At least one padding row: unweighted pad_rows (the ensemble gives them weight 0).
    size = tr.y.shape[0] + 1
    # Sandwich clusters: the training prompts.
    prompt_id = {}
    cluster = np.array([prompt_id.setdefault(r.prompt, len(prompt_id)) for r in train])
    kernel = jax.jit(
        functools.partial(
            calibration.difference_sources,
            options=sim_study.ensemble_options(config),
            num_clusters=len(prompt_id),
        )
    )
    key_full, key_split = jax.random.split(key)
    src = kernel(
        key_full,
        pad_rows(tr, size, weighted=False),
        te.dphi,
        num_real=tr.y.shape[0],
        cluster=_pad_ids(cluster, size),
    )
    params, ests = src.fit.params, src.estimates
    if not bool(src.fit.converged):
        warnings.warn(
            "calibration_real: the full-train fit did not converge",
            hr.ConvergenceWarning,
            stacklevel=2,
        )
    sigma = model.rationality(params.gamma, te.psi, te.psi0)
    fisher = ests["fisher"]
    sources = {}
    for name, est in {
        **ests,
        "plug-in (no variance)": RewardEstimate(
            fisher.mean, jnp.zeros_like(fisher.var)
        ),
    }.items():
        sigma_s = sim_study.sigma_for(name, sigma)
        sources[name] = sim_study.metrics(
            est, None, te.y, sigma_s, config.levels, config.num_bins
        )
    halves = _split_half(key_split, config, kernel, train, tr, te, cluster, size)
    for name, stacked in halves.items():
        zero = np.zeros_like(stacked.mean)
        sources[name].update(
            sim_study.metrics(stacked, zero, None, None, config.levels, config.num_bins)
        )
    rat, table_rat = calibration_report.rationality(
        params, tr, src.sandwich, train, levels
    )
    estimation, table_est = calibration_report.estimation(
        params, tr, ests, src.sandwich
    )
    ranking, table_llm = _llm_ranking(params, tr, src.sandwich, records, index, phi)
    res = {
        "num_records": len(records),
        "num_train": len(train),
        "num_test": len(test),
        "excluded": {k: len(v) for k, v in summary.excluded.items()},
        "annotator_levels": {"names": levels.names, "reference": levels.reference},
        "converged_fisher": bool(src.fit.converged),
        "converged_ensemble_heads": float(src.ensemble_converged),
        "sources": sources,
        "rationality": rat,
        "estimation": estimation,
        "llm_ranking": ranking,
    }
    tables = (
        "#### Annotator disagreement: rationality σ_γ̂(x) per annotator (Wald 95%)\n\n"
        + table_rat
        + "\n\n#### Estimation uncertainty of the rewards\n\n"
        + table_est
        + "\n\n#### LLMs ranked by the mean reward of their responses (se: sandwich "
        "estimation se + response sampling; differences tested with the full "
        "covariance; Holm, α = 0.05; same letter = not separable)\n\n" + table_llm
    )
    return res, tables


def run(config) -> dict:
    """Runs the study, writes ``config.results_dir`` and returns the payload."""
    config = experiments.prepare(config, real_config.PRESETS)
    sim_study.check_config(config)
    # The second half of the seed's split (the first one is the simulated study's).
    _, key = jax.random.split(jax.random.key(config.seed))
    levels = list(config.levels)
    real, tables = run_real(key, config)
    table = (
        "### Real data (PandaLM, held-out prompts)\n\n"
        + calibration_report.coverage_table(
            real["sources"],
            levels,
            f"{real['num_train']} train / {real['num_test']} test rows; coverage = "
            f"split-half check over {config.num_splits} halvings of the training "
            "prompts (z = (Δ̂_A − Δ̂_B)/sqrt(v_A + v_B)); ECE on held-out labels of the "
            f"full-train fit; {calibration_report.ENSEMBLE_NOTE}",
        )
    )
    table += "\n\n" + tables
    figures = calibration_report.figures([("real (PandaLM)", real)], levels)
    payload = {"real": real}
    experiments.write(config, payload, table, figures)
    return payload


if __name__ == "__main__":
    experiments.launch(run, "configs/calibration_real.py")
