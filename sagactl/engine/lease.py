"""Who drives a saga: owner IDs and how to tell that a lease holder on this host is dead.

A driver (``run``, ``resume``, later a worker) holds a saga's lease while it sends anything
for it; the lease covers the answer it waits for plus LEASE_MARGIN, and every write it makes
is conditional on still holding it (sagactl.store). A holder that died on this host (its
process is gone or a zombie) can be taken over at once instead of waiting for expiry.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

LEASE_MARGIN = 30.0  # seconds a lease outlives the deadline it was written with


def make_owner() -> str:
    """``host:pid:nonce``: lets a driver on the same host see that the holder is dead."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def lease_until(now: datetime, busy_for: float | None = None) -> datetime:
    """When a lease written at ``now`` expires: the awaited answer's time plus the margin."""
    return now + timedelta(seconds=(busy_for or 0.0) + LEASE_MARGIN)


def holder_is_dead(owner: str) -> bool:
    """True when ``owner`` is a process on this host that no longer runs (or is a zombie)."""
    host, _, rest = owner.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive under another user, or a zombie
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A process killed with -9 still answers kill(pid, 0) until its parent reaps it (a
    runbook that starts `sagactl run &` and resumes right after the kill sees exactly that)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return False
    return bool(fields) and fields[0] in ("Z", "X")
