"""Canary redrive: move a few messages first, watch whether their sagas get on, and only then
move the rest (``redrive --canary N [--canary-wait DUR]``).

Guarantees:
- the canary messages are moved like any redrive (sent, then deleted from the DLQ); the rest
  are not touched until the canaries' sagas have all got on: the step each canary message is
  for has finished (its compensation completed, or its action answered) or the saga has ended;
- the run stops, leaving the rest in the DLQ, as soon as a canary message is back in the DLQ
  (its participant failed it again), or when the wait runs out with a canary saga that did not
  get on; the result says which and why (exit 3). A message is never lost either way: the
  canaries are in their source queue or back in the DLQ, the rest never left it;
- the saga log is read through a lookup passed in (this package never opens a store); the
  clock is injected, so the wait and the poll interval cost tests no time;
- with tracing on, the watch is a span linked to each canary message's saga step (the trace
  context the message carries).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sagactl.clock import Clock, SystemClock
from sagactl.dlq.messages import MessageFilter
from sagactl.dlq.outcomes import Action, Outcome, Progress, RedriveRequest, RedriveResult, SagaStateLookup
from sagactl.dlq.peek import PeekRequest, peek
from sagactl.dlq.redrive import redrive
from sagactl.errors import UsageError
from sagactl.tracing import NOOP, Tracing

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

DEFAULT_WAIT = 120.0  # seconds: --canary-wait
DEFAULT_POLL = 5.0  # seconds between looks at the saga log and the DLQ
MAX_CANARY = 1000


class StepProgress(StrEnum):
    """How far a canary message's saga got with the step the message is for."""

    DONE = "done"  # the step finished (compensated, completed, failed) or the saga ended
    WAITING = "waiting"  # the step still waits for its participant
    UNKNOWN = "unknown"  # no saga_id in the message, or the saga is not in the log


ProgressLookup = Callable[[str | None, str | None], StepProgress]  # (saga_id, step_name) -> progress


class Verdict(StrEnum):
    GO = "go"
    STOP = "stop"


@dataclass(frozen=True, slots=True)
class CanaryPlan:
    """``--canary N``, ``--canary-wait``, and how often to look."""

    size: int
    wait: float = DEFAULT_WAIT
    poll: float = DEFAULT_POLL

    def validate(self) -> None:
        if not 1 <= self.size <= MAX_CANARY:
            raise UsageError(f"--canary must be 1 to {MAX_CANARY}, not {self.size}")
        if not 0 < self.wait <= 86400:
            raise UsageError("--canary-wait must be above 0 and at most 1d")
        if not 0 < self.poll <= self.wait:
            raise UsageError("the canary poll interval must be above 0 and at most --canary-wait")


@dataclass(slots=True)
class CanaryReport:
    """What the canary phase saw: the ``canary`` object of the ``redrive`` JSON."""

    size: int
    wait: float
    verdict: Verdict | None = None
    reason: str = ""
    waited: float = 0.0
    progress: dict[str, StepProgress] = field(default_factory=dict)  # canary message ID -> progress
    back: list[str] = field(default_factory=list)  # canary message IDs found in the DLQ again
    outcomes: list[Outcome] = field(default_factory=list)  # the canary messages moved

    def to_dict(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "wait_seconds": self.wait,
            "verdict": self.verdict.value if self.verdict else None,
            "reason": self.reason,
            "waited_seconds": round(self.waited, 3),
            "messages": [
                {
                    "message_id": o.message.message_id,
                    "new_message_id": o.new_message_id,
                    "saga_id": o.message.saga_id,
                    "step_name": o.message.step_name,
                    "progress": self.progress.get(o.message.message_id, StepProgress.UNKNOWN).value,
                    "back_in_dlq": o.new_message_id in self.back,
                }
                for o in self.outcomes
            ],
        }


