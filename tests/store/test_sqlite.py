"""SQLite specifics: an older schema is read as it is and upgraded by writers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sagactl.store.base import SagaQuery
from sagactl.store.sqlite import SqliteStore
from tests.store.test_contract import make_saga

# The schema version db init reaches: the last migration, schema/*/004_workers.sql. A new
# migration bumps it here on purpose.
SCHEMA_VERSION = 4


def test_an_older_schema_is_read_as_is_and_upgraded_by_writers(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    SqliteStore(path).close()
    writer = SqliteStore(path)
    writer.create(make_saga("old"), [])
    writer.close()
    with sqlite3.connect(path) as conn:  # back to v1: what versions 2 to 4 added is gone
        for index in ("saga_log_created", "saga_log_wake", "saga_log_lease"):
            conn.execute(f"DROP INDEX {index}")
        conn.execute("ALTER TABLE saga_log DROP COLUMN wake_at")
        conn.execute("PRAGMA user_version = 1")
    reader = SqliteStore(path, create=False)
    try:
        assert reader.schema_version() == 1
        assert [s.saga_id for s in reader.list_sagas(SagaQuery(limit=5))] == ["old"]
        old = reader.get("old")
        assert old is not None and old.wake_at is None
    finally:
        reader.close()
    writer = SqliteStore(path)
    try:
        assert writer.schema_version() == SCHEMA_VERSION
    finally:
        writer.close()
    with sqlite3.connect(path) as conn:
        found = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'saga_log_%'")
        names = {row[0] for row in found}
        columns = {row[1] for row in conn.execute("PRAGMA table_info(saga_log)")}
    assert {"saga_log_created", "saga_log_wake", "saga_log_lease"} <= names
    assert "wake_at" in columns
