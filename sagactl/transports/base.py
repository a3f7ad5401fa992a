"""The Transport protocol: how the engine talks to participants, whatever the wire."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from sagactl.models import Phase


class Status(StrEnum):
    OK = "ok"  # success (for a compensation: done, or already undone)
    REFUSED = "refused"  # definitive: retrying will not help
    TRANSIENT = "transient"  # retry with backoff


@dataclass(frozen=True, slots=True)
class Request:
    """One call to a participant, placeholders already resolved."""

    saga_id: str
    step_name: str
    phase: Phase
    idempotency_key: str
    spec: dict[str, Any]  # method/path/headers (http), command (sqs), args (exec)
    body: Any
    timeout: float
    attempt: int = 0  # this attempt's number as the saga log counts them (0: not known)
    # W3C trace context of this attempt's span ({"traceparent", "tracestate"}; empty: tracing
    # off): an http header, an SQS message attribute, TRACEPARENT/TRACESTATE in an exec's env
    trace: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reply:
    """What came back. ``delivered`` is False only when the request certainly never reached
    the participant (connection refused, DNS, connect timeout, program not startable);
    ``timed_out``: no (complete) answer within the request's timeout (the saga log records it,
    for `stats --steps`)."""

    status: Status
    result: Any = None
    error: str | None = None
    delivered: bool = True
    retry_after: float | None = None
    already_undone: bool = False
    timed_out: bool = False


class Transport(Protocol):
    def call(self, request: Request) -> Reply:
        """Send one request and classify the answer. Never raises for participant failures."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class AsyncTransport(Transport, Protocol):
    """A transport whose answer comes separately (SQS): a worker sends and does not wait."""

    def send(self, request: Request) -> Reply | None:
        """Send without waiting: None when sent (the answer comes later), else why not."""
        ...
