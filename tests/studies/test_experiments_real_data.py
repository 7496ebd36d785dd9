"""Real-data study: end to end on a small slice, and the fit against statsmodels."""

import json
import os

import numpy as np
import pytest
import statsmodels.api as sm

from configs import real_data as real_data_config
from experiments import real_data
from hetrlhf import data as D
from hetrlhf import features as F

DATA_DIR = real_data_config.get_config().data_dir
pytestmark = pytest.mark.skipif(
    not os.path.isdir(DATA_DIR), reason=f"real data not found at {DATA_DIR}"
)


def _small_config(tmp_path):
    config = real_data_config.get_config()
    config.results_dir = str(tmp_path / "real_data")
    config.max_rows = 240
    config.num_splits = 1
    config.num_bootstrap = 200
    config.hash_dim = 256
    config.num_components = 4
    config.min_annotator_count = 10
    config.models = "homogeneous,annotator"
    return config


def test_real_data_study_end_to_end_on_a_slice(tmp_path, capsys):
    payload = real_data.run(_small_config(tmp_path))

    out = tmp_path / "real_data"
    for name in ("results.json", "results.md", "rationality.png", "best_of_n.png"):
        assert os.path.getsize(out / name) > 0, name
    with open(out / "results.json") as f:
        saved = json.load(f)
    assert set(saved["datasets"]) == {"pandalm", "tulu1"}
    printed = capsys.readouterr().out
    assert "## Rationality" in printed and "## Best-of-N" in printed
    # The run names its featurizer.
    assert saved["featurizer"] == "hashed n-grams (dim 256)"
    assert "Features: hashed n-grams (dim 256)," in printed

    for name, ds in payload["datasets"].items():
        s = ds["summary"]
        # Ties are excluded and counted, never silently dropped.
        assert (
            s["num_records"] + sum(len(v) for v in s["excluded"].values())
            == (s["num_rows"])
        )
        assert len(s["excluded"].get("tie", ())) == s["num_ties"]
        assert set(ds["inference"]) == {"homogeneous", "annotator", "_design"}
        for model, entry in ds["inference"].items():
            if model.startswith("_"):
                continue
            assert entry["status"] in (
                "ok",
                "not converged",
                "separated",
                "singular information",
            )
            assert np.isfinite(entry["loss"]) and entry["loss"] > 0
            held = ds["held_out"][model]
            assert all(0.0 <= a <= 1.0 for a in held["accuracy"]["values"])
            for ok, ll in zip(held["ok"]["values"], held["log_likelihood"]["values"]):
                assert ll < 0 and (not ok or np.isfinite(ll))
        for lv in ds["inference"]["annotator"]["levels"]:
            if ds["inference"]["annotator"]["status"] == "ok":
                assert lv["lower"] < lv["gamma"] < lv["upper"]
        for model, b in ds["bon"].items():
            # Gold win rates of choices lie between the worst and the oracle choice.
            assert 0.0 <= b["bon"] <= b["oracle"] <= 1.0
            assert 0.0 <= b["pbon"] <= b["oracle"]
            assert b["pbon_minus_bon_lower"] <= b["pbon_minus_bon"]
            assert b["pbon_minus_bon"] <= b["pbon_minus_bon_upper"]
    assert payload["datasets"]["tulu1"]["summary"]["num_ties"] > 0


def _split_fit_inputs(config, name):
    """The training rows of one split of a data slice, as the study builds them."""
    prep = real_data.prepare(config, name)
    train, _ = D.split_by_prompt(prep.records, test_fraction=0.3, seed=config.seed)
    index = D.text_index(train, prep.position)
    raw = prep.features.raw
    feature_map = F.fit_feature_map(
        raw[index.index1] - raw[index.index0],
        config.num_components,
        block=prep.features.block,
        min_rows=config.min_feature_rows,
    )
    phi = F.apply_feature_map(feature_map, raw)
    dphi = phi[index.index1] - phi[index.index0]
    y = np.array([r.label for r in train], float)
    return prep, train, index, phi, dphi, y


