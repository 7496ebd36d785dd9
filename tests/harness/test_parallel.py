"""Tests of hetrlhf.parallel: replicate-axis sharding gives the same numbers."""

import os
import pathlib
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from hetrlhf import checkpoint as ck
from hetrlhf import parallel
from tests.mc_replicates import simulate_statistic

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the repository (tests/<part>/)
STATISTIC = jax.jit(jax.vmap(simulate_statistic))

CHILD_SRC = """
import sys

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
from hetrlhf import checkpoint as ck
from hetrlhf import parallel
from mc_replicates import simulate_statistic

assert jax.device_count() == 8, jax.devices()
mesh = parallel.replicate_mesh()
batch = jax.jit(jax.vmap(simulate_statistic))
keys = jax.random.split(jax.random.key(11), 64)
sharded = parallel.sharded_map(batch, mesh)(parallel.shard_replicates(keys, mesh))
assert len(sharded["theta_hat"].sharding.device_set) == 8
# run_chunked with a mesh: chunk_size 20 is rounded up to 24 (3 per device).
chunked = ck.run_chunked(batch, keys, chunk_size=20, mesh=mesh, progress=False)
np.savez(
    sys.argv[1],
    **{"sharded_" + k: np.asarray(v) for k, v in sharded.items()},
    **{"chunked_" + k: np.asarray(v) for k, v in chunked.items()},
)
"""


