"""``list`` filters (issue 10 point 4): --since/--until, --step, --error (a literal substring),
--saga-id (repeatable, prefixes, -), --sort; on SQLite, PostgreSQL (--stuck stays an index
scan with them) and a mapped table."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.config import Settings
from sagactl.errors import UsageError
from sagactl.models import SagaState, SortKey
from sagactl.ops.sagas import list_sagas
from sagactl.store import Store
from sagactl.store.base import SagaQuery
from sagactl.store.postgres import PostgresStore
from sagactl.tools.inspect import ListRequest, parse_time_bound
from tests.support.sagas import T0, add, at, saga
from tests.tools.test_inspect import mapped, uid  # noqa: F401  (the mapped table fixture)

runner = CliRunner()
NOW = 10_000


def listed(settings: Settings, **options: Any) -> list[str]:
    return [row.saga.saga_id for row in list_sagas(settings, ListRequest(**options), now=at(NOW)).sagas]


@pytest.fixture
def settings(store: Store, store_dsn: str) -> Settings:
    add(
        store,
        saga("a-1", step=1, created=0, updated=900, error="card 50% off_limit declined"),
        saga("a-2", step=1, created=100, updated=300, error="card declined: 4 retries"),
        saga("b-1", step=2, created=200, updated=250, error="Timeout after 30s", saga_type="Refund"),
        saga("c-1", state=SagaState.COMPENSATING, step=1, created=300, updated=310, error="refund refused"),
        saga("d-1", state=SagaState.COMPLETED, step=None, created=400, updated=400),
    )
    return Settings(dsn=store_dsn)


def test_step_and_error_filters(settings: Settings) -> None:
    assert listed(settings, step="charge") == ["c-1", "a-1", "a-2"]
    assert listed(settings, error="declined") == ["a-1", "a-2"]
    assert listed(settings, error="%") == ["a-1"]  # literal: never a wildcard
    assert listed(settings, error="_") == ["a-1"]
    assert listed(settings, error="50%_off") == []
    assert listed(settings, error="timeout") == []  # case-sensitive
    assert listed(settings, error="Timeout") == ["b-1"]
    assert listed(settings, step="charge", error="refund") == ["c-1"]
    assert listed(settings, step="nope") == []


def test_since_and_until_take_durations_and_times(settings: Settings) -> None:
    assert listed(settings, since="2026-11-26T08:03:20Z") == ["c-1", "b-1", "d-1"]
    assert listed(settings, until="2026-11-26T08:03:20") == ["a-1", "a-2"]  # no zone: UTC
    assert listed(settings, since=f"{NOW - 150}s", until=f"{NOW - 300}s") == ["b-1"]  # [8:02:30, 8:05:00)
    assert listed(settings, since="2026-11-26") == ["c-1", "a-1", "a-2", "b-1", "d-1"]
    assert parse_time_bound("1h30m", "--since", at(NOW)) == at(NOW - 5400)
    for bad, message in (
        ("soon", "--since: 'soon' is neither a duration nor an ISO 8601 time"),
        ("3651d", "--since must be at most 3650d (10 years) back"),
    ):
        with pytest.raises(UsageError, match=re.escape(message)):
            listed(settings, since=bad)
    with pytest.raises(UsageError, match=r"--since \(2026-11-26T08:05:00.000000Z\) must be before --until"):
        listed(settings, since="2026-11-26T08:05:00Z", until="2026-11-26T08:01:00Z")


def test_saga_ids_take_prefixes_and_sort_orders(settings: Settings) -> None:
    assert listed(settings, saga_ids=("a-2", "b", "zz")) == ["a-2", "b-1"]  # zz names nothing
    with pytest.raises(UsageError, match="saga ID prefix 'a' is ambiguous"):
        listed(settings, saga_ids=("a",))
    assert listed(settings, sort=SortKey.AGE) == ["a-1", "a-2", "b-1", "c-1", "d-1"]
    assert listed(settings, sort=SortKey.UPDATED) == ["b-1", "a-2", "c-1", "d-1", "a-1"]
    assert listed(settings, sort=SortKey.TYPE) == ["a-1", "a-2", "c-1", "d-1", "b-1"]
    assert listed(settings, sort=SortKey.AGE, limit=2) == ["a-1", "a-2"]
    # with --stuck: the filters narrow what is stuck, --sort orders it
    assert listed(settings, stuck=True, older_than="1s") == ["c-1", "b-1", "a-2", "a-1"]
    assert listed(settings, stuck=True, older_than="1s", sort=SortKey.AGE, step="charge") == ["a-1", "a-2", "c-1"]
    assert listed(settings, stuck=True, older_than="1s", error="declined", saga_ids=("a-1",)) == ["a-1"]


def test_the_cli_takes_every_filter(settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAGACTL_DSN", settings.dsn)

    def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
        result = runner.invoke(app, ["list", *args], input=stdin)
        return result.exit_code, result.stdout, result.stderr

    assert invoke("--error", "declined", "--step", "charge", "--sort", "updated", "-q") == (0, "a-2\na-1\n", "")
    assert invoke("--saga-id", "-", "--saga-id", "c", "-q", stdin="b-1\n\na-2\n") == (0, "c-1\na-2\nb-1\n", "")
    assert invoke("--saga-id", "-", stdin="") == (
        2,
        "",
        "sagactl: error: no IDs given: stdin held no saga IDs; pipe one saga ID per line, e.g. from 'list -q'\n",
    )
    assert invoke("--error", "")[0] == 2
    code, out, err = invoke("--since", "tomorrow")
    assert (code, out) == (2, "") and "--since: 'tomorrow' is neither a duration" in err


# -- PostgreSQL: --stuck with the filters still reads only the active indexes ----------------------


@pytest.fixture
def big(pg_dsn: str) -> Iterator[PostgresStore]:
    store = PostgresStore(pg_dsn)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("TRUNCATE saga_log, saga_transitions, saga_counts, saga_jobs RESTART IDENTITY")
        conn.execute("SET session_replication_role = replica")  # no counter triggers: a quick bulk load
        conn.execute(
            "INSERT INTO saga_log (saga_id, saga_type, state, steps, definition, created_at, updated_at,"
            " current_step_name, last_error)"
            " SELECT 'done-' || i, 'Order', 'completed', '[]', '{}', %s::timestamptz - i * interval '1 second',"
            " %s::timestamptz, 'charge', 'card 50%% declined' FROM generate_series(1, 30000) AS i",
            [T0, T0],
        )
    add(store, saga("late", step=1, updated=0, deadline=10, error="card 50% declined"))
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("ANALYZE saga_log")
    try:
        yield store
    finally:
        store.close()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute("TRUNCATE saga_log, saga_transitions, saga_counts, saga_jobs RESTART IDENTITY")


def test_postgres_stuck_with_filters_stays_an_index_scan(big: PostgresStore) -> None:
    query = SagaQuery(
        stuck=True,
        now=at(1000),
        idle_before=at(500),
        step="charge",
        error="50%",
        created_from=at(-100),
        sort=SortKey.AGE,
    )
    plan = big.explain_list(query)
    assert "Seq Scan on saga_log" not in plan and "using saga_log_active_" in plan, plan
    assert [s.saga_id for s in big.list_sagas(query)] == ["late"]


# -- a mapped table --------------------------------------------------------------------------------


def test_mapped_table_filters(mapped: Settings) -> None:  # noqa: F811
    assert listed(mapped, step="charge") == [uid(1)]
    assert listed(mapped, error="declined") == [uid(1)]
    assert listed(mapped, error="%") == []
    assert listed(mapped, since="2026-11-26T08:00:03Z") == [uid(4), uid(5), uid(7)]
    assert listed(mapped, until="2026-11-26T08:00:02Z", sort=SortKey.AGE) == [uid(1), uid(2)]
    assert listed(mapped, saga_ids=(uid(7), "not-a-uuid")) == [uid(7)]  # no uuid: matches nothing
    with pytest.raises(UsageError, match="is ambiguous"):
        listed(mapped, saga_ids=("00000000",))
    assert listed(mapped, saga_ids=(uid(7), uid(3))) == [uid(3), uid(7)]
    assert listed(mapped, sort=SortKey.TYPE) == [uid(1), uid(2), uid(3), uid(4), uid(5), uid(7)]
    assert listed(mapped, sort=SortKey.UPDATED) == [uid(3), uid(7), uid(5), uid(1), uid(2), uid(4)]
    assert listed(mapped, stuck=True, step="refund") == [uid(7)]
    with pytest.raises(UsageError, match="a mapped table has no jobs"):
        listed(mapped, job="j-1")
