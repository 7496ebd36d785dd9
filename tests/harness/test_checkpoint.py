"""Tests of hetrlhf.checkpoint: chunked runs, kill-and-resume, pytree checkpoints."""

import os
import pathlib
import subprocess
import sys
import textwrap
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from hetrlhf import checkpoint as ck
from hetrlhf import parallel
from tests.mc_replicates import replicate

ROOT = pathlib.Path(__file__).resolve().parents[2]  # the repository (tests/<part>/)

BATCH = jax.jit(jax.vmap(replicate))


def _assert_trees_equal(a, b, exact=True):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(la, lb):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        x, y = np.asarray(x), np.asarray(y)
        assert x.dtype == y.dtype and x.shape == y.shape
        if exact or x.dtype.kind != "f":
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)


@pytest.mark.slow  # ~4 s on the 2-core CI machine
def test_chunked_equals_unchunked_and_reloads(tmp_path):
    keys = jax.random.split(jax.random.key(0), 21)  # 3 chunks of 8, the last padded
    reference = BATCH(keys)
    plain = ck.run_chunked(BATCH, keys, chunk_size=8, progress=False)
    # Different batch sizes may change the last bit of vectorised reductions.
    _assert_trees_equal(plain, reference, exact=False)
    saved = ck.run_chunked(
        BATCH, keys, chunk_size=8, directory=tmp_path, progress=False
    )
    _assert_trees_equal(saved, plain)
    assert sorted(int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()) == [
        0,
        1,
        2,
    ]

    calls = []

    def counting(k):
        if not isinstance(k, jax.core.Tracer):  # not shape inference
            calls.append(1)
        return BATCH(k)

    again = ck.run_chunked(
        counting, keys, chunk_size=8, directory=tmp_path, progress=False
    )
    _assert_trees_equal(again, plain)
    assert len(calls) == 0  # everything reloaded, nothing recomputed


def test_raw_uint32_keys_and_chunk_larger_than_run():
    raw = jax.random.key_data(jax.random.split(jax.random.key(1), 5))
    out = ck.run_chunked(
        jax.jit(jax.vmap(lambda k: replicate(jax.random.wrap_key_data(k)))),
        raw,
        chunk_size=100,
        progress=False,
    )
    assert out["beta"].shape == (5, 3)
    np.testing.assert_allclose(
        np.asarray(out["beta"]).mean(0), [1.0, -2.0, 0.5], atol=0.3
    )


CHILD_SRC = """
import os
import signal
import sys

import jax
import numpy as np

jax.config.update("jax_enable_x64", True)
from hetrlhf import checkpoint as ck
from hetrlhf import parallel
from mc_replicates import replicate

directory, log, out_path = sys.argv[1:4]
kill_at = int(os.environ.get("KILL_AT_CALL", "0"))
batch = jax.jit(jax.vmap(replicate))
calls = 0


def fn(keys):
    global calls
    if isinstance(keys, jax.core.Tracer):  # shape inference, not a chunk
        return batch(keys)
    calls += 1
    if calls == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)  # no cleanup: as a killed job
    with open(log, "a") as f:
        f.write("chunk\\n")
    return batch(keys)


keys = jax.random.split(jax.random.key(7), 30)
out = ck.run_chunked(fn, keys, chunk_size=6, directory=directory,
                     fingerprint={"study": "test", "n": 50}, progress=False)
np.savez(out_path, beta=np.asarray(out["beta"]), steps=np.asarray(out["steps"]),
         key=np.asarray(jax.random.key_data(out["key"])), pos=np.asarray(out["pos"]))
"""


