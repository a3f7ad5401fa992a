"""The saga's trace context is kept in the saga log with the saga (schema v10: traceparent,
tracestate), the same on SQLite and PostgreSQL; a step's last attempt span rides in its
record, so the next attempt (in any process) links to it."""

from __future__ import annotations

from sagactl.models import StepRecord
from sagactl.store import Store
from tests.support.sagas import saga

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_the_trace_context_is_stored_with_the_saga(store: Store) -> None:
    traced = saga("t-1")
    traced.traceparent, traced.tracestate = TRACEPARENT, "vendor=abc,other=1"
    traced.steps[0].trace_span = "b7ad6b7169203331"
    store.create(traced, [])
    store.create(saga("t-2"), [])
    found = store.get("t-1")
    assert found is not None
    assert (found.traceparent, found.tracestate, found.trace_id) == (
        TRACEPARENT,
        "vendor=abc,other=1",
        "4bf92f3577b34da6a3ce929d0e0e4736",
    )
    assert found.steps[0].trace_span == "b7ad6b7169203331"
    assert found.to_dict()["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    untraced = store.get("t-2")
    assert untraced is not None and (untraced.traceparent, untraced.trace_id) == (None, None)
    assert "trace_span" not in untraced.steps[0].to_stored()  # nothing stored with tracing off


def test_a_step_record_keeps_its_last_attempt_span() -> None:
    record = StepRecord(name="charge", trace_span="00f067aa0ba902b7")
    assert StepRecord.from_dict(record.to_stored()).trace_span == "00f067aa0ba902b7"
    assert "trace_span" not in record.to_dict()  # the JSON of show stays as it was
