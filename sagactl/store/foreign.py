"""A foreign table's database, read-only, on PostgreSQL or SQLite: the connection, the table's
columns with their types (one catalog read), and statements whose failures become one line.

PostgreSQL: a read-only session (SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY), whose
statements are never prepared server-side, so each is planned with its parameters' values and
the framework's partial indexes (``WHERE status IN ('ENQUEUED', 'PENDING')``) can serve.
SQLite: the file opened read-only (``mode=ro``), nothing created or changed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sagactl.errors import UnavailableError, UsageError
from sagactl.masking import mask_dsn
from sagactl.store.fragments import Dialect, Sql, quote


class Kind(StrEnum):
    """What a column holds, as far as sagactl cares."""

    TEXT = "text"
    INTEGER = "integer"
    NUMBER = "number"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"
    JSON = "json"
    UUID = "uuid"
    OTHER = "other"


# PostgreSQL type OIDs
_PG_KINDS = {
    25: Kind.TEXT,
    1043: Kind.TEXT,
    1042: Kind.TEXT,
    19: Kind.TEXT,
    20: Kind.INTEGER,
    21: Kind.INTEGER,
    23: Kind.INTEGER,
    1700: Kind.NUMBER,
    700: Kind.NUMBER,
    701: Kind.NUMBER,
    16: Kind.BOOLEAN,
    1114: Kind.TIMESTAMP,
    1184: Kind.TIMESTAMP,
    114: Kind.JSON,
    3802: Kind.JSON,
    2950: Kind.UUID,
}


def _sqlite_kind(declared: str) -> Kind:
    """A column's kind from its declared type, by SQLite's own affinity rules (and the names
    people write for times, booleans and JSON)."""
    upper = declared.upper()
    if "INT" in upper:
        return Kind.INTEGER
    if "BOOL" in upper:
        return Kind.BOOLEAN
    if any(word in upper for word in ("CHAR", "CLOB", "TEXT")):
        return Kind.TEXT
    if any(word in upper for word in ("TIME", "DATE")):
        return Kind.TIMESTAMP
    if "JSON" in upper:
        return Kind.JSON
    if any(word in upper for word in ("REAL", "FLOA", "DOUB", "NUM", "DEC")):
        return Kind.NUMBER
    return Kind.OTHER


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


@dataclass(frozen=True, slots=True)
class Column:
    """One column of the table: its kind and its type as the database names it."""

    name: str
    kind: Kind
    declared: str


class ForeignDb:
    """A read-only connection to the database ``dsn`` names (postgresql:// or sqlite:///)."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        if dsn.startswith(("postgresql://", "postgres://")):
            from sagactl.store.postgres import connect

            self.dialect: Dialect = "postgres"
            self.location = mask_dsn(dsn)
            self._pg = connect(dsn, read_only=True)
            self._pg.prepare_threshold = None  # planned with its values every time (partial indexes)
        elif dsn.startswith("sqlite://"):
            from sagactl.store.sqlite import open_read_only

            path = dsn.removeprefix("sqlite://")
            path = path[1:] if path.startswith("/") else path
            if not path:
                raise UsageError(f"no file in DSN {dsn!r}", hint="use sqlite:///path/to/file.db")
            self.dialect = "sqlite"
            self.location = path
            hint = "check --dsn / SAGACTL_DSN / the config file"
            self._lite, _ = open_read_only(path, "database", hint, hint)
            # SQLite's own lower() folds ASCII only: states compare in any case as Python folds them
            self._lite.create_function("sagactl_lower", 1, _lower, deterministic=True)
        else:
            raise UsageError(
                f"unsupported DSN {mask_dsn(dsn)!r} for a foreign table",
                hint="use postgresql://user@host/db or sqlite:///path/file.db",
            )

    def close(self) -> None:
        if self.dialect == "postgres":
            self._pg.close()
        else:
            self._lite.close()

    # -- statements ---------------------------------------------------------------------

    def rows(self, statement: Sql, where: str, doing: str) -> list[tuple[Any, ...]]:
        """Every row ``statement`` returns; a failure is one line naming ``where`` and ``doing``."""
        text, params = statement.render(self.dialect)
        with self._failures(where, doing):
            if self.dialect == "postgres":
                return list(self._pg.execute(text, params).fetchall())
            return list(self._lite.execute(text, params).fetchall())

    def explain(self, statement: Sql) -> str:
        """The plan of ``statement`` (tests and benchmarks prove index use with it)."""
        prefix = "EXPLAIN " if self.dialect == "postgres" else "EXPLAIN QUERY PLAN "
        rows = self.rows(Sql((prefix, statement)), "explain", "explaining a query")
        return "\n".join(str(r[0] if self.dialect == "postgres" else r[-1]) for r in rows)

    @contextmanager
    def _failures(self, where: str, doing: str) -> Iterator[None]:
        if self.dialect == "sqlite":
            try:
                yield
            except sqlite3.OperationalError as exc:
                text = str(exc)
                if text.startswith(("no such table", "no such column")):
                    raise UsageError(f"{where}: {text}", hint="check store.table and store.columns") from None
                raise UnavailableError(f"{where}: {doing} failed: {text}", hint="check the file and retry") from None
            except sqlite3.Error as exc:
                raise UnavailableError(f"{where}: {doing} failed: {exc}", hint="check the file") from None
            return
        import psycopg

        from sagactl.store.postgres import RETRY_HINT, failed, first_line

        try:
            yield
        except psycopg.errors.UndefinedTable:
            raise UsageError(f"{where}: table not found", hint="check store.table (case-sensitive)") from None
        except psycopg.errors.UndefinedColumn as exc:
            raise UsageError(f"{where}: {first_line(exc)}", hint="check store.columns (case-sensitive)") from None
        except psycopg.errors.InsufficientPrivilege as exc:
            raise UnavailableError(f"{where}: {first_line(exc)}", hint="grant SELECT on it") from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise failed(where, doing, self.dsn, exc, RETRY_HINT) from None
        except (psycopg.ProgrammingError, psycopg.DataError) as exc:
            raise UsageError(
                f"{where}: {doing} failed: {first_line(exc)}",
                hint="check store.columns against the table's column types",
            ) from None

    # -- the catalog --------------------------------------------------------------------

    def columns(self, table: tuple[str, ...], where: str) -> dict[str, Column] | None:
        """The columns of ``table`` by name (None: no such table or view), from the catalog."""
        if self.dialect == "postgres":
            from sagactl.store.fragments import Param, sql

            name = Param(".".join(quote(p) for p in table))
            found = self.rows(sql("SELECT to_regclass({})::oid", name), where, "reading the catalog")
            if not found or found[0][0] is None:
                return None
            rows = self.rows(
                sql(
                    "SELECT attname, atttypid::int, format_type(atttypid, atttypmod) FROM pg_attribute"
                    " WHERE attrelid = {} AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                    Param(found[0][0]),
                ),
                where,
                "reading the catalog",
            )
            return {str(n): Column(str(n), _PG_KINDS.get(int(oid), Kind.OTHER), str(t)) for n, oid, t in rows}
        from sagactl.store.fragments import Param, sql

        args = sql("{}", Param(table[-1])) if len(table) == 1 else sql("{}, {}", Param(table[1]), Param(table[0]))
        rows = self.rows(sql("SELECT name, type FROM pragma_table_info({})", args), where, "reading the catalog")
        if not rows:
            return None
        return {str(n): Column(str(n), _sqlite_kind(str(t or "")), str(t or "").lower() or "untyped") for n, t in rows}
