"""Tools around sagas: graph, doctor, config contexts / use-context / view."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer

from sagactl.cli.common import Shared, command
from sagactl.cli.options import VERBOSE
from sagactl.errors import ExitCode


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
