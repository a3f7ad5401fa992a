"""``sagactl worker``: a long-running driver of sagas (docs/workers.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from sagactl.cli.common import Shared, command, mask_secrets
from sagactl.cli.options import AWS_OPTIONS, CONFIG, DSN, LOG, VERBOSE
from sagactl.errors import ExitCode, UsageError
from sagactl.views.output import info_line


@command(DSN, CONFIG, AWS_OPTIONS, VERBOSE, LOG)
def worker(
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=256, help="Sagas driven at once by this process.")
    ] = 4,
    saga_type: Annotated[
        list[str] | None,
        typer.Option("--type", metavar="SAGA_TYPE", show_default=False, help="Only sagas of this type (repeatable)."),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            "--metrics-port",
            min=1,
            max=65535,
            metavar="PORT",
            show_default=False,
            help="Serve Prometheus metrics on /metrics and a health check on /healthz.",
        ),
    ] = None,
    grace: Annotated[
        str,
        typer.Option(
            "--grace",
            metavar="DURATION",
            help="On SIGTERM or Ctrl-C: how long sagas in hand may take to reach a step boundary.",
        ),
    ] = "30s",
    poll: Annotated[
        str,
        typer.Option("--poll", metavar="DURATION", help="The longest an idle worker waits before it looks again."),
    ] = "1s",
    *,
    opts: Shared,
) -> int:
    """Drive sagas from the saga log until stopped: detached ones, ones whose driver died,
    retries and SQS replies that are due. Run any number on any number of machines against one
    PostgreSQL. SIGTERM puts sagas in hand aside within --grace and exits 0."""
    from sagactl.definitions.model import duration_option
    from sagactl.engine.worker import WorkerOptions
    from sagactl.ops.worker import Started, run_worker

    grace_s, poll_s = duration_option(grace, "--grace"), duration_option(poll, "--poll")
    if not 0 < poll_s <= 60:
        raise UsageError(f"--poll must be above 0 and at most 60s, not {poll}")
    options = WorkerOptions(concurrency=concurrency, types=tuple(saga_type or ()), grace=grace_s, poll=poll_s)

    def announce(started: Started) -> None:
        metrics = f"; metrics on :{started.metrics_port}" if started.metrics_port else ""
        info_line(
            f"sagactl: worker {started.owner_prefix} driving {mask_secrets(started.store)}"
            f" with {concurrency} at once{metrics}"
        )

    run_worker(opts.settings(), options, metrics_port=metrics_port, announce=announce)
    return ExitCode.OK
