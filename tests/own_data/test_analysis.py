"""hr.report against statsmodels: leaderboard, intervals, LR test, sandwich, bootstrap."""

import csv
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import statsmodels.api as sm
from statsmodels.stats.multitest import multipletests

import hetrlhf as hr
from hetrlhf.own_data import analysis
from tests.reference import statsmodels_fit

ITEMS = ("ant", "bee", "cat", "dog", "eel")


def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def _simulate(n, seed, sigma_of=None):
    """Votes on ITEMS with rewards (0.8, 0.3, 0, −0.4, −0.7) (ours), σ by annotator."""
    rng = np.random.default_rng(seed)
    reward = np.array([0.8, 0.3, 0.0, -0.4, -0.7])
    rows = []
    for i in range(n):
        a, b = rng.choice(len(ITEMS), 2, replace=False)
        speed = rng.uniform(0, 2)
        sigma = 1.0 if sigma_of is None else sigma_of(speed)
        p = 1 / (1 + np.exp(-sigma * (reward[b] - reward[a])))
        winner = "b" if rng.uniform() < p else "a"
        rows.append([f"q{i % 60}", ITEMS[a], ITEMS[b], winner, f"{speed:.4f}"])
    return ["prompt", "model_a", "model_b", "winner", "speed"], rows


def _design(rows, names):
    """Δφ = onehot(b) − onehot(a) over ``names`` (the reference left out), y = b won."""
    col = {v: j for j, v in enumerate(names)}
    x = np.zeros((len(rows), len(names)))
    for i, r in enumerate(rows):
        if r[2] in col:
            x[i, col[r[2]]] += 1
        if r[1] in col:
            x[i, col[r[1]]] -= 1
    y = np.array([float(r[3] == "b") for r in rows])
    return x, y


@pytest.fixture(scope="module")
def items_file(tmp_path_factory):
    header, rows = _simulate(600, seed=1)
    path = _write(tmp_path_factory.mktemp("r") / "votes.csv", header, rows)
    return path, rows


def test_items_leaderboard_and_wald_intervals_equal_statsmodels_logit(items_file):
    path, rows = items_file
    rep = hr.report(path, intervals="wald", progress=False)
    names = rep.preferences.feature_names  # every item but the reference "eel"
    assert rep.preferences.reference == "eel"
    x, y = _design(rows, names)
    ref = sm.Logit(y, x).fit(method="newton", tol=1e-12, disp=0)
    board = {r.item: r for r in rep.leaderboard}
    ci = ref.conf_int(0.05)
    for j, item in enumerate(names):
        np.testing.assert_allclose(board[item].reward, ref.params[j], rtol=1e-7)
        np.testing.assert_allclose(board[item].lower, ci[j, 0], rtol=1e-7)
        np.testing.assert_allclose(board[item].upper, ci[j, 1], rtol=1e-7)
    assert board["eel"].reward == 0.0
    assert rep.lr_test is None
    np.testing.assert_allclose(rep.homogeneous.log_likelihood, ref.llf, rtol=1e-10)

    # Holm p-values of all pairwise z-tests, from statsmodels' covariance.
    items = list(rep.preferences.items)
    full = np.zeros(len(items))
    cov = np.zeros((len(items), len(items)))
    idx = [items.index(v) for v in names]
    full[idx] = ref.params
    cov[np.ix_(idx, idx)] = ref.cov_params()
    i, j = np.triu_indices(len(items), 1)
    z = (full[i] - full[j]) / np.sqrt(cov[i, i] + cov[j, j] - 2 * cov[i, j])
    holm = multipletests(2 * scipy.stats.norm.sf(np.abs(z)), method="holm")[1]
    np.testing.assert_allclose(rep.p_holm[i, j], holm, rtol=1e-6)


