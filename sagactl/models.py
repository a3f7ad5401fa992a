"""Saga and step records as stored in saga_log, their states, and their JSON shapes.

The JSON produced by ``to_dict`` is a contract (docs/output.md): fields are
added, never renamed; times are ISO 8601 UTC with a trailing ``Z``; nulls are explicit.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sagactl.codec import escaped
from sagactl.errors import ExitCode, UsageError

MAX_SAGA_ID = 128  # characters: the SQS FIFO MessageGroupId limit (FIFO queues group by saga ID)
# Control, format (invisible: bidi overrides, zero widths), surrogate (bytes that were not
# UTF-8) and line/paragraph separator characters: an ID must read the same wherever it is shown.
_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


class SagaState(StrEnum):
    """Saga states: started -> pending -> completed, or compensating -> failed."""

    STARTED = "started"
    PENDING = "pending"
    COMPENSATING = "compensating"
    COMPLETED = "completed"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        return self in (SagaState.COMPLETED, SagaState.FAILED)


ACTIVE_STATES: tuple[SagaState, ...] = (
    SagaState.STARTED,
    SagaState.PENDING,
    SagaState.COMPENSATING,
)


class StepStatus(StrEnum):
    """Status of one step within a saga."""

    PENDING = "pending"
    EXECUTING = "executing"
    COMPLETED = "completed"
    FAILED = "failed"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"


class Outcome(StrEnum):
    """How a step's action ended, which decides whether it must be compensated."""

    SUCCEEDED = "succeeded"  # completed: compensate on saga failure
    REFUSED = "refused"  # the participant definitively said no: nothing to undo
    UNKNOWN = "unknown"  # may have happened (timeout, 5xx, crash mid-call): compensate
    NOT_DELIVERED = "not_delivered"  # never reached the participant: nothing to undo


class Phase(StrEnum):
    ACTION = "action"
    COMPENSATION = "compensation"


def utcnow() -> datetime:
    return datetime.now(UTC)


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """A count and its noun as English has it: ``1 step``, ``2 steps``, ``0 sagas``."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def iso(value: datetime | None) -> str | None:
    """ISO 8601 UTC with microseconds and a trailing Z (lexicographically sortable)."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")[:-6] + "Z"  # half strftime's cost: every commit formats a few


def parse_iso(value: str | datetime | None) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value.astimezone(UTC) if isinstance(value, datetime) else None
    text = value[:-1] + "+00:00" if value.endswith("Z") else value
    parsed = datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def saga_id_problem(saga_id: str) -> str | None:
    """What keeps ``saga_id`` from naming a saga sagactl records (``is empty``, ``starts or ends
    with whitespace``...), or None: 1 to MAX_SAGA_ID characters, no control or invisible
    characters, no whitespace at either end."""
    if not saga_id:
        return "is empty"
    if len(saga_id) > MAX_SAGA_ID:
        return f"is {len(saga_id)} characters long, over the {MAX_SAGA_ID} of an SQS FIFO message group ID"
    bad = next((c for c in saga_id if unicodedata.category(c) in _UNPRINTABLE), None)
    if bad is not None:
        if unicodedata.category(bad) == "Cs":
            return "is not valid UTF-8"
        return f"contains the control or invisible character U+{ord(bad):04X}"
    if saga_id != saga_id.strip():
        return "starts or ends with whitespace"
    return None


def shown_id(saga_id: str) -> str:
    """A saga ID for a message: escaped, at most 40 characters of it."""
    return escaped(saga_id if len(saga_id) <= 40 else saga_id[:40] + "…")


def check_saga_id(saga_id: str, *, lookup: bool = False) -> str:
    """``saga_id`` if it can name a new saga (saga_id_problem), else UsageError (exit 2).
    ``lookup``: the ID finds a saga another writer may have recorded under any ID, so only what
    no store can hold is refused here (empty, not UTF-8); the rest is said when it finds nothing."""
    problem = saga_id_problem(saga_id)
    if problem is None or (lookup and problem not in ("is empty", "is not valid UTF-8")):
        return saga_id
    if not saga_id:
        raise UsageError("saga ID is empty", hint="pass the ID as 'sagactl list' shows it")
    raise UsageError(f"saga ID '{shown_id(saga_id)}' {problem}")


def idempotency_key(saga_id: str, step: str, phase: Phase) -> str:
    """``{saga_id}:{step}:{phase}``: identical across retries, resumes and workers."""
    return f"{saga_id}:{step}:{phase.value}"


class SortKey(StrEnum):
    """``list --sort``: oldest first (created_at), least recently updated first, by type (then
    oldest first), or newest first. Without it: compensating first, then oldest (or longest
    stuck)."""

    AGE = "age"
    UPDATED = "updated"
    TYPE = "type"
    NEWEST = "newest"