def canary_redrive(
    client: SQSClient,
    request: RedriveRequest,
    plan: CanaryPlan,
    lookup: ProgressLookup,
    *,
    saga_state: SagaStateLookup | None = None,
    clock: Clock | None = None,
    progress: Progress | None = None,
    tracer: Tracing = NOOP,
) -> RedriveResult:
    """Move ``plan.size`` messages, watch their sagas, then move the rest (honouring the
    request's rate and --max) or stop and leave them. The result holds every message's outcome
    and the canary report; its exit code is 3 when the canary stopped the run."""
    plan.validate()
    request.validate()
    if request.dry_run:
        raise UsageError("--canary moves messages and watches their sagas: it cannot be a --dry-run")
    clock = clock or SystemClock()
    size = plan.size if request.max_messages is None else min(plan.size, request.max_messages)
    result = redrive(client, replace(request, max_messages=size), saga_state=saga_state, clock=clock, progress=progress)
    report = CanaryReport(size=size, wait=plan.wait)
    result.canary = report
    report.outcomes = [o for o in result.outcomes if o.action is Action.MOVED]
    if result.error is not None or result.interrupted or result.failed:
        _stop(result, report, "the canary messages could not all be moved")
        return result
    if not report.outcomes:
        report.verdict, report.reason = Verdict.GO, "no message to move"
        return result
    try:
        with tracer.action("canary watch", canaries=len(report.outcomes), dlq=result.dlq.name) as watch:
            for moved in report.outcomes:
                watch.link(*moved.message.trace, saga_id=moved.message.saga_id, step=moved.message.step_name)
            _watch(client, result, report, plan, lookup, clock)
            watch.set(verdict=report.verdict.value if report.verdict else None, reason=report.reason)
    except KeyboardInterrupt:  # what moved stays moved; the rest never left: say so (exit 130)
        result.interrupted = True
        report.verdict, report.reason = Verdict.STOP, "interrupted while watching the canary sagas"
    if report.verdict is Verdict.STOP:
        _stop(result, report, report.reason)
    rest = None if request.max_messages is None else request.max_messages - result.moved - result.poisoned
    if report.verdict is Verdict.GO and (rest is None or rest > 0):
        again = replace(request, max_messages=rest)
        more = redrive(client, again, saga_state=saga_state, clock=clock, progress=progress)
        _merge(result, more)
    return result


def _watch(
    client: SQSClient,
    result: RedriveResult,
    report: CanaryReport,
    plan: CanaryPlan,
    lookup: ProgressLookup,
    clock: Clock,
) -> None:
    """Look at the canaries' sagas and at the DLQ until every saga got on (go), a canary is
    back in the DLQ or the wait ran out (stop)."""
    started = clock.monotonic()
    moved = report.outcomes
    saga_ids = frozenset(o.message.saga_id for o in moved if o.message.saga_id)
    while True:
        for o in moved:
            report.progress[o.message.message_id] = lookup(o.message.saga_id, o.message.step_name)
        report.back = _back_in_dlq(client, result, moved, saga_ids)
        report.waited = clock.monotonic() - started
        if report.back:
            report.verdict = Verdict.STOP
            report.reason = f"{len(report.back)} of {len(moved)} canary messages came back to the DLQ"
            return
        waiting = [o for o in moved if report.progress[o.message.message_id] is not StepProgress.DONE]
        if not waiting:
            report.verdict = Verdict.GO
            report.reason = f"the {len(moved)} canary sagas got on within {report.waited:.0f}s"
            return
        if report.waited >= plan.wait:
            unknown = sum(1 for o in waiting if report.progress[o.message.message_id] is StepProgress.UNKNOWN)
            report.verdict = Verdict.STOP
            report.reason = f"{len(waiting)} of {len(moved)} canary sagas did not get on within {plan.wait:g}s" + (
                f" ({unknown} not in the saga log)" if unknown else ""
            )
            return
        clock.sleep(min(plan.poll, plan.wait - report.waited))


def _back_in_dlq(client: SQSClient, result: RedriveResult, moved: list[Outcome], saga_ids: frozenset[str]) -> list[str]:
    """The new message IDs of the canaries that are in the DLQ again (SQS keeps a message's ID
    when it dead-letters it; a copy is also recognised by its saga, step and redrive counter)."""
    ids = {o.new_message_id for o in moved}
    keys = {(o.message.saga_id, o.message.step_name, o.redrive_count): o.new_message_id for o in moved}
    wanted = MessageFilter(saga_ids) if saga_ids else MessageFilter()
    seen = peek(client, result.dlq, PeekRequest(queue=result.dlq.url, filter=wanted, wait=0))
    back = []
    for message in seen.messages:
        if message.message_id in ids:
            back.append(message.message_id)
        elif (key := (message.saga_id, message.step_name, message.redrive_count)) in keys:
            back.append(str(keys[key]))
    return sorted(set(back))


def _stop(result: RedriveResult, report: CanaryReport, why: str) -> None:
    report.verdict, report.reason = Verdict.STOP, why
    result.stopped = f"canary stopped the redrive: {why}; the rest stays in the DLQ"


def _merge(result: RedriveResult, more: RedriveResult) -> None:
    result.outcomes.extend(more.outcomes)
    result.scanned += more.scanned
    result.unmatched += more.unmatched
    result.release_failures += more.release_failures
    result.error = result.error or more.error
    result.interrupted = result.interrupted or more.interrupted


