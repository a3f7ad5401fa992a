"""The saga_log queries SQLite and PostgreSQL share, written once.

``SqlStore`` holds every read, the lease changes and the reader view (``SagaReader``) of a
native saga log; a dialect subclass says only how to run a statement and how JSON and times
are stored, and writes ``create``/``save`` its own way (PostgreSQL in one statement).
Statements here use ``?`` placeholders; the PostgreSQL dialect turns them into ``%s``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Collection, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sagactl.codec import escaped
from sagactl.models import SagaRecord, SagaState, SagaSummary, StateCount, StepRecord, Transition, utcnow
from sagactl.store.base import (
    ActiveCount,
    JobRecord,
    LeaseHolder,
    LeaseLostError,
    SagaExistsError,
    SagaQuery,
    StoreInfo,
    UnreadableSagaError,
)
from sagactl.store.listing import (
    ACTIVE,
    SQLITE,
    Dialect,
    list_statement,
    prefix_statement,
    summarize,
    touched_statement,
)

log = logging.getLogger("sagactl.store")

Row = dict[str, Any]  # saga_log column -> value as the dialect stores it

COLUMNS = (
    "saga_id, saga_type, state, current_step, current_step_name, data, steps, definition, "
    "deadline_at, lease_owner, lease_expires_at, last_error, created_at, updated_at, wake_at, rerun_of, rerun_as,"
    " traceparent, tracestate"
)
# What a log at an older schema version gives in place of the columns later versions added.
_ADDED = (
    (4, ", wake_at", ", NULL AS wake_at"),
    (6, ", rerun_of, rerun_as", ", NULL AS rerun_of, NULL AS rerun_as"),
    (10, ", traceparent, tracestate", ", NULL AS traceparent, NULL AS tracestate"),
)
KNOWN_STATES = ", ".join(state.value for state in SagaState)
_FIX_ROWS = "fix the rows (states are stored lowercase) or upgrade sagactl"

_TRANSITIONS = (
    "SELECT id, saga_id, step_name, old_state, new_state, detail, at"
    " FROM saga_transitions WHERE saga_id = ? ORDER BY id"
)
_SUMMED = "SELECT saga_type, state, CAST(sum(n) AS bigint) FROM saga_counts GROUP BY saga_type, state"  # v8: slots
_COUNTS, _ALL_COUNTS = f"{_SUMMED} HAVING sum(n) > 0 ORDER BY 1, 2", f"{_SUMMED} ORDER BY 1, 2"
_RECOUNT = (
    "INSERT INTO saga_counts (saga_type, state, n)"
    " SELECT saga_type, state, count(*) FROM saga_log GROUP BY saga_type, state"
)
_ACTIVE_COUNTS = (
    f"SELECT saga_type, state, count(*), min(created_at), sum(CASE WHEN state = 'compensating' AND lease_owner IS NULL"
    f" AND wake_at IS NULL THEN 1 ELSE 0 END) FROM saga_log WHERE {ACTIVE} GROUP BY saga_type, state ORDER BY 1, 2"
)
_ACQUIRE = (
    "UPDATE saga_log SET lease_owner = ?, lease_expires_at = ? WHERE saga_id = ?"
    " AND (lease_owner IS NULL OR lease_owner = ? OR lease_expires_at < ?)"
)
_DUE = (
    f"SELECT saga_id, 0 AS lapsed, wake_at AS at FROM saga_log WHERE {ACTIVE} AND lease_owner IS NULL"
    " AND wake_at <= ?{types} ORDER BY wake_at LIMIT ?"
)
_LAPSED = (
    f"SELECT saga_id, 1 AS lapsed, lease_expires_at AS at FROM saga_log WHERE {ACTIVE} AND lease_owner IS NOT NULL"
    " AND lease_expires_at < ?{types} ORDER BY lease_expires_at LIMIT ?"
)
_RELEASED_DEFINITIONS = f"SELECT DISTINCT definition FROM saga_log WHERE {ACTIVE} AND lease_owner IS NULL"
_HELD = f"SELECT saga_id, lease_owner FROM saga_log WHERE {ACTIVE} AND lease_owner IS NOT NULL"
_HOLDER = "SELECT lease_owner, lease_expires_at FROM saga_log WHERE saga_id = ?"
_TAKE_OVER = "UPDATE saga_log SET lease_owner = ?, lease_expires_at = ? WHERE saga_id = ? AND lease_owner = ?"
# What changes whenever a saga is written (its row and history commit together): two index reads,
# the primary key and the last entry of saga_transitions_saga, never the row's JSON.
_STAMP = (
    "SELECT updated_at, lease_owner, lease_expires_at,"
    " (SELECT max(id) FROM saga_transitions WHERE saga_id = ?) FROM saga_log WHERE saga_id = ?"
)
_RELEASE = "UPDATE saga_log SET lease_owner = NULL, lease_expires_at = NULL WHERE saga_id = ? AND lease_owner = ?"
_JOB = "SELECT job_id, action, selector, reason, started_by, started_at, finished_at FROM saga_jobs WHERE job_id = ?"
_START_JOB = (
    "INSERT INTO saga_jobs (job_id, action, selector, reason, started_by, started_at)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING"
)
_FINISH_JOB = "UPDATE saga_jobs SET finished_at = ? WHERE job_id = ?"


class SqlStore:
    """Writes (the dialect says how), reads, lease changes and the reader view over a native
    saga log, for both dialects."""

    info: StoreInfo
    _warned: set[str]  # unknown states already warned about (each once per command)
    dialect: Dialect = SQLITE

    def _columns(self) -> str:
        """COLUMNS as this log's schema can give them: a reader of a log older than version 4
        (no wake_at) or 6 (no rerun links) reads it as it is."""
        known: str | None = self.__dict__.get("_known_columns")
        if known is None:
            known = self._note_version(self.schema_version())
        return known

    def _note_version(self, version: int) -> str:
        """Remember which columns a log at schema ``version`` has (the dialect tells on open)."""
        known = COLUMNS
        for added_in, columns, missing in _ADDED:
            if version < added_in:
                known = known.replace(columns, missing)
        self.__dict__["_known_columns"] = known
        self.__dict__["_jobs"] = version >= 5
        return known

    def _jobs_recorded(self) -> bool:
        """Whether this log's schema holds bulk jobs (version 5 on): an older one has none."""
        self._columns()
        return bool(self.__dict__.get("_jobs"))

    def schema_version(self) -> int:
        raise NotImplementedError

    # -- the dialect ----------------------------------------------------------------------

    def _query(self, statement: str, params: Sequence[Any], doing: str) -> list[tuple[Any, ...]]:
        """Run a SELECT (``?`` placeholders) and return its rows."""
        raise NotImplementedError

    def _update(self, statement: str, params: Sequence[Any], doing: str) -> int:
        """Run one UPDATE in its own transaction; the number of rows it changed."""
        raise NotImplementedError

    def _decode_json(self, value: Any) -> Any:
        """A stored JSON value as Python."""
        raise NotImplementedError

    def _encode_time(self, value: datetime | None) -> Any:
        """A time as the dialect stores it."""
        raise NotImplementedError

    def _decode_time(self, value: Any) -> datetime | None:
        """A stored time as an aware UTC datetime."""
        raise NotImplementedError

    def _encode_json(self, value: Any) -> Any:
        """A JSON value as the dialect stores it."""
        raise NotImplementedError

    def _insert(self, row: Row, transitions: Sequence[Transition]) -> bool:
        """Insert the saga row and append its transitions in one transaction (triggers count
        it); False when the ID is taken (nothing written)."""
        raise NotImplementedError

    def _rewrite(self, row: Row, patch: dict[int, Any], transitions: Sequence[Transition], owner: str) -> bool:
        """In one transaction, if ``owner`` holds the lease: set ``row``'s columns (the
        mutable ones; ``steps`` among them when the whole array is rewritten), put each
        ``patch`` element into ``steps`` at its index, append the transitions. False when the
        lease is not ``owner``'s (nothing written)."""
        raise NotImplementedError

    def _counters_locked(self) -> AbstractContextManager[Callable[[str], list[tuple[Any, ...]]]]:
        """A transaction that writers' counter updates wait for; yields a function running one
        statement in it and returning its rows (none for a statement without)."""
        raise NotImplementedError

    def _row(self, saga: SagaRecord) -> Row:
        """Every saga_log column of ``saga``, encoded for the dialect (a new saga)."""
        json, time = self._encode_json, self._encode_time
        return {
            "saga_id": saga.saga_id,
            "saga_type": saga.saga_type,
            "data": json(saga.data),
            "definition": json(saga.definition),
            "created_at": time(saga.created_at),
            "steps": json([s.to_stored() for s in saga.steps]),
            "rerun_of": saga.rerun_of,
            "traceparent": saga.traceparent,
            "tracestate": saga.tracestate,
            **self._moving(saga),
        }

    def _moving(self, saga: SagaRecord) -> Row:
        """The columns a driver changes as the saga moves (never data, definition, type)."""
        time = self._encode_time
        return {
            "state": saga.state.value,
            "current_step": saga.current_step,
            "current_step_name": saga.current_step_name,
            "deadline_at": time(saga.deadline_at),
            "lease_owner": saga.lease_owner,
            "lease_expires_at": time(saga.lease_expires_at),
            "last_error": saga.last_error,
            "updated_at": time(saga.updated_at),
            "wake_at": time(saga.wake_at),
        }

    def _record(self, row: Sequence[Any]) -> SagaRecord:
        """A SagaRecord from a saga_log row in COLUMNS order; UnreadableSagaError for a row
        another writer left in a shape this sagactl does not know."""
        saga_id, state = row[0], row[2]
        try:
            known = SagaState(state)
        except ValueError:
            raise UnreadableSagaError(
                saga_id,
                self.info.location,
                f"its state '{escaped(str(state))}' is not one this sagactl knows ({KNOWN_STATES})",
                state=str(state),
            ) from None
        try:
            return self._decode(row, known)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            what = (
                exc.msg
                if isinstance(exc, json.JSONDecodeError)
                else f"no {exc} field"
                if isinstance(exc, KeyError)
                else escaped(str(exc)) or type(exc).__name__
            )
            raise UnreadableSagaError(saga_id, self.info.location, f"its row does not decode: {what}") from None

    def _decode(self, row: Sequence[Any], state: SagaState) -> SagaRecord:
        (saga_id, saga_type, _state, current_step, _name, data, steps, definition, deadline_at, lease_owner,
         lease_expires_at, last_error, created_at, updated_at, wake_at, rerun_of, rerun_as, traceparent,
         tracestate) = row  # fmt: skip
        when = self._decode_time
        return SagaRecord(
            saga_id=saga_id,
            saga_type=saga_type,
            state=state,
            current_step=current_step,
            data=self._decode_json(data),
            steps=[StepRecord.from_dict(s) for s in self._decode_json(steps)],
            definition=self._decode_json(definition),
            deadline_at=when(deadline_at),
            lease_owner=lease_owner,
            lease_expires_at=when(lease_expires_at),
            last_error=last_error,
            created_at=when(created_at) or utcnow(),
            updated_at=when(updated_at) or utcnow(),
            wake_at=when(wake_at),
            rerun_of=rerun_of,
            rerun_as=rerun_as,
            traceparent=traceparent,
            tracestate=tracestate,
        )

    def _skip(self, key: str, warning: str) -> None:
        """Warn about rows a listing leaves out, once per ``key`` (an unknown state, a saga)
        for the life of this store, which is one command."""
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", warning)

    def _skip_unreadable(self, exc: UnreadableSagaError) -> None:
        if exc.state is not None:
            self._skip(
                f"state:{exc.state}",
                f"skipping sagas in state '{escaped(exc.state)}', which this sagactl does not know"
                f" (first: saga {escaped(exc.saga_id)} in {self.info.location}); {_FIX_ROWS}",
            )
        else:
            self._skip(f"saga:{exc.saga_id}", f"skipping saga {escaped(exc.saga_id)}: {exc.problem}")

    def _state_or_skip(self, saga_type: str, state: str, count: int) -> SagaState | None:
        """The state of a counted (type, state) group, or None (warned) when it is unknown."""
        try:
            return SagaState(state)
        except ValueError:
            self._skip(
                f"state:{state}",
                f"skipping sagas in state '{escaped(str(state))}', which this sagactl does not know"
                f" (first: {count} of type {escaped(saga_type)} in {self.info.location}); {_FIX_ROWS}",
            )
            return None

    # -- writes ---------------------------------------------------------------------------

    def create(self, saga: SagaRecord, transitions: Sequence[Transition]) -> None:
        if not self._insert(self._row(saga), transitions):
            raise SagaExistsError(
                f"saga {saga.saga_id} already exists in {self.info.location}",
                hint=f"inspect it with 'sagactl show {saga.saga_id}' or pick another --saga-id",
            )

    def save(
        self, saga: SagaRecord, transitions: Sequence[Transition], *, owner: str, steps: Collection[int] | None = None
    ) -> None:
        row = {"saga_id": saga.saga_id, **self._moving(saga)}
        patch: dict[int, Any] = {}
        if steps is None:
            row["steps"] = self._encode_json([s.to_stored() for s in saga.steps])
        else:
            patch = {i: self._encode_json(saga.steps[i].to_stored()) for i in sorted(set(steps))}
        if not self._rewrite(row, patch, transitions, owner):
            raise LeaseLostError(
                f"lost the lease on saga {saga.saga_id}: another process is driving it",
                hint="this process stopped without sending anything more",
            )

    # -- reads ----------------------------------------------------------------------------

    def get(self, saga_id: str) -> SagaRecord | None:
        statement = f"SELECT {self._columns()} FROM saga_log WHERE saga_id = ?"
        rows = self._query(statement, [saga_id], f"reading saga {saga_id}")
        return self._record(rows[0]) if rows else None

    def transitions(self, saga_id: str) -> list[Transition]:
        rows = self._query(_TRANSITIONS, [saga_id], f"reading the history of saga {saga_id}")
        return [self._transition(r) for r in rows]

    def _transition(self, r: Sequence[Any]) -> Transition:
        """A saga_transitions row (id, saga_id, step_name, old_state, new_state, detail, at)."""
        return Transition(
            id=r[0],
            saga_id=r[1],
            step_name=r[2],
            old_state=r[3],
            new_state=r[4],
            detail=self._decode_json(r[5]) or {},
            at=self._decode_time(r[6]) or utcnow(),
        )

    def list_statement(self, query: SagaQuery) -> tuple[str, list[Any]]:
        """The SELECT ``list_sagas`` runs for ``query`` and its parameters (for EXPLAIN)."""
        return list_statement(query, self._encode_time, self._columns(), self.dialect)

    def list_sagas(self, query: SagaQuery) -> list[SagaRecord]:
        """Matching sagas; rows this sagactl cannot read are left out with a warning."""
        statement, params = self.list_statement(query)
        found = []
        for row in self._query(statement, params, "listing sagas"):
            try:
                found.append(self._record(row))
            except UnreadableSagaError as exc:
                self._skip_unreadable(exc)
        return found

    def ids_with_prefix(self, prefix: str, limit: int) -> list[str]:
        statement, params = prefix_statement(prefix, limit, self.dialect)
        return [str(r[0]) for r in self._query(statement, params, f"looking up saga IDs starting {prefix}")]

    def counts(self) -> list[StateCount]:
        rows = self._query(_COUNTS, [], "reading the saga counters")
        return [
            StateCount(saga_type=r[0], state=state, count=int(r[2]))
            for r in rows
            if (state := self._state_or_skip(r[0], r[1], int(r[2]))) is not None
        ]

    def active_counts(self) -> list[ActiveCount]:
        rows = self._query(_ACTIVE_COUNTS, [], "counting active sagas")
        return [
            ActiveCount(r[0], state, int(r[2]), self._decode_time(r[3]), exhausted=int(r[4] or 0))
            for r in rows
            if (state := self._state_or_skip(r[0], r[1], int(r[2]))) is not None
        ]

    def recount(self) -> tuple[list[StateCount], list[StateCount]]:
        """Rebuild saga_counts from saga_log, while writers wait; the counters before and
        after (exact: a writer's counter change is either counted or waits until after)."""

        def counts(rows: list[tuple[Any, ...]]) -> list[StateCount]:
            return [
                StateCount(saga_type=str(r[0]), state=state, count=int(r[2]))
                for r in rows
                if (state := self._state_or_skip(str(r[0]), r[1], int(r[2]))) is not None
            ]

        with self._counters_locked() as run:
            before = run(_ALL_COUNTS)
            run("DELETE FROM saga_counts")
            run(_RECOUNT)
            after = run(_ALL_COUNTS)
        return counts(before), counts(after)

    # -- bulk jobs ------------------------------------------------------------------------

    def job(self, job_id: str) -> JobRecord | None:
        if not self._jobs_recorded():
            return None
        rows = self._query(_JOB, [job_id], f"reading job {job_id}")
        if not rows:
            return None
        r = rows[0]
        return JobRecord(
            job_id=str(r[0]),
            action=str(r[1]),
            selector=self._decode_json(r[2]) or {},
            reason=r[3],
            started_by=str(r[4]),
            started_at=self._decode_time(r[5]) or utcnow(),
            finished_at=self._decode_time(r[6]),
        )

    def start_job(self, job: JobRecord) -> None:
        params = [
            job.job_id,
            job.action,
            self._encode_json(job.selector),
            job.reason,
            job.started_by,
            self._encode_time(job.started_at),
        ]
        self._update(_START_JOB, params, f"recording job {job.job_id}")

    def finish_job(self, job_id: str, at: datetime) -> None:
        self._update(_FINISH_JOB, [self._encode_time(at), job_id], f"finishing job {job_id}")

    def touched_by(self, job_id: str) -> set[str]:
        if not self._jobs_recorded():
            return set()
        rows = self._query(touched_statement(self.dialect), [job_id], f"reading what job {job_id} touched")
        return {str(r[0]) for r in rows}

    # -- leases ---------------------------------------------------------------------------

    def acquire_lease(self, saga_id: str, owner: str, until: datetime, now: datetime) -> LeaseHolder | None:
        doing = f"taking the lease on saga {saga_id}"
        changed = self._update(
            _ACQUIRE, [owner, self._encode_time(until), saga_id, owner, self._encode_time(now)], doing
        )
        if changed == 1:
            return None
        # Refused (or no such saga): who holds it now, read after the refusal.
        rows = self._query(_HOLDER, [saga_id], doing)
        if not rows:
            return LeaseHolder(owner="", expires_at=None)
        return LeaseHolder(owner=rows[0][0] or "", expires_at=self._decode_time(rows[0][1]))

    def take_over_lease(self, saga_id: str, owner: str, previous: str, until: datetime) -> bool:
        params = [owner, self._encode_time(until), saga_id, previous]
        return self._update(_TAKE_OVER, params, f"taking over the lease on saga {saga_id}") == 1

    def release_lease(self, saga_id: str, owner: str) -> None:
        self._update(_RELEASE, [saga_id, owner], f"releasing the lease on saga {saga_id}")

    def released_definitions(self) -> list[dict[str, Any]]:
        rows = self._query(_RELEASED_DEFINITIONS, [], "reading the definitions of waiting sagas")
        return [decoded for r in rows if isinstance(decoded := self._decode_json(r[0]), dict)]

    def held_on(self, host: str) -> list[tuple[str, str]]:
        rows = self._query(_HELD, [], f"reading the leases held on {host}")  # the held ones only: few
        return [(str(r[0]), str(r[1])) for r in rows if str(r[1]).startswith(f"{host}:")]

    @staticmethod
    def _claim_parts(types: Sequence[str]) -> tuple[str, str, list[Any]]:
        """The due and lapsed SELECTs (``?`` placeholders) for ``types``, and the type values."""
        where = f" AND saga_type IN ({', '.join('?' for _ in types)})" if types else ""
        return _DUE.replace("{types}", where), _LAPSED.replace("{types}", where), list(types)

    # -- the reader view (SagaReader) ------------------------------------------------------

    def summaries(self, query: SagaQuery) -> list[SagaSummary]:
        return [summarize(r) for r in self.list_sagas(query)]

    def summary(self, saga_id: str) -> SagaSummary | None:
        saga = self.get(saga_id)
        return None if saga is None else summarize(saga)

    def stamp(self, saga_id: str) -> tuple[Any, ...] | None:
        rows = self._query(_STAMP, [saga_id, saga_id], f"reading saga {saga_id}")
        return tuple(rows[0]) if rows else None

    def detail(self, saga_id: str) -> SagaRecord | None:
        saga = self.get(saga_id)
        if saga is not None:
            saga.transitions = self.transitions(saga_id)
        return saga
