"""What a saga log tells Prometheus: the counts ``stats`` shows, the sagas that wait for an
operator, each saga type's time budget and each step's timeout (from the definition its
newest active saga runs with), and the depth of the dead-letter queues sagactl.yaml names.

One snapshot feeds both a worker's ``/metrics`` and ``stats -o prometheus``, so one set of
alert rules serves both. The metric names are a contract (docs/monitoring.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sagactl.definitions.model import SagaDefinition, from_snapshot, retry_budget
from sagactl.dlq.peek import DlqDepth
from sagactl.tools.inspect import Stats


@dataclass(frozen=True, slots=True)
class StepBudget:
    """One step's action or compensation: its per-attempt timeout and its whole retry budget."""

    saga_type: str
    step: str
    phase: str  # action | compensation
    timeout: float
    budget: float


@dataclass(slots=True)
class LogSnapshot:
    """The log's metrics at one moment. ``budgets``: per saga type, the longest its sagas can
    take when every attempt of every step and compensation runs to its timeout (None for a
    type whose definition is not known); ``dlqs``: one entry per configured queue."""

    stats: Stats
    budgets: dict[str, float] = field(default_factory=dict)
    steps: list[StepBudget] = field(default_factory=list)
    dlqs: list[DlqDepth] = field(default_factory=list)


def step_budgets(saga_type: str, definition: SagaDefinition) -> list[StepBudget]:
    """Every action and compensation of ``definition`` with its timeout and retry budget."""
    found = []
    for step in definition.steps:
        found.append(StepBudget(saga_type, step.name, "action", step.timeout, retry_budget(step.retry, step.timeout)))
        if step.compensation is not None:
            timeout = step.compensation_timeout
            found.append(
                StepBudget(
                    saga_type, step.name, "compensation", timeout, retry_budget(step.compensation_retry, timeout)
                )
            )
    return found


def budgets(snapshots: Mapping[str, dict[str, Any]]) -> tuple[dict[str, float], list[StepBudget]]:
    """Per saga type its whole budget (every step, then every compensation, each to the end of
    its retries), and every step's; a snapshot that no longer builds is left out."""
    per_type: dict[str, float] = {}
    steps: list[StepBudget] = []
    for saga_type, snapshot in sorted(snapshots.items()):
        try:
            definition = from_snapshot(snapshot)
        except Exception:  # a snapshot written by another version: no budget rather than no metrics
            continue
        found = step_budgets(saga_type, definition)
        per_type[saga_type] = sum(s.budget for s in found)
        steps.extend(found)
    return per_type, steps
