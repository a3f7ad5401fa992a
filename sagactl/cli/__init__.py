"""The command line: thin Typer commands over sagactl.ops.

    options.py  the shared options, defined once
    common.py   the error funnel, settings, the live view, reporting driven sagas
    sagas.py    validate, run, resume, resolve, abort
    inspecting.py show, list, stats
    history.py  rerun, prune
    dlq.py      dlq list, redrive
    admin.py    db init, schema, completion
    tools.py    graph, doctor, config

Each command parses its options, calls one core function and hands the result to
``output.emit``. Every failure goes through ``common.funnel``: one masked line on stderr and the
documented exit code; a traceback only with ``-v``. Heavy modules load inside commands.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any, Literal

import typer

from sagactl.cli import admin, dlq, history, inspecting, sagas, tools, worker
from sagactl.cli.admin import COMPLETE_VAR, completion_script
from sagactl.cli.common import SagactlGroup
from sagactl.cli.examples import epilog

# Rich help on a terminal; plain help in a pipe (no box drawing where scripts read it, and
# rich's help renderer costs ~70 ms of imports that a pipe does not need).
_HELP_MODE: Literal["rich"] | None = "rich" if sys.stdout.isatty() else None
_RICH = _HELP_MODE == "rich"

app = typer.Typer(
    name="sagactl",
    cls=SagactlGroup,
    rich_markup_mode=_HELP_MODE,
    help="Define, drive and operate sagas: multi-service transactions held together by compensations.",
    epilog=epilog("", rich=_RICH),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        from sagactl import __version__

        sys.stdout.write(f"sagactl {__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="Print the version and exit."),
    ] = False,
) -> None:
    """sagactl's own options (the app's help text is the Typer's)."""


db_app = typer.Typer(
    help="Manage the saga log database.",
    epilog=epilog("db", rich=_RICH),
    no_args_is_help=True,
    rich_markup_mode=_HELP_MODE,
)
app.add_typer(db_app, name="db")
dlq_app = typer.Typer(
    help="Inspect dead-letter queues (SQS) without consuming their messages.",
    epilog=epilog("dlq", rich=_RICH),
    no_args_is_help=True,
    rich_markup_mode=_HELP_MODE,
)
app.add_typer(dlq_app, name="dlq")
config_app = typer.Typer(
    help="The contexts of sagactl.yaml: list them, switch the current one, view the file (secrets masked).",
    epilog=epilog("config", rich=_RICH),
    no_args_is_help=True,
    rich_markup_mode=_HELP_MODE,
)
app.add_typer(config_app, name="config")

COMMANDS = (  # (group, name, command), in the order help lists them
    (app, "validate", sagas.validate),
    (app, "run", sagas.run),
    (app, "resume", sagas.resume),
    (app, "show", inspecting.show),
    (app, "list", inspecting.list_),
    (app, "stats", inspecting.stats),
    (app, "resolve", sagas.resolve),
    (app, "abort", sagas.abort),
    (app, "rerun", history.rerun),
    (app, "prune", history.prune),
    (db_app, "init", admin.db_init),
    (db_app, "recount", admin.db_recount),
    (app, "schema", admin.schema),
    (app, "completion", admin.completion),
    (dlq_app, "list", dlq.dlq_list),
    (app, "redrive", dlq.redrive),
    (app, "worker", worker.worker),
    (app, "graph", tools.graph),
    (app, "doctor", tools.doctor),
    (config_app, "contexts", tools.config_contexts),
    (config_app, "use-context", tools.config_use_context),
    (config_app, "view", tools.config_view),
)
# each group's words before a command's name ("db "), for the command's Examples in its help
_PREFIX = {id(info.typer_instance): f"{info.name} " for info in app.registered_groups} | {id(app): ""}
for group, name, command in COMMANDS:
    group.command(name, epilog=epilog(_PREFIX.get(id(group), "") + name, rich=_RICH))(command)

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
    app(prog_name="sagactl")


__all__ = ["app", "completion_script", "main"]
