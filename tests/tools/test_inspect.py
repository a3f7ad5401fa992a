"""list / stuck / show / stats over the saga log (SQLite and PostgreSQL) and over a read-only
mapped table (PostgreSQL). The clock is a parameter: every test passes ``now``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from psycopg import sql

from sagactl.config import Settings, TableMapping
from sagactl.errors import NotFoundError, UnavailableError, UsageError
from sagactl.models import SagaState, SagaSummary, StepStatus
from sagactl.ops import store_for
from sagactl.ops.sagas import list_sagas, show_saga, stats
from sagactl.store import Store
from sagactl.store.mapped import MappedTableStore
from sagactl.tools.inspect import ListRequest
from sagactl.views.sagas import failing_steps, list_document, show_document, stats_document, stats_prometheus
from tests.support.sagas import add, at, saga


def stuck_ids(settings: Settings, now_s: float, **options: Any) -> list[str]:
    result = list_sagas(settings, ListRequest(stuck=True, **options), now=at(now_s))
    return [row.saga.saga_id for row in result.sagas]


def listed(settings: Settings, now_s: float = 10_000, **options: Any) -> list[str]:
    return [row.saga.saga_id for row in list_sagas(settings, ListRequest(**options), now=at(now_s)).sagas]


@pytest.fixture
def settings(store_dsn: str) -> Settings:
    return Settings(dsn=store_dsn)


# -- stuck: deadlines, thresholds, states ------------------------------------------------------


def test_past_deadline_is_stuck_from_the_deadline_on(store: Store, settings: Settings) -> None:
    add(store, saga("late", updated=10, deadline=40), saga("on-time", updated=10, deadline=400))
    assert stuck_ids(settings, 39) == []
    result = list_sagas(settings, ListRequest(stuck=True), now=at(100))
    assert [(r.saga.saga_id, r.stuck_for_seconds) for r in result.sagas] == [("late", 60.0)]


def test_a_future_deadline_wins_over_idleness(store: Store, settings: Settings) -> None:
    add(store, saga("slow-step", updated=0, deadline=100_000))
    assert stuck_ids(settings, 50_000) == []
    assert stuck_ids(settings, 50_000, older_than="1s") == []
    assert stuck_ids(settings, 100_001) == ["slow-step"]


def test_without_deadline_the_current_steps_timeout_is_the_threshold(store: Store, settings: Settings) -> None:
    add(
        store,
        saga("reserve-2m", step=0, updated=0),  # reserve: timeout 2m
        saga("charge-30s", step=1, updated=0),  # charge: the 30s default
        saga("undo-5m", step=0, state=SagaState.COMPENSATING, updated=0),  # compensation_timeout 5m
    )
    assert stuck_ids(settings, 30) == []
    assert stuck_ids(settings, 31) == ["charge-30s"]
    assert stuck_ids(settings, 121) == ["charge-30s", "reserve-2m"]
    assert stuck_ids(settings, 299) == ["charge-30s", "reserve-2m"]
    assert stuck_ids(settings, 301) == ["undo-5m", "charge-30s", "reserve-2m"]
    rows = list_sagas(settings, ListRequest(stuck=True), now=at(301)).sagas
    assert [r.stuck_for_seconds for r in rows] == [301.0, 301.0, 301.0]


def test_without_definition_or_step_the_threshold_is_15_minutes(store: Store, settings: Settings) -> None:
    add(
        store,
        saga("no-step", state=SagaState.STARTED, step=None, updated=0),
        saga("no-definition", step=0, updated=0, definition={"document": {"broken": True}}),
    )
    assert stuck_ids(settings, 900) == []
    assert stuck_ids(settings, 901) == ["no-definition", "no-step"]


def test_older_than_overrides_the_threshold_for_sagas_without_deadline(store: Store, settings: Settings) -> None:
    add(store, saga("idle", step=2, updated=0), saga("late", updated=0, deadline=5))  # notify: 10m
    assert stuck_ids(settings, 100) == ["late"]
    assert stuck_ids(settings, 100, older_than="90s") == ["idle", "late"]
    assert stuck_ids(settings, 100, older_than="2m") == ["late"]
    assert stuck_ids(settings, 601) == ["idle", "late"]
    assert stuck_ids(settings, 601, older_than="1h") == ["late"]


@pytest.mark.parametrize("value", ["abc", "10", "5 minutes", "-5m", "0s", "1m; DROP TABLE saga_log"])
def test_bad_older_than_is_a_usage_error(settings: Settings, value: str) -> None:
    with pytest.raises(UsageError, match=r"duration|positive"):
        list_sagas(settings, ListRequest(stuck=True, older_than=value))


@pytest.mark.parametrize("state", [SagaState.STARTED, SagaState.PENDING, SagaState.COMPENSATING])
def test_every_active_state_can_be_stuck(store: Store, settings: Settings, state: SagaState) -> None:
    add(store, saga("x", state=state, updated=0, deadline=10))
    assert stuck_ids(settings, 11) == ["x"]
    assert stuck_ids(settings, 11, states=(state,)) == ["x"]
    other = next(s for s in (SagaState.STARTED, SagaState.PENDING) if s is not state)
    assert stuck_ids(settings, 11, states=(other,)) == []


@pytest.mark.parametrize("state", [SagaState.COMPLETED, SagaState.FAILED])
def test_terminal_sagas_are_never_stuck(store: Store, settings: Settings, state: SagaState) -> None:
    add(store, saga("done", state=state, step=None, updated=0, deadline=1))
    assert stuck_ids(settings, 1_000_000) == []
    assert stuck_ids(settings, 1_000_000, older_than="1s", states=(state,)) == []
    assert listed(settings, states=(state,)) == ["done"]
    assert list_sagas(settings, ListRequest(), now=at(1_000_000)).sagas[0].stuck_for_seconds is None


def test_compensating_first_then_longest_stuck_with_step_and_error(store: Store, settings: Settings) -> None:
    add(
        store,
        saga("p-oldest", updated=0, deadline=10),
        saga("p-newer", updated=0, deadline=50),
        saga("c-newer", state=SagaState.COMPENSATING, step=1, updated=0, deadline=60, error="HTTP 503"),
        saga("c-older", state=SagaState.COMPENSATING, step=0, updated=0, deadline=20, error="refused"),
        saga("s-idle", state=SagaState.STARTED, step=0, updated=5),
    )
    rows = list_sagas(settings, ListRequest(stuck=True), now=at(200)).sagas
    assert [r.saga.saga_id for r in rows] == ["c-older", "c-newer", "s-idle", "p-oldest", "p-newer"]
    first = rows[0].to_dict()
    assert first == {
        "saga_id": "c-older",
        "saga_type": "Order",
        "state": "compensating",
        "current_step": 0,
        "current_step_name": "reserve",
        "created_at": "2026-11-26T08:00:00.000000Z",
        "updated_at": "2026-11-26T08:00:00.000000Z",
        "deadline_at": "2026-11-26T08:00:20.000000Z",
        "stuck_for_seconds": 180.0,
        "last_error": "reserve: refused",
        "lease_owner": None,
        "lease_expires_at": None,
    }
    limited = list_sagas(settings, ListRequest(stuck=True, limit=2), now=at(200)).sagas
    assert [r.saga.saga_id for r in limited] == ["c-older", "c-newer"]


def test_type_filter_and_states_combine(store: Store, settings: Settings) -> None:
    add(
        store,
        saga("o1", updated=0, deadline=1),
        saga("r1", saga_type="Refund", updated=0, deadline=1),
        saga("r2", saga_type="Refund", state=SagaState.COMPENSATING, updated=0, deadline=1),
    )
    assert stuck_ids(settings, 10, saga_type="Refund") == ["r2", "r1"]
    assert stuck_ids(settings, 10, saga_type="Refund", states=(SagaState.PENDING,)) == ["r1"]
    assert stuck_ids(settings, 10, saga_type="refund") == []  # types are exact
    assert listed(settings, saga_type="Order") == ["o1"]


# -- plain list --------------------------------------------------------------------------------


def test_list_shows_stuck_for_only_where_stuck(store: Store, settings: Settings) -> None:
    add(
        store,
        saga("done", state=SagaState.COMPLETED, step=None, created=0),
        saga("late", created=1, updated=1, deadline=2),
        saga("busy", created=2, updated=2, deadline=999),
    )
    rows = {r.saga.saga_id: r.stuck_for_seconds for r in list_sagas(settings, ListRequest(), now=at(12)).sagas}
    assert rows == {"done": None, "late": 10.0, "busy": None}


def test_list_older_than_means_not_updated_for(store: Store, settings: Settings) -> None:
    add(store, saga("old", updated=0), saga("new", created=1, updated=500))
    assert listed(settings, now_s=600, older_than="5m") == ["old"]
    assert listed(settings, now_s=600, older_than="1m") == ["old", "new"]


def test_default_cap_reports_truncation_and_limit_0_lifts_it(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sagactl.tools.inspect.DEFAULT_LIST_LIMIT", 3)
    add(store, *(saga(f"s{i}", created=i) for i in range(5)))
    capped = list_sagas(settings, ListRequest(), now=at(10))
    assert [r.saga.saga_id for r in capped.sagas] == ["s0", "s1", "s2"] and capped.truncated_at == 3
    everything = list_sagas(settings, ListRequest(limit=0), now=at(10))
    assert len(everything.sagas) == 5 and everything.truncated_at is None
    explicit = list_sagas(settings, ListRequest(limit=4), now=at(10))
    assert len(explicit.sagas) == 4 and explicit.truncated_at is None
    assert list_sagas(settings, ListRequest(limit=3), now=at(10)).truncated_at is None


def test_list_json_document_and_empty_list(store: Store, settings: Settings) -> None:
    assert list_document(list_sagas(settings, ListRequest(), now=at(0))).data == []
    add(store, saga("a", updated=0, deadline=1, error="token=abc123secret refused"))
    doc = list_document(list_sagas(settings, ListRequest(stuck=True), now=at(5)))
    assert list(doc.data[0]) == [
        "saga_id",
        "saga_type",
        "state",
        "current_step",
        "current_step_name",
        "created_at",
        "updated_at",
        "deadline_at",
        "stuck_for_seconds",
        "last_error",
        "lease_owner",
        "lease_expires_at",
    ]
    assert "abc123secret" not in str(doc.data) and "abc123secret" not in str(doc.tables)
    assert doc.ids == ["a"]


def test_missing_sqlite_log_is_unavailable_and_creates_nothing(tmp_path: Path) -> None:
    """A typo'd path never reads as "nothing stuck" (issue 8 item 2)."""
    path = tmp_path / "nowhere" / "log.db"
    settings = Settings(dsn=f"sqlite:///{path}")
    for read in (lambda: list_sagas(settings, ListRequest(stuck=True)), lambda: stats(settings)):
        with pytest.raises(UnavailableError, match=f"saga log {path} does not exist"):
            read()
    assert not path.exists() and not path.parent.exists()


