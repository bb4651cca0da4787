"""The file tree reads as the architecture: project modules import each other without cycles, and the
processes that run jobs (workers, the scheduler, every app's `kinds`) never load the admin.

The imports are read from the source, every one of them, at module level or inside a function, except
in an AppConfig's `ready()` (where apps plug into each other once all are loaded) and inside the
handlers of `kinds` modules (which run in a worker, after start-up), for cycles; what a worker loads
includes what its handlers import.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.support import ROOT

PACKAGES = ("config", "jobs", "reports", "tenants")
# What a worker or the scheduler process loads: the RQ entry points and every kinds module (autodiscovered).
PROCESS_ENTRY_POINTS = ("jobs.tasks", "jobs.workers", "jobs.scheduler_process")


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports_of(name: str, path: Path, modules: dict[str, Path], *, handlers: bool) -> set[str]:
    """The project modules `name` imports, wherever in the file, but in `ready()` and, unless `handlers`,
    inside the functions of a kinds module."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in _import_nodes(tree, skip_functions=not handlers and name.rsplit(".", 1)[-1] == "kinds"):
        for target in _targets(node, name, path):
            module = _project_module(target, modules)
            if module is not None and module != name:
                found.add(module)
    return found


def _import_nodes(tree: ast.AST, *, skip_functions: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    def walk(node: ast.AST, in_function: bool) -> Iterator[ast.Import | ast.ImportFrom]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if child.name == "ready" or skip_functions:
                    continue
                yield from walk(child, True)
            elif isinstance(child, (ast.Import, ast.ImportFrom)):
                yield child
            else:
                yield from walk(child, in_function)

    yield from walk(tree, False)


def _targets(node: ast.Import | ast.ImportFrom, name: str, path: Path) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
        package = package[: len(package) - (node.level - 1)]
        base = ".".join([*package, base] if base else package)
    # `from a import b` imports the module a.b when there is one, else a name from a.
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def _project_module(target: str, modules: dict[str, Path]) -> str | None:
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def import_graph(*, handlers: bool = False) -> dict[str, set[str]]:
    """Module -> the project modules it imports. `handlers`: with what job handlers import when they run."""
    modules = project_modules()
    graph = {name: imports_of(name, path, modules, handlers=handlers) for name, path in modules.items()}
    # `from a import b` counts for a.b (when it exists), not also for a: a's own lines are read anyway.
    for name, targets in graph.items():
        submodules = {target for target in targets if any(other.startswith(target + ".") for other in targets)}
        graph[name] = targets - submodules
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
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
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def loaded_by(graph: dict[str, set[str]], roots: list[str]) -> set[str]:
    seen, todo = set(), list(roots)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo.extend(graph.get(module, ()))
    return seen


def test_project_modules_import_each_other_without_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_workers_and_the_scheduler_never_load_the_admin():
    graph = import_graph(handlers=True)  # a worker runs the handlers too
    roots = [*PROCESS_ENTRY_POINTS, *(name for name in graph if name.rsplit(".", 1)[-1] == "kinds")]
    assert set(PROCESS_ENTRY_POINTS) <= set(graph)
    admin = {name for name in loaded_by(graph, roots)
             if "admin" in name.split(".")[-1] or name in ("jobs.dashboard", "config.urls")}
    assert admin == set()
