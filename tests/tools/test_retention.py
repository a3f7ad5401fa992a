"""prune on SQLite and PostgreSQL: only finished sagas older than the cutoff go, with their
transitions, in batches; active ones never; the counters stay exact; the archive holds each
pruned saga whole, written before its batch is deleted."""

from __future__ import annotations

import json
import os
import stat
from datetime import timedelta
from pathlib import Path

import pytest

from sagactl.errors import UnavailableError, UsageError
from sagactl.models import SagaState, StateCount, Transition
from sagactl.store import Store
from sagactl.store.base import PruneQuery
from sagactl.tools.retention import PruneRequest, parse_states, prune
from tests.support.sagas import at, saga

DAY = 86400.0
NOW = at(40 * DAY)


@pytest.fixture
def population(store: Store) -> Store:
    """Finished 35 days ago: 5 completed and 3 failed of Order, 2 completed of Refund; finished
    yesterday: 2 (one of them created long ago); active, idle for 35 days: 3. Each saga has two
    transitions."""
    old = at(5 * DAY)
    records = [saga(f"old-c{n}", state=SagaState.COMPLETED, step=None, created=n, updated=5 * DAY) for n in range(5)]
    records += [saga(f"old-f{n}", state=SagaState.FAILED, step=None, created=10 + n) for n in range(3)]
    records += [
        saga(f"old-r{n}", state=SagaState.COMPLETED, step=None, saga_type="Refund", created=20 + n) for n in range(2)
    ]
    records += [saga("new-c", state=SagaState.COMPLETED, step=None, created=30, updated=39 * DAY)]
    records += [saga("new-f", state=SagaState.FAILED, step=None, created=39 * DAY)]
    records += [saga(f"active-{s.value}", state=s, step=1, created=40 + n) for n, s in enumerate(
        (SagaState.STARTED, SagaState.PENDING, SagaState.COMPENSATING)
    )]  # fmt: skip
    for record in records:
        if record.saga_id.startswith(("old-", "active-")):
            record.updated_at = old
        history = [
            Transition(record.saga_id, None, None, record.state.value, record.created_at),
            Transition(record.saga_id, "reserve", "pending", "executing", record.created_at),
        ]
        store.create(record, history)
    return store


def remaining(store: Store) -> set[str]:
    from sagactl.store.base import SagaQuery

    return {s.saga_id for s in store.list_sagas(SagaQuery())}


def request(**given: object) -> PruneRequest:
    return PruneRequest(older_than=timedelta(days=30), **given)  # type: ignore[arg-type]


def exact(store: Store) -> None:
    """The counters stats reads agree with a full recount."""
    before, after = store.recount()
    assert [c for c in before if c.count] == after  # a type whose sagas are all gone keeps a 0 row


def test_prune_deletes_only_finished_sagas_older_than_the_cutoff_in_batches(population: Store) -> None:
    result = prune(population, request(batch=3), NOW)
    assert result.pruned == 10 and result.batches == 4  # completed: 3+3+1, failed: 3
    assert remaining(population) == {"new-c", "new-f", "active-started", "active-pending", "active-compensating"}
    assert population.transitions("old-c0") == [] and population.transitions("old-f2") == []
    assert len(population.transitions("active-pending")) == 2
    assert result.counts == [
        StateCount("Order", SagaState.COMPLETED, 5),
        StateCount("Order", SagaState.FAILED, 3),
        StateCount("Refund", SagaState.COMPLETED, 2),
    ]
    exact(population)
    assert prune(population, request(), NOW).pruned == 0  # nothing left to do


def test_prune_by_state_and_type(population: Store) -> None:
    assert prune(population, request(states=(SagaState.FAILED,)), NOW).pruned == 3
    assert prune(population, request(saga_type="Refund"), NOW).pruned == 2
    assert {s for s in remaining(population) if s.startswith("old-")} == {f"old-c{n}" for n in range(5)}
    exact(population)


def test_a_dry_run_counts_and_deletes_nothing(population: Store) -> None:
    result = prune(population, request(dry_run=True), NOW)
    assert result.to_dict()["matched"] == 10 and result.pruned == 0
    assert len(remaining(population)) == 15
    assert result.counts[0] == StateCount("Order", SagaState.COMPLETED, 5)


def test_active_sagas_are_never_deleted_whatever_is_asked(population: Store) -> None:
    active = ["active-started", "active-pending", "active-compensating"]
    every = tuple(SagaState)
    assert population.delete_finished(active, PruneQuery(before=NOW, states=every)) == []
    assert population.prunable(PruneQuery(before=NOW, states=every), SagaState.PENDING, None, 10) == []
    assert set(active) <= remaining(population)
    with pytest.raises(UsageError, match="active sagas are never pruned"):
        parse_states(["completed,pending"])
    assert parse_states(["Completed, failed", "failed"]) == (SagaState.COMPLETED, SagaState.FAILED)


