"""The command line: thin Typer commands over sagactl.operations, sagactl.inspect, sagactl.dlq.

Each command parses its options, calls one core function and hands the result to
``output.emit``. Every failure goes through ``funnel``: one masked line on stderr and the
documented exit code; a traceback only with ``-v``. Heavy modules load inside commands.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import typer

if TYPE_CHECKING:
    from sagactl.config import Settings

from sagactl.errors import DefinitionError, ExitCode, SagactlError
from sagactl.models import SagaState
from sagactl.output import Document, OutputFormat, emit, error_line, info_line, stream_is_tty

COMPLETE_VAR = "_SAGACTL_COMPLETE"

# Rich help on a terminal; plain help in a pipe (no box drawing where scripts read it, and
# rich's help renderer costs ~70 ms of imports that a pipe does not need).
_HELP_MODE: Literal["rich"] | None = "rich" if sys.stdout.isatty() else None

app = typer.Typer(
    name="sagactl",
    rich_markup_mode=_HELP_MODE,
    help="Define, drive and operate sagas: multi-service transactions held together by compensations.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
db_app = typer.Typer(help="Manage the saga log database.", no_args_is_help=True, rich_markup_mode=_HELP_MODE)
app.add_typer(db_app, name="db")
dlq_app = typer.Typer(
    help="Inspect dead-letter queues (SQS) without consuming their messages.",
    no_args_is_help=True,
    rich_markup_mode=_HELP_MODE,
)
app.add_typer(dlq_app, name="dlq")


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class Shell(StrEnum):
    BASH = "bash"
    ZSH = "zsh"
    FISH = "fish"


# -- options defined once ------------------------------------------------------------------

STORE = "Store"
DsnOpt = Annotated[
    str | None,
    typer.Option(
        "--dsn",
        envvar="SAGACTL_DSN",
        show_default=False,
        rich_help_panel=STORE,
        help="Saga log: sqlite:///path.db or postgresql://user@host/db [default: sqlite:///.sagactl/saga_log.db].",
    ),
]
ConfigOpt = Annotated[
    str | None,
    typer.Option(
        "--config",
        envvar="SAGACTL_CONFIG",
        show_default=False,
        rich_help_panel=STORE,
        help="sagactl.yaml to read (default: ./sagactl.yaml if present).",
    ),
]
ContextOpt = Annotated[
    str | None,
    typer.Option(
        "--context",
        envvar="SAGACTL_CONTEXT",
        show_default=False,
        rich_help_panel=STORE,
        help="Named context from the config file.",
    ),
]
OutputOpt = Annotated[
    OutputFormat,
    typer.Option(
        "-o",
        "--output",
        case_sensitive=False,
        help="table (rich on a terminal, plain in a pipe), json, jsonl, csv, tsv, markdown.",
    ),
]
QuietOpt = Annotated[bool, typer.Option("-q", "--quiet", help="Print saga IDs only, one per line.")]
VerboseOpt = Annotated[
    bool, typer.Option("-v", "--verbose", help="Log each transition to stderr; tracebacks on errors.")
]
LogFormatOpt = Annotated[
    LogFormat | None,
    typer.Option(
        "--log-format",
        case_sensitive=False,
        show_default=False,
        help="Transition log on stderr as text or json (implies logging).",
    ),
]


OlderThanOpt = Annotated[
    str | None,
    typer.Option(
        "--older-than",
        show_default=False,
        metavar="DURATION",
        help="Idle (not updated) for longer than this, e.g. 30m, 2h. With --stuck: the threshold for"
        " sagas without a deadline [default: the current step's timeout, else 15m].",
    ),
]
SagaTypeOpt = Annotated[
    str | None,
    typer.Option("--type", show_default=False, metavar="SAGA_TYPE", help="Only sagas of this type."),
]
ReasonOpt = Annotated[
    str,
    typer.Option(
        "--reason",
        show_default=False,
        help="Why (required): recorded with your name ($USER) in the saga's history.",
    ),
]


def settings_from(dsn: str | None, config: str | None, context: str | None) -> Settings:
    from sagactl.config import resolve_settings

    return resolve_settings(dsn=dsn, config=config, context=context)


def mask_secrets(text: str) -> str:
    """config.mask_secrets, loaded on first use (its patterns cost start-up time --help need not pay)."""
    from sagactl.masking import mask_secrets as mask

    return mask(text)


AWS = "AWS"
RegionOpt = Annotated[
    str | None,
    typer.Option(
        "--region",
        metavar="REGION",
        envvar=["AWS_REGION", "AWS_DEFAULT_REGION"],
        show_default=False,
        rich_help_panel=AWS,
        help="AWS region [default: aws.region in sagactl.yaml, else the profile's region].",
    ),
]
ProfileOpt = Annotated[
    str | None,
    typer.Option(
        "--profile",
        metavar="PROFILE",
        envvar="AWS_PROFILE",
        show_default=False,
        rich_help_panel=AWS,
        help="AWS named profile from ~/.aws/config [default: aws.profile in sagactl.yaml, else the default chain].",
    ),
]
EndpointUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint-url",
        metavar="URL",
        envvar=["AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL"],
        show_default=False,
        rich_help_panel=AWS,
        help="SQS endpoint, e.g. http://127.0.0.1:4566 for a local emulator [default: aws.endpoint_url, else AWS's].",
    ),
]
SagaIdFilterOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--saga-id",
        metavar="ID",
        show_default=False,
        help="Only messages of this saga (repeatable); - reads IDs from stdin ('sagactl list --stuck -q | …').",
    ),
]
StepFilterOpt = Annotated[
    str | None,
    typer.Option("--step", metavar="STEP", show_default=False, help="Only messages for this step (step_name)."),
]
VisibilityOpt = Annotated[
    int | None,
    typer.Option(
        "--visibility-timeout",
        min=1,
        max=43200,
        show_default=False,
        metavar="SECONDS",
        help="How long scanned messages stay hidden at most if sagactl dies mid-scan; they are made visible"
        " again as soon as it ends [default: 60 for dlq list, 300 for redrive].",
    ),
]
WaitTimeOpt = Annotated[
    int,
    typer.Option(
        "--wait-time",
        min=0,
        max=20,
        metavar="SECONDS",
        help="Long-poll this long before concluding the queue is drained (0: trust one empty receive).",
    ),
]


class DlqGroupBy(StrEnum):
    SAGA = "saga"
    STEP = "step"
    ERROR = "error"


def aws_settings_from(
    config: str | None,
    context: str | None,
    region: str | None,
    profile: str | None,
    endpoint_url: str | None,
    dsn: str | None = None,
) -> Settings:
    """Settings for commands that reach SQS: flag > env > sagactl.yaml (aws:) > AWS defaults."""
    from sagactl.config import resolve_settings

    return resolve_settings(
        dsn=dsn, config=config, context=context, region=region, profile=profile, endpoint_url=endpoint_url
    )


# -- the error funnel ----------------------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def funnel(fn: F) -> F:
    """Run a command; map SagactlError to its line and exit code. Commands return an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        from sagactl.logs import configure_logging

        verbose = bool(kwargs.get("verbose", False))
        log_format = kwargs.get("log_format")
        configure_logging(verbose or log_format is not None, log_format is LogFormat.JSON)
        try:
            code = fn(*args, **kwargs)
        except DefinitionError as exc:
            for problem in exc.problems:
                sys.stderr.write(mask_secrets(problem) + "\n")
            raise typer.Exit(int(exc.exit_code)) from None
        except SagactlError as exc:
            if verbose:
                import traceback

                traceback.print_exc()
            error_line(mask_secrets(exc.one_line()))
            raise typer.Exit(int(exc.exit_code)) from None
        except KeyboardInterrupt:
            error_line("interrupted")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        if code:
            raise typer.Exit(int(code))

    return wrapper  # type: ignore[return-value]


