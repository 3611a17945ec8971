"""The package's shape: no import cycles between ftkit's modules, and no module grown past ~450 lines."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "ftkit"
MAX_LINES = 450


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def module_level_imports(module: str) -> set[str]:
    """ftkit modules that ``module`` imports when it is imported (not those imported inside functions)."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in tree.body:  # top-level statements only: an import inside a function runs later, if ever
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue  # for annotations only: never imported when the program runs
        stmts = list(ast.walk(node)) if isinstance(node, (ast.If, ast.Try)) else [node]
        for stmt in stmts:
            if isinstance(stmt, ast.Import):
                found.update(alias.name for alias in stmt.names)
            elif isinstance(stmt, ast.ImportFrom):
                target = _resolve(module, path.name == "__init__.py", stmt)
                names = [f"{target}.{alias.name}" for alias in stmt.names]
                submodules = [name for name in names if name in MODULES]  # `from . import shapes`
                found.update(submodules)
                if len(submodules) < len(names):  # a name defined in ``target`` itself
                    found.add(target)
    return {name for name in found if name in MODULES and name != module}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import cycle of ``graph``, each as a path that ends where it starts."""
    found, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_relative_imports_and_not_type_checking_ones():
    assert "ftkit.config_sections" in module_level_imports("ftkit.config")
    assert "ftkit.shapes.parts" in module_level_imports("ftkit.methods._base")
    assert "ftkit.supervise" in module_level_imports("ftkit.run")  # `from . import supervise`
    assert "ftkit.controller" not in module_level_imports("ftkit.run")  # under `if TYPE_CHECKING:`


def test_no_import_cycle_between_ftkit_modules():
    graph = {name: module_level_imports(name) for name in MODULES}
    found = cycles(graph)
    assert not found, "import cycles: " + "; ".join(" -> ".join(c) for c in found)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_over_450_lines(module):
    lines = len(MODULES[module].read_text().splitlines())
    assert lines <= MAX_LINES, f"{module} has {lines} lines; split it along its jobs (at most {MAX_LINES})"
