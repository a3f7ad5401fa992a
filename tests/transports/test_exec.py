"""exec transport: real programs, stdin JSON, env, exit codes, timeouts (DESIGN 5)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.models import Phase
from sagactl.transports import exec as exec_transport
from sagactl.transports.base import Request, Status
from sagactl.transports.exec import ExecTransport

PARTICIPANT = r"""
import json, os, subprocess, sys, time

mode = sys.argv[1] if len(sys.argv) > 1 else "echo"
raw = sys.stdin.buffer.read()
if mode == "echo":
    names = ["SAGA_ID", "SAGA_STEP", "SAGA_PHASE", "SAGA_IDEMPOTENCY_KEY", "EXTRA", "FROM_ENGINE"]
    print(json.dumps({"stdin": json.loads(raw), "argv": sys.argv[1:], "cwd": os.getcwd(),
                      "env": {n: os.environ.get(n) for n in names}}))
elif mode == "exit":
    sys.stdout.write("partial output\n")
    sys.stderr.write("first line\nsecond line\nout of stock\n")
    sys.exit(int(sys.argv[2]))
elif mode == "raw":
    print(json.dumps({"stdin_hex": raw.hex()}))
elif mode == "json":
    print(json.dumps({"shipment_id": "sh-1", "parcels": [1, 2], "note": "café"}))
elif mode == "text":
    print("done, not JSON")
elif mode == "empty":
    pass
elif mode == "signal":
    os.kill(os.getpid(), 9)
elif mode in ("hang", "escape"):
    # A child that would outlive us; "escape" puts it in its own session (out of our group).
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                             start_new_session=(mode == "escape"))
    with open(sys.argv[2], "w") as f:
        f.write(str(child.pid))
    time.sleep(60)
