"""Every command's --help (and each group's) ends with two or three examples, and every
example is a real command line: it parses against the command it documents."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from sagactl.cli import GROUPS, app
from sagactl.cli.examples import EXAMPLES
from tests.support.pty import run_on_pty, strip_escapes

ROOT = Path(__file__).parent.parent.parent
runner = CliRunner()
CLI = get_command(app)


def _paths(group: object = CLI, prefix: str = "") -> list[str]:
    found = []
    for name, command in getattr(group, "commands", {}).items():
        found.append(f"{prefix}{name}")
        found += _paths(command, f"{prefix}{name} ")
    return found


PATHS = ["", *_paths()]


def parse(argv: list[str]) -> str:
    """Parse ``argv`` (after 'sagactl') down to the command it names, as Click would run it
    (options, choices, types, required arguments), without running it; the command's path."""
    ctx = CLI.make_context("sagactl", argv, resilient_parsing=False)
    path: list[str] = []
    command = CLI
    while hasattr(command, "commands") and (ctx._protected_args or ctx.args):
        name, command, rest = command.resolve_command(ctx, [*ctx._protected_args, *ctx.args])  # type: ignore[attr-defined]
        assert command is not None and name is not None
        path.append(name)
        ctx = command.make_context(name, rest, parent=ctx, resilient_parsing=False)
    return " ".join(path)


def command_lines(example: str) -> list[list[str]]:
    """The arguments of each sagactl command in an example (a pipeline may hold several), up to
    the pipe or redirection that ends it."""
    words = shlex.split(example, posix=True)
    assert words[0] == "sagactl", example
    found: list[list[str]] = []
    current: list[str] | None = None
    for index, word in enumerate(words):
        if word in ("|", ">", ">>", "2>", "<", "&&", "||", ";", "&"):
            current = None
        elif current is None and word == "sagactl" and (index == 0 or words[index - 1] in ("|", "&&", "||", ";")):
            current = []
            found.append(current)
        elif current is not None:
            current.append(word)
    return found


@pytest.mark.parametrize("path", [p for p in PATHS if p])
def test_every_help_ends_with_examples(path: str) -> None:
    result = runner.invoke(app, [*path.split(), "--help"])
    assert result.exit_code == 0, result.stderr
    _, marker, tail = result.stdout.rpartition("\n  Examples:\n")
    assert marker, f"'sagactl {path} --help' has no Examples section at its end"
    lines = tail.rstrip("\n").splitlines()
    assert 2 <= len(lines) <= 3, lines
    assert all(line.startswith("    sagactl ") for line in lines), lines
    assert [line.strip() for line in lines] == list(EXAMPLES[path])


def test_sagactls_help_starts_with_the_3am_commands_and_fits_80x24() -> None:
    """`sagactl --help` (moved from the end to the top: its examples are the 3 a.m. commands)
    is one 80x24 screen on a terminal, and names every command, by section."""
    code, tty, _, _ = run_on_pty([sys.executable, "-m", "sagactl", "--help"], tty={"stdout"}, cwd=ROOT, size=(80, 24))
    assert code == 0
    lines = strip_escapes(tty).rstrip("\n").splitlines()
    assert len(lines) <= 23 and max(len(line) for line in lines) <= 80, lines  # the prompt keeps a line
    top = lines[lines.index("At 3 a.m.:") + 1 :][:3]
    assert [line.split("   ")[0].strip() for line in top] == list(EXAMPLES[""])
    sections = lines[lines.index("Commands (sagactl COMMAND --help: its options and examples):") + 1 :][:4]
    assert [line[:18].strip() for line in sections] == ["run and drive", "inspect", "dead letters", "admin and config"]
    named = {word for line in sections for word in line[18:].split()}
    assert {path.split()[0] for path in PATHS if path} <= named | {"list"}
    piped = runner.invoke(app, ["--help"])  # the same screen in a pipe
    assert piped.stdout.rstrip("\n").splitlines() == lines


@pytest.mark.parametrize(("path", "example"), [(p, e) for p in PATHS for e in EXAMPLES.get(p, ())])
def test_every_example_parses(path: str, example: str) -> None:
    named = [parse(argv) for argv in command_lines(example)]
    assert path in named or path in ("", *GROUPS), (example, named)


def test_no_example_is_for_a_command_that_does_not_exist() -> None:
    assert set(EXAMPLES) <= set(PATHS)


def test_rich_help_on_a_terminal_shows_the_examples_literally() -> None:
    """On a terminal the help is rich: brackets in an example are text, not markup."""
    code, tty, _, _ = run_on_pty(
        [sys.executable, "-m", "sagactl", "show", "--help"], tty={"stdout"}, cwd=ROOT, size=(200, 40)
    )
    assert code == 0
    text = strip_escapes(tty)
    assert "Examples" in text and "╭" in text  # rich's panels
    assert "jq '.steps[] | select(.error)'" in text


def test_help_stays_cheap() -> None:
    """--help of a command loads no heavy module (examples are plain strings)."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sagactl", "doctor", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0 and "Examples:" in completed.stdout
    modules = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in completed.stderr.splitlines()}
    assert modules & {"psycopg", "boto3", "botocore", "httpx", "urllib3", "tabulate", "yaml", "jsonschema"} == set()


def _troubleshooting_section() -> str:
    """The known failures of docs/troubleshooting.md (they were the README's Troubleshooting)."""
    text = (ROOT / "docs" / "troubleshooting.md").read_text("utf-8")
    return text.split("\n## The known failures of the saga pattern", 1)[1].split("\n## ", 1)[0]


def _troubleshooting_lines() -> list[str]:
    section = _troubleshooting_section()
    blocks = section.split("```sh\n")[1:]
    return [line for block in blocks for line in block.split("```", 1)[0].splitlines() if line.startswith("sagactl ")]


def test_troubleshooting_has_a_runbook_per_known_failure() -> None:
    section = _troubleshooting_section()
    for failure in (
        "Stuck in COMPENSATING",
        "Duplicate execution after a restart",
        "Lost reply",
        "A timeout firing before a slow step completes",
        "Compensation order",
        "Poison messages",
    ):
        assert f"**{failure}.**" in section
    assert len(_troubleshooting_lines()) >= 25


@pytest.mark.parametrize("line", _troubleshooting_lines())
def test_every_troubleshooting_command_parses(line: str) -> None:
    """Each command of the runbooks names commands and options that exist, with valid values."""
    example = shlex.join(shlex.split(line, comments=True))  # the comment after the command dropped
    for argv in command_lines(example):
        parse(argv)
