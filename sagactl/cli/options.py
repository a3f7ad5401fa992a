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
ReasonOpt = Annotated[
    str, _option("--reason", help="Why (required): recorded with your name ($USER) in the saga's history.")
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
