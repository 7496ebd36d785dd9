"""Adjusted p-values vs statsmodels, and rankings with groups on constructed cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

import hetrlhf as hr
from hetrlhf.btl import multitest

_SM = {"holm": "holm", "bh": "fdr_bh", "by": "fdr_by", "bonferroni": "bonferroni"}


def _pvalue_families():
    rng = np.random.default_rng(1)
    fams = [
        rng.uniform(size=40),
        np.concatenate([rng.uniform(0, 1e-3, 8), rng.uniform(size=12)]),
        np.array([0.01, 0.01, 0.02, 0.02, 0.02, 0.5, 0.5, 1.0, 0.0]),  # ties, 0, 1
        np.array([0.3]),
        rng.beta(0.3, 2.0, size=200),
    ]
    return fams


@pytest.mark.slow  # ~5 s on the 2-core CI machine
@pytest.mark.parametrize("method", sorted(_SM))
def test_adjust_pvalues_matches_statsmodels(method):
    for p in _pvalue_families():
        ours = np.asarray(multitest.adjust_pvalues(jnp.asarray(p), method))
        ref = multipletests(p, alpha=0.05, method=_SM[method])[1]
        np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-15)


def test_adjust_pvalues_batched_and_jitted():
    rng = np.random.default_rng(2)
    p = rng.beta(0.5, 1.0, size=(3, 25))
    for method in multitest.METHODS:
        out = jax.jit(lambda q, m=method: multitest.adjust_pvalues(q, m))(p)
        for row, ref_row in zip(np.asarray(out), p):
            ref = multipletests(ref_row, method=_SM[method])[1]
            np.testing.assert_allclose(row, ref, rtol=1e-12)


def test_adjust_pvalues_bad_input():
    with pytest.raises(ValueError, match="method"):
        multitest.adjust_pvalues(jnp.array([0.1]), "sidak-ish")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        multitest.adjust_pvalues(jnp.array([0.1, 1.5]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        multitest.adjust_pvalues(jnp.array([0.1, jnp.nan]))
    with pytest.raises(ValueError, match="axis"):
        multitest.adjust_pvalues(jnp.array(0.1))


@pytest.mark.slow  # ~4 s on the 2-core CI machine
def test_adjust_comparisons_on_a_batch_of_fisher_comparisons():
    # 30 pairs of responses compared at once under one model (the covariance is
    # taken at the generating parameters: no fit needed for this check).
    design = hr.simulate.get_design("binary")
    data = hr.simulate.simulate(jax.random.key(3), design, 500)
    params = hr.simulate.design_truth(design)
    rng = np.random.default_rng(3)
    phi_a, phi_b = rng.normal(size=(2, 30, design.d)) * 0.3
    cmp = jax.jit(hr.compare_rewards)(params, data, phi_a, phi_b)
    adj = multitest.adjust_comparisons(cmp)
    np.testing.assert_allclose(adj.p_value, cmp.p_value)
    for name, method in (("p_holm", "holm"), ("p_bh", "fdr_bh")):
        ref = multipletests(np.asarray(cmp.p_value), method=method)[1]
        np.testing.assert_allclose(getattr(adj, name), ref, rtol=1e-12)
    # One-sided family uses the one-sided p-values.
    adj_g = multitest.adjust_comparisons(cmp, alternative="greater")
    ref = multipletests(np.asarray(cmp.p_value_greater), method="holm")[1]
    np.testing.assert_allclose(adj_g.p_holm, ref, rtol=1e-12)
    with pytest.raises(ValueError, match="alternative"):
        multitest.adjust_comparisons(cmp, alternative="bigger")
    with pytest.raises(TypeError, match="RewardComparison"):
        multitest.adjust_comparisons(cmp.p_value)


def test_pairwise_comparisons_hand_computed():
    mean = np.array([1.0, 0.2, -0.5])
    var = np.array([0.04, 0.09, 0.01])
    cov = np.diag(var)
    cov[0, 1] = cov[1, 0] = 0.02
    cmp, i, j = multitest.pairwise_comparisons(hr.RewardEstimate(mean, var), cov)
    assert list(zip(i, j)) == [(0, 1), (0, 2), (1, 2)]
    se = np.sqrt([0.04 + 0.09 - 0.04, 0.04 + 0.01, 0.09 + 0.01])
    z = np.array([0.8, 1.5, 0.7]) / se
    np.testing.assert_allclose(cmp.z, z, rtol=1e-12)
    np.testing.assert_allclose(cmp.p_value, 2 * stats.norm.sf(np.abs(z)), rtol=1e-10)


def _ranked(mean, var, **kw):
    return multitest.rank_with_groups(
        hr.RewardEstimate(jnp.asarray(mean, float), jnp.asarray(var, float)), **kw
    )


def test_rank_with_groups_separated_and_tied():
    r = _ranked([1.0, 3.0, 2.0], [1e-4] * 3)
    assert r.order.tolist() == [1, 2, 0]
    assert r.rank.tolist() == [3, 1, 2]
    assert r.group.tolist() == [3, 1, 2]
    assert r.letters == ("c", "a", "b")
    assert r.different[~np.eye(3, dtype=bool)].all()

    r = _ranked([0.1, 0.0, 0.2, -0.1], [4.0] * 4)
    assert r.group.tolist() == [1, 1, 1, 1]
    assert r.letters == ("a",) * 4
    assert not r.different.any()

    # Two clusters: {A, B} far above {C, D}.
    r = _ranked([10.0, 9.9, 5.0, 4.9], [0.01] * 4)
    assert r.group.tolist() == [1, 1, 2, 2]
    assert r.letters == ("a", "a", "b", "b")


def test_rank_with_groups_chain_by_hand():
    # A = 0, B = 1.5, C = 3, var 0.5 each: pair se = 1, z = 1.5, 1.5, 3.
    # Raw p: 0.1336, 0.1336, 0.0027; Holm (m = 3): 0.0081, 0.267, 0.267.
    r = _ranked([0.0, 1.5, 3.0], [0.5] * 3)
    p_ac = 2 * stats.norm.sf(3.0)
    np.testing.assert_allclose(r.p_adjusted[0, 2], 3 * p_ac, rtol=1e-10)
    np.testing.assert_allclose(
        r.p_adjusted[0, 1], 2 * 2 * stats.norm.sf(1.5), rtol=1e-10
    )
    # C leads group 1 and takes B; A is separated from C: group 2.
    assert r.group.tolist() == [2, 1, 1]
    # Letters: maximal cliques of "not different" are {C, B} -> a, {B, A} -> b.
    assert r.letters == ("b", "ab", "a")
    # Bonferroni multiplies every p by 3; the decision is the same here.
    assert _ranked([0.0, 1.5, 3.0], [0.5] * 3, method="bonferroni").letters == r.letters
    # At alpha = 0.005 nothing is separable.
    assert _ranked([0.0, 1.5, 3.0], [0.5] * 3, alpha=0.005).group.tolist() == [1, 1, 1]


def test_rank_with_groups_non_contiguous_group():
    # A (best, precise), B (precise, clearly below A), C (below B, very noisy):
    # C cannot be separated from A, so it joins A's group although B is ranked
    # between them.
    r = _ranked([5.0, 3.0, 2.0], [0.01, 0.01, 25.0])
    assert r.group.tolist() == [1, 2, 1]
    assert r.letters == ("a", "b", "ab")


def test_rank_with_groups_uses_the_covariance():
    est = hr.RewardEstimate(jnp.array([1.0, 0.0]), jnp.array([1.0, 1.0]))
    assert _ranked(est.mean, est.var).group.tolist() == [1, 1]
    # Strongly correlated estimates: the difference is precise (var 2 − 2·0.999).
    cov = jnp.array([[1.0, 0.999], [0.999, 1.0]])
    r = multitest.rank_with_groups(est, cov=cov)
    assert r.group.tolist() == [1, 2]
    np.testing.assert_allclose(
        r.p_adjusted[0, 1], 2 * stats.norm.sf(1 / np.sqrt(0.002)), rtol=1e-8
    )


def test_rank_with_groups_bad_input():
    est = hr.RewardEstimate(jnp.array([1.0, 0.0]), jnp.array([1.0, 1.0]))
    with pytest.raises(ValueError, match="alpha"):
        multitest.rank_with_groups(est, alpha=1.5)
    with pytest.raises(TypeError, match="RewardEstimate"):
        multitest.rank_with_groups((est.mean, est.var))
    with pytest.raises(ValueError, match="N >= 2"):
        _ranked([1.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        _ranked([1.0, np.nan], [1.0, 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        _ranked([1.0, 0.0], [1.0, -1.0])
    with pytest.raises(ValueError, match="cov must have shape"):
        multitest.rank_with_groups(est, cov=jnp.eye(3))
    with pytest.raises(ValueError, match="method"):
        multitest.rank_with_groups(est, method="tukey")
