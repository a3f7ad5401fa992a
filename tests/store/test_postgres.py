"""PostgreSQL specifics: migrations under concurrency, connection failures (exit 4, password
masked), a missing schema, round trips per write, column types and the stuck query plan."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.pq import Trace
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.errors import UnavailableError
from sagactl.models import SagaState, SortKey, StateCount, StepRecord, StepStatus, Transition
from sagactl.store import open_store
from sagactl.store.base import SagaQuery
from sagactl.store.migrations import migrations
from sagactl.store.postgres import PostgresStore
from tests.support.postgres import _as_url, _with_dbname, fresh_database
from tests.support.processes import sagactl
from tests.support.sagas import add, at, saga

# The schema version db init reaches: the last migration, schema/*/006_reruns.sql (after 005). A new
# migration bumps it here on purpose.
SCHEMA_VERSION = 10
# Where PostgreSQL records applied migrations: existing databases are upgraded by reading it.
VERSION_TABLE = "sagactl_schema_migrations"

runner = CliRunner()
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SECRET = "hunter2-Secret"


@pytest.fixture
def fresh_db(pg_admin_dsn: str) -> Iterator[str]:
    """An empty database of its own (no schema), dropped afterwards."""
    with fresh_database(pg_admin_dsn, "sagactl_fresh") as dsn:
        yield dsn


@pytest.fixture
def pg(pg_dsn: str) -> Iterator[PostgresStore]:
    store = PostgresStore(pg_dsn)
    truncate(pg_dsn)
    try:
        yield store
    finally:
        store.close()
        truncate(pg_dsn)


def truncate(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE saga_log, saga_transitions, saga_counts, saga_jobs RESTART IDENTITY")


def tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")
        return {r[0] for r in rows}


# -- db init ----------------------------------------------------------------------------------


def test_concurrent_open_and_init_apply_each_migration_once(fresh_db: str) -> None:
    """Eight processes' worth of stores open a fresh database at the same instant (each one
    creates the missing schema) and run db init: every one succeeds, each migration runs once."""
    barrier = threading.Barrier(8)
    versions: list[int] = []
    errors: list[BaseException] = []

    def open_and_init() -> None:
        try:
            barrier.wait(timeout=30)
            store = PostgresStore(fresh_db)
            try:
                versions.append(store.init_schema())
            finally:
                store.close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_and_init) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert versions == [SCHEMA_VERSION] * 8
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        rows = conn.execute(f"SELECT version, name FROM {VERSION_TABLE} ORDER BY version").fetchall()
    assert rows == [(m.version, m.name) for m in migrations("postgres")]
    assert rows[-1][0] == SCHEMA_VERSION
    assert {"saga_log", "saga_transitions", "saga_counts", VERSION_TABLE} <= tables(fresh_db)


@pytest.mark.slow
def test_db_init_from_several_processes_at_once_then_again(fresh_db: str) -> None:
    env = {**os.environ, "SAGACTL_DSN": fresh_db}
    env.pop("SAGACTL_CONFIG", None)
    with tempfile.TemporaryDirectory() as cwd:
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "sagactl", "db", "init"],
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(4)
        ]
        outcomes = [(p.wait(timeout=60), p.stderr.read() if p.stderr else "") for p in procs]
        for code, stderr in outcomes:
            assert code == 0, stderr
            assert f"is at schema version {SCHEMA_VERSION}" in stderr
        again = runner.invoke(app, ["db", "init", "--dsn", fresh_db])
    assert again.exit_code == 0 and again.stdout == ""
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert conn.execute(f"SELECT count(*) FROM {VERSION_TABLE}").fetchone() == (len(migrations("postgres")),)


def test_init_while_another_process_writes(pg: PostgresStore, pg_dsn: str) -> None:
    """db init on an up-to-date database takes no table locks: it never blocks a driver."""
    add(pg, saga("a", state=SagaState.STARTED))
    with psycopg.connect(pg_dsn) as writer:  # an open transaction holding a row lock
        writer.execute("UPDATE saga_log SET updated_at = updated_at WHERE saga_id = 'a'")
        other = PostgresStore(pg_dsn)
        try:
            other._conn.execute("SET lock_timeout = '2s'")
            assert other.init_schema() == SCHEMA_VERSION
        finally:
            other.close()
        writer.rollback()


def test_an_older_schema_is_read_as_is_and_upgraded_by_writers(fresh_db: str) -> None:
    PostgresStore(fresh_db).close()
    with psycopg.connect(fresh_db, autocommit=True) as conn:  # back to v1
        conn.execute("DROP INDEX saga_log_created")
        conn.execute(f"DELETE FROM {VERSION_TABLE} WHERE version > 1")
    reader = PostgresStore(fresh_db, create=False)
    try:
        assert reader.schema_version() == 1
        assert reader.list_sagas(SagaQuery(limit=5)) == []
    finally:
        reader.close()
    result = runner.invoke(app, ["db", "init", "--dsn", fresh_db])
    assert result.exit_code == 0 and f"is at schema version {SCHEMA_VERSION}" in result.stderr
    writer = PostgresStore(fresh_db)
    try:
        assert writer.schema_version() == SCHEMA_VERSION
    finally:
        writer.close()
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        assert conn.execute("SELECT to_regclass('saga_log_created') IS NOT NULL").fetchone() == (True,)


def test_newer_schema_is_refused(fresh_db: str) -> None:
    PostgresStore(fresh_db).close()
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        conn.execute(f"INSERT INTO {VERSION_TABLE} (version, name) VALUES (99, '099_future.sql')")
    with pytest.raises(UnavailableError, match="version 99, newer than this sagactl supports"):
        PostgresStore(fresh_db)


def test_v7_counters_carry_over_to_v8_slots(fresh_db: str) -> None:
    """A log at v7 (one counter row per type and state) upgraded to v8 keeps its counts."""
    store = PostgresStore(fresh_db)
    try:
        for n in range(3):
            add(store, saga(f"s{n}", state=SagaState.COMPLETED if n else SagaState.FAILED))
    finally:
        store.close()
    with psycopg.connect(fresh_db, autocommit=True) as conn:  # back to v7's counters
        conn.execute("ALTER TABLE saga_counts DROP CONSTRAINT saga_counts_pkey")
        conn.execute("DELETE FROM saga_counts")
        conn.execute("ALTER TABLE saga_counts DROP COLUMN slot")
        conn.execute("ALTER TABLE saga_counts ADD PRIMARY KEY (saga_type, state)")
        conn.execute("INSERT INTO saga_counts (saga_type, state, n) SELECT saga_type, state, count(*) FROM saga_log"
                     " GROUP BY saga_type, state")  # fmt: skip
        conn.execute(f"DELETE FROM {VERSION_TABLE} WHERE version > 7")
        for statement in migrations("postgres")[6].statements:  # v7's functions
            conn.execute(statement)
    store = PostgresStore(fresh_db)  # a writer upgrades
    try:
        assert store.schema_version() == SCHEMA_VERSION
        assert {(c.state.value, c.count) for c in store.counts()} == {("completed", 2), ("failed", 1)}
        add(store, saga("s9", state=SagaState.FAILED))
        assert {(c.state.value, c.count) for c in store.counts()} == {("completed", 2), ("failed", 2)}
    finally:
        store.close()


def test_concurrent_writers_count_in_their_own_rows_and_the_sums_are_exact(pg: PostgresStore, pg_dsn: str) -> None:
    """v8: each connection counts in its own row (no queue on one row per type and state);
    stats reads the sums, `db recount` folds them back into one row each, changing nothing."""

    def writer(k: int) -> None:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            for n in range(25):
                saga_id = f"w{k}-{n}"
                conn.execute(
                    "INSERT INTO saga_log (saga_id, saga_type, state, steps, definition, created_at, updated_at)"
                    " VALUES (%s, 'Load', 'pending', '[]', '{}', now(), now())",
                    [saga_id],
                )
                if n % 2:
                    conn.execute("UPDATE saga_log SET state = 'failed' WHERE saga_id = %s", [saga_id])
            conn.execute("DELETE FROM saga_log WHERE saga_id = %s", [f"w{k}-0"])  # a statement-level delete

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    expected = {("Load", "pending"): 8 * 12, ("Load", "failed"): 8 * 12}
    assert {(c.saga_type, c.state.value): c.count for c in pg.counts()} == expected
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        slots = conn.execute("SELECT count(DISTINCT slot) FROM saga_counts WHERE saga_type = 'Load'").fetchone()
    assert slots is not None and slots[0] > 1
    before, after = pg.recount()
    assert {(c.saga_type, c.state.value): c.count for c in before} == expected
    assert {(c.saga_type, c.state.value): c.count for c in after} == expected
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM saga_counts WHERE saga_type = 'Load'").fetchone() == (2,)


# -- missing schema ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["list"], ["list", "--stuck"], ["show", "x"], ["stats"]])
def test_read_only_commands_never_create_the_schema(fresh_db: str, command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--dsn", fresh_db])
    assert result.exit_code == 4
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "has no saga_log schema" in result.stderr and "run 'sagactl db init'" in result.stderr
    assert tables(fresh_db) == set()


def test_db_init_then_list_works(fresh_db: str) -> None:
    assert runner.invoke(app, ["db", "init", "--dsn", fresh_db]).exit_code == 0
    listed = runner.invoke(app, ["list", "-o", "json", "--dsn", fresh_db])
    assert (listed.exit_code, listed.stdout, listed.stderr) == (0, "[]\n", "")


def test_writing_commands_create_the_schema(fresh_db: str) -> None:
    store = open_store(fresh_db)
    try:
        assert store.init_schema() == SCHEMA_VERSION
    finally:
        store.close()
    assert {"saga_log", "saga_transitions", "saga_counts"} <= tables(fresh_db)


def test_schema_dropped_under_a_running_store(fresh_db: str) -> None:
    store = PostgresStore(fresh_db)
    try:
        with psycopg.connect(fresh_db, autocommit=True) as conn:
            conn.execute("DROP TABLE saga_log")
        with pytest.raises(UnavailableError, match="no saga_log schema") as caught:
            store.get("x")
        assert "run 'sagactl db init'" in caught.value.one_line()
    finally:
        store.close()


# -- unreachable and misconfigured -------------------------------------------------------------


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://ops:{SECRET}@127.0.0.1:1/orders",  # nothing listens
        f"postgresql://ops:{SECRET}@127.0.0.1:notaport/orders",  # not a DSN
        f"postgresql://ops@127.0.0.1:1/orders?password={SECRET}",
        f"postgresql://ops:{SECRET}@127.0.0.1:5432/orders?sslmode=bogus",
    ],
)
@pytest.mark.parametrize("command", [["list", "--stuck"], ["stats"], ["show", "x"], ["db", "init"]])
def test_unreachable_or_misconfigured_is_one_masked_line_exit_4(dsn: str, command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--dsn", dsn])
    assert result.exit_code == 4, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith("sagactl: error: ") and result.stderr.count("\n") == 1
    assert SECRET not in result.stderr and "***" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://ops:pa ss-word@127.0.0.1/orders",  # a space: libpq quotes it back in its error
        "postgresql://ops:p@ss-word@127.0.0.1:1/orders",  # an unencoded @: the rest reads as the host
    ],
)
@pytest.mark.parametrize("verbose", [[], ["-v"]])
@pytest.mark.slow
def test_an_invalid_dsn_password_is_masked_in_every_line(dsn: str, verbose: list[str]) -> None:
    """As a runbook runs it (a subprocess), with and without -v: the error line and the
    traceback show the DSN as postgresql://ops:***@…, never the password or a piece of it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGACTL_")}
    done = subprocess.run(
        [sys.executable, "-m", "sagactl", "list", "--dsn", dsn, *verbose],
        capture_output=True, text=True, timeout=60, env=env, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert done.stderr.splitlines()[-1].startswith("sagactl: error: ")
    assert "postgresql://ops:***@127.0.0.1" in done.stderr
    assert ("Traceback" in done.stderr) is bool(verbose)
    for piece in ("pa ss", "ss-word", "p@ss"):
        assert piece not in done.stderr + done.stdout


def test_missing_database_exit_4(pg_admin_dsn: str) -> None:
    dsn = _as_url(_with_dbname(pg_admin_dsn, "sagactl_no_such_db"))
    result = runner.invoke(app, ["list", "--dsn", dsn])
    assert result.exit_code == 4
    assert "does not exist" in result.stderr and result.stderr.count("\n") == 1


def test_connection_lost_is_unavailable(pg: PostgresStore, pg_admin_dsn: str) -> None:
    pid = pg._conn.info.backend_pid
    with psycopg.connect(pg_admin_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])
    with pytest.raises(UnavailableError, match="reading saga x failed") as caught:
        pg.get("x")
    assert caught.value.exit_code == 4


