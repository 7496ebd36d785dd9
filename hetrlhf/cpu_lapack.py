"""XLA:CPU's batched LAPACK calls that split over its thread pool, in a compiled program.

jaxlib 0.10's CPU LAPACK kernels (Cholesky, eigh, LU, triangular solve, QR, SVD) split a
batch whose work passes ``FAN_OUT_WORK`` over XLA's intra-op thread pool and block
their pool thread until the pieces are done (``jax::ParallelBatchMap``). Two such calls
running at once can each hold a pool thread while waiting for the other's pieces: on a
2-core machine (a 2-thread pool) the program deadlocks (README "Known issues"). That
happens when XLA:CPU runs two of them side by side in one program, or when several
devices of one process (which share the pool) each run one.

Reads a program's optimized HLO text (``jax.jit(f).lower(...).compile().as_text()``,
or a ``--xla_dump_to`` dump):

* ``splitting_calls(text)``: every batched LAPACK call big enough to split;
* ``concurrent_lapack_pairs(text)``: the pairs of such calls -- or of instructions
  (loops, conditionals, calls) that contain one -- that no data path orders,
  computation by computation. These are candidates: XLA:CPU also orders instructions
  that share a buffer (which depends on its scheduler and buffer assignment), and
  ``lax.optimization_barrier`` is removed before the program runs, so it orders the
  schedule only. No pair means no two such calls can run at once.
"""

from __future__ import annotations

import pathlib
import re
from collections.abc import Iterable

_COMPUTATION = re.compile(r"^(?:ENTRY )?%([\w.\-]+) .*\{\s*$")
_INSTRUCTION = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = (.*)$")
_CALLED = re.compile(
    r"\b(?:calls|body|condition|to_apply|true_computation|false_computation)="
    r"%([\w.\-]+)"
)
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")
_LAPACK = re.compile(r'custom_call_target="(lapack_\w+)"')
_BATCH_DIMS = re.compile(r'num_batch_dims="(\d+)"')
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_SHAPE = re.compile(r"\[([\d,]*)\]")
_OPERAND = re.compile(r"%([\w.\-]+)")
_FRAME = re.compile(r"stack_frame_id=(\d+)")
_CONTROL = re.compile(r"control-predecessors=\{([^}]*)\}")


def _section(text: str, name: str) -> list[str]:
    match = re.search(rf"^{name}\n(.*?)(?:\n\n|\Z)", text, re.DOTALL | re.MULTILINE)
    return match.group(1).splitlines() if match else []


def source_locations(text: str) -> dict[int, str]:
    """stack frame id -> "file:line (function)" of the frame's own location (the
    innermost user frame: jax's own frames are not recorded)."""
    names = {}
    for section in ("FileNames", "FunctionNames"):
        names[section] = {
            int(line.split()[0]): line.split('"')[1]
            for line in _section(text, section)
            if '"' in line
        }
    locations = {}
    for line in _section(text, "FileLocations"):
        fields = dict(re.findall(r"(\w+)=(\d+)", line))
        file = names["FileNames"].get(int(fields.get("file_name_id", 0)), "?")
        function = names["FunctionNames"].get(int(fields.get("function_name_id", 0)))
        file = "/".join(pathlib.PurePath(file).parts[-3:])
        locations[int(line.split()[0])] = f"{file}:{fields.get('line')} ({function})"
    frames = {}
    for line in _section(text, "StackFrames"):
        fields = dict(re.findall(r"(\w+)=(\d+)", line))
        location = int(fields.get("file_location_id", 0))
        if location in locations:
            frames[int(line.split()[0])] = locations[location]
    return frames


def parse_hlo(text: str) -> dict[str, dict[str, str]]:
    """computation name -> {instruction name: its text after ``=``}, in order."""
    computations: dict[str, dict[str, str]] = {}
    current = None
    for line in text.splitlines():
        if current is None:
            match = _COMPUTATION.match(line)
            if match:
                current = computations.setdefault(match.group(1), {})
        elif line.strip() == "}":
            current = None
        else:
            match = _INSTRUCTION.match(line)
            if match:
                current[match.group(1)] = match.group(2)
    return computations


