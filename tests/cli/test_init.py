"""The command line builds only the command a process runs (sagactl.cli.build / invoked): what
that command accepts, prints and exits with is the whole app's, for every command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from sagactl.cli import COMMANDS, GROUPS, build, invoked

PATHS = [(group, name) for group, name, _, _ in COMMANDS]


def words(path: tuple[str, str]) -> list[str]:
    return [w for w in path if w]


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(words(p)) for p in PATHS])
@pytest.mark.slow
def test_one_command_app_answers_as_the_whole_app(path: tuple[str, str]) -> None:
    whole, alone = build(), build(path)
    for argv in ([*words(path), "--help"], [*words(path), "--no-such-option"], [*words(path), "-o", "nope"]):
        expected = CliRunner().invoke(whole, argv, prog_name="sagactl")
        got = CliRunner().invoke(alone, argv, prog_name="sagactl")
        assert (got.exit_code, got.output) == (expected.exit_code, expected.output), argv
    assert expected.exit_code == 2  # a usage error, not a crash or a run


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["list", "--stuck"], ("", "list")),
        (["dlq", "list", "q"], ("dlq", "list")),
        (["db", "init"], ("db", "init")),
        (["config", "use-context", "prod"], ("config", "use-context")),
        ([], None),
        (["--help"], None),
        (["--version"], None),
        (["db"], None),
        (["db", "--help"], None),
        (["dlq", "nope"], None),
        (["nope"], None),
        (["init"], None),  # a group's command is not a top-level one
    ],
)
def test_invoked_names_one_command_or_none(argv: list[str], expected: tuple[str, str] | None) -> None:
    assert invoked(argv) == expected


def test_groups_and_commands_agree() -> None:
    assert {group for group, *_ in COMMANDS} == {"", *GROUPS}
    assert len(set(PATHS)) == len(PATHS)


def test_a_process_imports_only_its_commands_module() -> None:
    code = (
        "import sys; sys.argv = ['sagactl', 'list', '--help']\n"
        "from sagactl.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "import json; print(json.dumps(sorted(m for m in sys.modules if m.startswith('sagactl.cli.'))))"
    )
    env = {**os.environ, "SAGACTL_CONFIG": os.devnull}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    assert "sagactl.cli.inspecting" in loaded
    assert not {"sagactl.cli.dlq", "sagactl.cli.worker", "sagactl.cli.tools", "sagactl.cli.history"} & set(loaded)
