"""Device-parallel replicates: a 1-D mesh over all devices, JAX's own SPMD engine.

A Monte Carlo study vmaps one replicate over PRNG keys; on several devices the same
batch function runs on each device's slice of the keys (``jax.shard_map`` over the
"replicate" axis of a 1-D ``Mesh``). Replicates are independent, so no communication
happens; every device runs the batch function on its own slice, and a vmapped
``lax.while_loop`` only iterates until that device's replicates have converged.

>>> mesh = replicate_mesh()                        # all devices
>>> batched = sharded_map(jax.jit(jax.vmap(replicate)), mesh)
>>> out = batched(shard_replicates(keys, mesh))   # keys [R], R % mesh.size == 0

Tested on CPU with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (set
before JAX is imported).

**Several processes or hosts.** ``initialize_distributed`` starts JAX's distributed
runtime (explicit coordinator address / process count / id, or detected from a SLURM,
Open MPI or TPU-pod environment); ``jax.devices()`` then lists every process's devices
and ``replicate_mesh()`` is one global mesh. The same program runs on every process:
``shard_replicates`` builds the global replicate array from the values every process
holds (each process fills only its own devices' slices), ``sharded_map`` computes each
device's slice, and ``to_host`` gathers the outputs to every process
(``multihost_utils.process_allgather``). A replicate's result depends only on its
key, so 1 and N processes with the same total number of devices give the same
numbers (another device count changes the shapes of each device's program, and the
numbers in their last digit). On one CPU machine two local
processes are a test bed (gloo collectives).
"""

from __future__ import annotations

import functools
import math
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from hetrlhf import cpu_lapack

__all__ = [
    "AXIS",
    "FORCE_ENV",
    "barrier",
    "batched_vmap",
    "broadcast_from_primary",
    "check_shared_cpu_pool",
    "detected_cluster",
    "free_local_port",
    "initialize_distributed",
    "is_primary",
    "local_process_flags",
    "local_worker_env",
    "pad_replicates",
    "replicate_mesh",
    "replicate_sharding",
    "shard_replicates",
    "sharded_map",
    "to_host",
    "top_level",
]

AXIS = "replicate"

# Environment variable that starts the distributed runtime with JAX's own cluster
# detection when ``detected_cluster`` finds nothing (Cloud TPU pod slices).
FORCE_ENV = "HETRLHF_DISTRIBUTED"

# Environment variables of clusters where ``jax.distributed.initialize()`` finds the
# coordinator, the process count and the process id by itself.
_CLUSTERS = {
    "SLURM": ("SLURM_JOB_ID", "SLURM_NTASKS"),
    "Open MPI": ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_SIZE"),
    "TPU pod": ("TPU_WORKER_HOSTNAMES", "TPU_WORKER_HOSTNAMES"),
}


def detected_cluster(environ=None) -> str | None:
    """Name of the multi-process cluster environment JAX can initialise from, or None.

    SLURM (``SLURM_JOB_ID`` with ``SLURM_NTASKS`` > 1), Open MPI
    (``OMPI_COMM_WORLD_SIZE`` > 1) or a TPU pod slice (``TPU_WORKER_HOSTNAMES``
    listing more than one worker).
    """
    env = os.environ if environ is None else environ
    for name, (marker, size) in _CLUSTERS.items():
        if marker not in env:
            continue
        value = env.get(size, "")
        count = len(value.split(",")) if name == "TPU pod" else int(value or 1)
        if count > 1:
            return name
    return None


def _check_process_id(num_processes: int, process_id: int) -> None:
    """ValueError unless num_processes >= 1 and 0 <= process_id < num_processes."""
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise ValueError(
            "need num_processes >= 1 and 0 <= process_id < num_processes, got "
            f"{num_processes} and {process_id}"
        )


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> bool:
    """Starts JAX's distributed runtime when several processes are asked for.

    Explicit arguments (all three, e.g. from a study's ``--coordinator_address
    --num_processes --process_id`` flags) win; without them the runtime is started
    only in a detected cluster (``detected_cluster``) or when the environment variable
    ``HETRLHF_DISTRIBUTED=1`` asks for it (e.g. on a Cloud TPU pod slice, which JAX
    recognises from the VM's metadata server, not from the environment), and JAX
    reads the rest from the cluster. On CPU the collectives are gloo's. Call it once, before any array is
    made; a single process needs nothing.

    Returns:
      True if the runtime was started (then ``jax.process_count()`` > 1).

    Raises:
      ValueError: some but not all of the explicit arguments, or a bad count / id.
    """
    given = [coordinator_address, num_processes, process_id]
    if any(x is not None for x in given) and not all(x is not None for x in given):
        raise ValueError(
            "coordinator_address, num_processes and process_id go together; got "
            f"{coordinator_address!r}, {num_processes!r}, {process_id!r}"
        )
    if num_processes is not None:
        _check_process_id(num_processes, process_id)
        if num_processes == 1:
            return False
    elif detected_cluster() is None and os.environ.get(FORCE_ENV) != "1":
        return False
    # CPU devices talk through gloo (the setting only concerns the CPU backend).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address, num_processes, process_id)
    return True


