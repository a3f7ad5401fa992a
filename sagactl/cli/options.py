"""The options and arguments commands share, defined once as ``Annotated`` aliases, and the
small parsers of their values."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any, TextIO

import typer

from sagactl.cli import complete
from sagactl.errors import UsageError
from sagactl.models import SagaState


class Output(StrEnum):
    """What -o offers: every OutputFormat but prometheus (only `stats`) and wide (only `list`)."""

    TABLE = "table"
    JSON = "json"
    JSONL = "jsonl"
    CSV = "csv"
    TSV = "tsv"
    MARKDOWN = "markdown"


class ListOutput(StrEnum):
    """What `list -o` offers: the common formats and wide."""

    TABLE = "table"
    WIDE = "wide"
    JSON = "json"
    JSONL = "jsonl"
    CSV = "csv"
    TSV = "tsv"
    MARKDOWN = "markdown"


class StatsOutput(StrEnum):
    """What `stats -o` offers: the common formats and prometheus."""

    TABLE = "table"
    JSON = "json"
    JSONL = "jsonl"
    CSV = "csv"
    TSV = "tsv"
    MARKDOWN = "markdown"
    PROMETHEUS = "prometheus"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class Shell(StrEnum):
    BASH = "bash"
    ZSH = "zsh"
    FISH = "fish"


class DlqGroupBy(StrEnum):
    SAGA = "saga"
    STEP = "step"
    ERROR = "error"


def _option(*names: str, help: str, panel: str | None = None, **extra: Any) -> Any:
    """A typer.Option that shows no default unless it says so (defaults are in the help)."""
    extra.setdefault("show_default", False)
    return typer.Option(*names, help=help, rich_help_panel=panel, **extra)


# -- the saga log ------------------------------------------------------------------------------

STORE = "Store"
DsnOpt = Annotated[
    str | None,
    _option(
        "--dsn",
        envvar="SAGACTL_DSN",
        panel=STORE,
        help="Saga log: sqlite:///path.db or postgresql://user@host/db [default: sqlite:///.sagactl/saga_log.db].",
    ),
]
ConfigOpt = Annotated[
    str | None,
    _option(
        "--config",
        envvar="SAGACTL_CONFIG",
        panel=STORE,
        help="sagactl.yaml to read (default: ./sagactl.yaml if present).",
    ),
]
ContextOpt = Annotated[
    str | None,
    _option(
        "--context",
        envvar="SAGACTL_CONTEXT",
        panel=STORE,
        help="Named context from the config file.",
        autocompletion=complete.context_names,
    ),
]

PresetOpt = Annotated[
    str | None,
    _option(
        "--preset",
        metavar="NAME",
        envvar="SAGACTL_PRESET",
        panel=STORE,
        help="Read a framework's saga table at --dsn, read-only: dbos (a DBOS system database) or eventuate"
        " (Eventuate Tram Sagas' saga_instance). See docs/presets.md.",
        autocompletion=complete.preset_names,
    ),
]

# -- AWS ---------------------------------------------------------------------------------------

AWS = "AWS"
RegionOpt = Annotated[
    str | None,
    _option(
        "--region",
        metavar="REGION",
        envvar=["AWS_REGION", "AWS_DEFAULT_REGION"],
        panel=AWS,
        help="AWS region [default: aws.region in sagactl.yaml, else the profile's region].",
    ),
]
ProfileOpt = Annotated[
    str | None,
    _option(
        "--profile",
        metavar="PROFILE",
        envvar="AWS_PROFILE",
        panel=AWS,
        help="AWS named profile from ~/.aws/config [default: aws.profile in sagactl.yaml, else the default chain].",
    ),
]
EndpointUrlOpt = Annotated[
    str | None,
    _option(
        "--endpoint-url",
        metavar="URL",
        envvar=["AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL"],
        panel=AWS,
        help="SQS endpoint, e.g. http://127.0.0.1:4566 for a local emulator [default: aws.endpoint_url, else AWS's].",
    ),
]

# -- output ------------------------------------------------------------------------------------

OutputOpt = Annotated[
    Output,
    _option(
        "-o",
        "--output",
        case_sensitive=False,
        show_default=True,
        help="table (rich on a terminal, plain in a pipe), json, jsonl, csv, tsv, markdown.",
    ),
]
StatsOutputOpt = Annotated[
    StatsOutput,
    _option(
        "-o",
        "--output",
        case_sensitive=False,
        show_default=True,
        help="table, json, jsonl, csv, tsv, markdown, or prometheus (text exposition for the"
        " node_exporter textfile collector).",
    ),
]
ListOutputOpt = Annotated[
    ListOutput,
    _option(
        "-o",
        "--output",
        case_sensitive=False,
        show_default=True,
        help="table (rich on a terminal, plain in a pipe), wide (every field), json, jsonl, csv, tsv, markdown.",
    ),
]
NoHeadersOpt = Annotated[
    bool, _option("--no-headers", help="Leave the header line out (table, wide, csv and tsv output).")
]
IntervalOpt = Annotated[
    str | None,
    _option(
        "--interval",
        metavar="DURATION",
        help="Time between two looks, 100ms to 1h [default: 1s for --follow, 5s for --watch].",
    ),
]
QuietOpt = Annotated[bool, _option("-q", "--quiet", show_default=True, help="Print saga IDs only, one per line.")]
VerboseOpt = Annotated[
    bool, _option("-v", "--verbose", show_default=True, help="Log each transition to stderr; tracebacks on errors.")
]
LogFormatOpt = Annotated[
    LogFormat | None,
    _option("--log-format", case_sensitive=False, help="Transition log on stderr as text or json (implies logging)."),
]

# -- selecting sagas ---------------------------------------------------------------------------

OlderThanOpt = Annotated[
    str | None,
    _option(
        "--older-than",
        metavar="DURATION",
        help="Idle (not updated) for longer than this, e.g. 30m, 2h. With --stuck: the threshold for"
        " sagas without a deadline [default: the current step's timeout, else 15m].",
    ),
]
SagaTypeOpt = Annotated[str | None, _option("--type", metavar="SAGA_TYPE", help="Only sagas of this type.")]
StuckOpt = Annotated[
    bool,
    _option(
        "--stuck",
        help="Only stuck sagas: active and past their deadline, or idle past --older-than."
        " Compensating first, then the longest stuck.",
    ),
]
StateOpt = Annotated[
    list[SagaState] | None,
    _option("--state", case_sensitive=False, help="Only sagas in this state (repeatable)."),
]
SinceOpt = Annotated[
    str | None,
    _option(
        "--since",
        metavar="WHEN",
        help="Only sagas created at or after WHEN: a duration back from now (24h, 30m, 7d) or an ISO 8601"
        " time (2026-11-26T08:00:00Z; without a zone: UTC).",
    ),
]
UntilOpt = Annotated[
    str | None,
    _option("--until", metavar="WHEN", help="Only sagas created before WHEN (a duration back from now, or a time)."),
]
StepSelectOpt = Annotated[
    str | None, _option("--step", metavar="STEP", help="Only sagas whose current step is STEP (where they stopped).")
]
ErrorOpt = Annotated[
    str | None,
    _option(
        "--error",
        metavar="TEXT",
        help="Only sagas whose last error contains TEXT (literally, case-sensitive: % and _ are themselves).",
    ),
]
SagaIdsOpt = Annotated[
    list[str] | None,
    _option(
        "--saga-id",
        metavar="ID",
        help="Only this saga: its ID or a unique prefix (repeatable); - reads IDs from stdin, one per line.",
    ),
]
JobOpt = Annotated[
    str | None,
    _option("--job", metavar="JOB", help="Only the sagas a bulk job (resume/abort/resolve) wrote transitions for."),
]
GroupOpt = Annotated[
    str | None,
    _option(
        "--group",
        metavar="KEY",
        help="Only the sagas of this failure group (the KEY 'list --group-by' shows), among those the other"
        " selectors pick: pass the ones the groups were listed with (e.g. --stuck).",
    ),
]
ReasonOpt = Annotated[
    str, _option("--reason", help="Why (required): recorded with your name ($USER) in the saga's history.")
]

# -- bulk actions (resume, abort, resolve over many sagas) -------------------------------------

BULK = "Bulk actions"
DryRunOpt = Annotated[
    bool,
    _option("--dry-run", panel=BULK, help="Print the plan (each saga and what will happen to it); change nothing."),
]
YesOpt = Annotated[
    bool,
    _option(
        "--yes",
        "-y",
        panel=BULK,
        help="Act on more than one selected saga without asking (needed when stdin or stderr is not a terminal).",
    ),
]
BulkRateOpt = Annotated[
    float | None,
    _option("--rate", metavar="N", panel=BULK, help="At most N sagas per second [default: one after the other]."),
]
BulkMaxOpt = Annotated[
    int | None,
    _option(
        "--max",
        metavar="N",
        panel=BULK,
        help="Act on at most N sagas now; running the same command again goes on with the next N (same job).",
    ),
]
BulkJobOpt = Annotated[
    str | None,
    _option(
        "--job",
        metavar="JOB",
        panel=BULK,
        help="The job to continue (skipping the sagas it already touched), or a new job's ID [default: derived from"
        " the command: re-running it continues an unfinished job].",
    ),
]

# -- dead-letter queues ------------------------------------------------------------------------

SagaIdFilterOpt = Annotated[
    list[str] | None,
    _option(
        "--saga-id",
        metavar="ID",
        help="Only messages of this saga (repeatable); - reads IDs from stdin ('sagactl list --stuck -q | …').",
    ),
]
StepFilterOpt = Annotated[
    str | None, _option("--step", metavar="STEP", help="Only messages for this step (step_name).")
]
VisibilityOpt = Annotated[
    int | None,
    _option(
        "--visibility-timeout",
        metavar="SECONDS",
        help="How long scanned messages stay hidden at most if sagactl dies mid-scan (1-43200); they are made"
        " visible again as soon as it ends [default: 60 for dlq list, 300 for redrive].",
    ),
]
WaitTimeOpt = Annotated[
    int,
    _option(
        "--wait-time",
        metavar="SECONDS",
        show_default=True,
        help="Long-poll this long before concluding the queue is drained (0-20; 0: trust one empty receive).",
    ),
]


# -- groups of shared options, appended to a command by common.command() ----------------------

Group = tuple[tuple[str, Any, Any], ...]  # (parameter name, Annotated type, default) each

DSN: Group = (("dsn", DsnOpt, None),)
# beside --dsn on the commands that only read the saga store (a framework's table is read-only)
PRESET: Group = (("preset", PresetOpt, None),)
CONFIG: Group = (("config", ConfigOpt, None), ("context", ContextOpt, None))
CONFIG_FILE: Group = (("config", ConfigOpt, None),)
AWS_OPTIONS: Group = (
    ("region", RegionOpt, None),
    ("profile", ProfileOpt, None),
    ("endpoint_url", EndpointUrlOpt, None),
)
OUTPUT: Group = (("output", OutputOpt, Output.TABLE),)
LIST_OUTPUT: Group = (("output", ListOutputOpt, ListOutput.TABLE),)
STATS_OUTPUT: Group = (("output", StatsOutputOpt, StatsOutput.TABLE),)
QUIET: Group = (("quiet", QuietOpt, False),)
VERBOSE: Group = (("verbose", VerboseOpt, False),)
LOG: Group = (("log_format", LogFormatOpt, None),)
# what bulk commands select sagas by, as list filters them (resolve takes --step for its own use)
SELECT: Group = (
    ("stuck", StuckOpt, False),
    ("state", StateOpt, None),
    ("saga_type", SagaTypeOpt, None),
    ("error", ErrorOpt, None),
    ("group", GroupOpt, None),
    ("older_than", OlderThanOpt, None),
    ("since", SinceOpt, None),
    ("until", UntilOpt, None),
)
SELECT_STEP: Group = (("step", StepSelectOpt, None),)
BULK_OPTIONS: Group = (
    ("dry_run", DryRunOpt, False),
    ("yes", YesOpt, False),
    ("rate", BulkRateOpt, None),
    ("max_sagas", BulkMaxOpt, None),
    ("job", BulkJobOpt, None),
)


def read_ids(values: Sequence[str] | None, stdin: TextIO | None = None) -> frozenset[str] | None:
    """ID option values; ``-`` reads whitespace-separated IDs from stdin (``#`` starts a comment).

    None means "no filter". ``-`` with nothing on stdin gives an empty set, which the
    commands refuse ("no IDs given"): an empty ``list --stuck -q`` never turns into
    "everything", nor into a run that quietly does nothing.
    """
    if not values:
        return None
    ids: set[str] = set()
    for value in values:
        if value != "-":
            ids.add(value.strip())
            continue
        stream = stdin or sys.stdin
        if stream.isatty():
            raise UsageError("--saga-id - reads saga IDs from stdin, but stdin is a terminal", hint="pipe IDs in")
        for line in stream.read().splitlines():
            ids.update(line.split("#", 1)[0].split())
    return frozenset(i for i in ids if i)
