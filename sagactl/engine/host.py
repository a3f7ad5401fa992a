"""What a Driver takes from the engine that runs it (DriverHost), how it hands a saga back
(release), and how a waiting saga is put aside (Parked); the types both sides name."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

from sagactl.clock import Clock
from sagactl.definitions.model import SagaDefinition
from sagactl.engine.calls import Prepared
from sagactl.models import SagaRecord, Transition
from sagactl.store.base import Store
from sagactl.tracing import Tracing
from sagactl.transports.base import Transport

TransportFactory = Callable[[SagaDefinition, str], Transport]
Observer = Callable[[SagaRecord, Transition], None]


class DriverHost(Protocol):
    """What a Driver takes from the engine that started it (read-only)."""

    @property
    def store(self) -> Store: ...
    @property
    def transport_factory(self) -> TransportFactory: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def observer(self) -> Observer | None: ...
    @property
    def env(self) -> Mapping[str, str]: ...
    @property
    def rng(self) -> random.Random: ...
    @property
    def owner(self) -> str: ...
    @property
    def tracer(self) -> Tracing:
        """Spans of the saga's attempts (NOOP: tracing off)."""
        ...

    @property
    def park(self) -> bool:
        """Worker mode: a step that waits (an SQS reply, a retry's backoff) puts the saga aside
        (released, wake_at set) instead of holding the driver."""
        ...

    @property
    def stop(self) -> threading.Event | None:
        """Set when the worker stops: every saga is put aside at its next step boundary."""
        ...

    @property
    def prepared(self) -> Prepared: ...  # definitions and maskers, built once per definition

    @property
    def tags(self) -> Mapping[str, Any]:
        """Written into the detail of every transition (a bulk job: its ID, who, why, selector)."""
        ...


class Parked(Exception):
    """The saga waits (a reply, a backoff, a stopping worker) and is put aside until ``until``."""

    def __init__(self, until: datetime, why: str) -> None:
        super().__init__(why)
        self.until = until
        self.why = why


def release(store: Store, saga: SagaRecord, owner: str) -> None:
    """Give ``saga``'s lease up (if ``owner`` holds it) and forget it in the working copy."""
    store.release_lease(saga.saga_id, owner)
    saga.lease_owner = None
    saga.lease_expires_at = None


def log_extra(t: Transition) -> dict[str, Any]:
    return {
        "saga_id": t.saga_id,
        "step_name": t.step_name,
        "old_state": t.old_state,
        "new_state": t.new_state,
        "detail": t.detail,
    }