def free_local_port() -> int:
    """A TCP port free on 127.0.0.1 now: the coordinator port of local processes.

    The operating system picks it (a bind to port 0); nothing reserves it, so a
    launcher hands it to its processes at once.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def local_process_flags(port: int, num_processes: int, process_id: int) -> list[str]:
    """The flags that make a study process ``process_id`` of ``num_processes`` local ones.

    ``--coordinator_address=127.0.0.1:PORT --num_processes=N --process_id=I``, as every
    study command accepts them (``initialize_distributed``); the README's two-process
    command is the study's command with these appended, once per process.

    Raises:
      ValueError: a port outside 1..65535, num_processes < 1 or a process id outside
        0..num_processes − 1.
    """
    if not 0 < port < 65536:
        raise ValueError(f"port must lie in 1..65535, got {port}")
    _check_process_id(num_processes, process_id)
    return [
        f"--coordinator_address=127.0.0.1:{port}",
        f"--num_processes={num_processes}",
        f"--process_id={process_id}",
    ]


_DEVICE_COUNT_FLAG = "--xla_force_host_platform_device_count"


def local_worker_env(
    devices: int | None = None,
    *,
    platforms: str | None = "cpu",
    environ: dict[str, str] | None = None,
) -> dict[str, str]:
    """The environment of a local worker process (a study or benchmark run in a child).

    A copy of ``environ`` (default ``os.environ``) whose ``XLA_FLAGS`` keep every flag
    but a forced host device count; ``devices`` puts
    ``--xla_force_host_platform_device_count=devices`` back (None: the backend's
    default, one CPU device). ``platforms`` sets ``JAX_PLATFORMS`` (None keeps it).

    Raises:
      ValueError: devices < 1.
    """
    if devices is not None and devices < 1:
        raise ValueError(f"devices must be >= 1 or None, got {devices}")
    env = dict(os.environ if environ is None else environ)
    flags = [
        flag
        for flag in env.get("XLA_FLAGS", "").split()
        if flag.split("=")[0] != _DEVICE_COUNT_FLAG
    ]
    if devices is not None:
        flags.append(f"{_DEVICE_COUNT_FLAG}={devices}")
    env["XLA_FLAGS"] = " ".join(flags)
    if platforms is not None:
        env["JAX_PLATFORMS"] = platforms
    return env


def is_primary() -> bool:
    """True on the process that writes files (process 0; the only one when alone)."""
    return jax.process_index() == 0


def broadcast_from_primary(tree):
    """Process 0's value of a pytree of numpy arrays, on every process (identity alone).

    Every process passes a tree of the same structure, shapes and dtypes (the others'
    values are ignored: zeros of the right shape will do). The bytes are sent, so
    every dtype arrives exactly -- float64 and int64 too when JAX runs in float32.
    Collective: every process must call it.
    """
    if jax.process_count() == 1:
        return tree
    leaves, treedef = jax.tree.flatten(tree)
    hosts = [np.asarray(x) for x in leaves]
    raw = [np.ascontiguousarray(x).reshape(-1).view(np.uint8) for x in hosts]
    sent = multihost_utils.broadcast_one_to_all([r for r in raw if r.size])
    it = iter(sent)
    # The sum over processes that broadcasts promotes uint8 (to uint32): back to bytes.
    out = [
        np.asarray(next(it)).astype(np.uint8).view(h.dtype).reshape(h.shape)
        if r.size
        else h.copy()
        for h, r in zip(hosts, raw)
    ]
    return jax.tree.unflatten(treedef, out)


def barrier(name: str) -> None:
    """Waits until every process has reached ``barrier(name)`` (no-op alone).

    E.g. after process 0 wrote a checkpoint, so that no process runs ahead of a file
    that a later step (or a restart) relies on.
    """
    if jax.process_count() > 1:
        multihost_utils.sync_global_devices(name)


def to_host(tree):
    """Numpy copies of every leaf; arrays spread over processes are gathered first."""

    def fetch(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(jax.device_get(x))

    return jax.tree.map(fetch, tree)


def replicate_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh with axis name "replicate" over ``devices`` (default: all)."""
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("devices is empty: a mesh needs at least one device")
    return Mesh(np.asarray(devices), (AXIS,))


