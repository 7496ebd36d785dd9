"""Bayesian heterogeneous Bradley–Terry model: numpyro model, NUTS posterior, credible intervals.

The likelihood is exactly the one of the MLE (``hetrlhf.model.log_likelihood``,
the model of Liu, Lu & Sun 2025); the priors are ours, weak and independent:

    θ_j ~ N(0, s²),  γ_l ~ N(0, s²),  s = ``prior_scale`` (default 10)
    y_i | θ, γ ~ Bernoulli(sigmoid(σ_γ(x_i)·θᵀΔφ_i)),  σ_γ(x) = ψ0(x) + γᵀψ(x)

With s = 10 the prior's log-density changes by at most ~1e−2 over the region where the
likelihood of our design lives (|θ_j|, |γ_l| ≲ 2), so in large samples the posterior is
the likelihood's (Bernstein–von Mises: mean ≈ MLE, sd ≈ Wald se). The support is
bimodal in principle (θ → −θ with σ < 0, DESIGN.md A1); chains start at ``init``
(the MLE in practice), which selects the identified mode, as Algorithm 1 does.

``sample_posterior`` runs a fixed number of NUTS iterations (numpyro's NUTS kernel with
step-size and diagonal mass-matrix adaptation during warm-up) for ONE dataset; its
chains are vmapped inside, so it is jittable and vmappable over datasets:

>>> post = jax.jit(jax.vmap(lambda k, d, i: sample_posterior(k, d, i)))(keys, data, inits)

``credible_intervals`` summarises the draws (posterior mean, sd, equal-tailed quantile
interval, split-R̂) in the same Params-shaped layout as ``hr.Intervals``.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as dist
from numpyro.infer import NUTS
from numpyro.infer.util import potential_energy

from hetrlhf import model
from hetrlhf.types import Comparisons, Params

__all__ = [
    "CredibleIntervals",
    "PosteriorSamples",
    "btl_model",
    "credible_intervals",
    "posterior",
    "sample_posterior",
    "split_r_hat",
]


class PosteriorSamples(NamedTuple):
    """NUTS draws for one dataset.

    Attributes:
      params: Params with theta [C, S, d] and gamma [C, S, k] (C chains, S draws).
      diverging: [C, S] bool, divergent transitions after warm-up.
      num_steps: [C, S] leapfrog steps per draw.
      step_size: [C] adapted step size.
    """

    params: Params
    diverging: jax.Array
    num_steps: jax.Array
    step_size: jax.Array


class CredibleIntervals(NamedTuple):
    """Posterior summary laid out like ``hr.Intervals`` (each field a Params pytree).

    Attributes:
      estimate: posterior mean.
      se: posterior standard deviation.
      lower, upper: equal-tailed (1 − α) credible interval (α/2 and 1 − α/2 quantiles).
      r_hat: split-R̂ (Gelman et al. 2013, BDA3 §11.4) per coordinate; ≈ 1 when the
        chains agree (> 1.01–1.05 means more draws are needed).
      num_divergent: [] number of divergent transitions after warm-up (0 expected).
    """

    estimate: Params
    se: Params
    lower: Params
    upper: Params
    r_hat: Params
    num_divergent: jax.Array


def btl_model(data: Comparisons, prior_scale=10.0) -> None:
    """numpyro model of the heterogeneous Bradley–Terry likelihood with N(0, s²) priors.

    Args:
      data: one dataset (phi0, phi1 [n, d], y [n], psi [n, k], psi0 [n]).
      prior_scale: s, prior standard deviation of every θ_j and γ_l (our choice).
    """
    d, k = data.phi0.shape[-1], data.psi.shape[-1]
    dtype = data.phi0.dtype
    zero = jnp.zeros((), dtype)
    theta = numpyro.sample(
        "theta", dist.Normal(zero, prior_scale).expand([d]).to_event(1)
    )
    gamma = numpyro.sample(
        "gamma", dist.Normal(zero, prior_scale).expand([k]).to_event(1)
    )
    numpyro.factor(
        "log_likelihood", jnp.sum(model.log_likelihood(Params(theta, gamma), data))
    )


def _raw_key(key: jax.Array) -> jax.Array:
    # numpyro's kernels take legacy uint32[2] keys; accept new-style typed keys too.
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return jax.random.key_data(key)
    return key


def sample_posterior(
    key: jax.Array,
    data: Comparisons,
    init: Params,
    *,
    num_warmup: int = 500,
    num_samples: int = 1000,
    num_chains: int = 2,
    prior_scale=10.0,
    target_accept_prob: float = 0.8,
    max_tree_depth: int = 8,
) -> PosteriorSamples:
    """NUTS (Hoffman & Gelman 2014) draws from p(θ, γ | data) for ONE dataset.

    A fixed number of iterations (``lax.scan``), so the kernel is jittable and
    vmappable over datasets; the chains are vmapped inside and all start at ``init``.

    Args:
      key: PRNG key.
      data: one dataset with n comparisons.
      init: [d], [k] starting point of every chain (e.g. ``hr.fit(data).params``).
      num_warmup: adaptation iterations (step size, diagonal mass matrix); discarded.
      num_samples: draws kept per chain.
      num_chains: C, independent chains.
      prior_scale: s of the N(0, s²) priors (see ``btl_model``).
      target_accept_prob: NUTS dual-averaging target.
      max_tree_depth: NUTS maximum tree depth (at most 2^depth leapfrog steps).

    Returns:
      ``PosteriorSamples`` with params theta [C, S, d], gamma [C, S, k].
    """
    d = data.phi0.shape[-1]
    chex.assert_rank([init.theta, init.gamma], [1, 1])
    chex.assert_shape(init.theta, (d,))
    chex.assert_shape(init.gamma, (data.psi.shape[-1],))

    def potential(z):
        return potential_energy(btl_model, (data,), {"prior_scale": prior_scale}, z)

    def one_chain(chain_key):
        kernel = NUTS(
            potential_fn=potential,
            target_accept_prob=target_accept_prob,
            max_tree_depth=max_tree_depth,
        )
        state = kernel.init(
            chain_key, num_warmup, init_params=init._asdict(), model_args=()
        )

        def step(state, _):
            state = kernel.sample(state, (), {})
            return state, (state.z, state.diverging, state.num_steps)

        # One scan over warm-up and sampling (one copy of the NUTS kernel to compile);
        # the warm-up draws are dropped afterwards.
        state, (z, diverging, num_steps) = jax.lax.scan(
            step, state, None, length=num_warmup + num_samples
        )
        z, diverging, num_steps = jax.tree.map(
            lambda x: x[num_warmup:], (z, diverging, num_steps)
        )
        return Params(**z), diverging, num_steps, state.adapt_state.step_size

    keys = jax.random.split(_raw_key(key), num_chains)
    params, diverging, num_steps, step_size = jax.vmap(one_chain)(keys)
    return PosteriorSamples(params, diverging, num_steps, step_size)


def split_r_hat(draws: jax.Array) -> jax.Array:
    """Split-R̂ of one scalar's draws (BDA3 §11.4), traceable.

    Args:
      draws: [C, S] draws of C chains (S >= 4); each chain is split in halves.

    Returns:
      [] sqrt(var̂⁺/W); 1 when the (half-)chains agree.
    """
    chex.assert_rank(draws, 2)
    half = draws.shape[1] // 2
    chains = jnp.concatenate([draws[:, :half], draws[:, half : 2 * half]], axis=0)
    m = chains.shape[1]
    within = jnp.mean(jnp.var(chains, axis=1, ddof=1))
    between = m * jnp.var(jnp.mean(chains, axis=1), ddof=1)
    var_plus = (m - 1) / m * within + between / m
    return jnp.sqrt(var_plus / within)


def _check_alpha(alpha) -> None:
    if not isinstance(alpha, jax.core.Tracer) and not 0.0 < float(alpha) < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")


def credible_intervals(samples: PosteriorSamples, alpha=0.05) -> CredibleIntervals:
    """Posterior mean, sd, equal-tailed (1 − α) credible interval and split-R̂.

    Args:
      samples: ``sample_posterior`` output for one dataset (theta [C, S, d]).
      alpha: 1 − credibility level.

    Returns:
      ``CredibleIntervals``; estimate/se/lower/upper/r_hat are Params of [d] and [k].
    """
    _check_alpha(alpha)
    chex.assert_rank(samples.params.theta, 3)
    flat = jax.tree.map(
        lambda x: x.reshape(-1, x.shape[-1]), samples.params
    )  # [C·S, p]
    mean = jax.tree.map(lambda x: jnp.mean(x, axis=0), flat)
    sd = jax.tree.map(lambda x: jnp.std(x, axis=0, ddof=1), flat)
    lower = jax.tree.map(lambda x: jnp.quantile(x, alpha / 2.0, axis=0), flat)
    upper = jax.tree.map(lambda x: jnp.quantile(x, 1.0 - alpha / 2.0, axis=0), flat)
    r_hat = jax.tree.map(
        lambda x: jax.vmap(split_r_hat, in_axes=-1)(x).reshape(x.shape[-1:]),
        samples.params,
    )
    return CredibleIntervals(mean, sd, lower, upper, r_hat, jnp.sum(samples.diverging))


def posterior(
    key: jax.Array,
    data: Comparisons,
    init: Params | None = None,
    alpha=0.05,
    **options,
) -> CredibleIntervals:
    """Eager convenience: NUTS posterior summary of one dataset.

    Args:
      key: PRNG key.
      data: validated ``Comparisons`` (``hr.comparisons``).
      init: chains' start; default the MLE ``hr.fit(data).params``.
      alpha: 1 − credibility level.
      **options: forwarded to ``sample_posterior`` (num_warmup, num_samples, ...).

    Raises:
      TypeError: ``data`` is not a ``Comparisons``.
      ValueError: bad alpha, prior_scale <= 0, too few draws.
    """
    from hetrlhf.estimate import fit

    if not isinstance(data, Comparisons):
        raise TypeError(
            f"data must be a hetrlhf.Comparisons (use hr.comparisons), got {type(data).__name__}"
        )
    _check_alpha(alpha)
    scale = options.get("prior_scale", 10.0)
    if not float(scale) > 0.0:
        raise ValueError(f"prior_scale must be > 0, got {scale}")
    for name in ("num_samples", "num_chains"):
        if name in options and int(options[name]) < (4 if name == "num_samples" else 1):
            raise ValueError(f"{name} is too small: {options[name]}")
    if init is None:
        init = fit(data).params
    samples = jax.jit(functools.partial(sample_posterior, **options))(key, data, init)
    return credible_intervals(samples, alpha)
