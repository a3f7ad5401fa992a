"""The Store contract: one suite, run against SQLite and PostgreSQL alike (``store`` fixture).

Times are explicit (no clock reads, no sleeps): leases and stuck queries compare with the
``now`` the caller passes, exactly as the engine does with its injected clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sagactl.models import (
    Outcome,
    SagaRecord,
    SagaState,
    StepRecord,
    StepStatus,
    Transition,
)
from sagactl.store import Store, open_store
from sagactl.store.base import (
    ActiveCount,
    LeaseHolder,
    LeaseLostError,
    SagaExistsError,
    SagaQuery,
    StateCount,
)

# The schema version db init reaches: the last migration, schema/*/006_reruns.sql (after 005). A new
# migration bumps it here on purpose.
SCHEMA_VERSION = 10
T0 = datetime(2026, 11, 26, 8, 0, 0, 123456, tzinfo=UTC)
ME = "host-a:100:aaaa"
OTHER = "host-b:200:bbbb"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_saga(
    saga_id: str = "s-1",
    *,
    saga_type: str = "Order",
    state: SagaState = SagaState.STARTED,
    created: float = 0,
    updated: float | None = None,
    deadline: float | None = None,
    owner: str | None = ME,
    lease_for: float = 30,
    current_step: int | None = 1,
    data: Any = None,
) -> SagaRecord:
    return SagaRecord(
        saga_id=saga_id,
        saga_type=saga_type,
        state=state,
        data={"order_id": 7, "items": ["a", "b"], "note": "zürich ✓"} if data is None else data,
        steps=[
            StepRecord(name="reserve", status=StepStatus.COMPLETED, attempts=1, result={"r": 1}, started_at=at(0)),
            StepRecord(name="charge", status=StepStatus.EXECUTING, attempts=2, error="HTTP 503"),
        ],
        definition={"document": {"saga": saga_type, "steps": [{"name": "reserve"}, {"name": "charge"}]}},
        created_at=at(created),
        updated_at=at(created if updated is None else updated),
        current_step=current_step,
        deadline_at=None if deadline is None else at(deadline),
        lease_owner=owner,
        lease_expires_at=at(created + lease_for) if owner else None,
        last_error="charge: HTTP 503",
    )


def started(saga: SagaRecord) -> list[Transition]:
    return [Transition(saga.saga_id, None, None, "started", saga.created_at, {"owner": ME})]


def add(store: Store, *sagas: SagaRecord) -> None:
    for saga in sagas:
        store.create(saga, started(saga))


def comparable(saga: SagaRecord) -> dict[str, Any]:
    """Everything a store must give back as it was written."""
    return {
        **saga.to_dict(),
        "definition": saga.definition,
        "lease_owner": saga.lease_owner,
        "lease_expires_at": saga.lease_expires_at,
    }


def ids(sagas: list[SagaRecord]) -> list[str]:
    return [s.saga_id for s in sagas]


# -- create / get / transitions ---------------------------------------------------------------


def test_create_then_get_returns_every_field(store: Store) -> None:
    saga = make_saga(deadline=45)
    saga.steps[1].outcome = Outcome.UNKNOWN
    saga.steps[1].finished_at = at(3.000001)
    add(store, saga)
    loaded = store.get("s-1")
    assert loaded is not None
    assert comparable(loaded) == comparable(saga)
    assert loaded.current_step_name == "charge"
    assert loaded.created_at.tzinfo is not None and loaded.created_at.utcoffset() == timedelta(0)
    assert loaded.transitions == []


def test_get_and_transitions_of_unknown_saga(store: Store) -> None:
    assert store.get("nope") is None
    assert store.transitions("nope") == []


@pytest.mark.parametrize(
    "data", [None, [], {}, 0, 1.5, "text", ["nested", {"deep": [1, None, True]}], {"quote": 'it\'s "x"'}]
)
@pytest.mark.slow
def test_any_json_input_round_trips(store: Store, data: Any) -> None:
    saga = make_saga(data=data)
    saga.data = data
    add(store, saga)
    loaded = store.get("s-1")
    assert loaded is not None and loaded.data == data


def test_duplicate_id_is_refused_and_changes_nothing(store: Store) -> None:
    first = make_saga()
    add(store, first)
    second = make_saga(saga_type="Other", state=SagaState.PENDING)
    with pytest.raises(SagaExistsError, match="s-1 already exists"):
        store.create(second, [Transition("s-1", None, None, "started", at(9), {"dup": True})])
    loaded = store.get("s-1")
    assert loaded is not None and loaded.saga_type == "Order"
    assert [t.detail for t in store.transitions("s-1")] == [{"owner": ME}]
    assert store.counts() == [StateCount("Order", SagaState.STARTED, 1)]


def test_transitions_keep_order_ids_and_details(store: Store) -> None:
    saga = make_saga()
    many = [
        Transition("s-1", f"step{i}", "pending", "executing", at(i), {"attempt": i, "why": ["x", {"y": None}]})
        for i in range(40)
    ]
    store.create(saga, [*started(saga), *many[:20]])
    store.save(saga, many[20:], owner=ME)
    history = store.transitions("s-1")
    assert [(t.step_name, t.detail) for t in history[1:]] == [(t.step_name, t.detail) for t in many]
    assert [t.at for t in history[1:]] == [t.at for t in many]
    assert [t.id for t in history] == sorted(t.id for t in history if t.id is not None)
    assert len({t.id for t in history}) == 41
    assert history[0].old_state is None and history[0].step_name is None


# -- save and the lease -------------------------------------------------------------------------


def test_save_by_the_lease_holder_writes_row_transitions_and_counters(store: Store) -> None:
    saga = make_saga()
    add(store, saga)
    saga.state = SagaState.PENDING
    saga.current_step = 1
    saga.steps[1].status = StepStatus.COMPLETED
    saga.steps[1].result = {"charged": 12.5}
    saga.updated_at = at(5)
    saga.deadline_at = at(35)
    saga.lease_expires_at = at(65)
    store.save(
        saga,
        [Transition("s-1", None, "started", "pending", at(5))],
        owner=ME,
    )
    loaded = store.get("s-1")
    assert loaded is not None and comparable(loaded) == comparable(saga)
    assert [t.new_state for t in store.transitions("s-1")] == ["started", "pending"]
    assert store.counts() == [StateCount("Order", SagaState.PENDING, 1)]


def test_save_without_state_change_keeps_counters(store: Store) -> None:
    saga = make_saga(state=SagaState.PENDING)
    add(store, saga)
    saga.updated_at = at(1)
    store.save(saga, [], owner=ME)
    assert store.counts() == [StateCount("Order", SagaState.PENDING, 1)]


def test_save_by_another_owner_is_refused_and_writes_nothing(store: Store) -> None:
    saga = make_saga()
    add(store, saga)
    before = store.get("s-1")
    intruder = make_saga(state=SagaState.COMPENSATING, owner=OTHER)
    with pytest.raises(LeaseLostError, match="lost the lease on saga s-1"):
        store.save(
            intruder,
            [Transition("s-1", None, "started", "compensating", at(1))],
            owner=OTHER,
        )
    assert store.get("s-1") == before
    assert len(store.transitions("s-1")) == 1
    assert store.counts() == [StateCount("Order", SagaState.STARTED, 1)]


def test_save_of_unknown_saga_is_a_lost_lease(store: Store) -> None:
    with pytest.raises(LeaseLostError):
        store.save(make_saga("ghost"), [], owner=ME)


def test_save_after_release_is_refused(store: Store) -> None:
    saga = make_saga()
    add(store, saga)
    store.release_lease("s-1", ME)
    with pytest.raises(LeaseLostError):
        store.save(saga, [], owner=ME)


def test_acquire_free_own_held_expired_and_unknown(store: Store) -> None:
    add(store, make_saga(owner=None))
    assert store.acquire_lease("s-1", ME, until=at(30), now=at(0)) is None  # free
    assert store.acquire_lease("s-1", ME, until=at(60), now=at(10)) is None  # ours: extended
    held = store.acquire_lease("s-1", OTHER, until=at(90), now=at(59))
    assert held == LeaseHolder(owner=ME, expires_at=at(60))
    assert store.acquire_lease("s-1", OTHER, until=at(120), now=at(61)) is None  # expired
    loaded = store.get("s-1")
    assert loaded is not None and (loaded.lease_owner, loaded.lease_expires_at) == (OTHER, at(120))
    assert store.acquire_lease("ghost", ME, until=at(30), now=at(0)) == LeaseHolder(owner="", expires_at=None)


def test_expired_lease_taken_over_makes_the_old_owner_lose(store: Store) -> None:
    saga = make_saga(lease_for=30)
    add(store, saga)
    assert store.acquire_lease("s-1", OTHER, until=at(100), now=at(31)) is None
    with pytest.raises(LeaseLostError):
        store.save(saga, [], owner=ME)


def test_take_over_only_from_the_named_previous_owner(store: Store) -> None:
    add(store, make_saga())
    assert store.take_over_lease("s-1", OTHER, previous="someone-else", until=at(50)) is False
    assert store.take_over_lease("s-1", OTHER, previous=ME, until=at(50)) is True
    loaded = store.get("s-1")
    assert loaded is not None and (loaded.lease_owner, loaded.lease_expires_at) == (OTHER, at(50))
    assert store.take_over_lease("s-1", "third", previous=ME, until=at(60)) is False


def test_release_only_by_the_owner(store: Store) -> None:
    add(store, make_saga())
    store.release_lease("s-1", OTHER)
    loaded = store.get("s-1")
    assert loaded is not None and loaded.lease_owner == ME
    store.release_lease("s-1", ME)
    loaded = store.get("s-1")
    assert loaded is not None and (loaded.lease_owner, loaded.lease_expires_at) == (None, None)


def test_a_second_connection_sees_the_lease(store: Store, store_dsn: str) -> None:
    add(store, make_saga())
    second = open_store(store_dsn)
    try:
        assert second.acquire_lease("s-1", OTHER, until=at(90), now=at(1)) == LeaseHolder(ME, at(30))
        assert second.acquire_lease("s-1", OTHER, until=at(90), now=at(31)) is None
    finally:
        second.close()
    with pytest.raises(LeaseLostError):
        store.save(make_saga(), [], owner=ME)


# -- counters ---------------------------------------------------------------------------------


def _move(store: Store, saga: SagaRecord, state: SagaState) -> None:
    prev = saga.state
    saga.state = state
    store.save(saga, [Transition(saga.saga_id, None, prev.value, state.value, at(1))], owner=ME)


def test_counts_follow_every_transition_and_hide_zeros(store: Store) -> None:
    a, b, c = make_saga("a"), make_saga("b"), make_saga("c", saga_type="Refund")
    add(store, a, b, c)
    _move(store, a, SagaState.PENDING)
    _move(store, a, SagaState.COMPLETED)
    _move(store, b, SagaState.PENDING)
    _move(store, b, SagaState.COMPENSATING)
    _move(store, b, SagaState.FAILED)
    _move(store, c, SagaState.PENDING)
    assert store.counts() == [
        StateCount("Order", SagaState.COMPLETED, 1),
        StateCount("Order", SagaState.FAILED, 1),
        StateCount("Refund", SagaState.PENDING, 1),
    ]


def test_active_counts_are_exact_with_the_oldest_start(store: Store) -> None:
    add(
        store,
        make_saga("a", created=10),
        make_saga("b", created=5),
        make_saga("c", state=SagaState.COMPENSATING, created=7),
        make_saga("d", state=SagaState.COMPLETED, created=1),
        make_saga("e", saga_type="Refund", state=SagaState.PENDING, created=3),
    )
    assert store.active_counts() == [
        ActiveCount("Order", SagaState.COMPENSATING, 1, at(7), exhausted=0),  # its driver holds it
        ActiveCount("Order", SagaState.STARTED, 2, at(5), exhausted=0),
        ActiveCount("Refund", SagaState.PENDING, 1, at(3), exhausted=0),
    ]


def test_only_compensating_sagas_nothing_drives_wait_for_an_operator(store: Store) -> None:
    """``exhausted`` (sagactl_compensations_exhausted): compensating, no lease, no wake-up: a
    compensation's retries ran out or it was refused. A saga a driver holds, or one put aside
    until its next attempt or a reply, is not counted."""
    waiting = make_saga("waiting", state=SagaState.COMPENSATING, created=1, owner=None)
    held = make_saga("held", state=SagaState.COMPENSATING, created=2)
    parked = make_saga("parked", state=SagaState.COMPENSATING, created=3, owner=None)
    parked.wake_at = at(60)
    add(store, waiting, held, parked, make_saga("pending", state=SagaState.PENDING, created=4, owner=None))
    found = {(c.saga_type, c.state): c.exhausted for c in store.active_counts()}
    assert found == {("Order", SagaState.COMPENSATING): 1, ("Order", SagaState.PENDING): 0}


# -- list_sagas -------------------------------------------------------------------------------


@pytest.fixture
def population(store: Store) -> Store:
    """Sagas in every state, two types, with and without deadlines (T0 + seconds)."""
    add(
        store,
        make_saga("done-old", state=SagaState.COMPLETED, created=0, updated=1, deadline=2),
        make_saga("failed", state=SagaState.FAILED, created=1, updated=2, deadline=3),
        make_saga("comp-late", state=SagaState.COMPENSATING, created=2, updated=50, deadline=60),
        make_saga("comp-later", state=SagaState.COMPENSATING, created=9, updated=40, deadline=55),
        make_saga("pend-late", state=SagaState.PENDING, created=3, updated=10, deadline=20),
        make_saga("pend-ok", state=SagaState.PENDING, created=4, updated=90, deadline=500),
        make_saga("idle-start", state=SagaState.STARTED, created=5, updated=5),
        make_saga("fresh-start", state=SagaState.STARTED, created=6, updated=95),
        make_saga("refund", saga_type="Refund", state=SagaState.PENDING, created=7, updated=8, deadline=30),
    )
    return store


def test_list_all_compensating_first_then_oldest(population: Store) -> None:
    assert ids(population.list_sagas(SagaQuery())) == [
        "comp-late",
        "comp-later",
        "done-old",
        "failed",
        "pend-late",
        "pend-ok",
        "idle-start",
        "fresh-start",
        "refund",
    ]


def test_list_filters_by_states_type_updated_and_limit(population: Store) -> None:
    pending = population.list_sagas(SagaQuery(states=[SagaState.PENDING]))
    assert ids(pending) == ["pend-late", "pend-ok", "refund"]
    both = population.list_sagas(SagaQuery(states=[SagaState.FAILED, SagaState.STARTED], saga_type="Order"))
    assert ids(both) == ["failed", "idle-start", "fresh-start"]
    assert ids(population.list_sagas(SagaQuery(saga_type="Refund"))) == ["refund"]
    assert ids(population.list_sagas(SagaQuery(updated_before=at(5)))) == ["done-old", "failed"]
    assert ids(population.list_sagas(SagaQuery(limit=2))) == ["comp-late", "comp-later"]
    assert population.list_sagas(SagaQuery(saga_type="Nope")) == []


@pytest.mark.parametrize(
    "query",
    [
        SagaQuery(),
        SagaQuery(saga_type="Order"),
        SagaQuery(states=[SagaState.COMPENSATING, SagaState.PENDING]),
        SagaQuery(states=[SagaState.COMPLETED]),
        SagaQuery(updated_before=at(45)),
    ],
)
def test_a_limited_listing_is_a_prefix_of_the_full_one(population: Store, query: SagaQuery) -> None:
    full = ids(population.list_sagas(query))
    for limit in range(len(full) + 2):
        limited = SagaQuery(query.states, query.saga_type, updated_before=query.updated_before, limit=limit)
        assert ids(population.list_sagas(limited)) == full[:limit]


def test_stuck_is_past_deadline_or_idle_without_one_compensating_first(population: Store) -> None:
    stuck = population.list_sagas(SagaQuery(stuck=True, now=at(100), idle_before=at(50)))
    # compensating first by deadline (55 before 60), then the rest by deadline or idle time
    assert ids(stuck) == ["comp-later", "comp-late", "idle-start", "pend-late", "refund"]


def test_stuck_respects_now_threshold_filters_and_limit(population: Store) -> None:
    early = population.list_sagas(SagaQuery(stuck=True, now=at(25), idle_before=at(1)))
    assert ids(early) == ["pend-late"]
    assert ids(population.list_sagas(SagaQuery(stuck=True, now=at(100), idle_before=at(1)))) == [
        "comp-later",
        "comp-late",
        "pend-late",
        "refund",
    ]
    typed = population.list_sagas(SagaQuery(stuck=True, now=at(100), idle_before=at(50), saga_type="Refund"))
    assert ids(typed) == ["refund"]
    only = population.list_sagas(SagaQuery(stuck=True, now=at(100), idle_before=at(50), states=[SagaState.STARTED]))
    assert ids(only) == ["idle-start"]
    limited = population.list_sagas(SagaQuery(stuck=True, now=at(100), idle_before=at(50), limit=1))
    assert ids(limited) == ["comp-later"]


def test_terminal_sagas_are_never_stuck(population: Store) -> None:
    terminal = population.list_sagas(
        SagaQuery(stuck=True, now=at(10_000), idle_before=at(10_000), states=[SagaState.COMPLETED, SagaState.FAILED])
    )
    assert terminal == []


@pytest.mark.parametrize(
    "hostile",
    ["Order' OR '1'='1", "Order'; DROP TABLE saga_log; --", 'Order" OR 1=1 --', "%s", "%(x)s", "\\", "Order\x01"],
)
def test_filter_values_are_bound_never_interpreted(population: Store, hostile: str) -> None:
    assert population.list_sagas(SagaQuery(saga_type=hostile)) == []
    assert population.list_sagas(SagaQuery(stuck=True, now=at(100), saga_type=hostile)) == []
    assert len(population.list_sagas(SagaQuery())) == 9


# -- schema -----------------------------------------------------------------------------------


def test_init_schema_is_idempotent_and_keeps_data(store: Store, store_dsn: str) -> None:
    add(store, make_saga())
    assert store.init_schema() == SCHEMA_VERSION
    assert store.init_schema() == SCHEMA_VERSION
    again = open_store(store_dsn)
    try:
        assert again.init_schema() == SCHEMA_VERSION
        assert ids(again.list_sagas(SagaQuery())) == ["s-1"]
    finally:
        again.close()
    assert store.counts() == [StateCount("Order", SagaState.STARTED, 1)]
    assert store.info.schema_version == SCHEMA_VERSION


# -- reruns -----------------------------------------------------------------------------------


def rerun_of(failed: str, saga_id: str) -> tuple[SagaRecord, Transition]:
    new = make_saga(saga_id, owner=None)
    new.rerun_of = failed
    note = Transition(failed, None, "failed", "failed", at(50), {"action": "rerun", "rerun_as": saga_id})
    return new, note


def test_a_failed_saga_is_linked_to_one_rerun_only(store: Store) -> None:
    add(store, make_saga("f-1", state=SagaState.FAILED, owner=None), make_saga("live", owner=None))
    first, note = rerun_of("f-1", "r-1")
    assert store.create_rerun(first, [Transition("r-1", None, None, "started", at(50))], note)
    second, note2 = rerun_of("f-1", "r-2")
    assert not store.create_rerun(second, [], note2)  # a second rerun (another operator, at once): refused
    assert store.get("r-2") is None
    linked = store.get("f-1")
    assert linked is not None and linked.rerun_as == "r-1" and linked.updated_at == at(50)
    assert [(t.old_state, t.new_state, t.detail) for t in store.transitions("f-1")][-1] == (
        "failed",
        "failed",
        {"action": "rerun", "rerun_as": "r-1"},
    )
    new = store.get("r-1")
    assert new is not None and new.rerun_of == "f-1" and new.rerun_as is None
    active, note3 = rerun_of("live", "r-3")
    assert not store.create_rerun(active, [], note3)  # not failed: nothing written
    assert store.get("r-3") is None and store.transitions("live")[-1].new_state == "started"
    assert sum(c.count for c in store.counts()) == 3


def test_a_rerun_whose_id_is_taken_writes_nothing(store: Store) -> None:
    add(store, make_saga("f-1", state=SagaState.FAILED, owner=None), make_saga("taken", owner=None))
    clash, note = rerun_of("f-1", "taken")
    with pytest.raises(SagaExistsError):
        store.create_rerun(clash, [], note)
    failed = store.get("f-1")
    assert failed is not None and failed.rerun_as is None and len(store.transitions("f-1")) == 1
