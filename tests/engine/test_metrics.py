"""The worker's metrics are the ones docs/workers.md documents, by name and type."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sagactl.engine.metrics import TRACKED, WorkerMetrics
from sagactl.models import SagaRecord, SagaState, StepRecord, StepStatus, Transition

T0 = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)

WORKERS = Path(__file__).parents[2] / "docs" / "workers.md"


def test_the_docs_document_every_worker_metric() -> None:
    section = WORKERS.read_text().split("# Workers", 1)[1].split("\n## Walkthrough", 1)[0]
    documented = dict(re.findall(r"^\| `(sagactl_worker_\w+)` \| (\w+) \|", section, re.MULTILINE))
    exposed = {
        family.name + ("_total" if family.type == "counter" else ""): family.type
        for family in WorkerMetrics().registry.collect()
    }
    assert documented == exposed


def _saga(started_at: datetime | None = None) -> SagaRecord:
    step = StepRecord(name="charge", status=StepStatus.COMPLETED, attempts=1, started_at=started_at)
    return SagaRecord(
        saga_id="s-1",
        saga_type="T",
        state=SagaState.PENDING,
        data={},
        steps=[step],
        definition={},
        created_at=T0,
        updated_at=T0,
    )


def _seconds(metrics: WorkerMetrics, phase: str) -> tuple[float, float]:
    """(count, sum) of the step latency histogram for ``phase``."""
    found = {s.name: s.value for f in metrics.registry.collect() for s in f.samples if s.labels.get("phase") == phase}
    return found["sagactl_worker_step_seconds_count"], found["sagactl_worker_step_seconds_sum"]


def test_an_action_started_by_another_worker_is_timed_from_its_recorded_start() -> None:
    """An SQS step is sent by one worker and its reply applied by another: the one that sees it
    end times it from the start the saga log holds."""
    metrics = WorkerMetrics()
    metrics.observe(_saga(T0), Transition("s-1", "charge", "executing", "completed", T0 + timedelta(seconds=2.5)))
    assert _seconds(metrics, "action") == (1.0, 2.5)


def test_compensations_that_end_elsewhere_are_forgotten_past_a_bound() -> None:
    metrics = WorkerMetrics()
    for n in range(TRACKED + 50):
        saga = _saga()
        saga.saga_id = f"s-{n}"
        metrics.observe(saga, Transition(saga.saga_id, "charge", "completed", "compensating", T0))
    assert len(metrics._started) == TRACKED  # the oldest 50 dropped
    last = _saga()
    last.saga_id = f"s-{TRACKED + 49}"
    metrics.observe(last, Transition(last.saga_id, "charge", "compensating", "compensated", T0 + timedelta(seconds=1)))
    assert _seconds(metrics, "compensation") == (1.0, 1.0)
