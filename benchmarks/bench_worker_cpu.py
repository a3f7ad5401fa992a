#!/usr/bin/env python3
"""Worker CPU per saga, side by side (issue 17 section 6): `sagactl worker` against DBOS
Transact's queue, driving the same 3 http steps against the same participant on the same
PostgreSQL, in one run.

    python benchmarks/bench_worker_cpu.py [--before DIR] [--rounds 2] [--quick]
                                          [--dbos-python PY] [--pg ADMIN_DSN] [--markdown FILE]

- The saga: 3 steps (reserve, charge, ship), each one POST with a JSON body to the participant
  process of tests/support/shop.py (its own process; headers and body in one write,
  TCP_NODELAY), answering at once or after 20 ms. Each variant's calls carry the same headers
  (Idempotency-Key, X-Saga-Id, X-Saga-Step, X-Saga-Phase) and body shape.
- sagactl: N sagas recorded first (`run --inputs`), then one `sagactl worker --concurrency C
  --poll 100ms` process. ``--before DIR`` adds the same from another checkout (e.g. main,
  `git archive main | tar -x -C DIR`), run with PYTHONPATH=DIR.
- DBOS: the workflow below (a @DBOS.step per call, a compensation path that never runs here),
  N workflows enqueued first (DBOS.listen_queues([]): the enqueuer dequeues nothing), then one
  process listening on the queue with worker_concurrency C and polling_interval_sec 0.1 (as
  sagactl's --poll). Its HTTP client is urllib3 (a PoolManager of C connections), the cheapest
  a DBOS user would reach for. DBOS runs from its own virtual environment (it is a benchmark,
  not a dependency): ``--dbos-python``, default .venv-dbos/bin/python in this checkout, made
  by this script when missing (`python -m venv .venv-dbos && .venv-dbos/bin/pip install
  dbos==3.4.0 urllib3`).
- Measured between the 10th and the 90th percent of the sagas ended (start-up, submission and
  the tail left out), polling every 50 ms: sagas/s (wall), the worker process's CPU time
  (utime + stime of all its threads, /proc/PID/stat) per saga, and the CPU time of the
  PostgreSQL backends serving that database per saga (what the engine makes the database do).
  CPU time, not wall time, is the figure that holds on a shared machine.
- Then, every saga ended, the worker's CPU over 3 s with nothing to do (its polling for work):
  the idle column, ms of CPU per second.
- Round-robin: every round runs each case (participant x concurrency) for every variant in turn,
  the variants' order rotating per round; medians over rounds. The load average is printed
  with every row.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from bench_worker import HTTP_SAGA, scratch_database, shop  # noqa: E402

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_DBOS_VENV = ROOT / ".venv-dbos"
DBOS_VERSION = "3.4.0"
TICK = os.sysconf("SC_CLK_TCK")
IDLE = 3.0  # seconds the worker is watched with nothing left to do

DBOS_APP = """
import json, signal, sys, threading
import urllib3
from dbos import DBOS

mode, url, dsn, concurrency = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
http = urllib3.PoolManager(maxsize=concurrency)
STEPS = (("reserve", "/reserve", "/reserve/undo"), ("charge", "/charge", "/charge/undo"), ("ship", "/ship", None))


@DBOS.step()
def call(path: str, step: str, phase: str, body: dict) -> object:
    saga_id = DBOS.workflow_id
    answer = http.request(
        "POST",
        url + path,
        body=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "Idempotency-Key": f"{saga_id}:{step}:{phase}",
            "X-Saga-Id": saga_id,
            "X-Saga-Step": step,
            "X-Saga-Phase": phase,
        },
        timeout=urllib3.Timeout(connect=10.0, read=10.0),
        retries=False,
        redirect=False,
    )
    if answer.status >= 300:
        raise RuntimeError(f"{step}: HTTP {answer.status}")
    return json.loads(answer.data) if answer.data else None


