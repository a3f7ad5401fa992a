"""`sagactl run FILE --inputs FILE` (issue 9): sagas recorded per second by one process, on
SQLite and PostgreSQL, beside one `sagactl run --detach` process per saga.

Each case is a whole `sagactl` process, start-up included, recording N detached sagas of the
sample order saga (nothing is sent: workers drive them). On PostgreSQL it also reads
pg_stat_database around the run: the connections (sessions) and commits the process made.

    python benchmarks/bench_inputs.py [-n 2000] [--per-process 20] [--pg postgresql://postgres@127.0.0.1/postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample-configs" / "order.yaml"
ORDER = json.loads((ROOT / "sample-configs" / "order-input.json").read_text())


def sagactl(*args: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sagactl", *args], env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"sagactl {' '.join(args)} failed: {done.stderr}")
    return took


def pg_stats(admin: str, database: str) -> tuple[int, int]:
    """(sessions, commits) of ``database`` so far (psycopg reads them outside any snapshot)."""
    with psycopg.connect(admin, autocommit=True) as conn:
        row = conn.execute(
            "SELECT sessions, xact_commit FROM pg_stat_database WHERE datname = %s", [database]
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="sagas per --inputs run (default 2000)")
    parser.add_argument("--per-process", type=int, default=20, help="`run --detach` processes to time (default 20)")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres", help="an admin DSN")
    args = parser.parse_args()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory(prefix="bench-inputs-") as tmp:
        lines = Path(tmp) / "orders.jsonl"
        lines.write_text("".join(json.dumps({**ORDER, "order_id": f"ord-{n}"}) + "\n" for n in range(args.n)))
        one = json.dumps(ORDER)
        database = f"bench_inputs_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        pg = f"{args.pg.split('?')[0].rsplit('/', 1)[0]}/{database}"  # the admin URL, another database
        stores = {"sqlite": f"sqlite:///{tmp}/saga_log.db", "postgres": pg}
        try:
            print(f"{args.n} sagas per --inputs run; {args.per_process} `run --detach` processes")
            print(f"{'store':<10} {'--inputs':>10} {'sagas/s':>9} {'ms/saga':>8}   {'process each':>13} {'sagas/s':>8}")
            for name, dsn in stores.items():
                sagactl("db", "init", "--dsn", dsn, env=env)
                before = pg_stats(args.pg, database) if name == "postgres" else None
                took = sagactl("run", str(SAMPLE), "--inputs", str(lines), "--dsn", dsn, env=env)
                after = pg_stats(args.pg, database) if name == "postgres" else None
                each = [
                    sagactl("run", str(SAMPLE), "--input", one, "--detach", "--dsn", dsn, env=env)
                    for _ in range(args.per_process)
                ]
                per_process = sum(each) / len(each)
                print(
                    f"{name:<10} {took:>9.2f}s {args.n / took:>9.0f} {1000 * took / args.n:>8.2f}"
                    f"   {1000 * per_process:>11.0f}ms {1 / per_process:>8.1f}"
                )
                if before is not None and after is not None:
                    print(
                        f"{'':<10} PostgreSQL: {after[0] - before[0]} connection(s),"
                        f" {after[1] - before[1]} commits for {args.n} sagas"
                    )
        finally:
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))


if __name__ == "__main__":
    main()