# jaxlib 0.10's kernels (jaxlib/cpu/lapack_kernels.cc, GetLapackBatchChunkSize) split
# a batch over the pool only when batch x cost_per_matrix >= 2e5 "flops", with these
# costs per matrix (m x n; k = min(m, n); x3 for complex types).
FAN_OUT_WORK = 200_000
_COSTS = {
    "potrf": lambda m, n, left: n * n * n // 3,
    "syevd": lambda m, n, left: 5 * n * n * n,
    "heevd": lambda m, n, left: 4 * n * n * n,
    "getrf": lambda m, n, left: m * n * min(m, n),
    "trsm": lambda m, n, left: m * n * (m if left else n),
    "geqrf": lambda m, n, left: 2 * m * n * min(m, n) - 2 * min(m, n) ** 3 // 3,
    "geqp3": lambda m, n, left: 2 * m * n * min(m, n) - 2 * min(m, n) ** 3 // 3,
    "gesdd": lambda m, n, left: 10 * m * n * min(m, n),
}


def _work(target: str, dims: list[int], batch: int, instruction: str) -> float:
    """batch x jaxlib's cost per matrix (inf for a kernel not in ``_COSTS``)."""
    name = target.removeprefix("lapack_").removesuffix("_ffi")
    kind, routine = name[:1], name[1:]
    if routine not in _COSTS or len(dims) < 2:
        return float("inf")
    left = "side = 82" not in instruction  # 'R' = 82; the default side is left
    cost = _COSTS[routine](dims[-2], dims[-1], left) * (3 if kind in "cz" else 1)
    return batch * cost


def batched_lapack_call(
    instruction: str, frames=None, min_work: float = FAN_OUT_WORK
) -> str | None:
    """``"target[shape] file:line (function)"`` (or the op name without ``frames``,
    see ``source_locations``) for a LAPACK custom call over a batch of > 1 matrices
    whose work (batch x jaxlib's cost per matrix) is at least ``min_work`` -- by
    default the calls that split over the thread pool -- else None."""
    target = _LAPACK.search(instruction)
    if target is None or "custom-call(" not in instruction:
        return None
    batch_dims = _BATCH_DIMS.search(instruction)
    shape = _SHAPE.search(instruction)  # the first result's shape
    dims = [int(d) for d in shape.group(1).split(",") if d] if shape else []
    size = 1
    for d in dims[: int(batch_dims.group(1)) if batch_dims else 0]:
        size *= d
    if size <= 1 or _work(target.group(1), dims, size, instruction) < min_work:
        return None
    frame = _FRAME.search(instruction)
    op_name = _OP_NAME.search(instruction)
    where = (frames or {}).get(int(frame.group(1)) if frame else -1) or (
        op_name.group(1) if op_name else ""
    )
    return f"{target.group(1)}[{','.join(map(str, dims))}] {where}".strip()


def _called(instruction: str) -> list[str]:
    names = _CALLED.findall(instruction)
    for branches in _BRANCHES.findall(instruction):
        names += [b.strip().lstrip("%") for b in branches.split(",") if b.strip()]
    return names


