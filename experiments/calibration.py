"""Calibration study: are the reward-uncertainty sources honest? (issue 7, DESIGN.md §4)

Every source returns the one currency ``RewardEstimate(mean, var)`` of a reward
difference Δ = r(a¹) − r(a⁰) on held-out comparisons, and every metric below consumes
only that:

* Fisher: ``hr.reward_interval(θ̂, data, Δφ)`` (Wald, from the observed information).
* Sandwich: the same Δ̂ with the cluster-robust covariance H⁻¹BH⁻¹
  (``hr.sandwich_covariance``; simulated: HC0, every comparison its own
  cluster; real: clustered by prompt). Not one of the issue's three sources: added
  because the real-data check below shows why it is needed.
* Ensemble: ``hetrlhf.alignment.ensemble`` — K linear Bradley–Terry heads, each from its own
  N(0, I) initialisation and trained by adam on its own multinomial (bootstrap)
  resample of the training rows (``fit_heads``; all heads in one vmap), read by
  ``ensemble_reward`` (head mean, sample variance with ddof 1). This is the ensemble
  the PPO study uses. Its model has no annotator rationality (σ ≡ 1), so on
  heterogeneous annotators its θ̃ estimates a rescaled θ* (the marginal preference
  curve E_σ[sigmoid(σ θ*ᵀΔφ)] is flatter than sigmoid(θ*ᵀΔφ)); its coverage of the
  true θ*ᵀΔφ therefore measures bias and variance together, as a user of the
  ensemble would meet them. Its predicted probabilities use its own σ ≡ 1.
  (An earlier version used a bootstrap of ``hr.fit`` fits as a stand-in; dropped:
  under the correct model it estimates the same sampling variance as the Fisher and
  sandwich sources, and it tripled the compile time.)
* Interval (simulated data only): a simulated judge scores each response with its
  true reward plus N(0, τ²) noise and reports [score ∓ width_scale·√3·τ]; read as
  Uniform(lo, hi) by ``hr.interval_rewards``; Δ's variance is the sum of the two
  responses' variances (independent judge calls). The real data have no
  interval-valued judge scores, so this source is simulated only.

Metrics:
* coverage of the nominal 50/80/90/95% intervals mean ± z·sd of the reward difference
  (simulated: against the true θ*ᵀΔφ; real: see the split-half check below), with a
  Monte Carlo standard error over replicates/splits, and the robust scale factor
  s = median|z|/0.674 (s > 1: over-confident by the factor s);
* ECE (10 equal-width bins) of the predicted preference probabilities
  E[sigmoid(σ̂·Δ)] (probit approximation) on held-out labels, with σ̂ = σ_γ̂(x) from the
  Fisher fit for the Fisher, sandwich and interval sources (so they differ only in
  their reward estimate) and σ ≡ 1 for the ensemble (its own model), and the plug-in
  sigmoid(σ̂·Δ̂) as a baseline.

Real data (PandaLM: 3 humans + 2 LLM judges; ties excluded; hashed n-gram features,
whitened SVD projection fitted on the training Δφ): the true reward is unknown, so the
intervals are checked by a split-half test. The training prompts are halved at random;
both halves are fitted; on each held-out comparison z = (Δ̂_A − Δ̂_B)/sqrt(v_A + v_B) is
N(0, 1) when both variances are right (both halves estimate the same (pseudo-true)
parameter), so the coverage of |Δ̂_A − Δ̂_B| <= z_ℓ·sqrt(v_A + v_B) checks the variance
at half the sample size. Rows of one PandaLM item (5 annotators) are not independent;
Fisher and the ensemble's row bootstrap both ignore that, which this check exposes. The
real-data section also separates annotator disagreement (σ_γ̂(x) per annotator, with
Wald intervals) from estimation uncertainty (se of reward differences; the five LLMs
ranked by mean reward with Holm significance groups).

Run:  python -m experiments.calibration --config configs/calibration.py
"""

from __future__ import annotations

