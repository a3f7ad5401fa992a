"""``sagactl`` as a runbook runs it: a real process, optionally without root's powers (so a
read-only file is read-only even when the tests run as root) or with a file size limit (a
disk that fills up)."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path


def interruptible() -> None:
    """``preexec_fn`` for a child a test will send SIGINT (Ctrl-C): SIGINT at its default, so
    Python turns it into KeyboardInterrupt. A child inherits an ignored SIGINT from a test run
    started in the background by a shell script, or from a runner that ignores it (mutmut's)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def unprivileged() -> list[str]:
    """A command prefix that runs without capabilities: root then obeys file modes like any
    user (CAP_DAC_OVERRIDE gone). Empty when not root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "running as root needs setpriv (util-linux) to drop CAP_DAC_OVERRIDE"
    return [setpriv, "--bounding-set=-all", "--inh-caps=-all", "--"]


def sagactl(
    *args: str,
    cwd: Path,
    env: dict[str, str] | None = None,
    as_user: bool = False,
    max_file_bytes: int | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m sagactl ARGS`` in ``cwd``; SAGACTL_* variables only from ``env``.

    ``as_user``: without root's capabilities. ``max_file_bytes``: RLIMIT_FSIZE, so a write past
    that offset fails as on a full disk (Python ignores SIGXFSZ, the write returns EFBIG).
    """
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SAGACTL_")}
    environ.update(env or {})
    limit: Callable[[], None] | None = None
    if max_file_bytes is not None:
        size = max_file_bytes

        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    argv = [*(unprivileged() if as_user else []), sys.executable, "-m", "sagactl", *args]
    return subprocess.run(
        argv, cwd=cwd, env=environ, capture_output=True, text=True, timeout=120, preexec_fn=limit, input=stdin
    )
