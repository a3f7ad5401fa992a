"""Tracing: a saga is one OpenTelemetry trace across every participant (DESIGN section 8,
docs/tracing.md).

    start.py     open_tracing: NOOP, or OpenTelemetry when the settings turn it on
    settings.py  what turns tracing on: the standard OTEL_* environment over sagactl.yaml's
                 ``tracing:`` block; nothing of OpenTelemetry imported
    context.py   W3C trace context as text: ``traceparent`` checked, the carrier of the
                 environment (TRACEPARENT, TRACESTATE); nothing of OpenTelemetry imported
    otel.py      the OpenTelemetry implementation of ``Tracing``: the saga's root span, a span
                 per attempt, operator actions linked to sagas, W3C propagation
    export.py    where spans go (OTLP over http/protobuf or gRPC, or the console), failures
                 said in one warning, the flush at exit bounded

The engine, the DLQ canary and ``ops`` speak to the ``Tracing`` interface below. Off (no
settings, or no ``otel`` extra installed) it is ``NOOP``: every method does nothing and
returns ``NOSPAN``, and nothing of OpenTelemetry is imported, so start-up and the cost of a
step stay what they were.

May import: the root leaves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

from sagactl.models import Phase, SagaRecord

log = logging.getLogger("sagactl.tracing")

FLUSH_TIMEOUT = 1.0  # seconds a command may spend sending its spans at exit
WORKER_FLUSH_TIMEOUT = 3.0  # a stopping worker's last spans
Carrier = Mapping[str, str]  # W3C headers: traceparent, and tracestate when there is one
_EMPTY: Carrier = MappingProxyType({})


class Span:
    """One span as sagactl uses it. This base is the span of tracing off: it does nothing, so
    the engine calls it unconditionally. ``carrier``: the W3C headers a participant gets with
    the call this span covers; ``span_id``: its ID in hex (None when off)."""

    __slots__ = ()
    carrier: Carrier = _EMPTY
    span_id: str | None = None

    def set(self, **attributes: Any) -> None:
        """Attributes (each named ``sagactl.NAME``); None values are left out."""

    def error(self, message: str) -> None:
        """An error as a span event (and the span's status), its text masked."""

    def link(self, traceparent: str | None, tracestate: str | None = None, **attributes: Any) -> None:
        """A link to the span ``traceparent`` names (another trace: a saga an operator acts on)."""

    def end(self, outcome: str | None = None) -> None:
        """End the span, with ``outcome`` as ``sagactl.outcome``."""


NOSPAN = Span()


class Tracing:
    """What sagactl traces. This base is tracing off (``NOOP``): every method does nothing."""

    enabled = False

    def saga(self, saga: SagaRecord) -> Span:
        """The root span of a new saga, a child of the caller's context (its TRACEPARENT,
        ``run --traceparent``, or the operator action in progress); its context is written into
        ``saga.traceparent``/``saga.tracestate``, which the saga log keeps."""
        return NOSPAN

    def attempt(
        self,
        saga: SagaRecord,
        step: str,
        phase: Phase,
        attempt: int,
        *,
        endpoint: str,
        transport: str,
        previous: str | None = None,
        why: str | None = None,
        received: bool = False,
    ) -> Span:
        """The span of one attempt of ``phase`` of ``step``, a child of the saga's stored root:
        in whichever process drives it, the saga stays one trace. ``previous``: the span ID of
        the attempt before it on this step, linked with ``why`` (retry, resume, compensates).
        ``received``: the application of an answer that came on a reply queue."""
        return NOSPAN

    @contextmanager
    def action(self, name: str, **attributes: Any) -> Iterator[Span]:
        """An operator action (resume, abort, resolve, rerun, redrive, the canary's watch) as
        a span of the caller's trace, current while the block runs; it links to the sagas it
        acts on (``Span.link``). An exception leaving the block is recorded, masked."""
        yield NOSPAN

    def close(self, timeout: float = FLUSH_TIMEOUT) -> None:
        """Send what is buffered, waiting at most ``timeout`` seconds; never raises (a
        collector that cannot be reached costs one warning, never the command's result)."""


NOOP = Tracing()


__all__ = ["FLUSH_TIMEOUT", "NOOP", "NOSPAN", "WORKER_FLUSH_TIMEOUT", "Carrier", "Span", "Tracing"]
