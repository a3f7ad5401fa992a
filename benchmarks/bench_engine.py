#!/usr/bin/env python3
"""Engine overhead per step: a 20-step saga against a no-op HTTP participant on 127.0.0.1.

    python benchmarks/bench_engine.py                  # SQLite (+ PostgreSQL when reachable)
    python benchmarks/bench_engine.py --runs 50 --repeat 5 --markdown /tmp/table.md

Reports, per store: wall milliseconds per step (whole saga run / steps), the share of that
time spent inside store writes (every Store.save/create/release_lease is timed), commits
per step, and the bare HTTP round trip of the same participant for comparison (what a step
costs with no engine at all). The participant answers ``200 {}`` in one write.

PostgreSQL: ``--pg-dsn`` or SAGACTL_BENCH_PG_DSN, else postgresql://postgres@127.0.0.1:5432/postgres
when it answers; a scratch database ``sagactl_bench_<pid>`` is created and dropped.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sagactl.definitions.model import SagaDefinition
from sagactl.definitions.validation import check_text
from sagactl.engine.control import Engine
from sagactl.store import Store, open_store
from sagactl.transports import Transport, open_transport

STEPS = 20
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


# -- a no-op participant ---------------------------------------------------------------------


class _NoOp(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")

    do_POST = do_PUT = _any

    def log_message(self, format: str, *args: Any) -> None:
        return None


def serve() -> None:
    """The participant process: prints its port, serves until stdin closes."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoOp)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    print(server.server_address[1], flush=True)
    sys.stdin.read()
    server.shutdown()