# -- show --------------------------------------------------------------------------------------


def test_show_reports_the_last_error_of_each_failing_step(store: Store, settings: Settings) -> None:
    record = saga("x", state=SagaState.COMPENSATING, step=1, updated=0, deadline=1, error="HTTP 500 boom")
    record.steps[0].status = StepStatus.FAILED
    record.steps[0].error = "refused: out of stock"
    add(store, record)
    shown = show_saga(settings, "x")
    assert not isinstance(shown, SagaSummary)
    doc = show_document(shown)
    assert failing_steps(shown) == [
        {"name": "reserve", "status": "failed", "phase": "action", "attempts": 1, "error": "refused: out of stock"},
        {"name": "charge", "status": "compensating", "phase": "compensation", "attempts": 4, "error": "HTTP 500 boom"},
    ]
    assert [s["error"] for s in doc.data["steps"]] == ["refused: out of stock", None, None]
    assert [s["compensation_error"] for s in doc.data["steps"]] == [None, "HTTP 500 boom", None]
    assert ("action error at reserve", "refused: out of stock (after 1 attempt)") in doc.details
    assert ("compensation error at charge", "HTTP 500 boom (after 4 attempts)") in doc.details
    assert [t["new_state"] for t in doc.data["transitions"]] == ["compensating"]


