"""Foreign text (participant errors and results, message bodies, saga IDs, anything a store or a
queue holds) reaches a person literally: never parsed as rich markup, control characters
escaped, in every view (tables, details, the live view, the redrive progress bar, the plain
format, stderr lines). JSON keeps it exact.

The commands run as subprocesses with stdout/stderr on a real pseudo-terminal
(tests/support/pty.py); the property test renders in-process on a pty for speed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.codec import storable
from sagactl.masking import mask_value
from sagactl.models import SagaState
from sagactl.store import open_store
from sagactl.views.output import json_safe, terminal_safe
from tests.support.participants import Participants, Respond, ok
from tests.support.pty import call_on_pty, run_on_pty, strip_escapes
from tests.support.sagas import add, saga
from tests.support.sqs import Queue, Sqs

ROOT = Path(__file__).parent.parent
runner = CliRunner()

# What a participant, a queue or another writer may hand us: rich markup that does not
# balance, markup that does, SGR (colour), OSC (window title, ended by BEL), a newline, and
# CSI as one C1 character (clear screen).
EVIL = "qty invalid at [/items/0/qty] [bold]B[/bold] \x1b[31mEVIL \x1b]0;pwned\x07 line1\nline2 \x9b2J"
# The same, as a terminal must show it (one token per word: rich may wrap between words).
SHOWN = ["[/items/0/qty]", "[bold]B[/bold]", "\\x1b[31mEVIL", "\\x1b]0;pwned\\x07", "line1\\nline2", "\\x9b2J"]
# Through the http transport, whose error snippet joins whitespace: the newline is a space.
SHOWN_HTTP = [token for token in SHOWN if "line" not in token]

SAGA_YAML = """\
saga: Evil
endpoints:
  svc: {type: http, url: "@URL@"}
defaults:
  timeout: 5s
  retry: {max_attempts: 1, initial_backoff: 1ms, max_backoff: 1ms}
  compensation_retry: {max_attempts: 3, initial_backoff: 1ms, max_backoff: 2ms}
steps:
  - {name: reserve, endpoint: svc, action: {path: /reserve}, compensation: {path: /release}}
  - {name: charge, endpoint: svc, action: {path: /charge}, compensation: {path: /refund}}
"""


def sagactl(*args: str) -> list[str]:
    return [sys.executable, "-m", "sagactl", *args]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SAGACTL_", "FAIL_"))}


def assert_shown_literally(tty: str, tokens: list[str]) -> None:
    """Nothing foreign acted on the terminal, and what it said is there to read."""
    assert "Traceback" not in tty and "MarkupError" not in tty, tty
    for raw in ("\x1b[31mEVIL", "\x1b]0;", "\x07", "\x9b", "line1\r\nline2", "line1\nline2"):
        assert raw not in tty, (raw, tty)
    text = strip_escapes(tty)
    for token in tokens:
        assert token in text, (token, text)


SGR = r"\x1b\[[0-9;]*m"  # what rich writes for a table: colours and bold
LIVE = r"\x1b\[[0-9;?]*[A-Za-z]|\r"  # and for a live display: cursor moves, erasing, returns


def foreign_controls(tty: str, rich: str = SGR) -> list[str]:
    """Control characters on the terminal other than rich's own sequences and line ends."""
    text = re.sub(rich, "", tty.replace("\r\n", ""))
    return re.findall(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]", text)


# -- run: the live view, mid-compensation -------------------------------------------------------


