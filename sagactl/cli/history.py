"""Commands over sagas that ended: rerun, prune.

Each parses its options, calls one function of sagactl.ops.history and renders what comes back.
"""

from __future__ import annotations

from typing import Annotated

import typer

from sagactl.cli.common import Shared, command, mask_secrets
from sagactl.cli.options import AWS_OPTIONS, CONFIG, DSN, LOG, OUTPUT, QUIET, VERBOSE
from sagactl.errors import ExitCode


@command(DSN, CONFIG, AWS_OPTIONS, OUTPUT, QUIET, VERBOSE, LOG)
def rerun(
    saga_ids: Annotated[
        list[str], typer.Argument(help="Sagas that ended failed, to run again.", show_default=False)
    ],
    definition: Annotated[
        str | None,
        typer.Option(
            "--definition",
            metavar="FILE",
            show_default=False,
            help="Run the new saga under this definition (validated; the saga's type is picked from"
            " the file) [default: the failed saga's stored definition].",
        ),
    ] = None,
    input_patch: Annotated[
        str | None,
        typer.Option(
            "--input-patch",
            metavar="JSON",
            show_default=False,
            help="A JSON merge patch (RFC 7386) applied to the failed saga's input: JSON text, @FILE or -;"
            ' null removes a field, e.g. \'{"address": {"zip": "10115"}, "coupon": null}\'.',
        ),
    ] = None,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="Only record each new saga (due for a worker at once) and print its ID.",
        ),
    ] = False,
    *,
    opts: Shared,
) -> int:
    """Run failed sagas again, each as a new saga (new ID: fresh idempotency keys) with the same
    input, linked both ways (show: rerun of / rerun as). Exit as run does for the new saga; a saga
    that did not end failed, or was rerun already, is refused (exit 2). -o json prints an array."""
    from sagactl.ops.history import RerunRequest, rerun_sagas
    from sagactl.output import error_line

    settings = opts.settings()
    request = RerunRequest(saga_ids=saga_ids, definition=definition, input_patch=input_patch, detach=detach)
    if detach:
        report = rerun_sagas(settings, request)
        code = opts.report(report.results, live=False, array=True, ids_only=not opts.json_output)
    else:
        report, live = opts.driven(lambda observer: rerun_sagas(settings, request, observer))
        code = opts.report(report.results, live=live, array=True)
    for _saga_id, failure in report.failures:
        error_line(mask_secrets(failure.one_line()))  # engine errors name the saga
    return ExitCode.worst([code, *(failure.exit_code for _, failure in report.failures)])