@DBOS.workflow()
def saga(data: dict) -> str:
    done = []
    try:
        for step, path, _ in STEPS:
            call(path, step, "action", {"saga_id": DBOS.workflow_id, "step_name": step, **data})
            done.append(step)
    except Exception:
        for step, _, undo in reversed([s for s in STEPS if s[0] in done]):
            if undo:
                call(undo, step, "compensation", {"saga_id": DBOS.workflow_id, "step_name": step, **data})
        raise
    return "completed"


DBOS(config={"name": "bench", "system_database_url": dsn, "log_level": "WARNING"})
if mode == "enqueue":
    DBOS.listen_queues([])
    DBOS.launch()
    queue = DBOS.register_queue("bench", worker_concurrency=concurrency, polling_interval_sec=0.1)
    for n in range(int(sys.argv[5])):
        queue.enqueue(saga, {"n": n})
    DBOS.destroy()
else:
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    DBOS.launch()
    DBOS.register_queue("bench", worker_concurrency=concurrency, polling_interval_sec=0.1)
    stopping.wait()
    DBOS.destroy()
"""

SAGACTL_ENDED = "SELECT coalesce(sum(n), 0) FROM saga_counts WHERE state IN ('completed', 'failed')"
SAGACTL_DONE = "SELECT coalesce(sum(n), 0) FROM saga_counts WHERE state = 'completed'"
DBOS_ENDED = "SELECT count(*) FROM dbos.workflow_status WHERE status IN ('SUCCESS', 'ERROR')"
DBOS_DONE = "SELECT count(*) FROM dbos.workflow_status WHERE status = 'SUCCESS'"


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads, living and ended), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def backends_cpu(conn: psycopg.Connection[tuple[int]], dbname: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving ``dbname`` (this connection left out)."""
    rows = conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", [dbname]
    ).fetchall()
    found = {}
    for (pid,) in rows:
        try:
            found[pid] = cpu_seconds(pid)
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


@dataclass
class Figures:
    """One case of one variant: the window between 10% and 90% of the sagas ended."""

    sagas: int
    seconds: float
    worker_cpu: float
    pg_cpu: float
    idle_cpu: float = 0.0  # worker CPU seconds per second once every saga ended (polling for work)

    @property
    def rate(self) -> float:
        return self.sagas / self.seconds

    @property
    def cpu_ms(self) -> float:
        return self.worker_cpu / self.sagas * 1000

    @property
    def pg_ms(self) -> float:
        return self.pg_cpu / self.sagas * 1000


def measure(dsn: str, worker: subprocess.Popen[bytes], count: int, ended: str, done: str, timeout: float) -> Figures:
    """Watch the sagas end; the worker's and the database's CPU between 10% and 90% of them."""
    dbname = dsn.rsplit("/", 1)[1]
    low, high = count // 10, (count * 9) // 10
    deadline = time.monotonic() + timeout
    start: tuple[int, float, float, dict[int, float]] | None = None
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            if worker.poll() is not None:
                raise SystemExit(f"the worker exited ({worker.returncode}) before the sagas ended")
            row = conn.execute(ended).fetchone()
            n = int(row[0]) if row else 0
            if start is None and n >= low:
                start = (n, time.monotonic(), cpu_seconds(worker.pid), backends_cpu(conn, dbname))
            if start is not None and n >= high:
                now, cpu, pg = time.monotonic(), cpu_seconds(worker.pid), backends_cpu(conn, dbname)
                pg_used = sum(v - start[3].get(pid, 0.0) for pid, v in pg.items())
                figures = Figures(n - start[0], now - start[1], cpu - start[2], pg_used)
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"only {n} of {count} sagas ended within {timeout:g}s")
            time.sleep(0.05)
        while int((conn.execute(ended).fetchone() or (0,))[0]) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"not every one of {count} sagas ended within {timeout:g}s")
            time.sleep(0.1)
        completed = int((conn.execute(done).fetchone() or (0,))[0])
    before = cpu_seconds(worker.pid)
    time.sleep(IDLE)
    figures.idle_cpu = (cpu_seconds(worker.pid) - before) / IDLE
    if completed != count:
        raise SystemExit(f"{count - completed} of {count} sagas did not complete (the participant refused?)")
    return figures


