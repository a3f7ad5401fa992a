"""The saga commands: validate, run, resume, show, list, stats, resolve, abort.

Each parses its options, calls one function of sagactl.ops.sagas and renders what comes back.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from sagactl.cli.common import Shared, command
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
    STATS_OUTPUT,
    VERBOSE,
    ErrorOpt,
    GroupOpt,
    JobOpt,
    OlderThanOpt,
    ReasonOpt,
    SagaIdsOpt,
    SagaTypeOpt,
    SinceOpt,
    StateOpt,
    StepSelectOpt,
    StuckOpt,
    UntilOpt,
)
from sagactl.errors import ExitCode
from sagactl.output import Document, OutputFormat, emit, info_line, terminal_safe
from sagactl.store.base import SortKey

if TYPE_CHECKING:
    from sagactl.config import Settings
    from sagactl.inspect import ListRequest


@command(OUTPUT, QUIET, VERBOSE)
def validate(
    files: Annotated[list[str], typer.Argument(help="Saga definition files (YAML).", show_default=False)],
    *,
    opts: Shared,
) -> int:
    """Check saga definitions; each problem as FILE:LINE:COL: message. Exit 2 on any error."""
    from sagactl.ops.admin import validate_files
    from sagactl.views import validation_document

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
    *,
    opts: Shared,
) -> int:
    """Run a saga end to end: exit 0 completed, 1 failed (compensated), 3 compensation incomplete."""
    from sagactl.ops.sagas import RunRequest, run_file

    settings = opts.settings()
    if inputs is not None:
        return _submit(settings, file, inputs, saga, opts, given={"--input": input, "--saga-id": saga_id})
    request = RunRequest(file=file, input=input, saga_id=saga_id, saga=saga, detach=detach)
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
    settings: Settings, file: str, inputs: str, saga: str | None, opts: Shared, given: dict[str, str | None]
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

    count = submit_inputs(settings, SubmitRequest(file=file, inputs=inputs, saga=saga), recorded)
    info_line(f"sagactl: recorded {count} sagas (started); 'sagactl worker' drives them")
    return ExitCode.OK


@command(DSN, CONFIG, AWS_OPTIONS, OUTPUT, QUIET, VERBOSE, LOG, SELECT, SELECT_STEP, BULK_OPTIONS)
def resume(
    saga_ids: Annotated[
        list[str] | None,
        typer.Argument(
            help="Sagas to continue: IDs or unique prefixes of them; - reads IDs from stdin (one per line).",
            show_default=False,
        ),
    ] = None,
    reason: Annotated[
        str | None, typer.Option("--reason", show_default=False, help="Why (recorded with the job in each saga).")
    ] = None,
    *,
    opts: Shared,
) -> int:
    """Continue sagas from the log after a crash or a failed compensation (stored definition).
    Several sagas (IDs, -, or selectors as in list: --stuck, --state, --type, --step, --error,
    --group, --older-than) run as one job: --dry-run shows the plan, more than one selected
    saga needs --yes, --rate/--max bound it. -o json prints an array, one saga per saga resumed."""
    from sagactl.bulk import BulkAction
    from sagactl.cli.bulk import bulk_request, run_bulk_command
    from sagactl.ops.sagas import resume_sagas

    bulk = bulk_request(BulkAction.RESUME, saga_ids, opts, reason=reason)
    if bulk is not None:
        return run_bulk_command(bulk, opts)
    assert saga_ids is not None
    settings, ids = opts.settings(), saga_ids
    result, live = opts.driven(lambda observer: resume_sagas(settings, ids, observer))
    return opts.report(result.results, live=live, array=True)


@command(DSN, CONFIG, OUTPUT, QUIET, VERBOSE)
def show(
    saga_ids: Annotated[
        list[str],
        typer.Argument(
            help="The saga to show: its ID or a unique prefix of it; several, or - to read IDs from stdin"
            " (one per line).",
            show_default=False,
        ),
    ],
    *,
    opts: Shared,
) -> int:
    """Show one saga: state, each step (status, attempts, result, error, timings), the last error
    of each failing step, history. Unknown ID: exit 2; an ambiguous prefix: exit 2 with the
    candidates. Several sagas (or -): one after the other; -o json prints an array."""
    from sagactl.ops.sagas import show_sagas
    from sagactl.selectors import check_tokens, expand_stdin
    from sagactl.views import show_document

    check_tokens(t for t in saga_ids if t != "-")
    tokens, from_stdin = expand_stdin(saga_ids)
    docs = [show_document(saga) for saga in show_sagas(opts.settings(), tokens)]
    if len(docs) == 1 and not from_stdin:
        emit(docs[0], opts.output, quiet=opts.quiet)
    elif opts.quiet or opts.json_output:
        emit(Document(data=[d.data for d in docs], ids=[i for d in docs for i in d.ids]), opts.output, quiet=opts.quiet)
    else:
        for index, doc in enumerate(docs):
            if index:
                sys.stdout.write("\n")
            emit(doc, opts.output)
    return ExitCode.OK


@command(DSN, CONFIG, OUTPUT, QUIET, VERBOSE)
def list_(
    stuck: StuckOpt = False,
    state: StateOpt = None,
    saga_type: SagaTypeOpt = None,
    older_than: OlderThanOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    step: StepSelectOpt = None,
    error: ErrorOpt = None,
    saga_id: SagaIdsOpt = None,
    job: JobOpt = None,
    sort: Annotated[
        SortKey | None,
        typer.Option(
            "--sort",
            case_sensitive=False,
            show_default=False,
            help="age (oldest first), updated (least recently updated first) or type (then oldest first)"
            " [default: compensating first, then oldest; with --stuck the longest stuck].",
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            show_default=False,
            help="At most N sagas; 0 for all [default: all stuck sagas; 1000 otherwise].",
        ),
    ] = None,
    exit_code: Annotated[
        bool, typer.Option("--exit-code", help="Exit 3 when any saga matched (for cron and alerting).")
    ] = False,
    group: GroupOpt = None,
    group_by: Annotated[
        list[str] | None,
        typer.Option(
            "--group-by",
            metavar="FIELDS",
            show_default=False,
            help="Fold the sagas into failure groups by state, type, step and/or error (comma-separated):"
            " each group's key, count, oldest and newest update, an example; the error is a signature with"
            " IDs, numbers, times and hex masked. -o json adds each group's saga IDs; --limit bounds the groups.",
        ),
    ] = None,
    *,
    opts: Shared,
) -> int:
    """List sagas (compensating first, then oldest first), or with --stuck the wedged ones.
    Filters combine (AND); --saga-id takes IDs or unique prefixes."""
    from sagactl.inspect import ListRequest
    from sagactl.ops.sagas import list_sagas
    from sagactl.selectors import check_tokens, expand_stdin
    from sagactl.views import list_document, list_truncated_line

    check_tokens(t for t in saga_id or () if t != "-")
    ids, _ = expand_stdin(saga_id or ())
    request = ListRequest(
        stuck=stuck,
        states=tuple(state or ()),
        saga_type=saga_type,
        older_than=older_than,
        limit=limit,
        since=since,
        until=until,
        step=step,
        error=error,
        saga_ids=tuple(ids),
        sort=sort,
        job=job,
        group=group,
    )
    if group_by:
        return _list_groups(request, group_by, exit_code, opts)
    result = list_sagas(opts.settings(), request)
    emit(list_document(result), opts.output, quiet=opts.quiet)
    note = list_truncated_line(result)
    if note:
        info_line(f"sagactl: {note}")
    return ExitCode.ATTENTION if exit_code and result.sagas else ExitCode.OK


def _list_groups(request: ListRequest, group_by: list[str], exit_code: bool, opts: Shared) -> int:
    """`list --group-by`: the failure groups, a count line on stderr under a table."""
    from sagactl.bulk_views import groups_document, groups_summary_line
    from sagactl.groups import parse_group_by
    from sagactl.ops.sagas import list_groups

    by = parse_group_by(group_by)
    result = list_groups(opts.settings(), request, by)
    emit(groups_document(result), opts.output, quiet=opts.quiet)
    if result.groups and opts.output is OutputFormat.TABLE and not opts.quiet:
        info_line(f"sagactl: {groups_summary_line(result)}")
    return ExitCode.ATTENTION if exit_code and result.groups else ExitCode.OK


@command(DSN, CONFIG, STATS_OUTPUT, VERBOSE)
def stats(*, opts: Shared) -> int:
    """Sagas per type and state, stuck counts, the oldest active saga's age (cheap on any size)."""
    from sagactl.ops.sagas import stats as compute_stats
    from sagactl.views import stats_document

    emit(stats_document(compute_stats(opts.settings())), opts.output)
    return ExitCode.OK