# -- round trips and types ---------------------------------------------------------------------


def round_trips(store: PostgresStore, action: object) -> tuple[int, str]:
    with tempfile.TemporaryFile("w+") as trace:
        store._conn.pgconn.trace(trace.fileno())
        store._conn.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)
        try:
            action()  # type: ignore[operator]
        finally:
            store._conn.pgconn.untrace()
        trace.seek(0)
        text = trace.read()
    return text.count("\tSync"), text


def test_each_write_is_one_round_trip_and_one_statement(pg: PostgresStore) -> None:
    record = saga("a", state=SagaState.STARTED)
    record.lease_owner, record.lease_expires_at = "me", at(30)
    first = [Transition("a", None, None, "started", at(0))]
    trips, text = round_trips(pg, lambda: pg.create(record, first))
    assert trips == 1 and "BEGIN" not in text
    record.state = SagaState.PENDING
    flush = [
        Transition("a", None, "started", "pending", at(1)),
        Transition("a", "reserve", "pending", "executing", at(1)),
    ]
    trips, text = round_trips(pg, lambda: pg.save(record, flush, owner="me"))
    assert trips == 1 and "BEGIN" not in text and "COMMIT" not in text
    assert round_trips(pg, lambda: pg.acquire_lease("a", "me", at(60), at(2)))[0] == 1
    assert round_trips(pg, lambda: pg.release_lease("a", "me"))[0] == 1
    assert pg.counts() == [StateCount("Order", SagaState.PENDING, 1)]
    assert [t.new_state for t in pg.transitions("a")] == ["started", "pending", "executing"]