PRUNE_BATCH = 500  # sagas deleted per transaction by `prune` (writers wait one batch at most)


@dataclass(frozen=True, slots=True)
class Waiting:
    """A step a worker put aside instead of holding a slot: its ``phase`` waits ``until`` a
    time for ``kind`` — "reply" (the answer to attempt ``tries``, sent over SQS) or "retry"
    (the backoff before attempt ``tries + 1``; ``after``: how attempt ``tries`` ended,
    "timeout" or "error")."""

    phase: Phase
    kind: str
    tries: int
    until: datetime
    after: str | None = None

    def to_dict(self) -> dict[str, Any]:
        shown = {"phase": self.phase.value, "for": self.kind, "tries": self.tries, "until": iso(self.until)}
        return shown | ({"after": self.after} if self.after else {})

    @classmethod
    def from_dict(cls, raw: dict[str, Any] | None) -> Waiting | None:
        if not raw:
            return None
        until = parse_iso(raw.get("until"))
        if until is None:
            return None
        after = raw.get("after")
        return cls(
            Phase(raw["phase"]), str(raw.get("for", "reply")), int(raw.get("tries", 1)), until, after and str(after)
        )


@dataclass(slots=True)
class StepRecord:
    """One step's progress. Mutable: the engine owns one working copy and writes it whole.

    ``error`` is the action's last error: it stays when the step is compensated (it says why
    the saga failed). ``compensation_error`` is the last error of a compensation not yet done.
    """

    name: str
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    result: Any = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    outcome: Outcome | None = None
    compensation_attempts: int = 0
    compensated_at: datetime | None = None
    compensation_error: str | None = None
    waiting: Waiting | None = None
    trace_span: str | None = None  # span ID of its latest attempt (tracing on): the next one links to it

    def needs_compensation(self) -> bool:
        """True when the action happened or may have happened and is not yet undone."""
        if self.status in (StepStatus.COMPLETED, StepStatus.COMPENSATING, StepStatus.EXECUTING):
            return True
        return self.status is StepStatus.FAILED and self.outcome is Outcome.UNKNOWN

    def _design_fields(self) -> dict[str, Any]:
        """The fields DESIGN section 4 promises for every step, in its order."""
        return {
            "name": self.name,
            "status": self.status.value,
            "attempts": self.attempts,
            "result": self.result,
            "error": self.error,
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
        }

    def to_dict(self) -> dict[str, Any]:
        return self._design_fields() | {
            "outcome": self.outcome.value if self.outcome else None,
            "compensation_attempts": self.compensation_attempts,
            "compensated_at": iso(self.compensated_at),
            "compensation_error": self.compensation_error,
            "waiting": self.waiting.to_dict() if self.waiting else None,
        }

    def to_stored(self) -> dict[str, Any]:
        """The record as saga_log.steps keeps it: the fields of DESIGN section 4 always, the
        others only when set. Every commit rewrites the whole array inside the database, so its
        size is paid on each step; a pending step is 7 keys instead of 12. Read by ``from_dict``
        (compensation_error rides with compensation_attempts: its absence marks a legacy record)."""
        stored = self._design_fields()
        if self.outcome is not None:
            stored["outcome"] = self.outcome.value
        if self.compensation_attempts:
            stored["compensation_attempts"] = self.compensation_attempts
        if self.compensation_attempts or self.compensation_error is not None:
            stored["compensation_error"] = self.compensation_error
        if self.compensated_at is not None:
            stored["compensated_at"] = iso(self.compensated_at)
        if self.waiting is not None:
            stored["waiting"] = self.waiting.to_dict()
        if self.trace_span is not None:
            stored["trace_span"] = self.trace_span
        return stored

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> StepRecord:
        outcome = raw.get("outcome")
        status = StepStatus(raw.get("status", "pending"))
        attempts = int(raw.get("compensation_attempts", 0))
        error, compensation_error = raw.get("error"), raw.get("compensation_error")
        if "compensation_error" not in raw and status is StepStatus.COMPENSATING and attempts:
            # written before compensation_error existed: a compensation's error took `error`
            error, compensation_error = None, error
        return cls(
            name=raw["name"],
            status=status,
            attempts=int(raw.get("attempts", 0)),
            result=raw.get("result"),
            error=error,
            started_at=parse_iso(raw.get("started_at")),
            finished_at=parse_iso(raw.get("finished_at")),
            outcome=Outcome(outcome) if outcome else None,
            compensation_attempts=attempts,
            compensated_at=parse_iso(raw.get("compensated_at")),
            compensation_error=compensation_error,
            waiting=Waiting.from_dict(raw.get("waiting")),
            trace_span=raw.get("trace_span") or None,
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """One row of saga_transitions: a saga (step_name None) or a step changed state."""

    saga_id: str
    step_name: str | None
    old_state: str | None
    new_state: str
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)
    id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "saga_id": self.saga_id,
            "step_name": self.step_name,
            "old_state": self.old_state,
            "new_state": self.new_state,
            "detail": self.detail,
            "at": iso(self.at),
        }


