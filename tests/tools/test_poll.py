"""Following a saga and watching a listing by polling, on SQLite, PostgreSQL and a mapped table:
the exit code once the saga ends, a re-read only when its stamp moved, frames until Ctrl-C. A
fake clock plays the driver's commits into the store while the poller "sleeps"."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest

from sagactl.config import Settings, TableMapping
from sagactl.errors import ExitCode, NotFoundError, UsageError
from sagactl.models import Outcome, SagaRecord, SagaState, SagaSummary, StepStatus, Transition
from sagactl.ops.sagas import follow_saga, watch_sagas
from sagactl.store import Store
from sagactl.store.base import SagaReader
from sagactl.tools import poll
from sagactl.tools.inspect import ListRequest, ListResult
from tests.support.clock import FakeClock
from tests.support.histories import OWNER, Player, running_saga, waiting_retry
from tests.support.sagas import add, at, saga

Change = Callable[[], tuple[SagaRecord, list[Transition]]]


class Counting:
    """The real reader, counting what the poller reads of it."""

    def __init__(self, reader: SagaReader) -> None:
        self.reader, self.reads = reader, {"stamp": 0, "detail": 0}

    def __getattr__(self, name: str) -> Any:
        if name in self.reads:
            self.reads[name] += 1
        return getattr(self.reader, name)


def progress(record: SagaRecord) -> dict[str, Change]:
    """What the driver of ``running_saga`` commits next, each a function of the record so far."""
    work = copy.deepcopy(record)

    def t(seconds: float, step: str | None, old: str, new: str, **detail: Any) -> Transition:
        return Transition(work.saga_id, step, old, new, at(seconds), detail)

    def charge_done() -> tuple[SagaRecord, list[Transition]]:
        charge, notify = work.steps[1], work.steps[2]
        charge.status, charge.outcome, charge.error = StepStatus.COMPLETED, Outcome.SUCCEEDED, None
        notify.status, notify.attempts, work.current_step, work.updated_at = StepStatus.EXECUTING, 1, 2, at(31)
        return work, [t(31, "charge", "executing", "completed", attempt=2), t(31, "notify", "pending", "executing")]

    def completed() -> tuple[SagaRecord, list[Transition]]:
        work.steps[2].status, work.state, work.current_step = StepStatus.COMPLETED, SagaState.COMPLETED, None
        work.lease_owner = work.lease_expires_at = None  # released in the same commit
        work.updated_at = at(32)
        return work, [t(32, "notify", "executing", "completed"), t(32, None, "pending", "completed")]

    def failed() -> tuple[SagaRecord, list[Transition]]:
        work.steps[1].status, work.steps[1].outcome = StepStatus.FAILED, Outcome.REFUSED
        work.steps[1].error = "HTTP 402: card declined"
        work.state, work.current_step, work.lease_owner, work.lease_expires_at = SagaState.FAILED, None, None, None
        work.updated_at = at(31)
        return work, [
            t(31, "charge", "executing", "failed", error="HTTP 402: card declined"),
            t(31, None, "pending", "failed"),
        ]

    def gave_up() -> tuple[SagaRecord, list[Transition]]:
        work.steps[1].status, work.steps[1].compensation_error = StepStatus.COMPENSATING, "HTTP 503"
        work.state, work.lease_owner, work.lease_expires_at = SagaState.COMPENSATING, None, None
        work.deadline_at = work.updated_at = at(33)
        return work, [t(31, None, "pending", "compensating"), t(32, "charge", "failed", "compensating")]

    def parked() -> tuple[SagaRecord, list[Transition]]:
        waiting_retry(work, until=40)
        work.updated_at = at(31)
        return work, []

    return {"charge_done": charge_done, "completed": completed, "failed": failed, "gave_up": gave_up, "parked": parked}


def follow(store: Store, plays: list[Change | None]) -> tuple[ExitCode, list[tuple[str, bool, int]], Counting]:
    """Follow ``running_saga`` while ``plays`` are committed, one per sleep (None: a sleep in
    which nothing is written); what it saw (state, changed, transitions) and read."""
    record = running_saga()
    store.create(record, record.transitions)
    clock = Player(store, plays)
    seen: list[tuple[str, bool, int]] = []

    def note(saga: SagaRecord | SagaSummary, changed: bool, now: datetime) -> None:
        assert isinstance(saga, SagaRecord)
        seen.append((saga.state.value, changed, len(saga.transitions)))

    reader = Counting(store)
    code = poll.follow(reader, record.saga_id, note, clock=clock, interval=2.0)  # type: ignore[arg-type]
    assert clock.sleeps == [2.0] * (len(seen) - 1)
    return code, seen, reader


def test_the_stamp_moves_with_every_write_and_only_then(store: Store) -> None:
    assert store.stamp("nope") is None
    record = running_saga()
    store.create(record, record.transitions)
    first = store.stamp(record.saga_id)
    assert first is not None and store.stamp(record.saga_id) == first
    work, new = progress(record)["charge_done"]()
    store.save(work, new, owner=OWNER)
    assert store.stamp(record.saga_id) not in (None, first)


def test_follow_redraws_on_each_commit_and_exits_0_when_it_completes(store: Store) -> None:
    plays = progress(running_saga())
    code, seen, reader = follow(store, [None, plays["charge_done"], None, plays["completed"]])
    assert code is ExitCode.OK
    assert seen == [
        ("pending", True, 6),
        ("pending", False, 6),  # only time moved: drawn again (the now marker), not read again
        ("pending", True, 8),
        ("pending", False, 8),
        ("completed", True, 10),
    ]
    assert reader.reads == {"stamp": 5, "detail": 3}  # one look per interval; the saga read per change


def test_follow_exits_1_when_it_fails_and_3_when_nothing_will_move_it(store: Store) -> None:
    assert follow(store, [progress(running_saga())["failed"]])[0] is ExitCode.SAGA_FAILED


def test_a_compensation_that_gave_up_needs_attention(store: Store) -> None:
    code, seen, _ = follow(store, [progress(running_saga())["gave_up"]])
    assert code is ExitCode.ATTENTION and seen[-1][:2] == ("compensating", True)


def test_a_saga_waiting_for_its_retry_is_followed_on(store: Store) -> None:
    plays = progress(running_saga())
    code, seen, _ = follow(store, [plays["parked"], plays["charge_done"], plays["completed"]])
    assert code is ExitCode.OK and [s[0] for s in seen] == ["pending", "pending", "pending", "completed"]


def test_a_saga_whose_driver_died_and_nobody_took_is_attention_not_forever(store: Store) -> None:
    """Its lease lapsed at 60 s (running_saga) and no worker claimed it: following stops with
    exit 3 once it has sat 90 s past that, instead of waiting forever."""
    code, seen, reader = follow(store, [None] * 200)
    assert code is ExitCode.ATTENTION
    assert seen[-1][:2] == ("pending", False)
    stopped_at = 30 + 2 * (len(seen) - 1)  # the Player's clock starts at 30 s; a look every 2 s
    assert 60 + 90 < stopped_at <= 60 + 90 + 2  # 90 s past the lapsed lease, as documented
    assert reader.reads["detail"] == 1  # time alone decided: the saga was read once


def test_unclaimed_means_more_than_90_seconds_past_the_lease_or_the_wake_up() -> None:
    record = running_saga()  # its driver's lease lapses at 60 s
    assert poll.unclaimed(record, at(60 + 90)) is None  # exactly 90 s: a worker may still take it
    assert poll.unclaimed(record, at(60 + 90.001)) == at(60)
    parked = waiting_retry(running_saga(), until=40)  # released, due at 40 s
    assert poll.unclaimed(parked, at(40 + 90)) is None and poll.unclaimed(parked, at(40 + 91)) == at(40)
    assert poll.verdict(parked, at(40 + 89)) is None and poll.verdict(parked, at(40 + 91)) is ExitCode.ATTENTION


def test_a_lapsed_lease_taken_over_is_followed_on(store: Store) -> None:
    plays = progress(running_saga())
    waits = ((60 + 90 - 30) // 2) - 1  # just before it would count as unclaimed
    code, seen, _ = follow(store, [None] * waits + [plays["charge_done"], plays["completed"]])
    assert code is ExitCode.OK and seen[-1][0] == "completed"


def test_a_parked_saga_no_worker_wakes_is_attention(store: Store) -> None:
    code, seen, _ = follow(store, [progress(running_saga())["parked"]] + [None] * 200)
    assert code is ExitCode.ATTENTION  # due at 40 s, nobody took it by 40 s + 90 s
    assert 40 + 90 < 30 + 2 * (len(seen) - 1) <= 40 + 90 + 2


def test_follow_of_an_unknown_or_vanished_saga(store: Store, store_dsn: str) -> None:
    with pytest.raises(NotFoundError):
        follow_saga(Settings(dsn=store_dsn), "nope", lambda *_: None, interval=1.0, clock=FakeClock())
    gone = saga("gone")
    gone.lease_owner, gone.lease_expires_at = OWNER, at(60)  # driven: followed on
    add(store, gone)

    clock = FakeClock(at(30))  # its lease runs until 60 s
    clock.sleep = lambda seconds: delete_saga(store_dsn, "gone")  # type: ignore[method-assign]
    with pytest.raises(NotFoundError, match="saga gone is no longer in"):
        follow_saga(Settings(dsn=store_dsn), "gone", lambda *_: None, interval=1.0, clock=clock)


def delete_saga(dsn: str, saga_id: str) -> None:
    if dsn.startswith("sqlite"):
        import sqlite3

        db = sqlite3.connect(dsn.removeprefix("sqlite:///"))
        with db:
            db.execute("DELETE FROM saga_log WHERE saga_id = ?", (saga_id,))
        db.close()
    else:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("DELETE FROM saga_log WHERE saga_id = %s", (saga_id,))


@pytest.mark.parametrize(("value", "seconds"), [(None, 5.0), ("250ms", 0.25), ("2s", 2.0), ("1h", 3600.0)])
def test_interval(value: str | None, seconds: float) -> None:
    assert poll.parse_interval(value, 5.0) == seconds


@pytest.mark.parametrize("value", ["0s", "50ms", "2h", "soon", "-1s"])
def test_bad_interval_is_a_usage_error(value: str) -> None:
    with pytest.raises(UsageError, match="--interval"):
        poll.parse_interval(value, 5.0)


# -- list --watch ------------------------------------------------------------------------------


class Interrupting(FakeClock):
    """Runs ``between`` at each sleep; Ctrl-C after ``frames`` frames."""

    def __init__(self, frames: int, between: Callable[[int], None]) -> None:
        super().__init__(at(100))
        self.frames, self.between = frames, between

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds)
        if len(self.sleeps) >= self.frames:
            raise KeyboardInterrupt
        self.between(len(self.sleeps))


def test_watch_lists_every_interval_until_interrupted(store: Store, store_dsn: str) -> None:
    add(store, saga("a", deadline=50), saga("b", state=SagaState.COMPENSATING, step=1, deadline=60))

    def between(n: int) -> None:
        if n == 1:
            add(store, saga("c", created=10, deadline=70))
        if n == 2:
            delete_saga(store_dsn, "b")

    frames: list[ListResult] = []
    clock = Interrupting(3, between)
    with pytest.raises(KeyboardInterrupt):
        watch_sagas(Settings(dsn=store_dsn), ListRequest(stuck=True), frames.append, interval=5.0, clock=clock)
    assert [[r.saga.saga_id for r in f.sagas] for f in frames] == [["b", "a"], ["b", "a", "c"], ["a", "c"]]
    assert [f.now for f in frames] == [at(100), at(105), at(110)]  # stuck_for and AGE as of each frame
    assert clock.sleeps == [5.0, 5.0, 5.0]


def test_watch_refuses_a_bad_request_before_opening_anything(tmp_path: Any) -> None:
    with pytest.raises(UsageError, match="--limit"):
        watch_sagas(Settings(dsn=f"sqlite:///{tmp_path}/none.db"), ListRequest(limit=-1), print, interval=1.0)


# -- a mapped table --------------------------------------------------------------------------------

MAPPING = TableMapping(
    table="ops_sagas",
    columns={"saga_id": "id", "state": "status", "updated_at": "modified_at", "saga_type": "kind"},
    states={"pending": "RUNNING", "completed": "DONE", "failed": "FAILED"},
)


@pytest.fixture
def mapped(pg_dsn: str) -> Iterator[Settings]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS ops_sagas")
        conn.execute("CREATE TABLE ops_sagas (id text PRIMARY KEY, kind text, status text, modified_at timestamptz)")
        conn.execute("INSERT INTO ops_sagas VALUES ('m-1', 'Order', 'RUNNING', %s)", (at(0),))
    yield Settings(dsn=pg_dsn, mapping=MAPPING)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE ops_sagas")


def test_follow_and_watch_a_mapped_table(mapped: Settings) -> None:
    def update(status: str, seconds: float) -> None:
        with psycopg.connect(mapped.dsn, autocommit=True) as conn:
            conn.execute("UPDATE ops_sagas SET status = %s, modified_at = %s WHERE id = 'm-1'", (status, at(seconds)))

    plays = iter([lambda: None, lambda: update("RUNNING", 5), lambda: update("FAILED", 9)])
    clock = FakeClock(at(10))
    clock.sleep = lambda seconds: next(plays)()  # type: ignore[method-assign]
    seen: list[tuple[str, bool]] = []
    code = follow_saga(
        mapped, "m-1", lambda s, changed, now: seen.append((s.state.value, changed)), interval=1.0, clock=clock
    )
    assert code is ExitCode.SAGA_FAILED
    assert seen == [("pending", True), ("pending", False), ("pending", True), ("failed", True)]

    frames: list[ListResult] = []
    with pytest.raises(KeyboardInterrupt):
        watch_sagas(mapped, ListRequest(), frames.append, interval=1.0, clock=Interrupting(2, lambda n: None))
    assert [[(r.saga.saga_id, r.saga.state.value) for r in f.sagas] for f in frames] == [[("m-1", "failed")]] * 2
