"""The command line: thin Typer commands over sagactl.ops.

    options.py     the shared options, defined once
    common.py      the error funnel, settings, the live view, reporting driven sagas
    sagas.py       validate, run, resume, resolve, abort
    bulk.py        what the commands acting on many sagas share (selector, confirmation, progress)
    inspecting.py  show, list, stats
    history.py     rerun, prune
    dlq.py         dlq list, redrive
    admin.py       db init, db recount, schema, completion
    tools.py       graph, doctor, config
    ui.py          ui (the terminal UI, sagactl.ui)
    worker.py      worker
    complete.py    shell completion callbacks (saga IDs, step names, contexts)
    examples.py    the examples at the end of every command's --help
    reference.py   the docs' command reference pages, written from the commands themselves

Each command parses its options, calls one core function and hands the result to
``output.emit``. Every failure goes through ``common.funnel``: one masked line on stderr and the
documented exit code; a traceback only with ``-v``. Heavy modules load inside commands.

May import: anything of sagactl (it is the top); the commands call sagactl.ops and render with
sagactl.views.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, Literal

import typer

from sagactl.cli.admin import COMPLETE_VAR, completion_script
from sagactl.cli.common import SagactlGroup
from sagactl.cli.examples import epilog

# Rich help on a terminal; plain help in a pipe (no box drawing where scripts read it, and
# rich's help renderer costs ~70 ms of imports that a pipe does not need).
_HELP_MODE: Literal["rich"] | None = "rich" if sys.stdout.isatty() else None
_RICH = _HELP_MODE == "rich"

GROUPS = {  # the sub-command groups, in the order help lists them: name -> help
    "db": "Manage the saga log database.",
    "dlq": "Inspect dead-letter queues (SQS) without consuming their messages.",
    "config": "The contexts of sagactl.yaml: list them, switch the current one, view the file (secrets masked).",
    "monitoring": "Prometheus alert rules and a Grafana dashboard for sagactl's metrics.",
}
COMMANDS = (  # (group, name, module in sagactl.cli, function), in the order help lists them
    ("", "validate", "sagas", "validate"),
    ("", "run", "sagas", "run"),
    ("", "resume", "sagas", "resume"),
    ("", "show", "inspecting", "show"),
    ("", "list", "inspecting", "list_"),
    ("", "stats", "inspecting", "stats"),
    ("", "resolve", "sagas", "resolve"),
    ("", "abort", "sagas", "abort"),
    ("", "rerun", "history", "rerun"),
    ("", "prune", "history", "prune"),
    ("db", "init", "admin", "db_init"),
    ("db", "recount", "admin", "db_recount"),
    ("", "schema", "admin", "schema"),
    ("", "completion", "admin", "completion"),
    ("dlq", "list", "dlq", "dlq_list"),
    ("", "redrive", "dlq", "redrive"),
    ("", "worker", "worker", "worker"),
    ("", "graph", "tools", "graph"),
    ("", "doctor", "tools", "doctor"),
    ("config", "contexts", "tools", "config_contexts"),
    ("config", "use-context", "tools", "config_use_context"),
    ("config", "view", "tools", "config_view"),
    ("", "ui", "ui", "ui"),
    ("monitoring", "rules", "tools", "monitoring_rules"),
    ("monitoring", "dashboard", "tools", "monitoring_dashboard"),
)


def _print_version(value: bool) -> None:
    if value:
        from sagactl import __version__

        sys.stdout.write(f"sagactl {__version__}\n")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit."),
    ] = False,
) -> None:
    """sagactl's own options (the app's help text is the Typer's)."""


def build(only: tuple[str, str] | None = None, *, rich: bool | None = None) -> typer.Typer:
    """The command line. With ``only`` = (group, name), that one command is registered (its
    group, if any, holding only it) and only its module imported: Typer turns every registered
    function into a Click command on each start (signatures, annotations: ~15 ms for all 22),
    which a process that runs one command does not need. What that command parses, prints and
    exits with is the same either way (tests compare them); help for a group or for sagactl
    itself, completion and unknown commands take the whole app. ``rich``: the help renderer
    (default: rich on a terminal, plain in a pipe; the docs' reference takes plain)."""
    from importlib import import_module

    rich = _RICH if rich is None else rich
    mode: Literal["rich"] | None = "rich" if rich else None

    app = typer.Typer(
        name="sagactl",
        cls=SagactlGroup,
        rich_markup_mode=mode,
        help="Define, drive and operate sagas: multi-service transactions held together by compensations.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    groups = {"": app}
    for name, text in GROUPS.items():
        if only is not None and only[0] != name:
            continue
        groups[name] = typer.Typer(
            help=text, epilog=epilog(name, rich=rich), no_args_is_help=True, rich_markup_mode=mode
        )
        app.add_typer(groups[name], name=name)
    for group, name, module, function in COMMANDS:
        if only is not None and only != (group, name):
            continue
        path = f"{group} {name}".strip()  # the words before a command's Examples in its help
        command = getattr(import_module(f"sagactl.cli.{module}"), function)
        groups[group].command(name, epilog=epilog(path, rich=rich))(command)
    return app


def invoked(argv: list[str]) -> tuple[str, str] | None:
    """(group, name) of the command ``argv`` runs, or None when it runs no one command (help
    for sagactl or a group, --version, an unknown command)."""
    if not argv:
        return None
    wanted = ("", argv[0]) if argv[0] not in GROUPS else (argv[0], argv[1]) if len(argv) > 1 else None
    return wanted if any((group, name) == wanted for group, name, _, _ in COMMANDS) else None


_app: typer.Typer | None = None


def __getattr__(name: str) -> Any:
    """``app``: the whole command line, built on first use (tests, completion, docs)."""
    global _app
    if name != "app":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    if _app is None:
        _app = build()
    return _app


def main() -> None:
    """Console entry point."""
    import signal

    def _terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    def _masked_hook(kind: type[BaseException], exc: BaseException, tb: Any) -> None:
        # a bug shows its traceback, but never a secret (a DSN password in a driver's message)
        from sagactl.cli.common import masked_traceback

        sys.stderr.write(masked_traceback(exc.with_traceback(tb)))

    signal.signal(signal.SIGTERM, _terminate)
    sys.excepthook = _masked_hook
    if COMPLETE_VAR in os.environ:
        # The shell is asking for completions (scripts from `sagactl completion`). Typer
        # registers its completion classes only with add_completion=True, which would also
        # add --install-completion to every help page; register them here instead.
        from typer._completion_classes import completion_init

        completion_init()
        only = None
    else:
        only = invoked(sys.argv[1:])
    build(only)(prog_name="sagactl")


__all__ = ["app", "completion_script", "main"]