def test_real_data_study_with_minilm_features(tmp_path, minilm_dir, monkeypatch):
    # The text path end to end (flax MiniLM embeddings, cached under tmp_path).
    monkeypatch.setenv("HETRLHF_MINILM_DIR", str(minilm_dir))
    config = _small_config(tmp_path)
    config.datasets = "pandalm"
    config.max_rows = 60
    config.featurizer = "minilm"
    config.cache_dir = str(tmp_path / "cache")
    payload = real_data.run(config)
    assert payload["featurizer"] == F.EMBEDDING_MODEL
    design = payload["datasets"]["pandalm"]["inference"]["_design"]
    assert design["d"] == config.num_components + len(design["stats_kept"])
    assert set(design["stats_kept"]) <= {"prompt_response_cosine", *F.STATISTIC_NAMES}
    cached = [f for _, _, fs in os.walk(tmp_path / "cache") for f in fs]
    assert len(cached) >= 20 and all(f.endswith(".npy") for f in cached)


def test_homogeneous_fit_matches_statsmodels_logit(tmp_path):
    """The study's padded, jitted homogeneous fit = statsmodels Logit without intercept."""
    config = _small_config(tmp_path)
    _, train, index, phi, dphi, y = _split_fit_inputs(config, "tulu1")
    cmp = D.to_comparisons(train, phi, index)
    n = cmp.num_comparisons
    fit = real_data._fit(config, cmp)  # on padded rows (fit_and_covariances)

    ref = sm.Logit(y, dphi).fit(disp=0, method="newton", tol=1e-12)
    assert ref.mle_retvals["converged"]
    assert fit.status == "ok" and fit.converged
    np.testing.assert_allclose(np.asarray(fit.params.theta), ref.params, rtol=1e-6)
    np.testing.assert_allclose(np.sqrt(np.diag(fit.cov)), ref.bse, rtol=1e-6)
    np.testing.assert_allclose(fit.loss, -ref.llf / n, rtol=1e-10)


def test_heterogeneous_fit_is_both_conditional_statsmodels_mles(tmp_path):
    """At the joint MLE, θ̂ is the Logit MLE on σ̂_i·Δφ_i (γ fixed) and γ̂ the GLM MLE
    with offset r̂_i and design r̂_i·ψ_i (θ fixed): both blocks are stationary."""
    config = _small_config(tmp_path)
    config.max_rows = 900  # smaller PandaLM slices are quasi-separated (no finite MLE)
    prep, train, index, phi, dphi, y = _split_fit_inputs(config, "pandalm")
    spec = next(s for s in prep.specs if s.name == "annotator")
    _, psi, _ = real_data._psi(spec, train, train, config.min_annotator_count)
    cmp = D.to_comparisons(train, phi, index, psi=psi)
    fit = real_data._fit(config, cmp)
    assert fit.status == "ok"
    theta, gamma = np.asarray(fit.params.theta), np.asarray(fit.params.gamma)

    sigma = 1.0 + psi @ gamma
    ref_theta = sm.Logit(y, sigma[:, None] * dphi).fit(disp=0, tol=1e-12, maxiter=200)
    assert ref_theta.mle_retvals["converged"]
    np.testing.assert_allclose(theta, ref_theta.params, rtol=1e-5, atol=1e-8)
    r = dphi @ theta
    ref_gamma = sm.GLM(
        y, r[:, None] * psi, family=sm.families.Binomial(), offset=r
    ).fit(tol=1e-12)
    np.testing.assert_allclose(gamma, ref_gamma.params, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(fit.loss, -ref_theta.llf / len(y), rtol=1e-10)


def test_unknown_model_and_dataset_raise(tmp_path):
    config = _small_config(tmp_path)
    config.models = "homogeneous,rater_age"
    with pytest.raises(ValueError, match="rater_age"):
        real_data.prepare(config, "tulu1")
    config.models = "homogeneous"
    with pytest.raises(ValueError, match="unknown dataset"):
        real_data.prepare(config, "helpsteer")
