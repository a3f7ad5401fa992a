"""The documentation holds (README.md and every page under docs/, whoever wrote it): every
``sagactl`` line parses against the command line, every example that shows output is run and
prints what it shows, the command reference is the one the CLI writes, every page is in the
site's navigation, and the README stays short."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from sagactl.cli import reference
from tests.cli.test_examples import command_lines as split_pipeline
from tests.cli.test_examples import parse
from tests.support import docs

LINES = docs.command_lines()
EXAMPLES = docs.examples()


def test_the_docs_hold_commands_and_examples() -> None:
    assert len(LINES) >= 150 and len(EXAMPLES) >= 10


@pytest.mark.parametrize(("where", "line"), LINES, ids=[f"{w} {line[:60]}" for w, line in LINES])
def test_every_sagactl_line_parses(where: str, line: str) -> None:
    """Each command a page shows names commands and options that exist, with valid values."""
    example = shlex.join(shlex.split(line, comments=True))  # a comment after the command dropped
    for argv in split_pipeline(example):
        parse(argv)


def _sandbox(tmp_path: Path) -> dict[str, str]:
    """A directory as a newcomer's checkout has it (sample-configs, no saga log yet, no
    sagactl.yaml), and an environment without SAGACTL_*, AWS or colour settings."""
    shutil.copytree(docs.ROOT / "sample-configs", tmp_path / "sample-configs", ignore=shutil.ignore_patterns(".*"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGACTL_", "AWS_", "FAIL_"))}
    env.update(HOME=str(tmp_path), USER="alice", PYTHONUNBUFFERED="1", NO_COLOR="1", COLUMNS="100", TZ="UTC")
    env.pop("FORCE_COLOR", None)
    return env


def _run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL
    )


@pytest.mark.slow
@pytest.mark.parametrize("block", EXAMPLES, ids=[b.where for b in EXAMPLES])
def test_every_example_prints_what_it_shows(block: docs.Block, tmp_path: Path) -> None:
    """A console example, run as written in a fresh checkout: each ``$`` line exits as shown
    (``# exit N``, else 0) and prints what follows it (``…`` stands for any text)."""
    env = _sandbox(tmp_path)
    for command in block.setup:
        done = _run(command, tmp_path, env)
        assert done.returncode == 0, f"{block.where}: setup {command!r} failed: {done.stderr}"
    ran = docs.steps(block)
    assert ran, f"{block.where}: a console block without a '$ ' command"
    for step in ran:
        done = subprocess.run(
            ["bash", "-c", "{ " + step.command + "\n} 2>&1"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )
        got = done.stdout.splitlines()
        assert docs.matches(step.expected, got), (
            f"{block.where}: '$ {step.command}' printed:\n" + "\n".join(got) + "\n\nthe page shows:\n"
            + "\n".join(step.expected)
        )
        assert done.returncode == step.exit_code, f"{block.where}: '$ {step.command}' exited {done.returncode}"


def test_the_command_reference_is_current() -> None:
    """docs/commands is what the CLI writes (python -m sagactl.cli.reference docs/commands)."""
    shipped = {p.name: p.read_text("utf-8") for p in (docs.DOCS / "commands").glob("*.md")}
    assert shipped == reference.pages(), "docs/commands is stale: run 'python -m sagactl.cli.reference docs/commands'"


def _nav_pages(nav: object) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    return []


def test_every_page_is_in_the_navigation() -> None:
    """A page is one line in mkdocs.yml's nav; one that is missing (or a nav line without its
    page) is named here."""
    config = yaml.load((docs.ROOT / "mkdocs.yml").read_text("utf-8"), Loader=yaml.BaseLoader)
    listed = _nav_pages(config["nav"])
    present = sorted(str(p.relative_to(docs.DOCS)) for p in docs.DOCS.rglob("*.md"))
    assert sorted(set(present) - set(listed)) == [], "add these pages to mkdocs.yml's nav"
    assert sorted(set(listed) - set(present)) == [], "mkdocs.yml's nav names pages that do not exist"
    assert len(listed) == len(set(listed))


def test_the_readme_is_short_and_links_into_the_docs() -> None:
    text = (docs.ROOT / "README.md").read_text("utf-8")
    assert len(text.splitlines()) < 250
    for link in ("docs/index.md", "docs/commands/index.md", "docs/troubleshooting.md"):
        assert f"({link}" in text, link


def test_output_is_shown_only_where_a_test_checks_it() -> None:
    """A transcript (``$ sagactl …`` followed by what it prints) is a console block, which the
    test above runs; a terminal rendering is a snapshot file a test writes, included with
    ``--8<--``. Any other block that shows a prompt is output nothing checks."""
    unchecked = [
        block.where
        for page in docs.pages()
        for block in docs.blocks(page)
        if block.info != "console" and any(line.startswith("$ sagactl") for line in block.lines)
    ]
    assert unchecked == []
    for page in docs.pages():
        for block in docs.blocks(page):
            for line in block.lines:
                if line.startswith("--8<--"):
                    included = docs.ROOT / line.split('"')[1]
                    assert included.parent == docs.ROOT / "tests" / "snapshots" and included.exists(), block.where