def test_the_archive_holds_each_pruned_saga_whole_and_is_appended_to(population: Store, tmp_path: Path) -> None:
    path = tmp_path / "archive.jsonl"
    first = prune(population, request(archive=str(path), batch=4, states=(SagaState.FAILED,)), NOW)
    second = prune(population, request(archive=str(path), batch=4), NOW)
    assert (first.archived, second.archived) == (3, 7)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted(d["saga_id"] for d in lines) == sorted(
        [f"old-c{n}" for n in range(5)] + [f"old-f{n}" for n in range(3)] + ["old-r0", "old-r1"]
    )
    doc = next(d for d in lines if d["saga_id"] == "old-f1")
    assert doc["state"] == "failed" and doc["data"] == {"order_id": "old-f1"}
    assert doc["definition"]["document"]["saga"] == "Order"
    history = [(t["old_state"], t["new_state"]) for t in doc["transitions"]]
    assert history == [(None, "failed"), ("pending", "executing")]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_archive_that_cannot_be_written_deletes_nothing(population: Store) -> None:
    if not os.path.exists("/dev/full"):  # pragma: no cover - Linux has it
        pytest.fail("this test needs /dev/full")
    with pytest.raises(UnavailableError) as raised:
        prune(population, request(archive="/dev/full"), NOW)
    assert raised.value.one_line() == (
        "writing archive /dev/full failed: No space left on device; the sagas of this batch were not deleted;"
        " free space on that disk and run prune again (it appends; sagas archived twice are harmless)"
    )
    assert isinstance(raised.value.__cause__, OSError)
    assert len(remaining(population)) == 15
    exact(population)