import functools
import math
import warnings

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from scipy import stats
from tqdm import tqdm

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import configs
import experiments
import hetrlhf as hr
from configs import calibration as calibration_config
from hetrlhf import data as hdata
from hetrlhf import reporting
from hetrlhf.alignment import calibration, ensemble
from hetrlhf.alignment.interval_rewards import interval_moments
from hetrlhf.btl import model, multitest
from hetrlhf.btl.confidence import sandwich_covariance
from hetrlhf.data import features as hfeatures
from hetrlhf.data import simulate as hsim
from hetrlhf.types import Comparisons, RewardEstimate

# A head counts as converged when its loss gradient norm is below this.
ENSEMBLE_TOL = 1e-3

ENSEMBLE_NOTE = (
    "ensemble = hetrlhf.alignment.ensemble (bootstrap BT heads without rationality, σ ≡ 1 in "
    "its predicted probabilities)"
)


# --------------------------------------------------------------------------------------
# Sources, for one dataset (vmapped / jitted by the callers).
# --------------------------------------------------------------------------------------


def _ensemble(key, train: Comparisons, num_real, test_dphi, *, ens):
    """``hetrlhf.alignment.ensemble.train_ensemble`` on the first ``num_real`` rows ->
    test Δ estimate.

    Rows at index >= num_real are padding and get weight 0 (with ``ens.bootstrap``
    each head's case resample draws num_real comparisons from the real rows only), so
    one compiled program serves every sample size.

    Returns:
      (``RewardEstimate`` of test Δ, [K] gradient norms of the heads).
    """
    n = train.y.shape[0]
    real = (jnp.arange(n) < num_real).astype(train.y.dtype)
    fit = ensemble.train_ensemble(key, train._replace(weight=real), ens)
    return ensemble.ensemble_reward(fit.params, test_dphi), fit.grad_norm


def _ensemble_options(config) -> ensemble.EnsembleOptions:
    e = config.ensemble
    return ensemble.EnsembleOptions(
        num_heads=int(config.num_heads),
        num_steps=int(e.num_steps),
        learning_rate=float(e.learning_rate),
        optimizer="adam",
        bootstrap=bool(e.bootstrap),
        l2=float(e.l2),
        init_scale=float(e.init_scale),
    )


def _difference_sources(
    key, train, num_real, test_dphi, cluster, *, ens, num_clusters=None
):
    """Fisher, sandwich and ensemble ``RewardEstimate``s of test Δ.

    Args:
      cluster: [n] cluster ids of the training rows for the sandwich source (None:
        every row its own cluster, HC0).
      ens: ``hetrlhf.alignment.ensemble.EnsembleOptions``.
      num_clusters: static number of clusters when ``cluster`` is given.

    Returns:
      (Fisher ``FitResult``, {source name: ``RewardEstimate``}, share of the ensemble
      heads whose gradient norm is below ``ENSEMBLE_TOL``, the sandwich covariance).
    """
    fit = hr.fit(train)
    sandwich = sandwich_covariance(
        fit.params, train, cluster, num_clusters=num_clusters
    )
    ens_est, grad_norm = _ensemble(key, train, num_real, test_dphi, ens=ens)
    ests = {
        "fisher": hr.reward_interval(fit.params, train, test_dphi),
        "sandwich": hr.reward_interval(fit.params, train, test_dphi, cov=sandwich),
        "ensemble": ens_est,
    }
    converged = jnp.mean((grad_norm < ENSEMBLE_TOL).astype(test_dphi.dtype))
    return fit, ests, converged, sandwich


def _sigma_for(name, sigma):
    """σ used in a source's predicted probabilities: its own model's (1 for the
    rationality-free ensemble), else the Fisher fit's σ_γ̂(x)."""
    return np.ones_like(np.asarray(sigma)) if name == "ensemble" else sigma


