#!/usr/bin/env python3
"""`sagactl prune` of 1,000,000 finished sagas on PostgreSQL while a writer runs (issue 11).

    python benchmarks/bench_prune.py                                  # 1,000,000 sagas, batches of 500
    python benchmarks/bench_prune.py --markdown benchmarks/RESULTS-prune.md

Builds a scratch database (``sagactl_bench_prune_<pid>``, dropped at the end unless --keep) with
the sagactl schema, fills it with N finished sagas 40 to 52 days old (90% completed, 10% failed,
four types, three transitions each; generate_series), 10,000 sagas that finished yesterday and
200 active ones idle for 60 days (neither may be pruned), rebuilds the counters, then VACUUM
ANALYZE.

A writer thread then drives sagas the way the engine does, through PostgresStore on its own
connection: create (leased), three saves, the last one completing the saga; of the same types
as the pruned ones, so its counter updates meet the prune's. It paces itself at --writer-rate
commits/s and times every commit. First --baseline seconds without prune, then
``sagactl.tools.retention.prune(older_than=30d)`` runs on another connection, then the writer stops.

Reported: the prune's elapsed time and rate; the writer's commit latency (median, p99, worst)
without and during the prune; the load average before and after; that the counters `stats`
reads still equal a full recount and that nothing recent or active was deleted.

PostgreSQL: --pg-dsn or SAGACTL_BENCH_PG_DSN, else postgresql://postgres@127.0.0.1:5432/postgres.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sagactl.models import SagaRecord, SagaState, StepRecord, StepStatus, Transition, utcnow
from sagactl.store.postgres import PostgresStore
from sagactl.tools.retention import PruneRequest, prune

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
TYPES = ["OrderFulfillment", "Refund", "Subscription", "Transfer"]
DEFINITION = {
    "document": {
        "saga": "OrderFulfillment",
        "endpoints": {"svc": {"type": "http", "url": "http://127.0.0.1:1"}},
        "steps": [
            {"name": "reserve", "endpoint": "svc", "action": {"path": "/r"}, "compensation": {"path": "/u"}},
            {"name": "charge", "endpoint": "svc", "action": {"path": "/c"}, "compensation": {"path": "/f"}},
            {"name": "ship", "endpoint": "svc", "action": {"path": "/s"}},
        ],
    },
    "base_dir": "/srv/sagas",
}
STEPS = ["reserve", "charge", "ship"]


def steps_json(status: str) -> list[dict[str, object]]:
    return [StepRecord(name=n, status=StepStatus(status), attempts=1).to_dict() for n in STEPS]


_SAGAS = """
INSERT INTO saga_log (saga_id, saga_type, state, current_step, current_step_name, data, steps, definition,
                      last_error, created_at, updated_at)
SELECT %(prefix)s || i, (%(types)s::text[])[1 + i %% 4], %(state)s,
       CASE WHEN %(active)s THEN 1 END, CASE WHEN %(active)s THEN 'charge' END,
       jsonb_build_object('order_id', 'ord-' || i, 'customer_id', 'cust-' || (i %% 5000), 'amount', i %% 997),
       %(steps)s, %(definition)s,
       CASE WHEN %(state)s = 'failed' THEN 'charge: HTTP 422 card declined' END,
       %(newest)s - (i * %(spacing)s::interval), %(newest)s - (i * %(spacing)s::interval) + interval '3 seconds'
FROM generate_series(%(start)s::int, %(stop)s::int) AS i
WHERE (%(state)s = 'failed') = (i %% 10 = 0) OR %(state)s NOT IN ('completed', 'failed')
"""
_TRANSITIONS = """
INSERT INTO saga_transitions (saga_id, step_name, old_state, new_state, detail, at)
SELECT s.saga_id, t.step, t.old, t.new, jsonb_build_object('attempt', 1), s.created_at
FROM saga_log AS s,
     (VALUES (NULL, NULL, 'started'), ('reserve', 'executing', 'completed'), (NULL, 'pending', 'completed'))
         AS t(step, old, new)
