"""Calibration study: are the reward-uncertainty sources honest? (issue 7, DESIGN.md §4)

Every source returns the one currency ``RewardEstimate(mean, var)`` of a reward
difference Δ = r(a¹) − r(a⁰) on held-out comparisons, and every metric consumes only
that. Simulated data with known truth (the PandaLM real-data check is
``experiments/calibration_real.py``; both share ``experiments/calibration_report.py``).

Sources (``hetrlhf.alignment.calibration.difference_sources`` for the first three):
* Fisher: ``hr.reward_interval(θ̂, data, Δφ)`` (Wald, from the observed information).
* Sandwich: the same Δ̂ with the robust covariance H⁻¹BH⁻¹ (``hr.sandwich_covariance``;
  here HC0, every comparison its own cluster). Not one of the issue's three sources:
  added because the real-data check shows why it is needed.
* Ensemble: ``hetrlhf.alignment.ensemble`` — K linear Bradley–Terry heads, each from
  its own N(0, I) initialisation and trained by adam on its own bootstrap resample of
  the training rows, read by ``ensemble_reward`` (head mean, sample variance); the
  PPO study's ensemble. Its model has no annotator rationality (σ ≡ 1), so on
  heterogeneous annotators its θ̃ estimates a rescaled θ* (the marginal preference
  curve E_σ[sigmoid(σ θ*ᵀΔφ)] is flatter than sigmoid(θ*ᵀΔφ)); its coverage of the
  true θ*ᵀΔφ measures bias and variance together, as a user of the ensemble would
  meet them. (A bootstrap of ``hr.fit`` fits was dropped: under the correct model it
  estimates the Fisher and sandwich sources' sampling variance, at triple the compile
  time.)
* Interval: a simulated judge (``interval_rewards.judge_differences``) scores each
  response with its true reward plus N(0, τ²) noise and reports
  [score ∓ width_scale·√3·τ], read as Uniform(lo, hi).

Metrics (``coverage_summary``, ``probability_summary``): coverage of the nominal
50/80/90/95% intervals mean ± z·sd of the true θ*ᵀΔφ, with a Monte Carlo standard
error over replicates, and the robust scale factor s = median|z|/0.674 (s > 1:
over-confident by the factor s); ECE (10 equal-width bins) and reliability of the
predicted preference probabilities E[sigmoid(σ̂·Δ)] (probit approximation) on held-out
labels, with σ̂ = σ_γ̂(x) of the Fisher fit for the Fisher, sandwich and interval
sources (so they differ only in their reward estimate) and σ ≡ 1 for the ensemble
(its own model), and the plug-in sigmoid(σ̂·Δ̂) as a baseline.

Run:  python -m experiments.calibration --config configs/calibration.py
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

import experiments
from configs import calibration as calibration_config
from experiments.calibration_report import ENSEMBLE_NOTE, coverage_table, figures
from hetrlhf.alignment import calibration, ensemble
from hetrlhf.alignment.interval_rewards import judge_differences
from hetrlhf.btl import model
from hetrlhf.data import simulate as hsim
from hetrlhf.types import RewardEstimate


def ensemble_options(config) -> ensemble.EnsembleOptions:
    """The ``EnsembleOptions`` of ``config.num_heads`` and ``config.ensemble``."""
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


def check_config(config) -> None:
    """Raises ValueError naming a bad shared field (levels, heads, ensemble)."""
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


def sigma_for(name, sigma):
    """σ used in a source's predicted probabilities: its own model's (1 for the
    rationality-free ensemble), else the Fisher fit's σ_γ̂(x)."""
    return np.ones_like(np.asarray(sigma)) if name == "ensemble" else sigma


_coverage_summary = jax.jit(calibration.coverage_summary)
_probability_summary = jax.jit(calibration.probability_summary, static_argnums=3)