def _pad(train: Comparisons, size: int) -> Comparisons:
    """Appends zero rows (Δφ = 0, y = 0, ψ = 0, ψ0 = 1) up to ``size`` rows.

    A row with Δφ = 0 has η = 0 whatever (θ, γ): it adds the constant log 2 to the
    summed loss and nothing to its gradient or Hessian, so the MLE and the covariance
    I⁻¹/n (n counting the padding, I scaled by n_real/n) are unchanged.
    """
    extra = size - train.y.shape[0]

    def pad(a, value=0.0):  # numpy: no compile per input shape
        a = np.asarray(a)
        width = [(0, extra)] + [(0, 0)] * (a.ndim - 1)
        return jnp.asarray(np.pad(a, width, constant_values=value))

    return Comparisons(
        pad(train.phi0),
        pad(train.phi1),
        pad(train.y),
        pad(train.psi),
        pad(train.psi0, 1.0),
    )


# --------------------------------------------------------------------------------------
# Simulated data.
# --------------------------------------------------------------------------------------


def _interval_differences(key, r0, r1, width_scales, noise_low, noise_high):
    """Judge intervals for both responses -> {w: ``RewardEstimate`` of r1 − r0}.

    One judge (its noise levels τ and errors drawn once), reported at each width scale
    w: [score ∓ w·√3·τ]. The sources of different w are paired (common random
    numbers), so their coverages are compared on the same judge errors.
    """
    k_tau, k_eps = jax.random.split(key)
    tau = jax.random.uniform(k_tau, (2,) + r0.shape, r0.dtype, noise_low, noise_high)
    score = jnp.stack([r0, r1]) + tau * jax.random.normal(k_eps, tau.shape, r0.dtype)
    out = {}
    for w in width_scales:
        half = w * math.sqrt(3.0) * tau
        est = interval_moments(score - half, score + half)
        out[w] = RewardEstimate(est.mean[1] - est.mean[0], est.var[0] + est.var[1])
    return out


def sim_replicate(key, *, design, num_train, num_test, ens, width_scales, noise):
    """One replicate: simulate, fit, and every source's estimate of the test Δ.

    The training and test comparisons are one simulated sample of num_train +
    num_test iid rows, split (one simulator program to compile instead of two).

    Returns a dict of arrays: per source "<name>/mean", "<name>/var" [m]; "truth" [m]
    (θ*ᵀΔφ), "y" [m], "sigma_hat" [m] (σ_γ̂(x) of the Fisher fit), "converged" [2].
    """
    k_data, k_boot, k_judge = jax.random.split(key, 3)
    both = hsim.simulate(k_data, design, num_train + num_test)
    train = jax.tree.map(lambda a: a[:num_train], both)
    test = jax.tree.map(lambda a: a[num_train:], both)
    fit, ests, ens_conv, _ = _difference_sources(
        k_boot, train, num_train, test.dphi, None, ens=ens
    )
    theta_star = jnp.asarray(design.theta, test.phi0.dtype)
    out = {
        "truth": test.dphi @ theta_star,
        "y": test.y,
        "true_prob": hsim.label_probability(design, test),
        "sigma_hat": model.rationality(fit.params.gamma, test.psi, test.psi0),
        "converged": jnp.stack([fit.converged.astype(ens_conv.dtype), ens_conv]),
    }
    for name, est in ests.items():
        out[f"{name}/mean"] = est.mean
        out[f"{name}/var"] = est.var
    r0, r1 = test.phi0 @ theta_star, test.phi1 @ theta_star
    judged = _interval_differences(k_judge, r0, r1, width_scales, *noise)
    for w, est in judged.items():
        out[f"interval x{w:g}/mean"] = est.mean
        out[f"interval x{w:g}/var"] = est.var
    return out


def _source_names(out):
    return [k[: -len("/mean")] for k in out if k.endswith("/mean")]


@functools.partial(jax.jit, static_argnames="num_bins")
def _coverage_arrays(mean, var, truth, levels, *, num_bins):
    """Jitted coverage metrics of [G, m] estimates (one compile, not one per op)."""
    del num_bins
    flat = RewardEstimate(mean.ravel(), var.ravel())
    cov = calibration.interval_coverage(flat, truth.ravel(), levels)
    per_group = jax.vmap(calibration.interval_coverage, in_axes=(0, 0, None))(
        RewardEstimate(mean, var), truth, levels
    )
    return {
        "coverage": cov,
        "per_group": per_group,
        "sd_scale": calibration.sd_scale(flat, truth.ravel()),
        "mean_sd": jnp.mean(jnp.sqrt(var)),
    }