"""


@pytest.fixture
def program(tmp_path: Path) -> Path:
    path = tmp_path / "bin" / "participant.py"
    path.parent.mkdir()
    path.write_text(PARTICIPANT)
    return path


def request(*args: str, phase: Phase = Phase.ACTION, timeout: float = 10.0, body: Any = None) -> Request:
    return Request(
        saga_id="s-1",
        step_name="ship",
        phase=phase,
        idempotency_key=f"s-1:ship:{phase.value}",
        spec={"args": list(args)},
        body={"order_id": "o-1", "items": [1, 2]} if body is None else body,
        timeout=timeout,
    )


def transport(tmp_path: Path, **config: Any) -> ExecTransport:
    config.setdefault("command", [sys.executable, "bin/participant.py"])
    return ExecTransport("shipping", config, str(tmp_path), {"PATH": os.environ["PATH"], "FROM_ENGINE": "yes"})


def test_stdin_json_env_args_and_cwd(tmp_path: Path, program: Path) -> None:
    reply = transport(tmp_path, env={"EXTRA": 7}).call(request("echo", phase=Phase.COMPENSATION))

    assert (reply.status, reply.delivered) == (Status.OK, True)
    assert reply.result == {
        "stdin": {"order_id": "o-1", "items": [1, 2]},
        "argv": ["echo"],
        "cwd": str(tmp_path),
        "env": {
            "SAGA_ID": "s-1",
            "SAGA_STEP": "ship",
            "SAGA_PHASE": "compensation",
            "SAGA_IDEMPOTENCY_KEY": "s-1:ship:compensation",
            "EXTRA": "7",
            "FROM_ENGINE": "yes",
        },
    }


def test_cwd_below_the_definition_directory(tmp_path: Path, program: Path) -> None:
    exec_ = transport(tmp_path, command=[sys.executable, "participant.py"], cwd="bin")
    assert exec_.call(request("echo")).result["cwd"] == str(tmp_path / "bin")


def test_command_as_a_string_is_split_without_a_shell(tmp_path: Path, program: Path) -> None:
    exec_ = transport(tmp_path, command=f"{sys.executable} bin/participant.py echo '$HOME'")
    assert exec_.call(request()).result["argv"] == ["echo", "$HOME"]


@pytest.mark.parametrize(
    ("mode", "result"),
    [
        ("json", {"shipment_id": "sh-1", "parcels": [1, 2], "note": "café"}),
        ("text", "done, not JSON"),
        ("empty", None),
    ],
    ids=["json", "text", "empty"],
)
def test_exit_0_is_success_with_stdout_as_result(tmp_path: Path, program: Path, mode: str, result: Any) -> None:
    reply = transport(tmp_path).call(request(mode))
    assert (reply.status, reply.result, reply.error, reply.delivered) == (Status.OK, result, None, True)


def test_exit_75_is_transient(tmp_path: Path, program: Path) -> None:
    reply = transport(tmp_path).call(request("exit", "75"))
    assert (reply.status, reply.delivered) == (Status.TRANSIENT, True)
    assert "exit 75 (transient)" in (reply.error or "")


@pytest.mark.parametrize("code", ["1", "2", "3", "64", "76", "255"])
def test_other_non_zero_exits_are_definitive_with_the_stderr_tail(tmp_path: Path, program: Path, code: str) -> None:
    reply = transport(tmp_path).call(request("exit", code))
    assert (reply.status, reply.delivered) == (Status.REFUSED, True)
    assert reply.error is not None
    assert reply.error.endswith(f"exit {code}: first line | second line | out of stock")


def test_killed_by_a_signal_is_transient(tmp_path: Path, program: Path) -> None:
    reply = transport(tmp_path).call(request("signal"))
    assert (reply.status, reply.delivered) == (Status.TRANSIENT, True)
    assert "killed by signal 9" in (reply.error or "")


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # a zombie waiting for init to reap it is dead too
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")
    except (OSError, IndexError):
        return True


def _wait_gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.02)
    return _gone(pid)


def test_timeout_kills_the_whole_process_group(tmp_path: Path, program: Path) -> None:
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    reply = transport(tmp_path).call(request("hang", str(pid_file), timeout=1.0))

    assert time.monotonic() - started < 10  # 10x the timeout, far below the participant's 60 s
    assert (reply.status, reply.delivered) == (Status.TRANSIENT, True)  # outcome unknown
    assert "no answer within 1s (killed)" in (reply.error or "")
    child = int(pid_file.read_text())
    assert _wait_gone(child), "the participant's child outlived the timeout"


@pytest.fixture
def escaped(tmp_path: Path) -> Iterator[Path]:
    pid_file = tmp_path / "escaped.pid"
    yield pid_file
    if pid_file.exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_timeout_does_not_hang_on_a_descendant_that_left_the_group(
    tmp_path: Path, program: Path, escaped: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exec_transport, "KILL_GRACE", 0.3)
    started = time.monotonic()
    reply = transport(tmp_path).call(request("escape", str(escaped), timeout=1.0))
    assert time.monotonic() - started < 10  # 10x the timeout; the escaped child holds the pipes for 60 s
    assert (reply.status, reply.delivered) == (Status.TRANSIENT, True)
    assert (reply.error or "").endswith("no answer within 1s (killed)")


def test_a_program_that_cannot_start_was_never_delivered(tmp_path: Path) -> None:
    reply = transport(tmp_path, command=[str(tmp_path / "no-such-program")]).call(request())
    assert (reply.status, reply.delivered) == (Status.REFUSED, False)
    assert "cannot start" in (reply.error or "")


def test_a_missing_working_directory_was_never_delivered(tmp_path: Path, program: Path) -> None:
    reply = transport(tmp_path, cwd="missing").call(request("echo"))
    assert (reply.status, reply.delivered) == (Status.REFUSED, False)


def test_shell_true_with_a_command_line(tmp_path: Path, program: Path) -> None:
    exec_ = transport(tmp_path, command=f"{sys.executable} bin/participant.py echo | cat", shell=True)
    reply = exec_.call(request())
    assert reply.status is Status.OK
    assert reply.result["argv"] == ["echo"]  # the pipe ran through the shell


def test_shell_true_with_a_list_runs_the_whole_list(tmp_path: Path, program: Path) -> None:
    exec_ = transport(tmp_path, command=[sys.executable, "bin/participant.py"], shell=True)
    reply = exec_.call(request("echo", "two words"))
    assert reply.status is Status.OK
    assert reply.result["argv"] == ["echo", "two words"]


def test_stdin_is_compact_utf8_json(tmp_path: Path, program: Path) -> None:
    body = {"note": "café €", "n": 1.5, "nested": {"list": [None, True]}}
    reply = transport(tmp_path).call(request("raw", body=body))
    sent = bytes.fromhex(reply.result["stdin_hex"])
    assert sent == '{"note":"café €","n":1.5,"nested":{"list":[null,true]}}'.encode()


# -- output is capped ----------------------------------------------------------------------------

BYTES = 800 * 65537  # what FLOOD writes on a stream, before its last line (23 bytes)
KEPT = "over the 1024 KiB kept"
FLOOD = r"""
import os, sys
sys.stdin.buffer.read()
chunk = b"x" * 65536 + b"\n"
stream = sys.stdout if sys.argv[1] == "stdout" else sys.stderr
for _ in range(800):  # 50 MiB (800 lines of 65537 bytes), on one stream or both, interleaved
    stream.buffer.write(chunk)
    if sys.argv[1] == "both":
        sys.stdout.buffer.write(chunk)
