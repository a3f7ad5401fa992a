"""The JSON contract of saga records (golden: fields are added, never renamed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from sagactl.models import (
    Outcome,
    Phase,
    SagaRecord,
    SagaState,
    StepRecord,
    StepStatus,
    Transition,
    Waiting,
    idempotency_key,
    iso,
    parse_iso,
)

T0 = datetime(2026, 11, 26, 8, 0, 0, 123456, tzinfo=UTC)


def test_saga_json_golden() -> None:
    step = StepRecord(
        name="charge",
        status=StepStatus.FAILED,
        attempts=3,
        error="HTTP 503",
        started_at=T0,
        finished_at=T0,
        outcome=Outcome.UNKNOWN,
    )
    saga = SagaRecord(
        saga_id="s-1",
        saga_type="Order",
        state=SagaState.COMPENSATING,
        data={"a": 1},
        steps=[step],
        definition={},
        created_at=T0,
        updated_at=T0,
        current_step=0,
        deadline_at=T0,
        last_error="charge: HTTP 503",
        transitions=[Transition("s-1", "charge", "executing", "failed", T0, {"attempt": 3}, id=7)],
    )
    assert saga.to_dict() == {
        "saga_id": "s-1",
        "saga_type": "Order",
        "state": "compensating",
        "current_step": 0,
        "current_step_name": "charge",
        "data": {"a": 1},
        "created_at": "2026-11-26T08:00:00.123456Z",
        "updated_at": "2026-11-26T08:00:00.123456Z",
        "deadline_at": "2026-11-26T08:00:00.123456Z",
        "last_error": "charge: HTTP 503",
        "lease_owner": None,
        "lease_expires_at": None,
        "wake_at": None,
        "rerun_of": None,
        "rerun_as": None,
        "trace_id": None,
        "steps": [
            {
                "name": "charge",
                "status": "failed",
                "attempts": 3,
                "result": None,
                "error": "HTTP 503",
                "started_at": "2026-11-26T08:00:00.123456Z",
                "finished_at": "2026-11-26T08:00:00.123456Z",
                "outcome": "unknown",
                "compensation_attempts": 0,
                "compensated_at": None,
                "compensation_error": None,
                "waiting": None,
            }
        ],
        "transitions": [
            {
                "id": 7,
                "saga_id": "s-1",
                "step_name": "charge",
                "old_state": "executing",
                "new_state": "failed",
                "detail": {"attempt": 3},
                "at": "2026-11-26T08:00:00.123456Z",
            }
        ],
    }
    assert StepRecord.from_dict(step.to_dict()) == step


def test_a_step_written_before_compensation_error_existed_reads_its_compensation_error_apart() -> None:
    """Before compensation_error, a compensation's error overwrote ``error``: a step stored
    compensating after compensation attempts had only its compensation's error there."""
    legacy = {"name": "charge", "status": "compensating", "error": "HTTP 503", "compensation_attempts": 4}
    step = StepRecord.from_dict(legacy)
    assert (step.error, step.compensation_error) == (None, "HTTP 503")
    for kept in ({**legacy, "compensation_error": None}, {**legacy, "compensation_attempts": 0}):
        assert (StepRecord.from_dict(kept).error, StepRecord.from_dict(kept).compensation_error) == ("HTTP 503", None)
    both = StepRecord(name="x", status=StepStatus.COMPENSATING, error="timeout", compensation_error="HTTP 500")
    assert StepRecord.from_dict(both.to_dict()) == both


def test_what_needs_compensation() -> None:
    def rec(status: StepStatus, outcome: Outcome | None = None) -> StepRecord:
        return StepRecord(name="x", status=status, outcome=outcome)

    assert rec(StepStatus.COMPLETED).needs_compensation()
    assert rec(StepStatus.EXECUTING).needs_compensation()
    assert rec(StepStatus.COMPENSATING).needs_compensation()
    assert rec(StepStatus.FAILED, Outcome.UNKNOWN).needs_compensation()
    assert not rec(StepStatus.FAILED, Outcome.REFUSED).needs_compensation()
    assert not rec(StepStatus.FAILED, Outcome.NOT_DELIVERED).needs_compensation()
    assert not rec(StepStatus.PENDING).needs_compensation()
    assert not rec(StepStatus.COMPENSATED).needs_compensation()


def test_idempotency_key_and_times() -> None:
    assert idempotency_key("s-1", "charge", Phase.COMPENSATION) == "s-1:charge:compensation"
    assert parse_iso(iso(T0)) == T0
    assert parse_iso("2026-11-26T08:00:00") == datetime(2026, 11, 26, 8, tzinfo=UTC)
    assert SagaState.FAILED.terminal and not SagaState.COMPENSATING.terminal


_TIMES = st.one_of(st.none(), st.datetimes(min_value=datetime(2000, 1, 1), timezones=st.just(UTC)))
_TEXT = st.one_of(st.none(), st.text(max_size=20))
STEP_RECORDS = st.builds(
    StepRecord,
    name=st.text(min_size=1, max_size=10),
    status=st.sampled_from(list(StepStatus)),
    attempts=st.integers(0, 5),
    result=st.one_of(st.none(), st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)),
    error=_TEXT,
    started_at=_TIMES,
    finished_at=_TIMES,
    outcome=st.one_of(st.none(), st.sampled_from(list(Outcome))),
    compensation_attempts=st.integers(0, 5),
    compensated_at=_TIMES,
    compensation_error=_TEXT,
    waiting=st.one_of(
        st.none(),
        st.builds(
            Waiting,
            st.sampled_from(list(Phase)),
            st.sampled_from(["reply", "retry"]),
            st.integers(1, 5),
            st.datetimes(min_value=datetime(2000, 1, 1), timezones=st.just(UTC)),
            st.one_of(st.none(), st.sampled_from(["timeout", "error"])),
        ),
    ),
)


@given(STEP_RECORDS)
def test_a_stored_step_record_reads_back_as_it_was(record: StepRecord) -> None:
    """saga_log.steps keeps set fields only (to_stored); nothing is lost or misread as legacy."""
    stored = record.to_stored()
    assert {"name", "status", "attempts", "result", "error", "started_at", "finished_at"} <= set(stored)
    assert StepRecord.from_dict(json.loads(json.dumps(stored))) == StepRecord.from_dict(record.to_dict())
    assert StepRecord.from_dict(stored).to_dict() == record.to_dict()


def test_a_pending_step_is_stored_with_the_design_fields_only() -> None:
    assert StepRecord(name="a").to_stored() == {
        "name": "a", "status": "pending", "attempts": 0, "result": None, "error": None,
        "started_at": None, "finished_at": None,
    }  # fmt: skip


def test_counts_read_as_english() -> None:
    from sagactl.models import counted

    assert [counted(n, "step") for n in (0, 1, 2)] == ["0 steps", "1 step", "2 steps"]
    assert counted(1, "batch", "batches") == "1 batch" and counted(3, "batch", "batches") == "3 batches"


ZONES = st.timezones() | st.just(UTC) | st.none()


@given(st.datetimes(min_value=datetime(1001, 1, 1), max_value=datetime(9998, 12, 31), timezones=ZONES))
def test_iso_is_utc_microseconds_and_z(when: datetime) -> None:
    """One shape whatever the zone (a naive time is local), sortable as text."""
    text = iso(when)
    assert text == when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert parse_iso(text) == when.astimezone(UTC)