@functools.partial(jax.jit, static_argnames="num_bins")
def _probability_arrays(mean, var, y, sigma, *, num_bins):
    """Jitted ECE and reliability curve of the predicted preference probabilities."""
    diff = RewardEstimate(mean.ravel(), var.ravel())
    prob = calibration.predictive_probability(diff, sigma.ravel())
    yy = y.ravel()
    return {
        "ece": calibration.expected_calibration_error(prob, yy, num_bins),
        "reliability": calibration.reliability_curve(prob, yy, num_bins)._asdict(),
    }


def _metrics(est, truth_or_none, y, sigma, levels, num_bins, groups):
    """Coverage (with MC se over ``groups`` rows), scale factor, ECE, reliability."""
    res = {}
    mean, var = jnp.asarray(est.mean), jnp.asarray(est.var)
    if truth_or_none is not None:
        if mean.ndim == 1:
            mean, var = mean[None], var[None]
        arr = jax.tree.map(
            np.asarray,
            _coverage_arrays(
                mean,
                var,
                jnp.asarray(truth_or_none).reshape(mean.shape),
                jnp.asarray(levels),
                num_bins=num_bins,
            ),
        )
        res["coverage"] = arr["coverage"]
        res["coverage_se"] = arr["per_group"].std(0, ddof=1) / math.sqrt(groups)
        res["sd_scale"] = float(arr["sd_scale"])
        res["mean_sd"] = float(arr["mean_sd"])
    if y is not None:
        arr = _probability_arrays(
            mean,
            var,
            jnp.asarray(y).reshape(mean.shape),
            jnp.asarray(sigma, mean.dtype).reshape(mean.shape),
            num_bins=num_bins,
        )
        res["ece"] = float(arr["ece"])
        res["reliability"] = {k: np.asarray(v) for k, v in arr["reliability"].items()}
    return res


def run_simulation(key, config):
    """Simulated part: every source on ``num_replicates`` replicates."""
    cfg = config.sim
    design = hsim.get_design(cfg.design)
    replicate = functools.partial(
        sim_replicate,
        design=design,
        num_train=cfg.num_train,
        num_test=cfg.num_test,
        ens=_ensemble_options(config),
        width_scales=tuple(cfg.width_scales),
        noise=(cfg.judge_noise_low, cfg.judge_noise_high),
    )
    keys = jax.random.split(key, cfg.num_replicates)
    out = experiments.replicates(
        config, replicate, keys, part="simulation", chunk_size=cfg.chunk_size
    )
    levels = jnp.asarray(config.levels)
    res = {
        "design": cfg.design,
        "converged_fisher": float(out["converged"][:, 0].mean()),
        "converged_ensemble_heads": float(out["converged"][:, 1].mean()),
        "sources": {},
    }
    for name in _source_names(out):
        est = RewardEstimate(out[f"{name}/mean"], out[f"{name}/var"])
        res["sources"][name] = _metrics(
            est,
            out["truth"],
            out["y"],
            _sigma_for(name, out["sigma_hat"]),
            levels,
            config.num_bins,
            cfg.num_replicates,
        )
    plug = RewardEstimate(out["fisher/mean"], np.zeros_like(out["fisher/var"]))
    res["sources"]["plug-in (no variance)"] = _metrics(
        plug, None, out["y"], out["sigma_hat"], levels, config.num_bins, None
    )
    floor = calibration.expected_calibration_error(
        jnp.asarray(out["true_prob"]).ravel(),
        jnp.asarray(out["y"]).ravel(),
        config.num_bins,
    )
    res["ece_true_probabilities"] = float(floor)
    return res


# --------------------------------------------------------------------------------------
# Real data.
# --------------------------------------------------------------------------------------


def _subset_index(index: hdata.TextIndex, rows) -> hdata.TextIndex:
    return hdata.TextIndex(index.pairs, index.index0[rows], index.index1[rows])


