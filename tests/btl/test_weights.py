"""Frequency weights: U unique rows with counts are exactly the n raw rows.

References: the same comparisons written out row by row (an independent data path
through hr.fit), statsmodels' GLM with ``freq_weights`` for the homogeneous model, and
statsmodels' cluster-robust covariance of the expanded rows.
"""

import jax
import numpy as np
import pytest
import statsmodels.api as sm

import hetrlhf as hr
from hetrlhf.types import ravel_params


def _unique_and_expanded(seed=0, num_items=5, n=600, k=2):
    """Arena-style rows: one-hot items (last pinned at 0), few annotator types."""
    rng = np.random.default_rng(seed)
    strength = np.r_[rng.normal(size=num_items - 1), 0.0]
    a = rng.integers(0, num_items, n)
    b = (a + rng.integers(1, num_items, n)) % num_items
    kind = rng.integers(0, k + 1, n)  # annotator type 0 is the reference
    psi = np.eye(k + 1)[kind][:, 1:]
    sigma = 1.0 + psi @ np.array([0.8, -0.5])[:k]
    eye = np.eye(num_items)[:, :-1]
    phi0, phi1 = eye[a], eye[b]
    p = 1 / (1 + np.exp(-sigma * ((phi1 - phi0) @ strength[:-1])))
    y = (rng.uniform(size=n) < p).astype(float)
    rows = np.column_stack([a, b, kind, y])
    uniq, inverse, counts = np.unique(
        rows, axis=0, return_inverse=True, return_counts=True
    )
    ua, ub, ukind, uy = uniq.T.astype(int)
    upsi = np.eye(k + 1)[ukind][:, 1:]
    unique = hr.comparisons(eye[ua], eye[ub], uy, upsi, weight=counts)
    expanded = hr.comparisons(phi0, phi1, y, psi)
    return unique, expanded, inverse.ravel(), rows


@pytest.mark.slow  # ~15 s on the 2-core CI machine
def test_weighted_fit_intervals_and_sandwich_equal_the_raw_rows():
    unique, expanded, _, _ = _unique_and_expanded()
    assert unique.num_comparisons < expanded.num_comparisons / 5
    fu, fe = hr.fit(unique), hr.fit(expanded)
    assert bool(fu.converged) and bool(fe.converged)
    np.testing.assert_allclose(
        ravel_params(fu.params), ravel_params(fe.params), rtol=1e-9, atol=1e-10
    )
    np.testing.assert_allclose(fu.loss, fe.loss, rtol=1e-12)
    for method in ("wald", "sandwich", "profile"):
        cu = hr.confidence_intervals(fu.params, unique, method=method)
        ce = hr.confidence_intervals(fe.params, expanded, method=method)
        for field in ("se", "lower", "upper"):
            np.testing.assert_allclose(
                ravel_params(getattr(cu, field)),
                ravel_params(getattr(ce, field)),
                rtol=1e-7,
                err_msg=f"{method} {field}",
            )
    np.testing.assert_allclose(
        hr.fisher_information(fu.params, unique, kind="expected"),
        hr.fisher_information(fe.params, expanded, kind="expected"),
        rtol=1e-8,
    )


def test_weighted_homogeneous_fit_matches_statsmodels_freq_weights():
    unique, _, _, _ = _unique_and_expanded(seed=1, k=0)
    res = hr.fit(unique)
    ci = hr.confidence_intervals(res.params, unique)
    glm = sm.GLM(
        np.asarray(unique.y),
        np.asarray(unique.dphi),
        family=sm.families.Binomial(),
        freq_weights=np.asarray(unique.weight),
    ).fit(tol=1e-12)
    np.testing.assert_allclose(res.params.theta, glm.params, rtol=1e-7)
    np.testing.assert_allclose(ci.se.theta, glm.bse, rtol=1e-6)


@pytest.mark.slow  # ~4 s on the 2-core CI machine
def test_weighted_cluster_sandwich_matches_statsmodels_on_raw_rows():
    unique, expanded, inverse, rows = _unique_and_expanded(seed=2, k=0)
    # Cluster = the first item of the pair; constant within each unique row.
    cluster_raw = rows[:, 0].astype(int)
    cluster_unique = np.zeros(unique.num_comparisons, int)
    cluster_unique[inverse] = cluster_raw
    res = hr.fit(unique)
    cov = hr.sandwich_covariance(
        res.params, unique, cluster_unique, num_clusters=int(cluster_raw.max()) + 1
    )
    logit = sm.Logit(np.asarray(expanded.y), np.asarray(expanded.dphi)).fit(
        disp=0,
        cov_type="cluster",
        cov_kwds={"groups": cluster_raw, "use_correction": False},
    )
    np.testing.assert_allclose(res.params.theta, logit.params, rtol=1e-7)
    np.testing.assert_allclose(cov, logit.cov_params(), rtol=1e-6)


