"""One call to a participant, apart from the driver's bookkeeping: the request it is sent
(placeholders resolved, the seed protocol's default body, the idempotency key) and its answer
as the saga log can keep it (error text storable on every store, a result it cannot hold named).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sagactl.codec import storable, storable_text, unreadable
from sagactl.definition import StepDef
from sagactl.models import Phase, SagaRecord, StepRecord, idempotency_key
from sagactl.placeholders import Context, resolve
from sagactl.transports.base import Reply, Request, Status, Transport


def default_body(saga: SagaRecord, step: str, phase: Phase, original_result: Any) -> dict[str, Any]:
    """The seed protocol's shape: ``{saga_id, step_name, [original_result], ...input}``."""
    body: dict[str, Any] = {"saga_id": saga.saga_id, "step_name": step}
    if phase is Phase.COMPENSATION:
        body["original_result"] = original_result
    if isinstance(saga.data, dict):
        body.update({k: v for k, v in saga.data.items() if k not in body})
    elif saga.data is not None:
        body["input"] = saga.data
    return body


def build_request(
    saga: SagaRecord, step: StepDef, record: StepRecord, phase: Phase, timeout: float, env: Mapping[str, str]
) -> Request:
    """``phase`` of ``step`` as sent, placeholders resolved against the saga (MissingValueError
    when one has no value)."""
    spec = step.action if phase is Phase.ACTION else (step.compensation or {})
    results = {r.name: r.result for r in saga.steps if r.result is not None}
    ctx = Context(saga_id=saga.saga_id, input=saga.data, results=results, env=env)
    resolved = resolve({k: v for k, v in spec.items() if k != "body"}, ctx)
    body = resolve(spec["body"], ctx) if "body" in spec else default_body(saga, step.name, phase, record.result)
    return Request(
        saga_id=saga.saga_id,
        step_name=step.name,
        phase=phase,
        idempotency_key=idempotency_key(saga.saga_id, step.name, phase),
        spec=resolved,
        body=body,
        timeout=timeout,
    )


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A successful answer whose JSON a transport could not decode (nested deeper, or with a
    longer number, than Python reads): transports decode only the body of a success."""

    problem: str


def send(transport: Transport, request: Request) -> Reply:
    """``transport.call(request)``; a success whose JSON Python cannot read is still a success,
    with an ``Unreadable`` result (the participant acted)."""
    try:
        return transport.call(request)
    except (RecursionError, ValueError) as exc:
        problem = unreadable(exc)
        if problem is None:
            raise
        return Reply(Status.OK, result=Unreadable(f"{problem} in its JSON"))


def kept(reply: Reply) -> Reply:
    """``reply`` with its error text (foreign: NUL characters, lone surrogates) as every store
    can hold it."""
    return replace(reply, error=storable_text(reply.error)) if reply.error else reply


def result_problem(reply: Reply) -> str | None:
    """Why the saga log cannot keep a successful reply's result (codec.storable), or None."""
    result = reply.result
    return result.problem if isinstance(result, Unreadable) else storable(result, "result")
