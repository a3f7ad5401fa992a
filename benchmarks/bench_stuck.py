#!/usr/bin/env python3
"""`list --stuck` and `stats` on a big PostgreSQL saga_log against a small one (issue 3).

    python benchmarks/bench_stuck.py                       # 2,000,000 vs 10,000 finished sagas
    python benchmarks/bench_stuck.py --markdown benchmarks/RESULTS-stuck.md

Builds two scratch databases (``sagactl_bench_stuck_<pid>_<n>``, dropped at the end unless
--keep) with the sagactl schema (``PostgresStore.init_schema``), fills each with N finished
sagas (90% completed, 10% failed, four types; generate_series, realistic JSON), 200 sagas in
flight (deadline two hours ahead) and the same 100 stuck ones (40 compensating and 40 pending
past their deadline, 20 started without a deadline and idle for an hour), fills the
saga_counts counters to match, then VACUUM ANALYZE (what autovacuum leaves behind).

Times, per database (median of --runs, after a warm-up):
  query   PostgresStore.list_sagas(stuck) on an open connection: the SQL alone;
  core    sagactl.tools.inspect.list_sagas / sagactl.tools.inspect.stats (connect, query, build rows);
  cli     the installed `sagactl list --stuck -o json` / `sagactl stats -o json` (a process each);
  list    sagactl.tools.inspect.list_sagas without filters (plain `list`: the first 1000 sagas);
and prints EXPLAIN (ANALYZE, BUFFERS) of the stuck query and of the active-count query on the
big database, plus what a GROUP BY over the whole table (what `stats` avoids) costs there.
Targets: stuck within 1.3x of the small database, stats within 2x.

PostgreSQL: --pg-dsn or SAGACTL_BENCH_PG_DSN, else postgresql://postgres@127.0.0.1:5432/postgres.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sagactl.config import Settings
from sagactl.definitions.validation import check_text
from sagactl.models import utcnow
from sagactl.ops.sagas import list_sagas, stats
from sagactl.store.base import SagaQuery
from sagactl.store.postgres import PostgresStore
from sagactl.tools.inspect import ListRequest

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
TYPES = ["OrderFulfillment", "Refund", "Subscription", "Transfer"]
DEFINITION = """
saga: OrderFulfillment
description: Reserve, charge, ship, notify.
endpoints:
  inventory: {type: http, url: "${env.INVENTORY_URL}", headers: {Authorization: "Bearer ${env.INV_TOKEN}"}}
  payment: {type: sqs, queue: payment-commands, reply_queue: order-saga-replies}
  shipping: {type: exec, command: [python3, participants/shipping.py]}
defaults:
  timeout: 30s
  retry: {max_attempts: 3, initial_backoff: 500ms, max_backoff: 30s}
steps:
  - name: reserve_inventory
    endpoint: inventory
    timeout: 2m
    action: {method: POST, path: /reservations, body: {order_id: "${input.order_id}", items: "${input.items}"}}
    compensation: {method: POST, path: /reservations/release, body: {order_id: "${input.order_id}"}}
  - name: process_payment
    endpoint: payment
    action: {command: PaymentService.ProcessPayment}
    compensation: {command: PaymentService.RefundPayment}
  - name: send_confirmation
    endpoint: shipping
    action: {args: [confirm]}
"""


def snapshot() -> dict[str, Any]:
    report = check_text(DEFINITION, "order.yaml", "/srv/sagas")
    assert not report.errors, report.problems
    return report.definitions[0].snapshot()


def steps_json(status: str) -> list[dict[str, Any]]:
    names = ["reserve_inventory", "process_payment", "send_confirmation"]
    return [
        {
            "name": n,
            "status": status,
            "attempts": 1,
            "result": {"id": f"{n[:3]}-123456"},
            "error": None,
            "started_at": "2026-11-01T10:00:00.000000Z",
            "finished_at": "2026-11-01T10:00:01.000000Z",
            "outcome": "succeeded",
            "compensation_attempts": 0,
            "compensated_at": None,
        }
        for n in names
    ]


# -- building the databases -------------------------------------------------------------------


def with_db(dsn: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    info["dbname"] = name
    user = info.get("user", "postgres")
    password = f":{info['password']}" if info.get("password") else ""
    return f"postgresql://{user}{password}@{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{name}"


def create_db(admin: str, name: str) -> str:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return with_db(admin, name)


def drop_db(admin: str, name: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


_FINISHED = """
INSERT INTO saga_log (saga_id, saga_type, state, current_step, current_step_name, data, steps, definition,
                      deadline_at, last_error, created_at, updated_at)
