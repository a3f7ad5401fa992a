"""The embedded saga log: one SQLite file (WAL, synchronous=FULL: a commit survives power loss)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from sagactl.codec import compact_json
from sagactl.errors import UnavailableError
from sagactl.models import Transition, iso, parse_iso
from sagactl.store.base import SCHEMA_VERSION, Claimed, StoreInfo
from sagactl.store.migrations import migrations
from sagactl.store.sql import Row, SqlStore


def _create_private(path: Path) -> None:
    """Create the directories leading to ``path`` (0700) and the empty file itself (0600) if
    they are missing, whatever the umask: the log holds inputs, results and errors. SQLite
    gives its -wal and -shm files the database file's mode. Existing ones are left as they are."""
    missing = []
    directory = path.parent
    while not directory.exists():
        missing.append(directory)
        directory = directory.parent
    for created in reversed(missing):
        created.mkdir(mode=0o700, exist_ok=True)
        os.chmod(created, 0o700)  # mkdir's mode is filtered by the umask
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


class SqliteStore(SqlStore):
    """Store on one SQLite file. ``path`` ":memory:" gives an empty throwaway log."""

    def __init__(self, path: str | Path, *, create: bool = True) -> None:
        self.path = str(path)
        self.info = StoreInfo(kind="sqlite", location=self.path)
        if self.path != ":memory:" and not Path(self.path).exists() and not create:
            # Read-only commands on a log that was never written see an empty log and leave
            # no file behind.
            self.path = ":memory:"
        try:
            if self.path != ":memory:":
                _create_private(Path(self.path))
            self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
        except (sqlite3.Error, OSError) as exc:
            raise UnavailableError(
                f"cannot open saga log {self.path}: {exc}",
                hint="check the path and its permissions, or pass --dsn",
            ) from exc
        version = self.schema_version()
        self._note_version(version)
        # Writers upgrade an older schema (migrations only add); readers read it as it is.
        if version == 0 or (create and version < SCHEMA_VERSION):
            self.init_schema()

    # -- schema -------------------------------------------------------------------------

    def schema_version(self) -> int:
        row = self._conn.execute("PRAGMA user_version").fetchone()
        return int(row[0])

    def init_schema(self) -> int:
        with self._write() as conn:
            current = int(conn.execute("PRAGMA user_version").fetchone()[0])
            for migration in migrations("sqlite"):
                if migration.version <= current:
                    continue
                for statement in migration.statements:
                    try:
                        conn.execute(statement)
                    except sqlite3.OperationalError as exc:
                        # SQLite has no ADD COLUMN IF NOT EXISTS: a column already there is the
                        # migration done (migrations only add)
                        if not (statement.upper().startswith("ALTER TABLE") and "duplicate column" in str(exc)):
                            raise
                conn.execute(f"PRAGMA user_version = {int(migration.version)}")
                current = migration.version
        self._note_version(current)
        return current

    # -- the dialect ------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: takes the write lock up front, so no upgrade deadlock."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise UnavailableError(
                f"saga log {self.path} is locked or unwritable: {exc}",
                hint="another process holds it; retry",
            ) from exc
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _query(self, statement: str, params: Sequence[Any], doing: str) -> list[tuple[Any, ...]]:
        return self._conn.execute(statement, params).fetchall()

    def _update(self, statement: str, params: Sequence[Any], doing: str) -> int:
        with self._write() as conn:
            return conn.execute(statement, params).rowcount

    @contextmanager
    def _counters_locked(self) -> Iterator[Callable[[str], list[tuple[Any, ...]]]]:
        with self._write() as conn:
            yield lambda statement: conn.execute(statement).fetchall()

    def _decode_json(self, value: Any) -> Any:
        return None if value is None else json.loads(value)

    def _encode_time(self, value: datetime | None) -> Any:
        return iso(value)

    def _decode_time(self, value: Any) -> datetime | None:
        return parse_iso(value)

    def _encode_json(self, value: Any) -> Any:
        return compact_json(value)

    @staticmethod
    def _append(conn: sqlite3.Connection, transitions: Sequence[Transition]) -> None:
        if transitions:
            conn.executemany(
                "INSERT INTO saga_transitions (saga_id, step_name, old_state, new_state, detail, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (t.saga_id, t.step_name, t.old_state, t.new_state, compact_json(t.detail), iso(t.at))
                    for t in transitions
                ],
            )

    def _insert(self, row: Row, transitions: Sequence[Transition]) -> bool:
        placeholders = ", ".join(f":{name}" for name in row)
        with self._write() as conn:
            try:
                conn.execute(f"INSERT INTO saga_log ({', '.join(row)}) VALUES ({placeholders})", row)
            except sqlite3.IntegrityError:
                return False
            self._append(conn, transitions)
        return True

    def _rewrite(self, row: Row, patch: dict[int, Any], transitions: Sequence[Transition], owner: str) -> bool:
        params: dict[str, Any] = {**row, "owner": owner}
        sets = [f"{name} = :{name}" for name in row if name != "saga_id"]
        if patch:
            steps = "steps"
            for n, (index, record) in enumerate(patch.items()):
                steps = f"json_set({steps}, :path{n}, json(:step{n}))"
                params[f"path{n}"], params[f"step{n}"] = f"$[{index}]", record
            sets.append(f"steps = {steps}")
        with self._write() as conn:
            cursor = conn.execute(
                f"UPDATE saga_log SET {', '.join(sets)} WHERE saga_id = :saga_id AND lease_owner = :owner", params
            )
            if cursor.rowcount != 1:
                return False
            self._append(conn, transitions)
        return True

    def claim(
        self, owner: str, until: datetime, now: datetime, limit: int, types: Sequence[str] = ()
    ) -> list[Claimed]:
        due, lapsed, values = self._claim_parts(types)
        at = iso(now)
        with self._write() as conn:  # one writer at a time: no two claimers see the same rows
            rows = conn.execute(
                f"SELECT saga_id, lapsed, at FROM ({due}) UNION ALL SELECT saga_id, lapsed, at FROM ({lapsed})"
                " ORDER BY at, saga_id LIMIT ?",
                [at, *values, limit, at, *values, limit, limit],
            ).fetchall()
            for saga_id, _, _ in rows:
                conn.execute(
                    "UPDATE saga_log SET lease_owner = ?, lease_expires_at = ?, wake_at = NULL WHERE saga_id = ?",
                    [owner, iso(until), saga_id],
                )
        return [Claimed(str(r[0]), bool(r[1])) for r in rows]

    def close(self) -> None:
        self._conn.close()
