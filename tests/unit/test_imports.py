"""The package's shape: no import cycle between its files and no file over 400 lines.

Every import counts - at the top, inside functions (deferred) and under ``if TYPE_CHECKING:`` -
because a cycle that only shows at type-checking or call time is still two modules that cannot be
read, tested or moved apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "rankbias_tui"
MAX_LINES = 400
# Known offenders owned by other work in progress.
# The lead empties these once those parts land; an entry that no longer offends fails the test, so
# the lists cannot go stale.
KNOWN_CYCLES: set[frozenset[str]] = set()
KNOWN_LONG: set[str] = set()


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, name: str, modules: set[str]) -> set[str]:
    """The package's modules that ``path`` (module ``name``) imports, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                target = node.module or ""
            else:
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                target = f"{base}.{node.module}" if node.module else base
            for alias in node.names:  # ``from . import x``: x may be a submodule, not a name
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in modules else target or "")
    return {m for m in found if m in modules and m != name}


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    modules = set(files)
    return {name: imported(path, name, modules) for name, path in files.items()}


def cycles(edges: dict[str, set[str]]) -> set[frozenset[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: set[frozenset[str]] = set()

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in edges[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                top = stack.pop()
                component.add(top)
                if top == node:
                    break
            if len(component) > 1:
                found.add(frozenset(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_deferred_and_type_checking_imports() -> None:
    edges = graph()
    assert "rankbias_tui.engine.worker" in edges["rankbias_tui.scheduler.local"]  # deferred
    assert "rankbias_tui.tui.screens.dashboard" in edges["rankbias_tui.tui.app"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == {frozenset("abc")}


def test_no_import_cycle() -> None:
    found = cycles(graph())
    assert found - KNOWN_CYCLES == set(), sorted(sorted(c) for c in found - KNOWN_CYCLES)
    assert KNOWN_CYCLES <= found, "a known cycle is gone: remove it from KNOWN_CYCLES"


def test_no_module_over_400_lines() -> None:
    long = {
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.rglob("*.py")
        if len(p.read_text().splitlines()) > MAX_LINES
    }
    assert long - KNOWN_LONG == set(), sorted(long - KNOWN_LONG)
    assert KNOWN_LONG <= long, "a known long module is short now: remove it from KNOWN_LONG"


def test_the_scheduler_is_used_through_its_package_only() -> None:
    """Outside ``rankbias_tui.scheduler``, what the CLI and the app use is what its ``__init__``
    exports (the client API, the options, the foreground Scheduler), never a submodule."""
    inside = "rankbias_tui.scheduler"
    reaching_in = {
        f"{name} -> {target}"
        for name, targets in graph().items()
        if not name.startswith(inside)
        for target in targets
        if target.startswith(inside + ".")
    }
    assert reaching_in == set()


def test_the_store_is_used_through_its_package_only() -> None:
    """Outside ``rankbias_tui.store``, code uses what ``store/__init__`` exports (and the stdlib-only
    ``store.owner``), never the connection, rows or schema modules (the last round's faults.py
    reached around the store into its opening code)."""
    inside = "rankbias_tui.store"
    allowed = {"rankbias_tui.store.owner"}
    reaching_in = {
        f"{name} -> {target}"
        for name, targets in graph().items()
        if not name.startswith(inside)
        for target in targets
        if target.startswith(inside + ".") and target not in allowed
    }
    assert reaching_in == set()


# The layers, top to bottom: a module may import its own layer's package and any layer below it,
# never one above; packages that share a layer do not import each other.
LAYERS: list[set[str]] = [
    {"cli"},
    {"tui"},
    {"report"},
    {"figures"},
    {"claims", "export", "scheduler"},
    {"engine", "store"},  # the engine trains and never writes results: the scheduler does
    {"checkpoints", "eta"},
    {"sweep"},
    {"spec", "protocol", "measures", "provenance", "track"},
    {"catalog", "display"},  # the models and data sets, and how text reads: the spec reads both
    {"references"},  # a user's "module:callable": the catalog's row for it and the spec's check
]


def layer_of(module: str) -> str:
    """``rankbias_tui.scheduler.hosts`` -> ``scheduler``; ``rankbias_tui.spec`` -> ``spec``."""
    return module.split(".")[1]


def layer_violations(edges: dict[str, set[str]]) -> set[str]:
    rank = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    bad = set()
    for name, targets in edges.items():
        for target in targets:
            a, b = layer_of(name), layer_of(target)
            if a != b and rank[a] >= rank[b]:
                bad.add(f"{name} -> {target} ({a} may not import {b})")
    return bad


def test_every_top_level_module_and_package_has_a_layer() -> None:
    names = {layer_of(m) for m in graph() if m != "rankbias_tui"}
    assert names == set().union(*LAYERS), names ^ set().union(*LAYERS)


def test_no_layer_imports_one_above_it_or_beside_it() -> None:
    edges = {name: targets for name, targets in graph().items() if name != "rankbias_tui"}
    assert layer_violations(edges) == set()
    # the check itself: an engine module importing the store is caught, as is claims -> export
    assert layer_violations({"rankbias_tui.engine.x": {"rankbias_tui.store"}})
    assert layer_violations({"rankbias_tui.claims.x": {"rankbias_tui.export"}})
