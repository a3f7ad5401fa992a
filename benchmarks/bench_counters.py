#!/usr/bin/env python3
"""State changes per second of one saga type from many connections: the `saga_counts` trigger
with one row per (type, state) (schema v7) against v8's rows per connection (issue 9's
"noticed": 2.8 of 17 worker connections waited on that row lock).

    python benchmarks/bench_counters.py [--threads 16] [--seconds 3] [--pg DSN]

Each thread flips its own saga between pending and compensating (every UPDATE fires the counter
trigger), autocommit, for --seconds. ``commit_delay`` (set on the scratch database) makes every
commit wait that long before its WAL flush: 4 ms stands for a slower disk than this machine's
(the worker benchmark measured 4.6 ms flushes on a loaded one). The counters' sums are checked
against the rows after every case.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_scale import DEFAULT_PG, scratch_database  # noqa: E402

# v8's counter function put back to v7's: one row per (type, state)
V7 = (
    "ALTER TABLE saga_counts DROP CONSTRAINT saga_counts_pkey",
    "DELETE FROM saga_counts",
    "ALTER TABLE saga_counts DROP COLUMN slot",
    "ALTER TABLE saga_counts ADD PRIMARY KEY (saga_type, state)",
    """CREATE OR REPLACE FUNCTION sagactl_count(p_type text, p_state text, p_delta bigint) RETURNS void
       LANGUAGE sql AS $$
           INSERT INTO saga_counts AS c (saga_type, state, n) VALUES (p_type, p_state, p_delta)
           ON CONFLICT (saga_type, state) DO UPDATE SET n = c.n + excluded.n
       $$""",
)


def run_case(admin: str, schema: str, delay_us: int, threads: int, seconds: float) -> float:
    import psycopg

    from sagactl.config import Settings
    from sagactl.ops import store_for

    with scratch_database(admin, "bench_counters") as dsn:
        with store_for(Settings(dsn=dsn)):
            pass  # the current schema
        name = dsn.rsplit("/", 1)[1]
        with psycopg.connect(dsn, autocommit=True) as conn:
            if schema == "v7":
                for statement in V7:
                    conn.execute(statement)
            conn.execute(f'ALTER DATABASE "{name}" SET commit_delay = {delay_us}')
            conn.execute(f'ALTER DATABASE "{name}" SET commit_siblings = 0')
            ids = [str(uuid.uuid4()) for _ in range(threads)]
            for saga_id in ids:
                conn.execute(
                    "INSERT INTO saga_log (saga_id, saga_type, state, steps, definition, created_at, updated_at)"
                    " VALUES (%s, 'Bench', 'pending', '[]', '{}', now(), now())",
                    [saga_id],
                )
        done = [0] * threads
        until = time.monotonic() + seconds

        def flip(k: int) -> None:
            with psycopg.connect(dsn, autocommit=True) as conn:
                while time.monotonic() < until:
                    conn.execute(
                        "UPDATE saga_log SET state = CASE state WHEN 'pending' THEN 'compensating' ELSE 'pending' END"
                        " WHERE saga_id = %s",
                        [ids[k]],
                    )
                    done[k] += 1

        workers = [threading.Thread(target=flip, args=(k,)) for k in range(threads)]
        started = time.monotonic()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        took = time.monotonic() - started
        with psycopg.connect(dsn, autocommit=True) as conn:
            counted = conn.execute("SELECT sum(n) FROM saga_counts WHERE saga_type = 'Bench'").fetchone()
            rows = conn.execute("SELECT count(*) FROM saga_log WHERE saga_type = 'Bench'").fetchone()
        assert counted is not None and rows is not None and int(counted[0]) == rows[0], (counted, rows)
        return sum(done) / took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--pg", default=os.environ.get("SAGACTL_BENCH_PG_DSN", DEFAULT_PG))
    opts = parser.parse_args()
    print(f"{opts.threads} connections, {opts.seconds:g} s per case; state changes per second\n")
    print("| counters | commit_delay 0 | commit_delay 4 ms |")
    print("|---|---:|---:|")
    for schema, label in (("v7", "v7: one row per (type, state)"), ("v8", "v8: a row per connection")):
        rates = [run_case(opts.pg, schema, delay, opts.threads, opts.seconds) for delay in (0, 4000)]
        print(f"| {label} | {rates[0]:,.0f} | {rates[1]:,.0f} |")


if __name__ == "__main__":
    main()