WHERE s.saga_id LIKE %(prefix)s || '%%'
"""


def with_db(admin: str, name: str) -> str:
    info = psycopg.conninfo.conninfo_to_dict(admin)
    info["dbname"] = name
    user = info.get("user", "postgres")
    password = f":{info['password']}" if info.get("password") else ""
    return f"postgresql://{user}{password}@{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{name}"


def fill(dsn: str, finished: int) -> float:
    started = time.perf_counter()
    PostgresStore(dsn).close()  # the schema
    now = utcnow()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE saga_log DISABLE TRIGGER USER")  # counters rebuilt below
        groups = [  # (prefix, count, newest, spacing, states)
            ("old-", finished, now - timedelta(days=40), "1 second", ("completed", "failed")),
            ("recent-", 10_000, now - timedelta(days=1), "1 second", ("completed", "failed")),
            ("active-", 200, now - timedelta(days=60), "1 minute", ("pending",)),
        ]
        for prefix, count, newest, spacing, states in groups:
            for start in range(1, count + 1, 250_000):
                stop = min(count, start + 249_999)
                for state in states:
                    status = {"completed": "completed", "failed": "compensated"}.get(state, "executing")
                    conn.execute(
                        _SAGAS,
                        {
                            "prefix": prefix, "types": TYPES, "state": state, "active": state == "pending",
                            "steps": Jsonb(steps_json(status)), "definition": Jsonb(DEFINITION),
                            "newest": newest, "spacing": spacing, "start": start, "stop": stop,
                        },
                    )  # fmt: skip
                print(f"  {prefix}{stop:,}", file=sys.stderr, flush=True)
            conn.execute(_TRANSITIONS, {"prefix": prefix})
        conn.execute("ALTER TABLE saga_log ENABLE TRIGGER USER")
    store = PostgresStore(dsn)
    store.recount()
    store.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


@dataclass
class Writer:
    """Drives sagas like the engine (create, then saves under the lease), timing each commit."""

    dsn: str
    rate: float
    latencies: list[tuple[float, float]] = field(default_factory=list)  # (when, seconds)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        store = PostgresStore(self.dsn)
        owner = "bench-writer"
        interval = 1.0 / self.rate
        next_at = time.perf_counter()
        n = 0
        try:
            while not self.stop.is_set():
                n += 1
                now = utcnow()
                saga = SagaRecord(
                    saga_id=f"w-{uuid.uuid4()}", saga_type=TYPES[n % 4], state=SagaState.STARTED,
                    data={"order_id": f"w-{n}"}, steps=[StepRecord(name=s) for s in STEPS],
                    definition=DEFINITION, created_at=now, updated_at=now, current_step=0,
                    lease_owner=owner, lease_expires_at=now + timedelta(seconds=30),
                )  # fmt: skip
                first = [Transition(saga.saga_id, None, None, "started", now)]
                self._timed(lambda: store.create(saga, first))  # noqa: B023
                for index, state in enumerate((SagaState.PENDING, SagaState.PENDING, SagaState.COMPLETED)):
                    next_at += interval
                    time.sleep(max(0.0, next_at - time.perf_counter()))
                    old = saga.state.value
                    saga.state = state
                    saga.steps[index].status = StepStatus.COMPLETED
                    saga.updated_at = utcnow()
                    if state is SagaState.COMPLETED:
                        saga.lease_owner = saga.lease_expires_at = None
                    change = Transition(saga.saga_id, STEPS[index], old, state.value, saga.updated_at)
                    self._timed(lambda: store.save(saga, [change], owner=owner, steps=[index]))  # noqa: B023
                next_at += interval
                time.sleep(max(0.0, next_at - time.perf_counter()))
        except Exception as exc:  # reported, not hidden
            self.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            store.close()

    def _timed(self, commit: object) -> None:
        started = time.perf_counter()
        commit()  # type: ignore[operator]
        self.latencies.append((started, time.perf_counter() - started))


def summary(latencies: list[float]) -> tuple[int, float, float, float]:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return len(ordered), statistics.median(ordered) * 1000, p99 * 1000, ordered[-1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sagas", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--writer-rate", type=float, default=100.0, help="writer commits per second")
    parser.add_argument("--baseline", type=float, default=20.0, help="seconds of writer alone first")
    parser.add_argument("--pg-dsn", default=os.environ.get("SAGACTL_BENCH_PG_DSN", DEFAULT_PG))
    parser.add_argument("--markdown", type=Path)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()

    name = f"sagactl_bench_prune_{os.getpid()}"
    with psycopg.connect(args.pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        version = str(conn.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
    dsn = with_db(args.pg_dsn, name)
    try:
        print(f"filling {args.sagas:,} finished sagas…", file=sys.stderr)
        filled = fill(dsn, args.sagas)
        with psycopg.connect(dsn) as conn:
            size = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]  # type: ignore[index]
        load_before = os.getloadavg()
        writer = Writer(dsn, args.writer_rate)
        thread = threading.Thread(target=writer.run, name="writer")
        thread.start()
        time.sleep(args.baseline)
        pruner = PostgresStore(dsn)
        print("pruning…", file=sys.stderr)
        started = time.perf_counter()
        result = prune(pruner, PruneRequest(older_than=timedelta(days=30), batch=args.batch), utcnow())
        elapsed = time.perf_counter() - started
        load_after = os.getloadavg()
        time.sleep(2.0)
        writer.stop.set()
        thread.join()
        before, after = pruner.recount()
        exact = [c for c in before if c.count] == after
        with psycopg.connect(dsn) as conn:
            left = dict(conn.execute(  # type: ignore[arg-type]
                "SELECT split_part(saga_id, '-', 1), count(*) FROM saga_log GROUP BY 1"
            ).fetchall())
            orphans = conn.execute(
                "SELECT count(*) FROM saga_transitions t WHERE NOT EXISTS"
                " (SELECT 1 FROM saga_log s WHERE s.saga_id = t.saga_id)"
            ).fetchone()[0]  # type: ignore[index]
        pruner.close()
        alone = summary([s for at, s in writer.latencies if at < started])
        during = summary([s for at, s in writer.latencies if started <= at <= started + elapsed])
    finally:
        if not args.keep:
            with psycopg.connect(args.pg_dsn, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    lines = [
        f"# `sagactl prune` of {args.sagas:,} finished sagas on PostgreSQL while a writer runs",
        "",
        f"Produced by `python benchmarks/bench_prune.py` on {platform.node()} ({os.cpu_count()} CPUs),"
        f" PostgreSQL {version}, Python {platform.python_version()}. Load average (1, 5, 15 min)"
        f" {load_before[0]:.2f}, {load_before[1]:.2f}, {load_before[2]:.2f} before the prune and"
        f" {load_after[0]:.2f}, {load_after[1]:.2f}, {load_after[2]:.2f} after it (other work shared the machine).",
        "",
        f"Database: {args.sagas:,} finished sagas 40-52 days old with 3 transitions each, 10,000 finished"
        f" yesterday, 200 active ones idle for 60 days; {size} (filled in {filled:.0f} s).",
        "",
        "| | |",
        "|---|---:|",
        f"| pruned (older than 30d) | {result.pruned:,} sagas, {result.batches:,} batches of {args.batch} |",
        f"| elapsed | {elapsed:.1f} s ({result.pruned / elapsed:,.0f} sagas/s) |",
        f"| writer alone: commits, median, p99, worst | {alone[0]:,}, {alone[1]:.2f} ms, {alone[2]:.2f} ms,"
        f" {alone[3]:.2f} ms |",
        f"| writer during the prune: commits, median, p99, worst | {during[0]:,}, {during[1]:.2f} ms,"
        f" {during[2]:.2f} ms, **{during[3]:.2f} ms** |",
        f"| counters equal a full recount afterwards | {'yes' if exact else 'NO'} |",
        f"| left: recent, active, writer's; orphaned transitions | {left.get('recent', 0):,},"
        f" {left.get('active', 0):,}, {left.get('w', 0):,}; {orphans} |",
        f"| writer errors | {'; '.join(writer.errors) or 'none'} |",
        "",
        f"The writer paced itself at {args.writer_rate:g} commits/s (create + 3 saves per saga, the types"
        " the prune deletes, so its counter updates wait for a batch's commit at most).",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        args.markdown.write_text(text)


if __name__ == "__main__":
    main()