# -- commands ------------------------------------------------------------------------------


@app.command()
@funnel
def validate(
    files: Annotated[list[str], typer.Argument(help="Saga definition files (YAML).", show_default=False)],
    output: OutputOpt = OutputFormat.TABLE,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> int:
    """Check saga definitions; each problem as FILE:LINE:COL: message. Exit 2 on any error."""
    from sagactl.operations import validate_files
    from sagactl.views import validation_document

    reports = validate_files(files)
    doc = validation_document(reports, files)
    if output not in (OutputFormat.JSON, OutputFormat.JSONL):
        for report in reports:
            for problem in report.problems:
                sys.stderr.write(str(problem) + "\n")
    emit(doc, output, quiet=quiet)
    return ExitCode.USAGE if not doc.data["valid"] else ExitCode.OK


@app.command()
@funnel
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
            help="Only record the saga (state started) and print its ID; drive it with 'sagactl resume'.",
        ),
    ] = False,
    dsn: DsnOpt = None,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = OutputFormat.TABLE,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    log_format: LogFormatOpt = None,
) -> int:
    """Run a saga end to end: exit 0 completed, 1 failed (compensated), 3 compensation incomplete."""
    from sagactl.operations import RunRequest, run_file

    settings = settings_from(dsn, config, context)
    request = RunRequest(file=file, input=input, saga_id=saga_id, saga=saga, detach=detach)
    with _live_view(output, quiet, verbose or log_format is not None) as observer:
        result = run_file(settings, request, observer)
    return _report_runs([result], output, quiet, live=observer is not None)