def concurrent_lapack_pairs(
    text: str, min_work: float = FAN_OUT_WORK
) -> list[tuple[str, str, str]]:
    """Pairs ``(computation, a, b)`` of unordered batched LAPACK work in ``text``.

    Only calls with at least ``min_work`` count (``batched_lapack_call``; the default:
    those that split over the pool and block a thread, i.e. can deadlock; 0: every
    batched call, the program's structure whatever the sizes).

    ``a`` and ``b`` are batched LAPACK custom calls or instructions whose called
    computations contain one ("while.3 (contains LAPACK)"); they are unordered when
    neither is reachable from the other through operands in their computation.
    """
    computations = parse_hlo(text)
    frames = source_locations(text)
    contains: dict[str, bool] = {}

    def has_lapack(name: str) -> bool:
        if name not in contains:
            contains[name] = False  # a computation never calls itself
            contains[name] = any(
                is_unit(i) for i in computations.get(name, {}).values()
            )
        return contains[name]

    def is_unit(instruction: str) -> bool:
        return batched_lapack_call(instruction, None, min_work) is not None or any(
            has_lapack(c) for c in _called(instruction) if c in computations
        )

    def calls_within(callee: str) -> list[str]:
        found = _calls_in(computations.get(callee, {}).values(), frames, min_work)
        for ins in computations.get(callee, {}).values():
            for inner in _called(ins):
                if inner != callee and has_lapack(inner):
                    found += calls_within(inner)
        return found

    def describe(instructions: dict[str, str], name: str) -> str:
        call = batched_lapack_call(instructions[name], frames, min_work)
        if call is not None:
            return call
        inner = sorted(
            {
                c.split(" ", 1)[-1]
                for callee in _called(instructions[name])
                for c in calls_within(callee)
            }
        )
        return f"{name} (contains LAPACK: {'; '.join(inner)})"

    pairs = []
    for computation, instructions in computations.items():
        units = [name for name, ins in instructions.items() if is_unit(ins)]
        if len(units) < 2:
            continue
        operands = {}
        for name, ins in instructions.items():
            head = ins.split(", metadata=")[0].split(", custom_call_target=")[0]
            control = _CONTROL.findall(ins)  # control-predecessors={%a, %b}
            operands[name] = {
                o
                for o in _OPERAND.findall(head) + _OPERAND.findall(" ".join(control))
                if o in instructions and o != name
            }
        ancestors: dict[str, set[str]] = {}
        for name in instructions:  # instructions come after their operands
            found = set()
            for o in operands[name]:
                found |= {o} | ancestors.get(o, set())
            ancestors[name] = found

        for i, a in enumerate(units):
            for b in units[i + 1 :]:
                if a not in ancestors[b] and b not in ancestors[a]:
                    pairs.append(
                        (
                            computation,
                            describe(instructions, a),
                            describe(instructions, b),
                        )
                    )
    return pairs


def _calls_in(instructions: Iterable[str], frames, min_work: float) -> list[str]:
    """``batched_lapack_call`` of each of ``instructions`` that is one, in order."""
    calls = (batched_lapack_call(i, frames, min_work) for i in instructions)
    return [c for c in calls if c is not None]


def splitting_calls(text: str, min_work: float = FAN_OUT_WORK) -> list[str]:
    """Every batched LAPACK call in ``text`` whose work is at least ``min_work``
    (``batched_lapack_call``'s description), in program order."""
    frames = source_locations(text)
    return [
        call
        for instructions in parse_hlo(text).values()
        for call in _calls_in(instructions.values(), frames, min_work)
    ]


def audit_dump(
    directory: str | pathlib.Path, min_work: float = FAN_OUT_WORK
) -> dict[str, list[tuple[str, str, str]]]:
    """``concurrent_lapack_pairs`` of every optimized module in an XLA dump folder
    (``--xla_dump_to=DIR --xla_dump_hlo_as_text``): file name -> pairs (non-empty)."""
    found = {}
    for path in sorted(pathlib.Path(directory).glob("*after_optimizations.txt")):
        pairs = concurrent_lapack_pairs(path.read_text(), min_work)
        if pairs:
            found[path.name] = pairs
    return found


def format_pairs(found: dict[str, Iterable[tuple[str, str, str]]]) -> str:
    lines = []
    for module, pairs in found.items():
        lines.append(module)
        lines += [f"  {c}: {a}  ||  {b}" for c, a, b in pairs]
    return "\n".join(lines)
