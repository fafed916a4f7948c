"""The library's layout: sub-packages by stage over a small core, imports pointing down only.

Every ``import`` of a kdutils module is read with ``ast`` (:mod:`kdutils.study.source`, which the
cache keys use too), also those inside functions, so an import placed in a function to hide a
cycle is seen like any other.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from kdutils.study import source

# The units of the layout, bottom first. A unit imports units of a lower rank and its own modules,
# never a unit of its rank or above: study/ (the run's spine) imports no stage package, a stage
# imports study/, the shared modules and the stages below it.
RANKS = {
    "study": 0,
    "metrics": 1, "stats": 1, "plots": 1, "progress": 1, "machine": 1, "host": 1.5,
    "data": 2,
    "student": 3,
    "inference": 4,
    "teacher": 5,
    "serving": 6,
    "report": 7,
    "manifest": 7.5,
    "pipeline": 8, "predict": 8,
}
MAX_LAYERS = 7


@cache
def modules() -> dict[str, Path]:
    return source.modules()


@cache
def imports(name: str) -> set[str]:
    """The kdutils modules ``name`` imports anywhere in its source (module level or in functions)."""
    return source.imports(name)


def unit(name: str) -> str:
    return source.sub_package(name)


def test_every_module_is_in_a_unit_of_the_layout() -> None:
    assert {unit(m) for m in modules() if m != "kdutils"} <= set(RANKS)


def test_no_import_cycles() -> None:
    graph = {m: imports(m) for m in modules()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_imports_point_down_the_layout() -> None:
    wrong = []
    for m in modules():
        if m == "kdutils":
            continue
        for n in imports(m):
            if n == "kdutils":
                continue
            if unit(n) != unit(m) and RANKS[unit(n)] >= RANKS[unit(m)]:
                wrong.append(f"{m} imports {n}")
    assert not wrong, "\n".join(sorted(wrong))


def test_at_most_seven_layers_from_the_pipeline_down() -> None:
    graph: dict[str, set[str]] = {}
    for m in modules():
        if m != "kdutils":
            graph.setdefault(unit(m), set()).update(unit(n) for n in imports(m) if n != "kdutils" and unit(n) != unit(m))

    @cache
    def depth(u: str) -> int:
        return 1 + max((depth(v) for v in graph[u]), default=0)

    assert depth("pipeline") <= MAX_LAYERS, {u: depth(u) for u in graph}