@app.command()
@funnel
def resume(
    saga_ids: Annotated[list[str] | None, typer.Argument(help="Sagas to continue.", show_default=False)] = None,
    stuck: Annotated[
        bool,
        typer.Option("--stuck", help="Resume every stuck saga (as 'list --stuck' finds them); prints a summary."),
    ] = False,
    older_than: OlderThanOpt = None,
    saga_type: SagaTypeOpt = None,
    dsn: DsnOpt = None,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = OutputFormat.TABLE,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    log_format: LogFormatOpt = None,
) -> int:
    """Continue sagas from the log after a crash or a failed compensation (stored definition)."""
    from sagactl.errors import UsageError
    from sagactl.operations import resume_sagas

    if stuck:
        if saga_ids:
            raise UsageError("pass SAGA_IDs or --stuck, not both")
        return _resume_stuck(dsn, config, context, older_than, saga_type, output, quiet, verbose, log_format)
    if older_than is not None or saga_type is not None:
        raise UsageError("--older-than and --type apply only with --stuck")
    if not saga_ids:
        raise UsageError("name at least one SAGA_ID, or pass --stuck", hint="see 'sagactl list --stuck -q'")
    settings = settings_from(dsn, config, context)
    with _live_view(output, quiet, verbose or log_format is not None) as observer:
        report = resume_sagas(settings, saga_ids, observer)
    code = _report_runs(report.results, output, quiet, live=observer is not None)
    for _saga_id, failure in report.failures:
        error_line(mask_secrets(failure.one_line()))  # engine errors name the saga
        code = max(code, failure.exit_code, key=_severity)
    return int(code)


@app.command()
@funnel
def show(
    saga_id: Annotated[str, typer.Argument(help="The saga to show.", show_default=False)],
    dsn: DsnOpt = None,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = OutputFormat.TABLE,
    verbose: VerboseOpt = False,
) -> int:
    """Show one saga: state, each step (status, attempts, result, error, timings), the last error
    of each failing step, history. Unknown ID: exit 2."""
    from sagactl.inspect import show_saga
    from sagactl.views import show_document

    saga = show_saga(settings_from(dsn, config, context), saga_id)
    emit(show_document(saga), output)
    return ExitCode.OK


