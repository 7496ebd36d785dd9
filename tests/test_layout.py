"""The package's shape: no import circles, one-way flow, every module importable alone.

Flow (README "Layout"): types → validation and the harness utilities (checkpoint,
parallel, reporting) → btl → alignment → data → own_data → cli. A module may import
only from its own layer or the layers before it; ``btl`` never imports ``alignment``.
"""

import ast
import concurrent.futures
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hetrlhf"

# Layer of each top-level part of the package (lower may not import higher).
LAYERS = {
    "types": 0,
    "validation": 1,
    "checkpoint": 1,
    "cpu_lapack": 1,
    "parallel": 1,
    "reporting": 1,
    "montecarlo": 1,
    "btl": 2,
    "alignment": 3,
    "data": 4,
    "own_data": 5,
    "cli": 6,
    "__init__": 7,
}


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(module: str) -> set[str]:
    """hetrlhf modules imported by ``module`` (any depth, lazy imports included)."""
    path = ROOT / (module.replace(".", "/") + ".py")
    if not path.exists():
        path = ROOT / module.replace(".", "/") / "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("hetrlhf"):
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("hetrlhf"))
    known = set(_modules())
    return {m for m in found if m in known} - {module}


def test_no_module_imports_a_later_layer():
    bad = []
    for module in _modules():
        if module == "hetrlhf":
            continue
        own = LAYERS[_part(module)]
        for other in _imports(module):
            if other != "hetrlhf" and LAYERS[_part(other)] > own:
                bad.append(f"{module} -> {other}")
    assert not bad, "imports against the flow:\n" + "\n".join(bad)


def test_btl_never_imports_alignment():
    bad = [
        f"{m} -> {o}"
        for m in _modules()
        if _part(m) == "btl"
        for o in _imports(m)
        if _part(o) in ("alignment", "ppo", "own_data")
    ]
    assert not bad, bad


def test_no_import_circles():
    graph = {m: _imports(m) - {"hetrlhf"} for m in _modules() if m != "hetrlhf"}
    # Package __init__ files re-export their children; an edge child -> parent
    # __init__ is not a circle of code.
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + "."):
                continue  # a package importing its own children
            if state.get(nxt) == 1:
                cycle.extend([*stack, node, nxt])
                return True
            if state.get(nxt) is None and visit(nxt, [*stack, node]):
                return True
        state[node] = 2
        return False

    for module in graph:
        if state.get(module) is None and visit(module, []):
            break
    assert not cycle, "import circle: " + " -> ".join(cycle)


def _import_alone(module: str) -> tuple[str, int, str]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, "-c", f"import {module}"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return module, proc.returncode, proc.stderr[-2000:]


@pytest.mark.slow
def test_every_module_imports_alone_in_a_fresh_interpreter():
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(_import_alone, _modules()))
    failed = [f"{m}:\n{err}" for m, code, err in results if code]
    assert not failed, "\n\n".join(failed)
