"""Completion reads on both stores: saga IDs by prefix (exact, ordered, bounded; LIKE's
wildcards are plain characters), a saga's step names."""

from __future__ import annotations

from datetime import UTC, datetime

from sagactl.models import SagaRecord, SagaState, StepRecord, Transition
from sagactl.store import Store
from sagactl.store.complete import ids_with_prefix, step_names

T = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)
IDS = ["a%1", "a_2", "ab-1", "ab-2", "abc", "b", "zürich-1", "zürich-2", "z\U0010fffd"]


def test_ids_by_prefix_and_step_names(store: Store) -> None:
    for saga_id in IDS:
        saga = SagaRecord(saga_id, "T", SagaState.PENDING, {}, [StepRecord("x"), StepRecord("y")], {}, T, T)
        store.create(saga, [Transition(saga_id, None, None, "started", T)])
    assert ids_with_prefix(store, "ab", 10) == ["ab-1", "ab-2", "abc"]  # type: ignore[arg-type]
    assert ids_with_prefix(store, "a%", 10) == ["a%1"]  # type: ignore[arg-type]
    assert ids_with_prefix(store, "a_", 10) == ["a_2"]  # type: ignore[arg-type]
    assert ids_with_prefix(store, "zür", 10) == ["zürich-1", "zürich-2"]  # type: ignore[arg-type]
    assert ids_with_prefix(store, "", 2) == sorted(ids_with_prefix(store, "", 20))[:2]  # type: ignore[arg-type]
    assert ids_with_prefix(store, "ab", 1) == ["ab-1"]  # type: ignore[arg-type]
    assert ids_with_prefix(store, "q", 10) == []  # type: ignore[arg-type]
    assert step_names(store, "abc") == ["x", "y"]  # type: ignore[arg-type]
    assert step_names(store, "nope") == []  # type: ignore[arg-type]
