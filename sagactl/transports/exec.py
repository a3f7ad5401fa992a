"""exec transport: run a program per call, command JSON on stdin, result JSON on stdout.

argv without a shell (unless ``shell: true``); env SAGA_ID, SAGA_STEP, SAGA_PHASE,
SAGA_IDEMPOTENCY_KEY; exit 0 success, 75 transient, anything else definitive. On timeout
the whole process group is killed and the outcome is unknown. Relative paths resolve
against the definition file's directory (or ``cwd:`` below it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sagactl.codec import compact_json
from sagactl.transports.base import Reply, Request, Status

EX_TEMPFAIL = 75
KILL_GRACE = 5.0  # seconds to collect a killed program's output before giving up on its pipes


def _tail(text: str, limit: int = 300) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    tail = " | ".join(lines[-3:])
    return tail if len(tail) <= limit else "…" + tail[-limit:]


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    try:
        proc.communicate(timeout=KILL_GRACE)
    except subprocess.TimeoutExpired:
        # A descendant left the group (setsid) and still holds our pipes open: stop
        # reading rather than wait for it forever; the program itself is dead.
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
        self.env = {**env, **{str(k): str(v) for k, v in (config.get("env") or {}).items()}}

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
        try:
            out, err = proc.communicate(stdin, timeout=request.timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return Reply(
                Status.TRANSIENT, error=f"exec {shown}: no answer within {request.timeout:g}s (killed)"
            )
        except BaseException:
            _kill_group(proc)
            raise
        stderr = err.decode("utf-8", "replace")
        code = proc.returncode
        if code == 0:
            text = out.decode("utf-8", "replace").strip()
            if not text:
                return Reply(Status.OK, result=None)
            try:
                return Reply(Status.OK, result=json.loads(text))
            except json.JSONDecodeError:
                return Reply(Status.OK, result=text)
        detail = _tail(stderr) or _tail(out.decode("utf-8", "replace")) or "no output"
        if code == EX_TEMPFAIL:
            return Reply(Status.TRANSIENT, error=f"exec {shown}: exit 75 (transient): {detail}")
        if code < 0:
            return Reply(Status.TRANSIENT, error=f"exec {shown}: killed by signal {-code}: {detail}")
        return Reply(Status.REFUSED, error=f"exec {shown}: exit {code}: {detail}")

    def close(self) -> None:
        return None