@pytest.mark.parametrize("saga_id", ["nope", "' OR '1'='1", "x'; DROP TABLE saga_log; --"])
def test_show_unknown_is_not_found(store: Store, settings: Settings, saga_id: str) -> None:
    add(store, saga("x"))
    with pytest.raises(NotFoundError, match="not found"):
        show_saga(settings, saga_id)
    assert listed(settings) == ["x"]


# -- stats -------------------------------------------------------------------------------------


@pytest.fixture
def mixed(store: Store) -> Store:
    add(
        store,
        saga("d1", state=SagaState.COMPLETED, step=None, created=0),
        saga("d2", state=SagaState.COMPLETED, step=None, created=1),
        saga("f1", state=SagaState.FAILED, step=None, created=2),
        saga("p1", created=10, updated=10, deadline=20),
        saga("p2", created=30, updated=30, deadline=9_999),
        saga("c1", state=SagaState.COMPENSATING, created=5, updated=40, deadline=41, error="x"),
        saga("r1", saga_type="Refund", state=SagaState.STARTED, step=0, created=50, updated=50),
    )
    return store


def test_stats_counts_stuck_and_oldest(mixed: Store, settings: Settings) -> None:
    result = stats(settings, now=at(100))
    data = result.to_dict()
    assert data["totals"] == {
        "started": 1,
        "pending": 2,
        "compensating": 1,
        "completed": 2,
        "failed": 1,
        "active": 4,
        "stuck": 2,
    }
    assert data["oldest_active_created_at"] == "2026-11-26T08:00:05.000000Z"
    assert data["oldest_active_age_seconds"] == 95.0
    rows = {(r["saga_type"], r["state"]): (r["count"], r["stuck"], r["oldest_age_seconds"]) for r in data["sagas"]}
    assert rows[("Order", "pending")] == (2, 1, 90.0)
    assert rows[("Order", "compensating")] == (1, 1, 95.0)
    assert rows[("Order", "completed")] == (2, 0, None)
    assert rows[("Refund", "started")] == (1, 0, 50.0)
    assert rows[("Refund", "failed")] == (0, 0, None)
    assert len(data["sagas"]) == 10  # every state of every type, zeros included
    # 2m later the Refund saga (reserve: 2m, no deadline) is stuck too
    assert stats(settings, now=at(171)).totals()["stuck"] == 3


