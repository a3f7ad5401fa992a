"""``sagactl ui`` driven as an operator drives it, through Textual's pilot: the sagas stuck
first, keys (j/k, Enter, Escape, /, g, d, ?, q), refresh with an injected clock, read-only
unless --allow-actions, actions through the CLI's bulk code with a plan and a reason, foreign
text shown literally; the main screens snapshotted at 80x24 and 160x40 (SVG, Textual's own
screenshot); at the end `sagactl ui` on a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable

from sagactl.config import resolve_settings
from sagactl.models import SagaRecord, SagaState
from sagactl.store import Store, open_store
from sagactl.ui.app import SagactlUi
from sagactl.ui.screens import ConfirmScreen, DlqScreen, GroupSagasScreen, GroupsScreen, HelpScreen, SagaScreen
from sagactl.ui.source import Source
from tests.support.clock import FakeClock
from tests.support.histories import failed_saga, running_saga, stuck_saga
from tests.support.sagas import at
from tests.support.snapshots import SNAPSHOTS
from tests.support.sqs import Sqs

ROOT = Path(__file__).parents[2]
SAMPLES = ROOT / "sample-configs"
STUCK, RUNNING, FAILED, HOSTILE = (
    "7f3c9a2e-0000-4c8e-9f00-1a2b3c4d5e6f",
    "8a1b2c3d-1111-4e5f-8a9b-0c1d2e3f4a5b",
    "9b2c3d4e-2222-4f6a-9bac-1d2e3f4a5b6c",
    "ab3c4d5e-3333-4a7b-8cbd-2e3f4a5b6c7d",
)
HOSTILE_ERROR = "gateway said [red]no[/red] [/x] \x1b]0;pwned\x07 \x9b2J"


def put(store: Store, record: SagaRecord) -> None:
    store.create(record, record.transitions)


@pytest.fixture
def log(tmp_path: Path) -> Iterator[str]:
    """A SQLite log at known times: one saga stuck compensating, one running, one failed, and a
    failed one whose error is hostile text."""
    dsn = f"sqlite:///{tmp_path / 'log.db'}"
    store = open_store(dsn)
    put(store, stuck_saga(STUCK))
    put(store, running_saga(RUNNING))
    put(store, failed_saga(saga_id=FAILED))
    put(store, failed_saga(HOSTILE_ERROR, saga_id=HOSTILE))
    store.close()
    yield dsn


def make_app(dsn: str, clock: FakeClock | None = None, **kwargs: Any) -> SagactlUi:
    source = Source(resolve_settings(dsn=dsn, env={}), clock or FakeClock(at(20)))
    return SagactlUi(source, interval=0, where="sqlite:///log.db", **kwargs)


async def loaded(app: SagactlUi, pilot: Any, count: int = 1) -> None:
    """Wait until ``count`` refreshes have been shown."""
    for _ in range(400):
        if app.loads >= count:
            await pilot.pause()
            return
        await pilot.pause(0.02)
    raise AssertionError(f"the UI showed {app.loads} refreshes, not {count}")


def rows(app: SagactlUi) -> list[str]:
    table = app.screen.query_one(DataTable)
    return [str(table.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(table.row_count)]


def plain(renderable: Any, width: int = 200) -> str:
    """What ``renderable`` shows, as plain text."""
    import io

    from rich.console import Console

    console = Console(width=width, file=io.StringIO(), record=True, color_system=None)
    console.print(renderable)
    return console.export_text()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_stuck_sagas_come_first_then_active_then_recent(log: str) -> None:
    async def go() -> None:
        app = make_app(log)
        async with app.run_test(size=(160, 40)) as pilot:
            await loaded(app, pilot)
            assert rows(app)[:2] == [STUCK, RUNNING]
            assert set(rows(app)[2:]) == {FAILED, HOSTILE}
            header = str(app.screen.query_one("#header").render())
            assert "1 stuck" in header and "2 active" in header and "2 failed" in header

    run(go())


def test_keys_move_open_go_back_filter_and_quit(log: str) -> None:
    async def go() -> None:
        app = make_app(log)
        async with app.run_test(size=(120, 30)) as pilot:
            await loaded(app, pilot)
            table = app.screen.query_one(DataTable)
            await pilot.press("j", "j")
            assert table.cursor_row == 2
            await pilot.press("k")
            assert table.cursor_row == 1
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, SagaScreen) and app.screen.saga_id == RUNNING
            await pilot.press("escape")
            assert not isinstance(app.screen, SagaScreen)
            await pilot.press("slash")
            await pilot.press(*"refunds are paused", "enter")  # the stuck saga's last error
            assert rows(app) == [STUCK]
            await pilot.press("escape")  # clears the filter
            assert len(rows(app)) == 4
            await pilot.press("slash", *"9b2c3d", "enter")  # an ID prefix
            assert rows(app) == [FAILED]
            await pilot.press("escape", "question_mark")
            assert isinstance(app.screen, HelpScreen)
            await pilot.press("escape", "q")
        assert app.return_code == 0

    run(go())


def test_ctrl_c_quits_with_exit_0(log: str) -> None:
    async def go() -> None:
        app = make_app(log)
        async with app.run_test() as pilot:
            await loaded(app, pilot)
            await pilot.press("ctrl+c")
        assert app.return_code == 0

    run(go())


def test_failure_groups_then_a_groups_sagas_then_one_saga(log: str) -> None:
    async def go() -> None:
        app = make_app(log)
        async with app.run_test(size=(160, 40)) as pilot:
            await loaded(app, pilot)
            await pilot.press("g")
            await pilot.pause()
            assert isinstance(app.screen, GroupsScreen) and app.screen.result.stuck
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, GroupSagasScreen) and rows(app) == [STUCK]
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, SagaScreen) and app.screen.saga_id == STUCK
            await pilot.press("escape", "escape", "escape")
            assert rows(app)[0] == STUCK

    run(go())


def test_refresh_reads_again_and_ages_follow_the_clock(log: str) -> None:
    async def go() -> None:
        clock = FakeClock(at(20))
        app = make_app(log, clock)
        async with app.run_test(size=(160, 40)) as pilot:
            await loaded(app, pilot)
            age = app.screen.query_one(DataTable).get_cell(RUNNING, "age")
            assert str(age) == "20s"
            store = open_store(log)
            put(store, running_saga("cafe0000-4444-4b8c-9dce-3f4a5b6c7d8e"))
            store.close()
            clock.advance(60)
            app.load()
            await loaded(app, pilot, 2)
            assert "cafe0000-4444-4b8c-9dce-3f4a5b6c7d8e" in rows(app)
            assert str(app.screen.query_one(DataTable).get_cell(RUNNING, "age")) == "1m20s"

    run(go())


def test_foreign_text_is_shown_literally(log: str) -> None:
    async def go() -> None:
        app = make_app(log)
        async with app.run_test(size=(200, 40)) as pilot:
            await loaded(app, pilot)
            error = app.screen.query_one(DataTable).get_cell(HOSTILE, "last_error").plain
            assert "[red]no[/red] [/x]" in error and "\\x1b]0;pwned\\x07" in error and "\x1b" not in error
            await pilot.press("slash", *"pwned", "enter")
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, SagaScreen)
            svg = app.export_screenshot()
            assert "[red]no[/red]" in svg.replace("&#160;", " ") and "\x1b" not in svg

    run(go())


def test_read_only_unless_asked(log: str) -> None:
    async def go() -> None:
        app = make_app(log)
        async with app.run_test(size=(160, 40)) as pilot:
            await loaded(app, pilot)
            await pilot.press("r")
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmScreen)
            assert any("--allow-actions" in str(n.message) for n in app._notifications)
        store = open_store(log)
        assert store.get(STUCK).state is SagaState.COMPENSATING
        store.close()

    run(go())


FAILING = {"FAIL_STEP": "create_shipment", "FAIL_COMPENSATION": "charge_payment"}


def stuck_order(tmp_path: Path) -> tuple[str, str]:
    """A SQLite log with one sample order saga whose refund keeps failing (waiting for an
    operator); its DSN and ID."""
    dsn = f"sqlite:///{tmp_path / 'orders.db'}"
    env = {**os.environ, **FAILING, "SAGACTL_DSN": dsn}
    ran = subprocess.run(
        [sys.executable, "-m", "sagactl", "run", str(SAMPLES / "order.yaml"), "--input",
         f"@{SAMPLES / 'order-input.json'}", "--saga-id", "ord-stuck-1"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert ran.returncode == 3, ran.stderr
    return dsn, "ord-stuck-1"


def test_an_action_shows_the_plan_asks_why_and_runs_as_the_cli_does(tmp_path: Path) -> None:
    dsn, saga_id = stuck_order(tmp_path)
    os.chdir(tmp_path)  # the sample participants keep their ledgers in ./.state

    async def go() -> None:
        source = Source(resolve_settings(dsn=dsn, env={}))
        app = SagactlUi(source, interval=0, allow_actions=True, where="orders")
        async with app.run_test(size=(160, 40)) as pilot:
            await loaded(app, pilot)
            assert rows(app) == [saga_id]
            await pilot.press("r")
            await pilot.pause()
            assert isinstance(app.screen, ConfirmScreen)
            from rich.console import Group

            plan = plain(Group(*app.screen.plan))
            assert saga_id in plan and "resume" in plan
            await pilot.press(*"refund service fixed", "enter")
            for _ in range(600):
                await pilot.pause(0.05)
                if isinstance(app.screen, ConfirmScreen) and app.screen.done:
                    break
            assert isinstance(app.screen, ConfirmScreen) and app.screen.done
            await pilot.press("enter")
            assert not isinstance(app.screen, ConfirmScreen)

    run(go())
    store = open_store(dsn)
    saga = store.detail(saga_id)
    store.close()
    assert (
        isinstance(saga, SagaRecord) and saga.state is SagaState.FAILED
    )  # the refund went through: every compensation done
    tagged = [t.detail for t in saga.transitions if t.detail.get("job")]
    assert tagged and all(d.get("reason") == "refund service fixed" and d.get("by") for d in tagged), tagged


def test_the_dlq_view_peeks_and_consumes_nothing(tmp_path: Path, sqs: Sqs, aws_env: dict[str, str], log: str) -> None:
    dlq = sqs.queue("dlq")
    sqs.send(dlq, [json.dumps({"error": "[bold]boom[/bold]", "saga_id": STUCK, "step_name": "charge"})])
    (tmp_path / "sagactl.yaml").write_text(f"aws:\n  dlqs: [{dlq.name}]\n")

    async def go() -> None:
        settings = resolve_settings(dsn=log, config=str(tmp_path / "sagactl.yaml"))
        app = SagactlUi(Source(settings, FakeClock(at(20))), interval=0, where="log")
        async with app.run_test(size=(160, 40)) as pilot:
            await loaded(app, pilot)
            await pilot.press("d")
            await pilot.pause()
            assert isinstance(app.screen, DlqScreen)
            shown = plain(app.screen.body)
            assert dlq.name in shown and STUCK in shown and "[bold]boom[/bold]" in shown

    run(go())
    visible = sqs.client.get_queue_attributes(QueueUrl=dlq.url, AttributeNames=["ApproximateNumberOfMessages"])
    assert visible["Attributes"]["ApproximateNumberOfMessages"] == "1"


def depth(sqs: Sqs, url: str) -> int:
    found = sqs.client.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
    return int(found["Attributes"]["ApproximateNumberOfMessages"])


@pytest.mark.slow
def test_a_dlq_is_redriven_from_the_ui_after_its_plan(
    tmp_path: Path, sqs: Sqs, aws_env: dict[str, str], log: str
) -> None:
    dlq, source = sqs.dlq_pair()
    sqs.send(dlq, [json.dumps({"saga_id": STUCK, "step_name": "charge"})])
    (tmp_path / "sagactl.yaml").write_text(f"aws:\n  dlqs: [{dlq.name}]\n")

    async def go(allow: bool) -> None:
        settings = resolve_settings(dsn=log, config=str(tmp_path / "sagactl.yaml"))
        app = SagactlUi(Source(settings, FakeClock(at(20))), interval=0, where="log", allow_actions=allow)
        async with app.run_test(size=(160, 40)) as pilot:
            await loaded(app, pilot)
            await pilot.press("d")
            await pilot.pause()
            await pilot.press("R")
            await pilot.pause()
            if not allow:
                assert isinstance(app.screen, DlqScreen)  # read-only: nothing asked, nothing moved
                return
            assert isinstance(app.screen, ConfirmScreen)
            from rich.console import Group

            assert "dry run" in plain(Group(*app.screen.plan)).lower()
            assert depth(sqs, dlq.url) == 1  # the plan moved nothing
            await pilot.press("enter")
            for _ in range(600):
                await pilot.pause(0.05)
                if app.screen.done:
                    break
            assert app.screen.done

    run(go(False))
    assert (depth(sqs, dlq.url), depth(sqs, source.url)) == (1, 0)
    run(go(True))
    assert (depth(sqs, dlq.url), depth(sqs, source.url)) == (0, 1)


def test_a_crash_of_the_view_ends_the_app(log: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug in a view ends the app with its traceback and exit code 1 (Textual's driver puts
    the terminal back on the way out), never a hang on a half-drawn screen."""
    from sagactl.ui import app as ui_app  # the main screen lives there

    def broken(self: Any, overview: Any) -> None:
        raise RuntimeError("a bug in a view")

    monkeypatch.setattr(ui_app.SagasScreen, "show", broken)
    app = make_app(log)

    async def go() -> None:
        async with app.run_test() as pilot:
            for _ in range(200):
                await pilot.pause(0.02)
                if app.return_code is not None:
                    break

    with pytest.raises(Exception, match="a bug in a view"):
        run(go())
    assert app.return_code == 1


