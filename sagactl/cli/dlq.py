"""The dead-letter queue commands: dlq list, redrive."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from sagactl.cli.common import Shared, command, mask_secrets
from sagactl.cli.options import (
    AWS_OPTIONS,
    CONFIG,
    DSN,
    OUTPUT,
    PRESET,
    QUIET,
    VERBOSE,
    DlqGroupBy,
    SagaIdFilterOpt,
    StepFilterOpt,
    VisibilityOpt,
    WaitTimeOpt,
    read_ids,
)
from sagactl.errors import ExitCode
from sagactl.models import counted
from sagactl.views.output import OutputFormat, emit, error_line, info_line, stream_is_tty


@command(AWS_OPTIONS, CONFIG, OUTPUT, QUIET, VERBOSE)
def dlq_list(
    queue: Annotated[str, typer.Argument(help="The dead-letter queue: name, URL or ARN.", show_default=False)],
    saga_id: SagaIdFilterOpt = None,
    step: StepFilterOpt = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", metavar="N", show_default=False, help="List at most N messages [default: all]."),
    ] = None,
    group_by: Annotated[
        DlqGroupBy | None,
        typer.Option(
            "--group-by",
            case_sensitive=False,
            show_default=False,
            help="Summarise by saga, step or error instead of listing each message.",
        ),
    ] = None,
    visibility_timeout: VisibilityOpt = None,
    wait_time: WaitTimeOpt = 1,
    *,
    opts: Shared,
) -> int:
    """Peek at a dead-letter queue without consuming it: saga, step, command, receive count, age
    and body of each message. Every message is visible again as soon as the listing ends."""
    from sagactl.dlq.messages import GroupBy, MessageFilter
    from sagactl.dlq.peek import PEEK_HOLD, PeekRequest
    from sagactl.ops.dlq import list_dlq
    from sagactl.views.dlq import dlq_groups_document, dlq_messages_document
    from sagactl.views.output import warning_line

    request = PeekRequest(
        queue=queue,
        filter=MessageFilter(read_ids(saga_id), step),
        limit=limit,
        hold=PEEK_HOLD if visibility_timeout is None else visibility_timeout,
        wait=wait_time,
    )
    result = list_dlq(opts.settings(), request)
    if group_by is not None:
        doc = dlq_groups_document(result, GroupBy(group_by.value))
    else:
        doc = dlq_messages_document(result, truncate=opts.output is OutputFormat.TABLE)
    emit(doc, opts.output, quiet=opts.quiet)
    if result.queue.fifo and result.unseen:
        warning_line(
            f"{result.unseen} more messages of {result.queue.name} wait behind the listed ones in their"
            " message groups; SQS hands them out only once those are deleted"
        )
    if result.release_failures:
        warning_line(
            f"{counted(result.release_failures, 'message')} could not be made visible again now; they will be when"
            f" their visibility timeout ({request.hold}s) expires"
        )
    return ExitCode.OK


@command(AWS_OPTIONS, DSN, PRESET, CONFIG, OUTPUT, QUIET, VERBOSE)
def redrive(
    dlq: Annotated[
        str | None,
        typer.Option(
            "--dlq", metavar="QUEUE", show_default=False, help="Dead-letter queue to move messages from: name or URL."
        ),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="QUEUE",
            show_default=False,
            help="Queue to move them to [default: the one queue whose redrive policy names the DLQ].",
        ),
    ] = None,
    saga_id: SagaIdFilterOpt = None,
    step: StepFilterOpt = None,
    only_open: Annotated[
        bool,
        typer.Option(
            "--only-open",
            help="Only messages whose saga is still running in the saga log; the others are reported skipped.",
        ),
    ] = False,
    max_messages: Annotated[
        int | None,
        typer.Option("--max", metavar="N", show_default=False, help="Move at most N messages."),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            metavar="N",
            show_default=False,
            help="At most N messages per second [default: no cap, several batches in flight].",
        ),
    ] = None,
    max_redrives: Annotated[
        int | None,
        typer.Option(
            "--max-redrives",
            metavar="N",
            show_default=False,
            help="A message already redriven N times goes to --poison-queue, or stays and is reported"
            " [default: 5; 0: no limit].",
        ),
    ] = None,
    poison_queue: Annotated[
        str | None,
        typer.Option(
            "--poison-queue", metavar="QUEUE", show_default=False, help="Where messages past --max-redrives go."
        ),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would move; move nothing.")] = False,
    native: Annotated[
        bool,
        typer.Option(
            "--native",
            help="Start an SQS message move task instead: server-side, every message, no filters;"
            " --rate caps it. Watch it with --status.",
        ),
    ] = False,
    status: Annotated[
        str | None,
        typer.Option("--status", metavar="QUEUE", show_default=False, help="Show the SQS move tasks of QUEUE."),
    ] = None,
    cancel: Annotated[
        str | None,
        typer.Option("--cancel", metavar="TASK_HANDLE", show_default=False, help="Cancel an SQS move task."),
    ] = None,
    canary: Annotated[
        int | None,
        typer.Option(
            "--canary",
            metavar="N",
            show_default=False,
            help="Move N messages first and watch their sagas in the saga log: once their steps got on"
            " (compensation completed) move the rest; if one comes back to the DLQ or a saga does not get"
            " on within --canary-wait, stop and leave the rest (exit 3).",
        ),
    ] = None,
    canary_wait: Annotated[
        str,
        typer.Option(
            "--canary-wait", metavar="DURATION", help="How long the canary sagas may take to get on, e.g. 2m, 30s."
        ),
    ] = "2m",
    concurrency: Annotated[
        int, typer.Option("--concurrency", metavar="N", help="Batches of 10 in flight at once (1-32).")
    ] = 4,
    visibility_timeout: VisibilityOpt = None,
    wait_time: WaitTimeOpt = 1,
    *,
    opts: Shared,
) -> int:
    """Move dead-lettered messages back to their source queue: byte for byte, deleted from the DLQ
    only once sent. Exit 0, 3 when any message failed, 4 when SQS is unreachable."""
    from contextlib import nullcontext

    from sagactl.dlq.messages import MessageFilter
    from sagactl.dlq.outcomes import DEFAULT_HOLD, RedriveRequest
    from sagactl.ops import dlq as ops
    from sagactl.views.dlq import move_task_document, move_tasks_document, redrive_document, redrive_summary_line

    filters = {
        "--saga-id": bool(saga_id),
        "--step": step is not None,
        "--only-open": only_open,
        "--max": max_messages is not None,
        "--max-redrives": max_redrives is not None,
        "--poison-queue": poison_queue is not None,
        "--dry-run": dry_run,
        "--canary": canary is not None,
    }
    ops.check_redrive_mode(dlq, status, cancel, native=native, filters=filters)
    settings = opts.settings()
    if status:
        emit(move_tasks_document(ops.move_task_status(settings, status)), opts.output, quiet=opts.quiet)
        return ExitCode.OK
    if cancel:
        emit(move_task_document(ops.cancel_native(settings, cancel)), opts.output, quiet=opts.quiet)
        return ExitCode.OK
    assert dlq is not None
    if native:
        emit(move_task_document(ops.start_native(settings, dlq, to, rate)), opts.output, quiet=opts.quiet)
        return ExitCode.OK
    request = RedriveRequest(
        dlq=dlq,
        to=to,
        filter=MessageFilter(read_ids(saga_id), step),
        only_open=only_open,
        max_messages=max_messages,
        rate=rate,
        max_redrives=max_redrives,
        poison_queue=poison_queue,
        dry_run=dry_run,
        hold=DEFAULT_HOLD if visibility_timeout is None else visibility_timeout,
        wait=wait_time,
        concurrency=concurrency,
    )
    bar: Any = nullcontext(None)
    if stream_is_tty(sys.stderr) and not opts.quiet:
        from sagactl.views.dlq import redrive_progress

        bar = redrive_progress()
    plan = None
    if canary is not None:
        from sagactl.definitions.model import duration_option
        from sagactl.dlq.canary import DEFAULT_POLL, CanaryPlan

        wait = duration_option(canary_wait, "--canary-wait")
        plan = CanaryPlan(size=canary, wait=wait, poll=min(DEFAULT_POLL, wait))
    with bar as progress:
        result = ops.redrive_dlq(settings, request, progress, canary=plan)
    emit(redrive_document(result, truncate=opts.output is OutputFormat.TABLE), opts.output, quiet=opts.quiet)
    info_line(f"sagactl: {redrive_summary_line(result)}")
    if result.error is not None:
        error_line(mask_secrets(result.error.one_line()))
    elif result.interrupted:
        error_line("interrupted; messages not moved are visible in the DLQ again")
    return int(result.exit_code)