@pytest.mark.slow
def test_the_live_view_shows_participant_text_literally_and_the_saga_ends_failed(
    participants: Participants, tmp_path: Path
) -> None:
    """The error that used to kill the live view (MarkupError) mid-compensation, leaving the
    saga compensating: the view draws it escaped, the compensation finishes, the run ends failed."""
    path = tmp_path / "evil.yaml"
    path.write_text(SAGA_YAML.replace("@URL@", participants.url))
    dsn = f"sqlite:///{tmp_path / 'log.db'}"
    participants.script("reserve", "action", ok({"note": EVIL}))
    participants.script("charge", "action", Respond(422, EVIL.encode()))
    participants.script("reserve", "compensation", Respond(503, EVIL.encode()), then=ok())

    code, tty, _, _ = run_on_pty(
        sagactl("run", str(path), "--dsn", dsn, "--saga-id", "evil-1"), env=clean_env(), cwd=tmp_path
    )

    assert code == 1, tty
    assert participants.sequence() == [
        ("reserve", "action"),
        ("charge", "action"),
        ("reserve", "compensation"),
        ("reserve", "compensation"),
    ]
    assert_shown_literally(tty, SHOWN_HTTP)
    assert foreign_controls(tty, rich=LIVE) == []
    screen = strip_escapes(tty)
    assert "compensation: POST" in screen  # drawn while reserve's compensation was being retried
    assert "sagactl: saga evil-1 failed at charge: POST " in screen  # the summary line, escaped too
    shown = runner.invoke(app, ["show", "evil-1", "--dsn", dsn, "-o", "json"])
    data = json.loads(shown.stdout)
    assert data["state"] == "failed"
    assert data["steps"][0]["result"] == {"note": EVIL}  # stored and printed exactly
    assert [s["status"] for s in data["steps"]] == ["compensated", "failed"]


# -- show and list of what a store holds -----------------------------------------------------


def rename(dsn: str, old: str, new: str) -> None:
    """Change a saga's ID by hand, as another writer of the log could."""
    statements = [
        "UPDATE saga_log SET saga_id = {p} WHERE saga_id = {p}",
        "UPDATE saga_transitions SET saga_id = {p} WHERE saga_id = {p}",
    ]
    if dsn.startswith("sqlite"):
        with contextlib.closing(sqlite3.connect(dsn.removeprefix("sqlite:///"))) as db, db:
            for sql in statements:
                db.execute(sql.format(p="?"), (new, old))
    else:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for sql in statements:
                conn.execute(sql.format(p="%s"), (new, old))  # type: ignore[arg-type]


EVIL_ID = "ev[/x]\x1b[31mID\x9b"


@pytest.fixture
def evil_log(store_dsn: str) -> str:
    """A compensating saga whose ID, type, result and compensation error are all hostile."""
    store = open_store(store_dsn)
    try:
        record = saga("plain", state=SagaState.COMPENSATING, step=1, updated=0, deadline=1, error=EVIL)
        record.saga_type = "Ty[/pe]\x1b]0;t\x07"
        record.steps[0].result = {"note": EVIL}
        add(store, record)
    finally:
        store.close()
    rename(store_dsn, "plain", EVIL_ID)
    return store_dsn


@pytest.mark.slow
def test_show_and_list_print_what_the_store_holds_literally(evil_log: str) -> None:
    names = ["ev[/x]\\x1b[31mID\\x9b", "Ty[/pe]\\x1b]0;t\\x07", "[/items/0/qty]"]
    for argv, tokens in ((["show", EVIL_ID], names + SHOWN), (["list"], names), (["list", "--stuck"], names)):
        # wide enough that no cell is folded: each value whole, as written (list cuts the last error short)
        code, tty, _, stderr = run_on_pty(
            sagactl(*argv, "--dsn", evil_log), tty={"stdout"}, env=clean_env(), size=(300, 40)
        )
        assert (code, stderr) == (0, ""), tty
        assert_shown_literally(tty, tokens)
        assert foreign_controls(tty) == []
        if argv[0] == "show":
            line = f"compensation error at charge: {terminal_safe(EVIL)} (after 4 attempts)"
            assert line in strip_escapes(tty)


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_plain_and_markdown_in_a_pipe_escape_too(evil_log: str, fmt: str) -> None:
    result = runner.invoke(app, ["show", EVIL_ID, "--dsn", evil_log, "-o", fmt])
    assert result.exit_code == 0, result.stderr
    assert foreign_controls(result.stdout.replace("\n", "")) == []
    assert "\\x1b[31mEVIL" in result.stdout and "line1\\nline2" in result.stdout


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_carries_foreign_text_exactly(evil_log: str, fmt: str) -> None:
    result = runner.invoke(app, ["show", EVIL_ID, "--dsn", evil_log, "-o", fmt])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["saga_id"] == EVIL_ID and data["steps"][1]["compensation_error"] == EVIL
    assert data["steps"][0]["result"] == {"note": EVIL}
    assert "\x9b" not in result.stdout and "\\u009b" in result.stdout  # same data, nothing raw
    assert foreign_controls(result.stdout.replace("\n", "")) == []


