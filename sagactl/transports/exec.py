"""exec transport: run a program per call, command JSON on stdin, result JSON on stdout.

argv without a shell (unless ``shell: true``); env SAGA_ID, SAGA_STEP, SAGA_PHASE,
SAGA_IDEMPOTENCY_KEY, and with tracing on TRACEPARENT/TRACESTATE (the attempt's span; the
caller's own are never inherited); exit 0 success, 75 transient, anything else definitive. On timeout
the whole process group is killed and the outcome is unknown. Relative paths resolve
against the definition file's directory (or ``cwd:`` below it).

Output is read as it comes and capped: the first MAX_OUTPUT bytes of stdout and of stderr
are kept (and the last TAIL bytes, for an error's last lines); the rest is read and dropped,
so a program printing 50 MB neither fills memory nor blocks on a full pipe, and the reply
says what was cut.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import selectors
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sagactl.codec import compact_json
from sagactl.transports.base import Reply, Request, Status

EX_TEMPFAIL = 75
KILL_GRACE = 5.0  # seconds to collect a killed program's output before giving up on its pipes
MAX_OUTPUT = 1024 * 1024  # bytes of stdout, and of stderr, kept
TAIL = 64 * 1024  # last bytes kept beyond MAX_OUTPUT: an error's last lines
_CHUNK = 64 * 1024
_PIPE_BUF = getattr(select, "PIPE_BUF", 512)  # a pipe select calls writable takes this much
_TRACE_ENV = {"traceparent": "TRACEPARENT", "tracestate": "TRACESTATE"}  # the environment carrier
_TRACE_VARS = frozenset(_TRACE_ENV.values())


def _tail(text: str, limit: int = 300) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    tail = " | ".join(lines[-3:])
    return tail if len(tail) <= limit else "…" + tail[-limit:]


class Captured:
    """One output stream: its first MAX_OUTPUT bytes, its last TAIL bytes beyond them, and how
    many bytes the program wrote in all."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = MAX_OUTPUT - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            del self.tail[:-TAIL]

    @property
    def cut(self) -> bool:
        return self.total > MAX_OUTPUT

    def text(self) -> str:
        """What was kept from the start (all of it when nothing was cut)."""
        return self.head.decode("utf-8", "replace")

    def last(self) -> str:
        """The end of the output: where a failing program says why."""
        return (self.tail if self.cut else self.head).decode("utf-8", "replace")

    def note(self, name: str) -> str:
        return f" ({name} cut: {self.total} bytes, over the {MAX_OUTPUT // 1024} KiB kept)" if self.cut else ""


def _pump(proc: subprocess.Popen[bytes], stdin: bytes, out: Captured, err: Captured, deadline: float) -> None:
    """Write ``stdin`` and read stdout and stderr into ``out`` and ``err`` until both end;
    TimeoutExpired at ``deadline``. Never blocks on a full pipe in either direction."""
    with selectors.DefaultSelector() as selector:
        if proc.stdin is not None and not proc.stdin.closed:
            if stdin:
                selector.register(proc.stdin, selectors.EVENT_WRITE)
            else:
                proc.stdin.close()
        for pipe, sink in ((proc.stdout, out), (proc.stderr, err)):
            if pipe is not None and not pipe.closed:
                selector.register(pipe, selectors.EVENT_READ, sink)
        view, offset = memoryview(stdin), 0
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise subprocess.TimeoutExpired(proc.args, 0)
            for key, _ in selector.select(remaining):
                if key.fileobj is proc.stdin:
                    try:
                        offset += os.write(key.fd, view[offset : offset + _PIPE_BUF])
                    except BrokenPipeError:  # the program stopped reading: its answer counts
                        offset = len(view)
                    if offset >= len(view):
                        selector.unregister(key.fileobj)
                        proc.stdin.close()
                    continue
                chunk = os.read(key.fd, _CHUNK)
                if chunk:
                    key.data.add(chunk)
                else:
                    selector.unregister(key.fileobj)
                    key.fileobj.close()  # type: ignore[union-attr]


