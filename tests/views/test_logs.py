"""The transition log on stderr: one line per record, foreign text escaped, secrets masked."""

from __future__ import annotations

import json
import logging

import pytest

from sagactl.views.logs import configure_logging


@pytest.mark.parametrize("json_lines", [False, True])
def test_a_logged_line_stays_one_line_with_control_characters_escaped(
    json_lines: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(True, json_lines)
    try:
        logging.getLogger("sagactl.engine").info("%s - pending -> failed", "s[/x]\x1b]0;t\x07\nforged line \x9b2J")
    finally:
        configure_logging(False, False)
    line, *more = capsys.readouterr().err.splitlines()
    assert more == []
    assert "\x1b" not in line and "\x07" not in line and "\x9b" not in line
    if json_lines:
        assert json.loads(line)["message"] == "s[/x]\x1b]0;t\x07\nforged line \x9b2J - pending -> failed"
    else:
        assert line.endswith(" s[/x]\\x1b]0;t\\x07\\nforged line \\x9b2J - pending -> failed")