def check_shared_cpu_pool(fn: Callable, mesh: Mesh, *args) -> None:
    """Raises ``ValueError`` where ``fn(*args)`` on ``mesh`` would deadlock XLA:CPU.

    The CPU devices of one process share one intra-op thread pool, and jaxlib 0.10's
    batched LAPACK kernels block a pool thread while their batch, split over the pool,
    is computed (``hetrlhf.cpu_lapack``): one such call per device, run on two devices
    at once, hangs a 2-core machine for ever (README "Known issues"). Where this
    process holds several CPU devices of ``mesh``, ``fn`` (jitted) is compiled for
    ``args`` (the call that follows reuses the executable) and checked; elsewhere
    (one device per process, accelerators) nothing is done.

    Args:
      fn: the jitted function the caller is about to run on ``mesh``.
      mesh: its mesh.
      *args: its arguments.
    """
    local = [d for d in mesh.devices.flat if d.process_index == jax.process_index()]
    if len(local) < 2 or local[0].platform != "cpu":
        return
    calls = cpu_lapack.splitting_calls(fn.lower(*args).compile().as_text())
    if calls:
        more = f" and {len(calls) - 1} more" if len(calls) > 1 else ""
        raise ValueError(
            f"this program has batched LAPACK calls large enough to split over "
            f"XLA:CPU's thread pool ({calls[0]}{more}), and the {len(local)} CPU "
            "devices of this process share that pool: run on them at once, such calls "
            'can deadlock a small CPU (README "Known issues"). Run one device per '
            'process instead (several processes: README "Scaling out"; or no '
            "--xla_force_host_platform_device_count), or a smaller vmap_size"
        )


def _check_mesh(mesh) -> Mesh:
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    if mesh.axis_names != (AXIS,):
        raise ValueError(
            f"mesh must be 1-D with axis name {AXIS!r} (use replicate_mesh()), got "
            f"axis names {mesh.axis_names}"
        )
    return mesh


def replicate_sharding(mesh: Mesh) -> NamedSharding:
    """Sharding that splits the leading (replicate) axis over the mesh."""
    return NamedSharding(_check_mesh(mesh), P(AXIS))


def batched_vmap(fn: Callable, batch_size: int | None = None) -> Callable:
    """``fn`` (one replicate) mapped over a leading axis, ``batch_size`` at a time.

    ``batch_size=None`` is ``jax.vmap(fn)``. Otherwise ``jax.lax.map(fn, xs,
    batch_size=batch_size)``: a loop over vmapped batches inside one program. On a CPU
    a narrow batch keeps each batch's working set in cache, and a vmapped
    ``while_loop`` only runs until the slowest replicate *of its batch* has finished:
    for the Newton fits of the coverage study at n = 600, batches of 25 used about
    1.7× less CPU than one vmap over 1000 replicates. A wide vmap is better on a GPU.
    When the axis length is not a multiple of ``batch_size``, the remainder is a
    second vmapped program (compiled in addition).

    Args:
      fn: ``fn(x) -> pytree`` for one replicate (e.g. one PRNG key).
      batch_size: replicates per vmapped batch (>= 1), or None for a single vmap.

    Returns:
      ``batched(xs) -> pytree`` with a leading axis (not jitted; jit at the call site).
    """
    if batch_size is None:
        return jax.vmap(fn)
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise TypeError(f"batch_size must be an int or None, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 or None, got {batch_size}")

    def batched(xs):
        return jax.lax.map(fn, xs, batch_size=int(batch_size))

    return batched


def _leading_size(tree) -> int:
    leaves = jax.tree.leaves(tree)
    if not leaves:
        raise ValueError("tree has no array leaves to shard")
    sizes = {np.shape(x)[0] if np.ndim(x) else None for x in leaves}
    if None in sizes:
        raise ValueError(
            "every leaf needs a leading replicate axis; found a scalar leaf"
        )
    if len(sizes) != 1:
        raise ValueError(
            f"leaves have different leading (replicate) sizes {sorted(sizes)}"
        )
    return sizes.pop()


def pad_replicates(tree, multiple: int):
    """Pads the leading axis to a multiple of ``multiple`` by repeating the last row.

    Returns:
      (padded tree, original size R); slice outputs with ``[:R]``.
    """
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    size = _leading_size(tree)
    target = math.ceil(size / multiple) * multiple
    idx = np.minimum(np.arange(target), size - 1)
    return jax.tree.map(lambda x: x[idx], tree), size


