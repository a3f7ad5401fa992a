"""The saga-log reads behind ``doctor``: whether the log can be written (proved without
writing anything) and the definition snapshots of the sagas in flight."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from sagactl.store.listing import ACTIVE
from sagactl.store.sql import SqlStore

if TYPE_CHECKING:
    from sagactl.store.postgres import PostgresStore

# Statements that need every right a writer uses (INSERT, UPDATE on saga_log, INSERT on
# saga_transitions) and a read-write transaction, yet touch no row: PostgreSQL checks rights
# and read-only-ness before it runs them; no sequence value is drawn for zero rows.
_PROBES = (
    "INSERT INTO saga_log (saga_id, saga_type, state, steps, definition, created_at, updated_at)"
    " SELECT saga_id, saga_type, state, steps, definition, created_at, updated_at FROM saga_log WHERE false",
    "UPDATE saga_log SET updated_at = updated_at WHERE false",
    "INSERT INTO saga_transitions (saga_id, step_name, old_state, new_state, detail, at)"
    " SELECT saga_id, step_name, old_state, new_state, detail, at FROM saga_transitions WHERE false",
)


def postgres_write_problem(store: PostgresStore) -> str | None:
    """None when a writer could commit to this PostgreSQL log; else why not, in one line.
    Nothing is written: the probes touch no row and are rolled back."""
    import psycopg

    conn = store._conn
    try:
        with conn.transaction(force_rollback=True):
            for statement in _PROBES:
                conn.execute(statement.encode())
    except psycopg.Error as exc:
        return " ".join((str(exc).strip() or type(exc).__name__).splitlines()[0].split())
    return None


def sqlite_write_problem(path: Path) -> str | None:
    """None when a writer could commit to this SQLite log; else why not. The write lock is
    taken and given back, nothing written; run it with no other connection to the file open,
    so that closing it removes the -wal and -shm files it needed, as a writer does."""
    try:
        conn = sqlite3.connect(f"file:{quote(str(path.absolute()))}?mode=rw", uri=True, isolation_level=None, timeout=2)
    except sqlite3.Error as exc:
        return f"cannot open {path} for writing: {exc}"
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:
        return f"cannot write {path}: {exc}"
    finally:
        conn.close()
    return None


@dataclass(frozen=True, slots=True)
class InFlight:
    """Sagas in flight of one type that share one definition snapshot."""

    snapshot: dict[str, Any]
    count: int
    example: str


def in_flight(store: SqlStore, saga_type: str) -> list[InFlight]:
    """The distinct definition snapshots of the unfinished sagas of ``saga_type`` (read through
    the index over active sagas), with how many run on each and one of their IDs."""
    rows = store._query(
        f"SELECT definition, count(*), min(saga_id) FROM saga_log WHERE {ACTIVE} AND saga_type = ?"
        " GROUP BY definition",
        [saga_type],
        f"reading the sagas of {saga_type} in flight",
    )
    found = []
    for definition, count, example in rows:
        snapshot = store._decode_json(definition)
        if isinstance(snapshot, dict):
            found.append(InFlight(snapshot, int(count), str(example)))
    return sorted(found, key=lambda f: (-f.count, f.example))
