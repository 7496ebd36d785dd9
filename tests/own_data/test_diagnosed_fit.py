"""``own_data.analysis.diagnosed_fit``: the estimate and covariance against statsmodels'
logistic regression (homogeneous model: P(y = 1) = sigmoid(θᵀΔφ), no intercept), and
the status of a separated data set (no finite MLE)."""

import numpy as np
import statsmodels.api as sm

import hetrlhf as hr
from hetrlhf.own_data import analysis


def _data(n, d, seed, separated=False):
    rng = np.random.default_rng(seed)
    phi0, phi1 = rng.normal(size=(n, d)), rng.normal(size=(n, d))
    eta = (phi1 - phi0) @ np.arange(1.0, d + 1) * 0.5
    y = (eta > 0) if separated else rng.uniform(size=n) < 1 / (1 + np.exp(-eta))
    return phi0, phi1, y.astype(float)


def test_ok_fit_matches_statsmodels():
    phi0, phi1, y = _data(400, 3, 0)
    fit = analysis.diagnosed_fit(hr.comparisons(phi0, phi1, y, dtype=np.float64))
    ref = sm.Logit(y, phi1 - phi0).fit(disp=0, tol=1e-12)
    assert fit.status == "ok" and fit.converged and not fit.separated
    np.testing.assert_allclose(fit.params.theta, ref.params, rtol=1e-7)
    np.testing.assert_allclose(fit.cov, ref.cov_params(), rtol=1e-6)
    np.testing.assert_allclose(fit.loss, -ref.llf / 400, rtol=1e-10)
    assert 1 <= fit.condition_number < 1e3


def test_separated_rows_get_that_status():
    phi0, phi1, y = _data(60, 2, 1, separated=True)
    fit = analysis.diagnosed_fit(hr.comparisons(phi0, phi1, y, dtype=np.float64))
    assert fit.separated and not fit.converged and fit.status == "separated"
