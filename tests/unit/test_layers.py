"""The package's shape: no import cycle anywhere in `registrator/`, and small pieces (the
layers are lint-imports' contracts in pyproject.toml, run by scripts/test.sh)."""

from __future__ import annotations

import ast
import statistics
from pathlib import Path

import grimp

import registrator

PACKAGE = Path(registrator.__file__).parent


def _cycle(graph: grimp.ImportGraph) -> list[str]:
    """One import cycle among `graph`'s modules, or [] when there is none (depth-first)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(module: str) -> list[str]:
        state[module] = 1
        path.append(module)
        for imported in sorted(graph.find_modules_directly_imported_by(module)):
            if state.get(imported) == 1:
                return [*path[path.index(imported) :], imported]
            if imported not in state and (found := visit(imported)):
                return found
        path.pop()
        state[module] = 2
        return []

    for module in sorted(graph.modules):
        if module not in state and (found := visit(module)):
            return found
    return []


def test_no_import_cycle_in_the_package() -> None:
    assert _cycle(grimp.build_graph("registrator")) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = grimp.ImportGraph()
    for module in ("a", "b", "c"):
        graph.add_module(module)
    graph.add_import(importer="a", imported="b")
    graph.add_import(importer="b", imported="c")
    graph.add_import(importer="c", imported="a")
    assert _cycle(graph) == ["a", "b", "c", "a"]


def _sizes() -> tuple[list[tuple[int, str]], list[tuple[int, str]], list[tuple[int, str]]]:
    """(lines, where) of every function, class and module of the package."""
    functions, classes, modules = [], [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = path.read_text()
        modules.append((len(source.splitlines()), str(path)))
        for node in ast.walk(ast.parse(source)):
            size = (getattr(node, "end_lineno", 0) or 0) - getattr(node, "lineno", 0) + 1
            where = f"{path}:{getattr(node, 'name', '')}"
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                functions.append((size, where))
            elif isinstance(node, ast.ClassDef):
                classes.append((size, where))
    return functions, classes, modules


def test_small_things() -> None:
    """style.md: median function about 10 lines, none over 40, classes up to 200 lines,
    modules up to 300."""
    functions, classes, modules = _sizes()

    assert statistics.median(size for size, _ in functions) <= 10
    assert [f for f in functions if f[0] > 40] == []
    assert [c for c in classes if c[0] > 200] == []
    assert [m for m in modules if m[0] > 300] == []
