"""``sagactl ui``: the terminal UI (sagactl.ui, the ``ui`` extra)."""

from __future__ import annotations

from typing import Annotated

import typer

from sagactl.cli.common import Shared, command
from sagactl.cli.options import AWS_OPTIONS, CONFIG, DSN, PRESET, VERBOSE
from sagactl.errors import ExitCode, UsageError


@command(DSN, PRESET, CONFIG, AWS_OPTIONS, VERBOSE)
def ui(
    interval: Annotated[
        str,
        typer.Option("--interval", metavar="DURATION", help="How often the sagas are read again (100ms to 1h)."),
    ] = "2s",
    allow_actions: Annotated[
        bool,
        typer.Option(
            "--allow-actions",
            help="Let r, a and v resume, abort and resolve the selected saga or group (each behind a"
            " confirmation with the plan and a reason). Without it the UI only reads.",
        ),
    ] = False,
    *,
    opts: Shared,
) -> int:
    """A full-screen view for the on-call operator: the sagas (stuck first, then active, then
    recent) refreshed on their own, a saga's timeline, failure groups and the dead-letter
    queues; read-only unless --allow-actions."""
    from sagactl.tools.poll import parse_interval

    seconds = parse_interval(interval, 2.0)
    try:
        import textual  # noqa: F401  (the ui extra)
    except ImportError:
        raise UsageError("sagactl ui needs Textual, which is not installed", hint="pip install 'sagactl[ui]'") from None
    settings = opts.settings()
    from sagactl.masking import mask_dsn
    from sagactl.ui.app import run_ui
    from sagactl.ui.source import Source

    where = mask_dsn(settings.dsn) + (f" table {settings.mapping.table}" if settings.mapping else "")
    return run_ui(Source(settings), interval=seconds, allow_actions=allow_actions, where=where) or ExitCode.OK