def test_stats_prometheus_exposition(mixed: Store, settings: Settings) -> None:
    text = stats_prometheus(stats(settings, now=at(100)))
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert samples[("sagactl_sagas", (("saga_type", "Order"), ("state", "completed")))] == 2
    assert samples[("sagactl_sagas", (("saga_type", "Refund"), ("state", "failed")))] == 0
    assert samples[("sagactl_sagas_stuck", (("saga_type", "Order"), ("state", "compensating")))] == 1
    assert samples[("sagactl_oldest_active_saga_age_seconds", (("saga_type", "Order"),))] == 95
    assert samples[("sagactl_oldest_active_saga_age_seconds", (("saga_type", "Refund"),))] == 50
    assert ("sagactl_sagas_stuck", (("saga_type", "Order"), ("state", "completed"))) not in samples
    assert "# TYPE sagactl_sagas gauge" in text
    render = stats_document(stats(settings, now=at(100))).prometheus
    assert render is not None and render() == text  # `stats -o prometheus` prints exactly this


def test_stats_reads_active_counts_exactly(mixed: Store, settings: Settings) -> None:
    """Active counts come from the rows, not only from counters: both agree after the engine's
    writes, and the active rows win if counters ever drifted (they are only for finished ones)."""
    counted = {(c.saga_type, c.state): c.count for c in mixed.counts()}
    exact = {(a.saga_type, a.state): a.count for a in mixed.active_counts()}
    assert {k: v for k, v in counted.items() if not k[1].terminal} == exact


