"""Imports run one way: a module may import its own layer or the layers below, never above, and no circle.

Read from the source with :mod:`ast`, so imports inside functions count too (they hide a circle from Python
but not from a reader), while imports under ``if TYPE_CHECKING:`` do not (they never run).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "pyterrier_hybrid"

# Top to bottom. A module's layer is that of its longest matching prefix (dotted, below the package).
LAYERS: list[tuple[str, ...]] = [
    ("__init__", "_plugin", "cli", "cli_tools", "study", "protocol", "curves", "plots", "sharding"),  # entry, studies
    ("training", "evaluation"),  # fit a model; evaluate a grid
    ("encoding", "index", "ann", "bm25", "fusion", "lir", "measures", "named_measures", "_trec"),  # retrieval, measures
    ("datasets",),  # entries, readers, pairs, noisy queries
    ("noise", "languages", "_checks", "_io", "_packages", "offline", "models"),  # text → text, rules, files
]


def module_name(path: Path) -> str:
    """Dotted name of ``path`` below the package (``datasets.beir``; the package itself is ``__init__``)."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` (0 is the top) of the longest prefix of ``module`` named there."""
    best: tuple[int, int] | None = None
    for i, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and (best is None or len(name) > best[1]):
                best = (i, len(name))
    if best is None:
        raise AssertionError(f"module pyterrier_hybrid.{module} is in no layer; add it to LAYERS in {__file__}")
    return best[0]


def _runtime_nodes(tree: ast.AST):
    """Every node except those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            stack.extend(node.orelse)
            continue
        yield node
        stack.extend(ast.iter_child_nodes(node))


def imports_of(module: str) -> set[str]:
    """The package modules that ``module`` imports at run time (``from . import x`` resolves to module ``x``)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    package_parts = [] if package in ("", "__init__") else package.split(".")
    found: set[str] = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            elif (node.module or "").startswith("pyterrier_hybrid"):
                target = node.module.removeprefix("pyterrier_hybrid").lstrip(".")
            else:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}" if target else alias.name
                found.add(sub if sub in MODULES else (target or "__init__"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("pyterrier_hybrid"):
                    found.add(alias.name.removeprefix("pyterrier_hybrid").lstrip(".") or "__init__")
    return {m for m in found if m != module}


GRAPH: dict[str, set[str]] = {m: imports_of(m) for m in MODULES}


def test_every_import_resolves_to_a_module_of_the_package():
    missing = {m: sorted(t for t in targets if t not in MODULES) for m, targets in GRAPH.items()}
    assert not {m: t for m, t in missing.items() if t}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_a_layer_above_its_own(module):
    upward = sorted(t for t in GRAPH[module] if t in MODULES and layer_of(t) < layer_of(module))
    assert not upward, (f"pyterrier_hybrid.{module} (layer {LAYERS[layer_of(module)]}) imports {upward} "
                        f"from a layer above it")


def test_the_import_graph_has_no_circle():
    # Tarjan's strongly connected components: any component of more than one module is a circle.
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH.get(v, ()):
            if w not in MODULES:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(MODULES):
        if module not in index:
            visit(module)
    assert not circles, f"import circles: {circles}"


def test_the_checker_sees_an_upward_import_inside_a_function(tmp_path):
    # The checker itself: a function-level import from a higher layer is found; a TYPE_CHECKING one is not.
    source = ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..evaluation import GridResult\n"
              "def f():\n    from ..training import HybridTrainer\n")
    tree = ast.parse(source)
    seen = [n.module for n in _runtime_nodes(tree) if isinstance(n, ast.ImportFrom)]
    assert sorted(seen) == ["training", "typing"]
    assert layer_of("training.trainer") < layer_of("datasets.beir") < layer_of("noise.models")
