"""What a terminal gets: sagactl run as a subprocess with stdout and/or stderr on a real
pseudo-terminal (tests/support/pty.py), the other streams on pipes.

Rich tables and colour on a terminal, the layout without colour under NO_COLOR, the live
run view on a terminal stderr while stdout is piped, and the redrive progress bar.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.support.pty import colour_codes, run_on_pty, strip_escapes
from tests.support.sqs import Sqs

ROOT = Path(__file__).parent.parent
SAMPLE = "sample-configs/order.yaml"
SAMPLE_INPUT = "@sample-configs/order-input.json"
STEPS = ("reserve_inventory", "charge_payment", "create_shipment", "send_confirmation")
BOX = set("┏┓┗┛┃━│─┡┩╇")


def sagactl(*args: str) -> list[str]:
    return [sys.executable, "-m", "sagactl", *args]


@pytest.fixture
def child_env(tmp_path: Path) -> dict[str, str]:
    """This environment without failure switches or sagactl settings; participant state in tmp."""
    cleared = ("FAIL_STEP", "FAIL_STEP_MODE", "FAIL_COMPENSATION", "SAGACTL_DSN", "SAGACTL_CONFIG", "SAGACTL_CONTEXT")
    env = {k: v for k, v in os.environ.items() if k not in cleared}
    env["SAMPLE_STATE_DIR"] = str(tmp_path / "state")
    return env


@pytest.fixture
def dsn(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'saga_log.db'}"


def run_sample_piped(env: Mapping[str, str], dsn: str, saga_id: str) -> None:
    """Run the sample saga to completion with every stream on a pipe (to have one to show)."""
    done = subprocess.run(
        sagactl("run", SAMPLE, "--input", SAMPLE_INPUT, "--dsn", dsn, "--saga-id", saga_id, "-q"),
        cwd=ROOT,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def live_rows(screen: str) -> list[str]:
    """Lines of the live step table (icon, step, status, ...) as drawn, escapes removed."""
    return [line for line in strip_escapes(screen).splitlines() if " │ " in line]


# -- stdout on a terminal ------------------------------------------------------------------


@pytest.mark.slow
def test_show_on_a_terminal_is_a_rich_table_in_colour(child_env: dict[str, str], dsn: str) -> None:
    run_sample_piped(child_env, dsn, "tty-1")
    code, tty, stdout, stderr = run_on_pty(
        sagactl("show", "tty-1", "--dsn", dsn), tty={"stdout"}, env=child_env, cwd=ROOT
    )
    assert code == 0, stderr
    assert (stdout, stderr) == ("", "")
    text = strip_escapes(tty)
    assert {"┏", "┃", "━", "│"} <= set(text), text  # rich's heavy-head box, not tabulate's plain text
    assert "tty-1" in text and all(step in text for step in STEPS)
    assert "\x1b[32mcompleted" in tty  # step status in green
    assert colour_codes(tty)


@pytest.mark.slow
def test_no_color_keeps_the_rich_layout_without_colour(child_env: dict[str, str], dsn: str) -> None:
    run_sample_piped(child_env, dsn, "tty-2")
    code, tty, _, stderr = run_on_pty(
        sagactl("show", "tty-2", "--dsn", dsn), tty={"stdout"}, env=child_env, extra_env={"NO_COLOR": "1"}, cwd=ROOT
    )
    assert code == 0, stderr
    text = strip_escapes(tty)
    assert {"┏", "┃", "━", "│"} <= set(text), text
    assert "completed" in text
    assert colour_codes(tty) == []


@pytest.mark.slow
def test_no_color_live_view_has_no_colour(child_env: dict[str, str], dsn: str) -> None:
    code, tty, _, _ = run_on_pty(
        sagactl("run", SAMPLE, "--input", SAMPLE_INPUT, "--dsn", dsn),
        tty={"stdout", "stderr"},
        env=child_env,
        extra_env={"NO_COLOR": "1"},
        cwd=ROOT,
    )
    assert code == 0, tty
    assert any("✔" in line and "send_confirmation" in line for line in live_rows(tty)), tty
    assert colour_codes(tty) == []


# -- stderr on a terminal, stdout piped ----------------------------------------------------


@pytest.mark.slow
def test_live_view_on_a_terminal_stderr_while_stdout_is_piped(child_env: dict[str, str], dsn: str) -> None:
    code, tty, stdout, _ = run_on_pty(
        sagactl("run", SAMPLE, "--input", SAMPLE_INPUT, "--dsn", dsn, "--saga-id", "live-1", "-o", "json"),
        tty={"stderr"},
        env=child_env,
        cwd=ROOT,
    )
    assert code == 0, tty
    rows = live_rows(tty)
    for step in STEPS:  # every step drawn, and drawn again once it completed
        assert any(step in row for row in rows), tty
        assert any(step in row and "✔" in row and "completed" in row for row in rows), tty
    assert "live-1" in strip_escapes(tty)
    assert "\x1b[1A" in tty  # redrawn in place (cursor up), not printed line after line
    data = json.loads(stdout)  # the data still goes to the pipe, untouched by the view
    assert (data["saga_id"], data["state"]) == ("live-1", "completed")
    assert "\x1b" not in stdout and not BOX & set(stdout)


@pytest.mark.slow
def test_default_table_still_reaches_a_piped_stdout_under_the_live_view(child_env: dict[str, str], dsn: str) -> None:
    code, tty, stdout, _ = run_on_pty(
        sagactl("run", SAMPLE, "--input", SAMPLE_INPUT, "--dsn", dsn, "--saga-id", "live-2"),
        tty={"stderr"},
        env=child_env,
        cwd=ROOT,
    )
    assert code == 0, tty
    assert live_rows(tty)
    assert "live-2" in stdout and all(step in stdout for step in STEPS)
    assert "\x1b" not in stdout and not BOX & set(stdout)


@pytest.mark.slow
def test_run_detach_on_a_terminal_prints_the_id_alone_and_draws_no_view(child_env: dict[str, str], dsn: str) -> None:
    code, tty, stdout, stderr = run_on_pty(
        sagactl("run", SAMPLE, "--input", SAMPLE_INPUT, "--dsn", dsn, "--saga-id", "det-1", "--detach"),
        tty={"stdout"},
        env=child_env,
        cwd=ROOT,
    )
    assert (code, stdout) == (0, "")
    assert tty == "det-1\r\n"  # nothing else on stdout: no table, no colour
    assert stderr == "sagactl: saga det-1 recorded (started); a worker drives it, or 'sagactl resume det-1'\n"
    code, tty, _, _ = run_on_pty(
        sagactl("run", SAMPLE, "--input", SAMPLE_INPUT, "--dsn", dsn, "--saga-id", "det-2", "--detach"),
        env=child_env,
        cwd=ROOT,
    )
    assert code == 0
    assert tty == "det-2\r\nsagactl: saga det-2 recorded (started); a worker drives it, or 'sagactl resume det-2'\r\n"


# -- redrive ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_redrive_draws_a_transient_progress_bar_on_a_terminal(sqs: Sqs, aws_env: Mapping[str, str]) -> None:
    dlq, source = sqs.dlq_pair()
    sqs.send(dlq, [json.dumps({"saga_id": f"saga-{i}", "n": i}) for i in range(12)])
    code, tty, stdout, _ = run_on_pty(
        sagactl("redrive", "--dlq", dlq.name, "--wait-time", "0"),
        tty={"stderr"},
        env={**os.environ, **aws_env},
        cwd=ROOT,
    )
    assert code == 0, tty
    text = strip_escapes(tty)
    assert "moved 12  failed 0  skipped 0" in text, tty  # the bar's description at its last refresh
    assert "12/12" in text and "━" in text
    assert "\x1b[?25l" in tty and "\x1b[?25h" in tty  # cursor hidden while the bar runs, shown again
    bar_end = tty.rindex("12/12")
    summary = tty.index("sagactl: moved 12, skipped 0, poisoned 0, failed 0")
    assert bar_end < summary
    assert "\x1b[2K" in tty[bar_end:summary]  # transient: erased before the summary line is written
    assert "moved:" in stdout and "\x1b" not in stdout  # the summary table in a pipe stays plain
    assert len(sqs.receive_all(source)) == 12
