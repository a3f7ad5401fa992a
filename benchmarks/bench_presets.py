#!/usr/bin/env python3
"""`list --stuck` on a DBOS system database (preset dbos) beside the same query on sagactl's own
log, both with 1,000,000 finished sagas and 50 stranded ones (issue 20).

    python benchmarks/bench_presets.py
    python benchmarks/bench_presets.py --markdown benchmarks/RESULTS-presets.md

Builds two scratch PostgreSQL databases (``sagactl_bench_presets_<pid>_dbos`` and ``_log``,
dropped at the end unless --keep):

- dbos: the schema created by DBOS Transact itself (tests/support/dbos_app.py runs six
  workflows), then N finished workflows as DBOS writes them (90% SUCCESS, 10% ERROR; epoch-ms
  times), 200 in flight (PENDING, updated now) and 50 stranded (25 PENDING, 25 ENQUEUED, idle
  an hour), VACUUM ANALYZE;
- log: the sagactl schema with N finished sagas (as lean as DBOS's rows: empty JSON; the
  stuck query never reads it, and bench_stuck.py times full-size rows), 200 in flight
  (deadline two hours ahead) and 50 stuck (pending, idle an hour, no deadline).

The variants are timed side by side, round-robin (median and p90 of --runs, ms): the stuck
query on an open connection; connect + query (`ops.sagas.list_sagas(stuck)`); the CLI
(`sagactl list --stuck -o json`, a process each). Beside the times, which the other engines on
this shared machine disturb, the counts they do not: the buffers each plan touches (EXPLAIN
ANALYZE BUFFERS), and the CPU seconds of the CLI processes. Also `stats` (connect + queries),
which on a DBOS table counts the finished workflows by scanning (DBOS keeps no counters).

With --sqlite, the same DBOS rows in a DBOS SQLite file, read with preset dbos: a scan (SQLite
matches a partial index only against its literal terms, and sagactl binds every value).

PostgreSQL: --pg-dsn or SAGACTL_BENCH_PG_DSN, else postgresql://postgres@127.0.0.1:5432/postgres.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import bench_stuck  # noqa: E402  (its rows for sagactl's own log, its round-robin timer)
from bench_stuck import medians  # noqa: E402

from sagactl.config import Settings, TableMapping  # noqa: E402
from sagactl.models import utcnow  # noqa: E402
from sagactl.ops.sagas import list_sagas, stats  # noqa: E402
from sagactl.store.base import SagaQuery  # noqa: E402
from sagactl.store.fragments import Sql  # noqa: E402
from sagactl.store.mapped import MappedTableStore  # noqa: E402
from sagactl.store.postgres import PostgresStore  # noqa: E402
from sagactl.tools.inspect import ListRequest  # noqa: E402

DBOS_APP = ROOT / "tests" / "support" / "dbos_app.py"
PRESET = TableMapping(preset="dbos")
STRANDED = 50
IN_FLIGHT = 200

_DBOS_FINISHED = """
INSERT INTO dbos.workflow_status (workflow_uuid, status, name, executor_id, created_at, updated_at, completed_at,
                                  started_at_epoch_ms, recovery_attempts, priority, serialization, application_version)
SELECT md5('w' || i)::uuid::text, CASE WHEN i %% 10 = 0 THEN 'ERROR' ELSE 'SUCCESS' END,
       (ARRAY['order', 'refund', 'subscription', 'transfer'])[1 + i %% 4], 'executor-' || (i %% 8),
       %(now_ms)s - 3600000 - i * 1000, %(now_ms)s - 3600000 - i * 1000 + 3000, %(now_ms)s - 3600000 - i * 1000 + 3000,
       %(now_ms)s - 3600000 - i * 1000, 1, 0, 'py_pickle', 'v1'
FROM generate_series(%(start)s::int, %(stop)s::int) AS i
"""
_DBOS_ACTIVE = """
INSERT INTO dbos.workflow_status (workflow_uuid, status, name, executor_id, created_at, updated_at, queue_name,
                                  recovery_attempts, priority, serialization, application_version)
SELECT %(prefix)s || i, CASE WHEN %(mixed)s AND i %% 2 = 1 THEN 'ENQUEUED' ELSE 'PENDING' END, 'order',
       'executor-dead', %(at)s - 60000, %(at)s, CASE WHEN %(mixed)s AND i %% 2 = 1 THEN 'orders' END, 1, 0,
       'py_pickle', 'v1'
