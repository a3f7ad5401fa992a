"""SQLite specifics: an older schema is read as it is and upgraded by writers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sagactl.store.base import SagaQuery
from sagactl.store.sqlite import SqliteStore

# The schema version db init reaches: the last migration, schema/*/003_counters.sql. A new
# migration bumps it here on purpose.
SCHEMA_VERSION = 3


def test_an_older_schema_is_read_as_is_and_upgraded_by_writers(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as conn:  # back to v1
        conn.execute("DROP INDEX saga_log_created")
        conn.execute("PRAGMA user_version = 1")
    reader = SqliteStore(path, create=False)
    try:
        assert reader.schema_version() == 1
        assert reader.list_sagas(SagaQuery(limit=5)) == []
    finally:
        reader.close()
    writer = SqliteStore(path)
    try:
        assert writer.schema_version() == SCHEMA_VERSION
    finally:
        writer.close()
    with sqlite3.connect(path) as conn:
        found = conn.execute("SELECT name FROM sqlite_master WHERE name = 'saga_log_created'").fetchall()
    assert found == [("saga_log_created",)]
