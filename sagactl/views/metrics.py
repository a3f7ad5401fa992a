"""The saga log's metrics in Prometheus's model: one set of families built from a LogSnapshot,
served by a worker's ``/metrics`` and printed by ``stats -o prometheus`` alike (the names are
a contract: docs/monitoring.md, and the shipped alert rules use them)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sagactl.tools.monitoring import LogSnapshot


def log_families(snapshot: LogSnapshot, *, log_up: bool | None = None) -> Iterator[Any]:
    """Gauge families of ``snapshot`` (prometheus_client metric families). ``log_up``: add
    sagactl_log_up (a worker says whether its last read of the log worked)."""
    from prometheus_client.core import GaugeMetricFamily

    stats = snapshot.stats
    sagas = GaugeMetricFamily(
        "sagactl_sagas", "Sagas in the saga log by type and state.", labels=["saga_type", "state"]
    )
    stuck = GaugeMetricFamily(
        "sagactl_sagas_stuck",
        "Stuck sagas (as sagactl list --stuck finds them) by type and state.",
        labels=["saga_type", "state"],
    )
    oldest = GaugeMetricFamily(
        "sagactl_oldest_active_saga_age_seconds",
        "Age of the oldest non-terminal saga of each type.",
        labels=["saga_type"],
    )
    exhausted = GaugeMetricFamily(
        "sagactl_compensations_exhausted",
        "Compensating sagas nothing drives until an operator acts: a compensation's retries ran out, or it was"
        " refused (resume, resolve --step or abort them).",
        labels=["saga_type"],
    )
    ages: dict[str, float] = {}
    waiting: dict[str, int] = {}
    for row in stats.rows:
        sagas.add_metric([row.saga_type, row.state.value], row.count)
        if not row.state.terminal:
            stuck.add_metric([row.saga_type, row.state.value], row.stuck)
        age = stats.age_of(row)
        if age is not None:
            ages[row.saga_type] = max(age, ages.get(row.saga_type, 0.0))
        if row.state.value == "compensating" and row.exhausted is not None:
            waiting[row.saga_type] = row.exhausted
    for saga_type, age in ages.items():
        oldest.add_metric([saga_type], age)
    for saga_type, count in waiting.items():
        exhausted.add_metric([saga_type], count)
    yield from (sagas, stuck, oldest)
    if waiting:
        yield exhausted
    if snapshot.budgets:
        budget = GaugeMetricFamily(
            "sagactl_saga_budget_seconds",
            "The longest a saga of this type can take when every attempt of every step and compensation runs to"
            " its timeout (from the definition its newest active saga runs with).",
            labels=["saga_type"],
        )
        for saga_type, seconds in snapshot.budgets.items():
            budget.add_metric([saga_type], seconds)
        yield budget
    if snapshot.steps:
        timeout = GaugeMetricFamily(
            "sagactl_step_timeout_seconds",
            "A step's per-attempt timeout, by saga type, step and phase (action or compensation).",
            labels=["saga_type", "step", "phase"],
        )
        for step in snapshot.steps:
            timeout.add_metric([step.saga_type, step.step, step.phase], step.timeout)
        yield timeout
    if snapshot.dlqs:
        yield from _dlq_families(snapshot)
    if log_up is not None:
        up = GaugeMetricFamily("sagactl_log_up", "1 when the last read of the saga log for these metrics worked.")
        up.add_metric([], 1 if log_up else 0)
        yield up


def _dlq_families(snapshot: LogSnapshot) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    up = GaugeMetricFamily("sagactl_dlq_up", "1 when the dead-letter queue could be read.", labels=["queue"])
    messages = GaugeMetricFamily(
        "sagactl_dlq_messages", "Approximate visible messages in the dead-letter queue.", labels=["queue"]
    )
    in_flight = GaugeMetricFamily(
        "sagactl_dlq_messages_in_flight",
        "Messages of the dead-letter queue received and hidden now (a redrive or a listing in progress).",
        labels=["queue"],
    )
    oldest = GaugeMetricFamily(
        "sagactl_dlq_oldest_message_age_seconds",
        "Seconds since the oldest message of a sample of the dead-letter queue was first sent (a lower bound).",
        labels=["queue"],
    )
    for dlq in snapshot.dlqs:
        up.add_metric([dlq.queue], 0 if dlq.error else 1)
        if dlq.messages is not None:
            messages.add_metric([dlq.queue], dlq.messages)
        if dlq.in_flight is not None:
            in_flight.add_metric([dlq.queue], dlq.in_flight)
        if dlq.messages is not None:
            oldest.add_metric([dlq.queue], dlq.oldest_age or 0.0)
    yield from (up, messages, in_flight, oldest)


def log_exposition(snapshot: LogSnapshot) -> str:
    """``snapshot`` as Prometheus text (the node_exporter textfile collector reads it)."""
    from prometheus_client import CollectorRegistry, generate_latest

    class Once:
        def collect(self) -> Iterator[Any]:
            return log_families(snapshot)

    registry = CollectorRegistry()
    registry.register(Once())
    return generate_latest(registry).decode("utf-8")