@pytest.mark.slow  # ~10 s on the 2-core CI machine
def test_zero_weight_rows_are_absent_and_resampled_weights_vmap():
    unique, _, _, _ = _unique_and_expanded(seed=3)
    keep = np.asarray(unique.weight) > 0
    masked = unique._replace(weight=unique.weight.at[0].set(0.0))
    dropped = hr.comparisons(
        unique.phi0[1:],
        unique.phi1[1:],
        unique.y[1:],
        unique.psi[1:],
        weight=unique.weight[1:],
    )
    assert keep.all()
    np.testing.assert_allclose(
        ravel_params(hr.fit(masked).params),
        ravel_params(hr.fit(dropped).params),
        rtol=1e-9,
    )
    # A case bootstrap is a batch of multinomial weight vectors: one vmapped fit.
    n = int(np.sum(unique.weight))
    p = np.asarray(unique.weight) / n
    counts = jax.random.multinomial(jax.random.key(0), n, p, shape=(4, p.size))
    fits = jax.jit(jax.vmap(lambda w: hr.fit(unique._replace(weight=w))))(
        counts.astype(unique.y.dtype)
    )
    assert bool(np.all(fits.converged))
    eager = hr.fit(unique._replace(weight=counts[2].astype(unique.y.dtype)))
    np.testing.assert_allclose(
        ravel_params(fits.params)[2], ravel_params(eager.params), rtol=1e-9
    )


def test_bad_weights_are_named():
    unique, _, _, _ = _unique_and_expanded(seed=4)
    args = (unique.phi0, unique.phi1, unique.y, unique.psi)
    with pytest.raises(ValueError, match="weight must be >= 0"):
        hr.comparisons(*args, weight=-np.asarray(unique.weight))
    with pytest.raises(ValueError, match="weight is 0 on every row"):
        hr.comparisons(*args, weight=np.zeros(unique.num_comparisons))
    with pytest.raises(ValueError, match="weight must have shape"):
        hr.comparisons(*args, weight=np.ones(3))
    with pytest.raises(ValueError, match="parametric bootstrap"):
        hr.confidence_intervals(
            hr.fit(unique).params,
            unique,
            method="bootstrap",
            key=jax.random.key(0),
        )


@pytest.mark.slow  # ~13 s on the 2-core CI machine
def test_padding_rows_of_weight_zero_leave_fit_and_intervals_unchanged():
    unique, _, inverse, rows = _unique_and_expanded(seed=5)
    sizes = [hr.estimate.padded_size(n) for n in (1, 64, 65, 100, 129, 9177)]
    assert sizes == [64, 64, 80, 112, 160, 10240]
    size = hr.estimate.padded_size(unique.num_comparisons)
    assert size > unique.num_comparisons
    padded = hr.estimate.pad_rows(unique, size)
    assert padded.num_comparisons == size
    np.testing.assert_array_equal(padded.weight[unique.num_comparisons :], 0.0)
    fu, fp = hr.fit(unique), hr.fit(padded)
    np.testing.assert_allclose(
        ravel_params(fp.params), ravel_params(fu.params), rtol=1e-9, atol=1e-12
    )
    for method in ("wald", "sandwich"):
        cu = hr.confidence_intervals(fu.params, unique, method=method)
        cp = hr.confidence_intervals(fp.params, padded, method=method)
        np.testing.assert_allclose(
            ravel_params(cp.se), ravel_params(cu.se), rtol=1e-8, err_msg=method
        )
    # Clusters: the padding rows may join any cluster (their weight is 0).
    cluster = np.zeros(unique.num_comparisons, int)
    cluster[inverse] = rows[:, 0].astype(int)
    grown = np.r_[cluster, np.zeros(size - len(cluster), int)]
    np.testing.assert_allclose(
        hr.sandwich_covariance(fp.params, padded, grown, num_clusters=5),
        hr.sandwich_covariance(fu.params, unique, cluster, num_clusters=5),
        rtol=1e-8,
    )
    # Unweighted data get weight 1 on their rows.
    plain = unique._replace(weight=None)
    np.testing.assert_array_equal(
        hr.estimate.pad_rows(plain, size).weight[: unique.num_comparisons], 1.0
    )
    with pytest.raises(ValueError, match="size must be >="):
        hr.estimate.pad_rows(unique, 3)


