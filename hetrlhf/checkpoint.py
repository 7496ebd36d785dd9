"""Checkpoint/resume with orbax for long Monte Carlo studies and training loops.

``run_chunked`` applies a jitted batch function to consecutive chunks of PRNG keys and
saves each finished chunk's outputs with an orbax ``CheckpointManager`` (step = chunk
index). A run that is killed and started again with the same command restores the
finished chunks and computes only the rest; every chunk has the same (padded) shape,
so a resumed run produces bit-identical final outputs.

>>> keys = jax.random.split(jax.random.key(0), 1000)
>>> out = run_chunked(jax.jit(jax.vmap(replicate)), keys, chunk_size=100,
...                   directory="results/coverage/ckpt", fingerprint=config.to_dict())

``save_pytree`` / ``latest_step`` / ``restore_pytree`` checkpoint a training state
(e.g. the PPO learner) every few steps.

Several processes (``jax.process_count() > 1``): every process calls these functions
with the same arguments. Arrays spread over the processes are gathered to each of
them; process 0 alone reads and writes the checkpoint directory (orbax with process 0
as its only active process) and broadcasts what it read
(``parallel.broadcast_from_primary``, exact in every dtype), so a restart of all
processes after any of them was killed resumes from process 0's last finished step.

Typed PRNG keys (``jax.random.key``) cannot be serialised directly: their raw
``key_data`` is stored and they are re-wrapped with the implementation of the
matching leaf of ``like`` on restore.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from tqdm.auto import tqdm

from hetrlhf import parallel

__all__ = ["latest_step", "restore_pytree", "run_chunked", "save_pytree"]

_OUTPUTS = "outputs"
_META = "meta"


def _is_key(leaf) -> bool:
    dtype = getattr(leaf, "dtype", None)
    return dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key)


def _key_impl(leaf):
    """The PRNG implementation of a key array or of a key ``ShapeDtypeStruct``."""
    if isinstance(leaf, jax.Array):
        return jax.random.key_impl(leaf)
    # jax.random.key_impl needs an array; a tracer of the abstract value is one.
    found = []
    jax.eval_shape(lambda x: found.append(jax.random.key_impl(x)), leaf)
    return found[0]


def _key_data(leaf):
    return jax.random.key_data(leaf) if _is_key(leaf) else leaf


def _storable_spec(leaf) -> jax.ShapeDtypeStruct:
    """Shape/dtype of what is stored for a leaf (raw key data for typed keys)."""
    if _is_key(leaf):
        return jax.eval_shape(
            jax.random.key_data, jax.ShapeDtypeStruct(leaf.shape, leaf.dtype)
        )
    arr = leaf if hasattr(leaf, "shape") else np.asarray(leaf)
    return jax.ShapeDtypeStruct(arr.shape, arr.dtype)


def _to_host(tree) -> dict[str, np.ndarray]:
    """Flattens a pytree to {"00000": numpy leaf, ...} with typed keys as key data
    (outputs spread over several processes are gathered: ``parallel.to_host``)."""
    leaves = parallel.to_host([_key_data(x) for x in jax.tree.leaves(tree)])
    return {f"{i:05d}": x for i, x in enumerate(leaves)}


def _from_host(flat: Mapping[str, np.ndarray], like):
    """Inverse of ``_to_host``: rebuilds ``like``'s structure, re-wrapping keys."""
    like_leaves, treedef = jax.tree.flatten(like)
    leaves = []
    for i, ref in enumerate(like_leaves):
        value = flat[f"{i:05d}"]
        if _is_key(ref):
            value = jax.random.wrap_key_data(jnp.asarray(value), impl=_key_impl(ref))
        elif isinstance(ref, (bool, int, float)) and not isinstance(ref, np.generic):
            value = type(ref)(value)
        elif isinstance(ref, (np.ndarray, np.generic)):
            # numpy stays numpy in its own dtype (float64 too when JAX runs in
            # float32: a resumed run must hold the same numbers as an uninterrupted one)
            value = np.asarray(value, ref.dtype)
        else:
            value = jnp.asarray(value)
        leaves.append(value)
    return jax.tree.unflatten(treedef, leaves)