stream.buffer.write(b"the last line says why\n")
stream.flush()
sys.exit(int(sys.argv[2]))
"""


@pytest.mark.parametrize(
    ("stream", "code", "status", "says"),
    [
        ("stdout", "0", Status.OK, f"stdout cut: {BYTES + 23} bytes, {KEPT}; not kept as the result"),
        ("stderr", "1", Status.REFUSED, f"| the last line says why (stderr cut: {BYTES + 23} bytes, {KEPT})"),
        ("both", "75", Status.TRANSIENT, f"(stderr cut: {BYTES + 23} bytes, {KEPT}) (stdout cut: {BYTES} bytes"),
    ],
)  # fmt: skip
@pytest.mark.slow
def test_a_participant_printing_50_mb_is_read_capped_and_said_so(
    tmp_path: Path, stream: str, code: str, status: Status, says: str
) -> None:
    """Every byte is read (no full pipe blocks the program) but only 1 MiB of each stream is
    kept: memory stays small, the call returns promptly, and the reply says what was cut."""
    (tmp_path / "flood.py").write_text(FLOOD)
    flood = transport(tmp_path, command=[sys.executable, "flood.py"])
    tracemalloc.start()
    try:
        started = time.monotonic()
        reply = flood.call(request(stream, code, body={"pad": "y" * 200_000}))  # stdin beyond a pipe's buffer
        elapsed = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reply.status is status
    assert says in str(reply.result if status is Status.OK else reply.error)
    assert elapsed < 8
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes of Python memory for 50 MiB of output"


def test_a_flooding_participant_fails_its_saga_cleanly_end_to_end(tmp_path: Path) -> None:
    """`sagactl run`: a step printing 50 MB on stderr and exiting 1 is refused with the last
    line and the cut said; the saga fails (exit 1) and `show` prints the short error."""
    (tmp_path / "flood.py").write_text(FLOOD)
    (tmp_path / "flood.yaml").write_text(
        "saga: Flood\nendpoints:\n  e: {type: exec, command: [python3, flood.py]}\n"
        "steps:\n  - {name: noisy, endpoint: e, action: {args: [stderr, '1']}}\n"
    )
    dsn = f"sqlite:///{tmp_path / 'log.db'}"
    ran = CliRunner().invoke(app, ["run", str(tmp_path / "flood.yaml"), "--dsn", dsn, "-o", "json"])
    assert ran.exit_code == 1, ran.stderr
    error = json.loads(ran.stdout)["steps"][0]["error"]
    assert error.endswith(f"| the last line says why (stderr cut: {BYTES + 23} bytes, {KEPT})")
    assert len(error) < 1000