def _kill_group(proc: subprocess.Popen[bytes], out: Captured, err: Captured) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    # A descendant that left the group (setsid) may hold our pipes: stop reading after a grace.
    with contextlib.suppress(subprocess.TimeoutExpired):
        _pump(proc, b"", out, err, time.monotonic() + KILL_GRACE)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()
    proc.wait()


class ExecTransport:
    def __init__(self, name: str, config: dict[str, Any], base_dir: str, env: Mapping[str, str]) -> None:
        self.name = name
        self.shell = bool(config.get("shell", False))
        command = config["command"]
        if isinstance(command, str) and not self.shell:
            command = shlex.split(command)
        elif self.shell and not isinstance(command, str):
            # Popen(list, shell=True) would run only the first item and hand the rest to
            # the shell as $0, $1...: the whole list is the command line.
            command = shlex.join(str(part) for part in command)
        self.command: list[str] | str = command
        cwd = Path(base_dir)
        if config.get("cwd"):
            cwd = cwd / str(config["cwd"])
        self.cwd = str(cwd)
        # The caller's TRACEPARENT/TRACESTATE are not passed on: a participant's parent is the
        # attempt's span (given per call, tracing on), never a span of whoever started sagactl.
        inherited = {k: v for k, v in env.items() if k not in _TRACE_VARS}
        self.env = {**inherited, **{str(k): str(v) for k, v in (config.get("env") or {}).items()}}

    def _argv(self, args: list[str]) -> list[str] | str:
        if isinstance(self.command, str):  # shell: true
            return " ".join([self.command, *(shlex.quote(a) for a in args)])
        return [*self.command, *args]

    def call(self, request: Request) -> Reply:
        args = [str(a) for a in request.spec.get("args") or []]
        argv = self._argv(args)
        shown = argv if isinstance(argv, str) else " ".join(shlex.quote(a) for a in argv)
        env = {
            **self.env,
            "SAGA_ID": request.saga_id,
            "SAGA_STEP": request.step_name,
            "SAGA_PHASE": request.phase.value,
            "SAGA_IDEMPOTENCY_KEY": request.idempotency_key,
            **{_TRACE_ENV[name]: value for name, value in request.trace.items() if name in _TRACE_ENV},
        }
        stdin = compact_json(request.body).encode()
        try:
            proc = subprocess.Popen(
                argv,
                shell=self.shell,
                cwd=self.cwd,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,  # own process group: a timeout kills its children too
            )
        except OSError as exc:
            return Reply(
                Status.REFUSED, error=f"exec {shown}: cannot start: {exc.strerror or exc}", delivered=False
            )
        out, err = Captured(), Captured()
        deadline = time.monotonic() + request.timeout
        try:
            _pump(proc, stdin, out, err, deadline)
            code = proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            _kill_group(proc, out, err)
            return Reply(
                Status.TRANSIENT,
                error=f"exec {shown}: no answer within {request.timeout:g}s (killed)",
                timed_out=True,
            )
        except BaseException:
            _kill_group(proc, out, err)
            raise
        if code == 0:
            return _success(shown, out)
        detail = (_tail(err.last()) or _tail(out.last()) or "no output") + err.note("stderr") + out.note("stdout")
        if code == EX_TEMPFAIL:
            return Reply(Status.TRANSIENT, error=f"exec {shown}: exit 75 (transient): {detail}")
        if code < 0:
            return Reply(Status.TRANSIENT, error=f"exec {shown}: killed by signal {-code}: {detail}")
        return Reply(Status.REFUSED, error=f"exec {shown}: exit {code}: {detail}")

    def close(self) -> None:
        return None


def _success(shown: str, out: Captured) -> Reply:
    """Exit 0: stdout JSON is the result (text if not JSON). Output over MAX_OUTPUT is not a
    result anyone can use: the step succeeded, and its result says what was cut."""
    if out.cut:
        return Reply(
            Status.OK,
            result=f"exec {shown}: stdout cut: {out.total} bytes, over the {MAX_OUTPUT // 1024} KiB kept;"
            f" not kept as the result (it began: {' '.join(out.text()[:100].split())})",
        )
    text = out.text().strip()
    if not text:
        return Reply(Status.OK, result=None)
    try:
        return Reply(Status.OK, result=json.loads(text))
    except json.JSONDecodeError:
        return Reply(Status.OK, result=text)