def _manager(directory: str, *, create: bool, max_to_keep: int | None = None):
    # Synchronous saves: outputs are small, and a finished chunk must be on disk
    # before the next one starts, so a kill never loses more than the running chunk.
    # Several processes: the caller is process 0 alone (``run_chunked`` gathers the
    # outputs first), so orbax must not wait for the others at its barriers.
    multiprocessing = ocp.options.MultiprocessingOptions()
    if jax.process_count() > 1:
        multiprocessing = ocp.options.MultiprocessingOptions(
            primary_host=0, active_processes={0}
        )
        if create:  # orbax refuses create=True with active_processes
            os.makedirs(directory, exist_ok=True)
            create = False
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep,
        enable_async_checkpointing=False,
        create=create,
        multiprocessing_options=multiprocessing,
    )
    handlers = {
        _OUTPUTS: ocp.StandardCheckpointHandler(),
        _META: ocp.JsonCheckpointHandler(),
    }
    return ocp.CheckpointManager(
        os.path.abspath(directory), options=options, item_handlers=handlers
    )


def _check_directory(directory) -> str:
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"directory must be a path, got {type(directory).__name__}")
    directory = os.fspath(directory)
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ValueError(f"directory {directory!r} exists and is not a directory")
    return directory


def _check_step(step) -> int:
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"step must be a non-negative int, got {step!r}")
    return int(step)


def save_pytree(directory, step: int, tree, *, max_to_keep: int | None = None) -> str:
    """Saves a pytree (e.g. a training state) as checkpoint ``step`` in ``directory``.

    Several processes: every process calls it (arrays spread over processes are
    gathered first); process 0 alone writes, and all return once the step is on disk.

    Args:
      directory: checkpoint directory (created if missing); one sub-folder per step.
      step: non-negative int.
      tree: pytree of arrays / scalars; typed PRNG keys are stored as key data.
      max_to_keep: keep only the newest ``max_to_keep`` steps (None: keep all).

    Returns:
      The path of the step's folder.
    """
    directory = _check_directory(directory)
    step = _check_step(step)
    flat = _to_host(tree)  # collective: every process takes part in the gather
    if parallel.is_primary():
        mngr = _manager(directory, create=True, max_to_keep=max_to_keep)
        try:
            mngr.save(
                step,
                args=ocp.args.Composite(**{_OUTPUTS: ocp.args.StandardSave(flat)}),
                force=True,
            )
            mngr.wait_until_finished()
        finally:
            mngr.close()
    parallel.barrier(f"hetrlhf.checkpoint.save_pytree:{directory}:{step}")
    return os.path.join(os.path.abspath(directory), str(step))


def latest_step(directory) -> int | None:
    """The newest finished step in ``directory``, or None (missing or empty).

    Several processes: process 0 looks, every process gets its answer.
    """
    directory = _check_directory(directory)
    step = None
    if parallel.is_primary() and os.path.isdir(directory):
        mngr = _manager(directory, create=False)
        try:
            step = mngr.latest_step()
        finally:
            mngr.close()
    found = parallel.broadcast_from_primary(np.array(-1 if step is None else step))
    return None if int(found) < 0 else int(found)


def restore_pytree(directory, step: int | None, like):
    """Restores checkpoint ``step`` (None: the latest) into the structure of ``like``.

    Several processes: process 0 reads the checkpoint and sends it to the others
    (every process calls it; every process raises if process 0 could not restore).

    Args:
      directory: the directory given to ``save_pytree``.
      step: the step to restore, or None for the latest.
      like: a pytree with the saved structure (arrays or ``jax.ShapeDtypeStruct``s);
        typed-key leaves are re-wrapped with their PRNG implementation.

    Returns:
      The restored pytree (jax arrays; numpy leaves of ``like`` come back as numpy
      arrays of their dtype, Python scalars as scalars).

    Raises:
      FileNotFoundError: no checkpoint (at ``step``) in ``directory``.
      ValueError: the checkpoint's leaves do not match ``like``.
    """
    directory = _check_directory(directory)
    flat, error = None, None
    if parallel.is_primary():
        try:
            flat = _read_step(directory, step, like)
        except (FileNotFoundError, ValueError) as exc:
            if jax.process_count() == 1:
                raise
            error = exc
    if jax.process_count() > 1:
        failed = parallel.broadcast_from_primary(np.array(error is not None))
        if bool(failed):
            raise error or FileNotFoundError(
                f"process 0 could not restore {directory!r} (step {step})"
            )
        flat = parallel.broadcast_from_primary(
            flat if flat is not None else _zeros_like_stored(like)
        )
    return _from_host(flat, like)


