"""SQLite specifics: an older schema is read as it is and upgraded by writers; a new log is
private (0700 directory, 0600 files)."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
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


def test_a_new_log_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """The log holds inputs, results and errors: its directory is created 0700, the file, its
    -wal and its -shm 0600, even under umask 0; directories that exist are left alone."""
    path = tmp_path / "state" / ".sagactl" / "saga_log.db"
    old = os.umask(0)
    try:
        store = SqliteStore(path)
        try:
            store.init_schema()  # a write: the -wal and -shm files exist while it is open
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
        finally:
            store.close()
    finally:
        os.umask(old)
    assert modes == {"saga_log.db": 0o600, "saga_log.db-wal": 0o600, "saga_log.db-shm": 0o600}
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700


UNDER_UMASK_0 = "import os, sys; os.umask(0); from sagactl.cli import main; sys.argv[0] = 'sagactl'; main()"


def test_run_creates_the_default_log_private(tmp_path: Path) -> None:
    """End to end: `sagactl run` in a fresh directory under umask 0 leaves ./.sagactl 0700 and
    ./.sagactl/saga_log.db 0600."""
    (tmp_path / "saga.yaml").write_text(
        "saga: Tiny\nendpoints:\n  e: {type: exec, command: ['true']}\n"
        "steps:\n  - {name: one, endpoint: e, action: {}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGACTL_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])  # this checkout's sagactl
    done = subprocess.run(
        [sys.executable, "-c", UNDER_UMASK_0, "run", "saga.yaml", "-q"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((tmp_path / ".sagactl").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / ".sagactl" / "saga_log.db").stat().st_mode) == 0o600
