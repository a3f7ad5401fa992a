#!/usr/bin/env python3
"""`stats --steps` on 1,000,000 saga_transitions (PostgreSQL).

    python benchmarks/bench_stats_steps.py
    python benchmarks/bench_stats_steps.py --markdown benchmarks/RESULTS-stats-steps.md

Builds a scratch database (``sagactl_bench_steps_<pid>``, dropped at the end unless --keep) with
the sagactl schema, fills it with generate_series: N sagas of four types created over the last
20 hours, each with the transitions the driver writes (started, pending, per step
pending -> executing -> completed, completed); every 20th saga retries its second step after a
timeout, every 10th fails at its third step (a retry after an error, a final timeout) and
compensates the two before it. About 11 transitions a saga: --transitions / 11 sagas. Then
VACUUM ANALYZE.

Times (median and p90 of --runs, after a warm-up):
  store   store.stepstats.step_totals over the whole window (aggregated in PostgreSQL), and
          step_runs (one row per step run, the SQLite path) for comparison;
  core    sagactl.ops.tools.step_stats (connect, query, percentiles, flags);
  narrow  the same with --since 1h (a twentieth of the sagas) and with --type (a quarter);
  cli     `python -m sagactl stats --steps -o json` of this checkout (a process each);
and prints EXPLAIN (ANALYZE, BUFFERS) of the query.

The definition uses http and exec endpoints only: no SQS is asked (nothing leaves the host).
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
from sagactl.ops.tools import step_stats
from sagactl.store.postgres import PostgresStore
from sagactl.store.stepruns import runs_statement, step_runs, step_totals

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
TYPES = ["OrderFulfillment", "Refund", "Subscription", "Transfer"]
STEPS = ["reserve_inventory", "charge_payment", "create_shipment", "send_confirmation"]
DEFINITION = """
saga: OrderFulfillment
endpoints:
  inventory: {type: http, url: "http://127.0.0.1:9/inventory"}
  payment: {type: http, url: "http://127.0.0.1:9/payment"}
  shipping: {type: exec, command: [python3, participants/shipping.py]}
defaults:
  timeout: 2s
  retry: {max_attempts: 3, initial_backoff: 500ms, max_backoff: 30s}
steps:
  - {name: reserve_inventory, endpoint: inventory, action: {path: /r}, compensation: {path: /u}}
  - {name: charge_payment, endpoint: payment, action: {path: /c}, compensation: {path: /refund}}
  - {name: create_shipment, endpoint: shipping, action: {args: [create]}, compensation: {args: [cancel]}}
  - {name: send_confirmation, endpoint: shipping, action: {args: [confirm]}}
"""

_SAGAS = """
INSERT INTO saga_log (saga_id, saga_type, state, current_step, current_step_name, data, steps, definition,
                      created_at, updated_at)
SELECT 's-' || i, (%(types)s::text[])[1 + i %% 4], CASE WHEN i %% 10 = 0 THEN 'failed' ELSE 'completed' END,
       NULL, NULL, jsonb_build_object('order_id', 'ord-' || i), '[]'::jsonb, %(definition)s,
       %(start)s + (i * %(spacing)s), %(start)s + (i * %(spacing)s) + interval '5 seconds'