def _zeros_like_stored(like, leading: int | None = None) -> dict[str, np.ndarray]:
    """Zeros of the stored leaves of ``like`` (templates for a broadcast)."""
    out = {}
    for i, leaf in enumerate(jax.tree.leaves(like)):
        spec = _storable_spec(leaf)
        shape = spec.shape if leading is None else (leading, *spec.shape[1:])
        out[f"{i:05d}"] = np.zeros(shape, spec.dtype)
    return out


def _read_step(directory: str, step: int | None, like) -> dict[str, np.ndarray]:
    """The stored leaves of checkpoint ``step`` (None: latest), read by this process."""
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"no checkpoint directory {directory!r}")
    mngr = _manager(directory, create=False)
    try:
        steps = mngr.all_steps()
        if step is None:
            if not steps:
                raise FileNotFoundError(f"no checkpoint in {directory!r}")
            step = max(steps)
        step = _check_step(step)
        if step not in steps:
            raise FileNotFoundError(
                f"no checkpoint step {step} in {directory!r} (steps: {sorted(steps)})"
            )
        return _restore_flat(mngr, step, like)
    finally:
        mngr.close()


def _restore_flat(mngr, step: int, like, leading: int | None = None):
    specs = [_storable_spec(x) for x in jax.tree.leaves(like)]
    if leading is not None:
        specs = [jax.ShapeDtypeStruct((leading, *s.shape[1:]), s.dtype) for s in specs]
    target = {f"{i:05d}": s for i, s in enumerate(specs)}
    stored = getattr(mngr.item_metadata(step)[_OUTPUTS], "tree", None)
    if stored is not None and set(stored) != set(target):
        raise ValueError(
            f"checkpoint step {step} has {len(stored)} leaves but `like` has "
            f"{len(target)}: the saved pytree has a different structure"
        )
    for name, spec in target.items():
        meta = stored[name] if stored is not None else None
        if meta is not None and tuple(meta.shape) != tuple(spec.shape):
            raise ValueError(
                f"checkpoint step {step}, leaf {int(name)}: stored shape "
                f"{tuple(meta.shape)} != expected {tuple(spec.shape)}"
            )
    restored = mngr.restore(
        step, args=ocp.args.Composite(**{_OUTPUTS: ocp.args.StandardRestore(target)})
    )
    return restored[_OUTPUTS]


def _fingerprint_json(fingerprint) -> Any:
    if fingerprint is None:
        return None
    if hasattr(fingerprint, "to_dict") and callable(fingerprint.to_dict):
        fingerprint = fingerprint.to_dict()
    try:
        return json.loads(json.dumps(fingerprint, sort_keys=True))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"fingerprint must be JSON-serialisable (a dict of plain values): {exc}"
        ) from exc


def _keys_digest(keys) -> str:
    data = np.ascontiguousarray(np.asarray(jax.device_get(_key_data(keys))))
    return hashlib.sha256(data.tobytes() + str(data.shape).encode()).hexdigest()


