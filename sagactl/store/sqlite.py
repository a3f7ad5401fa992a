"""The embedded saga log: one SQLite file (WAL, synchronous=FULL: a commit survives power loss)."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sagactl.codec import compact_json
from sagactl.errors import UnavailableError
from sagactl.models import Transition, iso, parse_iso
from sagactl.store.base import SCHEMA_VERSION, Claimed, StoreInfo
from sagactl.store.history import LINK_RERUN, HistoryStore, Run
from sagactl.store.sql import Row


def _code(exc: sqlite3.Error) -> str:
    """SQLite's error code name (``SQLITE_FULL``...), or "" when the driver gave none."""
    return str(getattr(exc, "sqlite_errorname", "") or "")


def _hint(exc: sqlite3.Error) -> str:
    """What to do about a SQLite failure, by its error code."""
    code = _code(exc)
    if code.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM")):
        return "make the file and its directory writable for this user, or pass --dsn"
    if code == "SQLITE_FULL" or code.startswith("SQLITE_IOERR"):
        return "free space on that disk (or lift the file size limit) and check the disk"
    if code.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return "another process holds it; retry"
    if code.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
        return "the file is damaged or not a saga log; check --dsn"
    return "check the file, its directory and the disk"


def _failed(path: str, doing: str, exc: sqlite3.Error) -> UnavailableError:
    return UnavailableError(f"saga log {path}: {doing} failed: {exc}", hint=_hint(exc))


# Failures of the file or the disk; anything else (IntegrityError, ProgrammingError) is a bug.
_DISK_ERRORS = (sqlite3.OperationalError, sqlite3.InternalError)


def _is_disk_error(exc: sqlite3.Error) -> bool:
    return isinstance(exc, _DISK_ERRORS) or type(exc) is sqlite3.DatabaseError


# What to do about a file that is not a saga log, for read-only commands.
_NOT_A_LOG = (
    "check --dsn / SAGACTL_DSN / the config file, or create the log with 'sagactl db init'"
    " (or any command that writes)"
)
_ANOTHER_FILE = "check --dsn / SAGACTL_DSN / the config file: this file is not a saga log"


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


def open_read_only(path: str, label: str, missing_hint: str, other_hint: str) -> tuple[sqlite3.Connection, set[str]]:
    """The existing SQLite file ``path`` opened read-only (``mode=ro``), and the tables it holds.
    Nothing is created or changed. A missing file, a directory, a file that is not SQLite:
    UnavailableError naming ``label`` and ``path`` (exit 4), never an empty answer."""
    if path == ":memory:":
        raise UnavailableError(f"an in-memory {label} (sqlite:///:memory:) is always empty", hint=missing_hint)
    file = Path(path)
    if not file.exists():
        raise UnavailableError(f"{label} {path} does not exist", hint=missing_hint)
    if file.is_dir():
        raise UnavailableError(f"{label} {path} is a directory, not a file", hint=missing_hint)
    uri = "file:" + quote(str(file.absolute()))
    try:
        try:
            return _probe(uri + "?mode=ro", path, label, other_hint)
        except sqlite3.OperationalError as exc:
            if _code(exc) not in ("SQLITE_READONLY_DIRECTORY", "SQLITE_CANTOPEN"):
                raise
            # A WAL-mode file in a directory this user cannot write: SQLite cannot create the
            # shared-memory index it reads through. With no write-ahead log beside it (its last
            # writer closed it), the file alone is the whole database: read it as immutable. A
            # leftover log cannot be read that way (its changes would be missed).
            wal = Path(path + "-wal")
            if wal.exists() and wal.stat().st_size > 0:
                raise UnavailableError(
                    f"cannot read {label} {path}: its write-ahead log {wal.name} holds changes"
                    f" that SQLite can only read with {file.name}-shm beside it, in a directory this"
                    " user cannot write",
                    hint=f"copy {file.name} with its -wal and -shm files, or read it where you can write",
                ) from exc
            return _probe(uri + "?immutable=1", path, label, other_hint)
    except sqlite3.Error as exc:
        raise UnavailableError(f"cannot read {label} {path}: {exc}", hint=_hint(exc)) from exc


def _probe(uri: str, path: str, label: str, other_hint: str) -> tuple[sqlite3.Connection, set[str]]:
    """A read-only connection to ``uri`` and the tables of the SQLite database it proved to be."""
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=30.0, check_same_thread=False)
    try:
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            if _code(exc) != "SQLITE_NOTADB":
                raise
            raise UnavailableError(f"{label} {path} is not a SQLite database", hint=other_hint) from None
    except BaseException:
        conn.close()
        raise
    return conn, tables


class _IdTaken(Exception):
    """A new saga's ID is taken: leaves a write transaction, which rolls it back."""