@command(DSN, CONFIG, AWS_OPTIONS, OUTPUT, QUIET, VERBOSE, LOG, SELECT, BULK_OPTIONS)
def resolve(
    step: Annotated[
        str, typer.Option("--step", show_default=False, help="The step whose compensation you did by hand.")
    ],
    reason: ReasonOpt,
    saga_ids: Annotated[
        list[str] | None,
        typer.Argument(
            help="The saga whose compensation was done by hand: its ID or a unique prefix; several, or - for IDs"
            " on stdin.",
            show_default=False,
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
    from sagactl.bulk import BulkAction
    from sagactl.cli.bulk import bulk_request, run_bulk_command
    from sagactl.ops.sagas import resolve_compensation

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
            help="The saga to stop: its ID or a unique prefix; several, or - for IDs on stdin.", show_default=False
        ),
    ] = None,
    *,
    opts: Shared,
) -> int:
    """Stop a saga's forward progress and compensate now (who and why are recorded). Several
    sagas (IDs, -, or selectors as in list) run as one job, as for resume."""
    from sagactl.bulk import BulkAction
    from sagactl.cli.bulk import bulk_request, run_bulk_command
    from sagactl.ops.sagas import abort_saga

    bulk = bulk_request(BulkAction.ABORT, saga_ids, opts, reason=reason)
    if bulk is not None:
        return run_bulk_command(bulk, opts)
    assert saga_ids is not None
    settings, saga_id = opts.settings(), saga_ids[0]
    return opts.drive(lambda observer: abort_saga(settings, saga_id, reason, observer=observer))
