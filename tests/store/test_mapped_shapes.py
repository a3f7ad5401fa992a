"""The generic mapping over tables of other shapes, on PostgreSQL and SQLite: a MassTransit saga
table (EF Core, int CurrentState), a JSON-state document table (Wolverine on Marten:
``mt_doc_*``), a home-grown table with epoch-second times and several values per state, quoted
mixed-case names; and each mapping mistake as one line."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql as pgsql

from sagactl.config import Settings, TableMapping
from sagactl.errors import UnavailableError, UsageError
from sagactl.models import SagaState
from sagactl.ops.sagas import list_groups, list_sagas, show_saga, stats
from sagactl.store.fragments import quote
from sagactl.store.mapped import MappedTableStore
from sagactl.tools.groups import parse_group_by
from sagactl.tools.inspect import ListRequest

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


def ago(minutes: float) -> datetime:
    return NOW - timedelta(minutes=minutes)


@dataclass
class Db:
    """An empty database of one dialect to create a table in, as the other framework would."""

    dialect: str
    dsn: str
    schema: str | None
    made: set[str] = field(default_factory=set)  # the tables created so far

    def run(self, statement: str, *args: Any) -> None:
        if self.dialect == "sqlite":
            with closing(sqlite3.connect(self.dsn.removeprefix("sqlite:///"))) as conn, conn:
                conn.execute(statement.replace("%s", "?"), args)
            return
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(statement, args)

    def table(self, name: str) -> str:
        """``name`` as the mapping names it (in this test's own schema on PostgreSQL)."""
        return f"{self.schema}.{name}" if self.schema else name

    def quoted(self, name: str) -> str:
        """``name`` quoted for this helper's own statements (a % doubled for psycopg)."""
        if self.schema:
            return f"{quote(self.schema)}.{quote(name)}".replace("%", "%%")
        return quote(name)

    def when(self, value: datetime) -> Any:
        """A time as the framework writes it: a timestamptz, or EF Core's / Marten's text on SQLite."""
        return value if self.dialect == "postgres" else value.strftime("%Y-%m-%d %H:%M:%S.%f0")

    def reader(self, **mapping: Any) -> Settings:
        return Settings(dsn=self.dsn, mapping=TableMapping(**mapping))


@pytest.fixture(params=["postgres", "sqlite"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        path = tmp_path / "other.db"
        sqlite3.connect(path).close()
        yield Db("sqlite", f"sqlite:///{path}", None)
        return
    dsn: str = request.getfixturevalue("pg_dsn")
    schema = f"shapes_{uuid.uuid4().hex[:8]}"  # one per test: xdist workers share the database
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(pgsql.SQL("CREATE SCHEMA {}").format(pgsql.Identifier(schema)))
    try:
        yield Db("postgres", dsn, schema)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(pgsql.SQL("DROP SCHEMA {} CASCADE").format(pgsql.Identifier(schema)))


def ids(settings: Settings, **request: Any) -> list[str]:
    return [r.saga.saga_id for r in list_sagas(settings, ListRequest(**request), now=NOW).sagas]


# -- MassTransit: EF Core, int CurrentState ---------------------------------------------------------

# InstanceState(x => x.CurrentState, Submitted, Accepted, Compensating, Faulted): 0 None, 1 Initial,
# 2 Final, then the states in that order
MASSTRANSIT_STATES = {"started": 1, "completed": 2, "pending": [3, 4], "compensating": 5, "failed": 6}


def masstransit(db: Db) -> Settings:
    uuid_type = "uuid" if db.dialect == "postgres" else "TEXT"
    time_type = "timestamp with time zone" if db.dialect == "postgres" else "TEXT"
    db.run(
        f'CREATE TABLE {db.quoted("OrderState")} ("CorrelationId" {uuid_type} NOT NULL PRIMARY KEY,'
        f' "CurrentState" integer NOT NULL, "OrderNumber" text, "SubmitDate" {time_type}, "Updated" {time_type},'
        ' "FaultReason" text)'
    )
    rows = [
        (1, 3, ago(60), None),  # Submitted, idle an hour
        (2, 4, ago(1), None),  # Accepted, just now
        (3, 5, ago(30), "payment refused"),  # Compensating
        (4, 2, ago(5), None),  # Final
        (5, 6, ago(5), "stock service down"),  # Faulted
        (6, 0, ago(5), None),  # None: not a state the mapping names
        (7, 1, ago(120), None),  # Initial
    ]
    for n, state, updated, fault in rows:
        correlation = str(uuid.UUID(int=n)) if db.dialect == "postgres" else str(uuid.UUID(int=n)).upper()
        db.run(
            f"INSERT INTO {db.quoted('OrderState')} VALUES (%s, %s, %s, %s, %s, %s)",
            correlation,
            state,
            f"PO-{n}",
            db.when(updated - timedelta(minutes=1)),
            db.when(updated),
            fault,
        )
    return db.reader(
        table=db.table("OrderState"),
        columns={
            "saga_id": "CorrelationId",
            "state": "CurrentState",
            "created_at": "SubmitDate",
            "updated_at": "Updated",
            "last_error": "FaultReason",
        },
        states=MASSTRANSIT_STATES,
    )


def test_masstransit_int_states(db: Db) -> None:
    settings = masstransit(db)
    one = str(uuid.UUID(int=1)) if db.dialect == "postgres" else str(uuid.UUID(int=1)).upper()
    listed = {r.saga.saga_id[-1]: r.saga for r in list_sagas(settings, ListRequest(), now=NOW).sagas}
    assert {k: (s.state.value, s.source_state) for k, s in listed.items()} == {
        "1": ("pending", "3"),
        "2": ("pending", "4"),
        "3": ("compensating", "5"),
        "4": ("completed", "2"),
        "5": ("failed", "6"),
        "7": ("started", "1"),
    }  # 0 (None) is no state the mapping names: left out
    assert [i[-1] for i in ids(settings, stuck=True)] == ["3", "7", "1"]  # compensating first, then longest idle
    assert [i[-1] for i in ids(settings, states=(SagaState.PENDING,))] == ["1", "2"]
    assert [i[-1] for i in ids(settings, error="refused")] == ["3"]
    assert [i[-1] for i in ids(settings, since="2h")] == ["3", "1", "4", "5", "2"]  # compensating, then oldest
    shown = show_saga(settings, one)
    assert (shown.saga_id, shown.state) == (one, SagaState.PENDING)
    totals = stats(settings, now=NOW).totals()
    assert (totals["pending"], totals["stuck"], totals["started"]) == (2, 3, 1)


# -- a JSON-state table: Wolverine's saga documents in Marten --------------------------------------

STATUSES = {
    "started": "Submitted",
    "pending": ["AwaitingPayment", "AwaitingShipment"],
    "compensating": "RefundingPayment",
    "completed": "Shipped",
    "failed": "Cancelled",
}


def marten(db: Db) -> Settings:
    if db.dialect == "postgres":
        ddl = (
            f"CREATE TABLE {db.quoted('mt_doc_ordersaga')} (id uuid NOT NULL PRIMARY KEY, data jsonb NOT NULL,"
            " mt_last_modified timestamp with time zone DEFAULT transaction_timestamp(), mt_version uuid NOT NULL,"
            " mt_dotnet_type varchar)"
        )
    else:
        ddl = (
            f"CREATE TABLE {db.quoted('mt_doc_ordersaga')} (id TEXT NOT NULL PRIMARY KEY, data TEXT NOT NULL,"
            " mt_last_modified TEXT, mt_version TEXT NOT NULL, mt_dotnet_type TEXT)"
        )
    db.run(ddl)
    documents = [
        (1, {"Status": "AwaitingPayment", "Progress": {"Step": "charge"}}, ago(40)),
        (2, {"Status": "RefundingPayment", "Progress": {"Step": "refund"}, "LastError": "PSP timeout"}, ago(20)),
        (3, {"Status": "Shipped", "Progress": {"Step": "ship"}}, ago(5)),
        (4, {"Status": "Cancelled", "LastError": "out of stock"}, ago(5)),
        (5, {"Status": "AwaitingShipment", "Progress": {"Step": "ship"}}, ago(2)),
    ]
    for n, data, modified in documents:
        db.run(
            f"INSERT INTO {db.quoted('mt_doc_ordersaga')} VALUES (%s, %s, %s, %s, %s)",
            str(uuid.UUID(int=n)),
            json.dumps({"Id": str(uuid.UUID(int=n)), **data}),
            db.when(modified),
            str(uuid.uuid4()),
            "Shop.OrderSaga, Shop",
        )
    return db.reader(
        table=db.table("mt_doc_ordersaga"),
        columns={
            "saga_id": "id",
            "saga_type": "mt_dotnet_type",
            "state": {"column": "data", "path": "Status"},
            "current_step_name": {"column": "data", "path": "Progress.Step"},
            "last_error": {"column": "data", "path": ["LastError"]},
            "updated_at": "mt_last_modified",
        },
        states=STATUSES,
    )


def test_a_state_kept_in_a_json_document(db: Db) -> None:
    settings = marten(db)
    rows = {r.saga.saga_id[-1]: r.saga for r in list_sagas(settings, ListRequest(), now=NOW).sagas}
    assert {k: (s.state.value, s.current_step_name, s.last_error) for k, s in rows.items()} == {
        "1": ("pending", "charge", None),
        "2": ("compensating", "refund", "PSP timeout"),
        "3": ("completed", "ship", None),
        "4": ("failed", None, "out of stock"),
        "5": ("pending", "ship", None),
    }
    assert rows["2"].source_state == "RefundingPayment" and rows["2"].saga_type == "Shop.OrderSaga, Shop"
    assert [i[-1] for i in ids(settings, stuck=True)] == ["2", "1"]  # idle past 15 minutes, compensating first
    assert [i[-1] for i in ids(settings, stuck=True, older_than="30m")] == ["1"]
    assert [i[-1] for i in ids(settings, step="ship")] == ["3", "5"]
    assert [i[-1] for i in ids(settings, error="stock")] == ["4"]
    groups = list_groups(
        settings, ListRequest(states=(SagaState.FAILED, SagaState.COMPENSATING)), parse_group_by(["error"]), now=NOW
    )
    assert sorted(g.count for g in groups.groups) == [1, 1]
    assert stats(settings, now=NOW).totals()["pending"] == 2


def test_a_document_that_is_not_json_is_skipped_not_fatal(db: Db) -> None:
    if db.dialect == "postgres":  # a jsonb column holds only JSON: the same shape with a text column
        db.run(f"CREATE TABLE {db.quoted('docs')} (id text PRIMARY KEY, body text, at timestamptz)")
    else:
        db.run(f"CREATE TABLE {db.quoted('docs')} (id TEXT PRIMARY KEY, body TEXT, at TEXT)")
    db.run(f"INSERT INTO {db.quoted('docs')} VALUES ('a', %s, %s)", '{"s": "RUNNING"}', db.when(ago(60)))
    db.run(f"INSERT INTO {db.quoted('docs')} VALUES ('b', %s, %s)", "not json {", db.when(ago(60)))
    settings = db.reader(
        table=db.table("docs"),
        columns={"saga_id": "id", "state": {"column": "body", "path": "s"}, "updated_at": "at"},
        states={"pending": "RUNNING"},
    )
    assert ids(settings) == ["a"] and ids(settings, stuck=True) == ["a"]


# -- a home-grown log: epoch seconds, several values per state, what list --stuck considers --------


def homegrown(db: Db, **extra: Any) -> Settings:
    """The table (created once per test) and a mapping of it with ``extra`` keys."""
    if "jobs" in db.made:
        return _jobs_mapping(db, extra)
    db.made.add("jobs")
    db.run(
        f"CREATE TABLE {db.quoted('jobs')} (job_id bigint PRIMARY KEY, kind text, phase text, touched bigint,"
        " due bigint, born bigint)"
    )
    epoch = lambda t: int(t.timestamp())  # noqa: E731
    for job_id, phase, touched, due in [
        (1, "QUEUED", ago(90), None),
        (2, "RUNNING", ago(90), None),
        (3, "RETRYING", ago(90), ago(1)),  # its deadline passed a minute ago
        (4, "ROLLING_BACK", ago(90), None),
        (5, "DONE", ago(90), None),
        (6, "RUNNING", ago(1), None),
    ]:
        db.run(
            f"INSERT INTO {db.quoted('jobs')} VALUES (%s, 'Import', %s, %s, %s, %s)",
            job_id,
            phase,
            epoch(touched),
            due and epoch(due),
            epoch(touched) - 60,
        )
    return _jobs_mapping(db, extra)


def _jobs_mapping(db: Db, extra: dict[str, Any]) -> Settings:
    mapping: dict[str, Any] = {
        "table": db.table("jobs"),
        "columns": {
            "saga_id": "job_id",
            "saga_type": "kind",
            "state": "phase",
            "updated_at": {"column": "touched", "unit": "s"},
            "deadline_at": {"column": "due", "unit": "seconds"},
            "created_at": {"column": "born", "unit": "s"},
        },
        "states": {
            "started": "QUEUED",
            "pending": ["RUNNING", "RETRYING"],
            "compensating": "ROLLING_BACK",
            "completed": "DONE",
            "failed": "ABANDONED",
        },
        **extra,
    }
    return db.reader(**mapping)


def test_epoch_seconds_and_several_values_per_state(db: Db) -> None:
    settings = homegrown(db)
    saga = show_saga(settings, "3")
    assert saga.deadline_at == ago(1) and saga.updated_at == ago(90) and saga.created_at == ago(91)
    assert (saga.state, saga.source_state) == (SagaState.PENDING, "RETRYING")
    assert ids(settings, stuck=True) == ["4", "1", "2", "3"]  # deadline or idle, compensating first
    assert ids(settings, states=(SagaState.PENDING,)) == ["2", "3", "6"]
    assert ids(settings, saga_ids=("2", "x", "6")) == ["2", "6"]  # an ID no bigint can be matches nothing
    assert [s.saga_id for s in [show_saga(settings, "4")]] == ["4"]


def test_stuck_states_narrow_what_list_stuck_considers(db: Db) -> None:
    settings = homegrown(db, stuck_states=["RUNNING", "ROLLING_BACK"], state_case="exact")
    assert ids(settings, stuck=True) == ["4", "2"]  # QUEUED waits on purpose; RETRYING has its deadline
    with pytest.raises(UsageError, match="'DONE' is not a value of an active state"):
        ids(homegrown(db, stuck_states=["DONE"]))


def test_times_in_a_number_column_need_their_unit(db: Db) -> None:
    """The issue's first failure: DBOS's epoch milliseconds read as timestamps."""
    db.run(f"CREATE TABLE {db.quoted('wf')} (workflow_uuid text PRIMARY KEY, status text, updated_at bigint)")
    db.run(f"INSERT INTO {db.quoted('wf')} VALUES ('w', 'PENDING', 1796568878268)")
    settings = db.reader(table=db.table("wf"), columns={"saga_id": "workflow_uuid", "state": "status"})
    with pytest.raises(UsageError) as caught:
        ids(settings)
    assert "column 'updated_at' is bigint: a time in it needs its unit (store.columns.updated_at)" in str(
        caught.value.one_line()
    ).replace("integer", "bigint")
    assert "unit: ms" in caught.value.one_line()
    fixed = db.reader(
        table=db.table("wf"),
        columns={"saga_id": "workflow_uuid", "state": "status", "updated_at": {"column": "updated_at", "unit": "ms"}},
        states={"pending": "PENDING"},
    )
    [row] = list_sagas(fixed, ListRequest(), now=NOW).sagas
    assert row.saga.updated_at == datetime.fromtimestamp(1796568878.268, UTC)


def test_a_table_without_times(db: Db) -> None:
    db.run(f"CREATE TABLE {db.quoted('bare')} (id text PRIMARY KEY, state text)")
    for saga_id, state in (("a", "compensating"), ("b", "pending"), ("c", "completed")):
        db.run(f"INSERT INTO {db.quoted('bare')} VALUES (%s, %s)", saga_id, state)
    settings = db.reader(table=db.table("bare"), columns={"saga_id": "id"})
    assert ids(settings, stuck=True) == ["a"]
    assert ids(settings) == ["a", "b", "c"]
    with pytest.raises(UsageError, match=r"--since needs store\.columns\.created_at"):
        ids(settings, since="1h")
    with pytest.raises(UsageError, match=r"--older-than: .* has no time to judge age by"):
        ids(settings, stuck=True, older_than="1h")


# -- names and values ----------------------------------------------------------------------------


def test_quoted_mixed_case_names(db: Db) -> None:
    name = 'Saga "Log" 100%'
    db.run(f'CREATE TABLE {db.quoted(name)} ("Saga ID" text, "State" text, "Changed At" bigint, "Kind of" text)')
    db.run(f"INSERT INTO {db.quoted(name)} VALUES ('a', 'Compensating', 0, 'Order')")
    settings = db.reader(
        table=db.table(name),
        columns={
            "saga_id": "Saga ID",
            "state": "State",
            "updated_at": {"column": "Changed At", "unit": "ms"},
            "saga_type": "Kind of",
        },
        states={"compensating": "Compensating"},
    )
    [row] = list_sagas(settings, ListRequest(stuck=True), now=NOW).sagas
    assert (row.saga.saga_id, row.saga.saga_type, row.saga.source_state) == ("a", "Order", "Compensating")
    wrong_case = db.reader(table=db.table(name), columns={"saga_id": "saga id", "state": "State"})
    with pytest.raises(
        UsageError, match=r"column 'saga id' does not exist \(there is 'Saga ID': names are case-sensitive\)"
    ):
        ids(wrong_case)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"columns": {"updated_at": {"column": "at", "path": "x"}}}, "a time is read from a column of its own"),
        ({"columns": {"state": {"column": "s", "unit": "ms"}}}, "only a time .* has a unit"),
        ({"columns": {"updated_at": {"column": "at", "unit": "minutes"}}}, "must be ms or s"),
        ({"columns": {"state": {"colum": "s"}}}, r"unknown key\(s\) colum"),
        ({"columns": {"state": {"column": "s", "path": 'a"b'}}}, "a key with a double quote"),
        ({"states": {"pending": [3, "RUNNING"]}}, "mixes numbers and text"),
        ({"states": {"pending": True}}, "is not a state value"),
        ({"states": {"failed": {"failed": "yes"}}}, "must be true or false"),
        ({"states": {"failed": {"failed": True}, "pending": "RUNNING"}}, "is not a condition"),
        ({"state_case": "upper"}, "must be 'any' or 'exact'"),
        ({"states": {"failed": {"failed": True}}, "stuck_states": ["x"]}, "states derived from booleans have none"),
        ({"columns": {"saga_id": []}}, "empty list"),
    ],
)
def test_mapping_mistakes_are_one_line_naming_the_key(tmp_path: Path, mapping: dict[str, Any], message: str) -> None:
    path = tmp_path / "t.db"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE t (saga_id text, state text, s text, at text, failed boolean)")
    with pytest.raises(UsageError, match=message):
        MappedTableStore(f"sqlite:///{path}", TableMapping(table="t", **mapping))


