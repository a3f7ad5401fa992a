"""Tools around sagas: graph, doctor, config contexts / use-context / view, monitoring rules / dashboard."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer

from sagactl.cli.common import Shared, command
from sagactl.cli.options import AWS_OPTIONS, CONFIG, CONFIG_FILE, DSN, OUTPUT, PRESET, VERBOSE
from sagactl.errors import ExitCode
from sagactl.views.output import emit, info_line, terminal_safe


class GraphFormat(StrEnum):
    MERMAID = "mermaid"
    DOT = "dot"


class ViewFormat(StrEnum):
    YAML = "yaml"
    JSON = "json"


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


@command(DSN, PRESET, CONFIG, AWS_OPTIONS, OUTPUT, VERBOSE)
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
    from sagactl.views.tools import doctor_document

    request = DoctorRequest(**opts.flags.given(), files=tuple(files or ()))
    report = run_doctor(request)
    for problem in report.problems:
        sys.stderr.write(terminal_safe(problem) + "\n")
    emit(doctor_document(report.checks), opts.output)
    return report.checks.exit_code


@command(CONFIG, OUTPUT, VERBOSE)
def config_contexts(*, opts: Shared) -> int:
    """List the contexts of the config file, the one in effect marked * (--context /
    SAGACTL_CONTEXT, else the file's current_context); passwords masked."""
    from sagactl.ops.contexts import list_contexts
    from sagactl.views.tools import contexts_document

    emit(contexts_document(list_contexts(opts.flags.config, opts.flags.context)), opts.output)
    return ExitCode.OK


@command(CONFIG_FILE, VERBOSE)
def config_use_context(
    name: Annotated[str, typer.Argument(help="A context the config file defines.", show_default=False)],
    *,
    opts: Shared,
) -> int:
    """Make NAME the config file's current_context (every command then uses it unless
    --context or SAGACTL_CONTEXT says otherwise); the rest of the file stays as it is. An
    unknown NAME is exit 2, listing the known ones."""
    from sagactl.ops.contexts import use_context

    path = use_context(name, opts.flags.config)
    info_line(f"sagactl: switched to context '{name}' ({path})")
    return ExitCode.OK


@command(CONFIG_FILE, VERBOSE)
def config_view(
    output: Annotated[
        ViewFormat, typer.Option("-o", "--output", case_sensitive=False, help="yaml or json.")
    ] = ViewFormat.YAML,
    *,
    opts: Shared,
) -> int:
    """Print the config file sagactl reads, every password and secret masked (which file: on
    stderr)."""
    from sagactl.codec import to_json
    from sagactl.ops.contexts import view
    from sagactl.views.output import json_safe

    path, doc = view(opts.flags.config)
    info_line(f"# {path}" if path else "sagactl: no config file found (./sagactl.yaml, ~/.config/sagactl/config.yaml)")
    if output is ViewFormat.JSON:
        sys.stdout.write(json_safe(to_json(doc)) + "\n")
    elif doc:
        import yaml

        text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False)
        sys.stdout.write("".join(terminal_safe(line) + "\n" for line in text.splitlines()))
    return ExitCode.OK


@command(VERBOSE)
def monitoring_rules(
    runbook_base: Annotated[
        str,
        typer.Option(
            "--runbook-base",
            metavar="URL",
            help="Where the monitoring page of your copy of the docs is served: each alert's runbook_url is this"
            " plus the alert's anchor.",
        ),
    ] = "https://sagactl.dev/monitoring/",
    *,
    opts: Shared,
) -> int:
    """Print Prometheus alerting rules for sagactl's metrics (stuck and exhausted sagas, sagas
    over their budget, dead-letter queues, workers), each with for:, severity, a summary and
    a runbook_url."""
    from sagactl.ops.monitoring import alert_rules

    sys.stdout.write(alert_rules(runbook_base))
    return ExitCode.OK


@command(VERBOSE)
def monitoring_dashboard(*, opts: Shared) -> int:
    """Print a Grafana dashboard (JSON, ready for provisioning) of sagactl's metrics."""
    from sagactl.ops.monitoring import dashboard

    sys.stdout.write(dashboard())
    return ExitCode.OK
