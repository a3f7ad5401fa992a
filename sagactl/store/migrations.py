"""Versioned schema files shipped in sagactl/store/schema/<dialect>/NNN_name.sql."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def migrations(dialect: str) -> list[Migration]:
    """All migrations for ``dialect`` ("sqlite" or "postgres"), lowest version first."""
    folder = resources.files("sagactl.store").joinpath("schema", dialect)
    found = []
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        version = int(entry.name.split("_", 1)[0])
        found.append(Migration(version, entry.name, split_statements(entry.read_text("utf-8"))))
    return sorted(found, key=lambda m: m.version)


def split_statements(sql: str) -> tuple[str, ...]:
    """Split a schema file on ';' at line ends; comment-only pieces are dropped."""
    pieces = []
    for chunk in sql.split(";\n"):
        lines = [ln for ln in chunk.splitlines() if not ln.strip().startswith("--")]
        statement = "\n".join(lines).strip().rstrip(";")
        if statement:
            pieces.append(statement)
    return tuple(pieces)
