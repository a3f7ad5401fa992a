"""The saga commands that drive: validate, run, resume, resolve, abort (show, list and stats are
in inspecting.py).

Each parses its options, calls one function of sagactl.ops.sagas and renders what comes back.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from sagactl.cli import complete
from sagactl.cli.common import Shared, command, mask_secrets
from sagactl.cli.options import (
    AWS_OPTIONS,
    BULK_OPTIONS,
    CONFIG,
    DSN,
    LOG,
    OUTPUT,
    QUIET,
    SELECT,
    SELECT_STEP,
    VERBOSE,
    ReasonOpt,
)
from sagactl.errors import ExitCode, UsageError
from sagactl.models import counted
from sagactl.views.output import OutputFormat, emit, info_line, terminal_safe

if TYPE_CHECKING:
    from sagactl.config import Settings


@command(OUTPUT, QUIET, VERBOSE)
def validate(
    files: Annotated[list[str], typer.Argument(help="Saga definition files (YAML).", show_default=False)],
    *,
    opts: Shared,
) -> int:
    """Check saga definitions; each problem as FILE:LINE:COL: message. Exit 2 on any error."""
    from sagactl.ops.admin import validate_files
    from sagactl.views.sagas import validation_document

    reports = validate_files(files)
    doc = validation_document(reports, files)
    if opts.output not in (OutputFormat.JSON, OutputFormat.JSONL):
        for report in reports:
            for problem in report.problems:
                sys.stderr.write(terminal_safe(str(problem)) + "\n")
    emit(doc, opts.output, quiet=opts.quiet)
    return ExitCode.USAGE if not doc.data["valid"] else ExitCode.OK


@command(DSN, CONFIG, AWS_OPTIONS, OUTPUT, QUIET, VERBOSE, LOG)
def run(
    file: Annotated[str, typer.Argument(help="Saga definition (YAML).", show_default=False)],
    input: Annotated[
        str | None,
        typer.Option(
            "--input",
            "-i",
            show_default=False,
            help="Saga input: JSON text, @FILE or - for stdin [default: {}].",
        ),
    ] = None,
    saga_id: Annotated[
        str | None,
        typer.Option("--saga-id", show_default=False, help="ID for the new saga [default: a UUID]."),
    ] = None,
    saga: Annotated[
        str | None, typer.Option("--saga", show_default=False, help="Which saga, when FILE holds several.")
    ] = None,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="Only record the saga (state started, due for a worker at once) and print its ID;"
            " 'sagactl worker' or 'sagactl resume' drives it.",
        ),
    ] = False,
    inputs: Annotated[
        str | None,
        typer.Option(
            "--inputs",
            metavar="FILE|-",
            show_default=False,
            help="Record one detached saga per line (JSON lines: one input object a line; blank and #"
            " lines skipped) and print one ID per line. Every line is checked first. Implies --detach.",
        ),
    ] = None,
    traceparent: Annotated[
        str | None,
        typer.Option(
            "--traceparent",
            metavar="TRACEPARENT",
            show_default=False,
            help="With tracing on: the W3C traceparent the saga's trace is a child of [default: $TRACEPARENT].",
        ),
    ] = None,
    *,
    opts: Shared,
) -> int:
    """Run a saga end to end: exit 0 completed, 1 failed (compensated), 3 compensation incomplete."""
    from sagactl.ops.sagas import RunRequest, run_file
    from sagactl.tracing.context import check_traceparent

    if traceparent is not None:
        traceparent = check_traceparent(traceparent)
    settings = opts.settings()
    if inputs is not None:
        given = {"--input": input, "--saga-id": saga_id}
        return _submit(settings, file, inputs, saga, opts, given=given, traceparent=traceparent)
    request = RunRequest(file=file, input=input, saga_id=saga_id, saga=saga, detach=detach, traceparent=traceparent)
    if detach:  # nothing runs: no live view; the ID alone on stdout (json/jsonl: the saga)
        return opts.report([run_file(settings, request)], live=False, ids_only=not opts.json_output)
    return opts.drive(lambda observer: run_file(settings, request, observer))


def _ids_only(opts: Shared, flag: str) -> None:
    """--detach and --inputs print saga IDs, one a line, and nothing else."""
    from sagactl.errors import UsageError

    if opts.output is not OutputFormat.TABLE:
        raise UsageError(
            f"{flag} prints only saga IDs, one per line: -o {opts.output.value} does not apply",
            hint="drop -o; 'sagactl show ID -o json' prints a saga's document",
        )


def _submit(
    settings: Settings,
    file: str,
    inputs: str,
    saga: str | None,
    opts: Shared,
    given: dict[str, str | None],
    traceparent: str | None = None,
) -> int:
    """`run FILE --inputs FILE|-`: one detached saga per line, IDs streamed as they commit."""
    from sagactl.errors import UsageError
    from sagactl.ops.sagas import SubmitRequest, submit_inputs

    clash = [flag for flag, value in given.items() if value is not None]
    if clash:
        raise UsageError(
            f"--inputs takes each saga's input from its line: {' and '.join(clash)} cannot be given with it",
            hint="put each saga's input on its own line; each saga gets a new UUID",
        )
    _ids_only(opts, "--inputs")

    def recorded(saga_id: str) -> None:
        sys.stdout.write(f"{saga_id}\n")
        sys.stdout.flush()  # a script reading the IDs sees each one as soon as it is committed

    submitted = SubmitRequest(file=file, inputs=inputs, saga=saga, traceparent=traceparent)
    count = submit_inputs(settings, submitted, recorded)
    info_line(f"sagactl: recorded {counted(count, 'saga')} (started); 'sagactl worker' drives them")
    return ExitCode.OK


@command(DSN, CONFIG, AWS_OPTIONS, OUTPUT, QUIET, VERBOSE, LOG, SELECT, SELECT_STEP, BULK_OPTIONS)
def resume(
    saga_ids: Annotated[
        list[str] | None,
        typer.Argument(
            help="Sagas to continue: IDs or unique prefixes of them; - reads IDs from stdin (one per line).",
            show_default=False,
            autocompletion=complete.saga_ids,
        ),
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", show_default=False, help="Why (recorded with the job in each saga).")
    ] = None,
    definition: Annotated[
        str | None,
        typer.Option(
            "--definition",
            metavar="FILE",
            show_default=False,
            help="Move each named saga to this new version of its definition first (validated; recorded with"
            " the old and new snapshot digests): refused, exit 2, with the differences, unless the steps"
            " it has done keep their names and order. Takes SAGA_IDs, not selectors.",
        ),
    ] = None,
    *,
    opts: Shared,
) -> int:
    """Continue sagas from the log after a crash or a failed compensation (stored definition, or a
    new one with --definition). Several sagas (IDs, -, or selectors as in list: --stuck, --state,
    --type, --step, --error, --group, --older-than) run as one job: --dry-run shows the plan, more
    than one selected saga needs --yes, --rate/--max bound it. -o json prints an array, one saga
    per saga resumed."""
    from sagactl.cli.bulk import bulk_request, run_bulk_command
    from sagactl.ops.sagas import resume_sagas
    from sagactl.tools.bulk import BulkAction

    settings = opts.settings()
    if definition is not None:
        return _migrate(settings, saga_ids, definition, opts)
    bulk = bulk_request(BulkAction.RESUME, saga_ids, opts, reason=reason)
    if bulk is not None:
        return run_bulk_command(bulk, opts)
    assert saga_ids is not None
    ids = saga_ids
    result, live = opts.driven(lambda observer: resume_sagas(settings, ids, observer))
    return opts.report(result.results, live=live, array=True)


def _migrate(settings: Settings, saga_ids: list[str] | None, definition: str, opts: Shared) -> int:
    """`resume ID... --definition FILE`: each named saga moved to the new definition, then resumed;
    one that cannot move does not stop the others (worst exit code)."""
    from sagactl.ops.sagas import resume_sagas
    from sagactl.views.output import error_line

    selectors = [opts.more.get(name) for name in ("stuck", "state", "saga_type", "older_than", "error", "group")]
    if opts.more.get("stuck"):
        raise UsageError("--definition applies to SAGA_IDs, not --stuck", hint="name the sagas to move")
    if not saga_ids or "-" in saga_ids or any(value not in (None, False, []) for value in selectors):
        raise UsageError("--definition applies to SAGA_IDs, not selectors", hint="name the sagas to move")
    ids = saga_ids
    report, live = opts.driven(lambda observer: resume_sagas(settings, ids, observer, definition=definition))
    code = opts.report(report.results, live=live, array=True)
    for _saga_id, failure in report.failures:
        error_line(mask_secrets(failure.one_line()))  # engine errors name the saga
    return ExitCode.worst([code, *(failure.exit_code for _, failure in report.failures)])


@command(DSN, CONFIG, AWS_OPTIONS, OUTPUT, QUIET, VERBOSE, LOG, SELECT, BULK_OPTIONS)
def resolve(
    step: Annotated[
        str,
        typer.Option(
            "--step",
            show_default=False,
            help="The step whose compensation you did by hand.",
            autocompletion=complete.step_names,
        ),
    ],
    reason: ReasonOpt,
    saga_ids: Annotated[
        list[str] | None,
        typer.Argument(
            help="The saga whose compensation was done by hand: its ID or a unique prefix; several, or - for IDs"
            " on stdin.",
            show_default=False,
            autocompletion=complete.saga_ids,
        ),
    ] = None,
    out_of_order: Annotated[
        bool,
        typer.Option(
            "--out-of-order",
            help="Resolve a step that is not the compensation waiting (compensations run in reverse"
            " order); recorded in the transition.",
        ),
    ] = False,
    *,
    opts: Shared,
) -> int:
    """Mark a compensation done by hand (who and why are recorded), then continue compensating.
    Several sagas (IDs, -, or selectors as in list) run as one job, as for resume."""
    from sagactl.cli.bulk import bulk_request, run_bulk_command
    from sagactl.ops.sagas import resolve_compensation
    from sagactl.tools.bulk import BulkAction

    bulk = bulk_request(BulkAction.RESOLVE, saga_ids, opts, reason=reason, step=step, out_of_order=out_of_order)
    if bulk is not None:
        return run_bulk_command(bulk, opts)
    assert saga_ids is not None
    settings, saga_id = opts.settings(), saga_ids[0]
    return opts.drive(
        lambda observer: resolve_compensation(
            settings, saga_id, step, reason, observer=observer, out_of_order=out_of_order
        )
    )


@command(DSN, CONFIG, AWS_OPTIONS, OUTPUT, QUIET, VERBOSE, LOG, SELECT, SELECT_STEP, BULK_OPTIONS)
def abort(
    reason: ReasonOpt,
    saga_ids: Annotated[
        list[str] | None,
        typer.Argument(
            help="The saga to stop: its ID or a unique prefix; several, or - for IDs on stdin.",
            show_default=False,
            autocompletion=complete.saga_ids,
        ),
    ] = None,
    *,
    opts: Shared,
) -> int:
    """Stop a saga's forward progress and compensate now (who and why are recorded). Several
    sagas (IDs, -, or selectors as in list) run as one job, as for resume."""
    from sagactl.cli.bulk import bulk_request, run_bulk_command
    from sagactl.ops.sagas import abort_saga
    from sagactl.tools.bulk import BulkAction

    bulk = bulk_request(BulkAction.ABORT, saga_ids, opts, reason=reason)
    if bulk is not None:
        return run_bulk_command(bulk, opts)
    assert saga_ids is not None
    settings, saga_id = opts.settings(), saga_ids[0]
    return opts.drive(lambda observer: abort_saga(settings, saga_id, reason, observer=observer))