def test_column_types_that_cannot_be_read_as_mapped(db: Db) -> None:
    db.run(f"CREATE TABLE {db.quoted('typed')} (id text, status text, n integer, flag text, at text)")
    table = db.table("typed")
    cases: list[tuple[dict[str, Any], str]] = [
        ({"columns": {"saga_id": "id", "state": "status"}, "states": {"pending": 3}}, "store.states are numbers but"),
        ({"columns": {"saga_id": "id", "state": {"column": "n", "path": "x"}}}, "is integer, not JSON"),
        ({"columns": {"saga_id": "id"}, "states": {"failed": {"flag": True}}}, "column 'flag' is text, not boolean"),
        (
            {"columns": {"saga_id": "id", "state": "status", "updated_at": {"column": "at", "unit": "ms"}}},
            "not epoch ms",
        ),
    ]
    if db.dialect == "postgres":  # SQLite keeps times as text
        cases.append(({"columns": {"saga_id": "id", "state": "status", "updated_at": "at"}}, "is text, not a time"))
    for mapping, message in cases:
        with pytest.raises(UsageError, match=message):
            ids(db.reader(table=table, **mapping))


def test_a_missing_database_or_table_is_one_line(tmp_path: Path, db: Db) -> None:
    with pytest.raises(UnavailableError, match="does not exist"):
        ids(Settings(dsn=f"sqlite:///{tmp_path}/none.db", mapping=TableMapping(table="t")))
    with pytest.raises(UsageError, match=r"nowhere in .*: table not found"):
        ids(db.reader(table=db.table("nowhere")))


