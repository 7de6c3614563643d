"""The package's shape: no import cycle anywhere in `registrator/` (the layers are
lint-imports' contracts in pyproject.toml, run by scripts/test.sh)."""

from __future__ import annotations

import grimp


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