def sent_bytes(trace: str) -> int:
    """Bytes the client sent, from a libpq trace ("F\t<length>\t<message> ...")."""
    return sum(int(line.split("\t")[1]) for line in trace.splitlines() if line.startswith("F\t"))


def test_a_commit_sends_the_same_bytes_whatever_the_sagas_length(pg: PostgresStore) -> None:
    """A step's commit carries the changed step records and the new transitions, never the whole
    steps array, the input or the definition again: its size does not grow with the saga."""
    sizes = {}
    for length in (4, 400):
        record = saga(f"len-{length}", state=SagaState.PENDING)
        done = StepStatus.COMPLETED
        record.steps = [StepRecord(name=f"step-{i}", status=done, result={"i": i}) for i in range(length)]
        record.definition = {"document": {"steps": [{"name": f"step-{i}"} for i in range(length)]}}
        record.lease_owner = "me"
        pg.create(record, [Transition(record.saga_id, None, None, "started", at(0))])
        index = length - 2
        record.steps[index].status, record.current_step = StepStatus.EXECUTING, index
        flush = [Transition(record.saga_id, f"step-{index}", "pending", "executing", at(1), {"attempt": 1})]
        trips, text = round_trips(pg, lambda r=record, f=flush, i=index: pg.save(r, f, owner="me", steps=[i]))
        assert trips == 1
        assert "definition" not in text and "data =" not in text
        sizes[length] = sent_bytes(text)
        loaded = pg.get(record.saga_id)
        assert loaded is not None and loaded.steps[index].status is StepStatus.EXECUTING
    assert sizes[4] < 1500
    assert abs(sizes[400] - sizes[4]) <= 32  # only the digits of the step index and names differ


