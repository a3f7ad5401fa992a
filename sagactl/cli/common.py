"""What every command shares: the error funnel, settings from the flags, the live view of a
saga being driven, and reporting the sagas a command drove."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from sagactl.cli.options import LogFormat
from sagactl.errors import DefinitionError, ExitCode, SagactlError
from sagactl.output import OutputFormat, emit, error_line, info_line, stream_is_tty

if TYPE_CHECKING:
    from sagactl.config import Settings
    from sagactl.driver import Observer
    from sagactl.models import RunResult

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


def mask_secrets(text: str) -> str:
    """masking.mask_secrets, loaded on first use (its patterns cost start-up time --help need not pay)."""
    from sagactl.masking import mask_secrets as mask

    return mask(text)


def funnel(fn: F) -> F:
    """Run a command; map SagactlError to its masked line and exit code (a traceback only with
    -v). Commands return an exit code."""

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


def settings_from(
    dsn: str | None = None,
    config: str | None = None,
    context: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
) -> Settings:
    """The resolved settings for the flags given: flag > env > sagactl.yaml > default."""
    from sagactl.config import resolve_settings

    return resolve_settings(
        dsn=dsn, config=config, context=context, region=region, profile=profile, endpoint_url=endpoint_url
    )


class _NoLive:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def live_view(output: OutputFormat, quiet: bool, logging_on: bool) -> Any:
    """A live step table on stderr when it is a terminal and nothing else writes there."""
    if quiet or logging_on or not stream_is_tty(sys.stderr):
        return _NoLive()
    from sagactl.live import LiveView

    return LiveView()


def driven(
    output: OutputFormat, quiet: bool, logging_on: bool, work: Callable[[Observer | None], T]
) -> tuple[T, bool]:
    """``work`` run under the live view (when there is one); its result, and whether the view
    was drawn."""
    with live_view(output, quiet, logging_on) as observer:
        return work(observer), observer is not None


def report_runs(results: Sequence[RunResult], output: OutputFormat, quiet: bool, *, live: bool) -> ExitCode:
    """Emit run/resume results (a live view already showed a table); one summary line per saga
    that did not complete on stderr; the worst exit code."""
    from sagactl.views import run_summary_line, sagas_document

    if not (live and output is OutputFormat.TABLE and not quiet):
        emit(sagas_document([r.saga for r in results]), output, quiet=quiet)
    for result in results:
        info = result.message or run_summary_line(result.saga)
        if info:
            info_line(f"sagactl: {mask_secrets(info)}")
    return ExitCode.worst(r.exit_code for r in results)