# -- mapped tables (PostgreSQL, read-only) -------------------------------------------------------

MAPPING = TableMapping(
    table="orders.saga_instances",
    columns={
        "saga_id": "id",
        "saga_type": "kind",
        "state": "status",
        "current_step": "step_no",
        "current_step_name": "step",
        "updated_at": "modified_at",
        "created_at": "created_at",
        "deadline_at": "due_at",
        "last_error": "failure",
    },
    states={
        "started": "STARTED",
        "pending": "PENDING",
        "compensating": "COMPENSATING",
        "completed": "COMPLETED",
        "failed": "FAILED",
    },
)


def uid(n: int) -> str:
    return str(uuid.UUID(int=n))


MAPPED_ROWS = [
    # id, kind, status, step_no, step, modified (naive UTC), created, due, failure
    (1, "Order", "COMPENSATING", 2, "charge", 50, 0, 100, "card declined"),
    (2, "Order", "PENDING", 1, "reserve", 60, 1, 2000, None),
    (3, "Order", "PENDING", 0, "reserve", 0, 2, None, None),
    (4, "Order", "STARTED", None, None, 500, 3, None, None),
    (5, "Order", "COMPLETED", None, None, 5, 4, 1, None),
    (6, "Order", "ARCHIVED", None, None, 0, 5, 1, None),
    (7, "Refund", "PENDING", 1, "refund", 3, 6, 10, "timeout"),
]


