"""Small Monte Carlo replicates shared by tests and their child processes."""

import jax
import jax.numpy as jnp

from hetrlhf.btl import model
from hetrlhf.data import simulate as sim


def replicate(key):
    """Least squares by gradient descent in a while_loop; typed-key and bool outputs."""
    kx, ke, kn = jax.random.split(key, 3)
    x = jax.random.normal(kx, (50, 3))
    y = x @ jnp.array([1.0, -2.0, 0.5]) + jax.random.normal(ke, (50,))

    def cond(state):
        step, beta = state
        grad = x.T @ (x @ beta - y) / 50
        return (step < 500) & (jnp.linalg.norm(grad) > 1e-10)

    def body(state):
        step, beta = state
        return step + 1, beta - 0.5 * x.T @ (x @ beta - y) / 50

    steps, beta = jax.lax.while_loop(cond, body, (0, jnp.zeros(3)))
    return {"beta": beta, "steps": steps, "key": kn, "pos": beta[0] > 1.0}


def simulate_statistic(key):
    """simulate → homogeneous-logistic fit by Newton in a while_loop → statistics."""
    design = sim.get_design("correlated", gamma=(0.0, 0.0, 0.0))
    data = sim.simulate(key, design, 200)
    x, y = data.dphi, data.y

    def cond(state):
        step, _, delta = state
        return (step < 50) & (delta > 1e-12)

    def body(state):
        step, theta, _ = state
        p = jax.nn.sigmoid(x @ theta)
        grad = x.T @ (p - y)
        hess = (x * (p * (1 - p))[:, None]).T @ x
        new = theta - jnp.linalg.solve(hess, grad)
        return step + 1, new, jnp.max(jnp.abs(new - theta))

    steps, theta, _ = jax.lax.while_loop(cond, body, (0, jnp.zeros(5), jnp.inf))
    truth = sim.design_truth(design)
    return {
        "theta_hat": theta,
        "steps": steps,
        "loss_at_truth": model.loss(truth, data),
        "ybar": data.y.mean(),
    }
