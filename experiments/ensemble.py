"""Study `ensemble`: reward variance of a K-head ensemble (Banerjee et al. Fig. 8 analogue).

    python -m experiments.ensemble --config configs/ensemble.py [--config.preset=full]

Method. A bootstrapped K-head linear Bradley–Terry ensemble
(``hetrlhf.alignment.ensemble.train_ensemble``: each head from its own initialisation on
its own case resample of the training comparisons, all heads in one jitted
``vmap``/``lax.scan`` program) is trained

* on simulated comparisons (``hetrlhf.data.simulate``, our design; the ensemble ignores
  the annotators' rationality, as a reward model does), and
* on the real preference files of ``../shared/data`` (PandaLM and/or Tülu 1, ties
  excluded, split by prompt), with hashed n-gram features projected by a whitened SVD
  of the training Δφ (``hetrlhf.data.featurize_split``).

On held-out pairs it reports (``ensemble.pair_variances``) the distribution of the
per-response reward variance across heads, Var_k[r_k(s, a)], and of the variance of the
chosen − rejected reward difference, Var_k[r_k(s, a_c) − r_k(s, a_r)] (which includes
the heads' covariance of the two rewards), with histograms. float32 (the config's
precision): no standard errors are computed.
"""

from __future__ import annotations

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from tqdm import tqdm

from configs import ensemble as ensemble_config
from hetrlhf import data as hdata
from hetrlhf.alignment import ensemble
from hetrlhf.data import features, simulate
from hetrlhf.reporting import markdown_table

matplotlib.use("Agg")
import matplotlib.pyplot as plt

import experiments

_QUANTILES = (0.1, 0.5, 0.9, 0.99)
_LOADERS = {"pandalm": hdata.load_pandalm, "tulu1": hdata.load_tulu1}


def _summary(x: np.ndarray) -> dict[str, float]:
    """Mean, coefficient of variation, quantiles and maximum of a sample."""
    x = np.asarray(x, np.float64)
    out = {
        "mean": float(x.mean()),
        "cv": float(x.std() / x.mean()) if x.mean() > 0 else 0.0,
    }
    out.update({f"q{int(100 * q)}": float(np.quantile(x, q)) for q in _QUANTILES})
    out["max"] = float(x.max())
    return out


def analyse(heads, test: hdata.Comparisons) -> dict[str, Any]:
    """Variance distributions of a trained ensemble ([K, d] heads) on held-out pairs."""
    v = jax.tree.map(np.asarray, ensemble.pair_variances(heads, test))
    return {
        "response_var": v.response_var,
        "diff_var": v.diff_var,
        "response_summary": _summary(v.response_var),
        "diff_summary": _summary(v.diff_var),
        # Var(r_c − r_r) = Var(r_c) + Var(r_r) − 2 Cov: < 1 means the heads' errors
        # on the two responses are positively correlated.
        "diff_to_sum_ratio": float(v.diff_var.mean() / v.sum_var.mean()),
        "accuracy": float(np.mean(v.correct)),
        "head_accuracy": float(np.mean(v.head_correct, axis=0).mean()),
        "num_test": int(test.y.shape[0]),
    }


def _train(config, key, data) -> jax.Array:
    options = ensemble.EnsembleOptions(
        num_heads=config.num_heads,
        num_steps=config.num_steps,
        learning_rate=config.learning_rate,
        bootstrap=config.bootstrap,
        l2=config.l2,
        init_scale=config.init_scale,
    )
    return ensemble.train_ensemble(key, data, options).params


def simulated(config, key) -> dict[str, Any]:
    """Ensemble on simulated comparisons; variances on fresh held-out pairs."""
    design = simulate.get_design(config.sim.design)
    k_train, k_test, k_ens = jax.random.split(key, 3)
    train = simulate.simulate(k_train, design, config.sim.num_train)
    test = simulate.simulate(k_test, design, config.sim.num_test)
    heads = _train(config, k_ens, train)
    error = jnp.linalg.norm(heads - jnp.asarray(design.theta), axis=1)
    return {
        **analyse(heads, test),
        "heads": heads,
        "num_train": config.sim.num_train,
        "dim": int(heads.shape[1]),
        "head_error": float(jnp.mean(error)),
    }


