"""Every ``sagactl`` line of docs/tracing.md parses against the command line (commands,
options, values), and the config block it shows is one sagactl.yaml accepts."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from sagactl.config import resolve_settings
from sagactl.tracing.settings import resolve
from tests.cli.test_examples import command_lines, parse

PAGE = Path(__file__).resolve().parents[2] / "docs" / "tracing.md"


def _blocks(language: str) -> list[str]:
    text = PAGE.read_text("utf-8")
    return [part.split("```", 1)[0] for part in text.split(f"```{language}\n")[1:]]


def _lines() -> list[str]:
    return [line for block in _blocks("bash") for line in block.splitlines() if line.startswith("sagactl ")]


def test_the_page_has_examples() -> None:
    assert len(_lines()) >= 5


@pytest.mark.parametrize("line", _lines())
def test_every_command_parses(line: str) -> None:
    example = shlex.join(shlex.split(line, comments=True))
    for argv in command_lines(example):
        parse(argv)


def test_the_config_example_is_accepted(tmp_path: Path) -> None:
    [example] = [block for block in _blocks("yaml") if "contexts:" in block]
    (tmp_path / "sagactl.yaml").write_text(example)
    top = resolve_settings(config=str(tmp_path / "sagactl.yaml"), env={})
    chosen = resolve(top.tracing, {})
    assert chosen is not None and (chosen.protocol, chosen.endpoint) == ("grpc", "http://tempo.internal:4317")
    staging = resolve_settings(config=str(tmp_path / "sagactl.yaml"), context="staging", env={})
    assert staging.tracing is not None and staging.tracing["endpoint"] == "http://tempo.staging:4317"
    assert yaml.safe_load(example)["tracing"]["sampler_arg"] == 0.25