FROM generate_series(1, %(count)s::int) AS i
"""


def build_dbos(dsn: str, finished: int) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, str(DBOS_APP), dsn, "run"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    now_ms = int(utcnow().timestamp() * 1000)
    with psycopg.connect(dsn, autocommit=True) as conn:
        for start in range(1, finished + 1, 250_000):
            stop = min(finished, start + 249_999)
            conn.execute(_DBOS_FINISHED, {"now_ms": now_ms, "start": start, "stop": stop})
            print(f"  {stop:>9,} finished workflows", file=sys.stderr, flush=True)
        conn.execute(_DBOS_ACTIVE, {"prefix": "inflight-", "mixed": False, "at": now_ms, "count": IN_FLIGHT})
        conn.execute(_DBOS_ACTIVE, {"prefix": "stranded-", "mixed": True, "at": now_ms - 3_600_000, "count": STRANDED})
        conn.execute("VACUUM (ANALYZE) dbos.workflow_status")
    return time.perf_counter() - started


# Finished sagas as lean as DBOS's rows (the stuck query never reads their JSON; bench_stuck.py
# times the log with full-size rows): type, state, times and an error, empty data, steps and
# definition.
_LOG_FINISHED = """
INSERT INTO saga_log (saga_id, saga_type, state, data, steps, definition, last_error, created_at, updated_at)
SELECT md5('f' || i)::uuid::text, (%(types)s::text[])[1 + i %% 4],
       CASE WHEN i %% 10 = 0 THEN 'failed' ELSE 'completed' END, '{}'::jsonb, '[]'::jsonb, '{}'::jsonb,
       CASE WHEN i %% 10 = 0 THEN 'process_payment: HTTP 422 card declined' END,
       %(now)s - (i * interval '1 second') - interval '1 hour',
       %(now)s - (i * interval '1 second') - interval '1 hour' + interval '3 seconds'
FROM generate_series(%(start)s::int, %(stop)s::int) AS i
"""


def build_log(dsn: str, finished: int) -> float:
    started = time.perf_counter()
    PostgresStore(dsn).close()
    now = utcnow()
    definition = Jsonb(bench_stuck.snapshot())
    with psycopg.connect(dsn, autocommit=True) as conn:
        # the counters are filled from the table once at the end (a trigger per row is the slow part)
        conn.execute("ALTER TABLE saga_log DISABLE TRIGGER USER")
        for start in range(1, finished + 1, 250_000):
            stop = min(finished, start + 249_999)
            conn.execute(_LOG_FINISHED, {"now": now, "start": start, "stop": stop, "types": bench_stuck.TYPES})
            print(f"  {stop:>9,} finished sagas", file=sys.stderr, flush=True)
        now = utcnow()
        for prefix, count, deadline, updated in (
            ("inflight-", IN_FLIGHT, now + timedelta(hours=2), now),
            ("stuck-", STRANDED, None, now - timedelta(hours=1)),
        ):
            conn.execute(
                bench_stuck._ACTIVE,
                {
                    "types": bench_stuck.TYPES,
                    "definition": definition,
                    "prefix": prefix,
                    "state": "pending",
                    "step": 1,
                    "steps": Jsonb(bench_stuck.steps_json("executing")),
                    "deadline": deadline,
                    "error": None,
                    "created": updated - timedelta(minutes=1),
                    "updated": updated,
                    "count": count,
                },
            )
        conn.execute("ALTER TABLE saga_log ENABLE TRIGGER USER")
        conn.execute("DELETE FROM saga_counts")
        conn.execute(
            "INSERT INTO saga_counts (saga_type, state, n) SELECT saga_type, state, count(*) FROM saga_log"
            " GROUP BY saga_type, state"
        )
        conn.execute("VACUUM (ANALYZE) saga_log")
    return time.perf_counter() - started


def cli_cpu(env: dict[str, str], runs: int) -> tuple[float, float]:
    """Median wall ms and mean CPU ms (user + system, the process and its children) of
    `sagactl list --stuck -o json` processes."""
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "sagactl", "list", "--stuck", "-o", "json"],
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            check=False,
        )
        walls.append((time.perf_counter() - start) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        assert done.returncode == 0, done.stderr
        cpus.append((after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000)
    return statistics.median(walls), statistics.mean(cpus)


def buffers(plan: str) -> str:
    """The top node's 'Buffers:' line of an EXPLAIN (ANALYZE, BUFFERS)."""
    return next((line.strip() for line in plan.splitlines() if "Buffers:" in line), "?")


