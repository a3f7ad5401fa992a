"""The dead-letter queue commands: ``dlq list`` and ``redrive`` (filtered, or SQS's own move
tasks with ``--native``, ``--status``, ``--cancel``)."""

from __future__ import annotations

from sagactl.clock import Clock
from sagactl.config import Settings
from sagactl.dlq.canary import CanaryPlan, ProgressLookup, StepProgress, canary_redrive
from sagactl.dlq.outcomes import Action, Progress, RedriveRequest, RedriveResult, SagaStateLookup
from sagactl.dlq.peek import PeekRequest, PeekResult, peek
from sagactl.dlq.redrive import redrive
from sagactl.dlq.tasks import MoveTask, cancel_move_task, list_move_tasks, start_move_task
from sagactl.errors import UsageError
from sagactl.models import SagaState, SagaSummary, StepStatus
from sagactl.ops import reader_for, sqs_for, traced
from sagactl.store.base import SagaReader
from sagactl.tracing import Tracing


def list_dlq(settings: Settings, request: PeekRequest) -> PeekResult:
    """``dlq list``: peek at ``request.queue`` with the configured AWS settings."""
    from sagactl.aws import resolve_queue

    request.validate()  # before SQS is contacted: a usage error is exit 2, not a dependency's
    client = sqs_for(settings)
    return peek(client, resolve_queue(client, request.queue), request)


def redrive_dlq(
    settings: Settings,
    request: RedriveRequest,
    progress: Progress | None = None,
    *,
    canary: CanaryPlan | None = None,
    clock: Clock | None = None,
) -> RedriveResult:
    """``redrive``: move messages back; with ``only_open`` the saga log decides which; with
    ``canary`` a few first, the rest once the saga log shows their sagas got on."""
    request.validate()
    if canary is not None:
        canary.validate()
    with traced(settings) as tracer, tracer.action("redrive", dlq=request.dlq, dry_run=request.dry_run) as act:
        result = _redrive(settings, request, progress, canary, clock, tracer)
        act.set(moved=result.moved, failed=result.failed, poisoned=result.poisoned)
        moved = [o.message for o in result.outcomes if o.action is Action.MOVED]
        for message in moved[:MAX_LINKS]:  # each moved message's saga step
            act.link(*message.trace, saga_id=message.saga_id, step=message.step_name)
        return result


MAX_LINKS = 128  # links on the redrive's span (OpenTelemetry's default limit per span)


def _redrive(
    settings: Settings,
    request: RedriveRequest,
    progress: Progress | None,
    canary: CanaryPlan | None,
    clock: Clock | None,
    tracer: Tracing,
) -> RedriveResult:
    client = sqs_for(settings, pool_size=request.concurrency + 2)
    if canary is None and not request.only_open:
        return redrive(client, request, progress=progress)
    with reader_for(settings) as reader:
        lookup = _states(reader) if request.only_open else None
        if canary is None:
            return redrive(client, request, saga_state=lookup, progress=progress)
        return canary_redrive(
            client, request, canary, _progress(reader), saga_state=lookup, clock=clock, progress=progress, tracer=tracer
        )


def _states(reader: SagaReader) -> SagaStateLookup:
    def state_of(saga_id: str) -> SagaState | None:
        summary = reader.summary(saga_id)
        return None if summary is None else summary.state

    return state_of


def _progress(reader: SagaReader) -> ProgressLookup:
    """How far a canary message's saga got with its step, read afresh from the log each time."""

    def progress_of(saga_id: str | None, step: str | None) -> StepProgress:
        if not saga_id:
            return StepProgress.UNKNOWN
        found = reader.detail(saga_id)
        if found is None:
            return StepProgress.UNKNOWN
        if found.state.terminal:
            return StepProgress.DONE
        if isinstance(found, SagaSummary):  # a mapped table: no step records
            moved_on = found.current_step_name is not None and step is not None and found.current_step_name != step
            return StepProgress.DONE if moved_on else StepProgress.WAITING
        try:
            record = found.step(step or "")
        except KeyError:
            return StepProgress.WAITING
        busy = record.status in (StepStatus.EXECUTING, StepStatus.COMPENSATING)
        return StepProgress.WAITING if busy else StepProgress.DONE

    return progress_of


def check_redrive_mode(
    dlq: str | None, status: str | None, cancel: str | None, *, native: bool, filters: dict[str, bool]
) -> None:
    """``redrive`` takes one of --dlq, --status, --cancel; --native takes no filter (SQS's move
    task cannot filter, cap or dry-run). ``filters``: option name -> whether it was given."""
    modes = [name for name, value in (("--dlq", dlq), ("--status", status), ("--cancel", cancel)) if value]
    if len(modes) != 1:
        raise UsageError(
            "pass one of --dlq QUEUE, --status QUEUE or --cancel TASK_HANDLE"
            + (f" (got {' and '.join(modes)})" if modes else "")
        )
    used = [flag for flag, given in filters.items() if given]
    if native and dlq and used:
        raise UsageError(
            f"--native moves every message server-side and cannot take {', '.join(used)}",
            hint="drop --native to filter, cap or dry-run the redrive",
        )


def start_native(settings: Settings, dlq: str, to: str | None, rate: float | None) -> MoveTask:
    """``redrive --native``."""
    return start_move_task(sqs_for(settings), dlq, to, rate)


def move_task_status(settings: Settings, queue: str) -> list[MoveTask]:
    """``redrive --status QUEUE``."""
    return list_move_tasks(sqs_for(settings), queue)


def cancel_native(settings: Settings, task_handle: str) -> MoveTask:
    """``redrive --cancel TASK_HANDLE``."""
    return cancel_move_task(sqs_for(settings), task_handle)

