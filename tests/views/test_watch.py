"""What `show --follow` and `list --watch` print: live frames redrawn in place on a real
pseudo-terminal (snapshots at fixed widths), transition lines and frames in a pipe, JSON lines,
exit codes, Ctrl-C; foreign text literal. A fake clock plays the saga's commits meanwhile."""

from __future__ import annotations

import io
import json
import os
import re
import sys
from collections.abc import Callable
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.config import Settings
from sagactl.errors import ExitCode, UsageError
from sagactl.models import SagaState
from sagactl.ops.sagas import follow_saga, watch_sagas
from sagactl.store import Store, open_store
from sagactl.tools.inspect import ListRequest
from sagactl.tools.poll import Seen
from sagactl.views import watch
from sagactl.views.output import OutputFormat
from tests.support.histories import OWNER, Player, failed_saga, running_saga
from tests.support.pty import call_on_pty, live_frames, run_on_pty, strip_escapes
from tests.support.sagas import add, saga
from tests.support.snapshots import assert_snapshot
from tests.test_foreign_text import EVIL, foreign_controls
from tests.tools.test_poll import Interrupting, delete_saga, progress

runner = CliRunner()
ROOT = Path(__file__).parents[2]


def followed(store: Store, store_dsn: str, plays: list[Any]) -> Callable[[Seen], ExitCode]:
    """``show --follow`` of ``running_saga`` as the command runs it, on a clock that plays
    ``plays`` into the store one per interval."""
    record = running_saga()
    store.create(record, record.transitions)
    clock = Player(store, plays)
    return lambda seen: follow_saga(Settings(dsn=store_dsn), record.saga_id, seen, interval=1.0, clock=clock)