def real(config, key, name: str) -> dict[str, Any]:
    """Ensemble on one real preference file set (hashed features, SVD projection)."""
    if name not in _LOADERS:
        raise ValueError(
            f"config.real.datasets entries must be in {sorted(_LOADERS)}, got {name!r}"
        )
    records, _ = _LOADERS[name](config.real.data_dir)
    train, test = hdata.split_by_prompt(
        records, test_fraction=config.real.test_fraction, seed=config.seed
    )
    index = hdata.unique_texts(train + test)
    raw = features.hashed_features(
        index.pairs, features.HashingConfig(dim=config.real.hash_dim)
    )
    position = {pair: i for i, pair in enumerate(index.pairs)}
    with warnings.catch_warnings():  # float32 by design: no standard errors here
        warnings.filterwarnings("ignore", "hetrlhf: building comparisons in float32")
        split = hdata.featurize_split(
            train, test, raw, position, config.real.num_components
        )
    heads = _train(config, key, split.train)
    return {
        **analyse(heads, split.test),
        "num_train": len(train),
        "dim": config.real.num_components,
        "heads": heads,
    }


def _table(config, results: dict[str, dict]) -> str:
    rows = [
        [label, kind, r["num_train"], r["num_test"], r["dim"]]
        + [r[field][q] for q in ("mean", "q10", "q50", "q90", "q99", "max", "cv")]
        for label, r in results.items()
        for kind, field in (
            ("response", "response_summary"),
            ("chosen − rejected", "diff_summary"),
        )
    ]
    header = ["data", "variance of", "n train", "n test", "d", "mean", "q10"]
    header += ["median", "q90", "q99", "max", "CV"]
    heads = [
        [label, r["diff_to_sum_ratio"], r["accuracy"], r["head_accuracy"]]
        for label, r in results.items()
    ]
    heads_header = ["data", "Var(diff) / (Var r_c + Var r_r)"]
    heads_header += ["accuracy (ensemble mean)", "mean head accuracy"]
    return (
        f"## Reward-ensemble variances ({config.num_heads} heads, "
        f"bootstrap={config.bootstrap}, {config.num_steps} adam steps)\n\n"
        "Distribution over held-out pairs of the heads' sample variance (ddof = 1). "
        "Simulated data: our design, not the paper's.\n\n"
        + markdown_table(header, rows, digits=4)
        + "\n\n### Accuracy and covariance of the heads\n\n"
        + markdown_table(heads_header, heads, digits=4)
        + "\n"
    )


def _figure(results: dict[str, dict], num_bins: int):
    fig, axes = plt.subplots(
        len(results), 2, figsize=(10, 3.2 * len(results)), squeeze=False
    )
    for row, (name, res) in zip(axes, results.items()):
        for ax, field, label in (
            (row[0], "response_var", "per-response reward variance across heads"),
            (row[1], "diff_var", "variance of chosen − rejected reward difference"),
        ):
            x = res[field]
            ax.hist(x, bins=num_bins, color="C0" if field == "response_var" else "C1")
            ax.axvline(
                np.mean(x), color="k", ls="--", lw=1, label=f"mean {np.mean(x):.3g}"
            )
            ax.set_title(f"{name}", fontsize=10)
            ax.set_xlabel(label)
            ax.set_ylabel("count")
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def run(config) -> dict[str, Any]:
    """Runs the study; writes results/ensemble/ and returns the payload."""
    config = experiments.prepare(config, ensemble_config.PRESETS)
    key = jax.random.key(config.seed)
    parts = [("simulated", None)]
    if config.real.enabled:
        parts += [(f"real:{n}", n) for n in config.real.datasets]
    results: dict[str, dict] = {}
    for i, (label, name) in enumerate(tqdm(parts, desc="ensemble")):
        k = jax.random.fold_in(key, i)
        results[label] = simulated(config, k) if name is None else real(config, k, name)
    figures = {"variance_histograms": _figure(results, config.num_bins)}
    experiments.write(config, {"results": results}, _table(config, results), figures)
    return {"config": config, "results": results}


if __name__ == "__main__":
    experiments.launch(run, "configs/ensemble.py")
