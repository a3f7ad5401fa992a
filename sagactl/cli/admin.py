"""Administration: db init, db recount, schema, completion."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from sagactl.cli.common import Shared, command, mask_secrets
from sagactl.cli.options import CONFIG, DSN, OUTPUT, VERBOSE, Shell
from sagactl.errors import ExitCode
from sagactl.models import counted
from sagactl.views.output import OutputFormat, emit, info_line, stream_is_tty

COMPLETE_VAR = "_SAGACTL_COMPLETE"


@command(DSN, CONFIG, OUTPUT, VERBOSE)
def db_init(*, opts: Shared) -> int:
    """Create or upgrade the saga_log schema (safe to run twice). Says so on stderr; with -o
    other than table, {store, schema_version} on stdout instead."""
    from sagactl.ops.admin import init_db
    from sagactl.views.sagas import db_init_document

    if stream_is_tty(sys.stderr) and not opts.verbose:  # a migration may take minutes on a big log
        from sagactl.views.live import spinner

        with spinner("sagactl: opening the saga log") as status:
            where, version = init_db(
                opts.settings(), lambda v, name: status.update(f"sagactl: applying schema version {v} ({name})")
            )
    else:
        where, version = init_db(opts.settings())
    if opts.output is OutputFormat.TABLE:
        info_line(f"saga log {mask_secrets(where)} is at schema version {version}")
    else:
        emit(db_init_document(where, version), opts.output)
    return ExitCode.OK


@command(DSN, CONFIG, OUTPUT, VERBOSE)
def db_recount(*, opts: Shared) -> int:
    """Rebuild the per-type/state counters 'stats' reads from saga_log (writers wait meanwhile;
    triggers keep them exact, this repairs what they could not see, e.g. a restore)."""
    from sagactl.ops.admin import recount
    from sagactl.views.sagas import recount_document

    result = recount(opts.settings())
    emit(recount_document(result), opts.output)
    corrected = result.to_dict()["corrected"]
    info_line(f"sagactl: recounted {mask_secrets(result.location)}: {counted(corrected, 'counter')} corrected")
    return ExitCode.OK


@command(VERBOSE)
def schema(*, opts: Shared) -> int:
    """Print the JSON Schema of the saga definition language."""
    from sagactl.codec import to_json
    from sagactl.definitions.validation import schema as load_schema

    sys.stdout.write(to_json(load_schema()) + "\n")
    return ExitCode.OK


@command(VERBOSE)
def completion(
    shell: Annotated[Shell, typer.Argument(help="bash, zsh or fish.", case_sensitive=False)], *, opts: Shared
) -> int:
    """Print the shell completion script (e.g. sagactl completion bash > /etc/bash_completion.d/sagactl)."""
    sys.stdout.write(completion_script(shell.value) + "\n")
    return ExitCode.OK


def completion_script(shell: str) -> str:
    """The completion script for ``shell``, as shipped in completions/."""
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name="sagactl", complete_var=COMPLETE_VAR, shell=shell)
