"""What every command shares: its shared options (appended by ``command``), the error funnel,
settings from the flags, the live view of a saga being driven, and reporting the sagas a
command drove."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from typer.core import TyperGroup

from sagactl.cli.options import Group, LogFormat
from sagactl.errors import DefinitionError, ExitCode, SagactlError
from sagactl.views.output import (
    Document,
    OutputFormat,
    emit,
    error_line,
    info_line,
    same_terminal,
    stream_is_tty,
)

if TYPE_CHECKING:
    from sagactl.config import Flags, Settings
    from sagactl.engine.host import Observer
    from sagactl.models import RunResult

T = TypeVar("T")


def mask_secrets(text: str) -> str:
    """masking.mask_secrets, loaded on first use (its patterns cost start-up time --help need not pay)."""
    from sagactl.masking import mask_secrets as mask

    return mask(text)


def masked_traceback(exc: BaseException, dsn: str | None = None) -> str:
    """``exc``'s traceback (its causes too) with secrets masked, the password of ``dsn`` (else
    of $SAGACTL_DSN) however malformed that DSN is."""
    import os
    import traceback

    from sagactl.masking import mask_dsn

    text = "".join(traceback.format_exception(exc))
    dsn = dsn or os.environ.get("SAGACTL_DSN")
    return mask_dsn(dsn, text) if dsn else mask_secrets(text)


@dataclass(frozen=True, slots=True)
class Shared:
    """The shared options of one command run; those the command does not take keep these
    defaults. ``flags``: the store and AWS options as given (config.py resolves them; it loads
    when the command runs, never for --help)."""

    flags: Flags
    output: OutputFormat = OutputFormat.TABLE
    quiet: bool = False
    verbose: bool = False
    log_format: LogFormat | None = None
    # the values of option groups that are not fields here (the selectors and bulk options of
    # resume, abort and resolve), by parameter name
    more: dict[str, Any] = field(default_factory=dict)

    def settings(self) -> Settings:
        """The resolved settings: flag > env > sagactl.yaml > default."""
        return self.flags.settings()

    @property
    def logging_on(self) -> bool:
        """Transitions are logged on stderr (-v or --log-format)."""
        return self.verbose or self.log_format is not None

    def driven(self, work: Callable[[Observer | None], T]) -> tuple[T, bool]:
        """``work`` run under the live view (a step table on stderr when it is a terminal and
        nothing else writes there); its result, and whether the view was drawn."""
        if self.quiet or self.logging_on or not stream_is_tty(sys.stderr):
            return work(None), False
        from sagactl.views.live import LiveView

        with LiveView() as view:
            return work(view), True

    def report(
        self, results: Sequence[RunResult], *, live: bool, array: bool = False, ids_only: bool = False
    ) -> ExitCode:
        """Emit run/resume results (``array``: a JSON array whatever their number, as `resume`
        prints; ``ids_only``: only the saga IDs, as `run --detach` prints outside json/jsonl);
        one summary line per saga that did not complete on stderr; the worst exit code. The
        table is left out only where the live view already drew it: stdout being the very
        terminal the view drew on (stderr's), not a pipe or a file."""
        from sagactl.views.sagas import run_summary_line, sagas_document

        drawn = live and self.output is OutputFormat.TABLE and same_terminal(sys.stdout, sys.stderr)
        if self.quiet or ids_only:  # IDs only: no saga document to build (its cost grows with the saga)
            emit(Document(data=None, ids=[r.saga.saga_id for r in results]), self.output, quiet=True)
        elif not drawn:
            emit(sagas_document([r.saga for r in results], array=array), self.output)
        for result in results:
            info = result.message or run_summary_line(result.saga)
            if info:
                info_line(f"sagactl: {mask_secrets(info)}")
        return ExitCode.worst(r.exit_code for r in results)

    def drive(self, work: Callable[[Observer | None], RunResult]) -> ExitCode:
        """Drive one saga under the live view and report it."""
        result, live = self.driven(work)
        return self.report([result], live=live)

    @property
    def json_output(self) -> bool:
        """-o json or jsonl: the data itself, whatever else the command would print."""
        return self.output in (OutputFormat.JSON, OutputFormat.JSONL)


def command(*groups: Group) -> Callable[[Callable[..., int]], Callable[..., None]]:
    """Make a Typer command of ``fn(..., opts: Shared) -> exit code``: the options of ``groups``
    are appended to its own (defined once in options.py) and handed to it as ``opts``; every
    SagactlError leaves as one masked ``sagactl: error:`` line and its exit code (a traceback
    only with -v)."""
    shared = [name for group in groups for name, _, _ in group]
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        for group in groups
        for name, annotation, default in group
    ]

    def decorate(fn: Callable[..., int]) -> Callable[..., None]:
        own = [p for p in inspect.signature(fn, eval_str=True).parameters.values() if p.name != "opts"]
        clash = {p.name for p in own} & set(shared)
        assert not clash, f"{fn.__name__} declares shared options itself: {clash}"

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> None:
            values = {name: kwargs.pop(name) for name in shared}
            if "output" in values:  # -o's choices differ per command; one format type inside
                values["output"] = OutputFormat(values["output"])
            from sagactl.config import FLAG_NAMES, Flags

            flags = Flags(**{name: values.pop(name) for name in FLAG_NAMES if name in values})
            more = {name: values.pop(name) for name in list(values) if name not in _SHARED_FIELDS}
            _run(fn, Shared(flags, **values, more=more), args, kwargs)

        wrapper.__signature__ = inspect.Signature(own + extra)  # type: ignore[attr-defined]
        return wrapper

    return decorate