def stop(child: subprocess.Popen[bytes]) -> None:
    child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=40)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


# -- the variants ----------------------------------------------------------------------------


@dataclass
class Variant:
    label: str
    run: Callable[[str, str, int, int, Path], Figures]  # (dsn, url, concurrency, count, tmp)
    results: dict[tuple[float, int], list[Figures]] = field(default_factory=dict)


def sagactl_variant(label: str, code: Path) -> Variant:
    def run(dsn: str, url: str, concurrency: int, count: int, tmp: Path) -> Figures:
        definition = tmp / "http.yaml"
        definition.write_text(HTTP_SAGA)
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SAGACTL_")}
        env = {**environ, "PYTHONPATH": str(code), "SAGACTL_DSN": dsn, "NO_COLOR": "1", "BENCH_URL": url}
        lines = "".join(json.dumps({"n": n}) + "\n" for n in range(count))
        submitted = subprocess.run(
            [sys.executable, "-m", "sagactl", "run", str(definition), "--inputs", "-"],
            input=lines.encode(),
            cwd=code,
            env=env,
            capture_output=True,
            check=False,
        )
        if submitted.returncode != 0:
            raise SystemExit(f"{label}: submitting failed: {submitted.stderr.decode()[-500:]}")
        argv = [sys.executable, "-m", "sagactl", "worker", "--concurrency", str(concurrency), "--poll", "100ms"]
        worker = subprocess.Popen(argv, cwd=code, env=env, stderr=subprocess.DEVNULL)
        try:
            return measure(dsn, worker, count, SAGACTL_ENDED, SAGACTL_DONE, timeout=900)
        finally:
            stop(worker)

    return Variant(label, run)


def dbos_variant(python: str) -> Variant:
    def run(dsn: str, url: str, concurrency: int, count: int, tmp: Path) -> Figures:
        app = tmp / "dbos_app.py"
        app.write_text(DBOS_APP)
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DBOS_SYSTEM_DATABASE_URL")}
        args = [url, dsn, str(concurrency)]
        enqueued = subprocess.run(
            [python, str(app), "enqueue", *args, str(count)], env=env, capture_output=True, check=False, cwd=tmp
        )
        if enqueued.returncode != 0:
            raise SystemExit(f"DBOS: enqueueing failed: {enqueued.stderr.decode()[-800:]}")
        worker = subprocess.Popen([python, str(app), "work", *args], env=env, cwd=tmp, stderr=subprocess.DEVNULL)
        try:
            return measure(dsn, worker, count, DBOS_ENDED, DBOS_DONE, timeout=900)
        finally:
            stop(worker)

    return Variant(f"DBOS {DBOS_VERSION} queue", run)


def dbos_python(given: str | None) -> str:
    """The DBOS interpreter: ``given``, or this checkout's .venv-dbos (made when missing)."""
    if given:
        return given
    python = DEFAULT_DBOS_VENV / "bin" / "python"
    if not python.exists():
        print(f"making {DEFAULT_DBOS_VENV} (dbos=={DBOS_VERSION}, urllib3)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(DEFAULT_DBOS_VENV)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", f"dbos=={DBOS_VERSION}", "urllib3", "psycopg[binary]"]
        subprocess.run(pip, check=True)
    return str(python)


# -- the run ---------------------------------------------------------------------------------

DELAYS = (0.0, 0.02)
CONCURRENCY = (1, 4, 16)


COUNTS = {(0.0, 1): 200, (0.0, 4): 400, (0.0, 16): 800, (0.02, 1): 100, (0.02, 4): 200, (0.02, 16): 600}


def count_for(delay: float, concurrency: int, quick: bool) -> int:
    """Sagas per case: a window of a few seconds at the fastest variant's rate."""
    return COUNTS[(delay, concurrency)] // (2 if quick else 1)


