"""Leases (sagactl/engine/lease.py): owner IDs, how long a lease outlives the answer it waits
for (the 30 s margin, pinned by a literal), and which holders on this host count as dead: a
process that exited, a zombie, never this process, never another host's."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sagactl.engine.lease import holder_is_dead, lease_until, make_owner

NOW = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
HOST = socket.gethostname()


def test_an_owner_names_this_host_this_process_and_a_nonce() -> None:
    owner = make_owner()
    host, pid, nonce = owner.rsplit(":", 2)
    assert (host, pid) == (HOST, str(os.getpid())) and re.fullmatch(r"[0-9a-f]{8}", nonce)
    assert make_owner() != owner  # two drivers in one process are two owners


def test_a_lease_outlives_the_awaited_answer_by_30_seconds() -> None:
    assert lease_until(NOW) == NOW + timedelta(seconds=30)
    assert lease_until(NOW, None) == NOW + timedelta(seconds=30)
    assert lease_until(NOW, 90.0) == NOW + timedelta(seconds=120)
    assert lease_until(NOW, 0.25) == NOW + timedelta(seconds=30.25)


def test_a_holder_that_exited_or_is_a_zombie_is_dead() -> None:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()  # reaped: the pid names no process any more
    assert holder_is_dead(f"{HOST}:{done.pid}:0000abcd")
    zombie = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        alive = f"{HOST}:{zombie.pid}:0000abcd"
        assert not holder_is_dead(alive)  # a running process holds its lease
        with pytest.raises(subprocess.TimeoutExpired):
            zombie.wait(timeout=1)  # and asking sent it no signal: it still runs
        os.kill(zombie.pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not holder_is_dead(alive):  # killed, not reaped yet: a zombie still answers kill(pid, 0)
            assert time.monotonic() < deadline, "a killed, unreaped process never counted as dead"
            time.sleep(0.01)
    finally:
        zombie.kill()
        zombie.wait()


def test_a_zombie_whose_name_holds_a_parenthesis_and_non_ascii_is_dead(tmp_path: Path) -> None:
    """/proc/PID/stat is "PID (NAME) STATE ...": NAME may hold ") R " and bytes that are not
    ASCII; the state is the field after the last parenthesis."""
    program = tmp_path / "z) R é"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", program)
    process = subprocess.Popen([str(program), "60"])
    try:
        owner = f"{HOST}:{process.pid}:0000abcd"
        assert not holder_is_dead(owner)
        process.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while not holder_is_dead(owner):
            assert time.monotonic() < deadline, "a killed zombie with an odd name never counted as dead"
            time.sleep(0.01)
    finally:
        process.kill()
        process.wait()


def test_an_owner_with_more_colons_is_read_by_its_second_field() -> None:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    assert holder_is_dead(f"{HOST}:{done.pid}:nonce:with:colons")
    assert not holder_is_dead(f"{HOST}:{os.getpid()}:nonce:with:colons")


def test_only_a_process_of_this_host_other_than_this_one_can_be_judged_dead() -> None:
    assert not holder_is_dead(f"{HOST}:{os.getpid()}:0000abcd")  # this process is alive
    assert not holder_is_dead(f"another-{HOST}:999999999:0000abcd")  # another host: only expiry tells
    assert not holder_is_dead(f"{HOST}:not-a-pid:0000abcd")
    assert not holder_is_dead(f"{HOST}")
    assert not holder_is_dead("worker")  # a name an operator or a test gave: never dead by pid


def test_a_holder_run_by_another_user_is_alive(monkeypatch: pytest.MonkeyPatch) -> None:
    """kill(pid, 0) on another user's process is refused (PermissionError): it runs, so its lease
    holds, unless /proc says it is a zombie. (Tests run as root, whom the kernel never refuses:
    the refusal is what the kernel answers a user for another user's process.)"""
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:

        def refused(pid: int, sig: int) -> None:
            raise PermissionError(1, "Operation not permitted")

        monkeypatch.setattr(os, "kill", refused)
        assert not holder_is_dead(f"{HOST}:{holder.pid}:0000abcd")
        monkeypatch.undo()
        holder.kill()
        holder.wait()  # reaped: /proc has no such process; refused kill(pid, 0) says nothing
        monkeypatch.setattr(os, "kill", refused)
        assert not holder_is_dead(f"{HOST}:{holder.pid}:0000abcd")
    finally:
        monkeypatch.undo()
        holder.kill()
        holder.wait()
