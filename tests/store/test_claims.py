"""Workers' claims on both stores: released sagas whose wake_at has come, held ones whose lease
lapsed; never a finished one, never one saga to two claimers."""

from __future__ import annotations

import threading
from datetime import timedelta

from sagactl.models import SagaRecord, SagaState
from sagactl.store import Store, open_store
from sagactl.store.base import Claimed
from tests.store.test_contract import ME, OTHER, add, at, make_saga


def released(
    saga_id: str, *, wake: float | None, state: SagaState = SagaState.STARTED, saga_type: str = "Order"
) -> SagaRecord:
    saga = make_saga(saga_id, state=state, owner=None, saga_type=saga_type)
    saga.wake_at = None if wake is None else at(wake)
    return saga


def test_due_and_lapsed_sagas_are_claimed_oldest_first(store: Store) -> None:
    add(
        store,
        released("due-late", wake=50),
        released("due-early", wake=10),
        released("not-yet", wake=500),
        released("no-wake", wake=None),  # an operator must act: never claimed
        released("done", wake=5, state=SagaState.COMPLETED),
        make_saga("held-lapsed", owner=OTHER, lease_for=30),  # lease until at(30)
        make_saga("held-live", owner=OTHER, lease_for=1000),
    )
    claimed = store.claim("w1", at(160), at(100), limit=10)
    assert claimed == [Claimed("due-early", False), Claimed("held-lapsed", True), Claimed("due-late", False)]
    for saga_id in ("due-early", "held-lapsed", "due-late"):
        saga = store.get(saga_id)
        assert saga is not None and saga.lease_owner == "w1" and saga.lease_expires_at == at(160)
        assert saga.wake_at is None
    assert store.claim("w2", at(160), at(100), limit=10) == []  # all taken


def test_limit_and_types(store: Store) -> None:
    add(store, *(released(f"o{i}", wake=i) for i in range(5)), released("r", wake=0, saga_type="Refund"))
    assert [c.saga_id for c in store.claim("w", at(99), at(50), limit=2, types=["Order"])] == ["o0", "o1"]
    assert [c.saga_id for c in store.claim("w", at(99), at(50), limit=9, types=["Refund"])] == ["r"]


def test_a_claimed_saga_is_driven_like_any_other(store: Store) -> None:
    add(store, released("s", wake=0))
    (claim,) = store.claim(ME, at(60), at(1), limit=1)
    assert store.acquire_lease(claim.saga_id, ME, at(90), at(2)) is None  # ours already
    holder = store.acquire_lease(claim.saga_id, OTHER, at(90), at(2))
    assert holder is not None and holder.owner == ME


def test_concurrent_claimers_never_share_a_saga(store_dsn: str) -> None:
    setup = open_store(store_dsn)
    add(setup, *(released(f"s{i:03d}", wake=i % 7) for i in range(120)))
    setup.close()
    taken: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def claimer(name: str) -> None:
        store = open_store(store_dsn)
        try:
            while claimed := store.claim(name, at(500) + timedelta(seconds=1), at(400), limit=7):
                taken.setdefault(name, []).extend(c.saga_id for c in claimed)
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=claimer, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    everything = [saga_id for ids in taken.values() for saga_id in ids]
    assert sorted(everything) == [f"s{i:03d}" for i in range(120)]  # each exactly once
