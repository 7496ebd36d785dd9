"""The studies' XLA flags keep concurrent batched LAPACK calls from deadlocking.

jaxlib 0.10's CPU LAPACK kernels split a batch whose work passes ~2e5 flops over XLA's
intra-op thread pool and block their pool thread until every piece is done. When XLA
runs two such calls of a program at once, each holds a pool thread while waiting for
pieces that only a free pool thread could run: on a 2-core machine (a 2-thread pool)
the program hangs for ever (README "Known issues"). ``probe_program`` has four
unordered batched LAPACK calls (two LU solves, an eigh, a Cholesky) above that size;
on this project's 2-core machine it hung in 5 of 5 runs with XLA's default
(concurrency-optimised) scheduler, and finished in 5 of 5 with the studies' flags
(``experiments.STUDY_XLA_FLAGS``: the memory-minimising scheduler). Without that flag
the last test times out on a 2-core machine (as CI's); with many cores the deadlock
needs as many such calls at once as there are cores, so there it may pass either way.
"""

import jax
import jax.numpy as jnp
import numpy as np

import experiments
from hetrlhf.cpu_lapack import concurrent_lapack_pairs
from tests import fresh_interpreter


def probe_matrices(seed, batch=2000, d=8):
    """[batch, d, d] symmetric positive definite matrices."""
    a = jax.random.normal(jax.random.key(seed), (batch, d, d))
    return a @ jnp.swapaxes(a, -1, -2) + d * jnp.eye(d)


def probe_program(a, b, c, d):
    """Four batched LAPACK calls that no data path orders."""
    return (
        jnp.linalg.solve(a, b),
        jnp.linalg.eigvalsh(b),
        jnp.linalg.solve(c, d),
        jnp.linalg.cholesky(a + b),
    )


_RUN = """
import jax
jax.config.update("jax_enable_x64", True)
import experiments  # the studies' XLA flags, as every study, test and benchmark
from tests.harness.test_lapack_deadlock import probe_matrices, probe_program
run = jax.jit(probe_program)
args = [probe_matrices(s) for s in range(4)]
for _ in range(200):
    jax.block_until_ready(run(*args))
print("finished")
"""


def test_the_probe_program_has_unordered_batched_lapack_calls():
    # The premise: XLA may run these calls at the same time (no data path orders
    # them), each over a batch big enough to split over the thread pool.
    args = [probe_matrices(s) for s in range(4)]
    text = jax.jit(probe_program).lower(*args).compile().as_text()
    pairs = concurrent_lapack_pairs(text)
    targets = {p.split("[")[0] for _, a, b in pairs for p in (a, b) if "[" in p}
    assert {"lapack_dgetrf_ffi", "lapack_dsyevd_ffi", "lapack_dpotrf_ffi"} <= targets


def test_the_analysis_orders_calls_by_their_data():
    # The checker fails where it should: two batched Cholesky factors of independent
    # inputs are unordered; once the second input is computed from the first factor,
    # they are not. Small batches: every batched call counts (min_work=0).
    a = jnp.broadcast_to(2.0 * jnp.eye(3), (8, 3, 3))

    def unordered(a):
        return jnp.linalg.cholesky(a), jnp.linalg.cholesky(2.0 * a)

    def ordered(a):
        first = jnp.linalg.cholesky(a)
        return first, jnp.linalg.cholesky(2.0 * first @ jnp.swapaxes(first, -1, -2))

    def pairs(f, **kw):
        text = jax.jit(f).lower(a).compile().as_text()
        return concurrent_lapack_pairs(text, **kw)

    assert len(pairs(unordered, min_work=0)) == 1
    assert pairs(ordered, min_work=0) == []
    assert pairs(unordered) == []  # 8 Cholesky factors of 3 x 3: too small to split
    np.testing.assert_allclose(unordered(a)[1], ordered(a)[1], rtol=1e-12)


def test_concurrent_batched_lapack_calls_finish_with_the_study_flags():
    # A fresh interpreter (XLA reads XLA_FLAGS once); a hang shows as a timeout.
    assert "--xla_cpu_enable_concurrency_optimized_scheduler=false" in (
        experiments.STUDY_XLA_FLAGS
    )
    assert fresh_interpreter.run(_RUN, "").split() == ["finished"]


_TWO_DEVICES = """
import jax, jax.numpy as jnp
jax.config.update("jax_enable_x64", True)
import experiments
from hetrlhf import checkpoint, parallel


def replicate(key):
    a = jax.random.normal(key, (1000, 8, 8))
    a = a @ jnp.swapaxes(a, -1, -2) + 8 * jnp.eye(8)
    return {"x": jnp.linalg.solve(a, a[..., :1])[:, 0, 0].sum()}


fn = jax.jit(jax.vmap(replicate))
keys = jax.random.split(jax.random.key(0), 4)
try:
    checkpoint.run_chunked(
        fn, keys, chunk_size=4, mesh=parallel.replicate_mesh(), progress=False
    )
    print("ran")
except ValueError as exc:
    print("refused" if "share that pool" in str(exc) else exc)
one = parallel.replicate_mesh(jax.devices()[:1])
out = checkpoint.run_chunked(fn, keys, chunk_size=4, mesh=one, progress=False)
print("one device", out["x"].shape[0])
"""


def test_several_cpu_devices_of_one_process_refuse_a_splitting_lapack_program():
    # Two CPU devices of one process share the pool: one large batched solve per
    # device hung 3 of 3 runs (README "Known issues"). run_chunked now refuses it with
    # a ValueError (a hang would show as the timeout); one device runs it.
    out = fresh_interpreter.run(
        _TWO_DEVICES, "--xla_force_host_platform_device_count=2"
    )
    assert out.split("\n")[:2] == ["refused", "one device 4"], out