SELECT md5(%(prefix)s || i)::uuid::text,
       (%(types)s::text[])[1 + i %% 4],
       CASE WHEN i %% 10 = 0 THEN 'failed' ELSE 'completed' END,
       NULL, NULL,
       jsonb_build_object('order_id', 'ord-' || i, 'customer_id', 'cust-' || (i %% 5000), 'amount', i %% 997,
                          'items', jsonb_build_array(jsonb_build_object('sku', 'SKU-' || (i %% 300), 'qty', 1))),
       CASE WHEN i %% 10 = 0 THEN %(failed_steps)s ELSE %(done_steps)s END,
       %(definition)s,
       NULL,
       CASE WHEN i %% 10 = 0 THEN 'process_payment: HTTP 422 card declined' END,
       %(now)s - (i * interval '1 second') - interval '1 hour',
       %(now)s - (i * interval '1 second') - interval '1 hour' + interval '3 seconds'
FROM generate_series(%(start)s::int, %(stop)s::int) AS i
"""

_ACTIVE = """
INSERT INTO saga_log (saga_id, saga_type, state, current_step, current_step_name, data, steps, definition,
                      deadline_at, last_error, created_at, updated_at)
SELECT %(prefix)s || i, (%(types)s::text[])[1 + i %% 4], %(state)s, %(step)s, 'process_payment',
       jsonb_build_object('order_id', 'ord-x' || i), %(steps)s, %(definition)s,
       %(deadline)s, %(error)s, %(created)s, %(updated)s
