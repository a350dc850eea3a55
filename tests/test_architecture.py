"""The shape of the house (docs/architecture.md): no import cycle, every module in a layer, no
module too long to read.

The layers themselves are the import-linter contract in pyproject.toml, checked by
tests/test_import_hygiene.py; these tests check what that contract cannot say.
"""

from __future__ import annotations

import pkgutil
import sys
import tomllib
from pathlib import Path

import grimp

import agentdesk

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "agentdesk"
LONGEST_MODULE = 800  # lines; past this a module is split by responsibility


def _import_graph():
    return grimp.build_graph("agentdesk", cache_dir=None)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    """The check below can fail: a planted cycle is found, a chain is not."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_no_import_cycle_anywhere():
    # Function-level imports count too: a cycle hidden inside a function is still a cycle.
    graph = _import_graph()
    edges = {module: set(graph.find_modules_directly_imported_by(module)) for module in graph.modules}
    assert _cycles(edges) == []


def _layer_contract() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    (layers,) = [c["layers"] for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]
    return [name.strip() for layer in layers for name in layer.split("|")]


def test_every_top_level_module_has_a_layer():
    placed = set(_layer_contract())
    top_level = {f"agentdesk.{module.name}" for module in pkgutil.iter_modules(agentdesk.__path__)}
    assert sorted(top_level - placed - {"agentdesk.__main__"}) == []


def test_no_module_is_too_long_to_read():
    long = {str(path.relative_to(ROOT)): lines for path in PACKAGE.rglob("*.py")
            if (lines := len(path.read_text(encoding="utf-8").splitlines())) > LONGEST_MODULE}
    assert long == {}


if __name__ == "__main__":  # python tests/test_architecture.py: print the cycles
    graph = _import_graph()
    for cycle in _cycles({m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}):
        print(" <-> ".join(cycle), file=sys.stdout)