@dataclass(slots=True)
class SagaRecord:
    """One row of saga_log. Mutable for the same reason as StepRecord."""

    saga_id: str
    saga_type: str
    state: SagaState
    data: Any
    steps: list[StepRecord]
    definition: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    current_step: int | None = None
    deadline_at: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    wake_at: datetime | None = None
    last_error: str | None = None
    rerun_of: str | None = None  # the failed saga this one reruns (sagactl rerun)
    rerun_as: str | None = None  # the saga that reruns this failed one
    traceparent: str | None = None  # W3C context of the saga's root span (tracing on when it was recorded)
    tracestate: str | None = None
    transitions: list[Transition] = field(default_factory=list)

    @property
    def trace_id(self) -> str | None:
        """The OpenTelemetry trace the saga is (32 hex digits), or None: traced it was not."""
        parts = (self.traceparent or "").split("-")
        return parts[1] if len(parts) >= 4 and len(parts[1]) == 32 else None

    @property
    def current_step_name(self) -> str | None:
        if self.current_step is None or not 0 <= self.current_step < len(self.steps):
            return None
        return self.steps[self.current_step].name

    def failed_step(self) -> StepRecord | None:
        """The step whose action made the saga fail: refused, never delivered, or with an
        unknown outcome (which is then compensated, so its status moves on to compensated)."""
        for record in self.steps:
            if record.outcome in (Outcome.REFUSED, Outcome.NOT_DELIVERED, Outcome.UNKNOWN):
                return record
            if record.status is StepStatus.FAILED:
                return record
        return None

    def step(self, name: str) -> StepRecord:
        for record in self.steps:
            if record.name == name:
                return record
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        """The `run`/`resume`/`show` JSON document."""
        return {
            "saga_id": self.saga_id,
            "saga_type": self.saga_type,
            "state": self.state.value,
            "current_step": self.current_step,
            "current_step_name": self.current_step_name,
            "data": self.data,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "deadline_at": iso(self.deadline_at),
            "last_error": self.last_error,
            "lease_owner": self.lease_owner,
            "lease_expires_at": iso(self.lease_expires_at),
            "wake_at": iso(self.wake_at),
            "rerun_of": self.rerun_of,
            "rerun_as": self.rerun_as,
            "trace_id": self.trace_id,
            "steps": [step.to_dict() for step in self.steps],
            "transitions": [t.to_dict() for t in self.transitions],
        }


@dataclass(slots=True)
class RunResult:
    """What driving a saga came to: the saga as it stands and the exit code it means."""

    saga: SagaRecord
    exit_code: ExitCode
    message: str | None = None


def exit_code_for(saga: SagaRecord) -> ExitCode:
    """completed 0; failed 1 (4 when the failing step's endpoint was unreachable); else 3."""
    if saga.state is SagaState.COMPLETED:
        return ExitCode.OK
    if saga.state is SagaState.FAILED:
        if any(s.status is StepStatus.FAILED and s.outcome is Outcome.NOT_DELIVERED for s in saga.steps):
            return ExitCode.UNAVAILABLE
        return ExitCode.SAGA_FAILED
    return ExitCode.ATTENTION


@dataclass(frozen=True, slots=True)
class StateCount:
    saga_type: str
    state: SagaState
    count: int


# A saga's list row as the saga log keeps it: list's first JSON fields (DESIGN section 7), in
# order, and what a mapped table is read for.
SUMMARY_FIELDS = (
    "saga_id",
    "saga_type",
    "state",
    "current_step",
    "current_step_name",
    "created_at",
    "updated_at",
    "deadline_at",
)


@dataclass(frozen=True, slots=True)
class SagaSummary:
    """One saga as ``list`` shows it; what a read-only mapped table can tell about a saga.

    ``idle_timeout``: seconds the current step may take per the stored definition (None when
    unknown); decides when a saga without a deadline counts as stuck. ``lease_owner`` and
    ``lease_expires_at``: who drives the saga now (None in a mapped table: it has no lease).
    A foreign table's row also keeps ``source_state``, the framework's own state as stored
    (``ENQUEUED``, ``end_state=true compensating=true failed=false``); ``show`` of it may add
    the ``steps`` the framework recorded and ``notes`` on what it cannot tell.
    """

    saga_id: str
    saga_type: str
    state: SagaState
    current_step: int | None = None
    current_step_name: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    deadline_at: datetime | None = None
    last_error: str | None = None
    idle_timeout: float | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    source_state: str | None = None
    steps: tuple[StepRecord, ...] = ()
    notes: tuple[str, ...] = ()