def explain_analyze_dbos(dsn: str, query: SagaQuery) -> str:
    with closing(MappedTableStore(dsn, PRESET)) as table:
        statement = table.statement(query)
        rows = table.db.rows(Sql(("EXPLAIN (ANALYZE, BUFFERS) ", statement)), "bench", "explaining")
        return "\n".join(str(r[0]) for r in rows)


def sqlite_scan(finished: int) -> tuple[float, int, str]:
    """The DBOS rows in a DBOS SQLite file (schema by DBOS): the stuck query's ms and plan."""
    with tempfile.TemporaryDirectory(prefix="sagactl-bench-") as tmp:
        path = Path(tmp) / "dbos.sqlite"
        done = subprocess.run(
            [sys.executable, str(DBOS_APP), f"sqlite:///{path}", "run"], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr[-2000:]
        now_ms = int(utcnow().timestamp() * 1000)
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.executemany(
                "INSERT INTO workflow_status (workflow_uuid, status, name, created_at, updated_at, priority)"
                " VALUES (?, ?, 'order', ?, ?, 0)",
                (
                    (f"w-{i}", "ERROR" if i % 10 == 0 else "SUCCESS", now_ms - 3_600_000 - i, now_ms - 3_600_000 - i)
                    for i in range(finished)
                ),
            )
            conn.executemany(
                "INSERT INTO workflow_status (workflow_uuid, status, name, created_at, updated_at, priority,"
                " queue_name) VALUES (?, ?, 'order', ?, ?, 0, ?)",
                (
                    (f"s-{i}", "ENQUEUED" if i % 2 else "PENDING", now_ms - 3_600_000, now_ms - 3_600_000, "q")
                    for i in range(STRANDED)
                ),
            )
            conn.execute("ANALYZE")
        dsn = f"sqlite:///{path}"
        now = utcnow()
        query = SagaQuery(stuck=True, now=now, idle_before=now - timedelta(minutes=15))
        with closing(MappedTableStore(dsn, PRESET)) as table:
            plan = table.explain(query)
            found = len(table.summaries(query))
            [(ms, _)] = medians([lambda: table.summaries(query)], 10)
        return ms, found, plan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-dsn", default=os.environ.get("SAGACTL_BENCH_PG_DSN", bench_stuck.DEFAULT_PG))
    parser.add_argument("--finished", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--cli-runs", type=int, default=10)
    parser.add_argument("--sqlite", action="store_true", help="also the DBOS SQLite file (a scan)")
    parser.add_argument("--markdown")
    parser.add_argument("--keep", action="store_true")
    opts = parser.parse_args()
    names = {kind: f"sagactl_bench_presets_{os.getpid()}_{kind}" for kind in ("dbos", "log")}
    try:
        dsns = {kind: bench_stuck.create_db(opts.pg_dsn, name) for kind, name in names.items()}
        print(f"building {names['dbos']}", file=sys.stderr, flush=True)
        fill_dbos = build_dbos(dsns["dbos"], opts.finished)
        print(f"building {names['log']}", file=sys.stderr, flush=True)
        fill_log = build_log(dsns["log"], opts.finished)
        load = os.getloadavg()
        text = measure(dsns, opts, fill_dbos, fill_log, load)
        if opts.sqlite:
            ms, found, plan = sqlite_scan(opts.finished)
            text += (
                f"\n## DBOS on SQLite ({opts.finished:,} finished, {STRANDED} stranded)\n\n"
                f"Stuck query on an open connection: {ms:.1f} ms, {found} found. Plan:\n\n```\n{plan}\n```\n"
            )
        print(text)
        if opts.markdown:
            Path(opts.markdown).write_text(text)
    finally:
        if not opts.keep:
            for name in names.values():
                bench_stuck.drop_db(opts.pg_dsn, name)


def measure(dsns: dict[str, str], opts: Any, fill_dbos: float, fill_log: float, load: tuple[float, ...]) -> str:
    dbos, log = dsns["dbos"], dsns["log"]
    table = MappedTableStore(dbos, PRESET)
    store = PostgresStore(log, create=False)
    now = utcnow()
    query = SagaQuery(stuck=True, now=now, idle_before=now - timedelta(minutes=15))
    found = (len(table.summaries(query)), len(store.summaries(query)))
    assert found == (STRANDED, STRANDED), found
    settings = (Settings(dsn=dbos, mapping=PRESET), Settings(dsn=log))
    timed = {
        "stuck query (open connection)": medians(
            [lambda: table.summaries(query), lambda: store.summaries(query)], opts.runs
        ),
        "`list_sagas(stuck)` (connect + query)": medians(
            [
                lambda: list_sagas(settings[0], ListRequest(stuck=True)),
                lambda: list_sagas(settings[1], ListRequest(stuck=True)),
            ],
            opts.runs,
        ),
        "`stats` (connect + queries)": medians(
            [lambda: stats(settings[0]), lambda: stats(settings[1])], max(5, opts.runs // 4)
        ),
    }
    cli = [
        cli_cpu({"SAGACTL_DSN": dbos, "SAGACTL_PRESET": "dbos"}, opts.cli_runs),
        cli_cpu({"SAGACTL_DSN": log}, opts.cli_runs),
    ]
    dbos_plan = explain_analyze_dbos(dbos, query)
    log_plan = store.explain_list(query)
    table.close()
    store.close()
    with psycopg.connect(dbos, autocommit=True) as conn:
        version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        dbos_size = str(
            conn.execute("SELECT pg_size_pretty(pg_total_relation_size('dbos.workflow_status'))").fetchone()[0]
        )  # type: ignore[index]
    with psycopg.connect(log, autocommit=True) as conn:
        log_size = str(conn.execute("SELECT pg_size_pretty(pg_total_relation_size('saga_log'))").fetchone()[0])  # type: ignore[index]

    def ms(v: tuple[float, float]) -> str:
        return f"{v[0]:.2f} (p90 {v[1]:.2f})"

    lines = [
        f"# `list --stuck` on a DBOS system database (preset dbos) and on sagactl's log, {opts.finished:,} finished",
        "",
        f"Produced by `python benchmarks/bench_presets.py` on {platform.node()} ({os.cpu_count()} CPUs),"
        f" PostgreSQL {version}, Python {platform.python_version()}; load average {load[0]:.1f} / {load[1]:.1f} /"
        f" {load[2]:.1f} when measuring (a machine shared with other work: the counts below hold whatever the load)."
        f" Round-robin medians of {opts.runs} runs (CLI: {opts.cli_runs} processes), milliseconds.",
        "",
        "| | DBOS (preset dbos) | sagactl log | DBOS / log |",
        "|---|---:|---:|---:|",
        f"| rows | {opts.finished + STRANDED + IN_FLIGHT + 6:,} | {opts.finished + STRANDED + IN_FLIGHT:,} | |",
        f"| table + indexes | {dbos_size} | {log_size} | |",
        f"| stuck found | {found[0]} | {found[1]} | |",
        f"| buffers the stuck plan touched | {buffers(dbos_plan)} | {buffers(log_plan)} | |",
    ]
    for label, (a, b) in timed.items():
        lines.append(f"| {label} | {ms(a)} | {ms(b)} | {a[0] / b[0]:.2f}x |")
    lines.append(
        f"| `sagactl list --stuck -o json`: wall / CPU per process | {cli[0][0]:.0f} / {cli[0][1]:.0f} |"
        f" {cli[1][0]:.0f} / {cli[1][1]:.0f} | {cli[0][1] / cli[1][1]:.2f}x CPU |"
    )
    lines += [
        "",
        f"Filling took {fill_dbos:.0f} s (DBOS) and {fill_log:.0f} s (log). `stats` on the DBOS table counts the"
        " finished workflows with a GROUP BY over the whole table (DBOS keeps no counters); its active counts"
        " and stuck query use DBOS's partial indexes.",
        "",
        "## EXPLAIN (ANALYZE, BUFFERS): the stuck query on the DBOS table",
        "",
        "```",
        dbos_plan,
        "```",
        "",
        "## EXPLAIN (ANALYZE, BUFFERS): the same query on sagactl's log",
        "",
        "```",
        log_plan,
        "```",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