def test_an_error_line_naming_foreign_text_is_one_escaped_line(tmp_path: Path) -> None:
    dsn = f"sqlite:///{tmp_path / 'log.db'}"
    open_store(dsn).close()  # a log that exists: read-only commands refuse a missing one (exit 4)
    code, tty, _, _ = run_on_pty(sagactl("show", "no\x1b]0;x\x07pe\nid", "--dsn", dsn), env=clean_env())
    assert code == 2
    assert strip_escapes(tty).startswith("sagactl: error: saga no\\x1b]0;x\\x07pe id not found in ")
    assert "\x07" not in tty and tty.count("\n") == 1


# -- dead-letter queues ----------------------------------------------------------------------


STEP = "st[/x]ep\x1b[2J"


@pytest.fixture
def evil_dlq(sqs: Sqs) -> tuple[Queue, Queue]:
    """A DLQ and its source queue; the DLQ holds two messages whose bodies and attributes are
    hostile (SQS itself refuses C0 controls but moto takes them: the worst case)."""
    dlq, source = sqs.dlq_pair()

    def attributes(index: int) -> dict[str, Any]:
        def text(value: str) -> dict[str, str]:
            return {"DataType": "String", "StringValue": value}

        return {"saga_id": text(EVIL_ID), "step_name": text(STEP), "error": text(EVIL)}

    bodies = [EVIL, json.dumps({"saga_id": EVIL_ID, "note": EVIL}, ensure_ascii=False)]
    sqs.send(dlq, bodies, attributes=attributes)
    return dlq, source


@pytest.mark.slow
def test_dlq_list_shows_bodies_and_attributes_literally(
    evil_dlq: tuple[Queue, Queue], aws_env: Mapping[str, str]
) -> None:
    dlq, _ = evil_dlq
    env = {**clean_env(), **aws_env}
    shown_id, shown_step = "ev[/x]\\x1b[31mID\\x9b", "st[/x]ep\\x1b[2J"
    for extra, tokens in (
        ([], [shown_id, shown_step, "[/items/0/qty]", "\\x1b[31mEVIL"]),
        (["--group-by", "error"], ["[/items/0/qty]", "\\x1b[31mEVIL", shown_id]),
        (["--group-by", "saga"], [shown_id, shown_step]),
    ):
        argv = sagactl("dlq", "list", dlq.name, "--wait-time", "0", *extra)
        code, tty, _, stderr = run_on_pty(argv, tty={"stdout"}, env=env, size=(300, 40))
        assert (code, stderr) == (0, ""), tty
        assert_shown_literally(tty, tokens)
        assert foreign_controls(tty) == [], tty
    listed = json.loads(runner.invoke(app, ["dlq", "list", dlq.name, "-o", "json", "--wait-time", "0"]).stdout)
    assert sorted(m["body"] for m in listed) == sorted(
        [EVIL, json.dumps({"saga_id": EVIL_ID, "note": EVIL}, ensure_ascii=False)]
    )
    assert [(m["saga_id"], m["step_name"], m["error"]) for m in listed] == [(EVIL_ID, STEP, EVIL)] * 2


