"""The Store and SagaReader protocols: the engine writes saga_log only through Store, the
operator's view reads it (or a mapped table) only through SagaReader.

Every write is one transaction: the saga row and its appended transitions commit together
or not at all (the per-type/state counters follow by trigger, whoever writes). Writes made
by a driver are conditional on its lease, so a process that lost its lease can never
overwrite the work of the one that took over.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sagactl.codec import escaped
from sagactl.errors import LeaseHeldError, UnavailableError, UsageError
from sagactl.models import SagaRecord, SagaState, SagaSummary, SortKey, StateCount, Transition

SCHEMA_VERSION = 10  # v9 is absent on this branch (another change adds it); 010 applies after 008


class SagaExistsError(UsageError):
    """A saga with this ID is already in the log."""


class UnreadableSagaError(UnavailableError):
    """A saga_log row this sagactl cannot read, written by another writer or by hand: a state it
    does not know (``paused``, ``COMPLETED``), JSON it cannot decode. ``show`` and the commands
    that drive a saga stop on it (exit 4); listings skip it with a warning."""

    def __init__(self, saga_id: str, location: str, problem: str, *, state: str | None = None) -> None:
        super().__init__(
            f"saga {escaped(saga_id)} in {location} cannot be read: {problem}",
            hint="fix the row (states are stored lowercase) or upgrade sagactl"
            if state is not None
            else "fix the row or upgrade sagactl",
        )
        self.saga_id = saga_id
        self.problem = problem
        self.state = state


class LeaseLostError(LeaseHeldError):
    """This process no longer holds the saga's lease; it must stop driving it."""


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    owner: str
    expires_at: datetime | None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A saga a worker just took: ``lapsed`` when the lease of a driver that stopped renewing
    it had expired (a takeover), else it was due (detached, a retry or a reply deadline)."""

    saga_id: str
    lapsed: bool


@dataclass(frozen=True, slots=True)
class SagaQuery:
    """Filters for listing sagas. ``stuck`` needs ``now`` and ``idle_before``.

    stuck = non-terminal and (deadline_at < now, or no deadline and updated_at < idle_before).
    ``saga_ids``: only these (exact IDs); ``created_from``/``created_before``: created in
    [from, before); ``step``: the current step's name; ``error``: a literal substring of the
    last error (case-sensitive; no wildcards); ``job``: sagas a bulk job wrote transitions for.
    """

    states: Sequence[SagaState] = ()
    saga_type: str | None = None
    stuck: bool = False
    now: datetime | None = None
    idle_before: datetime | None = None
    updated_before: datetime | None = None
    limit: int | None = None
    saga_ids: Sequence[str] = ()
    created_from: datetime | None = None
    created_before: datetime | None = None
    step: str | None = None
    error: str | None = None
    job: str | None = None
    sort: SortKey | None = None


@dataclass(frozen=True, slots=True)
class PruneQuery:
    """Finished sagas to prune: in one of ``states`` (terminal ones only, whatever is asked),
    last updated (so finished) before ``before``, of ``saga_type`` if given."""

    before: datetime
    states: Sequence[SagaState] = (SagaState.COMPLETED, SagaState.FAILED)
    saga_type: str | None = None


@dataclass(frozen=True, slots=True)
class ActiveCount:
    """Exact count of active sagas of one type and state, and when the oldest one started;
    ``exhausted``: of those compensating, the ones nothing will drive again until an operator
    acts (a compensation's retries ran out or it was refused: no lease, no wake-up); None where
    the log cannot tell (a foreign table)."""

    saga_type: str
    state: SagaState
    count: int
    oldest_created_at: datetime | None
    exhausted: int | None = None


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A bulk job (resume/abort/resolve over a selector): what it does, selected how, why, who
    started it (user@host) and when; ``finished_at`` once it went through its whole plan."""

    job_id: str
    action: str
    selector: dict[str, Any]
    reason: str | None
    started_by: str
    started_at: datetime
    finished_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What a store is, for messages (never carries a password). ``ages``: its sagas carry
    times to judge age by (a foreign table may have none: its stuck sagas are then the
    compensating ones, however long they have been)."""

    kind: str
    location: str
    schema_version: int = SCHEMA_VERSION
    extra: dict[str, str] = field(default_factory=dict)
    ages: bool = True


class SagaReader(Protocol):
    """What the operator's view reads, read-only: a native saga log or another orchestrator's
    mapped table (SqliteStore, PostgresStore, MappedTableStore)."""

    info: StoreInfo

    def summaries(self, query: SagaQuery) -> list[SagaSummary]:
        """Sagas matching the query as list rows: compensating first, then oldest first (for
        ``stuck``: then the longest overdue)."""
        ...

    def summary(self, saga_id: str) -> SagaSummary | None:
        """One saga's list row, or None."""
        ...

    def stamp(self, saga_id: str) -> tuple[Any, ...] | None:
        """Values that change whenever the saga is written (None: no such saga), read from
        indexes only: what ``show --follow`` polls before it reads the saga again."""
        ...

    def ids_with_prefix(self, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` saga IDs that start with ``prefix`` (compared as code points), in that
        order: an exact match comes first. An index range scan, never a table scan, on a saga
        log (a mapped table: where its ID column's type and indexes allow)."""
        ...

    def detail(self, saga_id: str) -> SagaRecord | SagaSummary | None:
        """One saga with all that is known of it: the record and its history in a native log,
        the row of a mapped table; None when there is no such saga."""
        ...

    def counts(self) -> list[StateCount]:
        """Sagas per (saga_type, state), without scanning finished sagas where the log keeps
        counters."""
        ...

    def active_counts(self) -> list[ActiveCount]:
        """Exact counts of non-terminal sagas per (saga_type, state) and the oldest one's start;
        reads only the active-state index, so its cost does not grow with finished sagas."""
        ...

    def close(self) -> None: ...


class Store(SagaReader, Protocol):
    """Durable saga log, written by the engine. Implementations: SqliteStore, PostgresStore."""

    info: StoreInfo

    def init_schema(self, progress: Callable[[int, str], None] | None = None) -> int:
        """Create or upgrade the schema; idempotent. Returns the schema version now in place.
        ``progress(version, name)`` is called before each migration applied (some rebuild an
        index or recount the log: long on a big one)."""
        ...

    def create(self, saga: SagaRecord, transitions: Sequence[Transition]) -> None:
        """Insert a new saga and its first transitions atomically.

        Raises SagaExistsError when the ID is taken.
        """
        ...

    def create_rerun(self, saga: SagaRecord, transitions: Sequence[Transition], note: Transition) -> bool:
        """Insert ``saga``, a rerun of the failed saga its ``rerun_of`` names, with its first
        transitions and, in the same transaction, link that saga to it (``rerun_as``, updated_at
        set to ``note.at``) and append ``note`` to that saga's history. Only while that saga is
        failed and not rerun yet: False when it is not (nothing written, so two concurrent reruns
        never both start).

        Raises SagaExistsError when the new ID is taken (nothing written).
        """
        ...

    def get(self, saga_id: str) -> SagaRecord | None:
        """The saga row (without transitions), or None."""
        ...

    def transitions(self, saga_id: str) -> list[Transition]:
        """The saga's history, oldest first."""
        ...

    def save(
        self, saga: SagaRecord, transitions: Sequence[Transition], *, owner: str, steps: Collection[int] | None = None
    ) -> None:
        """Write the saga's moving columns and append transitions in one transaction, if
        ``owner`` holds the lease. The lease columns are written from the record:
        ``saga.lease_owner`` and ``saga.lease_expires_at`` extend it, or (both None) give it up
        in the same commit. ``steps``: the indexes of the step records that changed (only those
        are sent); None rewrites the whole array. Data, definition and type are never
        rewritten.

        Raises LeaseLostError when another owner holds it.
        """
        ...

    def migrate(self, saga: SagaRecord, transitions: Sequence[Transition], *, owner: str) -> None:
        """Like ``save`` with the whole step array, and the definition snapshot too: a saga
        moved to a new version of its definition (``resume --definition``), in one commit with
        ``transitions``. Raises LeaseLostError when ``owner`` does not hold the lease."""
        ...

    def recount(self) -> tuple[list[StateCount], list[StateCount]]:
        """Rebuild the per-type/state counters from saga_log (writers wait meanwhile); the
        counters before and after."""
        ...

    def acquire_lease(self, saga_id: str, owner: str, until: datetime, now: datetime) -> LeaseHolder | None:
        """Take the lease if free, expired or already ours. None on success, else the holder."""
        ...

    def take_over_lease(self, saga_id: str, owner: str, previous: str, until: datetime) -> bool:
        """Take the lease from ``previous`` (known dead); False if someone else moved first."""
        ...

    def release_lease(self, saga_id: str, owner: str) -> None:
        """Give the lease up (no-op if not ours)."""
        ...

    def claim(
        self, owner: str, until: datetime, now: datetime, limit: int, types: Sequence[str] = ()
    ) -> list[Claimed]:
        """Take the lease of up to ``limit`` unfinished sagas that need a driver: released ones
        whose wake_at has come, held ones whose lease expired; oldest first, of ``types`` if
        given. Concurrent claimers never take the same saga (PostgreSQL: FOR UPDATE SKIP
        LOCKED; SQLite: one writer at a time)."""
        ...

    def released_definitions(self) -> list[dict[str, Any]]:
        """The distinct definition snapshots of unfinished sagas no driver holds (those that
        wait for a reply, a retry, a worker or an operator): where workers listen for replies."""
        ...

    def held_on(self, host: str) -> list[tuple[str, str]]:
        """(saga_id, lease owner) of unfinished sagas whose lease is held by a process of
        ``host`` (a worker checks whether those processes still live)."""
        ...

    def list_sagas(self, query: SagaQuery) -> list[SagaRecord]:
        """Sagas matching the query: compensating first, then oldest first."""
        ...

    def prunable(
        self, query: PruneQuery, state: SagaState, after: tuple[datetime, str] | None, limit: int
    ) -> list[tuple[str, datetime, str]]:
        """(saga_id, created_at, saga_type) of up to ``limit`` sagas in ``state`` that ``query`` matches,
        in (created_at, saga_id) order after ``after``: a short index range per call, however
        many were deleted before it."""
        ...

    def prunable_counts(self, query: PruneQuery) -> list[StateCount]:
        """How many sagas per (type, state) ``query`` matches (prune --dry-run)."""
        ...

    def records(self, saga_ids: Sequence[str]) -> list[SagaRecord]:
        """These sagas with their histories (those that exist), in ``saga_ids`` order."""
        ...

    def delete_finished(self, saga_ids: Sequence[str], query: PruneQuery) -> list[str]:
        """Delete in one short transaction those of ``saga_ids`` that are finished and still
        match ``query``, and their transitions (the counters follow by trigger); the IDs it
        deleted. A saga that is not completed or failed is never deleted."""
        ...

    def job(self, job_id: str) -> JobRecord | None:
        """The bulk job of this ID, or None."""
        ...

    def start_job(self, job: JobRecord) -> None:
        """Record a new bulk job (nothing happens when its ID is recorded already)."""
        ...

    def finish_job(self, job_id: str, at: datetime) -> None:
        """Mark the job as having gone through its whole plan."""
        ...

    def touched_by(self, job_id: str) -> set[str]:
        """The sagas a job wrote at least one transition for (detail.job = ``job_id``)."""
        ...
