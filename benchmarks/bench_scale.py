#!/usr/bin/env python3
"""Per-step cost of whole `sagactl run` processes against DBOS Transact, side by side (issue 12).

    python benchmarks/bench_scale.py [--rounds 5] [--dbos-python /path/to/venv/bin/python]
                                     [--against /path/to/other/checkout] [--markdown out.md]

Each engine runs sagas of 1, 100 and 200 steps as whole processes, round-robin in one run, one
HTTP POST per step to the same no-op participant on 127.0.0.1 (its own process; answers
``200 {}`` in one write). Per-step cost = (t(200) - t(1)) / 199; flatness = per-step cost of
steps 100..200 over that of steps 1..100. Medians over the rounds.

- sagactl on PostgreSQL (scratch database) and on SQLite (synchronous=FULL), `run -q`;
  with ``--against DIR`` the same from another checkout (PYTHONPATH=DIR), e.g. the commit
  before the change, for a before/after in the same run.
- DBOS Transact as a library (``@DBOS.step`` around the same httpx POST inside a
  ``@DBOS.workflow``), its system database on the same server. DBOS runs from its own virtual
  environment (``--dbos-python``; default /work/venvs/dbos/bin/python; `pip install dbos httpx`
  there); it is a benchmark, not a dependency. Skipped when that interpreter is missing.
- The floor: a loop in one process doing, per step, two one-statement durable commits on
  PostgreSQL (autocommit INSERT + UPDATE) and the POST through urllib3 (sagactl's http client).
- Round trips and bytes per commit: one 200-step saga driven in process with libpq tracing
  on the store's connection (Sync messages and bytes the client sent per commit, over the
  first and the last 100 steps).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from bench_engine import participant  # noqa: E402  (the no-op participant, its own process)

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_DBOS = "/work/venvs/dbos/bin/python"
LENGTHS = (1, 100, 200)

DBOS_APP = '''
import sys, httpx
from dbos import DBOS, DBOSConfig
client = httpx.Client()
url = sys.argv[2]

@DBOS.step()
def call(i: int) -> dict:
    answer = client.post(url + f"/s{i}/do", json={"order": "o-1", "n": i})
    answer.raise_for_status()
    return answer.json()

@DBOS.workflow()
def saga(n: int) -> int:
    for i in range(n):
        call(i)
    return n

DBOS(config={"name": "bench", "system_database_url": sys.argv[3], "log_level": "WARNING"})
DBOS.launch()
saga(int(sys.argv[1]))
DBOS.destroy()
'''


def saga_yaml(steps: int) -> str:
    lines = [
        "saga: Bench",
        "endpoints:",
        '  svc: {type: http, url: "${env.BENCH_URL}"}',
        "defaults: {timeout: 5s}",
        "steps:",
    ]
    for i in range(steps):
        lines += [
            f"  - name: step{i:03d}",
            "    endpoint: svc",
            f'    action: {{path: /s{i}/do, body: {{order: "${{input.order_id}}", n: {i}}}}}',
            f"    compensation: {{path: /s{i}/undo}}",
        ]
    return "\n".join(lines) + "\n"


@contextmanager
def scratch_database(admin: str, prefix: str) -> Iterator[str]:
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    took = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])}… failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return took


def per_step(t: dict[int, float]) -> tuple[float, float, float]:
    """(per step over 200, first 100, last 100) in ms."""
    whole = (t[200] - t[1]) / 199 * 1000
    first = (t[100] - t[1]) / 99 * 1000
    last = (t[200] - t[100]) / 100 * 1000
    return whole, first, last


def floor_ms(pg: str, url: str, steps: int = 200) -> float:
    """Two one-statement durable commits and one POST per step, nothing else."""
    import psycopg
    import urllib3

    with psycopg.connect(pg, autocommit=True) as conn, urllib3.PoolManager(maxsize=1) as client:
        conn.execute("CREATE TABLE IF NOT EXISTS floor_steps (id int PRIMARY KEY, state text)")
        conn.execute("TRUNCATE floor_steps")
        started = time.perf_counter()
        for i in range(steps):
            conn.execute("INSERT INTO floor_steps VALUES (%s, 'executing')", [i])
            answer = client.request("POST", f"{url}/s{i}/do", json={"order": "o-1", "n": i})
            assert answer.status == 200, answer.status
            conn.execute("UPDATE floor_steps SET state = 'completed' WHERE id = %s", [i])
        return (time.perf_counter() - started) / steps * 1000


def trace_commits(pg: str, url: str) -> dict[str, float]:
    """Drive one 200-step saga in process with libpq tracing: round trips and bytes per commit."""
    from psycopg.pq import Trace

    from sagactl.config import Settings
    from sagactl.definitions.validation import check_text
    from sagactl.ops import make_engine, store_for

    definition = check_text(saga_yaml(200), "bench.yaml", ".").definitions[0]
    with tempfile.TemporaryFile("w+") as trace, store_for(Settings(dsn=pg)) as store:
        conn = store._conn  # type: ignore[attr-defined]
        engine = make_engine(store, Settings(dsn=pg), env={**os.environ, "BENCH_URL": url})
        commits: list[tuple[int, int]] = []  # (round trips, bytes sent) per save
        save = store.save

        def traced_save(*args: object, **kwargs: object) -> None:
            trace.seek(0)
            trace.truncate()
            conn.pgconn.trace(trace.fileno())
            conn.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)
            try:
                save(*args, **kwargs)  # type: ignore[arg-type]
            finally:
                conn.pgconn.untrace()
            trace.seek(0)
            lines = trace.read().splitlines()
            sent = sum(int(line.split("\t")[1]) for line in lines if line.startswith("F\t"))
            commits.append((sum(1 for line in lines if "\tSync" in line), sent))

        store.save = traced_save  # type: ignore[method-assign]
        result = engine.run(definition, {"order_id": "o-1"})
        assert result.saga.state.value == "completed"
    first, last = commits[:100], commits[-100:]
    return {
        "commits": len(commits),
        "round_trips_per_commit": statistics.mean(c[0] for c in commits),
        "bytes_first_100": statistics.mean(c[1] for c in first),
        "bytes_last_100": statistics.mean(c[1] for c in last),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pg", default=os.environ.get("SAGACTL_BENCH_PG_DSN", DEFAULT_PG))
    parser.add_argument("--dbos-python", default=DEFAULT_DBOS)
    parser.add_argument("--against", metavar="DIR", help="another sagactl checkout, timed the same way")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table here")
    opts = parser.parse_args()
    sagactl = os.path.join(os.path.dirname(sys.executable), "sagactl")
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(HERE.parent / "sagactl")], check=True)
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        url = stack.enter_context(participant())
        pg = stack.enter_context(scratch_database(opts.pg, "sagactl_scale"))
        dbos_db = stack.enter_context(scratch_database(opts.pg, "dbos_scale"))
        files = {n: Path(tmp, f"s{n}.yaml") for n in LENGTHS}
        for n, path in files.items():
            path.write_text(saga_yaml(n))
        Path(tmp, "dbos_app.py").write_text(DBOS_APP)
        base = {**os.environ, "BENCH_URL": url, "NO_COLOR": "1"}
        subprocess.run([sagactl, "db", "init", "--dsn", pg], env=base, check=True, capture_output=True)
        engines: dict[str, tuple[list[str], dict[str, str]]] = {
            "sagactl postgresql": ([sagactl, "run", "-q", "--dsn", pg, "--input", '{"order_id":"o-1"}'], base),
            "sagactl sqlite": (
                [sagactl, "run", "-q", "--dsn", f"sqlite:///{tmp}/log.db", "--input", '{"order_id":"o-1"}'],
                base,
            ),
        }
        if opts.against:
            other = {**base, "PYTHONPATH": os.path.abspath(opts.against)}
            before_pg = stack.enter_context(scratch_database(opts.pg, "sagactl_before"))
            subprocess.run([sagactl, "db", "init", "--dsn", before_pg], env=other, check=True, capture_output=True)
            engines["before: sagactl postgresql"] = (
                [sagactl, "run", "-q", "--dsn", before_pg, "--input", '{"order_id":"o-1"}'],
                other,
            )
            engines["before: sagactl sqlite"] = (
                [sagactl, "run", "-q", "--dsn", f"sqlite:///{tmp}/before.db", "--input", '{"order_id":"o-1"}'],
                other,
            )
        if os.path.exists(opts.dbos_python):
            engines["DBOS Transact"] = ([opts.dbos_python, f"{tmp}/dbos_app.py"], base)
        samples: dict[str, dict[int, list[float]]] = {name: {n: [] for n in LENGTHS} for name in engines}
        for _ in range(opts.rounds + 1):  # the first round warms caches and is dropped
            for n in LENGTHS:
                for name, (argv, env) in engines.items():
                    if name == "DBOS Transact":
                        command = [*argv, str(n), url, dbos_db]
                    else:
                        command = [argv[0], argv[1], str(files[n]), *argv[2:]]
                    samples[name][n].append(timed(command, env))
        floor = floor_ms(pg, url)
        trace = trace_commits(pg, url)
    rows = []
    for name, by_length in samples.items():
        t = {n: statistics.median(values[1:]) for n, values in by_length.items()}
        whole, first, last = per_step(t)
        rows.append((name, t[1] * 1000, whole, first, last, last / first))
    dbos = next((r[2] for r in rows if r[0] == "DBOS Transact"), None)
    lines = [
        f"{opts.rounds} rounds, medians; per step = (t(200) - t(1)) / 199 over whole processes",
        "",
        "| engine | t(1 step) ms | ms/step (1..200) | ms/step 1..100 | ms/step 100..200 | last/first |"
        + (" vs DBOS |" if dbos else ""),
        "|---|---|---|---|---|---|" + ("---|" if dbos else ""),
    ]
    for name, one, whole, first, last, flat in rows:
        ratio = f" {whole / dbos:.2f}x |" if dbos else ""
        lines.append(f"| {name} | {one:.0f} | {whole:.2f} | {first:.2f} | {last:.2f} | {flat:.2f} |{ratio}")
    lines += [
        "",
        f"floor (2 one-statement durable commits + the POST, in one process): {floor:.2f} ms/step",
        f"round trips per commit: {trace['round_trips_per_commit']:.2f} ({trace['commits']} commits for 200 steps);"
        f" bytes sent per commit: {trace['bytes_first_100']:.0f} over steps 1..100,"
        f" {trace['bytes_last_100']:.0f} over steps 100..200",
    ]
    text = "\n".join(lines)
    print(text)
    if opts.markdown:
        Path(opts.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