_SHARED_FIELDS = frozenset(f.name for f in fields(Shared))


def _run(fn: Callable[..., int], opts: Shared, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    from sagactl.views.logs import configure_logging

    configure_logging(opts.logging_on, opts.log_format is LogFormat.JSON)
    try:
        code = fn(*args, opts=opts, **kwargs)
    except DefinitionError as exc:
        for problem in exc.problems:  # FILE:LINE:COL: what, each as an error line
            error_line(mask_secrets(problem))
        raise typer.Exit(int(exc.exit_code)) from None
    except SagactlError as exc:
        if opts.verbose:
            sys.stderr.write(masked_traceback(exc, opts.flags.dsn))
        error_line(mask_secrets(exc.one_line()))
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        error_line("interrupted")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    if code:
        raise typer.Exit(int(code))


class SagactlGroup(TyperGroup):
    """The top-level command group: the usage errors Click finds itself (an unknown option or
    command, a value not among the choices, a missing argument) leave as the same one line as
    every other error, ``sagactl: error: …``, exit 2, instead of Click's usage block. Help
    (asked for, or for no command at all) is printed as usual; sagactl's own is one 80x24
    screen (examples.overview), plain on a terminal too."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        if ctx.parent is not None:
            super().format_help(ctx, formatter)
            return
        from sagactl.cli.examples import overview

        formatter.write(overview(self.get_usage(ctx), " ".join((self.help or "").split())))

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        from typer._click.exceptions import ClickException, NoArgsIsHelpError

        try:
            code = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except NoArgsIsHelpError as exc:
            exc.show()
            sys.exit(exc.exit_code)
        except ClickException as exc:
            error_line(usage_line(exc))
            sys.exit(exc.exit_code)
        except typer.Abort:
            error_line("aborted")
            sys.exit(int(ExitCode.INTERRUPTED))
        sys.exit(code if isinstance(code, int) else 0)


def usage_line(exc: typer.TyperException) -> str:
    """A Click usage error as one line in sagactl's voice: what, and where to look."""
    text = " ".join(exc.format_message().split()).rstrip(".")
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        text = text[0].lower() + text[1:]
    ctx = getattr(exc, "ctx", None)
    text += f"; see '{ctx.command_path if ctx is not None else 'sagactl'} --help'"
    return text
