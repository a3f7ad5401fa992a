"""The package layout holds: no import cycle inside sagactl (imports inside functions count),
lower layers never import upper ones, no module grows past 500 lines (README "Code map")."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sagactl"

# what each lower layer may never import, at any depth of the module or inside a function
UPPER = (
    "sagactl.cli",
    "sagactl.ops",
    "sagactl.views",
    "sagactl.dlq_views",
    "sagactl.tool_views",
    "sagactl.history_views",
    "sagactl.bulk_views",
    "sagactl.output",
    "sagactl.live",
)
LOWER = (
    "sagactl.store",
    "sagactl.transports",
    "sagactl.dlq",
    "sagactl.engine",
    "sagactl.driver",
    "sagactl.lease",
    "sagactl.inspect",
    "sagactl.retention",
    "sagactl.migration",
    "sagactl.definition",
    "sagactl.validation",
    "sagactl.placeholders",
    "sagactl.config",
    "sagactl.aws",
    "sagactl.selectors",
    "sagactl.groups",
)
LEAVES = ("sagactl.errors", "sagactl.masking", "sagactl.clock", "sagactl.codec", "sagactl.yamlsafe")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Every sagactl module ``path`` imports (``from sagactl.x import y`` counts as sagactl.x,
    or sagactl.x.y when that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("sagactl"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sagactl"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
GRAPH = {name: imports_of(path) - {name} for name, path in MODULES.items()}


def within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def test_no_import_cycle() -> None:
    # a package's __init__ is what importing any of its modules runs first
    def edges(name: str) -> set[str]:
        return {m for m in GRAPH.get(name, set()) if m in MODULES}

    state: dict[str, int] = {}
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target in sorted(edges(name)):
            if state.get(target) == 1:
                cycle = [*path[path.index(target) :], target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target)
        path.pop()
        state[name] = 2

    for name in sorted(MODULES):
        if name not in state:
            visit(name)


@pytest.mark.parametrize("name", sorted(n for n in MODULES if within(n, LOWER)))
def test_lower_layers_never_import_upper_ones(name: str) -> None:
    upward = sorted(m for m in GRAPH[name] if within(m, UPPER))
    assert not upward, f"{name} imports {upward}"


@pytest.mark.parametrize("name", LEAVES)
def test_leaves_import_nothing_of_sagactl(name: str) -> None:
    assert not GRAPH[name], f"{name} imports {sorted(GRAPH[name])}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_over_500_lines(name: str) -> None:
    lines = len(MODULES[name].read_text("utf-8").splitlines())
    assert lines <= 500, f"{name} has {lines} lines: split it along the layout in README 'Code map'"
