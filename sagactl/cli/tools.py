"""Tools around sagas: graph, doctor, config contexts / use-context / view."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer

from sagactl.cli.common import Shared, command
from sagactl.cli.options import AWS_OPTIONS, CONFIG, DSN, OUTPUT, VERBOSE
from sagactl.errors import ExitCode
from sagactl.output import emit, terminal_safe


class GraphFormat(StrEnum):
    MERMAID = "mermaid"
    DOT = "dot"


@command(VERBOSE)
def graph(
    file: Annotated[str, typer.Argument(help="Saga definition (YAML).", show_default=False)],
    saga: Annotated[
        str | None, typer.Option("--saga", show_default=False, help="Which saga, when FILE holds several.")
    ] = None,
    output: Annotated[
        GraphFormat,
        typer.Option(
            "-o",
            "--output",
            case_sensitive=False,
            help="mermaid (paste into Markdown) or dot (Graphviz: pipe into 'dot -Tsvg').",
        ),
    ] = GraphFormat.MERMAID,
    *,
    opts: Shared,
) -> int:
    """Draw a saga definition: its steps in order, each compensation and the edges the engine
    follows on failure, endpoints, timeouts and retry budgets. Invalid definition: exit 2."""
    from sagactl.ops.tools import graph_file

    sys.stdout.write(graph_file(file, saga, output.value))
    return ExitCode.OK


@command(DSN, CONFIG, AWS_OPTIONS, OUTPUT, VERBOSE)
def doctor(
    files: Annotated[
        list[str] | None,
        typer.Argument(help="Saga definitions whose endpoints (and sagas in flight) to check.", show_default=False),
    ] = None,
    *,
    opts: Shared,
) -> int:
    """Show what sagactl resolved (config file, context, store, AWS) and whether each part works,
    changing nothing. Exit 0 when nothing failed, 2 for an invalid definition or config, else 4."""
    from sagactl.ops.doctor import DoctorRequest
    from sagactl.ops.doctor import doctor as run_doctor
    from sagactl.tool_views import doctor_document

    request = DoctorRequest(
        files=tuple(files or ()),
        dsn=opts.dsn,
        config=opts.config,
        context=opts.context,
        region=opts.region,
        profile=opts.profile,
        endpoint_url=opts.endpoint_url,
    )
    report = run_doctor(request)
    for problem in report.problems:
        sys.stderr.write(terminal_safe(problem) + "\n")
    emit(doctor_document(report.checks), opts.output)
    return report.checks.exit_code
