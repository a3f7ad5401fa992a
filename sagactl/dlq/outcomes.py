"""What a redrive is asked to do (RedriveRequest) and what happened to each message
(Outcome, RedriveResult): the ``redrive`` JSON contract."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from sagactl.aws import QueueRef
from sagactl.dlq.messages import DlqMessage, MessageFilter
from sagactl.dlq.peek import DEFAULT_WAIT, MAX_COUNT, validate_timing
from sagactl.errors import ExitCode, SagactlError, UsageError
from sagactl.models import SagaState, iso

DEFAULT_MAX_REDRIVES = 5
DEFAULT_HOLD = 300  # seconds a scanned message stays hidden at most if sagactl dies mid-run
DEFAULT_CONCURRENCY = 4
MAX_CONCURRENCY = 32
MAX_RATE = 1_000_000.0  # messages per second


class Action(StrEnum):
    MOVED = "moved"
    POISONED = "poisoned"
    SKIPPED = "skipped"
    FAILED = "failed"
    WOULD_MOVE = "would_move"
    WOULD_POISON = "would_poison"


class Progress(Protocol):
    """Told after every batch: the result so far and the DLQ's depth when the run began."""

    def __call__(self, result: RedriveResult, total: int | None) -> None: ...


SagaStateLookup = Callable[[str], SagaState | None]


class Report(Protocol):
    """A part of the redrive document another module fills in (the canary report)."""

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class RedriveRequest:
    dlq: str
    to: str | None = None
    filter: MessageFilter = field(default_factory=MessageFilter)
    only_open: bool = False
    max_messages: int | None = None
    rate: float | None = None
    max_redrives: int | None = None  # None: DEFAULT_MAX_REDRIVES; 0: no limit
    poison_queue: str | None = None
    dry_run: bool = False
    hold: int = DEFAULT_HOLD
    wait: int = DEFAULT_WAIT
    concurrency: int = DEFAULT_CONCURRENCY

    @property
    def redrive_limit(self) -> int:
        return DEFAULT_MAX_REDRIVES if self.max_redrives is None else self.max_redrives

    def validate(self) -> None:
        """Refuse what a redrive cannot honour (NaN, infinities, overflow, negatives), before
        SQS is contacted."""
        validate_timing(self.hold, self.wait)
        if self.max_messages is not None and not 1 <= self.max_messages <= MAX_COUNT:
            raise UsageError(f"--max must be 1 to {MAX_COUNT}, not {self.max_messages}")
        check_rate(self.rate)
        if not 0 <= self.redrive_limit <= MAX_COUNT:
            raise UsageError(f"--max-redrives must be 0 (no limit) to {MAX_COUNT}, not {self.redrive_limit}")
        self.filter.validate()
        if self.poison_queue and self.redrive_limit == 0:
            raise UsageError("--poison-queue needs a redrive limit", hint="drop --max-redrives 0")
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise UsageError(f"--concurrency must be 1..{MAX_CONCURRENCY}, not {self.concurrency}")


def check_rate(rate: float | None) -> None:
    """``--rate``: a finite number of messages per second above 0, at most MAX_RATE."""
    if rate is not None and not (math.isfinite(rate) and 0 < rate <= MAX_RATE):
        raise UsageError(f"--rate must be above 0 and at most {MAX_RATE:g} messages per second, not {rate:g}")


@dataclass(slots=True)
class Outcome:
    """What happened to one message."""

    message: DlqMessage
    action: Action
    destination: str | None = None
    reason: str | None = None
    new_message_id: str | None = None
    redrive_count: int | None = None  # the counter the message carries now

    def to_dict(self) -> dict[str, Any]:
        m = self.message
        return {
            "message_id": m.message_id,
            "saga_id": m.saga_id,
            "step_name": m.step_name,
            "command": m.command,
            "action": self.action.value,
            "reason": self.reason,
            "destination": self.destination,
            "new_message_id": self.new_message_id,
            "redrive_count": m.redrive_count if self.redrive_count is None else self.redrive_count,
            "receive_count": m.receive_count,
            "group_id": m.group_id,
            "sent_at": iso(m.sent_at),
            "body": m.body,
        }


@dataclass(slots=True)
class RedriveResult:
    dlq: QueueRef
    destination: QueueRef | None
    poison: QueueRef | None
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)
    scanned: int = 0  # distinct messages received from the DLQ
    unmatched: int = 0  # not matching --saga-id / --step: untouched
    release_failures: int = 0
    error: SagactlError | None = None  # why the run stopped early
    interrupted: bool = False
    canary: Report | None = None  # --canary: what the canary phase saw
    stopped: str | None = None  # why the run left the rest in the DLQ on purpose (the canary): exit 3
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def count(self, action: Action) -> int:
        return sum(1 for o in self.outcomes if o.action is action)

    @property
    def moved(self) -> int:
        return self.count(Action.MOVED)

    @property
    def skipped(self) -> int:
        return self.count(Action.SKIPPED)

    @property
    def poisoned(self) -> int:
        return self.count(Action.POISONED)

    @property
    def failed(self) -> int:
        return self.count(Action.FAILED)

    @property
    def exit_code(self) -> ExitCode:
        """4 unreachable, 130 interrupted, 3 when any message failed or the canary stopped the
        run, else 0."""
        if self.error is not None:
            return self.error.exit_code
        if self.interrupted:
            return ExitCode.INTERRUPTED
        return ExitCode.ATTENTION if self.failed or self.stopped else ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        """The ``redrive`` JSON contract (docs/output.md)."""
        return {
            "moved": self.moved,
            "skipped": self.skipped,
            "poisoned": self.poisoned,
            "failed": self.failed,
            "dry_run": self.dry_run,
            "would_move": self.count(Action.WOULD_MOVE),
            "would_poison": self.count(Action.WOULD_POISON),
            "unmatched": self.unmatched,
            "scanned": self.scanned,
            "dlq": self.dlq.name,
            "dlq_url": self.dlq.url,
            "destination": self.destination.name if self.destination else None,
            "destination_url": self.destination.url if self.destination else None,
            "poison_queue": self.poison.name if self.poison else None,
            "interrupted": self.interrupted,
            "error": self.error.one_line() if self.error else None,
            "canary": self.canary.to_dict() if self.canary is not None else None,
            "messages": [o.to_dict() for o in self.outcomes],
        }
