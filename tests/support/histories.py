"""Sagas with a full history at known times (T0 + seconds), as the engine records them, for the
timeline, ``show --follow`` and ``list --watch``: built in memory, and played into a store one
commit at a time while a fake clock "sleeps"."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from sagactl.models import Outcome, Phase, SagaRecord, SagaState, StepStatus, Transition, Waiting
from sagactl.store import Store
from tests.support.clock import FakeClock
from tests.support.sagas import T0, at, saga

SAGA_ID = "7f3c9a2e-5b1d-4c8e-9f00-1a2b3c4d5e6f"
OWNER = "ops-host:4242:5eed"
Event = tuple[float, str | None, str | None, str, dict[str, Any]]  # seconds, step, old, new, detail

# reserve works; charge is refused on its third attempt (two transient failures first); reserve's
# compensation fails once, then works; the saga ends failed.
FAILED: list[Event] = [
    (0.0, None, None, "started", {"owner": OWNER}),
    (0.01, None, "started", "pending", {}),
    (0.02, "reserve", "pending", "executing", {"attempt": 1}),
    (1.2, "reserve", "executing", "completed", {"attempt": 1}),
    (1.25, "charge", "pending", "executing", {"attempt": 1}),
    (3.0, "charge", "executing", "executing", {"attempt": 2, "retry": True}),
    (6.5, "charge", "executing", "executing", {"attempt": 3, "retry": True}),
    (8.0, "charge", "executing", "failed", {"attempt": 3, "outcome": "refused", "error": "@ERROR@"}),
    (8.0, None, "pending", "compensating", {}),
    (8.05, "reserve", "completed", "compensating", {"attempt": 1}),
    (9.5, "reserve", "compensating", "compensating", {"attempt": 2, "retry": True}),
    (10.4, "reserve", "compensating", "compensated", {"attempt": 2}),
    (10.45, None, "compensating", "failed", {}),
]
CHARGE_ERROR = "HTTP 402 from POST /charges: card declined"


def transitions(events: Sequence[Event], saga_id: str = SAGA_ID, error: str = CHARGE_ERROR) -> list[Transition]:
    found = []
    for n, (seconds, step, old, new, detail) in enumerate(events, 1):
        shown = {k: (error if v == "@ERROR@" else v) for k, v in detail.items()}
        found.append(Transition(saga_id, step, old, new, at(seconds), shown, id=n))
    return found


def failed_saga(error: str = CHARGE_ERROR, saga_id: str = SAGA_ID) -> SagaRecord:
    """Ended failed: charge refused on its third attempt, reserve compensated on its second."""
    record = saga(saga_id, state=SagaState.FAILED, step=None, created=0, updated=10.45)
    reserve, charge, _ = record.steps
    reserve.status, reserve.attempts, reserve.outcome = StepStatus.COMPENSATED, 1, Outcome.SUCCEEDED
    reserve.started_at, reserve.finished_at, reserve.result = at(0.02), at(1.2), {"reservation": "r-1"}
    reserve.compensation_attempts, reserve.compensated_at = 2, at(10.4)
    charge.status, charge.attempts, charge.outcome, charge.error = StepStatus.FAILED, 3, Outcome.REFUSED, error
    charge.started_at, charge.finished_at = at(1.25), at(8.0)
    record.last_error = f"charge: {error}"
    record.transitions = transitions(FAILED, saga_id, error)
    return record


def stuck_saga(saga_id: str = SAGA_ID) -> SagaRecord:
    """Compensating and nobody at it: charge's outcome unknown (a timeout), its compensation
    tried three times and gave up at 14s (its deadline is then: list --stuck shows it)."""
    record = saga(saga_id, state=SagaState.COMPENSATING, step=1, created=0, updated=14.0, deadline=14.0)
    reserve, charge, _ = record.steps
    reserve.status, reserve.attempts, reserve.outcome = StepStatus.COMPLETED, 1, Outcome.SUCCEEDED
    charge.status, charge.attempts, charge.outcome = StepStatus.COMPENSATING, 1, Outcome.UNKNOWN
    charge.error, charge.compensation_attempts = "no reply within 5s", 3
    charge.compensation_error = "HTTP 503 from POST /refunds: refunds are paused"
    record.last_error = f"charge compensation: {charge.compensation_error}"
    record.transitions = transitions(
        [
            (0.0, None, None, "started", {"owner": OWNER}),
            (0.01, None, "started", "pending", {}),
            (0.02, "reserve", "pending", "executing", {"attempt": 1}),
            (0.9, "reserve", "executing", "completed", {"attempt": 1}),
            (1.0, "charge", "pending", "executing", {"attempt": 1}),
            (6.0, "charge", "executing", "failed", {"attempt": 1, "outcome": "unknown", "error": "@ERROR@"}),
            (6.0, None, "pending", "compensating", {}),
            (6.1, "charge", "failed", "compensating", {"attempt": 1}),
            (8.0, "charge", "compensating", "compensating", {"attempt": 2, "retry": True}),
            (11.5, "charge", "compensating", "compensating", {"attempt": 3, "retry": True}),
        ],
        saga_id,
        "no reply within 5s",
    )
    return record


def running_saga(saga_id: str = SAGA_ID) -> SagaRecord:
    """Being driven: charge's second attempt in flight, its deadline at 25s (now: 20s)."""
    record = saga(saga_id, state=SagaState.PENDING, step=1, created=0, updated=18.0, deadline=25.0)
    reserve, charge, _ = record.steps
    reserve.status, reserve.attempts, reserve.outcome = StepStatus.COMPLETED, 1, Outcome.SUCCEEDED
    charge.status, charge.attempts, charge.error = StepStatus.EXECUTING, 2, "HTTP 503 from POST /charges"
    record.lease_owner, record.lease_expires_at = OWNER, at(60)
    record.transitions = transitions(
        [
            (0.0, None, None, "started", {"owner": OWNER}),
            (0.01, None, "started", "pending", {}),
            (0.02, "reserve", "pending", "executing", {"attempt": 1}),
            (4.0, "reserve", "executing", "completed", {"attempt": 1}),
            (4.1, "charge", "pending", "executing", {"attempt": 1}),
            (18.0, "charge", "executing", "executing", {"attempt": 2, "retry": True}),
        ],
        saga_id,
    )
    return record


def waiting_retry(record: SagaRecord, until: float) -> SagaRecord:
    """``record`` put aside by a worker until its next attempt (released, wake_at set)."""
    record.lease_owner = record.lease_expires_at = None
    record.wake_at = at(until)
    record.steps[1].waiting = Waiting(Phase.ACTION, "retry", record.steps[1].attempts, at(until))
    return record


class Player(FakeClock):
    """A fake clock whose every sleep commits the next change of a saga to ``store`` (as its
    driver would meanwhile; None: nothing is written during that sleep), then moves time on;
    past the last change, ``at_end`` runs (e.g. an interrupt)."""

    def __init__(
        self,
        store: Store,
        changes: Sequence[Callable[[], tuple[SagaRecord, list[Transition]]] | None],
        at_end: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(T0 + timedelta(seconds=30))
        self.store, self.changes, self.at_end, self.played = store, list(changes), at_end, 0

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if self.played < len(self.changes):
            change = self.changes[self.played]
            self.played += 1
            if change is not None:
                record, new = change()
                self.store.acquire_lease(record.saga_id, OWNER, self.current + timedelta(minutes=5), self.current)
                self.store.save(record, new, owner=OWNER)
        elif self.at_end is not None:
            self.at_end()