class SqliteStore(HistoryStore):
    """Store on one SQLite file. ``path`` ":memory:" gives an empty throwaway log.

    ``create=False`` (read-only commands) opens the file read-only and changes nothing: no
    directory, file, schema or journal mode is created; a missing file, or one that is not a
    saga log, is UnavailableError (exit 4), never an empty answer. A read-only copy (file and
    directory not writable) can be read, in WAL mode too.
    """

    def __init__(
        self, path: str | Path, *, create: bool = True, progress: Callable[[int, str], None] | None = None
    ) -> None:
        self.path = str(path)
        self.info = StoreInfo(kind="sqlite", location=self.path)
        self._warned: set[str] = set()
        self._conn = self._open() if create else self._open_read_only()
        try:
            version = self.schema_version()
            if version > SCHEMA_VERSION:
                raise UnavailableError(
                    f"saga log {self.path} has schema version {version}, newer than this sagactl"
                    f" supports ({SCHEMA_VERSION})",
                    hint="upgrade sagactl",
                )
            self._note_version(version)
            # Writers create or upgrade the schema (migrations only add); readers read it as it is.
            if create and version < SCHEMA_VERSION:
                self.init_schema(progress)
        except BaseException:
            self._conn.close()
            raise

    def _open(self) -> sqlite3.Connection:
        """The file for writing, created (with its directory) if missing, in WAL mode."""
        try:
            if self.path != ":memory:":
                _create_private(Path(self.path))
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0, check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=FULL")
                conn.execute("PRAGMA foreign_keys=ON")
            except BaseException:
                conn.close()
                raise
        except sqlite3.Error as exc:
            raise UnavailableError(f"cannot open saga log {self.path}: {exc}", hint=_hint(exc)) from exc
        except OSError as exc:
            raise UnavailableError(
                f"cannot open saga log {self.path}: {exc}", hint="check the path and its permissions, or pass --dsn"
            ) from exc
        return conn

    def _open_read_only(self) -> sqlite3.Connection:
        """The existing file, read-only (``mode=ro``); checked to hold a saga log."""
        conn, tables = open_read_only(self.path, "saga log", _NOT_A_LOG, _ANOTHER_FILE)
        if "saga_log" not in tables:
            conn.close()
            others = sorted(t for t in tables if not t.startswith("sqlite_"))
            if not others:
                raise UnavailableError(f"saga log {self.path} has no saga_log schema", hint=_NOT_A_LOG)
            held = ", ".join(others[:5]) + (", …" if len(others) > 5 else "")
            raise UnavailableError(f"saga log {self.path} has no saga_log schema (it holds {held})", hint=_ANOTHER_FILE)
        return conn

    # -- schema -------------------------------------------------------------------------

    def schema_version(self) -> int:
        return int(self._one("PRAGMA user_version", "reading the schema version"))

    def init_schema(self, progress: Callable[[int, str], None] | None = None) -> int:
        with self._write("creating the schema") as conn:
            current = int(conn.execute("PRAGMA user_version").fetchone()[0])
            from sagactl.store.migrations import migrations  # writers only

            for migration in migrations("sqlite"):
                if migration.version <= current:
                    continue
                if progress is not None:
                    progress(migration.version, migration.name)
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
    def _write(self, doing: str = "writing to it") -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: takes the write lock up front, so no upgrade deadlock.
        A failure of the file or the disk (read-only, full, locked) rolls it back and is
        UnavailableError (exit 4): the log keeps its last committed state."""
        conn = self._conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise UnavailableError(
                f"saga log {self.path} is locked or unwritable: {exc}",
                hint=_hint(exc),
            ) from exc
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:  # SQLite may have rolled back already (disk full, I/O error)
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error) and _is_disk_error(exc):
                raise _failed(self.path, doing, exc) from exc
            raise

    def _one(self, statement: str, doing: str) -> Any:
        rows = self._query(statement, (), doing)
        return rows[0][0] if rows else None

    def _query(self, statement: str, params: Sequence[Any], doing: str) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(statement, params).fetchall()
        except sqlite3.Error as exc:
            if _is_disk_error(exc):
                raise _failed(self.path, doing, exc) from exc
            raise

    def _update(self, statement: str, params: Sequence[Any], doing: str) -> int:
        with self._write(doing) as conn:
            return conn.execute(statement, params).rowcount

    @contextmanager
    def _transaction(self, doing: str) -> Iterator[Run]:
        with self._write(doing) as conn:
            yield lambda statement, params: conn.execute(statement, params).fetchall()

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

    def _insert_rerun(self, row: Row, transitions: Sequence[Transition], original: str, at: Any) -> bool | None:
        placeholders = ", ".join(f":{name}" for name in row)
        try:
            with self._write() as conn:
                if conn.execute(LINK_RERUN, [row["saga_id"], at, original]).rowcount != 1:
                    return False
                try:
                    conn.execute(f"INSERT INTO saga_log ({', '.join(row)}) VALUES ({placeholders})", row)
                except sqlite3.IntegrityError:
                    raise _IdTaken from None  # rolls the link back too
                self._append(conn, transitions)
        except _IdTaken:
            return None
        return True

    def _rewrite(self, row: Row, patch: dict[int, Any], transitions: Sequence[Transition], owner: str) -> bool:
        params: dict[str, Any] = {**row, "owner": owner}
        sets = [f"{name} = :{name}" for name in row if name != "saga_id"]
        if patch:  # one json_set for every changed record: SQLite parses the whole array once
            pairs = []
            for n, (index, record) in enumerate(patch.items()):
                pairs.append(f":path{n}, json(:step{n})")
                params[f"path{n}"], params[f"step{n}"] = f"$[{index}]", record
            sets.append(f"steps = json_set(steps, {', '.join(pairs)})")
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
