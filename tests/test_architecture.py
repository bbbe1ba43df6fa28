"""The layering of tuneshift, checked from the source (docs/architecture.md, "Rooms").

Every module of ``tuneshift/`` belongs to one room; rooms are ordered from low to high and a module
may import only modules of its own room or of lower rooms. The module import graph, built from
every ``import`` statement in the source (module level, function level and ``TYPE_CHECKING``
blocks alike: a cycle hidden in a function-level import is still a cycle), must have no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "tuneshift"

#: low -> high. A module's room is its first package under tuneshift/ (a top-level module such as
#: tuneshift/errors.py is in "root"); __main__ is the program's entry and sits with cli.
ROOMS = ["root", "models", "data", "methods", "storage", "stats", "tuning", "reports", "pipelines", "cli"]
ROOT_MODULES = {
    "__init__",
    "_version",
    "errors",
    "files",
    "interrupts",
    "progress",
    "threads",
    "results",
    "registry",
    "numbers",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PKG.rglob("*.py")}


def import_graph() -> dict[str, set[str]]:
    """``{module: {imported tuneshift modules}}`` from every import statement of the source.

    ``from X import name`` counts as an import of ``X.name`` when that is a module, else of ``X``;
    relative imports are resolved against the importing module's package.
    """
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    src = ".".join(base + ([node.module] if node.module else []))
                else:
                    src = node.module or ""
                targets = [f"{src}.{a.name}" if f"{src}.{a.name}" in mods else src for a in node.names]
            for t in targets:
                if t.split(".")[0] != "tuneshift":
                    continue
                while t not in mods and "." in t:  # `import tuneshift.x.y` of a name inside a module
                    t = t.rpartition(".")[0]
                if t != mod:
                    graph[mod].add(t)
    return graph


def room_of(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ROOT_MODULES:
        return "root"
    if parts[1] == "__main__":
        return "cli"
    return parts[1]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        x = stack.pop()
                        on_stack.discard(x)
                        comp.append(x)
                        if x == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
                continue
            if w not in index:
                index[w] = low[w] = counter
                counter += 1
                stack.append(w)
                on_stack.add(w)
                work.append((w, iter(sorted(graph.get(w, ())))))
            elif w in on_stack:
                low[v] = min(low[v], index[w])
    return out


def test_every_module_is_in_a_known_room():
    unknown = sorted(m for m in _modules() if room_of(m) not in ROOMS)
    assert unknown == [], f"modules outside the rooms {ROOMS}: {unknown}"


def test_no_import_cycle():
    assert _cycles(import_graph()) == []


def test_no_import_from_a_lower_room_to_a_higher_one():
    rank = {r: i for i, r in enumerate(ROOMS)}
    upward = sorted(
        f"{a} ({room_of(a)}) -> {b} ({room_of(b)})"
        for a, bs in import_graph().items()
        for b in bs
        if rank[room_of(b)] > rank[room_of(a)]
    )
    assert upward == [], "imports from a lower room to a higher one:\n" + "\n".join(upward)


def test_the_checker_sees_function_level_imports_and_cycles(tmp_path):
    """The graph builder itself: a function-level import is an edge and a 2-cycle is found."""
    g = {"tuneshift.a": {"tuneshift.b"}, "tuneshift.b": {"tuneshift.a"}, "tuneshift.c": {"tuneshift.a"}}
    assert _cycles(g) == [["tuneshift.a", "tuneshift.b"]]
    graph = import_graph()
    # reports/html/__init__.py imports the package version inside tuneshift (a known, allowed edge
    # at module level); every module appears in the graph
    assert set(graph) == set(_modules())
    src = ast.parse("def f():\n    from tuneshift.reports import formatting\n")
    assert any(isinstance(n, ast.ImportFrom) for n in ast.walk(src))


def test_the_library_never_imports_the_cli():
    offenders = sorted(
        a for a, bs in import_graph().items() if room_of(a) != "cli" and any(room_of(b) == "cli" for b in bs)
    )
    assert offenders == []