@contextmanager
def participant() -> Iterator[str]:
    """A no-op participant in its own process, so the engine process's CPU time is its own."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=10)


def definition(steps: int) -> SagaDefinition:
    lines = [
        "saga: Bench",
        "endpoints:",
        '  svc: {type: http, url: "${env.BENCH_URL}"}',
        "defaults: {timeout: 5s}",
        "steps:",
    ]
    for i in range(steps):
        lines += [
            f"  - name: step{i:02d}",
            "    endpoint: svc",
            f'    action: {{path: /s{i}/do, body: {{order: "${{input.order_id}}", n: {i}}}}}',
            f"    compensation: {{path: /s{i}/undo}}",
        ]
    report = check_text("\n".join(lines) + "\n", "bench.yaml", ".")
    assert not report.errors, report.errors
    return report.definitions[0]


# -- timing the store -------------------------------------------------------------------------


@dataclass
class TimedStore:
    """Delegates to a real store and times every write (each one is one commit)."""

    inner: Store
    seconds: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in ("save", "create", "release_lease", "acquire_lease", "take_over_lease"):
            return attr

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
                self.calls[name] = self.calls.get(name, 0) + 1

        return timed

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


@dataclass
class Figures:
    store: str
    runs: int
    ms_per_step: float
    ms_per_step_p90: float
    cpu_ms_per_step: float
    write_share: float
    save_share: float
    ms_per_commit: float
    commits_per_step: float
    commits_per_saga: float
    http_ms: float


def bench(store: Store, label: str, url: str, runs: int, warmup: int, steps: int) -> Figures:
    env = {"BENCH_URL": url}
    defn = definition(steps)
    timed = TimedStore(store)

    def factory(d: SagaDefinition, endpoint: str) -> Transport:
        return open_transport(d.endpoints[endpoint], d.base_dir, env)

    engine = Engine(store=timed, transport_factory=factory, env=env, rng=random.Random(1))
    for _ in range(warmup):
        engine.run(defn, {"order_id": "o"})
    timed.reset()
    per_run: list[float] = []
    cpu_started = time.process_time()
    for _ in range(runs):
        started = time.perf_counter()
        result = engine.run(defn, {"order_id": "o"})
        per_run.append(time.perf_counter() - started)
        assert result.saga.state.value == "completed", result.saga.last_error
    cpu = time.process_time() - cpu_started
    total = sum(per_run)
    writes = sum(timed.seconds.values())
    commits = sum(timed.calls.values())
    return Figures(
        store=label,
        runs=runs,
        ms_per_step=total / runs / steps * 1000,
        ms_per_step_p90=statistics.quantiles(per_run, n=10)[-1] / steps * 1000,
        cpu_ms_per_step=cpu / runs / steps * 1000,
        write_share=writes / total,
        save_share=timed.seconds.get("save", 0.0) / total,
        ms_per_commit=writes / commits * 1000,
        commits_per_step=timed.calls.get("save", 0) / runs / steps,
        commits_per_saga=commits / runs,
        http_ms=http_round_trip(url),
    )


def http_round_trip(url: str, n: int = 300) -> float:
    """The same POST with no engine: one keep-alive client, milliseconds per call."""
    import urllib3

    with urllib3.PoolManager(maxsize=1) as client:
        for _ in range(20):
            client.request("POST", url + "/x", body=b'{"order":"o"}')
        started = time.perf_counter()
        for _ in range(n):
            client.request("POST", url + "/x", body=b'{"order":"o"}', headers={"Idempotency-Key": "k"})
        return (time.perf_counter() - started) / n * 1000


# -- stores -----------------------------------------------------------------------------------


@contextmanager
def sqlite_store(directory: str) -> Iterator[Store]:
    store = open_store(f"sqlite:///{directory}/bench.db")
    try:
        yield store
    finally:
        store.close()


@contextmanager
def postgres_store(admin_dsn: str) -> Iterator[Store]:
    import psycopg
    from psycopg import sql

    name = f"sagactl_bench_{os.getpid()}"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(admin_dsn)
    user, host, port = info.get("user", "postgres"), info.get("host", "127.0.0.1"), info.get("port", "5432")
    password = f":{info['password']}" if info.get("password") else ""
    store = open_store(f"postgresql://{user}{password}@{host}:{port}/{name}")
    try:
        store.init_schema()
        yield store
    finally:
        store.close()
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def pg_reachable(dsn: str) -> bool:
    try:
        import psycopg

        with psycopg.connect(dsn, connect_timeout=3):
            return True
    except Exception:
        return False


# -- report -----------------------------------------------------------------------------------


def markdown(figures: list[Figures], steps: int) -> str:
    head = (
        "| store | runs | ms/step (mean) | ms/step (p90 run) | engine CPU ms/step | time in store writes |"
        " of which save | ms/commit | commits/step | commits/saga | bare HTTP call ms |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = "".join(
        f"| {f.store} | {f.runs} | {f.ms_per_step:.2f} | {f.ms_per_step_p90:.2f} | {f.cpu_ms_per_step:.2f} |"
        f" {f.write_share:.0%} |"
        f" {f.save_share:.0%} | {f.ms_per_commit:.2f} | {f.commits_per_step:.2f} | {f.commits_per_saga:.1f} |"
        f" {f.http_ms:.2f} |\n"
        for f in figures
    )
    machine = (
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPUs, {platform.machine()}"
    )
    return f"{steps}-step saga, no-op HTTP participant on 127.0.0.1, {machine}\n\n{head}{rows}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=30, help="timed sagas per store")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds per store; the round with the median ms/step is shown"
    )
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--pg-dsn", default=os.environ.get("SAGACTL_BENCH_PG_DSN", DEFAULT_PG))
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    parser.add_argument("--sqlite-dir", default=None, help="where the SQLite file goes (default: a temp dir)")
    parser.add_argument("--markdown", default=None, help="also write the table to this file")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve()
        return 0

    figures: list[Figures] = []
    runners: list[tuple[str, Callable[[], Any]]] = []
    with tempfile.TemporaryDirectory(prefix="sagactl-bench-", dir=args.sqlite_dir) as tmp, participant() as url:
        runners.append((f"sqlite ({tmp})", lambda: sqlite_store(tmp)))
        if not args.no_pg and pg_reachable(args.pg_dsn):
            runners.append(("postgresql (127.0.0.1)", lambda: postgres_store(args.pg_dsn)))
        for label, opener in runners:
            with opener() as store:
                rounds = [bench(store, label, url, args.runs, args.warmup, args.steps) for _ in range(args.repeat)]
                rounds.sort(key=lambda f: f.ms_per_step)
                figures.append(rounds[len(rounds) // 2])
    table = markdown(figures, args.steps)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