def _child(tmp_path, directory, log, out, kill_at=0):
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(CHILD_SRC))
    env = dict(os.environ, JAX_PLATFORMS="cpu", KILL_AT_CALL=str(kill_at))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "tests")])
    env.pop("XLA_FLAGS", None)
    return subprocess.run(
        [sys.executable, str(script), str(directory), str(log), str(out)],
        env=env,
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_shared_arguments_are_passed_whole_to_every_chunk(tmp_path):
    """fn(keys_chunk, *shared): the same numbers as one vmap with the shared value."""
    keys = jax.random.split(jax.random.key(4), 7)

    @jax.jit
    def batch(chunk, shift, scale):
        return jax.vmap(lambda k: shift + scale * jax.random.normal(k, (2,)))(chunk)

    reference = 1.5 + 3.0 * np.asarray(
        jax.vmap(lambda k: jax.random.normal(k, (2,)))(keys)
    )
    for mesh in (None, parallel.replicate_mesh()):
        out = ck.run_chunked(
            batch,
            keys,
            chunk_size=3,
            directory=str(tmp_path / f"mesh{mesh is not None}"),
            mesh=mesh,
            progress=False,
            shared=(jnp.asarray(1.5), jnp.asarray(3.0)),
        )
        np.testing.assert_allclose(np.asarray(out), reference, rtol=1e-15)


@pytest.mark.slow  # ~8 s on the 2-core CI machine
def test_killed_run_resumes_with_identical_output(tmp_path):
    directory, log = tmp_path / "ckpt", tmp_path / "log.txt"
    killed = _child(tmp_path, directory, log, tmp_path / "unused.npz", kill_at=3)
    assert killed.returncode == -9, killed.stderr[-2000:]  # SIGKILL in chunk 3
    assert log.read_text().count("chunk") == 2  # chunks 0 and 1 finished
    assert ck.latest_step(directory) == 1

    log.write_text("")
    resumed = _child(tmp_path, directory, log, tmp_path / "resumed.npz")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert log.read_text().count("chunk") == 3  # only chunks 2, 3, 4 recomputed

    # The same run uninterrupted, in this process: bit-identical.
    keys = jax.random.split(jax.random.key(7), 30)
    full = ck.run_chunked(BATCH, keys, chunk_size=6, progress=False)
    got = np.load(tmp_path / "resumed.npz")
    np.testing.assert_array_equal(got["beta"], np.asarray(full["beta"]))
    np.testing.assert_array_equal(got["steps"], np.asarray(full["steps"]))
    np.testing.assert_array_equal(got["pos"], np.asarray(full["pos"]))
    np.testing.assert_array_equal(
        got["key"], np.asarray(jax.random.key_data(full["key"]))
    )


def test_mismatched_resume_raises_or_overwrites(tmp_path):
    keys = jax.random.split(jax.random.key(2), 8)
    first = ck.run_chunked(
        BATCH,
        keys,
        chunk_size=4,
        directory=tmp_path,
        fingerprint={"n": 1},
        progress=False,
    )
    with pytest.raises(ValueError, match="fingerprint.*n=1 vs now 2"):
        ck.run_chunked(
            BATCH,
            keys,
            chunk_size=4,
            directory=tmp_path,
            fingerprint={"n": 2},
            progress=False,
        )
    with pytest.raises(ValueError, match="PRNG keys differ"):
        ck.run_chunked(
            BATCH,
            jax.random.split(jax.random.key(3), 8),
            chunk_size=4,
            directory=tmp_path,
            fingerprint={"n": 1},
            progress=False,
        )
    with pytest.raises(ValueError, match="chunk size differs"):
        ck.run_chunked(
            BATCH,
            keys,
            chunk_size=2,
            directory=tmp_path,
            fingerprint={"n": 1},
            progress=False,
        )
    calls = []

    def counting(k):
        if not isinstance(k, jax.core.Tracer):  # not shape inference
            calls.append(1)
        return BATCH(k)

    fresh = ck.run_chunked(
        counting,
        keys,
        chunk_size=4,
        directory=tmp_path,
        fingerprint={"n": 2},
        overwrite=True,
        progress=False,
    )
    assert len(calls) == 2
    _assert_trees_equal(fresh, first)


def test_bad_arguments():
    keys = jax.random.split(jax.random.key(0), 4)
    with pytest.raises(ValueError, match="chunk_size"):
        ck.run_chunked(BATCH, keys, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size"):
        ck.run_chunked(BATCH, keys, chunk_size=2.0)
    with pytest.raises(ValueError, match="keys"):
        ck.run_chunked(BATCH, jnp.zeros((4, 2)), chunk_size=2)
    with pytest.raises(ValueError, match="empty"):
        ck.run_chunked(BATCH, keys[:0], chunk_size=2)
    with pytest.raises(TypeError, match="fingerprint"):
        ck.run_chunked(BATCH, keys, chunk_size=2, fingerprint={"f": object()})
    with pytest.raises(ValueError, match="leading axis"):
        ck.run_chunked(lambda k: {"s": BATCH(k)["beta"].sum()}, keys, chunk_size=4)


class _State(NamedTuple):
    params: dict
    opt_state: optax.OptState
    key: jax.Array
    step: jax.Array


def _state(seed):
    params = {"w": jnp.arange(6.0).reshape(2, 3) + seed, "b": jnp.zeros(3, jnp.float32)}
    opt = optax.adam(1e-3)
    return _State(
        params, opt.init(params), jax.random.key(seed), jnp.asarray(seed, jnp.int32)
    )


def test_save_restore_pytree_round_trip(tmp_path):
    assert ck.latest_step(tmp_path / "none") is None
    state = _state(3)
    ck.save_pytree(tmp_path, 10, state)
    ck.save_pytree(tmp_path, 20, _state(4))
    assert ck.latest_step(tmp_path) == 20
    like = jax.eval_shape(lambda: _state(0))
    restored = ck.restore_pytree(tmp_path, 10, like)
    _assert_trees_equal(restored, state)
    assert restored.params["b"].dtype == jnp.float32
    assert jax.random.key_impl(restored.key) == jax.random.key_impl(state.key)
    # A restored key continues the same random stream.
    np.testing.assert_array_equal(
        jax.random.normal(restored.key, (3,)), jax.random.normal(state.key, (3,))
    )
    _assert_trees_equal(ck.restore_pytree(tmp_path, None, _state(0)), _state(4))
    with pytest.raises(FileNotFoundError, match="step 15"):
        ck.restore_pytree(tmp_path, 15, like)
    with pytest.raises(ValueError, match="structure"):
        ck.restore_pytree(tmp_path, 10, {"w": jnp.zeros(3)})
    with pytest.raises(ValueError, match="shape"):
        ck.restore_pytree(tmp_path, 10, state._replace(step=jnp.zeros(2, jnp.int32)))
    with pytest.raises(ValueError, match="step"):
        ck.save_pytree(tmp_path, -1, state)


def test_save_pytree_max_to_keep(tmp_path):
    for step in range(4):
        ck.save_pytree(tmp_path, step, {"x": jnp.full(2, step)}, max_to_keep=2)
    restored = ck.restore_pytree(tmp_path, None, {"x": jnp.zeros(2, jnp.int32)})
    np.testing.assert_array_equal(restored["x"], [3, 3])
    with pytest.raises(FileNotFoundError):
        ck.restore_pytree(tmp_path, 0, {"x": jnp.zeros(2, jnp.int32)})
