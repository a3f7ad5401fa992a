"""Bulk actions (``resume``, ``abort``, ``resolve --step`` over what a selector picks): the
plan, the job and the pace. No store is opened here (sagactl.ops.bulk does that).

A job is named ``job-`` + 8 hex characters of a SHA-256 over the action, its options, the
selector as typed and the reason: re-running the same command after an interruption (or
after ``--max`` stopped it) continues the same job and skips every saga it already wrote a
transition for. Once a job went through its whole plan it is finished, and the same command
starts a new one (``job-…-2``, ``-3``…). ``--job JOB`` names the job to continue (or a new
one's ID).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sagactl.clock import Clock
from sagactl.errors import SagactlError, UsageError
from sagactl.models import RunResult, SagaState, SagaSummary
from sagactl.store.base import JobRecord

MAX_RATE = 10_000.0  # sagas per second
MAX_JOB_ID = 64


class BulkAction(StrEnum):
    RESUME = "resume"
    ABORT = "abort"
    RESOLVE = "resolve"

    @property
    def done(self) -> str:
        return {"resume": "resumed", "abort": "aborted", "resolve": "resolved"}[self.value]


@dataclass(frozen=True, slots=True)
class PlanItem:
    """One saga of a plan: what will happen to it (``will``), or why nothing will (``skip``)."""

    saga_id: str
    saga: SagaSummary | None
    will: str | None = None
    skip: str | None = None

    def to_dict(self) -> dict[str, Any]:
        s = self.saga
        return {
            "saga_id": self.saga_id,
            "saga_type": s.saga_type if s else None,
            "state": s.state.value if s else None,
            "current_step_name": s.current_step_name if s else None,
            "last_error": s.last_error if s else None,
            "plan": self.will,
            "skip": self.skip,
        }


@dataclass(slots=True)
class BulkPlan:
    """The job and what it will do to each selected saga; ``later``: left for the job's next run
    by ``--max``; ``missing``: IDs that named no saga."""

    job: JobRecord
    continuing: bool
    selector_text: str
    items: list[PlanItem]
    later: list[PlanItem] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def to_act(self) -> list[PlanItem]:
        return [item for item in self.items if item.will is not None]


@dataclass(slots=True)
class BulkReport:
    """What a bulk run did: the plan, each saga's result or error, and how it ended."""

    action: BulkAction
    plan: BulkPlan
    dry_run: bool = False
    declined: bool = False
    results: list[RunResult] = field(default_factory=list)
    failures: list[tuple[str, SagactlError]] = field(default_factory=list)
    stopped: SagactlError | None = None  # interrupted, or the database went away
    finished: bool = False
    elapsed: float = 0.0


def _at(saga: SagaSummary) -> str:
    return f" at {saga.current_step_name}" if saga.current_step_name else ""


def plan_item(
    action: BulkAction,
    saga: SagaSummary,
    *,
    step: str | None = None,
    out_of_order: bool = False,
    done_before: bool = False,
) -> PlanItem:
    """What ``action`` will do to ``saga`` as the selector saw it (the engine checks again
    when it gets there: a saga another process moved meanwhile is refused, not forced)."""
    if done_before:
        return PlanItem(saga.saga_id, saga, skip="done by this job before")
    if saga.state.terminal:
        return PlanItem(saga.saga_id, saga, skip=f"already {saga.state.value}")
    compensating = saga.state is SagaState.COMPENSATING
    if action is BulkAction.RESUME:
        will = f"retry the compensation{_at(saga)}" if compensating else f"continue{_at(saga)}"
    elif action is BulkAction.ABORT:
        will = (
            f"record the abort, retry the compensation{_at(saga)}"
            if compensating
            else f"stop{_at(saga)}, compensate what it did"
        )
    else:
        if not compensating:
            return PlanItem(saga.saga_id, saga, skip=f"{saga.state.value}, not compensating: nothing to resolve")
        waiting = saga.current_step_name
        if waiting is not None and waiting != step and not out_of_order:
            return PlanItem(saga.saga_id, saga, skip=f"the compensation waiting is {waiting}'s, not {step}'s")
        will = f"mark {step}'s compensation done by hand, compensate the earlier steps"
    return PlanItem(saga.saga_id, saga, will=will)


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def job_base(action: BulkAction, options: Mapping[str, Any], selector: Mapping[str, Any], reason: str | None) -> str:
    """The ID a job gets from what it does: the same command, the same job."""
    text = canonical({"action": action.value, "options": options, "selector": selector, "reason": reason})
    return "job-" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def check_job_id(job_id: str) -> str:
    """``--job``: a job ID as sagactl prints them, or a name of the operator's (letters,
    digits, ``-_.:``)."""
    if not job_id or len(job_id) > MAX_JOB_ID or not all(c.isalnum() or c in "-_.:" for c in job_id):
        raise UsageError(
            f"--job takes a job ID (letters, digits, - _ . : up to {MAX_JOB_ID}), got '{job_id[:40]}'",
            hint="as a bulk command printed it, e.g. job-3fa2c1d0",
        )
    return job_id


def check_limits(rate: float | None, max_sagas: int | None) -> None:
    """``--rate`` above 0 and at most MAX_RATE sagas per second; ``--max`` at least 1."""
    import math

    if rate is not None and not (math.isfinite(rate) and 0 < rate <= MAX_RATE):
        raise UsageError(f"--rate must be above 0 and at most {MAX_RATE:g} sagas per second, not {rate:g}")
    if max_sagas is not None and not 1 <= max_sagas <= 1_000_000_000:
        raise UsageError(f"--max must be 1 to 1000000000, got {max_sagas}")


def tags(job: JobRecord, selector_text: str) -> dict[str, Any]:
    """What every transition a job writes carries in its detail."""
    found: dict[str, Any] = {"job": job.job_id, "by": job.started_by, "selector": selector_text}
    if job.reason is not None:
        found["reason"] = job.reason
    return found


class Pacer:
    """At most ``rate`` sagas per second: the n-th saga starts no sooner than n/rate seconds
    after the first (no burst after a slow saga beyond that average)."""

    def __init__(self, rate: float | None, clock: Clock) -> None:
        self.rate = rate
        self.clock = clock
        self.started: float | None = None
        self.count = 0

    def wait(self) -> None:
        """Wait until the next saga may start, and count it."""
        now = self.clock.monotonic()
        if self.started is None:
            self.started = now
        elif self.rate is not None:
            due = self.started + self.count / self.rate
            if due > now:
                self.clock.sleep(due - now)
        self.count += 1