def test_steps_are_stored_with_lz4_where_the_server_has_it(pg: PostgresStore, pg_dsn: str) -> None:
    """Every commit recompresses the whole steps array inside the server: lz4 (v7) where the
    server was built with it, pglz (the default) elsewhere. The stored value reads the same."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        choices = conn.execute("SELECT enumvals FROM pg_settings WHERE name = 'default_toast_compression'").fetchone()
        method = conn.execute(
            "SELECT attcompression FROM pg_attribute WHERE attrelid = 'saga_log'::regclass AND attname = 'steps'"
        ).fetchone()
    assert choices is not None and method is not None
    assert method[0] == ("l" if "lz4" in choices[0] else "")
    record = saga("big", state=SagaState.PENDING)
    record.steps = [StepRecord(name=f"step-{i}", result={"text": f"result {i} " * 20}) for i in range(300)]
    record.lease_owner = "me"
    pg.create(record, [])
    record.steps[7].status = StepStatus.EXECUTING
    pg.save(record, [], owner="me", steps=[7])
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        stored = conn.execute(
            "SELECT pg_column_compression(steps), steps->7->>'status' FROM saga_log WHERE saga_id = 'big'"
        ).fetchone()
    assert stored == ("lz4" if "lz4" in choices[0] else "pglz", "executing")


def test_column_types_and_lowercase_states(pg: PostgresStore, pg_dsn: str) -> None:
    add(pg, saga("a", state=SagaState.COMPENSATING, deadline=5))
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        types = dict(
            conn.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'saga_log'"
            ).fetchall()
        )
        state = conn.execute("SELECT state, data->>'order_id' FROM saga_log").fetchone()
        detail_type = conn.execute(
            "SELECT data_type FROM information_schema.columns"
            " WHERE table_name = 'saga_transitions' AND column_name = 'detail'"
        ).fetchone()
    for column in ("data", "steps", "definition"):
        assert types[column] == "jsonb"
    for column in ("deadline_at", "lease_expires_at", "created_at", "updated_at"):
        assert types[column] == "timestamp with time zone"
    assert {"current_step_name", "last_error", "lease_owner", "current_step"} <= set(types)
    assert state == ("compensating", "a")
    assert detail_type == ("jsonb",)


def test_concurrent_writers_keep_counters_exact(pg: PostgresStore, pg_dsn: str) -> None:
    """Counter rows are updated in a fixed order: parallel flushes never deadlock or drift."""
    errors: list[BaseException] = []

    def drive(worker: int) -> None:
        store = PostgresStore(pg_dsn)
        try:
            for n in range(15):
                record = saga(f"w{worker}-{n}", state=SagaState.STARTED)
                record.lease_owner = f"w{worker}"
                add(store, record)
                for new in (SagaState.PENDING, SagaState.COMPENSATING if n % 2 else SagaState.COMPLETED):
                    record.state = new
                    store.save(record, [], owner=f"w{worker}")
                if n % 2:
                    record.state = SagaState.FAILED
                    store.save(record, [], owner=f"w{worker}")
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=drive, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    assert pg.counts() == [StateCount("Order", SagaState.COMPLETED, 32), StateCount("Order", SagaState.FAILED, 28)]


# -- plans ---------------------------------------------------------------------------------------


@pytest.mark.slow
def test_stuck_and_active_counts_read_only_the_active_indexes(pg: PostgresStore, pg_dsn: str) -> None:
    """With 30k finished sagas the stuck query and the active counts never scan the table."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO saga_log (saga_id, saga_type, state, steps, definition, created_at, updated_at)"
            " SELECT 'done-' || i, 'Order', CASE WHEN i %% 10 = 0 THEN 'failed' ELSE 'completed' END,"
            " '[]', '{}',"
            " %s::timestamptz - i * interval '1 second', %s::timestamptz - i * interval '1 second'"
            " FROM generate_series(1, 30000) AS i",
            [at(0), at(0)],
        )
    add(pg, saga("late", updated=0, deadline=10), saga("idle", state=SagaState.STARTED, updated=0))
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("ANALYZE saga_log")
    plan = pg.explain_list(SagaQuery(stuck=True, now=at(1000), idle_before=at(500)))
    assert "Seq Scan on saga_log" not in plan, plan
    assert "using saga_log_active_" in plan, plan  # a partial index over active sagas only
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        counts_plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT saga_type, state, count(*), min(created_at) FROM saga_log"
                " WHERE state NOT IN ('completed', 'failed') GROUP BY saga_type, state"
            )
        )
    assert "Seq Scan on saga_log" not in counts_plan, counts_plan
    assert [s.saga_id for s in pg.list_sagas(SagaQuery(stuck=True, now=at(1000), idle_before=at(500)))] == [
        "idle",
        "late",
    ]
    assert sum(a.count for a in pg.active_counts()) == 2
    listing = pg.explain_list(SagaQuery(limit=1000))
    assert "Seq Scan on saga_log" not in listing and "Sort Method: quicksort" in listing, listing
    assert "using saga_log_created" in listing and "using saga_log_state_created" in listing, listing