FROM generate_series(%(first)s::int, %(last)s::int) AS i
"""

# Per saga: (step index, old, new, seconds after creation, detail, condition on i) rows.
_TRANSITIONS = """
INSERT INTO saga_transitions (saga_id, step_name, old_state, new_state, detail, at)
SELECT 's-' || i, t.step, t.old, t.new, t.detail, %(start)s + (i * %(spacing)s) + t.offs * interval '1 ms'
FROM generate_series(%(first)s::int, %(last)s::int) AS i
CROSS JOIN LATERAL (VALUES
    (NULL, NULL, 'started', '{"owner": "bench"}'::jsonb, 0, true),
    (NULL, 'started', 'pending', '{}'::jsonb, 1, true),
    ('reserve_inventory', 'pending', 'executing', '{"attempt": 1}', 2, true),
    ('reserve_inventory', 'executing', 'completed', '{"attempt": 1}', 2 + 200 + i %% 300, true),
    ('charge_payment', 'pending', 'executing', '{"attempt": 1}', 600, true),
    ('charge_payment', 'executing', 'executing', '{"attempt": 2, "retry": true, "after": "timeout"}', 2700,
     i %% 20 = 0),
    ('charge_payment', 'executing', 'completed', '{"attempt": 1}',
     CASE WHEN i %% 20 = 0 THEN 3100 ELSE 700 + i %% 900 END, true),
    ('create_shipment', 'pending', 'executing', '{"attempt": 1}', 3200, true),
    ('create_shipment', 'executing', 'executing', '{"attempt": 2, "retry": true, "after": "error"}', 3500,
     i %% 10 = 0),
    ('create_shipment', 'executing', 'completed', '{"attempt": 1}', 3300 + i %% 500, i %% 10 <> 0),
    ('create_shipment', 'executing', 'failed', '{"attempt": 2, "outcome": "unknown", "timed_out": true}',
     5600, i %% 10 = 0),
    (NULL, 'pending', 'compensating', '{}', 5601, i %% 10 = 0),
    ('create_shipment', 'failed', 'compensating', '{"attempt": 1}', 5602, i %% 10 = 0),
    ('create_shipment', 'compensating', 'compensated', '{"attempt": 1}', 5700, i %% 10 = 0),
    ('charge_payment', 'completed', 'compensating', '{"attempt": 1}', 5701, i %% 10 = 0),
    ('charge_payment', 'compensating', 'compensated', '{"attempt": 1}', 5900, i %% 10 = 0),
    ('reserve_inventory', 'completed', 'compensating', '{"attempt": 1}', 5901, i %% 10 = 0),
    ('reserve_inventory', 'compensating', 'compensated', '{"attempt": 1}', 6000, i %% 10 = 0),
    (NULL, 'compensating', 'failed', '{}', 6001, i %% 10 = 0),
    ('send_confirmation', 'pending', 'executing', '{"attempt": 1}', 5800, i %% 10 <> 0),
    ('send_confirmation', 'executing', 'completed', '{"attempt": 1}', 5900 + i %% 100, i %% 10 <> 0),
    (NULL, 'pending', 'completed', '{}', 6100, i %% 10 <> 0)
) AS t(step, old, new, detail, offs, keep)
WHERE t.keep
ORDER BY i
"""


def with_db(dsn: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(dsn)
    info["dbname"] = name
    user = info.get("user", "postgres")
    password = f":{info['password']}" if info.get("password") else ""
    return f"postgresql://{user}{password}@{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{name}"


def fill(admin: str, name: str, transitions: int) -> tuple[str, int, int, float]:
    """The database, its saga count, transition count and seconds spent filling it."""
    started = time.perf_counter()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = with_db(admin, name)
    PostgresStore(dsn).close()  # the schema
    report = check_text(DEFINITION, "order.yaml", "/srv/sagas")
    assert not report.errors, report.problems
    sagas = transitions // 11
    now = utcnow()
    start = now - timedelta(hours=20)
    spacing = timedelta(hours=20) / sagas
    with psycopg.connect(dsn, autocommit=True) as conn:
        batch = 50_000
        for first in range(1, sagas + 1, batch):
            params = {
                "types": TYPES,
                "definition": Jsonb(report.definitions[0].snapshot()),
                "start": start,
                "spacing": spacing,
                "first": first,
                "last": min(sagas, first + batch - 1),
            }
            conn.execute(_SAGAS, params)
            conn.execute(_TRANSITIONS, params)
            print(f"  {params['last']:>9,} sagas", file=sys.stderr, flush=True)
        conn.execute("VACUUM (ANALYZE) saga_log")
        conn.execute("VACUUM (ANALYZE) saga_transitions")
        conn.execute("CHECKPOINT")
        count = int(conn.execute("SELECT count(*) FROM saga_transitions").fetchone()[0])  # type: ignore[index]
    return dsn, sagas, count, time.perf_counter() - started


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, float]:
    """(median, p90) in ms of ``fn`` over ``runs`` runs after one warm-up."""
    fn()
    samples = []
    for _ in range(runs):
        begin = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - begin) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.9) - 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pg-dsn", default=os.environ.get("SAGACTL_BENCH_PG_DSN", DEFAULT_PG))
    parser.add_argument("--transitions", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--cli-runs", type=int, default=5)
    parser.add_argument("--markdown", help="also write the report to this file")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--reuse", metavar="DATABASE", help="measure a database a --keep run filled")
    opts = parser.parse_args()

    if opts.reuse:
        name, dsn, fill_s = opts.reuse, with_db(opts.pg_dsn, opts.reuse), 0.0
        with psycopg.connect(dsn, autocommit=True) as conn:
            sagas = int(conn.execute("SELECT count(*) FROM saga_log").fetchone()[0])  # type: ignore[index]
            count = int(conn.execute("SELECT count(*) FROM saga_transitions").fetchone()[0])  # type: ignore[index]
    else:
        name = f"sagactl_bench_steps_{os.getpid()}"
        print(f"building {name}", file=sys.stderr, flush=True)
        dsn, sagas, count, fill_s = fill(opts.pg_dsn, name, opts.transitions)
    try:
        settings = Settings(dsn=dsn)
        env = {"PATH": os.environ.get("PATH", "")}
        store = PostgresStore(dsn, create=False)
        window = utcnow() - timedelta(hours=24)  # a reused database: within a few hours of its filling
        runs_found = len(list(step_runs(store, window)))
        report = step_stats(settings, since="24h", env=env)
        figures = {
            "store: `step_totals` (24h: every saga; aggregated in PostgreSQL)": timed(
                lambda: step_totals(store, window), opts.runs
            ),
            "store: `step_runs` (one row per step run, as SQLite reads them)": timed(
                lambda: list(step_runs(store, window)), max(1, opts.runs // 2)
            ),
            "core: `ops.tools.step_stats` --since 24h": timed(
                lambda: step_stats(settings, since="24h", env=env), opts.runs
            ),
            "core: --since 24h --type Refund (a quarter)": timed(
                lambda: step_stats(settings, since="24h", saga_type="Refund", env=env), opts.runs
            ),
            "core: --since 1h (a twentieth)": timed(lambda: step_stats(settings, since="1h", env=env), opts.runs),
        }
        command = [sys.executable, "-m", "sagactl", "stats", "--steps", "-o", "json"]
        root = str(Path(__file__).resolve().parent.parent)  # this checkout's sagactl, not an installed one
        cli_env = {**os.environ, "SAGACTL_DSN": dsn, "PYTHONPATH": root, "AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:9"}

        def cli() -> None:
            done = subprocess.run(command, env=cli_env, capture_output=True, check=False)
            assert done.returncode == 0, done.stderr

        figures["cli: `sagactl stats --steps -o json` (process)"] = timed(cli, opts.cli_runs)
        statement = runs_statement("postgres", None).replace("?", "%s")
        with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction():
            conn.execute("SET LOCAL work_mem = '64MB'")  # as step_totals runs it
            conn.execute("SET LOCAL jit = off")
            plan = "\n".join(
                str(r[0]) for r in conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {statement}".encode(), [window])
            )
            version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
            size = str(
                conn.execute("SELECT pg_size_pretty(pg_total_relation_size('saga_transitions'))").fetchone()[0]  # type: ignore[index]
            )
        store.close()
        flags = sum(len(s.flags) for s in report.steps)
        lines = [
            "# `stats --steps` on 1M saga_transitions (PostgreSQL)",
            "",
            f"Produced by `python benchmarks/bench_stats_steps.py` on {platform.node()} ({os.cpu_count()} CPUs),"
            f" PostgreSQL {version}, Python {platform.python_version()}; medians (p90) of {opts.runs} runs"
            f" (CLI: {opts.cli_runs} processes), milliseconds. Load average when done:"
            f" {os.getloadavg()[0]:.1f} (other jobs shared the machine).",
            "",
            f"{sagas:,} sagas, {count:,} transitions ({size} with indexes), {runs_found:,} step runs"
            f" (action or compensation of one step in one saga), {len(report.steps)} rows reported,"
            f" {flags} flags." + (f" Filling took {fill_s:.1f} s." if fill_s else ""),
            "",
            "| what | median | p90 |",
            "|---|---:|---:|",
            *(f"| {label} | {median:.0f} | {p90:.0f} |" for label, (median, p90) in figures.items()),
            "",
            "## EXPLAIN (ANALYZE, BUFFERS) of the per-run grouping step_totals aggregates, the whole window",
            "",
            "```",
            plan,
            "```",
            "",
        ]
        text = "\n".join(lines)
        print(text)
        if opts.markdown:
            Path(opts.markdown).write_text(text, "utf-8")
    finally:
        if not opts.keep:
            with psycopg.connect(opts.pg_dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
