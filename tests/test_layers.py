"""The package's layers point only down: no import circles, no import from a lower layer to a higher one.

The file-level import graph of ``hf_lodc`` is read with ``ast`` (nothing is imported, so the test is
fast and cannot be fooled by import order): every ``import`` / ``from ... import`` anywhere in a file,
at its top or inside a function, plus ``importlib.import_module("hf_lodc...")`` with a literal name.
Importing ``pkg.mod`` from outside ``pkg`` also runs ``pkg/__init__.py``, so that counts as an import of
``pkg`` when its ``__init__`` imports anything of ours (the root package is the facade on top and runs
first anyway, so it is left out).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "hf_lodc"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# module prefix -> layer; a module's layer is that of its longest matching prefix. A module may import
# from its own layer or any layer below, never from above.
LAYERS: dict[str, int] = {
    # the bottom: no imports of ours, or only errors
    "hf_lodc.errors": 0,
    "hf_lodc.seeding": 0,
    "hf_lodc.version": 0,
    "hf_lodc.atomic": 0,  # every writer (data cache, experts, checkpoints, artefacts) uses it
    "hf_lodc.registry": 1,
    "hf_lodc.data.types": 1,
    "hf_lodc.launch": 1,
    "hf_lodc.data": 2,
    "hf_lodc.models": 3,
    "hf_lodc.synset": 3,
    "hf_lodc.methods": 3,
    "hf_lodc.preflight": 3,
    "hf_lodc.api_inputs": 3,  # the Python API's tensor arguments checked; read by preflight and the engine
    "hf_lodc.training": 4,  # the one training loop, below both the objectives and the engine
    "hf_lodc.objectives": 5,
    "hf_lodc.engine": 6,
    "hf_lodc.export": 7,
    "hf_lodc.published": 7,  # the field's published layouts, normalisations and scores, read by foreign
    "hf_lodc.foreign": 8,
    "hf_lodc.pipeline": 8,
    "hf_lodc.run_checks": 8,  # the orchestrator's checks before any work (need engine, models, export.views)
    "hf_lodc.run_speed": 8,  # the orchestrator's speed choice (reads an artefact from export)
    "hf_lodc.run_condense": 8,  # the orchestrator's road from data to artefact (engine, export, run_speed)
    "hf_lodc.api": 9,
    "hf_lodc.leaderboard": 9,  # rows from foreign reports and hf_lodc sets, pushed through export
    "hf_lodc.continual": 9,
    "hf_lodc": 10,  # the package's __init__: the public facade
}


def _modules(root: Path) -> dict[str, tuple[Path, bool]]:
    """dotted name -> (file, is a package __init__)."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _resolve(name: str, modules) -> str | None:
    """The module of ours that ``name`` (a module or a name inside one) lives in."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imported_names(tree: ast.AST, module: str, is_pkg: bool):
    """Every dotted name imported anywhere in ``tree`` (top level, functions, classes, branches)."""
    base = module if is_pkg else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = base.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                src = ".".join(parts + ([node.module] if node.module else []))
            else:
                src = node.module or ""
            # "from p import x": x is a module of p or a name in p; either way _resolve finds the file
            yield from (src if a.name == "*" else f"{src}.{a.name}" for a in node.names)
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) in ("import_module", "__import__")):
            yield node.args[0].value


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """module -> the modules of ours it imports (file level)."""
    modules = _modules(root)
    direct: dict[str, set[str]] = {}
    for mod, (path, is_pkg) in modules.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = {_resolve(n, modules) for n in _imported_names(tree, mod, is_pkg) if n.split(".")[0] == PACKAGE}
        direct[mod] = {t for t in targets if t and t != mod}
    graph: dict[str, set[str]] = {}
    for mod, targets in direct.items():
        edges = set(targets)
        for t in targets:  # importing pkg.sub.mod from outside pkg.sub runs pkg/sub/__init__.py first
            parent = t.rpartition(".")[0]
            while parent and parent != PACKAGE:
                if not (mod + ".").startswith(parent + ".") and direct.get(parent):
                    edges.add(parent)
                parent = parent.rpartition(".")[0]
        graph[mod] = edges - {mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    component.append(m)
                    if m == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def layer_of(module: str) -> int:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        prefix = ".".join(parts[:i])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(module)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} (layer {layer_of(m)}) imports {t} (layer {layer_of(t)})"
                  for m, targets in graph.items() for t in targets if layer_of(t) > layer_of(m))


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert len(graph) > 60
    assert "hf_lodc.synset.init" in graph["hf_lodc.engine.config_checks"]  # an import inside a function
    assert "hf_lodc.training.loop" in graph["hf_lodc.objectives.gm"]  # a relative "from ..x.y import z"
    assert "hf_lodc.engine" in graph["hf_lodc.foreign.evaluate"]  # the __init__ that "from ..engine.config" runs
    assert "hf_lodc.training" not in graph["hf_lodc.objectives.gm"]  # an __init__ that imports nothing
    assert "hf_lodc.version" in graph["hf_lodc"]  # "from .version import __version__"


def test_every_module_has_a_layer():
    assert [m for m in import_graph() if not m.startswith(PACKAGE)] == []
    for m in import_graph():
        layer_of(m)  # KeyError names a module outside every declared prefix


def test_cycle_finder_finds_circles():
    g = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e2"}, "e2": {"e"}, "f": set()}
    assert sorted(cycles(g)) == [["a", "b", "c"], ["e", "e2"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    assert cycles(import_graph()) == []


def test_imports_point_only_down():
    assert upward_imports(import_graph()) == []
