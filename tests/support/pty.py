"""Run a command with stdout and/or stderr on a real pseudo-terminal, and see what a terminal gets.

``run_on_pty(argv, tty={"stdout"})`` opens a pty (120x40, like a small terminal window),
starts ``argv`` with the chosen streams on its slave side and the others on pipes, reads the
master side until the child has exited and the slave is closed, and returns what came out.

The child's environment is the given ``env`` (default: this process's) minus the variables
that override terminal detection (NO_COLOR, FORCE_COLOR, COLUMNS, ...), with
TERM=xterm-256color; ``extra_env`` is applied last, so a test can set NO_COLOR itself.

What comes off the master side is what a terminal would be sent: the line discipline turns
"\\n" into "\\r\\n", and rich's escape sequences (colours, cursor moves) are left as they are.

``call_on_pty(fn)`` does the same for a call in this process: ``sys.stdout`` is a pty while
``fn`` runs.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple, TypeVar

from tests.support.processes import interruptible

T = TypeVar("T")

COLUMNS = 120
ROWS = 40

# Variables that make rich, click or a test runner decide colour/size instead of the terminal.
TERMINAL_OVERRIDES = (
    "NO_COLOR",
    "FORCE_COLOR",
    "CLICOLOR",
    "CLICOLOR_FORCE",
    "COLUMNS",
    "LINES",
    "TTY_COMPATIBLE",
    "TTY_INTERACTIVE",
    "JUPYTER_COLUMNS",
    "JUPYTER_LINES",
    "TERM",
    "COLORTERM",
)

# SGR sequences that set a colour: 30-37/90-97 (fg), 40-47/100-107 (bg), 38;5;N / 38;2;R;G;B.
_SGR = re.compile(r"\x1b\[([0-9;]*)m")
_CSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class PtyResult(NamedTuple):
    """``tty``: everything written to the terminal (stdout and/or stderr, interleaved as sent);
    ``stdout`` / ``stderr``: what went to a pipe ("" for a stream on the terminal)."""

    code: int
    tty: str
    stdout: str
    stderr: str


def run_on_pty(
    argv: Sequence[str],
    *,
    tty: Collection[str] = ("stdout", "stderr"),
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 30.0,
    size: tuple[int, int] = (COLUMNS, ROWS),
    interrupt_after: str | None = None,
) -> PtyResult:
    """Run ``argv`` with the streams named in ``tty`` ("stdout", "stderr") on a pty; stdin is
    /dev/null. Returns (exit code, terminal output, piped stdout, piped stderr).
    ``interrupt_after``: once the terminal has shown this text, the child gets SIGINT (Ctrl-C)."""
    unknown = set(tty) - {"stdout", "stderr"}
    if unknown or not tty:
        raise ValueError(f"tty must name stdout and/or stderr, not {sorted(tty)}")
    child_env = {k: v for k, v in (os.environ if env is None else env).items() if k not in TERMINAL_OVERRIDES}
    child_env["TERM"] = "xterm-256color"
    child_env.update(extra_env or {})

    master, slave = os.openpty()
    columns, rows = size
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    try:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=slave if "stdout" in tty else subprocess.PIPE,
            stderr=slave if "stderr" in tty else subprocess.PIPE,
            env=child_env,
            cwd=cwd,
            preexec_fn=interruptible if interrupt_after is not None else None,
        )
    except BaseException:
        os.close(master)
        os.close(slave)
        raise
    os.close(slave)  # the child holds the only copies: reading the master gets EIO once it exits

    pipes = {name: getattr(proc, name) for name in ("stdout", "stderr") if getattr(proc, name) is not None}
    fds = {"tty": master, **{name: pipe.fileno() for name, pipe in pipes.items()}}
    chunks: dict[int, list[bytes]] = {fd: [] for fd in fds.values()}
    open_fds = set(chunks)
    deadline = time.monotonic() + timeout
    try:
        while open_fds:
            left = deadline - time.monotonic()
            if left <= 0:
                proc.kill()
                raise TimeoutError(f"{argv!r} did not finish within {timeout}s")
            ready, _, _ = select.select(list(open_fds), [], [], min(left, 0.5))
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError as exc:
                    if exc.errno != errno.EIO:  # EIO: the slave side is closed (Linux's EOF)
                        raise
                    data = b""
                if data:
                    chunks[fd].append(data)
                    watching = interrupt_after is not None and fd == master
                    shown = b"".join(chunks[fd]).decode("utf-8", "replace") if watching else ""
                    if interrupt_after is not None and interrupt_after in shown:
                        proc.send_signal(signal.SIGINT)
                        interrupt_after = None
                else:
                    open_fds.discard(fd)
        code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        for pipe in pipes.values():
            pipe.close()

    def text(name: str) -> str:
        return b"".join(chunks[fds[name]]).decode("utf-8", "replace") if name in fds else ""

    return PtyResult(code=code, tty=text("tty"), stdout=text("stdout"), stderr=text("stderr"))


def colour_codes(text: str) -> list[str]:
    """The SGR sequences in ``text`` that set a foreground or background colour (bold, dim,
    italic and reset are not colours)."""
    found = []
    for match in _SGR.finditer(text):
        for param in (int(p) for p in match.group(1).split(";") if p):
            if param in (38, 48) or 30 <= param <= 37 or 40 <= param <= 47 or 90 <= param <= 97 or param >= 100:
                found.append(match.group(0))  # 38/48: extended colour (38;5;N or 38;2;R;G;B)
                break
    return found


# What rich.live writes before it redraws a frame of N lines: back to the frame's first line,
# erasing each on the way.
_REDRAW = re.compile(r"\r(?:\x1b\[2K\x1b\[1A)*\x1b\[2K")


def live_frames(tty: str) -> list[str]:
    """The frames a live display drew, in order, escapes removed (the last is the one left on
    the screen when it stopped)."""
    return [strip_escapes(frame) for frame in _REDRAW.split(tty)]


def strip_escapes(text: str) -> str:
    """``text`` without CSI sequences (colours, cursor moves) and carriage returns."""
    return _CSI.sub("", text).replace("\r", "")


def call_on_pty(fn: Callable[[], T], *, size: tuple[int, int] = (COLUMNS, ROWS)) -> tuple[T, str]:
    """Call ``fn`` in this process with ``sys.stdout`` on a fresh pty (``size`` columns x
    rows); return what it returned and what the terminal got (as from ``run_on_pty``). For
    many quick renderings (a property test) where a process per call would be too slow."""
    master, slave = os.openpty()
    columns, rows = size
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    chunks: list[bytes] = []

    def drain() -> None:  # keep reading, or a full pty buffer would block the writer
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return  # EIO: the slave side is closed
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    stream = open(slave, "w", encoding="utf-8", closefd=True)  # noqa: SIM115 (closed below, before the join)
    saved = sys.stdout
    # rich sizes a console by the standard file descriptors, which are not this pty here
    saved_env = {name: os.environ.get(name) for name in ("COLUMNS", "LINES")}
    try:
        sys.stdout = stream
        os.environ.update(COLUMNS=str(columns), LINES=str(rows))
        result = fn()
    finally:
        sys.stdout = saved
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        stream.close()
        reader.join(timeout=10)
        os.close(master)
    return result, b"".join(chunks).decode("utf-8", "replace")
