"""Moving an unfinished saga to a new version of its definition (``resume ID --definition``).

A saga can move when the steps it has already touched (completed, in flight, outcome unknown,
failed, compensating or compensated: every step that is not pending) keep their names and
their order in the new definition: those records stay as they are. Steps it has not reached may
be added, removed or changed, and any step's endpoint, timeouts, retries and bodies may change.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sagactl.definitions.model import SagaDefinition
from sagactl.models import SagaRecord, StepRecord, StepStatus, counted


def touched(saga: SagaRecord) -> list[StepRecord]:
    """The steps the saga has touched, in order: every step up to the last one not pending."""
    last = max((i for i, s in enumerate(saga.steps) if s.status is not StepStatus.PENDING), default=-1)
    return saga.steps[: last + 1]


def differences(saga: SagaRecord, new: SagaDefinition) -> list[str]:
    """What keeps ``saga`` from moving to ``new``: one line per touched step that the new
    definition renames, removes or reorders (empty: it can move)."""
    names = [step.name for step in new.steps]
    found = []
    for index, record in enumerate(touched(saga)):
        what = f"step {index + 1} '{record.name}' ({record.status.value})"
        if index < len(names) and names[index] == record.name:
            continue
        if record.name in names:
            found.append(f"{what} is step {names.index(record.name) + 1} in the new definition (reordered)")
        elif index < len(names):
            instead = f"step {index + 1} is '{names[index]}'"
            found.append(f"{what} is not in the new definition (renamed or removed; {instead})")
        else:
            found.append(f"{what} is not in the new definition (removed; it has {counted(len(names), 'step')})")
    return found


def moved_steps(saga: SagaRecord, new: SagaDefinition) -> list[StepRecord]:
    """The saga's step records under ``new``: the touched ones as they are, then a fresh
    record per later step of the new definition."""
    kept = touched(saga)
    return [*kept, *(StepRecord(name=step.name) for step in new.steps[len(kept) :])]


def digest(snapshot: dict[str, Any]) -> str:
    """A short stable fingerprint of a definition snapshot (what the migration transition records)."""
    text = json.dumps(snapshot, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]
