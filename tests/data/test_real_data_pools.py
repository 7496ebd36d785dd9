"""``hetrlhf.data.pools`` (best-of-N pools from pairwise records) and
``loaders.level_covariates``, against win rates, rewards and choices worked out by hand
with numpy."""

import numpy as np
import pytest
import scipy.stats

import hetrlhf as hr
from hetrlhf.data import loaders, pools


def _rec(prompt, r0, r1, label, annotator="h"):
    return loaders.PreferenceRecord(
        prompt, r0, r1, label, annotator, None, None, None, None, (), "file", 1
    )


RECORDS = [
    _rec("p", "a", "b", 1),  # b beats a
    _rec("p", "b", "c", 0),  # b beats c
    _rec("p", "a", "c", None),  # tie: one half each
    _rec("q", "x", "y", 0),  # x beats y
    _rec("q", "x", "y", 1),  # y beats x
    _rec("r", "u", "u", 1),  # one candidate only: skipped
    _rec("s", "m", "n", 1),  # not pooled
]


def test_text_positions_in_order_of_first_appearance():
    got = pools.text_positions(RECORDS[:4])
    assert got == {
        ("p", "a"): 0,
        ("p", "b"): 1,
        ("p", "c"): 2,
        ("q", "x"): 3,
        ("q", "y"): 4,
    }


def test_candidate_pools_win_rates_by_hand():
    position = pools.text_positions(RECORDS)
    got = pools.candidate_pools(RECORDS, {"p", "q", "r"}, position)
    assert got.prompts == ["p", "q"] and got.skipped == 1
    # p: a lost to b and tied c -> (0 + 0.5) / 2; b won twice -> 1; c lost to b,
    # tied a -> 0.25. q: x and y won once each -> 0.5.
    np.testing.assert_array_equal(got.gold, [[0.25, 1.0, 0.25], [0.5, 0.5, 0.0]])
    np.testing.assert_array_equal(got.mask, [[True, True, True], [True, True, False]])
    ids = [position[k] for k in [("p", "a"), ("p", "b"), ("p", "c"), ("q", "x")]]
    np.testing.assert_array_equal(got.rows[0], ids[:3])
    assert got.rows[1, 0] == ids[3] and got.rows[1, 1] == position[("q", "y")]


def test_candidate_pools_empty():
    got = pools.candidate_pools(RECORDS, {"r"}, pools.text_positions(RECORDS))
    assert got.prompts == [] and got.skipped == 1 and got.gold.shape == (0, 0)


def test_pool_choices_against_numpy():
    rng = np.random.default_rng(0)
    d, k, m = 3, 1, 7
    phi = rng.normal(size=(m, d))
    theta = np.array([1.0, -0.5, 0.3])
    params = hr.Params(np.asarray(theta), np.array([0.2]))
    a = rng.normal(size=(d + k, d + k))
    cov = a @ a.T + np.eye(d + k)
    train = hr.comparisons(
        rng.normal(size=(5, d)),
        rng.normal(size=(5, d)),
        np.array([0, 1, 1, 0, 1]),
        psi=rng.normal(size=(5, k)),
        dtype=np.float64,
    )
    rows = np.array([[0, 2, 5], [6, 1, 0]])
    mask = np.array([[True, True, True], [True, True, False]])
    gold = np.array([[0.1, 0.9, 0.4], [0.3, 0.7, 0.0]])
    pool = pools.CandidatePools(["p", "q"], rows, gold, mask, 0)
    got = pools.pool_choices(params, train, phi, pool, 0.1, cov=cov)
    z = scipy.stats.norm.ppf(0.95)
    for i in range(2):
        idx = rows[i][mask[i]]
        mean = phi[idx] @ theta
        var = np.array([phi[j] @ cov[:d, :d] @ phi[j] for j in idx])
        g = gold[i][mask[i]]
        assert float(got.bon[i]) == g[np.argmax(mean)]
        assert float(got.pbon[i]) == g[np.argmax(mean - z * np.sqrt(var))]
        assert bool(got.changed[i]) == (
            np.argmax(mean) != np.argmax(mean - z * np.sqrt(var))
        )
        np.testing.assert_allclose(float(got.random[i]), g.mean(), rtol=1e-12)
        assert float(got.oracle[i]) == g.max()
        assert int(got.num_candidates[i]) == mask[i].sum()


def test_pool_choices_rejects_empty_pools():
    empty = pools.CandidatePools([], np.zeros((0, 0), int), np.zeros((0, 0)), None, 3)
    with pytest.raises(ValueError, match="pools"):
        pools.pool_choices(None, None, np.zeros((1, 1)), empty)


def test_level_covariates_by_hand():
    train = ["a", "b", "b", "c", "b", "a", "d"]
    rows = ["a", "c", "e", "d"]
    levels, psi_train, psi = loaders.level_covariates(
        train, rows, reference="b", min_count=2
    )
    assert levels.names == ("a",) and levels.reference == "b"
    assert set(levels.pooled) == {"c", "d"}
    np.testing.assert_array_equal(psi_train[:, 0], [1, 0, 0, 0, 0, 1, 0])
    np.testing.assert_array_equal(psi[:, 0], [1, 0, 0, 0])  # unseen "e": reference
    levels, psi_train, psi = loaders.level_covariates(
        ["a", "a", "b"], ["b"], min_count=2
    )
    assert levels.reference == "a" and psi_train is None and psi is None