# -- snapshots -----------------------------------------------------------------------------


SCREENS = {
    "main": (),
    "saga": ("enter",),
    "groups": ("g",),
}


@pytest.mark.parametrize("size", [(80, 24), (160, 40)], ids=["80x24", "160x40"])
@pytest.mark.parametrize("screen", SCREENS)
@pytest.mark.slow
def test_screens_match_their_snapshots(log: str, screen: str, size: tuple[int, int]) -> None:
    async def go() -> str:
        app = make_app(log)
        async with app.run_test(size=size) as pilot:
            await loaded(app, pilot)
            await pilot.press(*SCREENS[screen])
            await pilot.pause()
            return app.export_screenshot(title="sagactl ui")

    svg = run(go())
    path = SNAPSHOTS / f"ui-{screen}-{size[0]}x{size[1]}.svg"
    if os.environ.get("SAGACTL_UPDATE_SNAPSHOTS"):
        path.write_text(svg, encoding="utf-8")
    assert path.exists(), f"no snapshot {path.name}: run with SAGACTL_UPDATE_SNAPSHOTS=1 and review it"
    assert svg == path.read_text(encoding="utf-8"), f"{path.name} differs (rewrite with SAGACTL_UPDATE_SNAPSHOTS=1)"


# -- a real pseudo-terminal -------------------------------------------------------------------