def metrics(est, truth, y, sigma, levels, num_bins):
    """Coverage (MC se over the rows of [G, m] arrays), scale factor, ECE, reliability.

    ``truth`` None: no coverage; ``y`` None: no probabilities.
    """
    res = {}
    mean, var = jnp.asarray(est.mean), jnp.asarray(est.var)
    if truth is not None:
        arr = _coverage_summary(
            RewardEstimate(mean, var),
            jnp.asarray(truth).reshape(mean.shape),
            jnp.asarray(levels),
        )
        res["coverage"] = np.asarray(arr["coverage"])
        res["coverage_se"] = np.asarray(arr["coverage_se"])
        res["sd_scale"] = float(arr["sd_scale"])
        res["mean_sd"] = float(arr["mean_sd"])
    if y is not None:
        arr = _probability_summary(
            RewardEstimate(mean, var),
            jnp.asarray(y).reshape(mean.shape),
            jnp.asarray(sigma, mean.dtype).reshape(mean.shape),
            num_bins,
        )
        res["ece"] = float(arr["ece"])
        res["reliability"] = {k: np.asarray(v) for k, v in arr["reliability"].items()}
    return res


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
    src = calibration.difference_sources(k_boot, train, test.dphi, ens)
    fit = src.fit
    theta_star = jnp.asarray(design.theta, test.phi0.dtype)
    conv = src.ensemble_converged
    out = {
        "truth": test.dphi @ theta_star,
        "y": test.y,
        "true_prob": hsim.label_probability(design, test),
        "sigma_hat": model.rationality(fit.params.gamma, test.psi, test.psi0),
        "converged": jnp.stack([fit.converged.astype(conv.dtype), conv]),
    }
    for name, est in src.estimates.items():
        out[f"{name}/mean"] = est.mean
        out[f"{name}/var"] = est.var
    r0, r1 = test.phi0 @ theta_star, test.phi1 @ theta_star
    judged = judge_differences(k_judge, r0, r1, width_scales, *noise)
    for w, est in judged.items():
        out[f"interval x{w:g}/mean"] = est.mean
        out[f"interval x{w:g}/var"] = est.var
    return out


def _replicates(key, config):
    """Every replicate's outputs, {name: [R, ...]} (jitted vmap in chunks)."""
    cfg = config.sim
    replicate = functools.partial(
        sim_replicate,
        design=hsim.get_design(cfg.design),
        num_train=cfg.num_train,
        num_test=cfg.num_test,
        ens=ensemble_options(config),
        width_scales=tuple(cfg.width_scales),
        noise=(cfg.judge_noise_low, cfg.judge_noise_high),
    )
    keys = jax.random.split(key, cfg.num_replicates)
    return experiments.replicates(
        config, replicate, keys, part="simulation", chunk_size=cfg.chunk_size
    )


def run_simulation(key, config):
    """Simulated part: every source on ``num_replicates`` replicates."""
    out = _replicates(key, config)
    res = {
        "design": config.sim.design,
        "converged_fisher": float(out["converged"][:, 0].mean()),
        "converged_ensemble_heads": float(out["converged"][:, 1].mean()),
        "sources": {},
    }
    names = [k[: -len("/mean")] for k in out if k.endswith("/mean")]
    for name in names:
        est = RewardEstimate(out[f"{name}/mean"], out[f"{name}/var"])
        sigma = sigma_for(name, out["sigma_hat"])
        res["sources"][name] = metrics(
            est, out["truth"], out["y"], sigma, config.levels, config.num_bins
        )
    plug = RewardEstimate(out["fisher/mean"], np.zeros_like(out["fisher/var"]))
    res["sources"]["plug-in (no variance)"] = metrics(
        plug, None, out["y"], out["sigma_hat"], config.levels, config.num_bins
    )
    floor = calibration.expected_calibration_error(
        jnp.asarray(out["true_prob"]).ravel(),
        jnp.asarray(out["y"]).ravel(),
        config.num_bins,
    )
    res["ece_true_probabilities"] = float(floor)
    return res


def run(config) -> dict:
    """Runs the study, writes ``config.results_dir`` and returns the payload."""
    config = experiments.prepare(config, calibration_config.PRESETS)
    check_config(config)
    # The first half of the seed's split (the second one is calibration_real's).
    key_sim, _ = jax.random.split(jax.random.key(config.seed))
    levels = list(config.levels)
    sim = run_simulation(key_sim, config)
    table = "### Simulated data (known truth)\n\n" + coverage_table(
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
    payload = {"simulation": sim}
    experiments.write(config, payload, table, figures([("simulated", sim)], levels))
    return payload


if __name__ == "__main__":
    experiments.launch(run, "configs/calibration.py")