def _load_real(config):
    cfg = config.real
    records, summary = hdata.load_pandalm(
        cfg.data_dir, judges=cfg.judges, ties="exclude"
    )
    train, test = hdata.split_by_prompt(
        records, test_fraction=cfg.test_fraction, seed=config.seed
    )
    index = hdata.unique_texts(train + test)
    raw = hfeatures.hashed_features(
        index.pairs, hfeatures.HashingConfig(dim=cfg.hash_dim)
    )
    tr_rows, te_rows = np.arange(len(train)), np.arange(len(train), len(records))
    dphi_train = raw[index.index1[tr_rows]] - raw[index.index0[tr_rows]]
    proj = hfeatures.fit_projection(
        dphi_train, cfg.num_components, center=False, whiten=True
    )
    phi = hfeatures.apply_projection(proj, raw)
    levels = hdata.fit_levels(
        [r.annotator for r in train],
        reference=cfg.reference or None,
        min_count=cfg.min_count,
    )
    psi_tr = hdata.one_hot([r.annotator for r in train], levels)
    psi_te = hdata.one_hot([r.annotator for r in test], levels, unknown="reference")
    tr = hdata.to_comparisons(train, phi, _subset_index(index, tr_rows), psi=psi_tr)
    te = hdata.to_comparisons(test, phi, _subset_index(index, te_rows), psi=psi_te)
    return records, summary, train, test, index, phi, levels, tr, te


