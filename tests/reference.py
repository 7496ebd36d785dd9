"""Independent references for the core tests: a numpy simulator and statsmodels fits.

Nothing here imports hetrlhf's estimator: the data generator is plain numpy and the
reference MLE is statsmodels' ``GenericLikelihoodModel`` (BFGS, then Newton) on the
same log-likelihood written out in numpy.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
from scipy.special import expit
from statsmodels.base.model import GenericLikelihoodModel


class Design(NamedTuple):
    """A test design: truth and covariate distribution."""

    theta: tuple
    gamma: tuple
    psi: str = "uniform"  # "uniform" on (−1, 1) or "binary" {0, 1}
    psi0: tuple = (1.0, 1.0)  # ψ0 ~ Uniform(lo, hi)


DESIGNS = {
    # Our default design (DESIGN.md §6): mixed-sign θ and γ entries.
    "default": Design((1.0, -0.5, 0.8, 0.3, -1.0), (0.5, -0.3, 0.4)),
    # All-negative γ, a different d and k.
    "negative_gamma": Design((-0.7, 1.2, 0.4), (-0.4, -0.3)),
    # Known, varying ψ0 ≠ 1.
    "psi0_varying": Design((1.0, -0.5, 0.8), (0.6, -0.8), psi0=(1.5, 2.5)),
    # Binary annotator covariates.
    "binary": Design((0.8, -1.0, 0.5, 0.2), (-0.5, 0.7, 0.3), psi="binary"),
    # Heavy heterogeneity: a sizeable share of annotators with σ < 0.
    "heavy": Design((1.0, -0.5, 0.8), (1.5, -1.0)),
}


def simulate(rng: np.random.Generator, n: int, design: Design):
    """(phi0, phi1, y, psi, psi0) as numpy arrays."""
    theta, gamma = np.asarray(design.theta), np.asarray(design.gamma)
    d, k = theta.size, gamma.size
    phi0 = rng.normal(size=(n, d))
    phi1 = rng.normal(size=(n, d))
    if design.psi == "binary":
        psi = rng.integers(0, 2, size=(n, k)).astype(float)
    else:
        psi = rng.uniform(-1.0, 1.0, size=(n, k))
    psi0 = (
        rng.uniform(*design.psi0, size=n)
        if design.psi0[0] != design.psi0[1]
        else (np.full(n, design.psi0[0]))
    )
    sigma = psi0 + psi @ gamma
    p = expit(sigma * ((phi1 - phi0) @ theta))
    y = (rng.uniform(size=n) < p).astype(float)
    return phi0, phi1, y, psi, psi0


def numpy_loss(x, phi0, phi1, y, psi, psi0):
    """Mean negative log-likelihood, written independently of hetrlhf.btl.model."""
    d = phi0.shape[1]
    eta = (psi0 + psi @ x[d:]) * ((phi1 - phi0) @ x[:d])
    return float(np.mean(np.logaddexp(0.0, eta) - y * eta))


class HetBTL(GenericLikelihoodModel):
    """The heterogeneous BTL likelihood for statsmodels."""

    def __init__(self, endog, dphi, psi, psi0, **kwargs):
        self.dphi, self.psi, self.psi0 = dphi, psi, psi0
        super().__init__(endog, np.column_stack([dphi, psi]), **kwargs)

    def loglikeobs(self, params):
        d = self.dphi.shape[1]
        eta = (self.psi0 + self.psi @ params[d:]) * (self.dphi @ params[:d])
        return self.endog * eta - np.logaddexp(0.0, eta)

    def score_obs(self, params):
        d = self.dphi.shape[1]
        sigma = self.psi0 + self.psi @ params[d:]
        r = self.dphi @ params[:d]
        resid = self.endog - expit(sigma * r)
        return resid[:, None] * np.column_stack(
            [sigma[:, None] * self.dphi, r[:, None] * self.psi]
        )


class Reference(NamedTuple):
    params: np.ndarray  # [d + k]
    bse: np.ndarray  # [d + k]
    cov: np.ndarray  # [d + k, d + k]
    conf_int: np.ndarray  # [d + k, 2]
    loss: float


def statsmodels_fit(phi0, phi1, y, psi, psi0, start) -> Reference:
    """statsmodels MLE of the heterogeneous model: BFGS, polished by Newton.

    ``start`` should be a sensible point (the tests use the truth): statsmodels does no
    basin check of its own.
    """
    model = HetBTL(y, phi1 - phi0, psi, psi0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.fit(
            start_params=np.asarray(start),
            method="bfgs",
            maxiter=2000,
            gtol=1e-10,
            disp=0,
        )
        res = model.fit(
            start_params=res.params, method="newton", maxiter=100, tol=1e-12, disp=0
        )
    loss = numpy_loss(res.params, phi0, phi1, y, psi, psi0)
    return Reference(res.params, res.bse, res.cov_params(), res.conf_int(0.05), loss)