def run_chunked(
    fn: Callable[[jax.Array], Any],
    keys: jax.Array,
    *,
    chunk_size: int,
    directory=None,
    fingerprint: Mapping[str, Any] | None = None,
    desc: str = "",
    mesh: jax.sharding.Mesh | None = None,
    overwrite: bool = False,
    progress: bool = True,
    shared: tuple = (),
    compiler_options: Mapping[str, Any] | None = None,
):
    """Runs ``fn`` over ``keys`` in chunks, checkpointing each chunk; resumes.

    Args:
      fn: batch function ``keys_chunk [C] -> pytree`` whose leaves all have leading
        axis C, e.g. ``jax.jit(jax.vmap(replicate))``. Every call gets exactly
        ``chunk_size`` keys (the last chunk is padded by repeating the last key and
        its outputs are truncated), so it compiles once and results do not depend on
        where a run was interrupted.
      keys: [R] typed key array (``jax.random.split(jax.random.key(seed), R)``) or
        [R, 2] uint32 raw keys.
      chunk_size: replicates per chunk (rounded up to a multiple of the device count
        when ``mesh`` is given; capped at R, rounded likewise).
      directory: checkpoint directory (one orbax step per chunk; kept after the run so
        re-running the same command only reloads). None: no checkpointing.
      fingerprint: JSON-able dict identifying the run (e.g. ``config.to_dict()``),
        stored with every chunk. Resuming with a different fingerprint, different keys
        or a different chunk size raises ``ValueError``.
      desc: progress-bar label.
      mesh: a 1-D ``parallel.replicate_mesh()``; each chunk's replicate axis is then
        split across all its devices (``parallel.sharded_map``).
      overwrite: discard existing chunks in ``directory`` and start fresh.
      progress: show a tqdm progress bar.
      shared: arrays passed whole to every call, ``fn(keys_chunk, *shared)`` (e.g. a
        parameter traced by a jitted ``fn``, so that its values share one compiled
        program); not split over the mesh. They are not stored: name their values
        in ``fingerprint``.
      compiler_options: XLA options of the program that runs a chunk (``jax.jit``'s
        ``compiler_options``; ``fn`` is then called inside that program — traced
        once, not run per chunk — so it must not carry options of its own). They
        change how it is compiled, not what it computes: they are not part of the
        checkpoint's identity.

    Returns:
      The outputs of all R replicates, concatenated along the leading axis (jax
      arrays; typed keys re-wrapped).

    Raises:
      TypeError: ``fingerprint`` not JSON-able, or ``keys`` not a key array.
      ValueError: bad ``chunk_size``/``keys`` shape, an existing checkpoint from
        a different run (unless ``overwrite``), or a program that would deadlock
        the CPU devices of ``mesh`` in this process (``parallel.check_shared_cpu_pool``).
    """
    _check_chunk_args(chunk_size, keys)
    num = int(keys.shape[0])
    meta_fingerprint = _fingerprint_json(fingerprint)
    if mesh is not None:
        run_fn = parallel.sharded_map(
            fn,
            mesh,
            replicated=tuple(range(1, 1 + len(shared))),
            compiler_options=compiler_options,
        )
    else:
        run_fn = parallel.top_level(fn, compiler_options)
    plan = _plan_chunks(num, chunk_size, 1 if mesh is None else mesh.size)
    like = _output_like(fn, keys, plan.chunk_size, shared)
    meta = {
        "fingerprint": meta_fingerprint,
        "num_replicates": num,
        "chunk_size": plan.chunk_size,
        "num_chunks": len(plan.bounds),
        "keys_sha256": _keys_digest(keys),
    }

    checked = []

    def compute(i):
        start = plan.bounds[i][0]
        idx = np.minimum(np.arange(start, start + plan.chunk_size), num - 1)
        chunk = keys[idx]
        if mesh is not None:
            chunk = parallel.shard_replicates(chunk, mesh)
            if not checked:  # several CPU devices of this process: no LAPACK deadlock
                parallel.check_shared_cpu_pool(run_fn, mesh, chunk, *shared)
                checked.append(True)
        return _to_host(run_fn(chunk, *shared))  # gathered to every process

    # Several processes: process 0 alone reads and writes the checkpoint and shares
    # what it restored; every process computes every missing chunk together (each
    # its devices' slice) and holds the gathered outputs.
    results = _restore_chunks(directory, overwrite, meta, like, plan.bounds)
    _compute_missing(results, plan.bounds, compute, directory, meta, desc, progress)
    flat = {
        name: np.concatenate([np.asarray(r[name]) for r in results], axis=0)
        for name in results[0]
    }
    return _from_host(flat, like)


class _Plan(NamedTuple):
    chunk_size: int  # keys per call (a multiple of the device count)
    bounds: list[tuple[int, int]]  # [start, stop) of each chunk's real replicates