_names = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(table=_names, column=_names, value=st.text(max_size=20))
def test_any_names_are_identifiers_and_any_values_parameters(
    tmp_path: Path, table: str, column: str, value: str
) -> None:
    """Whatever the names and the state value, the table reads back what was written (SQLite,
    where any identifier can be created; PostgreSQL's quoting is the same)."""
    if "." in table or column.lower() in ("id", "kind"):
        return  # a dot separates SCHEMA.TABLE; the other columns' names are taken
    path = tmp_path / f"{uuid.uuid4().hex}.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(f"CREATE TABLE {quote(table)} (id text, {quote(column)} text, kind text)")
        conn.execute(f"INSERT INTO {quote(table)} VALUES ('x', ?, 'K')", (value or "v",))
    settings_ = Settings(
        dsn=f"sqlite:///{path}",
        mapping=TableMapping(
            table=table,
            columns={"saga_id": "id", "state": column, "saga_type": "kind"},
            states={"pending": value or "v"},
        ),
    )
    try:
        [row] = list_sagas(settings_, ListRequest(saga_type="K"), now=NOW).sagas
    except UsageError as exc:  # a value that is also another state's default name
        assert "same value" in exc.one_line()
        return
    assert (row.saga.saga_id, row.saga.state, row.saga.source_state) == ("x", SagaState.PENDING, value or "v")
