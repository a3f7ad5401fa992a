"""Saga rows for inspection tests, written straight through the Store protocol with explicit
times (T0 + seconds), so list/stuck/stats tests control the clock without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sagactl.definitions.validation import check_text
from sagactl.models import SagaRecord, SagaState, StepRecord, StepStatus, Transition
from sagactl.store import Store

T0 = datetime(2026, 11, 26, 8, 0, 0, tzinfo=UTC)

# reserve: 2m per attempt, 5m per compensation; charge: the 30s default; notify: 10m.
DEFINITION_YAML = """
saga: Order
endpoints:
  svc: {type: exec, command: [python3, svc.py]}
defaults:
  timeout: 30s
steps:
  - name: reserve
    endpoint: svc
    timeout: 2m
    compensation_timeout: 5m
    action: {args: [reserve]}
    compensation: {args: [release]}
  - name: charge
    endpoint: svc
    action: {args: [charge]}
    compensation: {args: [refund]}
  - name: notify
    endpoint: svc
    timeout: 10m
    action: {args: [notify]}
"""


def snapshot(saga_type: str = "Order") -> dict[str, Any]:
    report = check_text(DEFINITION_YAML.replace("saga: Order", f"saga: {saga_type}"), "order.yaml", "/tmp")
    assert not report.errors, report.problems
    return report.definitions[0].snapshot()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def saga(
    saga_id: str,
    *,
    state: SagaState = SagaState.PENDING,
    saga_type: str = "Order",
    step: int | None = 0,
    created: float = 0,
    updated: float | None = None,
    deadline: float | None = None,
    error: str | None = None,
    definition: dict[str, Any] | None = None,
) -> SagaRecord:
    """A saga as the engine would leave it: steps before ``step`` done, ``step`` in flight."""
    names = ["reserve", "charge", "notify"]
    steps = []
    for index, name in enumerate(names):
        status = StepStatus.PENDING
        if step is not None and index < step:
            status = StepStatus.COMPLETED
        if step is not None and index == step:
            status = StepStatus.COMPENSATING if state is SagaState.COMPENSATING else StepStatus.EXECUTING
        steps.append(
            StepRecord(name=name, status=status, attempts=1 if status is not StepStatus.PENDING else 0, error=None)
        )
    if error and step is not None:
        if state is SagaState.COMPENSATING:
            steps[step].compensation_error = error
            steps[step].compensation_attempts = 4
        else:
            steps[step].error = error
    return SagaRecord(
        saga_id=saga_id,
        saga_type=saga_type,
        state=state,
        data={"order_id": saga_id},
        steps=steps,
        definition=snapshot(saga_type) if definition is None else definition,
        created_at=at(created),
        updated_at=at(created if updated is None else updated),
        current_step=step,
        deadline_at=None if deadline is None else at(deadline),
        last_error=f"{names[step]}: {error}" if error and step is not None else None,
    )


def add(store: Store, *sagas: SagaRecord) -> None:
    for record in sagas:
        store.create(record, [Transition(record.saga_id, None, None, record.state.value, record.created_at)])