def table(variants: list[Variant], loads: list[float]) -> list[str]:
    lines = [
        "| participant | --concurrency | variant | sagas/s | worker CPU ms/saga | sagas per worker CPU s"
        " | PostgreSQL CPU ms/saga | idle worker CPU ms/s |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    ratios = []
    for delay in DELAYS:
        for concurrency in CONCURRENCY:
            per: dict[str, float] = {}
            for variant in variants:
                runs = variant.results.get((delay, concurrency), [])
                if not runs:
                    continue
                rate = statistics.median(f.rate for f in runs)
                cpu = statistics.median(f.cpu_ms for f in runs)
                pg = statistics.median(f.pg_ms for f in runs)
                idle = statistics.median(f.idle_cpu for f in runs) * 1000
                per[variant.label] = 1000 / cpu
                each = ", ".join(f"{f.cpu_ms:.1f}" for f in runs)
                lines.append(
                    f"| {'20 ms' if delay else 'at once'} | {concurrency} | {variant.label} | {rate:.1f}"
                    f" | {cpu:.2f} ({each}) | {1000 / cpu:.0f} | {pg:.2f} | {idle:.0f} |"
                )
            dbos = next((v for k, v in per.items() if k.startswith("DBOS")), None)
            ours = per.get(variants[-1].label) if variants[-1].label.startswith("sagactl") else None
            if dbos and ours:
                ratios.append(f"{'20 ms' if delay else 'at once'}, {concurrency}: {ours / dbos:.2f}x")
    lines += [
        "",
        f"Medians over the rounds (each round's worker CPU ms/saga in brackets). {variants[-1].label}"
        f" sagas per worker CPU second over DBOS's: {'; '.join(ratios)}.",
        f"1-minute load average during the run: {min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} CPUs.",
        "",
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default=DEFAULT_PG, help="an admin DSN (scratch databases are made there)")
    parser.add_argument("--before", metavar="DIR", help="also run the worker from this checkout (e.g. main)")
    parser.add_argument("--dbos-python", metavar="PY", help="the interpreter with dbos installed")
    parser.add_argument("--no-dbos", action="store_true", help="sagactl only")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="half the sagas per case")
    parser.add_argument("--only-delay", type=float, choices=DELAYS, help="one participant only")
    parser.add_argument("--only-concurrency", type=int, choices=CONCURRENCY, help="one concurrency only")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table here")
    args = parser.parse_args()

    variants = []
    if not args.no_dbos:
        variants.append(dbos_variant(dbos_python(args.dbos_python)))
    if args.before:
        variants.append(sagactl_variant(f"sagactl before ({Path(args.before).name})", Path(args.before).resolve()))
    variants.append(sagactl_variant("sagactl", ROOT))
    delays = [args.only_delay] if args.only_delay is not None else list(DELAYS)
    levels = [args.only_concurrency] if args.only_concurrency else list(CONCURRENCY)
    loads: list[float] = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-worker-cpu-")))
        urls = {delay: stack.enter_context(shop(delay)) for delay in delays}
        for round_no in range(args.rounds):
            order = variants[round_no % len(variants) :] + variants[: round_no % len(variants)]
            for delay in delays:
                for concurrency in levels:
                    count = count_for(delay, concurrency, args.quick)
                    for variant in order:
                        with scratch_database(args.pg, "bench_wcpu") as dsn:
                            figures = variant.run(dsn, urls[delay], concurrency, count, tmp)
                        variant.results.setdefault((delay, concurrency), []).append(figures)
                        loads.append(os.getloadavg()[0])
                        print(
                            f"round {round_no + 1} | {'20 ms' if delay else 'at once'} | {concurrency}"
                            f" | {variant.label}"
                            f" | {count} sagas | {figures.rate:.1f}/s | worker {figures.cpu_ms:.2f} ms/saga"
                            f" | pg {figures.pg_ms:.2f} ms/saga | idle {figures.idle_cpu * 1000:.0f} ms/s | {load()}",
                            flush=True,
                        )
    out = [f"## Worker CPU per saga ({started}, {args.rounds} rounds)", "", *table(variants, loads)]
    text = "\n".join(out)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
