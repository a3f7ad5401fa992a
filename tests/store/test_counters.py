"""saga_counts counts every row of saga_log whoever wrote it (triggers), `db recount` rebuilds
it, and the engine's commits keep the `steps` array exact while sending only what changed.
Both stores (the ``store`` fixture)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.models import SagaState, StateCount, StepRecord, StepStatus, Transition
from sagactl.store import Store
from tests.store.test_contract import ME, add, at, make_saga

runner = CliRunner()


@contextmanager
def raw(dsn: str) -> Iterator[Any]:
    """A plain connection to the saga log (autocommit), as another writer or an operator has."""
    if dsn.startswith("sqlite:///"):
        conn = sqlite3.connect(dsn.removeprefix("sqlite:///"), isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()
    else:
        with psycopg.connect(dsn, autocommit=True) as conn:
            yield conn


def counts(store: Store) -> dict[tuple[str, str], int]:
    return {(c.saga_type, c.state.value): c.count for c in store.counts()}


def insert_by_hand(conn: Any, saga_id: str, saga_type: str, state: str, sqlite: bool) -> None:
    p = "?" if sqlite else "%s"
    conn.execute(
        "INSERT INTO saga_log (saga_id, saga_type, state, steps, definition, created_at, updated_at)"
        f" VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})",
        [saga_id, saga_type, state, "[]", "{}", "2026-11-26T08:00:00.000000Z", "2026-11-26T08:00:00.000000Z"],
    )


def test_rows_written_by_plain_sql_are_counted(store: Store, store_dsn: str) -> None:
    add(store, make_saga("mine"))
    sqlite = store_dsn.startswith("sqlite")
    with raw(store_dsn) as conn:
        for n in range(3):  # a bulk import by another writer of the same schema
            insert_by_hand(conn, f"imported-{n}", "Import", "completed", sqlite)
        insert_by_hand(conn, "hand-1", "Order", "pending", sqlite)
        conn.execute("UPDATE saga_log SET state = 'failed' WHERE saga_id = 'hand-1'")  # an operator's fix
        conn.execute("DELETE FROM saga_log WHERE saga_id = 'imported-0'")
        conn.execute("UPDATE saga_log SET saga_type = 'Renamed' WHERE saga_id = 'imported-1'")
    assert counts(store) == {
        ("Import", "completed"): 1,
        ("Order", "failed"): 1,
        ("Order", "started"): 1,
        ("Renamed", "completed"): 1,
    }


def test_engine_state_changes_move_the_counters(store: Store) -> None:
    saga = make_saga()
    add(store, saga)
    for state in (SagaState.PENDING, SagaState.COMPENSATING, SagaState.FAILED):
        saga.state = state
        store.save(saga, [], owner=ME, steps=[])
    saga.lease_owner = None
    store.save(saga, [], owner=ME, steps=[])  # no state change: counters untouched
    assert store.counts() == [StateCount("Order", SagaState.FAILED, 1)]


def test_truncate_or_delete_everything_empties_the_counters(store: Store, store_dsn: str) -> None:
    add(store, make_saga("a"), make_saga("b", saga_type="Refund"))
    with raw(store_dsn) as conn:
        conn.execute("DELETE FROM saga_log" if store_dsn.startswith("sqlite") else "TRUNCATE saga_log")
    assert store.counts() == []


def test_db_recount_rebuilds_counters_a_restore_left_wrong(store: Store, store_dsn: str) -> None:
    add(store, make_saga("a"), make_saga("b"), make_saga("c", saga_type="Refund", state=SagaState.COMPENSATING))
    with raw(store_dsn) as conn:  # e.g. saga_counts restored from an older backup than saga_log
        conn.execute("UPDATE saga_counts SET n = n + 40")
        conn.execute("INSERT INTO saga_counts (saga_type, state, n) VALUES ('Gone', 'completed', 7)")
    result = runner.invoke(app, ["db", "recount", "--dsn", store_dsn, "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["sagas"] == 3 and data["corrected"] == 3
    assert {(r["saga_type"], r["state"]): (r["before"], r["after"]) for r in data["counters"]} == {
        ("Gone", "completed"): (7, 0),
        ("Order", "started"): (42, 2),
        ("Refund", "compensating"): (41, 1),
    }
    assert result.stderr == f"sagactl: recounted {store.info.location}: 3 counters corrected\n"
    assert counts(store) == {("Order", "started"): 2, ("Refund", "compensating"): 1}
    again = runner.invoke(app, ["db", "recount", "--dsn", store_dsn, "-o", "json"])
    assert json.loads(again.stdout)["corrected"] == 0


def test_saving_some_steps_keeps_the_steps_array_exact(store: Store, store_dsn: str) -> None:
    saga = make_saga()
    saga.steps += [StepRecord(name=f"s{i}") for i in range(6)]
    add(store, saga)
    saga.steps[3].status, saga.steps[3].attempts = StepStatus.COMPLETED, 1
    saga.steps[3].result = {"x": "ünïcode ✓", "n": [1, 2.5, None, True]}
    saga.steps[5].status, saga.steps[5].error = StepStatus.EXECUTING, "quote ' and \" and \\ and $1"
    saga.state, saga.current_step = SagaState.PENDING, 5
    store.save(saga, [Transition(saga.saga_id, "s3", "pending", "completed", at(2))], owner=ME, steps=[3, 5])
    with raw(store_dsn) as conn:
        stored = conn.execute("SELECT steps, data, definition FROM saga_log WHERE saga_id = 's-1'").fetchone()
    steps, data, definition = (json.loads(v) if isinstance(v, str) else v for v in stored)
    assert steps == [s.to_stored() for s in saga.steps]  # the column as operators query it by hand
    assert data == saga.data and definition == saga.definition
    loaded = store.get("s-1")
    assert loaded is not None and [s.to_dict() for s in loaded.steps] == [s.to_dict() for s in saga.steps]
    assert loaded.state is SagaState.PENDING and loaded.current_step == 5