def read_until(fd: int, wanted: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {wanted!r} within {timeout}s; got {seen[-400:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


def drain(fd: int, seconds: float) -> bytes:
    """What ``fd`` gives within ``seconds``."""
    seen = b""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    return seen


@pytest.mark.slow
@pytest.mark.parametrize("quit_key", [b"q", b"\x03"], ids=["q", "ctrl-c"])
def test_sagactl_ui_on_a_real_terminal(log: str, tmp_path: Path, quit_key: bytes) -> None:
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGACTL_", "NO_COLOR", "COLUMNS", "LINES"))}
    env.update({"SAGACTL_DSN": log, "TERM": "xterm-256color"})
    child = subprocess.Popen(
        [sys.executable, "-m", "sagactl", "ui", "--interval", "500ms"],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        cwd=tmp_path,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    try:
        seen = read_until(master, STUCK[:8].encode(), 60)  # the stuck saga on screen
        assert b"\x1b[?1049h" in seen  # the alternate screen
        for key in (b"j", b"\r"):
            os.write(master, key)
            seen += drain(master, 0.3)
        seen += read_until(master, b"timeline".title(), 20)  # show's timeline for the saga
        for key in (b"\x1b", quit_key):
            os.write(master, key)
            seen += drain(master, 0.3)
        deadline = time.monotonic() + 30
        while child.poll() is None:  # read on: a child blocked writing to a full pty never exits
            assert time.monotonic() < deadline, "sagactl ui did not exit"
            seen += drain(master, 0.1)
        assert child.returncode == 0
        seen += drain(master, 0.5)
        assert b"\x1b[?1049l" in seen  # the terminal restored: the alternate screen left
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        os.close(master)


def test_without_textual_it_says_how_to_install_it(tmp_path: Path, log: str) -> None:
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "textual.py").write_text("raise ImportError(\"No module named 'textual'\")\n")
    env = {
        **os.environ,
        "SAGACTL_DSN": log,
        "PYTHONPATH": os.pathsep.join([str(stub), os.environ.get("PYTHONPATH", "")]),
    }
    ran = subprocess.run([sys.executable, "-m", "sagactl", "ui"], env=env, capture_output=True, text=True, timeout=60)
    assert ran.returncode == 2
    assert ran.stderr == "sagactl: error: sagactl ui needs Textual, which is not installed; pip install 'sagactl[ui]'\n"


def test_no_other_command_imports_textual(tmp_path: Path, log: str) -> None:
    code = (
        "import sys; from sagactl.cli import main; sys.argv=['sagactl', *sys.argv[1:]]\n"
        "try:\n main()\nexcept SystemExit: pass\nprint('textual' in sys.modules, file=sys.stderr)"
    )
    for argv in (["--help"], ["list", "-o", "json"], ["stats"]):
        ran = subprocess.run(
            [sys.executable, "-c", code, *argv], env={**os.environ, "SAGACTL_DSN": log}, capture_output=True, text=True
        )
        assert ran.stderr.strip().endswith("False"), (argv, ran.stderr)


def test_a_foreign_table_is_shown_and_never_acted_on(tmp_path: Path) -> None:
    """Another orchestrator's table (a generic mapping on SQLite, int states, epoch seconds):
    its sagas listed and opened; with --allow-actions an action is refused with a note."""
    import sqlite3

    db = tmp_path / "theirs.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (id TEXT PRIMARY KEY, kind TEXT, state INT, step INT, modified BIGINT)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?)",
            [("o-1", "Order", 3, 1, int(at(0).timestamp())), ("o-2", "Order", 2, None, int(at(5).timestamp()))],
        )
    config = tmp_path / "sagactl.yaml"
    config.write_text(
        f"store:\n  dsn: sqlite:///{db}\n  table: orders\n"
        "  columns: {saga_id: id, saga_type: kind, state: state, current_step: step,"
        " updated_at: {column: modified, unit: s}}\n"
        "  states: {compensating: 3, completed: 2}\n"
    )

    async def go() -> None:
        settings = resolve_settings(config=str(config), env={})
        app = SagactlUi(Source(settings, FakeClock(at(20))), interval=0, where="theirs", allow_actions=True)
        async with app.run_test(size=(160, 40)) as pilot:
            await loaded(app, pilot)
            assert rows(app) == ["o-1", "o-2"]  # the active one, then the finished one
            await pilot.press("r")
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmScreen)
            assert any("read-only" in str(n.message) for n in app._notifications)
            await pilot.press("enter")
            await pilot.pause()
            assert isinstance(app.screen, SagaScreen) and "o-1" in plain(app.screen.body)

    run(go())