@pytest.fixture
def mapped(pg_dsn: str) -> Iterator[Settings]:
    """orders.saga_instances in the test database: upper-case states, a naive timestamp, uuid IDs."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS orders")
        conn.execute("DROP TABLE IF EXISTS orders.saga_instances")
        conn.execute(
            "CREATE TABLE orders.saga_instances (id uuid PRIMARY KEY, kind text NOT NULL, status text NOT NULL,"
            " step_no integer, step text, modified_at timestamp NOT NULL, created_at timestamptz NOT NULL,"
            " due_at timestamptz, failure text)"
        )
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO orders.saga_instances VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                [
                    (uid(n), kind, status, no, step, at(mod).replace(tzinfo=None), at(cr), due and at(due), err)
                    for n, kind, status, no, step, mod, cr, due, err in MAPPED_ROWS
                ],
            )
    yield Settings(dsn=pg_dsn, mapping=MAPPING)
    assert table_rows(pg_dsn) == len(MAPPED_ROWS)  # nothing was ever written


def table_rows(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM orders.saga_instances").fetchone()
    return int(row[0]) if row else -1


def test_mapped_stuck_with_upper_case_states(mapped: Settings) -> None:
    rows = list_sagas(mapped, ListRequest(stuck=True), now=at(1000)).sagas
    assert [(r.saga.saga_id, r.stuck_for_seconds) for r in rows] == [(uid(1), 900.0), (uid(3), 1000.0), (uid(7), 990.0)]
    first = rows[0].to_dict()
    assert first["state"] == "compensating" and first["current_step"] == 2
    assert first["current_step_name"] == "charge" and first["last_error"] == "card declined"
    assert first["updated_at"] == "2026-11-26T08:00:50.000000Z"  # naive timestamp read as UTC
    assert [
        r.saga.saga_id for r in list_sagas(mapped, ListRequest(stuck=True, older_than="5m"), now=at(1000)).sagas
    ] == [
        uid(1),
        uid(3),
        uid(7),
        uid(4),
    ]
    assert [
        r.saga.saga_id for r in list_sagas(mapped, ListRequest(stuck=True, saga_type="Refund"), now=at(1000)).sagas
    ] == [uid(7)]


def test_mapped_list_filters_and_skips_unmapped_states(mapped: Settings) -> None:
    every = [r.saga.saga_id for r in list_sagas(mapped, ListRequest(), now=at(1000)).sagas]
    assert every == [uid(1), uid(2), uid(3), uid(4), uid(5), uid(7)]  # ARCHIVED is not mapped
    done = list_sagas(mapped, ListRequest(states=(SagaState.COMPLETED,)), now=at(1000)).sagas
    assert [r.saga.saga_id for r in done] == [uid(5)] and done[0].saga.state is SagaState.COMPLETED


def test_mapped_show_and_stats(mapped: Settings) -> None:
    shown = show_saga(mapped, uid(1))
    assert isinstance(shown, SagaSummary) and shown.state is SagaState.COMPENSATING
    doc = show_document(shown)
    assert doc.data["saga_id"] == uid(1) and doc.data["steps"] == [] and doc.data["last_error"] == "card declined"
    for missing in ("not-a-uuid", uid(99), "' OR '1'='1"):
        with pytest.raises(NotFoundError):
            show_saga(mapped, missing)
    totals = stats(mapped, now=at(1000)).totals()
    assert totals == {
        "started": 1,
        "pending": 3,
        "compensating": 1,
        "completed": 1,
        "failed": 0,
        "active": 5,
        "stuck": 3,
    }


def test_mapped_session_is_read_only_and_writers_refuse(mapped: Settings) -> None:
    table = MappedTableStore(mapped.dsn, MAPPING)
    try:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            table.db._pg.execute("DELETE FROM orders.saga_instances")
    finally:
        table.close()
    with pytest.raises(UsageError, match="read-only mapped table"), store_for(mapped):
        pass


def test_mapped_identifiers_with_case_spaces_and_quotes(pg_dsn: str) -> None:
    name = 'Saga "Log" 2'
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS orders")  # not left to another test: xdist runs this one alone
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier("orders", name)))
        conn.execute(
            sql.SQL('CREATE TABLE {} ("Saga ID" text, "State" text, "Updated" timestamptz)').format(
                sql.Identifier("orders", name)
            )
        )
        conn.execute(
            sql.SQL("INSERT INTO {} VALUES ('a', 'Compensating', %s)").format(sql.Identifier("orders", name)),
            [at(0)],
        )
    mapping = TableMapping(
        table=f"orders.{name}",
        columns={"saga_id": "Saga ID", "state": "State", "updated_at": "Updated"},
        states={"compensating": "Compensating"},
    )
    rows = list_sagas(Settings(dsn=pg_dsn, mapping=mapping), ListRequest(stuck=True), now=at(901)).sagas
    assert [(r.saga.saga_id, r.saga.saga_type, r.stuck_for_seconds) for r in rows] == [("a", f"orders.{name}", 901.0)]


# -- injection through everything that reaches SQL ---------------------------------------------


@pytest.mark.parametrize(
    "saga_type",
    ["Order' OR '1'='1", "Order'; DROP TABLE saga_log; --", "%s", "%(x)s", '"; SELECT 1; --', "Order\\"],
)
@pytest.mark.slow
def test_type_values_are_parameters(store: Store, settings: Settings, saga_type: str) -> None:
    add(store, saga("a", updated=0, deadline=1))
    assert stuck_ids(settings, 100, saga_type=saga_type) == []
    assert listed(settings, saga_type=saga_type) == []
    assert listed(settings) == ["a"]


@pytest.mark.parametrize(
    "saga_type", ["Order' OR '1'='1", "Order'; DELETE FROM orders.saga_instances; --", "%s", "Order\\"]
)
def test_mapped_type_values_are_parameters(mapped: Settings, saga_type: str) -> None:
    assert list_sagas(mapped, ListRequest(stuck=True, saga_type=saga_type), now=at(1000)).sagas == []
    assert list_sagas(mapped, ListRequest(saga_type=saga_type), now=at(1000)).sagas == []


@pytest.mark.parametrize(
    "table",
    [
        "saga_instances; DROP TABLE orders.saga_instances; --",
        'orders.saga_instances" ; DROP TABLE orders.saga_instances; --',
        "orders.saga_instances WHERE 1=1 --",
        "ORDERS.SAGA_INSTANCES",  # identifiers are exact, never folded or interpreted
    ],
)
def test_mapped_table_names_are_identifiers(mapped: Settings, table: str) -> None:
    hostile = Settings(
        dsn=mapped.dsn, mapping=TableMapping(table=table, columns=MAPPING.columns, states=MAPPING.states)
    )
    with pytest.raises(UsageError, match=r"table not found|not a table name"):
        list_sagas(hostile, ListRequest(stuck=True), now=at(1000))


@pytest.mark.parametrize("table", ["", "a.b.c", ".x", "x."])
def test_mapped_table_name_shape_is_checked(pg_dsn: str, table: str) -> None:
    with pytest.raises(UsageError, match="not a table name"):
        MappedTableStore(pg_dsn, TableMapping(table=table))


@pytest.mark.parametrize(
    ("key", "column"),
    [
        ("state", 'status" OR 1=1 --'),
        ("saga_type", "kind) FROM orders.saga_instances; DROP TABLE orders.saga_instances; --"),
        ("updated_at", "now()"),
        ("deadline_at", "due_at + interval '1 day'"),
    ],
)
def test_mapped_column_names_are_identifiers(mapped: Settings, key: str, column: str) -> None:
    hostile = TableMapping(table=MAPPING.table, columns={**MAPPING.columns, key: column}, states=MAPPING.states)
    with pytest.raises(UsageError, match="does not exist"):
        list_sagas(Settings(dsn=mapped.dsn, mapping=hostile), ListRequest(stuck=True), now=at(1000))


def test_mapped_state_values_are_parameters(mapped: Settings) -> None:
    hostile = TableMapping(
        table=MAPPING.table,
        columns=MAPPING.columns,
        states={**MAPPING.states, "compensating": "COMPENSATING' OR '1'='1"},
    )
    rows = list_sagas(Settings(dsn=mapped.dsn, mapping=hostile), ListRequest(stuck=True), now=at(1000)).sagas
    assert [r.saga.saga_id for r in rows] == [uid(3), uid(7)]  # the compensating row no longer matches


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        (TableMapping(table="t", columns={"sagaid": "id"}), "unknown column key"),
        (TableMapping(table="t", states={"running": "RUNNING"}), "unknown state"),
        (TableMapping(table="t", states={"started": "X", "pending": "X"}), "same value"),
    ],
)
def test_mapped_config_mistakes_are_usage_errors(pg_dsn: str, mapping: TableMapping, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        MappedTableStore(pg_dsn, mapping)


def test_mapped_type_filter_needs_a_type_column(mapped: Settings) -> None:
    untyped = TableMapping(
        table=MAPPING.table,
        columns={k: v for k, v in MAPPING.columns.items() if k != "saga_type"},
        states=MAPPING.states,
    )
    with pytest.raises(UsageError, match="saga_type"):
        list_sagas(Settings(dsn=mapped.dsn, mapping=untyped), ListRequest(saga_type="Order"), now=at(0))


def test_mapped_needs_an_existing_database_and_a_reachable_server(tmp_path: Path) -> None:
    with pytest.raises(UnavailableError, match=r"database .*x\.db does not exist"):
        list_sagas(Settings(dsn=f"sqlite:///{tmp_path}/x.db", mapping=MAPPING), ListRequest())
    with pytest.raises(UsageError, match="unsupported DSN"):
        list_sagas(Settings(dsn="mysql://db/x", mapping=MAPPING), ListRequest())
    with pytest.raises(UnavailableError, match=r"cannot connect.*\*\*\*"):
        list_sagas(Settings(dsn="postgresql://u:hunter22@127.0.0.1:1/db", mapping=MAPPING), ListRequest())
