"""SQL for a foreign table, built from pieces that either dialect renders: SQL text written here
in sagactl, identifiers (always quoted, never interpreted) and values (always bound parameters).

    sql("SELECT {} FROM {} WHERE {} < {}", Ident("id"), Ident("dbos", "workflow_status"),
        Ident("updated_at"), Param(1796574795494))

renders as ``SELECT "id" FROM "dbos"."workflow_status" WHERE "updated_at" < %s`` for psycopg
(``?`` for sqlite3), with ``[1796574795494]``. A ``%`` anywhere in the text (an identifier may
hold one) is doubled for psycopg, whose placeholders start with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

Dialect = Literal["postgres", "sqlite"]


@dataclass(frozen=True, slots=True)
class Ident:
    """A possibly schema-qualified name, quoted part by part."""

    names: tuple[str, ...]

    def __init__(self, *names: str) -> None:
        object.__setattr__(self, "names", tuple(names))


@dataclass(frozen=True, slots=True)
class Param:
    """A value, sent as a bound parameter."""

    value: Any


@dataclass(frozen=True, slots=True)
class Sql:
    """A piece of a statement: text, identifiers, parameters and nested pieces, in order."""

    parts: tuple[str | Ident | Param | Sql, ...]

    def __add__(self, other: Sql | str) -> Sql:
        return Sql((*self.parts, other))

    def render(self, dialect: Dialect) -> tuple[str, list[Any]]:
        """The statement text and its parameters, for ``dialect``'s driver."""
        text: list[str] = []
        params: list[Any] = []
        self._render(dialect, text, params)
        return "".join(text), params

    def _render(self, dialect: Dialect, text: list[str], params: list[Any]) -> None:
        for part in self.parts:
            if isinstance(part, Sql):
                part._render(dialect, text, params)
            elif isinstance(part, Param):
                text.append("%s" if dialect == "postgres" else "?")
                params.append(part.value)
            else:
                raw = ".".join(quote(n) for n in part.names) if isinstance(part, Ident) else part
                text.append(raw.replace("%", "%%") if dialect == "postgres" else raw)


def quote(name: str) -> str:
    """``name`` as a quoted identifier (both dialects: double quotes, inner ones doubled)."""
    return '"' + name.replace('"', '""') + '"'


def sql(template: str, *args: str | Ident | Param | Sql) -> Sql:
    """``template`` with each ``{}`` replaced by the next argument (a ``str`` argument is SQL
    text written in sagactl, never a value)."""
    chunks = template.split("{}")
    if len(chunks) != len(args) + 1:
        raise ValueError(f"{template!r} takes {len(chunks) - 1} pieces, got {len(args)}")
    parts: list[str | Ident | Param | Sql] = [chunks[0]]
    for arg, chunk in zip(args, chunks[1:], strict=True):
        parts += [arg, chunk]
    return Sql(tuple(p for p in parts if p != ""))


def join(separator: str, pieces: Iterable[str | Ident | Param | Sql]) -> Sql:
    """``pieces`` with ``separator`` (SQL text) between them."""
    parts: list[str | Ident | Param | Sql] = []
    for index, piece in enumerate(pieces):
        if index:
            parts.append(separator)
        parts.append(piece)
    return Sql(tuple(parts))


def params(values: Iterable[Any]) -> Sql:
    """``?, ?, ?``: one bound parameter per value, for an IN list."""
    return join(", ", (Param(v) for v in values))
