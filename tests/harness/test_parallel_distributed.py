"""hetrlhf.parallel's distributed helpers in one process (the two-process behaviour is
checked in tests/studies/test_multiprocess_studies.py)."""

import numpy as np
import pytest

from hetrlhf import checkpoint, parallel


@pytest.mark.parametrize(
    "args",
    [("127.0.0.1:1234", None, None), (None, 2, None), (None, None, 0)],
)
def test_initialize_needs_all_three_arguments(args):
    with pytest.raises(ValueError, match="go together"):
        parallel.initialize_distributed(*args)


@pytest.mark.parametrize("count, index", [(0, 0), (2, 2), (2, -1)])
def test_initialize_rejects_bad_count_or_id(count, index):
    with pytest.raises(ValueError, match="num_processes"):
        parallel.initialize_distributed("127.0.0.1:1234", count, index)


def test_initialize_alone_starts_nothing(monkeypatch):
    for name in ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(parallel.FORCE_ENV, raising=False)
    assert parallel.initialize_distributed() is False
    assert parallel.initialize_distributed("127.0.0.1:1234", 1, 0) is False


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, None),
        ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "1"}, None),
        ({"SLURM_JOB_ID": "7", "SLURM_NTASKS": "4"}, "SLURM"),
        ({"OMPI_COMM_WORLD_SIZE": "2"}, "Open MPI"),
        ({"TPU_WORKER_HOSTNAMES": "a"}, None),
        ({"TPU_WORKER_HOSTNAMES": "a,b"}, "TPU pod"),
    ],
)
def test_detected_cluster(env, expected):
    assert parallel.detected_cluster(env) == expected


def test_broadcast_and_barrier_alone_are_identities():
    tree = {"a": np.array(3, np.int64), "b": np.arange(4.0)}
    out = parallel.broadcast_from_primary(tree)
    assert out["a"].shape == () and int(out["a"]) == 3
    np.testing.assert_array_equal(out["b"], tree["b"])
    parallel.barrier("alone")  # returns at once


def test_latest_step_of_missing_directory_is_none(tmp_path):
    assert checkpoint.latest_step(tmp_path / "missing") is None
    checkpoint.save_pytree(tmp_path / "c", 3, {"x": np.arange(3.0)})
    assert checkpoint.latest_step(tmp_path / "c") == 3


def test_numpy_float64_leaves_restore_exactly_under_float32(tmp_path):
    """A float64 numpy leaf (e.g. the PPO learning curves) is restored as saved even
    when JAX runs in float32, so a resumed run holds an uninterrupted run's numbers."""
    import jax

    curves = np.array([0.3732304871082306, 1 / 3])
    with jax.enable_x64(False):
        checkpoint.save_pytree(tmp_path, 1, {"curves": curves, "x": np.arange(2.0)})
        back = checkpoint.restore_pytree(tmp_path, 1, {"curves": curves, "x": curves})
    assert isinstance(back["curves"], np.ndarray)
    assert back["curves"].dtype == np.float64
    np.testing.assert_array_equal(back["curves"], curves)


def test_free_local_port_can_be_bound():
    import socket

    port = parallel.free_local_port()
    assert 0 < port < 65536
    with socket.socket() as sock:  # free: binding it again succeeds
        sock.bind(("127.0.0.1", port))


def test_local_process_flags_are_what_initialize_reads():
    assert parallel.local_process_flags(4321, 3, 2) == [
        "--coordinator_address=127.0.0.1:4321",
        "--num_processes=3",
        "--process_id=2",
    ]
    for args in [(0, 2, 0), (70000, 2, 0), (4321, 0, 0), (4321, 2, 2), (4321, 2, -1)]:
        with pytest.raises(ValueError, match="port|num_processes"):
            parallel.local_process_flags(*args)


def test_local_worker_env_replaces_only_the_device_count():
    environ = {
        "XLA_FLAGS": "--a=1 --xla_force_host_platform_device_count=8 --b",
        "JAX_PLATFORMS": "gpu",
        "OTHER": "x",
    }
    env = parallel.local_worker_env(2, environ=environ)
    assert env["XLA_FLAGS"] == "--a=1 --b --xla_force_host_platform_device_count=2"
    assert env["JAX_PLATFORMS"] == "cpu" and env["OTHER"] == "x"
    assert environ["XLA_FLAGS"].endswith("count=8 --b")  # the caller's dict untouched
    kept = parallel.local_worker_env(None, platforms=None, environ=environ)
    assert kept["XLA_FLAGS"] == "--a=1 --b" and kept["JAX_PLATFORMS"] == "gpu"
    assert parallel.local_worker_env(environ={})["XLA_FLAGS"] == ""
    with pytest.raises(ValueError, match="devices"):
        parallel.local_worker_env(0)