def shard_replicates(tree, mesh: Mesh, *, pad: bool = False):
    """Places ``tree`` with its leading (replicate) axis split over ``mesh``.

    Args:
      tree: pytree whose leaves share a leading axis R (e.g. keys [R]).
      mesh: a ``replicate_mesh``.
      pad: if R is not a multiple of the device count, pad by repeating the last
        replicate (see ``pad_replicates``) instead of raising.

    Raises:
      ValueError: R not divisible by the number of devices (and ``pad`` is False).
    """
    sharding = replicate_sharding(mesh)
    size = _leading_size(tree)
    if size % mesh.size:
        if not pad:
            raise ValueError(
                f"the replicate axis has {size} entries, not a multiple of the "
                f"{mesh.size} devices of the mesh; pass pad=True or choose a multiple"
            )
        tree, _ = pad_replicates(tree, mesh.size)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree.map(lambda x: _global_array(x, sharding), tree)


def _global_array(value, sharding: NamedSharding) -> jax.Array:
    """A global array from a value every process holds (fills local devices only)."""
    if jax.dtypes.issubdtype(value.dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(value)
        raw = _global_array(jax.random.key_data(value), sharding)
        wrap = jax.jit(lambda r: jax.random.wrap_key_data(r, impl=impl))
        return jax.jit(wrap, out_shardings=sharding)(raw)
    host = np.asarray(value)
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def sharded_map(
    fn: Callable,
    mesh: Mesh,
    *,
    replicated: Sequence[int] = (),
    compiler_options: Mapping[str, Any] | None = None,
) -> Callable:
    """Runs a batch function on each device's slice of the replicate axis.

    Args:
      fn: ``fn(*batched_args) -> pytree``; every input and output leaf has a leading
        replicate axis (e.g. ``jax.jit(jax.vmap(replicate))``, jitted without
        ``compiler_options``: JAX accepts them on the outermost ``jit`` only).
      mesh: a ``replicate_mesh``.
      replicated: positions of arguments shared by every replicate (e.g. reward
        parameters): copied whole to each device instead of split, no leading axis.
      compiler_options: XLA options of the returned program (``jax.jit``'s
        ``compiler_options``, e.g. ``{"xla_backend_optimization_level": 2}``).

    Returns:
      A jitted function with the same signature; the other inputs and the outputs are
      split along the leading axis over the mesh (their size must be a multiple of the
      device count: see ``shard_replicates``). The same ``fn``, mesh and
      ``replicated`` give the same function (memoised), so a caller that runs ``fn``
      again, e.g. at another value of a shared argument, reuses its compiled program.
    """
    return _sharded_map(
        fn,
        _check_mesh(mesh),
        tuple(int(i) for i in replicated),
        _options_key(compiler_options),
    )


def top_level(
    fn: Callable, compiler_options: Mapping[str, Any] | None = None
) -> Callable:
    """``jax.jit(fn, compiler_options=compiler_options)``, memoised; ``fn`` itself
    when there are no options.

    JAX takes ``compiler_options`` on the outermost ``jit`` of a program only (a
    nested one raises), so a caller that receives a jitted ``fn`` and runs it as a
    program of its own gives the options here. The same ``fn`` and options give the
    same function, so its compiled program is reused. The result is a program of
    its own: called inside another ``jit`` or ``jax.eval_shape`` it raises (use
    ``fn`` there).
    """
    options = _options_key(compiler_options)
    return _top_level(fn, options) if options else fn


def _options_key(compiler_options) -> tuple:
    if compiler_options is None:
        return ()
    if not isinstance(compiler_options, Mapping):
        raise TypeError(
            "compiler_options must be a mapping of XLA option names to values, got "
            f"{type(compiler_options).__name__}"
        )
    return tuple(sorted(compiler_options.items()))


@functools.lru_cache(maxsize=64)
def _top_level(fn: Callable, options: tuple) -> Callable:
    return jax.jit(fn, compiler_options=dict(options))


@functools.lru_cache(maxsize=64)
def _sharded_map(
    fn: Callable, mesh: Mesh, replicated: tuple[int, ...], options: tuple
) -> Callable:
    spec = P(AXIS)

    @functools.partial(jax.jit, compiler_options=dict(options) or None)
    def wrapped(*args):
        # check_vma=False: replicate kernels start loops from constants (e.g. a
        # zero initial estimate) that the varying-manual-axes type check would
        # reject; there are no collectives, so that check guards nothing here.
        mapped = jax.shard_map(
            fn,
            mesh=mesh,
            in_specs=tuple(P() if i in replicated else spec for i in range(len(args))),
            out_specs=spec,
            check_vma=False,
        )
        return mapped(*args)

    return wrapped