def test_follow_in_a_pipe_prints_each_transition_once_and_exits_with_the_saga(
    store: Store, store_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    plays = progress(running_saga())
    out = io.StringIO()
    code = watch.follow(
        followed(store, store_dsn, [None, plays["charge_done"], plays["completed"]]), OutputFormat.TABLE, out=out
    )
    assert code is ExitCode.OK
    lines = out.getvalue().splitlines()
    assert lines[0] == f'2026-11-26T08:00:00.000000Z  -  none -> started  {{"owner":"{OWNER}"}}'
    retry, detail = lines[5].split("  {")  # PostgreSQL's jsonb orders keys its own way
    assert retry == "2026-11-26T08:00:18.000000Z  charge  executing -> executing"
    assert json.loads("{" + detail) == {"attempt": 2, "retry": True}
    assert lines[6:] == [
        '2026-11-26T08:00:31.000000Z  charge  executing -> completed  {"attempt":2}',
        "2026-11-26T08:00:31.000000Z  notify  pending -> executing",
        "2026-11-26T08:00:32.000000Z  notify  executing -> completed",
        "2026-11-26T08:00:32.000000Z  -  pending -> completed",
    ]
    assert capsys.readouterr().err == f"sagactl: saga {running_saga().saga_id} completed\n"


def test_follow_says_why_a_saga_nobody_drives_needs_attention(
    store: Store, store_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = io.StringIO()
    assert watch.follow(followed(store, store_dsn, [None] * 200), OutputFormat.TABLE, out=out) is ExitCode.ATTENTION
    saga_id = running_saga().saga_id
    assert capsys.readouterr().err == (
        # said as soon as the lease lapsed, not 90 s later (issue 18)
        f"sagactl: nothing drives saga {saga_id} now: step charge waits; its driver {OWNER} stopped renewing its"
        f" lease (lapsed at 2026-11-26T08:01:00.000000Z); a worker ('sagactl worker') takes it within its --poll,"
        f" or 'sagactl resume {saga_id}'\n"
        f"sagactl: saga {saga_id} is pending and nothing drives it: its driver {OWNER} stopped renewing its"
        f" lease (lapsed at 2026-11-26T08:01:00.000000Z) and no worker took it; 'sagactl resume {saga_id}',"
        " or start 'sagactl worker'\n"
    )


@pytest.mark.parametrize("fmt", [OutputFormat.TABLE, OutputFormat.JSONL, OutputFormat.JSON])
def test_follow_says_at_the_first_look_that_nothing_drives_a_due_saga(
    fmt: OutputFormat, capsys: pytest.CaptureFixture[str]
) -> None:
    """A detached saga no worker took: what it waits for and who could take it, at once (the
    run below looks once), not after 90 s of silence."""
    detached = saga("d-1", state=SagaState.STARTED, step=0)
    detached.wake_at = detached.created_at

    def one_look(seen: Seen) -> ExitCode:
        seen(detached, True, detached.created_at + timedelta(seconds=1))
        return ExitCode.ATTENTION

    watch.follow(one_look, fmt, out=io.StringIO())
    assert capsys.readouterr().err.splitlines()[0] == (
        "sagactl: nothing drives saga d-1 now: step reserve has been due since 2026-11-26T08:00:00.000000Z;"
        " a worker ('sagactl worker') takes it within its --poll, or 'sagactl resume d-1'"
    )
    held = saga("h-1", state=SagaState.PENDING, step=0)
    held.lease_owner, held.lease_expires_at = OWNER, held.created_at + timedelta(seconds=30)
    assert watch.undriven(held, held.created_at) is None  # a driver holds it: nothing to say


def test_follow_jsonl_json_and_quiet(store: Store, store_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    plays = progress(running_saga())
    out = io.StringIO()
    run = followed(store, store_dsn, [plays["failed"]])
    assert watch.follow(run, OutputFormat.JSONL, out=out) is ExitCode.SAGA_FAILED
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["new_state"] for r in rows][-2:] == ["failed", "failed"] and len(rows) == 8
    assert set(rows[0]) == {"id", "saga_id", "step_name", "old_state", "new_state", "detail", "at"}
    for fmt, quiet in ((OutputFormat.JSON, False), (OutputFormat.TABLE, True)):
        out = io.StringIO()
        # the saga has ended: following it prints it (or its ID) at once, with its code
        code = watch.follow(
            lambda seen: follow_saga(Settings(dsn=store_dsn), running_saga().saga_id, seen, interval=1.0),
            fmt,
            quiet=quiet,
            out=out,
        )
        assert code is ExitCode.SAGA_FAILED
        if quiet:
            assert out.getvalue() == f"{running_saga().saga_id}\n"
        else:
            assert json.loads(out.getvalue())["state"] == "failed"
    summary = "sagactl: saga 7f3c9a2e-5b1d-4c8e-9f00-1a2b3c4d5e6f failed at charge: HTTP 402: card declined"
    assert capsys.readouterr().err == f"{summary}; nothing to compensate\n" * 3
    with pytest.raises(UsageError, match="--follow prints a live view or transition lines: -o csv does not apply"):
        watch.follow(lambda seen: ExitCode.OK, OutputFormat.CSV)


def test_follow_on_a_terminal_redraws_in_place_until_it_ends(store: Store, store_dsn: str) -> None:
    plays = progress(running_saga())
    run = followed(store, store_dsn, [None, plays["charge_done"], plays["completed"]])
    code, tty = call_on_pty(lambda: watch.follow(run, OutputFormat.TABLE), size=(80, 60))
    assert code is ExitCode.OK
    frames = live_frames(tty)
    assert len(frames) == 5  # the first look, three polls, and the whole last frame left on screen
    assert frames[0].startswith("▶ pending at charge\n")
    assert "│ now +30s" in frames[0] and "│ now +31s" in frames[1]  # redrawn as time moves, unwritten
    assert "▸ charge" in frames[1] and "▸ notify" in frames[2]  # where it stands
    head = frames[-1][: frames[-1].index("Steps")]  # the history below differs by store in key order only
    assert frames[-2].startswith(head)  # the last frame drawn is the one left on the screen
    assert_snapshot("follow-final-80", head)
    assert frames[-1].startswith("✔ completed in 32s\n")


def test_watch_on_a_terminal_marks_what_appeared_and_cleared(store: Store, store_dsn: str) -> None:
    stuck_a = saga("5d2f8e3b-1c4a-4b6d-9e7f-8a9b0c1d2e3f", deadline=50)
    stuck_b = saga(
        "0b4e7c1a-93d2-4f5e-8a61-2c3d4e5f6a7b",
        state=SagaState.COMPENSATING,
        step=1,
        deadline=60,
        error="HTTP 503 [/x] \x1b[31mred",
    )
    add(store, stuck_a, stuck_b)

    def between(n: int) -> None:
        if n == 1:
            add(store, saga("c0ffee00-aaaa-4bbb-8ccc-ddddeeee0001", created=10, deadline=70))
        if n == 2:
            delete_saga(store_dsn, stuck_b.saga_id)

    run = lambda frame: watch_sagas(  # noqa: E731
        Settings(dsn=store_dsn), ListRequest(stuck=True), frame, interval=5.0, clock=Interrupting(4, between)
    )
    code, tty = call_on_pty(
        lambda: watch.watch(run, OutputFormat.TABLE, what="sagactl list --stuck", interval=5.0), size=(100, 30)
    )
    assert code is ExitCode.OK  # Ctrl-C
    assert foreign_controls(tty, rich=r"\x1b\[[0-9;?]*[A-Za-z]|\r") == []
    frames = live_frames(tty)
    assert len(frames) == 5
    for n, frame in enumerate(frames[:4]):
        assert_snapshot(f"watch-frame-{n + 1}-100", frame)
    assert frames[0].splitlines()[0] == "every 5s: sagactl list --stuck  2026-11-26T08:01:40.000000Z  2 sagas"
    assert "1 new, 0 cleared" in frames[1] and "0 new, 1 cleared" in frames[2]
    assert "│ + │ c0ffee00-aaaa-4bbb-8ccc-ddddeeee0001" in frames[1]
    assert "│ - │ 0b4e7c1a-93d2-4f5e-8a61-2c3d4e5f6a7b" in frames[2]  # shown once more, struck
    assert "0b4e7c1a" not in frames[3]
    assert "[/x]" in frames[0] and "\\x1b[31mred" in frames[0]  # foreign text as written


def test_watch_in_a_pipe_prints_a_frame_per_interval(store: Store, store_dsn: str) -> None:
    add(store, saga("a", deadline=50))
    between = lambda n: add(store, saga("b", created=5, deadline=60)) if n == 1 else None  # noqa: E731
    for fmt in (OutputFormat.TABLE, OutputFormat.JSONL):
        delete_saga(store_dsn, "b")
        run = lambda frame: watch_sagas(  # noqa: E731
            Settings(dsn=store_dsn), ListRequest(stuck=True), frame, interval=5.0, clock=Interrupting(2, between)
        )
        out = io.StringIO()
        assert watch.watch(run, fmt, what="sagactl list --stuck", interval=5.0, headers=False, out=out) is ExitCode.OK
        if fmt is OutputFormat.JSONL:
            first, second = (json.loads(line) for line in out.getvalue().splitlines())
            assert [s["saga_id"] for s in first["sagas"]] == ["a"] and first["appeared"] == []
            assert (
                second["appeared"] == ["b"]
                and second["cleared"] == []
                and second["at"] == "2026-11-26T08:01:45.000000Z"
            )
        else:
            blocks = out.getvalue().split("\n\n")
            assert blocks[0].splitlines()[0].startswith("every 5s: sagactl list --stuck  2026-11-26T08:01:40")
            assert [line.split()[:2] for line in blocks[1].splitlines()[1:]] == [["a", "Order"], ["+", "b"]]


@pytest.mark.slow
def test_the_commands_end_to_end(tmp_path: Path) -> None:
    """As an operator types them (on SQLite: the stores are compared above): a followed saga
    that has ended, in a pipe; a watch on a terminal interrupted with Ctrl-C; the option mistakes."""
    record = failed_saga(error=EVIL)
    store_dsn = f"sqlite:///{tmp_path / 'log.db'}"
    with closing(open_store(store_dsn)) as store:
        store.create(record, record.transitions)
    env = {"SAGACTL_DSN": store_dsn}
    result = runner.invoke(app, ["show", record.saga_id, "--follow"], env=env)
    assert result.exit_code == 1 and len(result.stdout.splitlines()) == 13
    assert foreign_controls(result.stdout.replace("\n", "")) == []
    failed_line = result.stdout.splitlines()[7]  # the detail as JSON, as the history table shows it
    assert "[/items/0/qty] [bold]B[/bold] \\u001b[31mEVIL \\u001b]0;pwned\\u0007 line1\\nline2 \\x9b2J" in failed_line
    result = runner.invoke(app, ["show", record.saga_id, "-f", "--interval", "0s"], env=env)
    assert (result.exit_code, result.stderr) == (2, "sagactl: error: --interval must be 100ms to 1h, got '0s'\n")
    assert runner.invoke(app, ["show", record.saga_id, "--interval", "1s"], env=env).exit_code == 2
    assert runner.invoke(app, ["list", "--watch", "-q"], env=env).exit_code == 2
    assert runner.invoke(app, ["list", "--watch", "-o", "csv"], env=env).exit_code == 2
    assert runner.invoke(app, ["list", "--interval", "1s"], env=env).exit_code == 2
    code, tty, _, stderr = run_on_pty(
        [sys.executable, "-m", "sagactl", "list", "--watch", "--interval", "100ms", "--dsn", store_dsn],
        tty={"stdout"},
        size=(120, 30),
        interrupt_after=record.saga_id,
        cwd=ROOT,
    )
    assert (code, stderr) == (0, ""), tty
    assert "every 100ms: sagactl list" in strip_escapes(tty) and record.saga_id in strip_escapes(tty)


@pytest.mark.slow
def test_following_a_saga_a_real_driver_runs(tmp_path: Path) -> None:
    """`show --follow` in a pipe while `sagactl resume` drives a detached sample saga to its end in
    another process: every transition arrives, then exit 0."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGACTL_", "FAIL_"))}
    env.update(SAGACTL_DSN=f"sqlite:///{tmp_path / 'log.db'}", SAMPLE_STATE_DIR=str(tmp_path / "state"))
    sagactl = [sys.executable, "-m", "sagactl"]
    sample = ["sample-configs/order.yaml", "--input", "@sample-configs/order-input.json"]
    subprocess.run(
        [*sagactl, "run", *sample, "--saga-id", "f-1", "--detach"], cwd=ROOT, env=env, check=True, timeout=60
    )
    follower = subprocess.Popen(
        [*sagactl, "show", "f-1", "--follow", "--interval", "100ms"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert follower.stdout is not None
    first = follower.stdout.readline()  # following: the history so far has been printed
    assert "  -  none -> started  " in first
    subprocess.run([*sagactl, "resume", "f-1", "-q"], cwd=ROOT, env=env, check=True, timeout=60)
    rest = follower.stdout.read()
    assert follower.wait(timeout=60) == 0
    lines = [first.rstrip("\n"), *rest.splitlines()]
    assert re.search(r'  -  pending -> completed  \{"owner":"[^"]+"\}$', lines[-1]), lines[-1]
    assert sum("-> completed" in line for line in lines) == 5  # four steps and the saga, each once