# -- roles without the privileges a command needs (issue 8 item 15) ----------------------------

SMALL_SAGA = """
saga: Small
endpoints:
  svc: {type: exec, command: [python3, -c, 'import sys; sys.stdin.read(); print(1)']}
defaults:
  timeout: 20s
  retry: {max_attempts: 1}
steps:
  - {name: first, endpoint: svc, action: {args: [a]}, compensation: {args: [c]}}
  - {name: second, endpoint: svc, action: {args: [a]}}
"""
GRANT_HINT = (
    "grant the role it connects as ({role}) SELECT on the saga log tables to read, and INSERT, UPDATE on them"
    " (USAGE on their sequences) to run sagas"
)


@pytest.fixture
def role(fresh_db: str) -> Iterator[Callable[..., tuple[str, str]]]:
    """make(GRANT ...) -> (name, DSN) of a new LOGIN role in ``fresh_db`` (schema initialised)
    with those statements run (``{role}`` stands for its name); the roles are dropped after."""
    open_store(fresh_db).close()
    made: list[str] = []

    def make(*grants: str) -> tuple[str, str]:
        name = f"sagactl_role_{uuid.uuid4().hex[:8]}"  # roles are cluster-wide: unique names
        with psycopg.connect(fresh_db, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)))
            made.append(name)
            for grant in grants:
                conn.execute(grant.format(role=name).encode())
        info = psycopg.conninfo.conninfo_to_dict(fresh_db)
        info.update(user=name)
        info.pop("password", None)
        return name, _as_url(psycopg.conninfo.make_conninfo(**info))

    yield make
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("DROP OWNED BY {0}; DROP ROLE {0}").format(sql.Identifier(name)))


