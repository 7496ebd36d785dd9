"""Alignment kernels with and without ``jax.jit`` (chex variants) vs independent numpy.

References, none computed by hetrlhf: the clipped PPO surrogate as a numpy loop and its
gradient by central finite differences; the k1/k3 KL estimators, whose expectation
under π (enumerated exactly by weighting each action by π(a)) is the numpy
KL(π ‖ π_ref); group advantages, the variance-aware KL weights and the KL-in-reward
penalty by numpy; (pessimistic) best-of-N against numpy ``argmax`` of the lower
confidence bound with scipy's normal quantile; uniform interval moments against
``scipy.stats.uniform``.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import scipy.stats
from absl.testing import parameterized

from hetrlhf.alignment import interval_rewards, ppo, selection
from hetrlhf.types import RewardEstimate


def _np_ppo_loss(logp, old_logp, ref_logp, adv, w, eps, beta, estimator):
    """L = −mean_{b,t} min(ρA, clip(ρ)A) + β mean_b(w_b Σ_t ρ k(u)), in plain numpy."""
    b_size, t_size = logp.shape
    pg = 0.0
    kl = np.zeros(b_size)
    for b in range(b_size):
        for t in range(t_size):
            rho = np.exp(logp[b, t] - old_logp[b, t])
            clipped = min(max(rho, 1 - eps), 1 + eps)
            pg += min(rho * adv[b], clipped * adv[b])
            u = np.exp(ref_logp[b, t] - logp[b, t])
            k = -np.log(u) if estimator == "k1" else u - 1 - np.log(u)
            kl[b] += rho * k
    return -pg / logp.size + beta * np.mean(w * kl)


def _inputs(seed=0, b=5, t=3):
    rng = np.random.default_rng(seed)
    logp, old_logp, ref_logp = np.log(rng.uniform(0.05, 0.95, size=(3, b, t)))
    adv = rng.normal(size=b)
    w = rng.uniform(0.3, 2.0, size=b)
    return logp, old_logp, ref_logp, adv, w


class PPOKernelsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters("k1", "k3")
    def test_loss_and_gradient_match_numpy(self, estimator):
        logp, old_logp, ref_logp, adv, w = _inputs()
        fn = functools.partial(
            ppo.ppo_loss, clip_eps=0.2, beta=0.7, kl_estimator=estimator
        )
        loss_fn = lambda lp: fn(lp, old_logp, ref_logp, adv, w)[0]
        loss, grad = self.variant(jax.value_and_grad(loss_fn))(jnp.asarray(logp))
        ref = functools.partial(
            _np_ppo_loss,
            old_logp=old_logp,
            ref_logp=ref_logp,
            adv=adv,
            w=w,
            eps=0.2,
            beta=0.7,
            estimator=estimator,
        )
        np.testing.assert_allclose(loss, ref(logp), rtol=1e-12)
        # Central differences; no ratio sits at a clip kink (checked, h ≪ distance).
        ratio = np.exp(logp - old_logp)
        assert np.min(np.abs(np.abs(ratio - 1) - 0.2)) > 1e-3
        h = 1e-6
        fd = np.zeros_like(logp)
        for idx in np.ndindex(logp.shape):
            e = np.zeros_like(logp)
            e[idx] = h
            fd[idx] = (ref(logp + e) - ref(logp - e)) / (2 * h)
        np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-9)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters("k1", "k3")
    def test_kl_estimators_are_unbiased_for_kl(self, estimator):
        """E_{a~π}[k(a)] = KL(π ‖ π_ref) for k1 = log(π/π_ref) and
        k3 = u − 1 − log u, u = π_ref/π; the expectation is enumerated exactly."""
        rng = np.random.default_rng(1)
        pi, pi_ref = rng.dirichlet(np.ones(6), size=2)
        logp = np.log(pi)[:, None]
        fn = functools.partial(ppo.ppo_loss, clip_eps=0.2, beta=1.0)
        _, aux = self.variant(
            lambda *a: fn(*a, kl_estimator=estimator)  # static estimator
        )(
            jnp.asarray(logp),
            jnp.asarray(logp),  # π_old = π: ρ = 1
            jnp.asarray(np.log(pi_ref)[:, None]),
            jnp.zeros(6),
            jnp.asarray(6 * pi),  # weight π(a): mean_b = Σ_a π(a)·k(a)
        )
        kl = np.sum(pi * np.log(pi / pi_ref))
        assert kl > 0.05  # not vacuous
        np.testing.assert_allclose(aux["kl_penalty"], kl, rtol=1e-12)
        # The unweighted mean is the uniform average, a different number.
        u = pi_ref / pi
        per = np.log(1 / u) if estimator == "k1" else u - 1 - np.log(u)
        np.testing.assert_allclose(aux["kl"], per.mean(), rtol=1e-12)

    @chex.variants(with_jit=True, without_jit=True)
    def test_k3_is_nonnegative_and_accurate_near_u_equal_one(self):
        logp = np.log(np.array([[0.3, 0.5, 0.2]])).T
        ref = logp + np.array([[1e-9], [-3e-8], [0.0]])
        _, aux = self.variant(
            functools.partial(ppo.ppo_loss, clip_eps=0.2, beta=1.0, kl_estimator="k3")
        )(
            jnp.asarray(logp),
            jnp.asarray(logp),
            jnp.asarray(ref),
            jnp.zeros(3),
            jnp.ones(3),
        )
        # u − 1 − log u = x²/2 + O(x³) with x = log u: numpy's expm1 reference.
        x = (ref - logp)[:, 0]
        np.testing.assert_allclose(
            aux["kl"], np.mean(np.expm1(x) - x), rtol=1e-6, atol=1e-30
        )
        assert float(aux["kl"]) >= 0.0

    @chex.variants(with_jit=True, without_jit=True)
    def test_group_advantages_kl_weights_and_kl_in_reward(self):
        rng = np.random.default_rng(2)
        r = rng.normal(size=12)
        adv = self.variant(functools.partial(ppo.group_advantages, group_size=4))(
            jnp.asarray(r)
        )
        g = r.reshape(3, 4)
        np.testing.assert_allclose(adv, (g - g.mean(1, keepdims=True)).ravel())

        var = rng.uniform(0.1, 2.0, size=12)
        for penalty, want in (
            ("mean_one", var / var.mean()),
            ("lambda_min", var / var.min()),
            ("kl_reward", var),
        ):
            got = self.variant(functools.partial(ppo.kl_weights, penalty=penalty))(
                jnp.asarray(var), True
            )
            np.testing.assert_allclose(got, want, rtol=1e-12)

        old_logp, ref_logp = np.log(rng.uniform(0.1, 0.9, size=(2, 12, 3)))
        got = self.variant(ppo.kl_in_reward)(
            jnp.asarray(r), jnp.asarray(var), old_logp, ref_logp, 0.3
        )
        want = [
            r[i] - 0.3 * var[i] * sum(old_logp[i, t] - ref_logp[i, t] for t in range(3))
            for i in range(12)
        ]
        np.testing.assert_allclose(got, want, rtol=1e-12)


class SelectionKernelsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(0.05, 0.2, 0.9)
    def test_pessimistic_best_of_n_is_numpy_argmax_of_the_lcb(self, alpha):
        rng = np.random.default_rng(3)
        mean = rng.normal(size=(9, 16))
        var = rng.uniform(0.01, 4.0, size=(9, 16))
        est = RewardEstimate(jnp.asarray(mean), jnp.asarray(var))
        got = self.variant(selection.pessimistic_best_of_n)(est, alpha)
        lcb = mean - scipy.stats.norm.ppf(1 - alpha / 2) * np.sqrt(var)
        np.testing.assert_array_equal(got, np.argmax(lcb, axis=-1))
        np.testing.assert_array_equal(
            self.variant(selection.best_of_n)(jnp.asarray(mean)),
            np.argmax(mean, axis=-1),
        )
        if alpha == 0.05:  # pessimism changes some choices: the check is not vacuous
            assert np.any(np.argmax(lcb, -1) != np.argmax(mean, -1))

    @chex.variants(with_jit=True, without_jit=True)
    def test_interval_moments_are_uniform_moments(self):
        rng = np.random.default_rng(4)
        lo = rng.normal(size=(3, 5))
        hi = lo + rng.uniform(0.0, 3.0, size=(3, 5))
        est = self.variant(interval_rewards.interval_moments)(
            jnp.asarray(lo), jnp.asarray(hi)
        )
        dist = scipy.stats.uniform(loc=lo, scale=hi - lo)
        np.testing.assert_allclose(est.mean, dist.mean(), rtol=1e-12)
        np.testing.assert_allclose(est.var, dist.var(), rtol=1e-12, atol=1e-15)
