"""Comparing the two arms of the PPO study: vanilla vs variance-aware policies.

Each arm is a sample of per-policy scores (the gold reward of one sampled response per
prompt, averaged over the prompts; paper B's evaluation), and the reference is a sample
of reference-policy runs evaluated the same way. The tests match the sampling:

* independent arms (distinct keys per arm and per policy; the default):
  one-sided F-test of s²_vanilla/s²_VA (H1: vanilla varies more), Brown–Forsythe
  (Levene with medians), Welch's t-test of the means (two-sided), and the risk — the
  fraction of an arm's policies below the MEAN of the reference runs — with the pooled
  two-proportion z-test and Fisher's exact test;
* paired arms (policy i of both arms shares its key): Pitman–Morgan (the correlation
  of X − Y and X + Y; H1: vanilla varies more), the paired t-test, and McNemar's exact
  test of the discordant below-reference pairs.

Every p-value is given with its sidedness (``SIDEDNESS``). References: scipy.stats and
statsmodels (the tests check each statistic against them or against closed forms).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

__all__ = ["SIDEDNESS", "compare_arms", "two_proportion_ztest"]

SIDEDNESS = {
    "f_p": "one-sided, H1: var(vanilla) > var(variance-aware)",
    "brown_forsythe_p": "two-sided, H1: the spreads differ (Levene, median-centred)",
    "brown_forsythe_p_one_sided": (
        "one-sided, H1: vanilla's absolute deviations from its median are larger"
    ),
    "welch_p": "two-sided, H1: the means differ",
    "risk_p": "one-sided, H1: risk(vanilla) > risk(variance-aware) (pooled z)",
    "risk_p_two_sided": "two-sided, H1: the risks differ (pooled z)",
    "risk_fisher_p": "one-sided, H1: risk(vanilla) > risk(variance-aware) (Fisher)",
    "pitman_morgan_p": "one-sided, H1: var(vanilla) > var(variance-aware) (paired)",
    "paired_t_p": "two-sided, H1: the paired means differ",
    "mcnemar_p": (
        "one-sided, H1: vanilla-below/VA-above pairs outnumber the reverse (exact)"
    ),
}


def two_proportion_ztest(
    x1: int, n1: int, x2: int, n2: int
) -> tuple[float, float, float]:
    """Pooled two-proportion z-test of p1 = p2.

    z = (p̂1 − p̂2)/√(p̂(1 − p̂)(1/n1 + 1/n2)), p̂ = (x1 + x2)/(n1 + n2) (as statsmodels'
    ``proportions_ztest``). z = 0 (p = 1, 0.5) when p̂ ∈ {0, 1}.

    Returns:
      (z, one-sided p for H1: p1 > p2, two-sided p).
    """
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (x1 / n1 - x2 / n2) / se if se > 0 else 0.0
    return z, float(stats.norm.sf(z)), float(2 * stats.norm.sf(abs(z)))


def _as_sample(name: str, x) -> np.ndarray:
    x = np.asarray(x, np.float64)
    if x.ndim != 1 or x.size < 3:
        raise ValueError(f"{name} must be a 1-D sample of >= 3 values, got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def _variance_tests(v: np.ndarray, va: np.ndarray, alpha: float) -> dict:
    n1, n2 = v.size, va.size
    var_v, var_va = v.var(ddof=1), va.var(ddof=1)
    f_stat = var_v / var_va if var_va > 0 else math.inf
    bf = stats.levene(v, va, center="median")
    # Brown–Forsythe for two groups is the pooled t-test of the absolute deviations
    # from the group medians squared (W = t²), which gives it a one-sided version.
    dev_t = stats.ttest_ind(
        np.abs(v - np.median(v)), np.abs(va - np.median(va)), alternative="greater"
    )
    return {
        "var_vanilla": var_v,
        "var_variance_aware": var_va,
        "f_stat": f_stat,
        "f_df": [n1 - 1, n2 - 1],
        "f_critical": float(stats.f.ppf(1 - alpha, n1 - 1, n2 - 1)),
        "f_p": float(stats.f.sf(f_stat, n1 - 1, n2 - 1)),
        "brown_forsythe_w": float(bf.statistic),
        "brown_forsythe_p": float(bf.pvalue),
        "brown_forsythe_p_one_sided": float(dev_t.pvalue),
    }


def _mean_tests(v: np.ndarray, va: np.ndarray, alpha: float) -> dict:
    welch = stats.ttest_ind(v, va, equal_var=False)
    return {
        "mean_vanilla": v.mean(),
        "mean_variance_aware": va.mean(),
        "mean_difference": v.mean() - va.mean(),
        "welch_t": float(welch.statistic),
        "welch_df": float(welch.df),
        "welch_p": float(welch.pvalue),
        "welch_t_critical": float(stats.t.ppf(1 - alpha / 2, welch.df)),
    }


def _risk_tests(v: np.ndarray, va: np.ndarray, reference: np.ndarray) -> dict:
    threshold = reference.mean()
    below_v, below_va = v < threshold, va < threshold
    x1, x2, n1, n2 = int(below_v.sum()), int(below_va.sum()), v.size, va.size
    z, p_one, p_two = two_proportion_ztest(x1, n1, x2, n2)
    fisher = stats.fisher_exact([[x1, n1 - x1], [x2, n2 - x2]], alternative="greater")
    return {
        "reference_mean": threshold,
        "reference_var": reference.var(ddof=1),
        "risk": {"vanilla": x1 / n1, "variance_aware": x2 / n2},
        "risk_difference": x1 / n1 - x2 / n2,
        "risk_z": z,
        "risk_p": p_one,
        "risk_p_two_sided": p_two,
        "risk_fisher_p": float(fisher.pvalue),
    }


def _paired_tests(v: np.ndarray, va: np.ndarray, reference: np.ndarray) -> dict:
    # Pitman–Morgan: var(X) − var(Y) = cov(X − Y, X + Y), so H0 of equal variances is
    # zero correlation of the difference and the sum (t-test with n − 2 df). A
    # constant difference or sum has no correlation: r = 0 (t = 0, p = 1/2), as the
    # F-test gives p = 1/2 at F = 1.
    d, s = v - va, v + va
    if np.ptp(d) == 0 or np.ptp(s) == 0:
        pm_r, pm_p = 0.0, 0.5
    else:
        pm = stats.pearsonr(d, s, alternative="greater")
        pm_r, pm_p = float(pm.statistic), float(pm.pvalue)
    if np.ptp(d) == 0:  # identical (t = 0, p = 1) or constantly shifted arms
        t_paired = 0.0 if d[0] == 0 else math.copysign(math.inf, d[0])
        p_paired = 1.0 if d[0] == 0 else 0.0
    else:
        paired = stats.ttest_rel(v, va)
        t_paired, p_paired = float(paired.statistic), float(paired.pvalue)
    threshold = reference.mean()
    below_v, below_va = v < threshold, va < threshold
    b = int(np.sum(below_v & ~below_va))
    c = int(np.sum(~below_v & below_va))
    mcnemar = (
        stats.binomtest(b, b + c, 0.5, alternative="greater").pvalue if b + c else 1.0
    )
    return {
        "pitman_morgan_r": pm_r,
        "pitman_morgan_p": pm_p,
        "paired_t": t_paired,
        "paired_t_p": p_paired,
        "mcnemar_discordant": [b, c],
        "mcnemar_p": float(mcnemar),
    }


def compare_arms(
    vanilla, variance_aware, reference, *, alpha: float = 0.05, paired: bool = False
) -> dict:
    """Tables 1–3 statistics of the two arms (see module doc).

    Args:
      vanilla: [n1] per-policy scores of the vanilla arm.
      variance_aware: [n2] per-policy scores of the variance-aware arm.
      reference: [r] scores of reference-policy runs evaluated like the policies.
      alpha: level of the critical values (F and two-sided t).
      paired: the arms share their keys policy by policy (n1 = n2): also give the
        paired tests.

    Returns:
      A dict of floats: var_*, f_stat (= s²_vanilla/s²_VA, ddof 1), f_df, f_critical,
      f_p, brown_forsythe_*, mean_*, welch_t, welch_df, welch_p, welch_t_critical,
      reference_mean, risk {"vanilla", "variance_aware"}, risk_z, risk_p,
      risk_p_two_sided, risk_fisher_p, (paired: pitman_morgan_*, paired_t*,
      mcnemar_*), and "sidedness" (the H1 of every p-value).
    """
    v = _as_sample("vanilla", vanilla)
    va = _as_sample("variance_aware", variance_aware)
    ref = _as_sample("reference", reference)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha!r}")
    if paired and v.size != va.size:
        raise ValueError(
            f"paired arms need equal sizes, got {v.size} and {va.size} policies"
        )
    out = {
        **_variance_tests(v, va, alpha),
        **_mean_tests(v, va, alpha),
        **_risk_tests(v, va, ref),
    }
    if paired:
        out.update(_paired_tests(v, va, ref))
    out["sidedness"] = {k: s for k, s in SIDEDNESS.items() if k in out}
    return out