@app.command("list")
@funnel
def list_(
    stuck: Annotated[
        bool,
        typer.Option(
            "--stuck",
            help="Only stuck sagas: active and past their deadline, or idle past --older-than."
            " Compensating first, then the longest stuck.",
        ),
    ] = False,
    state: Annotated[
        list[SagaState] | None,
        typer.Option(
            "--state", case_sensitive=False, show_default=False, help="Only sagas in this state (repeatable)."
        ),
    ] = None,
    saga_type: SagaTypeOpt = None,
    older_than: OlderThanOpt = None,
    limit: Annotated[
        int | None,
        typer.Option(
            "--limit",
            min=0,
            show_default=False,
            help="At most N sagas; 0 for all [default: all stuck sagas; 1000 otherwise].",
        ),
    ] = None,
    exit_code: Annotated[
        bool, typer.Option("--exit-code", help="Exit 3 when any saga matched (for cron and alerting).")
    ] = False,
    dsn: DsnOpt = None,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = OutputFormat.TABLE,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> int:
    """List sagas (compensating first, then oldest first), or with --stuck the wedged ones."""
    from sagactl.inspect import ListRequest, list_sagas
    from sagactl.views import list_document, list_truncated_line

    request = ListRequest(
        stuck=stuck,
        states=tuple(state or ()),
        saga_type=saga_type,
        older_than=older_than,
        limit=limit,
    )
    result = list_sagas(settings_from(dsn, config, context), request)
    emit(list_document(result), output, quiet=quiet)
    note = list_truncated_line(result)
    if note:
        info_line(f"sagactl: {note}")
    return ExitCode.ATTENTION if exit_code and result.sagas else ExitCode.OK


@app.command()
@funnel
def stats(
    dsn: DsnOpt = None,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: Annotated[
        OutputFormat,
        typer.Option(
            "-o",
            "--output",
            case_sensitive=False,
            help="table, json, jsonl, csv, tsv, markdown, or prometheus (text exposition for the"
            " node_exporter textfile collector).",
        ),
    ] = OutputFormat.TABLE,
    verbose: VerboseOpt = False,
) -> int:
    """Sagas per type and state, stuck counts, the oldest active saga's age (cheap on any size)."""
    from sagactl.inspect import stats as compute_stats
    from sagactl.views import stats_document

    emit(stats_document(compute_stats(settings_from(dsn, config, context))), output)
    return ExitCode.OK


@app.command()
@funnel
def resolve(
    saga_id: Annotated[str, typer.Argument(help="The saga whose compensation was done by hand.", show_default=False)],
    step: Annotated[
        str, typer.Option("--step", show_default=False, help="The step whose compensation you did by hand.")
    ],
    reason: ReasonOpt,
    dsn: DsnOpt = None,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = OutputFormat.TABLE,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    log_format: LogFormatOpt = None,
) -> int:
    """Mark a compensation done by hand (who and why are recorded), then continue compensating."""
    from sagactl.operations import resolve_compensation

    settings = settings_from(dsn, config, context)
    with _live_view(output, quiet, verbose or log_format is not None) as observer:
        result = resolve_compensation(settings, saga_id, step, reason, observer=observer)
    return _report_runs([result], output, quiet, live=observer is not None)


@app.command()
@funnel
def abort(
    saga_id: Annotated[str, typer.Argument(help="The saga to stop.", show_default=False)],
    reason: ReasonOpt,
    dsn: DsnOpt = None,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = OutputFormat.TABLE,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    log_format: LogFormatOpt = None,
) -> int:
    """Stop a saga's forward progress and compensate now (who and why are recorded)."""
    from sagactl.operations import abort_saga

    settings = settings_from(dsn, config, context)
    with _live_view(output, quiet, verbose or log_format is not None) as observer:
        result = abort_saga(settings, saga_id, reason, observer=observer)
    return _report_runs([result], output, quiet, live=observer is not None)


@db_app.command("init")
@funnel
def db_init(
    dsn: DsnOpt = None,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    verbose: VerboseOpt = False,
) -> int:
    """Create or upgrade the saga_log schema (safe to run twice)."""
    from sagactl.operations import init_db

    where, version = init_db(settings_from(dsn, config, context))
    info_line(f"saga log {mask_secrets(where)} is at schema version {version}")
    return ExitCode.OK


@app.command()
@funnel
def schema(verbose: VerboseOpt = False) -> int:
    """Print the JSON Schema of the saga definition language."""
    from sagactl.output import to_json
    from sagactl.validation import schema as load_schema

    sys.stdout.write(to_json(load_schema()) + "\n")
    return ExitCode.OK


@app.command()
@funnel
def completion(
    shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish.", case_sensitive=False)],
    verbose: VerboseOpt = False,
) -> int:
    """Print the shell completion script (e.g. sagactl completion bash > /etc/bash_completion.d/sagactl)."""
    sys.stdout.write(completion_script(shell.value) + "\n")
    return ExitCode.OK


def completion_script(shell: str) -> str:
    """The completion script for ``shell``, as shipped in completions/."""
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name="sagactl", complete_var=COMPLETE_VAR, shell=shell)


# -- dead-letter queues --------------------------------------------------------------------