@pytest.mark.parametrize("command", [["list", "--stuck", "--exit-code"], ["show", "x"], ["stats"]])
@pytest.mark.slow
def test_a_role_without_privileges_reading_is_exit_4(role: Any, command: list[str]) -> None:
    name, dsn = role()
    result = runner.invoke(app, [*command, "--dsn", dsn])
    assert (result.exit_code, result.stdout) == (4, "")
    assert result.stderr == (
        f"sagactl: error: PostgreSQL {dsn}: reading the schema version failed: permission denied for table"
        f" sagactl_schema_migrations; {GRANT_HINT.format(role=name)}\n"
    )


def test_a_read_only_role_reads_and_refuses_to_write(role: Any, fresh_db: str, tmp_path: Path) -> None:
    owner = open_store(fresh_db)
    try:
        add(owner, saga("s-1"))
    finally:
        owner.close()
    name, dsn = role("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    assert runner.invoke(app, ["list", "-q", "--dsn", dsn]).stdout == "s-1\n"
    saga_file = tmp_path / "small.yaml"
    saga_file.write_text(SMALL_SAGA)
    ran = runner.invoke(app, ["run", str(saga_file), "--saga-id", "r-1", "--dsn", dsn])
    assert (ran.exit_code, ran.stdout) == (4, ""), ran.stderr
    assert ran.stderr == (
        f"sagactl: error: PostgreSQL {dsn}: recording saga r-1 failed: permission denied for table saga_log;"
        f" {GRANT_HINT.format(role=name)}\n"
    )
    init = runner.invoke(app, ["db", "init", "--dsn", dsn])
    assert (init.exit_code, init.stdout) == (4, "")
    assert init.stderr == (
        f"sagactl: error: PostgreSQL {dsn}: creating the schema failed: permission denied for schema public;"
        f" run 'sagactl db init' once as a role that may create tables there (not {name})\n"
    )
    assert runner.invoke(app, ["list", "-q", "--dsn", fresh_db]).stdout == "s-1\n"  # nothing recorded


@pytest.mark.slow
def test_a_write_refused_mid_saga_is_exit_4_and_the_saga_resumes(role: Any, fresh_db: str, tmp_path: Path) -> None:
    """The role may insert (the saga starts) but not update saga_log (its first step cannot be
    recorded): one line, exit 4, the saga as last committed; `resume` by a role that may
    write completes it, taking the lease over from the dead process."""
    name, dsn = role(
        "GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {role}",
        "GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}",
        "REVOKE UPDATE ON saga_log FROM {role}",
    )
    saga_file = tmp_path / "small.yaml"
    saga_file.write_text(SMALL_SAGA)
    done = sagactl("run", str(saga_file), "--saga-id", "w-1", "-q", "--dsn", dsn, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (4, "")
    assert done.stderr.startswith(f"sagactl: error: PostgreSQL {dsn}: ")
    assert "failed: permission denied for table saga_log; " in done.stderr
    assert done.stderr.endswith(
        f"{GRANT_HINT.format(role=name)}; then 'sagactl resume w-1' continues the saga from its last committed"
        " state\n"
    )
    owner = open_store(fresh_db)
    try:
        stuck = owner.get("w-1")
        assert stuck is not None and stuck.state is SagaState.STARTED and stuck.lease_owner  # the dead process's
        assert [s.status for s in stuck.steps] == [StepStatus.PENDING, StepStatus.PENDING]  # nothing was sent
    finally:
        owner.close()
    resumed = runner.invoke(app, ["resume", "w-1", "-q", "--dsn", fresh_db])
    assert (resumed.exit_code, resumed.stdout, resumed.stderr) == (0, "w-1\n", "")
    shown = json.loads(runner.invoke(app, ["show", "w-1", "-o", "json", "--dsn", fresh_db]).stdout)
    assert (shown["state"], [s["status"] for s in shown["steps"]]) == ("completed", ["completed", "completed"])


@pytest.mark.slow
def test_the_newest_finished_sagas_are_read_backwards_from_an_index(pg: PostgresStore, pg_dsn: str) -> None:
    """``list --sort newest`` (the UI's recent sagas): with 30k finished sagas a short listing
    reads the created_at index backwards and stops, never sorting the log."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO saga_log (saga_id, saga_type, state, steps, definition, created_at, updated_at)"
            " SELECT 'done-' || i, 'Order', CASE WHEN i %% 10 = 0 THEN 'failed' ELSE 'completed' END,"
            " '[]', '{}',"
            " %s::timestamptz - i * interval '1 second', %s::timestamptz - i * interval '1 second'"
            " FROM generate_series(1, 30000) AS i",
            [at(0), at(0)],
        )
        conn.execute("ANALYZE saga_log")
    query = SagaQuery(states=(SagaState.COMPLETED, SagaState.FAILED), limit=100, sort=SortKey.NEWEST)
    plan = pg.explain_list(query)
    assert "Seq Scan on saga_log" not in plan and "Sort Method" not in plan, plan
    assert "Index Scan Backward using saga_log_created" in plan, plan
    newest = [s.saga_id for s in pg.list_sagas(query)]
    assert newest[:3] == ["done-1", "done-2", "done-3"] and len(newest) == 100
