"""The read-only saga commands: show (and --follow), list (filters, groups, --watch), stats.

Each parses its options, calls one function of sagactl.ops.sagas and renders what comes back.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from sagactl.cli import complete
from sagactl.cli.common import Shared, command
from sagactl.cli.options import (
    AWS_OPTIONS,
    CONFIG,
    DSN,
    LIST_OUTPUT,
    OUTPUT,
    PRESET,
    QUIET,
    STATS_OUTPUT,
    VERBOSE,
    ErrorOpt,
    GroupOpt,
    IntervalOpt,
    JobOpt,
    NoHeadersOpt,
    OlderThanOpt,
    SagaIdsOpt,
    SagaTypeOpt,
    SinceOpt,
    StateOpt,
    StepSelectOpt,
    StuckOpt,
    UntilOpt,
)
from sagactl.errors import ExitCode, UsageError
from sagactl.models import SortKey
from sagactl.views.output import Document, OutputFormat, emit, info_line

if TYPE_CHECKING:
    from sagactl.tools.inspect import ListRequest


@command(DSN, PRESET, CONFIG, OUTPUT, QUIET, VERBOSE)
def show(
    saga_ids: Annotated[
        list[str],
        typer.Argument(
            help="The saga to show: its ID or a unique prefix of it; several, or - to read IDs from stdin"
            " (one per line).",
            show_default=False,
            autocompletion=complete.saga_ids,
        ),
    ],
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Keep showing the saga as transitions land (a terminal redraws it; a pipe gets each"
            " transition as a line, -o jsonl as JSON lines) and exit with its code once it ends:"
            " 0 completed, 1 failed, 3 when nothing drives it and nothing is due.",
        ),
    ] = False,
    interval: IntervalOpt = None,
    *,
    opts: Shared,
) -> int:
    """Show one saga: on a terminal why it failed and a timeline of its steps and compensations;
    state, each step (status, attempts, result, error, timings), the last error of each failing
    step, history. Unknown ID: exit 2; an ambiguous prefix: exit 2 with the candidates. Several
    sagas (or -): one after the other; -o json prints an array."""
    from sagactl.ops.sagas import follow_saga, show_sagas
    from sagactl.tools.selectors import check_tokens, expand_stdin
    from sagactl.views.sagas import show_document

    check_tokens(t for t in saga_ids if t != "-")
    settings = opts.settings()
    if follow:
        from sagactl.tools.poll import FOLLOW_INTERVAL, parse_interval
        from sagactl.views import watch

        if len(saga_ids) != 1 or saga_ids[0] == "-":
            raise UsageError("--follow follows one saga: give one SAGA_ID")
        seconds = parse_interval(interval, FOLLOW_INTERVAL)
        (saga,) = show_sagas(settings, saga_ids)  # a prefix resolved (or exit 2), once
        return watch.follow(
            lambda seen: follow_saga(settings, saga.saga_id, seen, interval=seconds), opts.output, quiet=opts.quiet
        )
    if interval is not None:
        raise UsageError("--interval applies only with --follow")
    tokens, from_stdin = expand_stdin(saga_ids)
    docs = [show_document(saga) for saga in show_sagas(settings, tokens)]
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


@command(DSN, PRESET, CONFIG, LIST_OUTPUT, QUIET, VERBOSE)
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
            help="age (oldest first), updated (least recently updated first), type (then oldest first) or"
            " newest (newest first) [default: compensating first, then oldest; with --stuck the longest stuck].",
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
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            "-w",
            help="Keep listing every --interval: a terminal redraws the table in place, marking sagas"
            " that appeared (+) or cleared (-); a pipe gets a frame per interval (-o jsonl: a JSON"
            " object per frame). Ctrl-C ends it, exit 0.",
        ),
    ] = False,
    interval: IntervalOpt = None,
    no_headers: NoHeadersOpt = False,
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
    """List sagas (compensating first, then oldest first), or with --stuck the wedged ones. On a
    terminal with their AGE, IDs whole; -o wide adds every field. Filters combine (AND);
    --saga-id takes IDs or unique prefixes."""
    from sagactl.ops.sagas import list_sagas, watch_sagas
    from sagactl.tools.inspect import ListRequest
    from sagactl.tools.selectors import check_tokens, expand_stdin
    from sagactl.views.sagas import list_document, list_truncated_line

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
    if no_headers and opts.output not in (OutputFormat.TABLE, OutputFormat.WIDE, OutputFormat.CSV, OutputFormat.TSV):
        raise UsageError(f"--no-headers applies to table, wide, csv and tsv output, not -o {opts.output.value}")
    settings = opts.settings()
    if group_by:
        if watch or interval is not None:
            raise UsageError("--group-by and --watch do not combine")
        return _list_groups(request, group_by, exit_code, opts)
    if watch:
        from sagactl.tools.poll import WATCH_INTERVAL, parse_interval
        from sagactl.views import watch as watching

        if opts.quiet or exit_code:
            raise UsageError("--watch draws the listing again and again: -q and --exit-code do not apply")
        seconds = parse_interval(interval, WATCH_INTERVAL)
        return watching.watch(
            lambda frame: watch_sagas(settings, request, frame, interval=seconds),
            opts.output,
            what="sagactl list --stuck" if stuck else "sagactl list",
            interval=seconds,
            headers=not no_headers,
        )
    if interval is not None:
        raise UsageError("--interval applies only with --watch")
    result = list_sagas(settings, request)
    emit(list_document(result), opts.output, quiet=opts.quiet, headers=not no_headers)
    note = list_truncated_line(result)
    if note:
        info_line(f"sagactl: {note}")
    return ExitCode.ATTENTION if exit_code and result.sagas else ExitCode.OK


def _list_groups(request: ListRequest, group_by: list[str], exit_code: bool, opts: Shared) -> int:
    """`list --group-by`: the failure groups, a count line on stderr under a table."""
    from sagactl.ops.sagas import list_groups
    from sagactl.tools.groups import parse_group_by
    from sagactl.views.bulk import groups_document, groups_summary_line

    by = parse_group_by(group_by)
    result = list_groups(opts.settings(), request, by)
    emit(groups_document(result), opts.output, quiet=opts.quiet)
    if result.groups and opts.output is OutputFormat.TABLE and not opts.quiet:
        info_line(f"sagactl: {groups_summary_line(result)}")
    return ExitCode.ATTENTION if exit_code and result.groups else ExitCode.OK


@command(DSN, PRESET, CONFIG, AWS_OPTIONS, STATS_OUTPUT, VERBOSE)
def stats(
    steps: Annotated[
        bool,
        typer.Option(
            "--steps",
            help="Per step: p50/p95/p99 duration, attempts per success, failure and timeout rates, and"
            " flags where a timeout or retry budget fights what is observed.",
        ),
    ] = False,
    saga_type: SagaTypeOpt = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="DURATION",
            show_default=False,
            help="With --steps: sagas created within this long, e.g. 1h, 7d [default: 24h].",
        ),
    ] = None,
    *,
    opts: Shared,
) -> int:
    """Sagas per type and state, stuck counts, the oldest active saga's age (cheap on any size);
    with --steps, how each step behaves (reads the transitions of the window)."""
    if steps:
        from sagactl.ops.tools import step_stats
        from sagactl.views.tools import step_stats_document

        report = step_stats(opts.settings(), since=since or "24h", saga_type=saga_type)
        emit(step_stats_document(report), opts.output)
        return ExitCode.OK
    if saga_type is not None or since is not None:
        from sagactl.errors import UsageError

        raise UsageError("--type and --since apply only with --steps")
    if opts.output is OutputFormat.PROMETHEUS:  # the log's metrics, as a worker's /metrics serves them
        from sagactl.ops.monitoring import snapshot
        from sagactl.views.metrics import log_exposition

        sys.stdout.write(log_exposition(snapshot(opts.settings())))
        return ExitCode.OK
    from sagactl.ops.sagas import stats as compute_stats
    from sagactl.views.sagas import stats_document

    emit(stats_document(compute_stats(opts.settings())), opts.output)
    return ExitCode.OK