FROM generate_series(1, %(count)s::int) AS i
"""


def fill(dsn: str, finished: int) -> float:
    """The schema and the sagas; returns seconds spent."""
    started = time.perf_counter()
    store = PostgresStore(dsn)
    store.close()
    now = utcnow()
    definition = Jsonb(snapshot())
    with psycopg.connect(dsn, autocommit=True) as conn:
        batch = 250_000
        for start in range(1, finished + 1, batch):
            conn.execute(
                _FINISHED,
                {
                    "prefix": "f",
                    "types": TYPES,
                    "done_steps": Jsonb(steps_json("completed")),
                    "failed_steps": Jsonb(steps_json("compensated")),
                    "definition": definition,
                    "now": now,
                    "start": start,
                    "stop": min(finished, start + batch - 1),
                },
            )
            print(f"  {min(finished, start + batch - 1):>9,} finished sagas", file=sys.stderr, flush=True)
        now = utcnow()  # the fill took a while: in-flight deadlines count from here
        common = {"types": TYPES, "definition": definition}
        groups = [  # (prefix, state, count, deadline, updated, error)
            ("inflight-", "pending", 200, now + timedelta(hours=2), now, None),
            (
                "stuck-comp-",
                "compensating",
                40,
                now - timedelta(minutes=30),
                now - timedelta(minutes=31),
                "refund: 503",
            ),
            ("stuck-pend-", "pending", 40, now - timedelta(minutes=10), now - timedelta(minutes=12), "charge: timeout"),
            ("stuck-idle-", "started", 20, None, now - timedelta(hours=1), None),
        ]
        for prefix, state, count, deadline, updated, error in groups:
            conn.execute(
                _ACTIVE,
                {
                    **common,
                    "prefix": prefix,
                    "state": state,
                    "step": 1,
                    "steps": Jsonb(steps_json("executing")),
                    "deadline": deadline,
                    "error": error,
                    "created": updated - timedelta(minutes=1),
                    "updated": updated,
                    "count": count,
                },
            )
        conn.execute(
            "INSERT INTO saga_counts (saga_type, state, n) SELECT saga_type, state, count(*) FROM saga_log"
            " GROUP BY saga_type, state"
        )
        conn.execute("VACUUM (ANALYZE) saga_log")
        conn.execute("VACUUM (ANALYZE) saga_counts")
    return time.perf_counter() - started


# -- timing -----------------------------------------------------------------------------------


def medians(fns: list[Callable[[], Any]], runs: int) -> list[tuple[float, float]]:
    """(median, p90) in ms of each function, runs interleaved so background noise (checkpoints,
    autovacuum, the other core) hits every database alike."""
    for fn in fns:
        fn()
    samples: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for fn, bucket in zip(fns, samples, strict=True):
            start = time.perf_counter()
            fn()
            bucket.append((time.perf_counter() - start) * 1000)
    result = []
    for bucket in samples:
        bucket.sort()
        result.append((statistics.median(bucket), bucket[max(0, int(len(bucket) * 0.9) - 1)]))
    return result


def sagactl_binary() -> list[str]:
    beside = Path(sys.executable).parent / "sagactl"
    return [str(beside)] if beside.exists() else [sys.executable, "-m", "sagactl"]


@dataclass
class Figures:
    rows: int = 0
    size: str = ""
    fill_s: float = 0.0
    stuck_found: int = 0
    query_ms: tuple[float, float] = (0.0, 0.0)
    core_ms: tuple[float, float] = (0.0, 0.0)
    cli_ms: tuple[float, float] = (0.0, 0.0)
    stats_core_ms: tuple[float, float] = (0.0, 0.0)
    stats_cli_ms: tuple[float, float] = (0.0, 0.0)
    list_ms: tuple[float, float] = (0.0, 0.0)


def describe(dsn: str, fill_s: float) -> Figures:
    found = list_sagas(Settings(dsn=dsn), ListRequest(stuck=True))
    assert len(found.sagas) == 100, len(found.sagas)
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = int(conn.execute("SELECT count(*) FROM saga_log").fetchone()[0])  # type: ignore[index]
        size = str(conn.execute("SELECT pg_size_pretty(pg_total_relation_size('saga_log'))").fetchone()[0])  # type: ignore[index]
        conn.execute("CHECKPOINT")
    return Figures(rows=rows, size=size, fill_s=fill_s, stuck_found=len(found.sagas))


def measure(dsns: list[str], figures: list[Figures], runs: int, cli_runs: int) -> None:
    binary = sagactl_binary()
    stores = [PostgresStore(dsn, create=False) for dsn in dsns]
    now = utcnow()
    query = SagaQuery(stuck=True, now=now, idle_before=now)

    def cli(dsn: str, *args: str) -> Callable[[], None]:
        env = {**os.environ, "SAGACTL_DSN": dsn}

        def run() -> None:
            done = subprocess.run([*binary, *args], env=env, capture_output=True, check=False)
            assert done.returncode == 0, done.stderr

        return run

    def bind(fn: Callable[..., Any], *args: Any) -> Callable[[], Any]:
        return lambda: fn(*args)

    settings = [Settings(dsn=dsn) for dsn in dsns]
    for name, fns, count in (
        ("query_ms", [bind(store.list_sagas, query) for store in stores], runs),
        ("core_ms", [bind(list_sagas, s, ListRequest(stuck=True)) for s in settings], runs),
        ("stats_core_ms", [bind(stats, s) for s in settings], runs),
        ("list_ms", [bind(list_sagas, s, ListRequest()) for s in settings], max(5, runs // 4)),
        ("cli_ms", [cli(dsn, "list", "--stuck", "-o", "json") for dsn in dsns], cli_runs),
        ("stats_cli_ms", [cli(dsn, "stats", "-o", "json") for dsn in dsns], cli_runs),
    ):
        print(f"  timing {name}", file=sys.stderr, flush=True)
        for figure, value in zip(figures, medians(fns, count), strict=True):
            setattr(figure, name, value)
    for store in stores:
        store.close()


def plans(dsn: str) -> tuple[str, str, float]:
    store = PostgresStore(dsn, create=False)
    now = utcnow()
    stuck_plan = store.explain_list(SagaQuery(stuck=True, now=now, idle_before=now))
    store.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        active_plan = "\n".join(
            str(r[0])
            for r in conn.execute(
                "EXPLAIN (ANALYZE, BUFFERS) SELECT saga_type, state, count(*), min(created_at) FROM saga_log"
                " WHERE state NOT IN ('completed', 'failed') GROUP BY saga_type, state"
            )
        )
        start = time.perf_counter()
        conn.execute("SELECT saga_type, state, count(*) FROM saga_log GROUP BY saga_type, state").fetchall()
        full_group_by = (time.perf_counter() - start) * 1000
    return stuck_plan, active_plan, full_group_by


# -- report -----------------------------------------------------------------------------------


def report(small: Figures, big: Figures, stuck_plan: str, active_plan: str, group_by_ms: float, opts: Any) -> str:
    def ratio(a: tuple[float, float], b: tuple[float, float]) -> str:
        return f"{b[0] / a[0]:.2f}x"

    def ms(value: tuple[float, float]) -> str:
        return f"{value[0]:.2f} (p90 {value[1]:.2f})"

    with psycopg.connect(opts.pg_dsn, autocommit=True) as conn:
        version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    stuck_ratio = big.core_ms[0] / small.core_ms[0]
    stats_ratio = big.stats_core_ms[0] / small.stats_core_ms[0]
    lines = [
        "# `list --stuck` and `stats` on 2M finished sagas (PostgreSQL)",
        "",
        f"Produced by `python benchmarks/bench_stuck.py` on {platform.node()} ({os.cpu_count()} CPUs),"
        f" PostgreSQL {version}, Python {platform.python_version()}; medians of {opts.runs} runs"
        f" (CLI: {opts.cli_runs} processes), milliseconds.",
        "",
        "| | small | big | big/small | target |",
        "|---|---:|---:|---:|---:|",
        f"| saga_log rows | {small.rows:,} | {big.rows:,} | | |",
        f"| table + indexes | {small.size} | {big.size} | | |",
        f"| stuck sagas found | {small.stuck_found} | {big.stuck_found} | | 100 |",
        f"| stuck query (open connection) | {ms(small.query_ms)} | {ms(big.query_ms)} |"
        f" {ratio(small.query_ms, big.query_ms)} | |",
        f"| `inspect.list_sagas(stuck)` (connect + query) | {ms(small.core_ms)} | {ms(big.core_ms)} |"
        f" **{stuck_ratio:.2f}x** | ≤ 1.3x |",
        f"| `sagactl list --stuck -o json` (process) | {ms(small.cli_ms)} | {ms(big.cli_ms)} |"
        f" {ratio(small.cli_ms, big.cli_ms)} | ≤ 1.3x |",
        f"| `inspect.stats` (connect + queries) | {ms(small.stats_core_ms)} | {ms(big.stats_core_ms)} |"
        f" **{stats_ratio:.2f}x** | ≤ 2x |",
        f"| `sagactl stats -o json` (process) | {ms(small.stats_cli_ms)} | {ms(big.stats_cli_ms)} |"
        f" {ratio(small.stats_cli_ms, big.stats_cli_ms)} | ≤ 2x |",
        f"| `inspect.list_sagas()` (plain `list`: the first 1000) | {ms(small.list_ms)} | {ms(big.list_ms)} |"
        f" {ratio(small.list_ms, big.list_ms)} | |",
        "",
        f"For comparison, the GROUP BY over the whole big table that `stats` avoids: {group_by_ms:.0f} ms.",
        f"Filling took {small.fill_s:.1f} s (small) and {big.fill_s:.1f} s (big).",
        "",
        "## EXPLAIN (ANALYZE, BUFFERS) of the stuck query on the big database",
        "",
        "```",
        stuck_plan,
        "```",
        "",
        "## EXPLAIN (ANALYZE, BUFFERS) of the active counts of `stats` on the big database",
        "",
        "```",
        active_plan,
        "```",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-dsn", default=os.environ.get("SAGACTL_BENCH_PG_DSN", DEFAULT_PG))
    parser.add_argument("--finished", type=int, default=2_000_000, help="finished sagas in the big database")
    parser.add_argument("--small", type=int, default=10_000, help="finished sagas in the small database")
    parser.add_argument("--runs", type=int, default=60, help="runs per in-process measurement")
    parser.add_argument("--cli-runs", type=int, default=15, help="processes per CLI measurement")
    parser.add_argument("--markdown", help="also write the report to this file")
    parser.add_argument("--keep", action="store_true", help="keep the scratch databases")
    opts = parser.parse_args()

    names = {size: f"sagactl_bench_stuck_{os.getpid()}_{size}" for size in (opts.small, opts.finished)}
    try:
        dsns, figures = [], []
        for size, name in names.items():
            print(f"building {name} ({size:,} finished sagas)", file=sys.stderr, flush=True)
            dsn = create_db(opts.pg_dsn, name)
            filled = fill(dsn, size)
            dsns.append(dsn)
            figures.append(describe(dsn, filled))
        measure(dsns, figures, opts.runs, opts.cli_runs)
        stuck_plan, active_plan, group_by_ms = plans(dsns[1])
        text = report(figures[0], figures[1], stuck_plan, active_plan, group_by_ms, opts)
        print(text)
        if opts.markdown:
            Path(opts.markdown).write_text(text)
    finally:
        if not opts.keep:
            for name in names.values():
                drop_db(opts.pg_dsn, name)


if __name__ == "__main__":
    main()
