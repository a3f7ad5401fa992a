"""The OpenTelemetry implementation of ``Tracing`` (loaded only when tracing is on).

A saga is one trace: its root span is started where the saga is recorded, a child of the
caller's context, and its context (W3C ``traceparent``/``tracestate``) is stored with the saga.
Every attempt, in whichever process drives it (the recorder, a worker, a ``resume`` after a
crash), is a child of that stored context; the participant gets the attempt's own context, so
its spans are children of the attempt. Operator actions are spans of the operator's trace,
linked to the sagas they act on.

Span names stay few (``saga TYPE``, ``STEP action``, ``STEP compensation``, ``sagactl
ACTION``); what varies is in attributes named ``sagactl.*``. Free text (participant errors,
reasons) is masked before it becomes an attribute or an event.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider, sampling
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sagactl import __version__
from sagactl.masking import mask_secrets
from sagactl.models import Phase, SagaRecord
from sagactl.tracing import Carrier, Span, Tracing, log
from sagactl.tracing.context import env_carrier, valid_traceparent
from sagactl.tracing.export import Export
from sagactl.tracing.settings import TracingSettings

_PROPAGATOR = TraceContextTextMapPropagator()
_KINDS = {"sqs": SpanKind.PRODUCER}  # http and exec calls are CLIENT spans
_ERROR_TEXT = 2000  # characters of an error kept in an event


def _sampler(settings: TracingSettings) -> sampling.Sampler | None:
    """The file's sampler (None: the SDK's own, from OTEL_TRACES_SAMPLER or parent-based on)."""
    name, ratio = settings.sampler, settings.sampler_arg if settings.sampler_arg is not None else 1.0
    if name is None:
        return None
    chosen: dict[str, sampling.Sampler] = {
        "always_on": sampling.ALWAYS_ON,
        "always_off": sampling.ALWAYS_OFF,
        "traceidratio": sampling.TraceIdRatioBased(ratio),
        "parentbased_always_on": sampling.ParentBased(sampling.ALWAYS_ON),
        "parentbased_always_off": sampling.ParentBased(sampling.ALWAYS_OFF),
        "parentbased_traceidratio": sampling.ParentBasedTraceIdRatio(ratio),
    }
    return chosen[name]


def _extract(traceparent: str | None, tracestate: str | None = None) -> Context | None:
    """The context a stored or received traceparent names, or None (absent, invalid)."""
    if not traceparent or not valid_traceparent(traceparent):
        return None
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    return _PROPAGATOR.extract(carrier)


def _carrier(span: trace.Span) -> dict[str, str]:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def _attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    return {f"sagactl.{k}": v for k, v in values.items() if v is not None}


class OtelSpan(Span):
    """A recording (or sampled-out) OpenTelemetry span behind sagactl's Span."""

    __slots__ = ("_ended", "_span", "carrier", "span_id")

    def __init__(self, span: trace.Span) -> None:
        self._span = span
        self._ended = False
        self.carrier = _carrier(span)
        self.span_id = format(span.get_span_context().span_id, "016x")

    def set(self, **attributes: Any) -> None:
        self._span.set_attributes(_attributes(attributes))

    def error(self, message: str) -> None:
        text = mask_secrets(message)[:_ERROR_TEXT]
        self._span.add_event("error", {"error.message": text})
        self._span.set_status(Status(StatusCode.ERROR, text[:200]))

    def link(self, traceparent: str | None, tracestate: str | None = None, **attributes: Any) -> None:
        found = _extract(traceparent, tracestate)
        if found is not None:
            self._span.add_link(trace.get_current_span(found).get_span_context(), _attributes(attributes))

    def end(self, outcome: str | None = None) -> None:
        if self._ended:
            return
        self._ended = True
        if outcome is not None:
            self._span.set_attribute("sagactl.outcome", outcome)
        self._span.end()


class OtelTracing(Tracing):
    """Tracing on: one TracerProvider for the process, its spans exported as settings say."""

    enabled = True

    def __init__(self, settings: TracingSettings, env: Mapping[str, str], *, traceparent: str | None = None) -> None:
        resource = Resource.create({"service.version": __version__, **settings.resource})
        resource = resource.merge(OTELResourceDetector().detect())  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES win
        self.provider = TracerProvider(resource=resource, sampler=_sampler(settings), shutdown_on_exit=False)
        self.export = Export(self.provider, settings)
        self.tracer = self.provider.get_tracer("sagactl", __version__)
        given = {"traceparent": traceparent} if traceparent else env_carrier(env)
        self.parent = _extract(given.get("traceparent"), given.get("tracestate"))
        if given and self.parent is None:
            shown = mask_secrets(given.get("traceparent", ""))[:80]
            log.warning("TRACEPARENT '%s' is not a W3C traceparent: sagas start traces of their own", shown)

    def _current(self) -> Context | None:
        """The parent of a new root: the operator action in progress, else the caller's."""
        if trace.get_current_span().get_span_context().is_valid:
            return None  # the current context (start_span's default)
        return self.parent

    def saga(self, saga: SagaRecord) -> Span:
        span = self.tracer.start_span(
            f"saga {saga.saga_type}",
            context=self._current(),
            attributes=_attributes({"saga_id": saga.saga_id, "saga_type": saga.saga_type}),
        )
        traced = OtelSpan(span)
        saga.traceparent = traced.carrier.get("traceparent")
        saga.tracestate = traced.carrier.get("tracestate")
        return traced

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
        parent = _extract(saga.traceparent, saga.tracestate)
        links = []
        if previous and parent is not None:
            root = trace.get_current_span(parent).get_span_context()
            before = trace.SpanContext(root.trace_id, int(previous, 16), True, root.trace_flags, root.trace_state)
            links.append(Link(before, _attributes({"link": why or "previous_attempt"})))
        values = {
            "saga_id": saga.saga_id,
            "saga_type": saga.saga_type,
            "step": step,
            "phase": phase.value,
            "attempt": attempt,
            "idempotency_key": f"{saga.saga_id}:{step}:{phase.value}",
            "endpoint": endpoint,
            "transport": transport,
        }
        name = f"{step} {phase.value}" + (" reply" if received else "")
        kind = SpanKind.CONSUMER if received else _KINDS.get(transport, SpanKind.CLIENT)
        span = self.tracer.start_span(
            name, context=parent or self._current(), kind=kind, attributes=_attributes(values), links=links
        )
        return OtelSpan(span)

    @contextmanager
    def action(self, name: str, **attributes: Any) -> Iterator[Span]:
        values = {k: mask_secrets(v) if isinstance(v, str) else v for k, v in attributes.items()}
        span = self.tracer.start_span(f"sagactl {name}", context=self._current(), attributes=_attributes(values))
        traced = OtelSpan(span)
        with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
            try:
                yield traced
            except BaseException as exc:
                traced.error(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
                traced.end("error")
                raise
        traced.end()

    def close(self, timeout: float = 1.0) -> None:
        self.export.close(timeout)


__all__ = ["Carrier", "OtelTracing"]
