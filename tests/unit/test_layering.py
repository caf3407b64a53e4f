"""Imports only go down: every spikec module's imports, read with `ast`, against one layer table.

A module may import modules of its own layer or of a lower one, never of a higher one: every
import counts here, those inside functions too (a lazy import is still a dependency). The graph
of import-time imports (module level and class bodies) has no cycle; a function-level import of
a sibling that imports the caller back (Graph.validate -> ir.validate -> ir.graph) is allowed.
Imports under `if TYPE_CHECKING:` do not count. docs/architecture.md explains the layers.
"""

from __future__ import annotations

import ast
import fnmatch
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "spikec"

# lowest first; a module belongs to the layer of its longest matching pattern (fnmatch; a pattern
# also matches the modules below it; "spikec" alone is the package's __init__, the public API)
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("base", ("spikec.errors", "spikec.trace", "spikec.fileio", "spikec.jsonable", "spikec.richtext",
              "spikec.registry", "spikec.findings")),
    ("ir", ("spikec.ir",)),
    ("ann", ("spikec.quantize", "spikec.models", "spikec.cifar", "spikec.datasets")),
    ("backends", ("spikec.backends", "spikec.interop")),
    ("conversion", ("spikec.conversion",)),
    ("compiler", ("spikec.compiler",)),
    ("analysis", ("spikec.analysis",)),
    ("api", ("spikec",)),
    ("apps", ("spikec.cli*", "spikec.demo", "spikec.__main__")),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, rank = -1, None
    for i, (_, patterns) in enumerate(LAYERS):
        for pattern in patterns:
            matches = module == pattern if pattern == "spikec" else (
                fnmatch.fnmatchcase(module, pattern) or fnmatch.fnmatchcase(module, pattern + ".*"))
            if matches and len(pattern) > best:
                best, rank = len(pattern), i
    if rank is None:
        raise AssertionError(f"{module} is in no layer of LAYERS: add it to the table")
    return rank


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def imports(module: str) -> list[tuple[str, int, bool]]:
    """(imported spikec module, line, at import time) for every import statement in `module` that
    runs; "at import time": not inside a function."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def visit(node: ast.AST, now: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, now)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            now = False
        if isinstance(node, ast.Import):
            found.extend((a.name, node.lineno, now) for a in node.names if a.name.split(".")[0] == "spikec")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] == "spikec":
                for alias in node.names:   # `from pkg import submodule` imports the submodule
                    sub = f"{base}.{alias.name}"
                    found.append((sub if sub in MODULES else base, node.lineno, now))
        for child in ast.iter_child_nodes(node):
            visit(child, now)

    visit(ast.parse(path.read_text(), str(path)), True)
    return found


GRAPH = {m: imports(m) for m in MODULES}


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_module_imports_a_higher_layer():
    upward = [f"{m}:{line} imports {target} ({LAYERS[layer_of(target)][0]} is above "
              f"{LAYERS[layer_of(m)][0]})"
              for m, targets in GRAPH.items() for target, line, _ in targets
              if target in MODULES and layer_of(target) > layer_of(m)]
    assert not upward, "\n".join(upward)


def test_imported_modules_exist():
    missing = [f"{m}:{line} imports {t}" for m, ts in GRAPH.items() for t, line, _ in ts if t not in MODULES]
    assert not missing, "\n".join(missing)


def find_cycle(graph: dict[str, list[str]]) -> list[str] | None:
    """One cycle of the directed graph as [a, b, ..., a], or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (cycle := dfs(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := dfs(node)):
            return cycle
    return None


def test_no_import_time_cycles():
    edges = {m: sorted({t for t, _, now in ts if now and t in MODULES and t != m}) for m, ts in GRAPH.items()}
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


@pytest.mark.parametrize("graph, cyclic", [
    ({"a": ["b"], "b": ["c"], "c": []}, False),
    ({"a": ["b"], "b": ["c"], "c": ["a"]}, True),
    ({"a": ["a2"], "a2": [], "b": ["a", "b"]}, True),
])
def test_find_cycle_finds_cycles(graph, cyclic):
    assert (find_cycle(graph) is not None) == cyclic


def test_layer_order_is_checked():
    """The checker itself: an upward edge in the table's order is one."""
    assert layer_of("spikec.ir.graph") < layer_of("spikec.compiler.report") < layer_of("spikec")
    assert layer_of("spikec.backends.torch.ops") < layer_of("spikec.conversion.ftbc") < layer_of("spikec.cli")
