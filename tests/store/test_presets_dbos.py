"""``preset: dbos``: the real DBOS Transact library (tests/support/dbos_app.py, in processes of
its own) writes workflows into a system database on PostgreSQL and on SQLite: three that
succeed, two that raise (pickled errors), one that raises with portable_json, one ENQUEUED on a
queue no worker serves, one DELAYED, and one killed mid-step. sagactl reads them read-only."""

from __future__ import annotations

import base64
import json
import os
import pickle
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.config import Settings, TableMapping
from sagactl.models import SagaState, utcnow
from sagactl.ops.complete import saga_ids
from sagactl.ops.sagas import list_sagas, show_saga, watch_sagas
from sagactl.store import open_reader
from sagactl.store.mapped import MappedTableStore
from sagactl.tools.inspect import ListRequest
from tests.support.clock import StopsAfter
from tests.support.postgres import fresh_database
from tests.support.processes import sagactl

APP = Path(__file__).resolve().parents[1] / "support" / "dbos_app.py"
runner = CliRunner()
PRESET = TableMapping(preset="dbos")


@dataclass
class DbosDatabase:
    dsn: str
    ids: dict[str, list[str]]

    def one(self, kind: str) -> str:
        (found,) = self.ids[kind]
        return found

    def settings(self) -> Settings:
        return Settings(dsn=self.dsn, mapping=PRESET)