@pytest.mark.slow  # ~6 s on the 2-core CI machine
def test_resampled_weights_are_case_and_cluster_bootstraps():
    unique, _, inverse, rows = _unique_and_expanded(seed=6)
    key = jax.random.key(1)
    w = np.asarray(unique.weight)
    case = np.asarray(hr.confidence.resample_weights(key, unique, 2000))
    # Multinomial(N, w/N): totals N, integer counts, mean w, variance N·p(1 − p).
    n = w.sum()
    np.testing.assert_array_equal(case.sum(axis=1), n)
    np.testing.assert_array_equal(case, np.round(case))
    p = w / n
    se = np.sqrt(n * p * (1 - p) / 2000)
    assert np.all(np.abs(case.mean(axis=0) - w) < 5 * se)
    np.testing.assert_allclose(case.var(axis=0), n * p * (1 - p), rtol=0.25)
    # Cluster bootstrap: each cluster's rows are repeated the same number of times.
    cluster = np.zeros(unique.num_comparisons, int)
    cluster[inverse] = rows[:, 0].astype(int)
    boot = np.asarray(
        hr.confidence.resample_weights(key, unique, 200, cluster, num_clusters=5)
    )
    times = boot / w
    for c in range(5):
        assert np.all(times[:, cluster == c] == times[:, cluster == c][:, :1])
    per_cluster = np.stack([times[:, cluster == c][:, 0] for c in range(5)], axis=1)
    np.testing.assert_array_equal(per_cluster.sum(axis=1), 5)
    with pytest.raises(ValueError, match="integer counts"):
        hr.confidence.resample_weights(
            key, unique._replace(weight=unique.weight / 3), 2
        )
    with pytest.raises(ValueError, match="num_clusters is required"):
        hr.confidence.resample_weights(key, unique, 2, cluster)


@pytest.mark.slow  # ~13 s on the 2-core CI machine
def test_case_bootstrap_intervals_equal_statsmodels_refits():
    """resample="cases": percentile intervals of the weighted refits = the same
    quantiles of statsmodels GLM refits (freq_weights) of the same weight vectors."""
    unique, _, inverse, rows = _unique_and_expanded(seed=7, k=0)
    res = hr.fit(unique)
    cluster = np.zeros(unique.num_comparisons, int)
    cluster[inverse] = rows[:, 0].astype(int)
    x, y = np.asarray(unique.dphi), np.asarray(unique.y)
    upper = {}
    for clusters in (None, cluster):
        extra = {} if clusters is None else {"cluster": clusters, "num_clusters": 5}
        out = hr.confidence.bootstrap_intervals(
            jax.random.key(3),
            res.params,
            unique,
            num_bootstrap=40,
            resample="cases",
            **extra,
        )
        weights = np.asarray(
            hr.confidence.resample_weights(jax.random.key(3), unique, 40, **extra)
        )
        draws = np.array(
            [
                sm.GLM(y, x, family=sm.families.Binomial(), freq_weights=w)
                .fit(tol=1e-12)
                .params
                for w in weights
            ]
        )
        assert int(out.num_failed) == 0
        np.testing.assert_allclose(ravel_params(out.draws), draws, rtol=1e-6, atol=1e-9)
        ci = out.intervals
        np.testing.assert_allclose(
            ci.lower.theta, np.quantile(draws, 0.025, axis=0), atol=1e-8
        )
        np.testing.assert_allclose(
            ci.upper.theta, np.quantile(draws, 0.975, axis=0), atol=1e-8
        )
        upper[clusters is None] = ci.upper.theta
    # The dispatcher passes the scheme through.
    via = hr.confidence_intervals(
        res.params,
        unique,
        method="bootstrap",
        key=jax.random.key(3),
        num_bootstrap=40,
        resample="cases",
    )
    np.testing.assert_array_equal(via.upper.theta, upper[True])
    with pytest.raises(ValueError, match="resample must be one of"):
        hr.confidence.bootstrap_intervals(
            jax.random.key(0), res.params, unique, resample="jackknife"
        )


def test_cluster_bootstrap_mean_matches_explicit_resamples():
    """The sums-and-counts shortcut = concatenating the drawn clusters' rows, on the
    same draws; and with one row per cluster its spread ≈ the normal-theory se."""
    from hetrlhf.btl import confidence

    rng = np.random.default_rng(0)
    labels = np.array(["b", "a", "c", "a", "b", "d", "c", "a"])
    values = rng.normal(size=labels.size)
    key = jax.random.key(4)
    mean, lo, hi = confidence.cluster_bootstrap_mean(
        key, values, labels, num_bootstrap=300, alpha=0.1
    )
    names = sorted(set(labels))
    draws = np.asarray(jax.random.randint(key, (300, len(names)), 0, len(names)))
    boot = [
        np.concatenate([values[labels == names[c]] for c in row]).mean()
        for row in draws
    ]
    assert mean == pytest.approx(values.mean())
    np.testing.assert_allclose([lo, hi], np.quantile(boot, [0.05, 0.95]), rtol=1e-12)
    x = rng.normal(size=400)
    _, lo, hi = confidence.cluster_bootstrap_mean(
        key, x, np.arange(400), num_bootstrap=4000, alpha=0.05
    )
    se = x.std(ddof=1) / np.sqrt(400)
    assert (hi - lo) / (2 * 1.96 * se) == pytest.approx(1.0, abs=0.08)