def _check_chunk_args(chunk_size, keys) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
        raise TypeError(f"chunk_size must be an int, got {type(chunk_size).__name__}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if not hasattr(keys, "shape") or not hasattr(keys, "dtype"):
        raise TypeError(f"keys must be a key array, got {type(keys).__name__}")
    if _is_key(keys):
        if keys.ndim != 1:
            raise ValueError(f"keys must be a [R] key array, got shape {keys.shape}")
    elif keys.dtype != jnp.uint32 or keys.ndim != 2:
        raise ValueError(
            "keys must be a [R] typed key array or [R, 2] uint32 raw keys, got "
            f"shape {keys.shape} dtype {keys.dtype}"
        )
    if int(keys.shape[0]) == 0:
        raise ValueError("keys is empty: at least one replicate is needed")


def _plan_chunks(num: int, chunk_size: int, multiple: int) -> _Plan:
    """Chunks of ``chunk_size`` (capped at ``num``, rounded up to ``multiple``)."""
    size = math.ceil(min(int(chunk_size), num) / multiple) * multiple
    count = math.ceil(num / size)
    return _Plan(size, [(i * size, min(num, (i + 1) * size)) for i in range(count)])


def _output_like(fn, keys, chunk_size: int, shared):
    """Shapes of ``fn``'s outputs on one chunk; every leaf must lead with it."""
    like = jax.eval_shape(
        fn, jax.ShapeDtypeStruct((chunk_size, *keys.shape[1:]), keys.dtype), *shared
    )
    bad = [
        x.shape
        for x in jax.tree.leaves(like)
        if not x.shape or x.shape[0] != chunk_size
    ]
    if bad:
        raise ValueError(
            f"every output leaf of fn must have leading axis {chunk_size} (the chunk "
            f"size); got shapes {bad}"
        )
    return like


def _compute_missing(results, bounds, compute, directory, meta, desc, progress):
    """Fills the None entries of ``results`` by ``compute(i)`` (truncated to the
    chunk's real replicates); process 0 saves each chunk as it finishes."""
    primary = parallel.is_primary()
    mngr = None
    if directory is not None and primary:
        mngr = _manager(_check_directory(directory), create=True)
    try:
        with tqdm(
            total=len(bounds),
            initial=sum(r is not None for r in results),
            desc=desc or "chunks",
            disable=not (progress and primary),
        ) as bar:
            for i, (lo, hi) in enumerate(bounds):
                if results[i] is not None:
                    continue
                out = {name: x[: hi - lo] for name, x in compute(i).items()}
                if mngr is not None:
                    mngr.save(
                        i,
                        args=ocp.args.Composite(
                            **{
                                _OUTPUTS: ocp.args.StandardSave(out),
                                _META: ocp.args.JsonSave(meta),
                            }
                        ),
                    )
                    mngr.wait_until_finished()
                results[i] = out
                bar.update(1)
    finally:
        if mngr is not None:
            mngr.close()


def _restore_chunks(directory, overwrite, meta, like, bounds) -> list:
    """The finished chunks' outputs (None for the others), the same on every process.

    Process 0 reads ``directory`` (discarding it with ``overwrite``, checking every
    chunk's metadata); the others receive what it found.
    """
    results: list[Any] = [None] * len(bounds)
    error = ""
    if directory is not None and parallel.is_primary():
        mngr = _manager(_check_directory(directory), create=True)
        try:
            steps = sorted(mngr.all_steps())
            if overwrite:
                for step in steps:
                    mngr.delete(step)
                steps = []
            for step in steps:
                _check_meta(mngr, step, meta, directory)
                lo, hi = bounds[step]
                results[step] = _restore_flat(mngr, step, like, leading=hi - lo)
        except ValueError as exc:
            if jax.process_count() == 1:
                raise
            error = str(exc)
        finally:
            mngr.close()
    if jax.process_count() == 1:
        return results
    failed = parallel.broadcast_from_primary(np.array(bool(error)))
    if bool(failed):
        raise ValueError(error or f"checkpoint {directory!r} rejected on process 0")
    mask = parallel.broadcast_from_primary(np.array([r is not None for r in results]))
    for i in np.flatnonzero(mask):
        lo, hi = bounds[i]
        template = _zeros_like_stored(like, leading=hi - lo)
        results[i] = parallel.broadcast_from_primary(
            results[i] if results[i] is not None else template
        )
    return results


def _check_meta(mngr, step: int, meta: dict, directory: str) -> None:
    try:
        stored = mngr.restore(
            step, args=ocp.args.Composite(**{_META: ocp.args.JsonRestore()})
        )[_META]
    except Exception as exc:  # a step written by something else
        raise ValueError(
            f"checkpoint directory {directory!r} holds step {step} that is not a "
            f"run_chunked chunk ({exc}); pass overwrite=True or another directory"
        ) from exc
    for field in ("fingerprint", "num_replicates", "chunk_size", "keys_sha256"):
        if stored.get(field) != meta[field]:
            what = {
                "fingerprint": "the fingerprint (config) differs",
                "num_replicates": "the number of replicates differs",
                "chunk_size": "the chunk size differs",
                "keys_sha256": "the PRNG keys differ (another seed?)",
            }[field]
            detail = ""
            if field == "fingerprint":
                detail = f": stored {_diff(stored.get(field), meta[field])}"
            raise ValueError(
                f"checkpoint in {directory!r} is from a different run ({what}{detail}). "
                "Use the same command to resume, pass overwrite=True to start "
                "fresh, or choose another directory."
            )


def _diff(stored, current) -> str:
    if isinstance(stored, dict) and isinstance(current, dict):
        keys = sorted(set(stored) | set(current))
        changed = [
            f"{k}={stored.get(k)!r} vs now {current.get(k)!r}"
            for k in keys
            if stored.get(k) != current.get(k)
        ]
        return "; ".join(changed[:5])
    return f"{stored!r} vs now {current!r}"