def _run_app(url: str, *args: str) -> dict[str, list[str]]:
    done = subprocess.run(
        [sys.executable, str(APP), url, *args], capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return _ids(done.stdout)


def _ids(stdout: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in stdout.splitlines():
        kind, _, workflow = line.partition(" ")
        if workflow:
            found.setdefault(kind, []).append(workflow)
    return found


def _kill_mid_step(url: str, ready: Path) -> str:
    """Start a workflow whose second step waits, and SIGKILL its process once it is in there."""
    process = subprocess.Popen(
        [sys.executable, str(APP), url, "hang", str(ready)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert process.poll() is None, "the DBOS app ended before its step"
            assert time.monotonic() < deadline, "the DBOS app never reached its step"
            time.sleep(0.1)
    finally:
        process.kill()
        out, _ = process.communicate(timeout=30)
    return _ids(out)["hanging"][0]


def write_workflows(url: str, tmp: Path) -> dict[str, list[str]]:
    ids = _run_app(url, "run")
    ids.update(_run_app(url, "enqueue"))
    ids["hanging"] = [_kill_mid_step(url, tmp / "ready")]
    return ids


@pytest.fixture(scope="module", params=["postgres", "sqlite"])
def dbos(
    request: pytest.FixtureRequest, pg_admin_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DbosDatabase]:
    tmp = tmp_path_factory.mktemp("dbos")
    if request.param == "sqlite":
        url = f"sqlite:///{tmp / 'dbos.sqlite'}"
        yield DbosDatabase(url, write_workflows(url, tmp))
        return
    with fresh_database(pg_admin_dsn, "sagactl_dbos") as url:
        yield DbosDatabase(url, write_workflows(url, tmp))


def invoke(db: DbosDatabase, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--preset", "dbos", "--dsn", db.dsn], input=stdin)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(autouse=True)
def no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SAGACTL_DSN", "SAGACTL_CONFIG", "SAGACTL_CONTEXT", "SAGACTL_PRESET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)


def listed(db: DbosDatabase, *args: str) -> list[dict[str, Any]]:
    code, out, err = invoke(db, "list", *args, "-o", "json")
    assert code in (0, 3), err
    rows: list[dict[str, Any]] = json.loads(out)
    return rows


# -- list, stuck, stats ---------------------------------------------------------------------------


def test_every_dbos_status_maps_and_keeps_its_own_name(dbos: DbosDatabase) -> None:
    rows = {r["saga_id"]: r for r in listed(dbos, "--limit", "0")}
    expect = {
        **{i: ("completed", "SUCCESS", "order") for i in dbos.ids["succeeded"]},
        **{i: ("failed", "ERROR", None) for i in dbos.ids["raised"]},
        dbos.one("enqueued"): ("pending", "ENQUEUED", "order"),
        dbos.one("delayed"): ("pending", "DELAYED", "order"),
        dbos.one("hanging"): ("pending", "PENDING", "slow_order"),
    }
    assert set(rows) == set(expect)
    for saga_id, (state, source, saga_type) in expect.items():
        row = rows[saga_id]
        assert (row["state"], row["source_state"]) == (state, source)
        assert saga_type is None or row["saga_type"] == saga_type
        assert list(row)[:4] == ["saga_id", "saga_type", "state", "source_state"]  # sagactl's state first
        assert row["created_at"].startswith(str(utcnow().year)) and row["lease_owner"] is None
    code, wide, _ = invoke(dbos, "list", "-o", "wide", "--state", "pending")
    assert code == 0 and wide.splitlines()[0].split()[:5] == ["SAGA", "TYPE", "STATE", "SOURCE", "STATE"]
    assert any(line.split()[2:4] == ["pending", "DELAYED"] for line in wide.splitlines())


def test_stuck_is_the_stranded_pending_and_enqueued_not_the_delayed(dbos: DbosDatabase) -> None:
    time.sleep(0.01)
    stuck = [r["saga_id"] for r in listed(dbos, "--stuck", "--older-than", "1ms")]
    assert sorted(stuck) == sorted([dbos.one("hanging"), dbos.one("enqueued")])
    code, out, _ = invoke(dbos, "list", "--stuck", "--older-than", "1ms", "-q", "--exit-code")
    assert code == 3 and sorted(out.split()) == sorted(stuck)
    assert listed(dbos, "--stuck") == []  # the default threshold, 15 minutes, has not passed
    later = list_sagas(dbos.settings(), ListRequest(stuck=True), now=utcnow() + timedelta(hours=1)).sagas
    assert sorted(r.saga.saga_id for r in later) == sorted(stuck)
    assert all(r.stuck_for_seconds and r.stuck_for_seconds > 3000 for r in later)


def test_list_filters_sorts_and_groups(dbos: DbosDatabase) -> None:
    assert [r["saga_id"] for r in listed(dbos, "--type", "slow_order")] == [dbos.one("hanging")]
    assert {r["state"] for r in listed(dbos, "--state", "failed")} == {"failed"}
    assert len(listed(dbos, "--since", "1h")) == 9 and listed(dbos, "--until", "1h") == []
    ages = [r["created_at"] for r in listed(dbos, "--sort", "age")]
    assert ages == sorted(ages)
    assert next(r["saga_type"] for r in listed(dbos, "--sort", "type")) == "order"
    prefix = dbos.one("hanging")[:8]
    assert [r["saga_id"] for r in listed(dbos, "--saga-id", prefix)] == [dbos.one("hanging")]
    code, out, _ = invoke(dbos, "list", "--group-by", "state,type", "-o", "json")
    groups = {(g["key"]): g["count"] for g in json.loads(out)}
    assert code == 0 and sorted(groups.values()) == [1, 1, 2, 2, 3]  # failed: 2 order, 1 portable_order
    code, out, _ = invoke(dbos, "list", "--state", "failed", "--group-by", "error", "-o", "json")
    signatures = sorted(g["example_error"] for g in json.loads(out))
    assert code == 0 and all(s.startswith("CardDeclinedError: card declined for order") for s in signatures)
    code, _, err = invoke(dbos, "list", "--error", "declined")
    assert code == 2 and "--error: DBOS keeps a workflow's error apart" in err and err.count("\n") == 1


def test_stats_counts_each_type_and_state(dbos: DbosDatabase) -> None:
    code, out, err = invoke(dbos, "stats", "-o", "json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert {k: data["totals"][k] for k in ("completed", "failed", "pending", "stuck")} == {
        "completed": 3,
        "failed": 3,
        "pending": 3,
        "stuck": 0,
    }
    assert "(preset dbos)" in data["store"]
    code, prom, _ = invoke(dbos, "stats", "-o", "prometheus")
    assert code == 0 and 'sagactl_sagas{saga_type="slow_order",state="pending"} 1.0' in prom


def test_watch_draws_the_stranded_ones_every_interval(dbos: DbosDatabase) -> None:
    frames: list[list[str]] = []

    clock = StopsAfter(2, utcnow() + timedelta(hours=1))
    request = ListRequest(stuck=True)
    with pytest.raises(KeyboardInterrupt):
        watch_sagas(
            dbos.settings(),
            request,
            lambda r: frames.append([s.saga.saga_id for s in r.sagas]),
            interval=5.0,
            clock=clock,
        )
    assert len(frames) == 2 and sorted(frames[0]) == sorted([dbos.one("hanging"), dbos.one("enqueued")])


# -- show -----------------------------------------------------------------------------------------


def test_show_lists_the_steps_dbos_recorded_and_says_the_one_in_flight_is_not(dbos: DbosDatabase) -> None:
    code, out, err = invoke(dbos, "show", dbos.one("hanging"), "-o", "json")
    assert (code, err) == (0, "")
    shown = json.loads(out)
    assert (shown["state"], shown["source_state"], shown["saga_type"]) == ("pending", "PENDING", "slow_order")
    assert [(s["name"], s["status"]) for s in shown["steps"]] == [("reserve", "completed")]
    assert shown["steps"][0]["started_at"] <= shown["steps"][0]["finished_at"]
    assert any("a step in flight is not listed (the last recorded is #1 reserve)" in n for n in shown["notes"])
    code, table, _ = invoke(dbos, "show", dbos.one("hanging"))
    assert code == 0 and "source state: PENDING" in table and "reserve" in table and "in flight" in table


def test_show_names_the_error_format_and_never_unpickles(dbos: DbosDatabase) -> None:
    pickled, _, portable = dbos.ids["raised"]
    shown = json.loads(invoke(dbos, "show", pickled, "-o", "json")[1])
    assert shown["last_error"] == "CardDeclinedError: card declined for order 1"
    assert any(n.startswith("workflow error: py_pickle (a base64 pickle: never unpickled") for n in shown["notes"])
    assert [(s["name"], s["status"]) for s in shown["steps"]] == [("reserve", "completed"), ("charge", "failed")]
    assert shown["steps"][1]["error"] == "CardDeclinedError: card declined for order 1"
    shown = json.loads(invoke(dbos, "show", portable, "-o", "json")[1])
    assert shown["last_error"] == "CardDeclinedError: card declined for order 5"
    assert "workflow error: portable_json, shown as text" in shown["notes"]
    completed = json.loads(invoke(dbos, "show", dbos.ids["succeeded"][0], "-o", "json")[1])
    assert completed["last_error"] is None and not any("in flight" in n for n in completed.get("notes", []))


class Trap:
    """Unpickling this runs a command: sagactl must never do it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _insert(db: DbosDatabase, statements: list[tuple[str, tuple[Any, ...]]]) -> None:
    """Rows written straight into DBOS's tables (as another DBOS version or a bad actor would)."""
    if db.dsn.startswith("sqlite"):
        with closing(sqlite3.connect(db.dsn.removeprefix("sqlite:///"))) as conn, conn:
            for text, args in statements:
                conn.execute(text.replace("dbos.", "").replace("%s", "?"), args)
        return
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        for text, args in statements:
            conn.execute(text, args)


def test_a_hostile_pickle_is_read_never_run(dbos: DbosDatabase, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    payload = base64.b64encode(pickle.dumps(Trap(marker))).decode()
    now = int(utcnow().timestamp() * 1000)
    _insert(
        dbos,
        [
            (
                "INSERT INTO dbos.workflow_status (workflow_uuid, status, name, created_at, updated_at, priority,"
                " serialization) VALUES (%s, 'ERROR', 'trap', %s, %s, 0, 'py_pickle')",
                ("trap-1", now, now),
            ),
            ("INSERT INTO dbos.workflow_output (workflow_uuid, error) VALUES (%s, %s)", ("trap-1", payload)),
        ],
    )
    try:
        shown = json.loads(invoke(dbos, "show", "trap-1", "-o", "json")[1])
        assert shown["last_error"] == f"system: touch {marker}"  # read from the opcodes, as text
        assert [r["last_error"] for r in listed(dbos, "--type", "trap")] == [f"system: touch {marker}"]
        assert not marker.exists()
    finally:
        _insert(
            dbos,
            [
                ("DELETE FROM dbos.workflow_output WHERE workflow_uuid = %s", ("trap-1",)),
                ("DELETE FROM dbos.workflow_status WHERE workflow_uuid = %s", ("trap-1",)),
            ],
        )


def test_prefixes_stdin_and_completion(dbos: DbosDatabase) -> None:
    hanging = dbos.one("hanging")
    code, out, _ = invoke(dbos, "show", hanging[:8], "-q")
    assert (code, out) == (0, hanging + "\n")
    code, out, _ = invoke(dbos, "show", "-", "-o", "json", stdin="\n".join(dbos.ids["succeeded"]) + "\n")
    assert code == 0 and [s["saga_id"] for s in json.loads(out)] == dbos.ids["succeeded"]
    assert saga_ids(dbos.settings(), hanging[:6]) == [hanging]
    assert set(dbos.ids["succeeded"]) <= set(saga_ids(dbos.settings(), ""))
    code, _, err = invoke(dbos, "show", "zz-no-such")
    assert code == 2 and "saga zz-no-such not found" in err and err.count("\n") == 1
    assert show_saga(dbos.settings(), hanging).source_state == "PENDING"  # type: ignore[union-attr]


def test_the_session_changes_nothing(dbos: DbosDatabase) -> None:
    with closing(MappedTableStore(dbos.dsn, PRESET)) as table:
        if table.db.dialect == "postgres":
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                table.db._pg.execute("DELETE FROM dbos.workflow_status")
        else:
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                table.db._lite.execute("DELETE FROM workflow_status")
    assert len(listed(dbos, "--limit", "0")) == 9


# -- refusals -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["run", "x.yaml"],
        ["resume", "some-id"],
        ["resume", "--stuck", "--yes"],
        ["resume", "--stuck", "--dry-run"],
        ["abort", "some-id", "--reason", "x"],
        ["resolve", "some-id", "--step", "s", "--reason", "x"],
        ["rerun", "some-id"],
        ["prune", "--older-than", "1d"],
        ["db", "init"],
        ["db", "recount"],
    ],
)
def test_writers_refuse_a_dbos_database(dbos: DbosDatabase, args: list[str], tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(
        "saga: x\nendpoints: {e: {type: exec, command: [\"true\"]}}\nsteps:\n  - {name: s, endpoint: e, action: {}}\n"
    )
    for how in ({"SAGACTL_PRESET": "dbos", "SAGACTL_DSN": dbos.dsn}, {"SAGACTL_CONTEXT": "dbos"}):
        (tmp_path / "sagactl.yaml").write_text(f"contexts:\n  dbos:\n    store: {{dsn: '{dbos.dsn}', preset: dbos}}\n")
        result = runner.invoke(app, args, env=how)
        assert result.exit_code == 2, (args, result.stderr)
        assert "read-only mapped table" in result.stderr and "preset dbos" in result.stderr
        assert result.stderr.count("\n") == 1 and result.stdout == ""


def test_a_wrong_preset_or_a_sagactl_log_is_one_line(dbos: DbosDatabase, tmp_path: Path) -> None:
    result = runner.invoke(app, ["list", "--preset", "eventuate", "--dsn", dbos.dsn])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "table not found: this database is not one the eventuate preset reads" in result.stderr
    own = f"sqlite:///{tmp_path / 'own.db'}"
    runner.invoke(app, ["db", "init", "--dsn", own])
    result = runner.invoke(app, ["show", "x", "--preset", "dbos", "--dsn", own])
    assert result.exit_code == 2 and "not one the dbos preset reads" in result.stderr
    result = runner.invoke(app, ["list", "--preset", "dbs", "--dsn", own])
    assert result.exit_code == 2 and result.stderr == (
        "sagactl: error: --preset: unknown preset 'dbs'; did you mean 'dbos'? known presets: dbos, eventuate\n"
    )


def test_end_to_end_as_a_runbook_runs_it(dbos: DbosDatabase, tmp_path: Path) -> None:
    done = sagactl(
        "list",
        "--stuck",
        "--older-than",
        "1ms",
        "-q",
        cwd=tmp_path,
        env={"SAGACTL_DSN": dbos.dsn, "SAGACTL_PRESET": "dbos"},
    )
    assert done.returncode == 0 and sorted(done.stdout.split()) == sorted([dbos.one("hanging"), dbos.one("enqueued")])
    done = sagactl("show", dbos.one("hanging")[:8], "--preset", "dbos", "--dsn", dbos.dsn, cwd=tmp_path)
    assert done.returncode == 0 and "in flight" in done.stdout and done.stderr == ""


# -- a schema the preset does not know ------------------------------------------------------------

STATUS_COLUMNS = {
    "workflow_uuid": "TEXT PRIMARY KEY",
    "status": "TEXT",
    "name": "TEXT",
    "created_at": "BIGINT NOT NULL",
    "updated_at": "BIGINT NOT NULL",
}


def _sqlite_dbos(path: Path, version: int | None, **changes: str | None) -> str:
    """A DBOS-shaped SQLite file: workflow_status with ``changes`` (None drops a column)."""
    columns = {**STATUS_COLUMNS, **changes}
    with closing(sqlite3.connect(path)) as conn, conn:
        body = ", ".join(f'"{n}" {t}' for n, t in columns.items() if t is not None)
        conn.execute(f"CREATE TABLE workflow_status ({body})")
        if version is not None:
            conn.execute("CREATE TABLE dbos_migrations (version BIGINT NOT NULL PRIMARY KEY)")
            conn.execute("INSERT INTO dbos_migrations VALUES (?)", (version,))
    return f"sqlite:///{path}"


def test_a_renamed_column_names_the_column_the_preset_and_the_version(tmp_path: Path) -> None:
    dsn = _sqlite_dbos(tmp_path / "old.sqlite", 30, updated_at=None, modified_at="BIGINT")
    result = runner.invoke(app, ["list", "--preset", "dbos", "--dsn", dsn])
    assert result.exit_code == 4 and result.stderr.count("\n") == 1
    assert "has no column 'updated_at', which the dbos preset reads" in result.stderr
    assert "up to schema version 125; this one is at version 30" in result.stderr


def test_a_retyped_column_names_its_type(tmp_path: Path) -> None:
    dsn = _sqlite_dbos(tmp_path / "typed.sqlite", 125, created_at="TEXT")
    result = runner.invoke(app, ["list", "--preset", "dbos", "--dsn", dsn])
    assert result.exit_code == 4 and result.stderr.count("\n") == 1
    assert "holds 'created_at' as text, not integer or number, which the dbos preset reads" in result.stderr


def test_a_newer_schema_is_read_with_a_warning(tmp_path: Path) -> None:
    dsn = _sqlite_dbos(tmp_path / "new.sqlite", 999)
    result = runner.invoke(app, ["list", "--preset", "dbos", "--dsn", dsn, "-o", "json"])
    assert (result.exit_code, result.stdout) == (0, "[]\n")
    assert "DBOS schema version 999 is newer than this sagactl knows (125)" in result.stderr


def test_a_column_written_beside_the_preset_is_the_config_s_mistake(tmp_path: Path) -> None:
    dsn = _sqlite_dbos(tmp_path / "own.sqlite", 125)
    (tmp_path / "sagactl.yaml").write_text(
        f"store:\n  dsn: {dsn}\n  preset: dbos\n  columns:\n    saga_type: workflow_name\n"
    )
    result = runner.invoke(app, ["list"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "column 'workflow_name' does not exist (store.columns.saga_type)" in result.stderr


def test_keys_beside_the_preset_override_it(tmp_path: Path) -> None:
    dsn = _sqlite_dbos(tmp_path / "own.sqlite", 125, executor_id="TEXT")
    _insert(
        DbosDatabase(dsn, {}),
        [("INSERT INTO workflow_status VALUES ('w-1', 'PENDING', 'order', 1, 2, 'exec-9')", ())],
    )
    (tmp_path / "sagactl.yaml").write_text(
        f"store:\n  dsn: {dsn}\n  preset: dbos\n  columns: {{saga_type: executor_id}}\n"
        "  states: {started: [PENDING], pending: [ENQUEUED]}\n"
    )
    with closing(open_reader(dsn, _config_mapping(tmp_path))) as reader:
        [row] = reader.summaries(_all())
    assert (row.saga_type, row.state, row.source_state) == ("exec-9", SagaState.STARTED, "PENDING")
    assert row.created_at == datetime.fromtimestamp(0.001, row.created_at.tzinfo)  # type: ignore[union-attr]


def _config_mapping(tmp_path: Path) -> TableMapping:
    from sagactl.config import resolve_settings

    mapping = resolve_settings(config=str(tmp_path / "sagactl.yaml"), env={}).mapping
    assert mapping is not None
    return mapping


def _all() -> Any:
    from sagactl.store.base import SagaQuery

    return SagaQuery()


# -- the plans on DBOS's own indexes --------------------------------------------------------------

FINISHED = 20_000
STRANDED = 10


@pytest.fixture(scope="module")
def many(pg_admin_dsn: str) -> Iterator[str]:
    """A DBOS system database (schema by DBOS itself) with 20,000 finished workflows and 10
    stranded ones, analyzed."""
    with fresh_database(pg_admin_dsn, "sagactl_dbos_plan") as url:
        _run_app(url, "run")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO dbos.workflow_status (workflow_uuid, status, name, created_at, updated_at, priority,"
                " completed_at) SELECT 'done-' || g, CASE WHEN g %% 10 = 0 THEN 'ERROR' ELSE 'SUCCESS' END, 'order',"
                " 1700000000000 + g, 1700000000000 + g, 0, 1700000000000 + g FROM generate_series(1, %s) g",
                (FINISHED,),
            )
            conn.execute(
                "INSERT INTO dbos.workflow_status (workflow_uuid, status, name, created_at, updated_at, priority,"
                " queue_name) SELECT 'stuck-' || g, CASE WHEN g %% 2 = 0 THEN 'PENDING' ELSE 'ENQUEUED' END, 'order',"
                " 1700000000000 + g, 1700000000000 + g, 0, CASE WHEN g %% 2 = 1 THEN 'q' END"
                " FROM generate_series(1, %s) g",
                (STRANDED,),
            )
            conn.execute("ANALYZE dbos.workflow_status")
        yield url


def test_stuck_and_the_active_counts_are_index_scans_on_dbos_own_indexes(many: str) -> None:
    from sagactl.store.base import SagaQuery

    now = utcnow()
    with closing(MappedTableStore(many, PRESET)) as table:
        stuck = SagaQuery(stuck=True, now=now, idle_before=now - timedelta(minutes=15))
        plan = table.explain(stuck)
        assert "Seq Scan" not in plan and "idx_workflow_status_in_flight_v2" in plan, plan
        assert len(table.summaries(stuck)) == STRANDED
        pending = table.explain(SagaQuery(states=(SagaState.PENDING,), limit=1000))
        assert "Seq Scan" not in pending and "BitmapOr" in pending and "idx_workflow_status_delayed" in pending
        listing = table.explain(SagaQuery(limit=1001))  # list: the oldest first, read in created_at order
        assert "Seq Scan" not in listing and "workflow_status_created_at_index" in listing, listing
        assert [a.count for a in table.active_counts()] == [STRANDED]