@pytest.mark.slow
def test_redrive_progress_and_summary_show_foreign_text_literally(
    evil_dlq: tuple[Queue, Queue], sqs: Sqs, aws_env: Mapping[str, str]
) -> None:
    dlq, source = evil_dlq
    code, tty, _, _ = run_on_pty(
        sagactl("redrive", "--dlq", dlq.name, "--wait-time", "0"), env={**clean_env(), **aws_env}
    )
    assert code == 0, tty
    assert_shown_literally(tty, ["ev[/x]\\x1b[31mID\\x9b", "st[/x]ep\\x1b[2J"])
    assert "\x1b[2J" not in tty
    assert foreign_controls(tty, rich=LIVE) == [], tty
    text = strip_escapes(tty)
    assert "moved 2  failed 0  skipped 0" in text  # the progress bar drew
    assert "sagactl: moved 2, skipped 0, poisoned 0, failed 0" in text
    assert EVIL in [m["Body"] for m in sqs.receive_all(source)]  # byte for byte


# -- a property: any participant text, any result shape ---------------------------------------

JSON_LEAVES = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
FOREIGN = st.text(
    alphabet=st.one_of(
        st.characters(codec="utf-8", exclude_categories=("Cs",)),
        st.sampled_from("[]/\\\x1b\x07\x9b\n\r\t\u202e\u2028"),
    ),
    max_size=40,
)


@pytest.fixture
def fuzz_log(tmp_path: Path, participants: Participants, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("SAGACTL_DSN", "SAGACTL_CONFIG", "SAGACTL_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SAGACTL_DSN", f"sqlite:///{tmp_path / 'log.db'}")
    path = tmp_path / "evil.yaml"
    path.write_text(SAGA_YAML.replace("@URL@", participants.url))
    return path


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(result=JSON_VALUES, error=FOREIGN, compensation_error=FOREIGN)
@pytest.mark.slow
def test_any_participant_text_is_stored_printed_as_json_exactly_and_tables_print(
    fuzz_log: Path, participants: Participants, result: Any, error: str, compensation_error: str
) -> None:
    participants.clear()
    participants.script("reserve", "action", ok(result))
    participants.script("charge", "action", Respond(422, error.encode()))
    participants.script("reserve", "compensation", *[Respond(503, compensation_error.encode())] * 3)
    ran = runner.invoke(app, ["run", str(fuzz_log), "-o", "json"])
    assert ran.exit_code == 3, ran.stderr  # reserve's compensation keeps failing: compensating
    data = json.loads(ran.stdout)
    saga_id = data["saga_id"]
    # a result the saga log cannot hold (a NUL character...) is not kept: the step failed unknown
    assert data["steps"][0]["result"] == (None if storable(result, "result") else mask_value(result))

    shown = runner.invoke(app, ["show", saga_id, "-o", "json"])
    assert shown.exit_code == 0 and json.loads(shown.stdout) == data  # what run printed is what is stored
    listed = runner.invoke(app, ["list", "--state", "compensating", "-o", "json"])
    assert listed.exit_code == 0
    assert [row["last_error"] for row in json.loads(listed.stdout) if row["saga_id"] == saga_id] == [data["last_error"]]
    for out in (ran.stdout, shown.stdout, listed.stdout):
        assert foreign_controls(out.replace("\n", "")) == []

    for argv in (["show", saga_id], ["list", "--state", "compensating", "--limit", "0"]):
        code, tty = call_on_pty(lambda argv=argv: app(argv, standalone_mode=False), size=(400, 40))
        assert code in (None, 0), tty
        assert foreign_controls(tty) == [], tty
        assert saga_id in tty


@given(text=FOREIGN)
def test_terminal_safe_leaves_nothing_a_terminal_acts_on(text: str) -> None:
    safe = terminal_safe(text)
    assert foreign_controls(safe) == []
    assert "\n" not in safe
    if not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]", text):
        assert safe == text  # ordinary text, brackets and backslashes included, is left alone


@given(value=JSON_VALUES)
def test_json_safe_is_the_same_data(value: Any) -> None:
    text = json_safe(json.dumps(value, ensure_ascii=False))
    assert json.loads(text) == value
    assert foreign_controls(text) == []
