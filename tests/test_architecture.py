"""The shape of the house (docs/architecture.md): no import cycle, every module in a layer, no
module too long to read, no SQL outside agentdesk/store/.

The layers themselves are the import-linter contract in pyproject.toml, checked by
tests/test_import_hygiene.py; these tests check what that contract cannot say.
"""

from __future__ import annotations

import ast
import pkgutil
import re
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
    long = {
        str(path.relative_to(ROOT)): lines
        for path in PACKAGE.rglob("*.py")
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > LONGEST_MODULE
    }
    assert long == {}


# --- SQL lives in store/ only ---------------------------------------------------------------------

STORE = PACKAGE / "store"
# Outside store/ a module may name a Session in a signature (sessions are opened by store.db) and
# import anything for type checking alone; every other name of SQLAlchemy or SQLModel (select,
# update, func, text, the engine, their errors: store.db names those) is a query being built.
ALLOWED_FROM_SQLMODEL = {"Session"}
SQL_PACKAGES = ("sqlalchemy", "sqlmodel")
# The drivers: a raw connection is the store's, as a statement is.
DRIVERS = ("sqlite3", "psycopg")
# What runs a statement, whatever object it is called on: a Session, a Connection, a cursor.
RUNS_SQL = {"exec", "execute", "executemany", "executescript", "exec_driver_sql"}
# A string that is a statement (upper-case keywords, as every statement here is written).
SQL_TEXT = re.compile(
    r"^\s*(SELECT\s|INSERT\s+INTO\s|UPDATE\s+\S+\s+SET\s|DELETE\s+FROM\s|PRAGMA\s|"
    r"BEGIN(\s|$)|COMMIT$|CREATE\s+(TABLE|INDEX|TRIGGER|VIEW)\s|DROP\s)"
)


def _type_checking_only(tree: ast.Module) -> set[int]:
    """Ids of the import nodes inside `if TYPE_CHECKING:` blocks."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            found.update(id(child) for statement in node.body for child in ast.walk(statement))
    return found


def sql_outside_store(source: str) -> list[str]:
    """Each SQL construct in a module's source, as "line N: what"."""
    tree = ast.parse(source)
    typing_only = _type_checking_only(tree)
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in DRIVERS or (top in SQL_PACKAGES and id(node) not in typing_only):
                    found.append((line, f"line {line}: import {alias.name}"))
        elif isinstance(node, ast.ImportFrom) and node.module and id(node) not in typing_only:
            top = node.module.split(".")[0]
            names = {alias.name for alias in node.names}
            if top in DRIVERS or (
                top in SQL_PACKAGES and not (node.module == "sqlmodel" and names <= ALLOWED_FROM_SQLMODEL)
            ):
                found.append((line, f"line {line}: from {node.module} import {', '.join(sorted(names))}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in RUNS_SQL:
            found.append((line, f"line {line}: .{node.func.attr}(…)"))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL_TEXT.match(node.value):
            found.append((line, f"line {line}: {node.value.split()[0]} statement text"))
    return [text for _, text in sorted(found)]


def test_the_sql_finder_finds_sql():
    """The check below can fail: each kind of construct is found, a Session in a signature is not."""
    planted = (
        "from typing import TYPE_CHECKING\n"
        "from sqlmodel import Session, select\n"
        "from sqlalchemy.exc import OperationalError\n"
        "import sqlalchemy\n"
        "if TYPE_CHECKING:\n"
        "    from sqlalchemy.engine import Engine\n"
        "def f(session: Session):\n"
        "    import sqlite3\n"
        "    session.exec(select(1))\n"
        "    session.connection().exec_driver_sql('PRAGMA quick_check')\n"
        "    cursor.executemany('INSERT INTO t (a) VALUES (?)', [])\n"
        "    q = 'UPDATE outbox SET state = 1'\n"
        "    from psycopg import connect\n"
    )
    assert sql_outside_store(planted) == [
        "line 2: from sqlmodel import Session, select",
        "line 3: from sqlalchemy.exc import OperationalError",
        "line 4: import sqlalchemy",
        "line 8: import sqlite3",
        "line 9: .exec(…)",
        "line 10: .exec_driver_sql(…)",
        "line 10: PRAGMA statement text",
        "line 11: .executemany(…)",
        "line 11: INSERT statement text",
        "line 12: UPDATE statement text",
        "line 13: from psycopg import connect",
    ]
    assert sql_outside_store("from sqlmodel import Session\ndef f(session: Session) -> None: ...\n") == []


def test_no_sql_outside_store():
    """Every query, statement, PRAGMA and raw driver connection is defined in agentdesk/store/
    (docs/architecture.md); the rest of the package calls its named functions."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if STORE in path.parents:
            continue
        constructs = sql_outside_store(path.read_text(encoding="utf-8"))
        if constructs:
            found[str(path.relative_to(ROOT))] = constructs
    assert found == {}


if __name__ == "__main__":  # python tests/test_architecture.py: print the cycles
    graph = _import_graph()
    for cycle in _cycles({m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}):
        print(" <-> ".join(cycle), file=sys.stdout)
