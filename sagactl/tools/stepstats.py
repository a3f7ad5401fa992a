"""`stats --steps`: how each step behaves, from the saga log, and where its configuration fights
what is observed.

Per saga type, step and phase (action or compensation): runs and how they ended, the p50/p95/p99
duration (first attempt to outcome, retries and backoffs included), attempts per success, the
failure rate (failed / ended) and the timeout rate (attempts that got no answer within the
timeout / attempts). Flags, against the definition snapshot the type's newest saga runs with:

- the timeout fired on attempts of runs that then succeeded on retry: the participant does
  answer, later than the timeout (each such timeout is a duplicate the participant must absorb);
- the timeout sits below the observed p99: more than 1 run in 100 needs longer than one attempt;
- a compensation over SQS whose retry budget (every attempt to its timeout plus every backoff
  at its ceiling) outlasts its command queue's message retention: a retried compensation can
  outlive the messages it sent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sagactl.definitions.model import Endpoint, SagaDefinition, StepDef, duration, from_snapshot, retry_budget
from sagactl.errors import UsageError
from sagactl.models import counted
from sagactl.store.stepruns import StepTotals

DEFAULT_RETENTION = 4 * 86400.0  # SQS's default MessageRetentionPeriod


@dataclass(frozen=True, slots=True)
class Retention:
    """A queue's message retention: ``seconds`` as SQS said, or None with ``why`` unknown."""

    queue: str
    seconds: float | None
    why: str | None = None


RetentionLookup = Callable[[Endpoint], Retention]


@dataclass(slots=True)
class StepStats:
    """A step's totals (``observed``) judged against its definition: the configured timeout
    and retry budget, the queue's retention for an SQS compensation, and the flags raised."""

    observed: StepTotals
    timeout_seconds: float | None = None
    retry_budget_seconds: float | None = None
    retention: Retention | None = None
    flags: list[str] = field(default_factory=list)

    @property
    def saga_type(self) -> str:
        return self.observed.saga_type

    @property
    def step_name(self) -> str:
        return self.observed.step_name

    @property
    def phase(self) -> str:
        return self.observed.phase

    def to_dict(self) -> dict[str, Any]:
        seen = self.observed
        p50, p95, p99 = (None if q is None else round(q, 3) for q in seen.quantiles)  # SQLite keeps ms
        ended = seen.succeeded + seen.failed + seen.resolved
        return {
            "saga_type": seen.saga_type,
            "step_name": seen.step_name,
            "phase": seen.phase,
            "runs": seen.runs,
            "succeeded": seen.succeeded,
            "failed": seen.failed,
            "resolved": seen.resolved,
            "running": seen.runs - ended,
            "p50_seconds": p50,
            "p95_seconds": p95,
            "p99_seconds": p99,
            "attempts": seen.attempts,
            "attempts_per_success": seen.attempts_of_successes / seen.succeeded if seen.succeeded else None,
            "failure_rate": seen.failed / ended if ended else None,
            "timeouts": seen.timeouts,
            "timeout_rate": seen.timeouts / seen.attempts if seen.attempts else None,
            "timeouts_then_succeeded": seen.timeouts_then_succeeded,
            "timeout_seconds": self.timeout_seconds,
            "retry_budget_seconds": self.retry_budget_seconds,
            "queue": self.retention.queue if self.retention else None,
            "queue_retention_seconds": self.retention.seconds if self.retention else None,
            "flags": list(self.flags),
        }


@dataclass(frozen=True, slots=True)
class StepStatsReport:
    store: str
    since: str
    saga_type: str | None
    steps: list[StepStats]

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "since": self.since,
            "saga_type": self.saga_type,
            "steps": [s.to_dict() for s in self.steps],
        }


def definitions(snapshots: Mapping[str, dict[str, Any]]) -> dict[str, SagaDefinition]:
    """The snapshots this sagactl can read, by saga type (others are left out: no flags)."""
    readable = {}
    for saga_type, snapshot in snapshots.items():
        try:
            readable[saga_type] = from_snapshot(snapshot)
        except (KeyError, IndexError, TypeError, ValueError, UsageError):
            continue
    return readable


def judge(stats: StepStats, step: StepDef, definition: SagaDefinition, retention: RetentionLookup) -> None:
    """Fill in ``stats``' configuration and flags from the definition ``step`` belongs to."""
    action = stats.phase == "action"
    timeout = step.timeout if action else step.compensation_timeout
    policy = step.retry if action else step.compensation_retry
    stats.timeout_seconds = timeout
    stats.retry_budget_seconds = retry_budget(policy, timeout)
    seen = stats.observed
    if seen.timeouts_then_succeeded:
        stats.flags.append(
            f"timeout {duration(timeout)} fired on {counted(seen.timeouts_then_succeeded, 'attempt')} of runs that then"
            " succeeded on retry: the participant answers, later than the timeout"
        )
    p99 = seen.quantiles[2]
    if p99 is not None and p99 > timeout:
        stats.flags.append(f"timeout {duration(timeout)} is below the observed p99 {duration(p99)}")
    endpoint = definition.endpoints.get(step.endpoint)
    if action or step.compensation is None or endpoint is None or endpoint.type != "sqs":
        return
    stats.retention = kept = retention(endpoint)
    limit = kept.seconds if kept.seconds is not None else DEFAULT_RETENTION
    if stats.retry_budget_seconds > limit:
        said = (
            f"queue {kept.queue} retention {duration(limit)}"
            if kept.seconds is not None
            else f"queue {kept.queue} retention unknown ({kept.why}), SQS's default {duration(limit)} assumed"
        )
        stats.flags.append(f"retry budget {duration(stats.retry_budget_seconds)} outlasts the {said}")


def report(
    store: str,
    since: str,
    saga_type: str | None,
    totals: Iterable[StepTotals],
    snapshots: Mapping[str, dict[str, Any]],
    retention: RetentionLookup,
) -> StepStatsReport:
    """Every step's statistics and flags, in the order of each type's definition (steps it no
    longer has last), compensations after actions."""
    found = {(t.saga_type, t.step_name, t.phase): StepStats(t) for t in totals}
    defined = definitions(snapshots)
    order: dict[tuple[str, str], int] = {}
    for saga_type_, definition in defined.items():
        for index, step in enumerate(definition.steps):
            order[(saga_type_, step.name)] = index
            for phase in ("action", "compensation"):
                stats = found.get((saga_type_, step.name, phase))
                if stats is not None:
                    judge(stats, step, definition, retention)

    def rank(key: tuple[str, str, str]) -> tuple[str, int, int, str]:
        return key[0], key[2] != "action", order.get((key[0], key[1]), 1 << 30), key[1]

    return StepStatsReport(store, since, saga_type, [found[key] for key in sorted(found, key=rank)])
