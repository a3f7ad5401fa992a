"""The spans of a driver's attempts (tracing on; off, every call here costs next to nothing):
which span an attempt gets, which earlier attempt it links to, and what its outcome is called.

An attempt's span is a child of the saga's stored root, whichever process sends it; it links
to the attempt before it on the same step (``record.trace_span``, kept in the saga log, so the
link survives a crash): ``retry`` after a failed attempt, ``resume`` when a new driver takes
up an attempt that was in flight (a crash, a worker's takeover, a resume), ``compensates``
from a step's first compensation to its last action. A saga recorded while tracing was off has
no stored root: each driver's pass over it gets a root of its own (Driver.drive).
"""

from __future__ import annotations

from sagactl.definitions.model import SagaDefinition, StepDef
from sagactl.models import Phase, SagaRecord, StepRecord
from sagactl.tracing import Span, Tracing
from sagactl.transports.base import Reply, Status


def attempt_span(
    tracer: Tracing,
    saga: SagaRecord,
    definition: SagaDefinition,
    step: StepDef,
    record: StepRecord,
    phase: Phase,
    *,
    after: str | None = None,
    received: bool = False,
) -> Span:
    """The span of the attempt of ``phase`` just counted on ``record`` (or, ``received``, of
    applying the answer to it that came on a reply queue); its ID is kept on the record."""
    attempt = record.attempts if phase is Phase.ACTION else record.compensation_attempts
    if received:
        why = "answers"
    elif phase is Phase.COMPENSATION and attempt == 1:
        why = "compensates"
    else:
        why = "retry" if after is not None else "resume"
    span = tracer.attempt(
        saga,
        step.name,
        phase,
        attempt,
        endpoint=step.endpoint,
        transport=definition.endpoints[step.endpoint].type,
        previous=record.trace_span,
        why=why,
        received=received,
    )
    if span.span_id is not None and not received:
        record.trace_span = span.span_id
    return span


def outcome(reply: Reply | None) -> str:
    """What became of an attempt, as its span says it (``sent``: over SQS, the answer comes
    on the reply queue)."""
    if reply is None:
        return "sent"
    if reply.status is Status.OK:
        return "already_undone" if reply.already_undone else "succeeded"
    if not reply.delivered:
        return "not_delivered"
    if reply.status is Status.REFUSED:
        return "refused"
    return "timed_out" if reply.timed_out else "transient_error"


def finish(span: Span, reply: Reply | None) -> None:
    """End an attempt's span with its outcome; an error (already masked) as its event."""
    if reply is not None and reply.error:
        span.error(reply.error)
    span.end(outcome(reply))
