"""The options and arguments commands share, defined once as ``Annotated`` aliases, and the
small parsers of their values."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, TextIO

import typer

from sagactl.errors import UsageError
from sagactl.output import OutputFormat


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


# -- the saga log ------------------------------------------------------------------------------

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

# -- AWS ---------------------------------------------------------------------------------------

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

# -- output ------------------------------------------------------------------------------------

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

# -- selecting sagas ---------------------------------------------------------------------------

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

# -- dead-letter queues ------------------------------------------------------------------------

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


def read_ids(values: Sequence[str] | None, stdin: TextIO | None = None) -> frozenset[str] | None:
    """ID option values; ``-`` reads whitespace-separated IDs from stdin (``#`` starts a comment).

    None means "no filter". ``-`` with nothing on stdin gives an empty set: nothing matches,
    so an empty ``list --stuck -q`` never turns into "everything".
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
