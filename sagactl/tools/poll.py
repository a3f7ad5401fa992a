"""Follow one saga (``show --follow``) and watch a listing (``list --watch``) by polling a reader:
a native saga log or a mapped table, read-only. Time is a Clock, so tests move it instead of
waiting.

Polling is cheap. ``follow`` reads the saga's ``stamp`` each interval (its updated_at, lease and
last transition ID: the primary key and one entry of the transitions index, never the row's
JSON) and reads the saga and its history again only when the stamp moved. ``watch`` runs the
listing's own query each interval: ``--stuck`` reads only the indexes over active sagas, a plain
listing the created_at index up to its limit. It cannot skip a frame on an unchanged stamp: a
saga becomes stuck by time passing alone, with nothing written.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sagactl.clock import Clock
from sagactl.errors import ExitCode, NotFoundError, UsageError
from sagactl.models import SagaRecord, SagaState, SagaSummary, exit_code_for
from sagactl.store.base import SagaReader
from sagactl.tools import inspect

FOLLOW_INTERVAL = 1.0  # seconds between two looks at a followed saga
WATCH_INTERVAL = 5.0  # seconds between two frames of a watched listing

MIN_INTERVAL, MAX_INTERVAL = 0.1, 3600.0
# How long a saga may sit past its driver's lease or its wake-up time, unclaimed, before following
# it stops with exit 3: a worker claims it within its --poll (1 s by default, 60 s at most).
UNCLAIMED_FOR = 90.0

Seen = Callable[[SagaRecord | SagaSummary, bool, datetime], None]


def parse_interval(value: str | None, default: float) -> float:
    """``--interval`` in seconds (``default`` when not given): 100ms to 1h."""
    if value is None:
        return default
    from sagactl.definitions.model import duration_option

    seconds = duration_option(value, "--interval")
    if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
        raise UsageError(f"--interval must be 100ms to 1h, got '{value[:40]}'")
    return seconds


def verdict(saga: SagaRecord | SagaSummary, now: datetime | None = None) -> ExitCode | None:
    """The exit code of a followed saga once following it can stop, else None: completed 0,
    failed 1 (4 when a step's endpoint was unreachable), and 3 (needs attention) for a saga
    nothing will move on: no driver holds it and nothing is due (a compensation that could not
    finish, a run that was interrupted), or it is ``unclaimed`` at ``now``. A mapped table tells
    only its terminal states."""
    if isinstance(saga, SagaSummary):
        if saga.state is SagaState.COMPLETED:
            return ExitCode.OK
        return ExitCode.SAGA_FAILED if saga.state is SagaState.FAILED else None
    if saga.state.terminal:
        return exit_code_for(saga)
    if saga.lease_owner is None and saga.wake_at is None:
        return ExitCode.ATTENTION
    return ExitCode.ATTENTION if now is not None and unclaimed(saga, now) else None


def unclaimed(saga: SagaRecord, now: datetime) -> datetime | None:
    """When the driver's lease lapsed, or the saga's wake-up came, if that is more than
    UNCLAIMED_FOR ago and nobody took it since (its driver died and no worker runs); else None."""
    due = saga.lease_expires_at if saga.lease_owner is not None else saga.wake_at
    if saga.state.terminal or due is None or (now - due).total_seconds() <= UNCLAIMED_FOR:
        return None
    return due


def follow(
    reader: SagaReader, saga_id: str, seen: Seen, *, clock: Clock, interval: float = FOLLOW_INTERVAL
) -> ExitCode:
    """Hand ``seen`` the saga as it stands (changed True), then after every interval again
    (changed True when it was written since, else False: only time moved); return its exit
    code (``verdict``) once it ends. NotFoundError when there is no such saga, or no longer."""
    stamp = reader.stamp(saga_id)  # before the read: a write in between shows as a change next time
    saga = inspect.show_saga(reader, saga_id)
    seen(saga, True, clock.now())
    while (code := verdict(saga, clock.now())) is None:
        clock.sleep(interval)
        now_stamp = reader.stamp(saga_id)
        if now_stamp is None:
            raise NotFoundError(f"saga {saga_id} is no longer in {reader.info.location} (pruned?)")
        changed = now_stamp != stamp
        if changed:
            stamp = now_stamp
            saga = inspect.show_saga(reader, saga_id)
        seen(saga, changed, clock.now())
    return code


def watch(
    reader: SagaReader,
    request: inspect.ListRequest,
    frame: Callable[[inspect.ListResult], None],
    *,
    clock: Clock,
    interval: float = WATCH_INTERVAL,
) -> None:
    """Hand ``frame`` the listing every ``interval`` seconds, until interrupted (Ctrl-C:
    KeyboardInterrupt, which the caller turns into a clean exit)."""
    inspect.check_list_request(request)
    while True:
        frame(inspect.list_sagas(reader, request, clock.now()))
        clock.sleep(interval)
