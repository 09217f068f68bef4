"""The package's import graph has no cycle: every import statement counts, at module level or
inside a function (read with ast, so a cycle hidden in a deferred import is found too)."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = "transient_ridge"


def _modules(root: Path) -> dict[str, Path]:
    """Dotted module name → file, for every module of the package (``pkg/__init__.py`` is ``pkg``)."""
    modules = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _edges(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports anywhere in its file.

    ``from .a import b`` counts as importing ``a`` and, when ``a.b`` is a module, ``a.b``.
    Importing ``a.b`` also runs ``a/__init__.py``, but that implicit edge is not counted:
    a package that re-exports its submodules would otherwise always be its own cycle.
    """
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            targets = [source] + [f"{source}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {target for target in targets if target in modules and target != name}
    return found


def import_graph(root: Path = REPO) -> dict[str, set[str]]:
    modules = _modules(root)
    return {name: _edges(name, path, modules) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, …, a]``, or ``None`` (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_the_cycle_finder_finds_a_cycle_through_a_deferred_import(tmp_path):
    package = tmp_path / PACKAGE
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from .sub import helper\n")
    (package / "sub" / "__init__.py").write_text("from .helper import f\n")
    (package / "sub" / "helper.py").write_text("def f():\n    from ..a import g  # deferred: still a cycle\n")
    graph = import_graph(tmp_path)
    assert graph[f"{PACKAGE}.a"] == {f"{PACKAGE}.sub", f"{PACKAGE}.sub.helper"}
    assert graph[f"{PACKAGE}.sub.helper"] == {f"{PACKAGE}.a"}
    cycle = find_cycle(graph)
    assert cycle is not None and cycle[0] == cycle[-1] and f"{PACKAGE}.a" in cycle
    (package / "sub" / "helper.py").write_text("def f():\n    import numpy\n")
    assert find_cycle(import_graph(tmp_path)) is None


def test_the_package_imports_form_no_cycle():
    graph = import_graph()
    assert f"{PACKAGE}.claims._account" in graph and f"{PACKAGE}.llc._stage" in graph  # the walk sees the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_llc_package_never_imports_the_claims():
    graph = import_graph()
    llc = {name for name in graph if name == f"{PACKAGE}.llc" or name.startswith(f"{PACKAGE}.llc.")}
    reached, todo = set(), list(llc)
    while todo:
        for target in graph[todo.pop()] - reached:
            reached.add(target)
            todo.append(target)
    assert not {name for name in reached if name.startswith(f"{PACKAGE}.claims")}, sorted(reached)
    assert f"{PACKAGE}.plotting" not in reached
