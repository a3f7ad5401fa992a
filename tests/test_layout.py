"""The package layout holds (docs/development.md "Code map"): the root keeps only the leaves everything uses
(at most 12 modules); each concern is a package whose ``__init__`` says what it owns and what it
may import; imports point down the layers below (imports inside functions and under
TYPE_CHECKING count); no import cycle; no module grows past 500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "sagactl"
ROOT = "sagactl (root modules)"

# What each part of the package may import besides itself: the layers, bottom up. A part is a
# package of sagactl, or ROOT for the modules at the package root.
MAY_IMPORT: dict[str, set[str]] = {
    ROOT: set(),
    "definitions": {ROOT},
    "tracing": {ROOT},
    "dlq": {ROOT, "tracing"},
    "store": {ROOT, "definitions"},
    "transports": {ROOT, "definitions"},
    "engine": {ROOT, "definitions", "store", "transports", "tracing"},
    "tools": {ROOT, "definitions", "store", "dlq"},
    "views": {ROOT, "definitions", "tools", "dlq"},
    "ops": {ROOT, "definitions", "dlq", "store", "transports", "engine", "tools", "views", "tracing"},
    "cli": {ROOT, "definitions", "dlq", "store", "transports", "engine", "tools", "views", "ops", "ui", "tracing"},
    "ui": {ROOT, "definitions", "dlq", "store", "transports", "engine", "tools", "views", "ops"},
}
MAX_ROOT_MODULES = 12
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
PACKAGES = sorted(p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists())


def part(name: str) -> str:
    """The part of the package a module belongs to: its first package below sagactl, or ROOT.
    ``sagactl`` itself (the package's __init__, which holds the version) is a root module."""
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in PACKAGES) else ROOT


def test_every_part_has_its_rule() -> None:
    assert set(PACKAGES) | {ROOT} == set(MAY_IMPORT), "new package: its MAY_IMPORT line, its row in docs/development.md"


def test_the_root_keeps_only_the_leaves() -> None:
    root = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(root) <= MAX_ROOT_MODULES, f"{len(root)} modules at the package root: {root}"


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_says_what_it_owns_and_may_import(package: str) -> None:
    doc = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text("utf-8"))) or ""
    assert "May import:" in doc, f"sagactl/{package}/__init__.py: say what it owns and what it may import"
    modules = sorted(p.stem for p in (PACKAGE / package).glob("*.py") if p.stem != "__init__")
    unlisted = [m for m in modules if f"{m}.py" not in doc]
    assert not unlisted, f"sagactl/{package}/__init__.py does not say what {unlisted} own"


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


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n not in ("sagactl.__main__",)))
def test_imports_point_down(name: str) -> None:
    """``sagactl.__main__`` is the one exception: it starts the command line."""
    mine = part(name)
    upward = sorted(m for m in GRAPH[name] if part(m) != mine and part(m) not in MAY_IMPORT[mine])
    assert not upward, f"{name} ({mine}) imports {upward}; it may import {sorted(MAY_IMPORT[mine])}"


def test_the_rules_the_issue_names_hold_in_the_table() -> None:
    """The rules people rely on, spelled out: views never import store or transports; engine
    never imports views, tools, ops or cli; nothing below ops imports ops or cli (cli and ui,
    the two faces, sit on top of ops)."""
    assert not MAY_IMPORT["views"] & {"store", "transports", "ops", "cli"}
    assert not MAY_IMPORT["engine"] & {"views", "tools", "ops", "cli"}
    assert "cli" not in MAY_IMPORT["ui"]
    below_ops = [p for p in MAY_IMPORT if p not in ("ops", "cli", "ui")]
    assert all(not MAY_IMPORT[p] & {"ops", "cli"} for p in below_ops)


@pytest.mark.parametrize("name", LEAVES)
def test_leaves_import_nothing_of_sagactl(name: str) -> None:
    assert not GRAPH[name], f"{name} imports {sorted(GRAPH[name])}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_over_500_lines(name: str) -> None:
    lines = len(MODULES[name].read_text("utf-8").splitlines())
    assert lines <= 500, f"{name} has {lines} lines: split it along the layout in 'Code map' of docs/development.md"