def test_each_batch_is_fsynced_to_the_archive_before_it_is_deleted(
    population: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What each delete removes is in the archive as of its last fsync: the file is never
    written after that fsync and before the delete (a crash there loses nothing)."""
    path = tmp_path / "archive.jsonl"
    path.write_text("")  # an existing archive: the only fsyncs are the batches'
    synced: list[int] = []  # the archive's size at each fsync of it
    deleted: list[list[str]] = []
    real_fsync, real_delete = os.fsync, population.delete_finished

    def fsync(fd: int) -> None:
        real_fsync(fd)
        if os.fstat(fd).st_ino == path.stat().st_ino:
            synced.append(os.fstat(fd).st_size)

    def delete_finished(saga_ids: list[str], query: PruneQuery) -> list[str]:
        assert synced and synced[-1] == path.stat().st_size, "the batch was not fsynced before its delete"
        archived = {json.loads(line)["saga_id"] for line in path.read_text().splitlines()}
        assert set(saga_ids) <= archived
        deleted.append(list(saga_ids))
        return real_delete(saga_ids, query)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(population, "delete_finished", delete_finished)
    result = prune(population, request(archive=str(path), batch=3), NOW)
    assert result.pruned == 10 and len(deleted) == 4 and len(synced) == 4  # one fsync per batch, each before its delete


def test_the_cutoff_is_exclusive(store: Store) -> None:
    """A saga that finished exactly at the cutoff (now - --older-than) is kept; a microsecond
    earlier, it goes. Dry run and prune agree."""
    cutoff = (NOW - timedelta(days=30) - at(0)).total_seconds()
    for saga_id, created, updated in (("at-cutoff", 0.0, cutoff), ("before", 0.0, cutoff - 1e-6)):
        record = saga(saga_id, state=SagaState.COMPLETED, step=None, created=created, updated=updated)
        store.create(record, [Transition(saga_id, None, None, "completed", record.created_at)])
    counted = prune(store, request(dry_run=True), NOW)
    assert counted.to_dict()["matched"] == 1
    result = prune(store, request(), NOW)
    assert result.pruned == 1 and remaining(store) == {"at-cutoff"}


def test_states_batches_and_the_archive_are_checked_before_anything_is_opened() -> None:
    assert parse_states(None) == parse_states([]) == (SagaState.COMPLETED, SagaState.FAILED)
    assert parse_states(["failed", ",completed,"]) == (SagaState.FAILED, SagaState.COMPLETED)
    with pytest.raises(UsageError) as raised:
        parse_states(["complete"])
    assert raised.value.one_line() == "--state: unknown state 'complete'; prune takes completed, failed"
    with pytest.raises(UsageError) as raised:
        parse_states(["x" * 50])
    assert raised.value.one_line() == f"--state: unknown state '{'x' * 40}'; prune takes completed, failed"
    with pytest.raises(UsageError) as raised:
        parse_states(["compensating"])
    assert raised.value.one_line() == (
        "--state compensating: active sagas are never pruned; prune takes completed, failed; finish them first"
        " (resume, abort), or list them with 'sagactl list --state compensating'"
    )
    with pytest.raises(UsageError) as raised:
        parse_states([" , "])
    assert raised.value.one_line() == "--state names no state; prune takes completed, failed"
    request(batch=1).validate()
    request(batch=10_000).validate()
    for batch in (0, 10_001):
        with pytest.raises(UsageError) as raised:
            request(batch=batch).validate()
        assert raised.value.one_line() == f"--batch must be 1 to 10000, not {batch}"
    with pytest.raises(UsageError) as raised:
        request(archive="a.jsonl", dry_run=True).validate()
    assert raised.value.one_line() == "--dry-run archives nothing: drop --archive, or --dry-run to prune"


def test_the_prune_document(population: Store, tmp_path: Path) -> None:
    path = tmp_path / "archive.jsonl"
    seen: list[tuple[int, int]] = []
    result = prune(
        population,
        request(archive=str(path), batch=4, saga_type="Order"),
        NOW,
        progress=lambda r: seen.append((r.pruned, r.batches)),
    )
    assert seen == [(4, 1), (5, 2), (8, 3)]  # after each batch: completed 4+1, failed 3
    assert result.to_dict() == {
        "dry_run": False,
        "cutoff": "2026-12-06T08:00:00.000000Z",
        "states": ["completed", "failed"],
        "saga_type": "Order",
        "matched": 8,
        "pruned": 8,
        "archived": 8,
        "archive": str(path),
        "batches": 3,
        "interrupted": False,
        "counts": [
            {"saga_type": "Order", "state": "completed", "count": 5},
            {"saga_type": "Order", "state": "failed", "count": 3},
        ],
    }
    counted = prune(population, request(dry_run=True), NOW).to_dict()
    assert (counted["matched"], counted["pruned"], counted["archive"], counted["batches"]) == (2, 0, None, 0)


def test_ctrl_c_between_batches_keeps_what_is_done(population: Store) -> None:
    def interrupt(result: object) -> None:
        raise KeyboardInterrupt

    result = prune(population, request(batch=3), NOW, progress=interrupt)
    assert result.interrupted and (result.pruned, result.batches) == (3, 1)
    assert result.counts == [StateCount("Order", SagaState.COMPLETED, 3)]
    assert len(remaining(population)) == 12
    exact(population)


def test_a_new_archive_is_private_and_its_directory_entry_durable(
    population: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "new" / "archive.jsonl"
    path.parent.mkdir()
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")

    monkeypatch.setattr(os, "fsync", fsync)
    prune(population, request(archive=str(path), batch=20), NOW)
    assert synced[0] == "dir" and synced[1:] == ["file", "file"]  # the entry first, then each batch
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    synced.clear()
    prune(population, request(archive=str(path)), NOW)  # nothing left: no batch, no fsync of anything
    assert synced == []
    with pytest.raises(UsageError) as raised:
        prune(population, request(archive=str(tmp_path / "missing" / "a.jsonl")), NOW)
    assert raised.value.one_line() == (
        f"cannot open archive {tmp_path / 'missing' / 'a.jsonl'}: No such file or directory; check the path"
    )


def test_a_dry_run_counts_only_the_states_asked_for(population: Store) -> None:
    counted = prune(population, request(dry_run=True, states=(SagaState.FAILED,)), NOW)
    assert counted.counts == [StateCount("Order", SagaState.FAILED, 3)] and counted.to_dict()["matched"] == 3


def test_each_saga_is_read_once_even_one_its_delete_kept(population: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each batch continues after the last saga the previous one found (a keyset), so a saga the
    DELETE's own re-check kept is not found again and again: prune ends, having read each once."""
    kept = {"old-c1", "old-c4"}
    read: list[str] = []
    real_prunable, real_delete = population.prunable, population.delete_finished

    def prunable(*args: object) -> list[tuple[str, object, str]]:
        found = real_prunable(*args)  # type: ignore[arg-type]
        read.extend(saga_id for saga_id, _, _ in found)
        assert len(read) <= 20, f"sagas read again: {read}"
        return found

    def delete_finished(saga_ids: list[str], query: PruneQuery) -> list[str]:
        return real_delete([i for i in saga_ids if i not in kept], query)

    monkeypatch.setattr(population, "prunable", prunable)
    monkeypatch.setattr(population, "delete_finished", delete_finished)
    result = prune(population, request(batch=2), NOW)
    assert sorted(read) == sorted({*read}) and len(read) == 10  # each of the 10 finished before the cutoff once
    assert result.pruned == 8 and kept <= remaining(population)
