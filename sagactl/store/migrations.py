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
    """Split a schema file on ';' at line ends; comment-only pieces are dropped. A piece inside
    a body (PostgreSQL ``$$ … $$``, SQLite ``CREATE TRIGGER … BEGIN … END``) is joined to the
    next until the statement is whole."""
    pieces: list[str] = []
    pending = ""
    for chunk in sql.split(";\n"):
        pending = f"{pending};\n{chunk}" if pending else chunk
        if _open_body(pending):
            continue
        lines = [ln for ln in pending.splitlines() if not ln.strip().startswith("--")]
        statement = "\n".join(lines).strip().rstrip(";")
        pending = ""
        if statement:
            pieces.append(statement)
    if pending.strip():
        raise ValueError(f"unterminated statement in schema file: {pending.strip()[:60]!r}")
    return tuple(pieces)


def _open_body(text: str) -> bool:
    """True inside a dollar-quoted body or a trigger body that has not reached its END."""
    code = "\n".join(ln for ln in text.splitlines() if not ln.strip().startswith("--"))
    if code.count("$$") % 2:
        return True
    words = code.upper().split()
    return words[:2] == ["CREATE", "TRIGGER"] and "BEGIN" in words and words[-1].rstrip(";") != "END"
