"""The embedded saga log: one SQLite file (WAL, synchronous=FULL: a commit survives power loss)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sagactl.errors import UnavailableError
from sagactl.models import (
    SagaRecord,
    SagaState,
    Transition,
    iso,
    parse_iso,
    utcnow,
)
from sagactl.store.base import (
    SCHEMA_VERSION,
    ActiveCount,
    LeaseHolder,
    LeaseLostError,
    SagaExistsError,
    SagaQuery,
    StateCount,
    StoreInfo,
    saga_from_row,
)
from sagactl.store.migrations import migrations

_COLUMNS = (
    "saga_id, saga_type, state, current_step, current_step_name, data, steps, definition, "
    "deadline_at, lease_owner, lease_expires_at, last_error, created_at, updated_at"
)
_TERMINAL = "('completed', 'failed')"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class SqliteStore:
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
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
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
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {int(migration.version)}")
                current = migration.version
        return current

    # -- helpers ------------------------------------------------------------------------

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

    @staticmethod
    def _row(saga: SagaRecord) -> dict[str, Any]:
        return {
            "saga_id": saga.saga_id,
            "saga_type": saga.saga_type,
            "state": saga.state.value,
            "current_step": saga.current_step,
            "current_step_name": saga.current_step_name,
            "data": _dumps(saga.data),
            "steps": _dumps([s.to_dict() for s in saga.steps]),
            "definition": _dumps(saga.definition),
            "deadline_at": iso(saga.deadline_at),
            "lease_owner": saga.lease_owner,
            "lease_expires_at": iso(saga.lease_expires_at),
            "last_error": saga.last_error,
            "created_at": iso(saga.created_at),
            "updated_at": iso(saga.updated_at),
        }

    @staticmethod
    def _record(row: sqlite3.Row | tuple[Any, ...]) -> SagaRecord:
        return saga_from_row(row, decode=lambda v: None if v is None else json.loads(v), when=parse_iso)

    @staticmethod
    def _append(conn: sqlite3.Connection, transitions: Sequence[Transition]) -> None:
        if transitions:
            conn.executemany(
                "INSERT INTO saga_transitions (saga_id, step_name, old_state, new_state, detail, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                [(t.saga_id, t.step_name, t.old_state, t.new_state, _dumps(t.detail), iso(t.at)) for t in transitions],
            )

    @staticmethod
    def _count(conn: sqlite3.Connection, saga_type: str, state: str, delta: int) -> None:
        conn.execute(
            "INSERT INTO saga_counts (saga_type, state, n) VALUES (?, ?, ?)"
            " ON CONFLICT (saga_type, state) DO UPDATE SET n = n + excluded.n",
            (saga_type, state, delta),
        )

    # -- writes -------------------------------------------------------------------------

    def create(self, saga: SagaRecord, transitions: Sequence[Transition]) -> None:
        row = self._row(saga)
        placeholders = ", ".join(f":{name}" for name in row)
        with self._write() as conn:
            try:
                conn.execute(f"INSERT INTO saga_log ({', '.join(row)}) VALUES ({placeholders})", row)
            except sqlite3.IntegrityError as exc:
                raise SagaExistsError(
                    f"saga {saga.saga_id} already exists in {self.path}",
                    hint=f"inspect it with 'sagactl show {saga.saga_id}' or pick another --saga-id",
                ) from exc
            self._count(conn, saga.saga_type, saga.state.value, 1)
            self._append(conn, transitions)

    def save(
        self,
        saga: SagaRecord,
        transitions: Sequence[Transition],
        *,
        prev_state: SagaState,
        owner: str,
    ) -> None:
        row = self._row(saga)
        row["owner"] = owner
        assignments = ", ".join(f"{name} = :{name}" for name in row if name not in ("saga_id", "owner"))
        with self._write() as conn:
            cursor = conn.execute(
                f"UPDATE saga_log SET {assignments} WHERE saga_id = :saga_id AND lease_owner = :owner",
                row,
            )
            if cursor.rowcount != 1:
                raise LeaseLostError(
                    f"lost the lease on saga {saga.saga_id}: another process is driving it",
                    hint="this process stopped without sending anything more",
                )
            if prev_state is not saga.state:
                self._count(conn, saga.saga_type, prev_state.value, -1)
                self._count(conn, saga.saga_type, saga.state.value, 1)
            self._append(conn, transitions)

    def acquire_lease(self, saga_id: str, owner: str, until: Any, now: Any) -> LeaseHolder | None:
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE saga_log SET lease_owner = ?, lease_expires_at = ? WHERE saga_id = ?"
                " AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at < ?)",
                (owner, iso(until), saga_id, owner, iso(now)),
            )
            if cursor.rowcount == 1:
                return None
            row = conn.execute(
                "SELECT lease_owner, lease_expires_at FROM saga_log WHERE saga_id = ?", (saga_id,)
            ).fetchone()
        if row is None:
            return LeaseHolder(owner="", expires_at=None)
        return LeaseHolder(owner=row[0], expires_at=parse_iso(row[1]))

    def take_over_lease(self, saga_id: str, owner: str, previous: str, until: Any) -> bool:
        with self._write() as conn:
            cursor = conn.execute(
                "UPDATE saga_log SET lease_owner = ?, lease_expires_at = ? WHERE saga_id = ? AND lease_owner = ?",
                (owner, iso(until), saga_id, previous),
            )
            return cursor.rowcount == 1

    def release_lease(self, saga_id: str, owner: str) -> None:
        with self._write() as conn:
            conn.execute(
                "UPDATE saga_log SET lease_owner = NULL, lease_expires_at = NULL WHERE saga_id = ? AND lease_owner = ?",
                (saga_id, owner),
            )

    # -- reads --------------------------------------------------------------------------

    def get(self, saga_id: str) -> SagaRecord | None:
        row = self._conn.execute(f"SELECT {_COLUMNS} FROM saga_log WHERE saga_id = ?", (saga_id,)).fetchone()
        return self._record(row) if row else None

    def transitions(self, saga_id: str) -> list[Transition]:
        rows = self._conn.execute(
            "SELECT id, saga_id, step_name, old_state, new_state, detail, at"
            " FROM saga_transitions WHERE saga_id = ? ORDER BY id",
            (saga_id,),
        ).fetchall()
        return [
            Transition(
                id=r[0],
                saga_id=r[1],
                step_name=r[2],
                old_state=r[3],
                new_state=r[4],
                detail=json.loads(r[5]) if r[5] else {},
                at=parse_iso(r[6]) or utcnow(),
            )
            for r in rows
        ]

    def list_sagas(self, query: SagaQuery) -> list[SagaRecord]:
        where: list[str] = []
        params: list[Any] = []
        if query.stuck:
            where.append(f"state NOT IN {_TERMINAL}")
            where.append("(deadline_at < ? OR (deadline_at IS NULL AND updated_at < ?))")
            params += [iso(query.now or utcnow()), iso(query.idle_before or query.now or utcnow())]
        if query.states:
            where.append(f"state IN ({', '.join('?' for _ in query.states)})")
            params += [s.value for s in query.states]
        if query.saga_type is not None:
            where.append("saga_type = ?")
            params.append(query.saga_type)
        if query.updated_before is not None:
            where.append("updated_at < ?")
            params.append(iso(query.updated_before))
        if not query.stuck and query.limit is not None:
            # Compensating sagas first, then the oldest: each part read in created_at order
            # from an index, so a short listing never sorts the whole log.
            def part(state_test: str) -> str:
                cond = " AND ".join([state_test, *where])
                return (
                    f"SELECT * FROM (SELECT {_COLUMNS} FROM saga_log WHERE {cond} ORDER BY created_at, saga_id LIMIT ?)"
                )

            limit = int(query.limit)
            first, rest = part("state = 'compensating'"), part("state <> 'compensating'")
            sql = (
                f"SELECT * FROM ({first} UNION ALL {rest})"
                " ORDER BY state = 'compensating' DESC, created_at, saga_id LIMIT ?"
            )
            rows = self._conn.execute(sql, [*params, limit, *params, limit, limit]).fetchall()
            return [self._record(r) for r in rows]
        sql = f"SELECT {_COLUMNS} FROM saga_log"
        if where:
            sql += " WHERE " + " AND ".join(where)
        if query.stuck:
            sql += " ORDER BY state = 'compensating' DESC, COALESCE(deadline_at, updated_at), saga_id"
        else:
            sql += " ORDER BY state = 'compensating' DESC, created_at, saga_id"
        if query.limit is not None:
            sql += " LIMIT ?"
            params.append(int(query.limit))
        return [self._record(r) for r in self._conn.execute(sql, params).fetchall()]

    def counts(self) -> list[StateCount]:
        rows = self._conn.execute(
            "SELECT saga_type, state, n FROM saga_counts WHERE n > 0 ORDER BY saga_type, state"
        ).fetchall()
        return [StateCount(saga_type=r[0], state=SagaState(r[1]), count=int(r[2])) for r in rows]

    def active_counts(self) -> list[ActiveCount]:
        rows = self._conn.execute(
            "SELECT saga_type, state, count(*), min(created_at) FROM saga_log"
            " WHERE state IN ('started', 'pending', 'compensating')"
            " GROUP BY saga_type, state ORDER BY saga_type, state"
        ).fetchall()
        return [
            ActiveCount(saga_type=r[0], state=SagaState(r[1]), count=int(r[2]), oldest_created_at=parse_iso(r[3]))
            for r in rows
        ]

    def close(self) -> None:
        self._conn.close()