@dlq_app.command("list")
@funnel
def dlq_list(
    queue: Annotated[str, typer.Argument(help="The dead-letter queue: name, URL or ARN.", show_default=False)],
    saga_id: SagaIdFilterOpt = None,
    step: StepFilterOpt = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, metavar="N", show_default=False, help="List at most N messages [default: all]."),
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
    region: RegionOpt = None,
    profile: ProfileOpt = None,
    endpoint_url: EndpointUrlOpt = None,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = OutputFormat.TABLE,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> int:
    """Peek at a dead-letter queue without consuming it: saga, step, command, receive count, age
    and body of each message. Every message is visible again as soon as the listing ends."""
    from sagactl.dlq import PEEK_HOLD, GroupBy, MessageFilter, PeekRequest, list_dlq, read_saga_ids
    from sagactl.dlq_views import dlq_groups_document, dlq_messages_document
    from sagactl.output import warning_line

    request = PeekRequest(
        queue=queue,
        filter=MessageFilter(read_saga_ids(saga_id), step),
        limit=limit,
        hold=visibility_timeout or PEEK_HOLD,
        wait=wait_time,
    )
    result = list_dlq(aws_settings_from(config, context, region, profile, endpoint_url), request)
    if group_by is not None:
        doc = dlq_groups_document(result, GroupBy(group_by.value))
    else:
        doc = dlq_messages_document(result, truncate=output is OutputFormat.TABLE)
    emit(doc, output, quiet=quiet)
    if result.queue.fifo and result.unseen:
        warning_line(
            f"{result.unseen} more messages of {result.queue.name} wait behind the listed ones in their"
            " message groups; SQS hands them out only once those are deleted"
        )
    if result.release_failures:
        warning_line(
            f"{result.release_failures} messages could not be made visible again now; they will be when"
            f" their visibility timeout ({request.hold}s) expires"
        )
    return ExitCode.OK


@app.command()
@funnel
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
        typer.Option("--max", min=1, metavar="N", show_default=False, help="Move at most N messages."),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            min=0.001,
            metavar="N",
            show_default=False,
            help="At most N messages per second [default: no cap, several batches in flight].",
        ),
    ] = None,
    max_redrives: Annotated[
        int | None,
        typer.Option(
            "--max-redrives",
            min=0,
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
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=32, metavar="N", help="Batches of 10 in flight at once.")
    ] = 4,
    visibility_timeout: VisibilityOpt = None,
    wait_time: WaitTimeOpt = 1,
    region: RegionOpt = None,
    profile: ProfileOpt = None,
    endpoint_url: EndpointUrlOpt = None,
    dsn: DsnOpt = None,
    config: ConfigOpt = None,
    context: ContextOpt = None,
    output: OutputOpt = OutputFormat.TABLE,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
) -> int:
    """Move dead-lettered messages back to their source queue: byte for byte, deleted from the DLQ
    only once sent. Exit 0, 3 when any message failed, 4 when SQS is unreachable."""
    from contextlib import nullcontext

    from sagactl import dlq as dlqs
    from sagactl.dlq_views import move_task_document, move_tasks_document, redrive_document, redrive_summary_line
    from sagactl.errors import UsageError
    from sagactl.redrive import DEFAULT_HOLD, RedriveRequest

    modes = [name for name, value in (("--dlq", dlq), ("--status", status), ("--cancel", cancel)) if value]
    if len(modes) != 1:
        raise UsageError(
            "pass one of --dlq QUEUE, --status QUEUE or --cancel TASK_HANDLE"
            + (f" (got {' and '.join(modes)})" if modes else "")
        )
    settings = aws_settings_from(config, context, region, profile, endpoint_url, dsn)
    if status:
        emit(move_tasks_document(dlqs.move_task_status(settings, status)), output, quiet=quiet)
        return ExitCode.OK
    if cancel:
        emit(move_task_document(dlqs.cancel_native(settings, cancel)), output, quiet=quiet)
        return ExitCode.OK
    assert dlq is not None
    if native:
        used = [
            flag
            for flag, value in (
                ("--saga-id", saga_id),
                ("--step", step),
                ("--only-open", only_open),
                ("--max", max_messages),
                ("--max-redrives", max_redrives is not None),
                ("--poison-queue", poison_queue),
                ("--dry-run", dry_run),
            )
            if value
        ]
        if used:
            raise UsageError(
                f"--native moves every message server-side and cannot take {', '.join(used)}",
                hint="drop --native to filter, cap or dry-run the redrive",
            )
        emit(move_task_document(dlqs.start_native(settings, dlq, to, rate)), output, quiet=quiet)
        return ExitCode.OK
    request = RedriveRequest(
        dlq=dlq,
        to=to,
        filter=dlqs.MessageFilter(dlqs.read_saga_ids(saga_id), step),
        only_open=only_open,
        max_messages=max_messages,
        rate=rate,
        max_redrives=max_redrives,
        poison_queue=poison_queue,
        dry_run=dry_run,
        hold=visibility_timeout or DEFAULT_HOLD,
        wait=wait_time,
        concurrency=concurrency,
    )
    bar: Any = nullcontext(None)
    if stream_is_tty(sys.stderr) and not quiet:
        from sagactl.dlq_views import redrive_progress

        bar = redrive_progress()
    with bar as progress:
        result = dlqs.redrive_dlq(settings, request, progress)
    emit(redrive_document(result, truncate=output is OutputFormat.TABLE), output, quiet=quiet)
    info_line(f"sagactl: {redrive_summary_line(result)}")
    if result.error is not None:
        error_line(mask_secrets(result.error.one_line()))
    elif result.interrupted:
        error_line("interrupted; messages not moved are visible in the DLQ again")
    return int(result.exit_code)


