"""Commands over sagas that ended: rerun, prune.

Each parses its options, calls one function of sagactl.ops.history and renders what comes back.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from sagactl.cli.common import Shared, command, mask_secrets
from sagactl.cli.options import AWS_OPTIONS, CONFIG, DSN, LOG, OUTPUT, QUIET, VERBOSE, SagaTypeOpt
from sagactl.errors import ExitCode
from sagactl.models import PRUNE_BATCH, counted
from sagactl.views.output import stream_is_tty

if TYPE_CHECKING:
    from sagactl.tools.retention import PruneResult


@command(DSN, CONFIG, AWS_OPTIONS, OUTPUT, QUIET, VERBOSE, LOG)
def rerun(
    saga_ids: Annotated[
        list[str], typer.Argument(help="Sagas that ended failed, to run again.", show_default=False)
    ],
    definition: Annotated[
        str | None,
        typer.Option(
            "--definition",
            metavar="FILE",
            show_default=False,
            help="Run the new saga under this definition (validated; the saga's type is picked from"
            " the file) [default: the failed saga's stored definition].",
        ),
    ] = None,
    input_patch: Annotated[
        str | None,
        typer.Option(
            "--input-patch",
            metavar="JSON",
            show_default=False,
            help="A JSON merge patch (RFC 7386) applied to the failed saga's input: JSON text, @FILE or -;"
            ' null removes a field, e.g. \'{"address": {"zip": "10115"}, "coupon": null}\'.',
        ),
    ] = None,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="Only record each new saga (due for a worker at once) and print its ID.",
        ),
    ] = False,
    *,
    opts: Shared,
) -> int:
    """Run failed sagas again, each as a new saga (new ID: fresh idempotency keys) with the same
    input, linked both ways (show: rerun of / rerun as). Exit as run does for the new saga; a saga
    that did not end failed, or was rerun already, is refused (exit 2). -o json prints an array."""
    from sagactl.ops.history import RerunRequest, rerun_sagas
    from sagactl.views.output import error_line

    settings = opts.settings()
    request = RerunRequest(saga_ids=saga_ids, definition=definition, input_patch=input_patch, detach=detach)
    if detach:
        report = rerun_sagas(settings, request)
        code = opts.report(report.results, live=False, array=True, ids_only=not opts.json_output)
    else:
        report, live = opts.driven(lambda observer: rerun_sagas(settings, request, observer))
        code = opts.report(report.results, live=live, array=True)
    for _saga_id, failure in report.failures:
        error_line(mask_secrets(failure.one_line()))  # engine errors name the saga
    return ExitCode.worst([code, *(failure.exit_code for _, failure in report.failures)])


@command(DSN, CONFIG, OUTPUT, VERBOSE)
def prune(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            show_default=False,
            help="Prune sagas that finished (were last updated) longer ago than this, e.g. 30d.",
        ),
    ],
    state: Annotated[
        list[str] | None,
        typer.Option(
            "--state",
            metavar="STATE[,STATE]",
            show_default=False,
            help="Only sagas that ended in this state: completed, failed (repeatable or comma-separated)"
            " [default: both]. Active sagas are never pruned.",
        ),
    ] = None,
    saga_type: SagaTypeOpt = None,
    archive: Annotated[
        str | None,
        typer.Option(
            "--archive",
            metavar="FILE.jsonl",
            show_default=False,
            help="Append each saga (row, definition, transitions) to FILE as one JSON line, written and"
            " fsynced before its batch is deleted.",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be pruned, per type and state; delete nothing.")
    ] = False,
    batch: Annotated[
        int,
        typer.Option("--batch", metavar="N", help="Sagas deleted per transaction (writers wait one batch at most)."),
    ] = PRUNE_BATCH,
    *,
    opts: Shared,
) -> int:
    """Delete finished sagas (completed, failed) and their transitions from the saga log in small
    batches while writers keep running; stats stays exact. Exit 0; 130 when interrupted (what was
    pruned stays pruned)."""
    from datetime import timedelta

    from sagactl.ops.history import prune_log
    from sagactl.tools.inspect import parse_older_than
    from sagactl.tools.retention import PruneRequest, parse_states
    from sagactl.views.history import prune_document, prune_summary_line
    from sagactl.views.output import emit, info_line

    seconds = parse_older_than(older_than)
    assert seconds is not None
    request = PruneRequest(
        older_than=timedelta(seconds=seconds),
        states=parse_states(state),
        saga_type=saga_type,
        archive=archive,
        dry_run=dry_run,
        batch=batch,
    )
    if dry_run or not stream_is_tty(sys.stderr):
        result = prune_log(opts.settings(), request)
    else:  # batch after batch on a big log: say how far it got
        from sagactl.views.live import progress_bar

        bar = progress_bar()
        task = bar.add_task("sagactl: pruning", total=None)

        def progress(so_far: PruneResult) -> None:
            batches = counted(so_far.batches, "batch", "batches")
            bar.update(task, description=f"sagactl: pruned {counted(so_far.pruned, 'saga')} in {batches}")

        with bar:
            result = prune_log(opts.settings(), request, progress)
    emit(prune_document(result), opts.output)
    info_line(f"sagactl: {mask_secrets(prune_summary_line(result))}")
    return ExitCode.INTERRUPTED if result.interrupted else ExitCode.OK