@pytest.mark.slow  # ~9 s on the 2-core CI machine
def test_eight_simulated_devices_match_one_device(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD_SRC))
    env = dict(
        os.environ,
        JAX_PLATFORMS="cpu",
        XLA_FLAGS="--xla_force_host_platform_device_count=8",
        PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]),
    )
    out = tmp_path / "out.npz"
    proc = subprocess.run(
        [sys.executable, str(script), str(out)],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert jax.device_count() == 1
    reference = STATISTIC(jax.random.split(jax.random.key(11), 64))
    got = np.load(out)
    for prefix in ("sharded_", "chunked_"):
        for name, value in reference.items():
            np.testing.assert_allclose(
                got[prefix + name], np.asarray(value), rtol=1e-12, atol=1e-12
            )
    # The statistic is sane: Newton's fit converged, θ̂ near θ* on average.
    assert np.all(got["sharded_steps"] < 50)
    np.testing.assert_allclose(
        got["sharded_theta_hat"].mean(0), [1.0, -0.5, 0.8, 0.3, -1.0], atol=0.2
    )


@pytest.mark.slow  # ~6 s on the 2-core CI machine
def test_one_device_mesh_and_run_chunked():
    mesh = parallel.replicate_mesh()
    assert mesh.axis_names == ("replicate",) and mesh.size == jax.device_count() == 1
    keys = jax.random.split(jax.random.key(5), 10)
    reference = STATISTIC(keys)
    sharded = parallel.sharded_map(STATISTIC, mesh)(
        parallel.shard_replicates(keys, mesh)
    )
    chunked = ck.run_chunked(STATISTIC, keys, chunk_size=4, mesh=mesh, progress=False)
    for name, value in reference.items():
        np.testing.assert_allclose(sharded[name], value, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(chunked[name], value, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("sharded", [False, True], ids=["no_mesh", "mesh"])
def test_compiler_options_reach_the_program_run_chunked_compiles(sharded):
    """The options go to XLA (an unknown one is refused by it) on the outermost jit:
    a jitted ``fn`` inside is fine, and LLVM -O2 computes the same numbers."""
    mesh = parallel.replicate_mesh() if sharded else None
    keys = jax.random.split(jax.random.key(5), 10)

    def run(**options):
        return ck.run_chunked(
            STATISTIC,
            keys,
            chunk_size=4,
            mesh=mesh,
            progress=False,
            compiler_options=options,
        )

    o2 = run(xla_backend_optimization_level=2)
    for name, value in STATISTIC(keys).items():
        np.testing.assert_allclose(o2[name], value, rtol=1e-12, atol=1e-12)
    with pytest.raises(Exception, match="xla_hetrlhf_no_such_option"):
        run(xla_hetrlhf_no_such_option=1)


def test_top_level_is_memoised_and_checks_its_options():
    fn = jax.jit(jax.vmap(simulate_statistic))
    options = {"xla_backend_optimization_level": 2}
    assert parallel.top_level(fn) is fn and parallel.top_level(fn, {}) is fn
    wrapped = parallel.top_level(fn, options)
    assert wrapped is not fn and parallel.top_level(fn, dict(options)) is wrapped
    with pytest.raises(TypeError, match="compiler_options must be a mapping"):
        parallel.top_level(fn, [("xla_backend_optimization_level", 2)])
    with pytest.raises(TypeError, match="compiler_options must be a mapping"):
        parallel.sharded_map(fn, parallel.replicate_mesh(), compiler_options="-O2")


def test_padding_and_divisibility_errors():
    devices = jax.devices() * 4  # a 4-"device" mesh only to test the shape checks
    mesh = jax.sharding.Mesh(np.asarray(devices), ("replicate",))
    tree = {"a": np.arange(6), "b": np.arange(12).reshape(6, 2)}
    padded, size = parallel.pad_replicates(tree, 4)
    assert size == 6
    np.testing.assert_array_equal(padded["a"], [0, 1, 2, 3, 4, 5, 5, 5])
    np.testing.assert_array_equal(padded["b"][-1], [10, 11])
    with pytest.raises(ValueError, match="not a multiple of the 4 devices"):
        parallel.shard_replicates(tree, mesh)
    with pytest.raises(ValueError, match="different leading"):
        parallel.pad_replicates({"a": np.arange(3), "b": np.arange(4)}, 2)
    with pytest.raises(ValueError, match="scalar leaf"):
        parallel.pad_replicates({"a": np.arange(3), "b": np.float64(1.0)}, 2)
    with pytest.raises(ValueError, match="axis name"):
        parallel.replicate_sharding(
            jax.sharding.Mesh(np.asarray(jax.devices()), ("x",))
        )
    with pytest.raises(TypeError, match="Mesh"):
        parallel.sharded_map(STATISTIC, "mesh")
    with pytest.raises(ValueError, match="empty"):
        parallel.replicate_mesh([])
    padded_keys = parallel.shard_replicates(
        jax.random.split(jax.random.key(0), 3), parallel.replicate_mesh(), pad=True
    )
    assert padded_keys.shape == (3,)  # one device: already a multiple


def _steps_to_halve(key):
    """A per-replicate while_loop with a data-dependent trip count."""
    x = jax.random.uniform(key, (), minval=1.0, maxval=1000.0)
    steps, _ = jax.lax.while_loop(
        lambda c: c[1] > 1.0, lambda c: (c[0] + 1, c[1] / 2), (0, x)
    )
    return {"x": x, "steps": steps}


def test_batched_vmap_equals_vmap():
    keys = jax.random.split(jax.random.key(8), 10)
    x = np.asarray(jax.vmap(lambda k: _steps_to_halve(k)["x"])(keys))
    expected = np.ceil(np.log2(x))  # independent closed form of the trip count
    for size in (None, 4, 25):  # 4: two batches and a remainder of 2; 25 > 10
        got = jax.jit(parallel.batched_vmap(_steps_to_halve, size))(keys)
        np.testing.assert_array_equal(got["x"], x)
        np.testing.assert_array_equal(got["steps"], expected)
    with pytest.raises(ValueError, match="batch_size"):
        parallel.batched_vmap(_steps_to_halve, 0)
    with pytest.raises(TypeError, match="batch_size"):
        parallel.batched_vmap(_steps_to_halve, 2.5)


def test_sharded_map_is_memoised_and_takes_shared_arguments():
    """One wrapper per (fn, mesh, replicated): a shared argument's values share it."""
    mesh = parallel.replicate_mesh()
    traces = []

    @jax.jit
    def batch(keys, scale):
        traces.append(1)  # runs when traced, not when a compiled program runs
        return jax.vmap(lambda k: scale * jax.random.normal(k))(keys)

    run = parallel.sharded_map(batch, mesh, replicated=[1])
    assert parallel.sharded_map(batch, mesh, replicated=(1,)) is run
    assert parallel.sharded_map(batch, mesh) is not run
    keys = jax.random.split(jax.random.key(2), 6)
    normal = np.asarray(jax.vmap(jax.random.normal)(keys))
    for scale in (1.0, -2.5):
        got = run(parallel.shard_replicates(keys, mesh), jax.numpy.asarray(scale))
        # (not bit-equal: XLA may fuse the product into the normal's last step)
        np.testing.assert_allclose(np.asarray(got), scale * normal, rtol=1e-14)
    assert len(traces) == 1