# -- rendering helpers ---------------------------------------------------------------------


class _NoLive:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _live_view(output: OutputFormat, quiet: bool, logging_on: bool) -> Any:
    """A live step table on stderr when it is a terminal and nothing else writes there."""
    if quiet or logging_on or not stream_is_tty(sys.stderr):
        return _NoLive()
    from sagactl.live import LiveView

    return LiveView()


def _resume_stuck(
    dsn: str | None,
    config: str | None,
    context: str | None,
    older_than: str | None,
    saga_type: str | None,
    output: OutputFormat,
    quiet: bool,
    verbose: bool,
    log_format: LogFormat | None,
) -> int:
    """`resume --stuck`: every stuck saga, then one summary line on stderr."""
    from sagactl.operations import resume_stuck
    from sagactl.views import stuck_resume_line

    settings = settings_from(dsn, config, context)
    with _live_view(output, quiet, verbose or log_format is not None) as observer:
        report = resume_stuck(settings, older_than=older_than, saga_type=saga_type, observer=observer)
    code = _report_runs(report.results, output, quiet, live=observer is not None)
    info_line(f"sagactl: {mask_secrets(stuck_resume_line(report))}")
    if report.skipped:
        code = max(code, ExitCode.ATTENTION, key=_severity)
    return int(code)


def _report_runs(results: list[Any], output: OutputFormat, quiet: bool, *, live: bool) -> int:
    """Emit run/resume results; one summary line per saga that did not complete on stderr."""
    from sagactl.views import sagas_document

    sagas = [r.saga for r in results]
    if not (live and output is OutputFormat.TABLE and not quiet):
        emit(sagas_document(sagas), output, quiet=quiet)
    worst = ExitCode.OK
    for result in results:
        info = result.message or _summary(result.saga)
        if info:
            info_line(f"sagactl: {mask_secrets(info)}")
        worst = max(worst, result.exit_code, key=_severity)
    return int(worst)


def _severity(code: int) -> int:
    return {0: 0, 1: 1, 4: 2, 3: 3}.get(int(code), 4)


def _summary(saga: Any) -> str | None:
    state = saga.state.value
    if state == "completed":
        return None
    if state == "started":
        return f"saga {saga.saga_id} recorded (started); drive it with 'sagactl resume {saga.saga_id}'"
    undone = [s.name for s in reversed(saga.steps) if s.status.value == "compensated"]
    failed = next((s for s in saga.steps if s.status.value == "failed"), None)
    if state == "failed":
        where = f" at {failed.name}: {failed.error}" if failed else ""
        comp = f"; compensated {', '.join(undone)}" if undone else "; nothing to compensate"
        return f"saga {saga.saga_id} failed{where}{comp}"
    blocked = saga.current_step_name or "?"
    return (
        f"saga {saga.saga_id} is {state} at {blocked}: {saga.last_error or 'no error recorded'};"
        f" fix the participant, then 'sagactl resume {saga.saga_id}'"
    )


def main() -> None:
    """Console entry point."""
    import signal

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    if COMPLETE_VAR in os.environ:
        # The shell is asking for completions (scripts from `sagactl completion`). Typer
        # registers its completion classes only with add_completion=True, which would also
        # add --install-completion to every help page; register them here instead.
        from typer._completion_classes import completion_init

        completion_init()
    app(prog_name="sagactl")


__all__ = ["Document", "app", "main"]