def test_covariate_rationality_equals_generic_likelihood_model(tmp_path):
    header, rows = _simulate(900, seed=2, sigma_of=lambda s: 0.4 + 0.6 * s)
    path = _write(tmp_path / "v.csv", header, rows)
    rep = hr.report(path, rationality="speed", intervals="wald", progress=False)
    names = rep.preferences.feature_names
    x, y = _design(rows, names)
    speed = np.array([float(r[4]) for r in rows])
    psi = ((speed - speed.mean()) / speed.std())[:, None]
    ref = statsmodels_fit(
        np.zeros_like(x), x, y, psi, np.ones(len(y)), start=np.r_[np.zeros(4), 0.3]
    )
    got = np.r_[rep.heterogeneous.params.theta, rep.heterogeneous.params.gamma]
    np.testing.assert_allclose(got, ref.params, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(rep.lower, ref.conf_int[:, 0], rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(rep.upper, ref.conf_int[:, 1], rtol=1e-6, atol=1e-9)
    (row,) = rep.rationality
    assert (row.name, row.parameter) == ("speed", "gamma")
    assert row.lower > 0  # σ rises with speed in the truth
    # The LR test of γ = 0 against the homogeneous Logit.
    hom = sm.Logit(y, x).fit(method="newton", tol=1e-12, disp=0)
    stat = 2 * (-ref.loss * len(y) - hom.llf)
    np.testing.assert_allclose(rep.lr_test.stat, stat, rtol=1e-6)
    assert rep.lr_test.df == 1
    np.testing.assert_allclose(rep.lr_test.p, scipy.stats.chi2.sf(stat, 1), rtol=1e-5)


def test_sandwich_equals_statsmodels_cluster_robust_covariance(items_file):
    path, rows = items_file
    prefs = hr.load_preferences(path, cluster="prompt")
    rep = hr.report(prefs, intervals="sandwich", progress=False)
    x, y = _design(rows, prefs.feature_names)
    groups = np.unique([r[0] for r in rows], return_inverse=True)[1]
    cr0 = sm.Logit(y, x).fit(
        method="newton",
        tol=1e-12,
        disp=0,
        cov_type="cluster",
        cov_kwds={"groups": groups, "use_correction": False},
    )
    np.testing.assert_allclose(rep.covariance, cr0.cov_params(), rtol=1e-7)
    z = scipy.stats.norm.ppf(0.975)
    np.testing.assert_allclose(rep.upper, cr0.params + z * cr0.bse, rtol=1e-7)
    # statsmodels' default CR1 is CR0 times G/(G − 1)·(N − 1)/(N − K).
    cr1 = sm.Logit(y, x).fit(
        method="newton",
        tol=1e-12,
        disp=0,
        cov_type="cluster",
        cov_kwds={"groups": groups},
    )
    n, k, g = len(y), x.shape[1], groups.max() + 1
    factor = g / (g - 1) * (n - 1) / (n - k)
    np.testing.assert_allclose(rep.covariance * factor, cr1.cov_params(), rtol=1e-7)
    # Without clusters: HC0.
    hc0 = sm.Logit(y, x).fit(method="newton", tol=1e-12, disp=0, cov_type="HC0")
    rep0 = hr.report(path, intervals="sandwich", progress=False)
    np.testing.assert_allclose(rep0.covariance, hc0.cov_params(), rtol=1e-7)


@pytest.mark.slow  # ~6 s on the 2-core CI machine
def test_vmapped_cluster_bootstrap_equals_refits_and_its_percentiles(items_file):
    path, _ = items_file
    prefs = hr.load_preferences(path, cluster="prompt")
    rep = hr.report(
        prefs, intervals="bootstrap", num_bootstrap=50, seed=4, progress=False
    )
    counts = np.asarray(
        hr.confidence.resample_weights(
            jax.random.key(4),
            prefs.data,
            50,
            jnp.asarray(prefs.cluster),
            num_clusters=60,
        )
    )
    # A cluster bootstrap repeats whole prompts: counts are count × (times drawn).
    times = counts / prefs.count
    for c in range(60):
        rows = prefs.cluster == c
        assert np.all(times[:, rows] == times[:, rows][:, :1])
    assert np.all(times == np.round(times))
    x = np.asarray(prefs.data.dphi)
    y = np.asarray(prefs.data.y)
    draws = []
    for w in counts:
        glm = sm.GLM(y, x, family=sm.families.Binomial(), freq_weights=w)
        draws.append(glm.fit(tol=1e-12).params)
    draws = np.array(draws)
    assert rep.bootstrap_failed == 0
    np.testing.assert_allclose(rep.lower, np.quantile(draws, 0.025, axis=0), atol=1e-7)
    np.testing.assert_allclose(rep.upper, np.quantile(draws, 0.975, axis=0), atol=1e-7)


def test_flags_and_held_out_scores(tmp_path):
    rng = np.random.default_rng(5)
    reward = dict(zip(ITEMS, [0.8, 0.3, 0.0, -0.4, -0.7], strict=True))
    sigma = {"ann": 1.0, "ben": 1.0, "mal": -1.5, "rnd": 0.0}
    rows = []
    for i in range(1600):
        a, b = rng.choice(ITEMS, 2, replace=False)
        who = ["ann", "ben", "mal", "rnd"][i % 4]
        p = 1 / (1 + np.exp(-sigma[who] * (reward[b] - reward[a])))
        rows.append([f"q{i % 80}", a, b, "b" if rng.uniform() < p else "a", who])
    path = _write(
        tmp_path / "f.csv",
        ["prompt", "model_a", "model_b", "winner", "annotator"],
        rows,
    )
    rep = hr.report(
        path,
        rationality="annotator",
        annotator_reference="ann",
        cluster="prompt",
        holdout=0.25,
        seed=1,
        progress=False,
    )
    flags = {r.name: r.flag for r in rep.rationality}
    assert flags["ann"] == "reference"
    assert flags["mal"].startswith("adversarial")
    assert flags["rnd"].startswith("random")
    assert flags["ben"] == ""
    # Held-out scores of the homogeneous model, recomputed from a statsmodels fit on
    # the training comparisons.
    prefs = rep.preferences
    train, test = hr.preferences.holdout_counts(prefs, 0.25, seed=1)
    x, y = np.asarray(prefs.data.dphi), np.asarray(prefs.data.y)
    glm = sm.GLM(y, x, family=sm.families.Binomial(), freq_weights=train).fit(tol=1e-12)
    eta = x @ glm.params
    ll = y * eta - np.logaddexp(0, eta)
    np.testing.assert_allclose(
        rep.held_out.log_likelihood["homogeneous"], test @ ll / test.sum(), rtol=1e-7
    )
    correct = (eta > 0) == (y == 1)
    np.testing.assert_allclose(
        rep.held_out.accuracy["homogeneous"], test @ correct / test.sum()
    )
    assert rep.held_out.num_test == int(test.sum())
    assert rep.reliability_sample == "held-out"


def test_separable_columns_data_is_refused(tmp_path):
    rows = [[float(i), 0.0, "b" if i > 0 else "a"] for i in range(-5, 6) if i]
    path = _write(tmp_path / "s.csv", ["len_b", "len_a", "winner"], rows)
    with pytest.raises(analysis.FitFailure, match="separable data"):
        hr.report(path, features="columns:len", progress=False)


def test_an_annotator_the_data_cannot_bound_is_refused(tmp_path):
    header, rows = _simulate(300, seed=3)
    rows = [r[:4] + ["crowd"] for r in rows]
    # Two votes by "solo", both for the clearly better item: σ_solo → ∞.
    rows += [["q0", "eel", "ant", "b", "solo"], ["q1", "dog", "ant", "b", "solo"]]
    path = _write(tmp_path / "a.csv", header[:4] + ["annotator"], rows)
    with pytest.raises(
        analysis.FitFailure, match="σ of 'annotator=solo' has no finite"
    ):
        hr.report(path, rationality="annotator", progress=False)


def test_write_report_files(items_file, tmp_path):
    path, _ = items_file
    rep = hr.report(path, intervals="wald", holdout=0.2, progress=False)
    paths = hr.write_report(rep, str(tmp_path / "out"))
    for name in ("report.md", "report.html", "report.json", "leaderboard.png"):
        assert os.path.exists(tmp_path / "out" / name)
    payload = json.loads((tmp_path / "out" / "report.json").read_text())
    for key in ("rationality", "leaderboard", "lr_test", "n_rows", "n_ties"):
        assert key in payload
    assert payload["features"]["featurizer"] == "one-hot items"
    assert payload["intervals"]["method"] == "wald"
    assert {"item", "reward", "lower", "upper", "rank_group"} <= set(
        payload["leaderboard"][0]
    )
    with open(paths["html"]) as f:
        html = f.read()
    assert "data:image/png;base64," in html and "<table>" in html


@pytest.mark.slow  # ~4 s on the 2-core CI machine
def test_profile_end_points_are_where_the_lr_statistic_crosses_chi2(items_file):
    path, rows = items_file
    rep = hr.report(path, intervals="profile", progress=False)
    x, y = _design(rows, rep.preferences.feature_names)
    full = sm.Logit(y, x).fit(method="newton", tol=1e-12, disp=0).llf
    critical = scipy.stats.chi2.ppf(0.95, 1)
    for j in (0, 2):
        for end in (rep.lower[j], rep.upper[j]):
            # The constrained fit with θ_j held at the end point (an offset).
            others = np.delete(x, j, axis=1)
            fixed = sm.Logit(y, others, offset=end * x[:, j])
            llf = fixed.fit(method="newton", tol=1e-12, disp=0).llf
            np.testing.assert_allclose(2 * (full - llf), critical, rtol=1e-5)


@pytest.mark.slow  # ~8 s on the 2-core CI machine
def test_padded_weighted_fits_equal_the_library_on_raw_rows(tmp_path):
    """The report's fits (unique rows weighted by counts, padded with rows of weight 0,
    clusters padded likewise) = hr.* on the comparisons written out row by row."""
    header, rows = _simulate(700, seed=6, sigma_of=lambda s: 0.5 + 0.5 * s)
    path = _write(tmp_path / "w.csv", header, rows)
    prefs = hr.load_preferences(path, rationality="speed", cluster="prompt")
    assert hr.estimate.padded_size(len(prefs.count)) > len(prefs.count)  # padded
    reps = np.asarray(prefs.count, dtype=int)
    fields = prefs.data[:5]  # phi0, phi1, y, psi, psi0 (not the weight)
    raw = hr.comparisons(*(np.repeat(np.asarray(a), reps, axis=0) for a in fields))
    cluster = np.repeat(prefs.cluster, reps)
    rep = hr.report(prefs, intervals="sandwich", progress=False)
    het = rep.heterogeneous
    ref = hr.fit(raw)
    np.testing.assert_allclose(het.params.theta, ref.params.theta, rtol=1e-9)
    np.testing.assert_allclose(het.params.gamma, ref.params.gamma, rtol=1e-9)
    np.testing.assert_allclose(
        het.log_likelihood, -float(ref.loss) * raw.num_comparisons, rtol=1e-12
    )
    np.testing.assert_allclose(
        het.covariance, hr.covariance(ref.params, raw), rtol=1e-7, atol=1e-12
    )
    sandwich = hr.sandwich_covariance(
        ref.params, raw, jnp.asarray(cluster), num_clusters=prefs.num_clusters
    )
    np.testing.assert_allclose(het.sandwich, sandwich, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(rep.covariance, sandwich, rtol=1e-7, atol=1e-12)