def _real_tables(params, tr, ests, sandwich_cov, train, records, index, phi, levels):
    """Item 4: annotator disagreement vs estimation uncertainty."""
    z95 = stats.norm.ppf(0.975)
    ci = hr.confidence_intervals(params, tr)
    counts = {}
    types = {}
    for r in train:
        counts[r.annotator] = counts.get(r.annotator, 0) + 1
        types[r.annotator] = r.annotator_type
    d = tr.phi0.shape[-1]
    se_sw = np.sqrt(np.diagonal(np.asarray(sandwich_cov)))
    rat_rows, rat = [], {}
    ref = levels.reference
    rat[ref] = {"sigma": 1.0, "se": 0.0, "lower": 1.0, "upper": 1.0}
    rat_rows.append([ref, types[ref], counts[ref], 1.0, "reference", "-", "-", "-"])
    for j, name in enumerate(levels.names):
        g, se, sw = float(ci.estimate.gamma[j]), float(ci.se.gamma[j]), se_sw[d + j]
        s = 1.0 + g
        rat[name] = {
            "sigma": s,
            "se": se,
            "lower": s - z95 * se,
            "upper": s + z95 * se,
            "se_sandwich": float(sw),
        }
        rat_rows.append(
            [
                name,
                types[name],
                counts[name],
                s,
                se,
                f"[{s - z95 * se:.3f}, {s + z95 * se:.3f}]",
                float(sw),
                f"[{s - z95 * sw:.3f}, {s + z95 * sw:.3f}]",
            ]
        )
    for name in levels.pooled:
        rat_rows.append([name, types[name], counts[name], 1.0, "pooled", "-", "-", "-"])
    table_rat = reporting.markdown_table(
        [
            "annotator",
            "type",
            "train rows",
            "σ̂ = 1 + γ̂",
            "se (Fisher)",
            "95% CI (Fisher)",
            "se (sandwich)",
            "95% CI (sandwich)",
        ],
        rat_rows,
    )

    alpha = 0.05
    header_est = ["estimation uncertainty", "Fisher", "sandwich (by prompt)"]
    cols = []
    for est in (ests["fisher"], ests["sandwich"]):
        se_diff = np.sqrt(np.asarray(est.var))
        adj = multitest.adjust_comparisons(hr.inference.difference_ztest(est))
        cols.append(
            [
                float(np.median(se_diff)),
                f"{np.quantile(se_diff, 0.1):.3f} / {np.quantile(se_diff, 0.9):.3f}",
                float(np.median(np.abs(np.asarray(est.mean)))),
                float(np.mean(np.asarray(adj.p_value) < alpha)),
                float(np.mean(np.asarray(adj.p_holm) < alpha)),
                float(np.mean(np.asarray(adj.p_bh) < alpha)),
            ]
        )
    se_theta_sw = se_sw[:d]
    cols[0].append(float(np.max(np.asarray(ci.se.theta))))
    cols[1].append(float(np.max(se_theta_sw)))
    names = [
        "median se of held-out Δ̂",
        "10% / 90% quantile of se(Δ̂)",
        "median |Δ̂|",
        "held-out pairs with Δ ≠ 0 at 5% (raw)",
        "  … Holm-adjusted",
        "  … BH-adjusted",
        "max se of θ̂_j",
    ]
    est_rows = [[n, f, w] for n, f, w in zip(names, *cols)]
    est_rows.append(
        ["condition number of the information", float(ci.condition_number), "-"]
    )
    table_est = reporting.markdown_table(header_est, est_rows)

    # The five LLMs ranked by the mean reward of their responses.
    models = sorted({m for r in records for m in (r.model_0, r.model_1) if m})
    rows_of = {m: set() for m in models}
    for i, r in enumerate(records):
        rows_of[r.model_0].add(int(index.index0[i]))
        rows_of[r.model_1].add(int(index.index1[i]))
    mean_phi = np.stack([phi[sorted(rows_of[m])].mean(0) for m in models])
    sig = np.asarray(sandwich_cov)[:d, :d]
    est = hr.reward_interval(params, tr, jnp.asarray(mean_phi), cov=sandwich_cov)
    # se of a model's mean reward: estimation (θ̂, sandwich covariance clustered by
    # prompt, correlated across models through Σ_θ) plus the sampling of its responses (s²_m / n_m, independent across models).
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
    llm_rows = [
        [
            models[m],
            len(rows_of[models[m]]),
            float(est.mean[m]),
            float(np.sqrt(est.var[m])),
            int(ranked.rank[m]),
            int(ranked.group[m]),
            ranked.letters[m],
        ]
        for m in ranked.order
    ]
    table_llm = reporting.markdown_table(
        ["model", "responses", "mean reward", "se", "rank", "group", "letters"],
        llm_rows,
    )
    out = {
        "rationality": rat,
        "estimation": {str(r[0]): {"fisher": r[1], "sandwich": r[2]} for r in est_rows},
        "llm_ranking": {
            models[m]: {
                "mean": float(est.mean[m]),
                "se": float(np.sqrt(est.var[m])),
                "rank": int(ranked.rank[m]),
                "group": int(ranked.group[m]),
                "letters": ranked.letters[m],
            }
            for m in range(len(models))
        },
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
    return out, tables


def run_real(key, config):
    """Real-data part: full-train sources, split-half interval check, item-4 tables."""
    cfg = config.real
    records, summary, train, test, index, phi, levels, tr, te = _load_real(config)
    size = tr.y.shape[0] + 1  # at least one padding row (see _ensemble)
    # Sandwich clusters: the training prompts (one prompt's items and annotators are
    # dependent); padding rows go to cluster 0 and contribute nothing.
    prompt_id = {}
    cluster = np.array([prompt_id.setdefault(r.prompt, len(prompt_id)) for r in train])
    kernel = jax.jit(
        functools.partial(
            _difference_sources,
            ens=_ensemble_options(config),
            num_clusters=len(prompt_id),
        )
    )

    def pad_cluster(c):
        return jnp.asarray(np.concatenate([c, np.zeros(size - len(c), c.dtype)]))

    key_full, key_split = jax.random.split(key)
    fit, ests, ens_conv, sandwich_cov = kernel(
        key_full, _pad(tr, size), tr.y.shape[0], te.dphi, pad_cluster(cluster)
    )
    fisher = ests["fisher"]
    params = fit.params
    if not bool(fit.converged):
        warnings.warn(
            "calibration: the full-train fit on the real data did not converge",
            hr.ConvergenceWarning,
            stacklevel=2,
        )
    sigma = model.rationality(params.gamma, te.psi, te.psi0)
    levels_arr = jnp.asarray(config.levels)
    sources = {}
    for name, est in ests.items():
        sources[name] = _metrics(
            est, None, te.y, _sigma_for(name, sigma), levels_arr, config.num_bins, None
        )
    plug = RewardEstimate(fisher.mean, jnp.zeros_like(fisher.var))
    sources["plug-in (no variance)"] = _metrics(
        plug, None, te.y, sigma, levels_arr, config.num_bins, None
    )

    # Split-half check of the reward-difference variances.
    z_by_source = {name: [] for name in ests}
    keys = jax.random.split(key_split, cfg.num_splits)
    for s in tqdm(range(cfg.num_splits), desc="real split-half"):
        half_a, half_b = hdata.split_by_prompt(
            train, test_fraction=0.5, seed=config.seed + 1000 + s
        )
        ka, kb = jax.random.split(keys[s])
        est_halves = []
        pos = {id(r): i for i, r in enumerate(train)}
        for half, k in ((half_a, ka), (half_b, kb)):
            idx = np.array([pos[id(r)] for r in half])
            # numpy indexing and padding: halves differ in size, and jnp ops on
            # new shapes would compile once per shape.
            sub = jax.tree.map(lambda a, i=idx: np.asarray(a)[i], tr)
            _, half_ests, _, _ = kernel(
                k, _pad(sub, size), len(idx), te.dphi, pad_cluster(cluster[idx])
            )
            est_halves.append(half_ests)
        for name, diffs in z_by_source.items():
            a, b = est_halves[0][name], est_halves[1][name]
            diffs.append(RewardEstimate(a.mean - b.mean, a.var + b.var))
    for name, diffs in z_by_source.items():
        stacked = RewardEstimate(
            np.stack([e.mean for e in diffs]), np.stack([e.var for e in diffs])
        )
        zero = np.zeros_like(stacked.mean)
        sources[name].update(
            _metrics(
                stacked, zero, None, None, levels_arr, config.num_bins, cfg.num_splits
            )
        )
    tables_out, tables = _real_tables(
        params, tr, ests, sandwich_cov, train, records, index, phi, levels
    )
    res = {
        "num_records": len(records),
        "num_train": len(train),
        "num_test": len(test),
        "excluded": {k: len(v) for k, v in summary.excluded.items()},
        "annotator_levels": {"names": levels.names, "reference": levels.reference},
        "converged_fisher": bool(fit.converged),
        "converged_ensemble_heads": float(ens_conv),
        "sources": sources,
        **tables_out,
    }
    return res, tables


# --------------------------------------------------------------------------------------
# Tables, figures, entry point.
# --------------------------------------------------------------------------------------


def _verdict(res, levels):
    """'over-confident by ×s' / 'under-confident' / 'calibrated' from coverage."""
    cov, se = np.asarray(res["coverage"]), np.asarray(res["coverage_se"])
    gap = cov - np.asarray(levels)
    if np.all(np.abs(gap) <= 2 * se + 0.01):
        return "calibrated"
    kind = "over-confident" if gap.mean() < 0 else "under-confident"
    return f"{kind} (sd ×{res['sd_scale']:.2f} needed)"


def _coverage_table(sources, levels, check):
    header = ["source"] + [f"cov. {int(100 * lv)}%" for lv in levels]
    header += ["scale s", "ECE", "verdict"]
    rows = []
    for name, res in sources.items():
        if "coverage" in res:
            cells = [
                f"{c:.3f} ± {s:.3f}"
                for c, s in zip(res["coverage"], res["coverage_se"])
            ]
            rows.append(
                [name, *cells, res["sd_scale"], res["ece"], _verdict(res, levels)]
            )
        else:
            rows.append([name] + ["-"] * len(levels) + ["-", res["ece"], "-"])
    return f"{check}\n\n" + reporting.markdown_table(header, rows)


def _figures(sim, real, levels):
    figs = {}
    names = list(dict.fromkeys([*sim["sources"], *(real["sources"] if real else [])]))
    color = {n: f"C{i}" for i, n in enumerate(names)}
    parts = [("simulated", sim)] + ([("real (PandaLM)", real)] if real else [])
    fig, axes = plt.subplots(
        1, len(parts), figsize=(5.5 * len(parts), 4.6), squeeze=False
    )
    for ax, (title, res) in zip(axes[0], parts):
        ax.plot([0, 1], [0, 1], "k:", lw=1)
        for name, r in res["sources"].items():
            rel = r["reliability"]
            keep = rel["count"] > 0
            ax.plot(
                rel["mean_prob"][keep],
                rel["mean_label"][keep],
                "o-",
                ms=3,
                color=color[name],
                label=f"{name} (ECE {r['ece']:.3f})",
            )
        ax.set_xlabel("predicted P(y = 1)")
        ax.set_ylabel("observed frequency of y = 1")
        ax.set_title(f"reliability, {title}")
        ax.legend(fontsize=7)
    figs["reliability"] = fig
    fig, axes = plt.subplots(
        1, len(parts), figsize=(5.5 * len(parts), 4.6), squeeze=False
    )
    for ax, (title, res) in zip(axes[0], parts):
        ax.plot([0.45, 1], [0.45, 1], "k:", lw=1)
        for name, r in res["sources"].items():
            if "coverage" in r:
                ax.errorbar(
                    levels,
                    r["coverage"],
                    yerr=2 * np.asarray(r["coverage_se"]),
                    marker="o",
                    ms=3,
                    capsize=2,
                    color=color[name],
                    label=name,
                )
        ax.set_xlabel("nominal level")
        ax.set_ylabel("empirical coverage")
        ax.set_title(f"reward-difference intervals, {title}")
        ax.legend(fontsize=7)
    figs["coverage"] = fig
    return figs


def run(config) -> dict:
    """Runs the study, writes ``config.results_dir`` and returns the payload."""
    config = configs.apply_preset(config, calibration_config.PRESETS)
    for lv in config.levels:
        if not 0.0 < lv < 1.0:
            raise ValueError(f"config.levels must lie in (0, 1), got {config.levels}")
    if config.num_heads < 2:
        raise ValueError(f"config.num_heads must be >= 2, got {config.num_heads}")
    if config.ensemble.num_steps < 1:
        raise ValueError(
            f"config.ensemble.num_steps must be >= 1, got {config.ensemble.num_steps}"
        )
    if not config.ensemble.learning_rate > 0:
        raise ValueError(
            "config.ensemble.learning_rate must be > 0, got "
            f"{config.ensemble.learning_rate}"
        )
    key_sim, key_real = jax.random.split(jax.random.key(config.seed))
    levels = list(config.levels)
    sim = run_simulation(key_sim, config)
    table = "### Simulated data (known truth)\n\n" + _coverage_table(
        sim["sources"],
        levels,
        f"design {config.sim.design!r}, {config.sim.num_replicates} replicates × "
        f"{config.sim.num_test} held-out comparisons, n = {config.sim.num_train}; "
        f"coverage ± MC se over replicates; {ENSEMBLE_NOTE}; interval x<w> = simulated "
        "judge with intervals w × as wide as honest",
    )
    table += (
        f"\n\nECE of the true probabilities on the same labels (finite-sample floor): "
        f"{sim['ece_true_probabilities']:.3f}"
    )
    real = None
    if config.real.enabled:
        real, real_tables = run_real(key_real, config)
        table += "\n\n### Real data (PandaLM, held-out prompts)\n\n" + _coverage_table(
            real["sources"],
            levels,
            f"{real['num_train']} train / {real['num_test']} test rows; coverage = "
            f"split-half check over {config.real.num_splits} halvings of the training "
            "prompts (z = (Δ̂_A − Δ̂_B)/sqrt(v_A + v_B)); ECE on held-out labels of the "
            "full-train fit",
        )
        table += "\n\n" + real_tables
    figures = _figures(sim, real, levels)
    payload = {"config": config, "simulation": sim, "real": real}
    experiments.write(config, payload, table, figures)
    return payload


if __name__ == "__main__":
    experiments.launch(run, "configs/calibration.py")
