#!/usr/bin/env python3
"""`sagactl worker` throughput (issue 9): sagas per second by worker processes and concurrency,
claims per second and the round trips of one claim, and sagas waiting on SQS replies.

    python benchmarks/bench_worker.py [--pg ADMIN_DSN] [--markdown FILE] [--quick]
                                      [--only throughput|claims|sqs] [--sqs-sagas 1000]

- throughput: a 3-step http saga (each step one POST) against the participant process of
  tests/support/shop.py (one write per answer, TCP_NODELAY), answering at once or after 20 ms.
  For each case a scratch PostgreSQL database gets N detached sagas (`run --inputs`), then
  W `sagactl worker --concurrency C` processes start; sagas/s is measured between the 10th and
  the 90th percentile of the completion times (start-up and tail left out).
- claims: N due sagas; T threads, each with its own store connection, claim one saga at a time
  until none is left (Store.claim, what a worker thread does before it drives a saga): claims/s,
  and with libpq tracing, the round trips of one claim and of a worker's whole claim-to-drive
  path up to its first step's send (Engine.resume on the claimed saga).
- sqs: N sagas of one SQS step each (moto server in its own process, a participant that answers
  every command), one worker with --concurrency 4: every saga must complete; the time it took
  and the replies per second. moto slows down as the queue deepens (tens of messages/s with
  a thousand queued): the figure is moto's more than sagactl's.

The machine's load average is printed with every table: the figures are only comparable
within one run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/postgres"
BOTO = {"region_name": "us-east-1", "aws_access_key_id": "bench", "aws_secret_access_key": "bench"}

HTTP_SAGA = """
saga: BenchHttp
endpoints:
  shop: {type: http, url: "${env.BENCH_URL}"}
defaults: {timeout: 10s}
steps:
  - {name: reserve, endpoint: shop, action: {path: /reserve}, compensation: {path: /reserve/undo}}
  - {name: charge, endpoint: shop, action: {path: /charge}, compensation: {path: /charge/undo}}
  - {name: ship, endpoint: shop, action: {path: /ship}}
"""

SQS_SAGA = """
saga: BenchSqs
endpoints:
  pay: {type: sqs, queue: "${env.BENCH_COMMANDS}", reply_queue: "${env.BENCH_REPLIES}"}
defaults: {timeout: 30m}
steps:
  - {name: charge, endpoint: pay, action: {command: Pay.Charge}, compensation: {command: Pay.Refund}}
"""


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


CODE = {"dir": str(ROOT)}  # the sagactl checkout the worker processes run (--against)


def env_for(dsn: str, **extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SAGACTL_")}
    return {**environ, "PYTHONPATH": CODE["dir"], "SAGACTL_DSN": dsn, "NO_COLOR": "1", **extra}


@contextmanager
def scratch_database(admin: str, prefix: str) -> Iterator[str]:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(admin)
    info["dbname"] = name
    try:
        yield "postgresql://{user}@{host}:{port}/{dbname}".format(
            user=info.get("user", "postgres"),
            host=info.get("host", "127.0.0.1"),
            port=info.get("port", 5432),
            dbname=name,
        )
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def shop(delay: float) -> Iterator[str]:
    """The participant process; its URL."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.support.shop", "--delay", str(delay)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        yield f"http://127.0.0.1:{int(child.stdout.readline())}"
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=20)


@contextmanager
def workers(count: int, concurrency: int, env: dict[str, str]) -> Iterator[list[subprocess.Popen[bytes]]]:
    argv = [sys.executable, "-m", "sagactl", "worker", "--concurrency", str(concurrency), "--poll", "100ms"]
    started = [subprocess.Popen(argv, cwd=ROOT, env=env, stderr=subprocess.DEVNULL) for _ in range(count)]
    try:
        yield started
    finally:
        for child in started:
            child.send_signal(signal.SIGTERM)
        for child in started:
            try:
                child.wait(timeout=40)
            except subprocess.TimeoutExpired:
                child.kill()


def submit(definition: Path, count: int, env: dict[str, str], lines: list[dict[str, Any]] | None = None) -> None:
    text = "".join(json.dumps(line) + "\n" for line in (lines or [{"n": n} for n in range(count)]))
    done = subprocess.run(
        [sys.executable, "-m", "sagactl", "run", str(definition), "--inputs", "-"],
        input=text,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"submitting failed: {done.stderr}")


ENDED = "SELECT coalesce(sum(n), 0) FROM saga_counts WHERE state IN ('completed', 'failed')"
WAITING = "SELECT count(*) FROM saga_log WHERE wake_at IS NOT NULL AND wake_at > now() + interval '1 minute'"


def wait_done(dsn: str, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(dsn, autocommit=True) as conn:
        while True:
            row = conn.execute(
                "SELECT coalesce(sum(n), 0) FROM saga_counts WHERE state IN ('completed', 'failed')"
            ).fetchone()
            if row is not None and int(row[0]) >= count:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"only {row[0] if row else 0} of {count} sagas ended within {timeout:g}s")
            time.sleep(0.2)


def steady_rate(dsn: str) -> float:
    """Sagas/s between the 10th and the 90th percentile of the completion times."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        ends = [
            r[0] for r in conn.execute("SELECT updated_at FROM saga_log WHERE state = 'completed' ORDER BY updated_at")
        ]
    low, high = ends[len(ends) // 10], ends[(len(ends) * 9) // 10]
    return ((len(ends) * 9) // 10 - len(ends) // 10) / max((high - low).total_seconds(), 1e-6)


# -- throughput ----------------------------------------------------------------------------


def throughput_case(admin: str, url: str, procs: int, concurrency: int, count: int, tmp: Path) -> float:
    definition = tmp / "http.yaml"
    definition.write_text(HTTP_SAGA)
    with scratch_database(admin, "bench_worker") as dsn:
        env = env_for(dsn, BENCH_URL=url)
        submit(definition, count, env)
        with workers(procs, concurrency, env):
            wait_done(dsn, count, timeout=600)
        return steady_rate(dsn)


def throughput(admin: str, quick: bool, tmp: Path) -> list[str]:
    lines = [f"## Sagas per second (3 http steps each, PostgreSQL; {load()})", ""]
    lines += ["| participant | workers | --concurrency | sagas | sagas/s |", "|---|---|---|---|---|"]
    figures: dict[tuple[float, int, int], float] = {}
    for delay in (0.02, 0.0):
        with shop(delay) as url:
            for procs in (1, 2, 4):
                for concurrency in (1, 4, 16):
                    drivers = procs * concurrency
                    count = min(1500, max(60, 25 * drivers)) // (3 if quick else 1)
                    rate = throughput_case(admin, url, procs, concurrency, count, tmp)
                    figures[(delay, procs, concurrency)] = rate
                    row = f"| {'20 ms' if delay else 'at once'} | {procs} | {concurrency} | {count} | {rate:.1f} |"
                    print(row, f"  ({load()})", flush=True)
                    lines.append(row)
    ratio = figures[(0.02, 1, 16)] / figures[(0.02, 1, 1)]
    lines += ["", f"20 ms participant, one worker: --concurrency 16 gives {ratio:.1f}x --concurrency 1.", ""]
    return lines


def step_latency(dsn: str) -> float:
    """Median ms from a step's start (its write-ahead record) to its result."""
    query = (
        "SELECT saga_id, step_name, new_state, at FROM saga_transitions"
        " WHERE step_name IS NOT NULL ORDER BY saga_id, id"
    )
    took, started = [], {}
    with psycopg.connect(dsn, autocommit=True) as conn:
        for saga_id, _, new, at in conn.execute(query):
            if new == "executing":
                started[saga_id] = at
            elif new == "completed":
                took.append((at - started[saga_id]).total_seconds() * 1000)
    return statistics.median(took)


def ratio(admin: str, rounds: int, tmp: Path) -> list[str]:
    """One worker, 20 ms participant: --concurrency 1 and 16 in turn, ``rounds`` times."""
    definition = tmp / "http.yaml"
    definition.write_text(HTTP_SAGA)
    rates: dict[int, list[float]] = {1: [], 16: []}
    latency: dict[int, list[float]] = {1: [], 16: []}
    loads = []
    with shop(0.02) as url:
        for _ in range(rounds):
            for concurrency, count in ((1, 80), (16, 600)):
                with scratch_database(admin, "bench_ratio") as dsn:
                    env = env_for(dsn, BENCH_URL=url)
                    submit(definition, count, env)
                    with workers(1, concurrency, env):
                        wait_done(dsn, count, timeout=600)
                    rates[concurrency].append(steady_rate(dsn))
                    latency[concurrency].append(step_latency(dsn))
                    loads.append(os.getloadavg()[0])
                    print(f"--concurrency {concurrency}: {rates[concurrency][-1]:.1f} sagas/s ({load()})", flush=True)
    one, sixteen = statistics.median(rates[1]), statistics.median(rates[16])
    return [
        f"## --concurrency 16 against 1 (one worker, 20 ms participant, {rounds} rounds in turn)",
        "",
        "| --concurrency | sagas/s (each round) | median | median step time (start recorded -> result) |",
        "|---|---|---|---|",
        *(
            f"| {c} | {', '.join(f'{r:.1f}' for r in rates[c])} | {statistics.median(rates[c]):.1f}"
            f" | {statistics.median(latency[c]):.0f} ms |"
            for c in (1, 16)
        ),
        "",
        f"Ratio of the medians: {sixteen / one:.1f}x (1-minute load average during the rounds:"
        f" {min(loads):.1f} to {max(loads):.1f} on {os.cpu_count()} CPUs).",
        "",
    ]


# -- claims --------------------------------------------------------------------------------


def claims(admin: str, quick: bool, tmp: Path) -> list[str]:
    from psycopg.pq import Trace

    from sagactl.config import Settings
    from sagactl.definitions.validation import check_text
    from sagactl.engine.lease import lease_until, make_owner
    from sagactl.ops import make_engine
    from sagactl.store import open_store
    from sagactl.store.postgres import PostgresStore

    definition = check_text(HTTP_SAGA, "bench.yaml", ".").definitions[0]
    count = 600 if quick else 3000
    lines = [f"## Claims ({load()})", "", "| threads | due sagas | claims/s |", "|---|---|---|"]
    for threads in (1, 4, 16):
        with scratch_database(admin, "bench_claims") as dsn:
            store = open_store(dsn)
            engine = make_engine(store, Settings(dsn=dsn), env={"BENCH_URL": "http://127.0.0.1:9"})
            for n in range(count):
                engine.start(definition, {"n": n}, detached=True)
            store.close()
            stores = [PostgresStore(dsn) for _ in range(threads)]
            taken: list[int] = [0] * threads

            def claim_all(index: int, stores: list[PostgresStore] = stores, taken: list[int] = taken) -> None:
                owner = make_owner()
                while True:
                    now = datetime.now(UTC)
                    got = stores[index].claim(owner, lease_until(now, 3600), now, 1)  # no lease lapses meanwhile
                    if not got:
                        return
                    taken[index] += 1

            began = time.perf_counter()
            pool = [threading.Thread(target=claim_all, args=(i,)) for i in range(threads)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join()
            took = time.perf_counter() - began
            for one in stores:
                one.close()
            assert sum(taken) == count, (sum(taken), count)
            lines.append(f"| {threads} | {count} | {count / took:.0f} |")
            print(lines[-1], flush=True)

    # round trips: one Store.claim, and a worker thread's claim-to-drive path up to the first send
    with scratch_database(admin, "bench_trips") as dsn, tempfile.TemporaryFile("w+") as trace:
        store = open_store(dsn)
        engine = make_engine(store, Settings(dsn=dsn), env={"BENCH_URL": "http://127.0.0.1:9"})
        saga = engine.start(definition, {"n": 1}, detached=True)
        conn = store._conn  # type: ignore[attr-defined]

        def traced() -> None:
            trace.seek(0)
            trace.truncate()
            conn.pgconn.trace(trace.fileno())
            conn.pgconn.set_trace_flags(Trace.SUPPRESS_TIMESTAMPS | Trace.REGRESS_MODE)

        def trips() -> int:
            conn.pgconn.untrace()
            trace.seek(0)
            return sum(1 for line in trace.read().splitlines() if "\tSync" in line)

        traced()
        now = datetime.now(UTC)
        claimed = store.claim(engine.owner, lease_until(now), now, 1)
        claim_trips = trips()
        assert [c.saga_id for c in claimed] == [saga.saga_id]

        class Sent(Exception):
            pass

        at_send: list[int] = []

        def first_send(*_: object) -> Any:
            at_send.append(trips())  # the round trips made before the first call goes out
            raise Sent

        engine.transport_factory = lambda *_: type("T", (), {"call": first_send, "close": lambda self: None})()  # type: ignore[assignment, misc]
        traced()
        with contextlib.suppress(Sent):
            engine.resume(saga.saga_id, held=True)  # what a worker thread does with what it claimed
        drive_trips = at_send[0]
        store.close()
    lines += [
        "",
        f"One claim (Store.claim, one statement): {claim_trips} round trip(s). A worker thread's claim up to"
        f" its first step's send (claim, then Engine.resume(held=True): load the saga, commit the first step's start):"
        f" {claim_trips + drive_trips} round trips.",
        "",
    ]
    return lines


# -- sagas waiting on SQS replies ----------------------------------------------------------


@contextmanager
def moto_server() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    child = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=20)


def sqs_participant(client: Any, commands: str, stopping: threading.Event, seen: list[int]) -> None:
    """Answers every command on its reply_to queue (SagaStepCompleted), 10 at a time: one batch
    send of the replies, one batch delete of the commands."""
    while not stopping.is_set():
        found = client.receive_message(
            QueueUrl=commands, MaxNumberOfMessages=10, WaitTimeSeconds=1, MessageAttributeNames=["All"]
        ).get("Messages", [])
        if not found:
            continue
        replies: dict[str, list[dict[str, str]]] = {}
        for n, message in enumerate(found):
            attributes = {k: v["StringValue"] for k, v in message["MessageAttributes"].items()}
            reply = {
                "type": "SagaStepCompleted",
                "saga_id": attributes["saga_id"],
                "step_name": attributes["step_name"],
                "idempotency_key": attributes["idempotency_key"],
                "result": {"ok": True},
            }
            replies.setdefault(attributes["reply_to"], []).append({"Id": str(n), "MessageBody": json.dumps(reply)})
        for reply_to, entries in replies.items():
            client.send_message_batch(QueueUrl=reply_to, Entries=entries)
        handles = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(found)]
        client.delete_message_batch(QueueUrl=commands, Entries=handles)
        seen[0] += len(found)


def sqs_waiting(admin: str, count: int, tmp: Path) -> list[str]:
    import boto3

    definition = tmp / "sqs.yaml"
    definition.write_text(SQS_SAGA)
    aws = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    with ExitStack() as stack:
        endpoint = stack.enter_context(moto_server())
        dsn = stack.enter_context(scratch_database(admin, "bench_sqs"))
        client = boto3.client(
            "sqs",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
        )
        commands = client.create_queue(QueueName="bench-commands")["QueueUrl"]
        client.create_queue(QueueName="bench-replies")
        env = env_for(
            dsn, **aws, AWS_ENDPOINT_URL_SQS=endpoint, BENCH_COMMANDS="bench-commands", BENCH_REPLIES="bench-replies"
        )
        submit(definition, count, env)
        # Every saga sends its command before the participant starts: 1,000 sagas wait at once.
        with workers(1, 4, env):
            began = time.perf_counter()
            with psycopg.connect(dsn, autocommit=True) as conn:
                deadline = time.monotonic() + 600
                while True:
                    row = conn.execute(WAITING).fetchone()
                    if row and row[0] >= count:
                        break
                    if time.monotonic() > deadline:
                        raise SystemExit("the commands were not all sent within 600 s")
                    time.sleep(0.5)
            sent_all = time.perf_counter()
            parked = sent_all - began
            stopping, seen = threading.Event(), [0]
            answering = threading.Thread(target=sqs_participant, args=(client, commands, stopping, seen))
            answering.start()
            try:
                wait_done(dsn, count, timeout=1800)
            finally:
                stopping.set()
                answering.join()
            took = time.perf_counter() - sent_all
    return [
        f"## {count} sagas waiting on SQS replies, one worker --concurrency 4 ({load()})",
        "",
        f"All {count} commands sent and every saga put aside (waiting, no worker slot held) {parked:.0f} s after",
        f"the worker started ({count / parked:.1f} sagas/s, worker start-up included); then a",
        f"participant answered them all: every saga completed {took:.0f} s later"
        f" ({count / took:.1f} replies applied/s,",
        "bounded by moto: the participant's and the worker's receives, sends and deletes (10 to a call)",
        "on queues",
        f"{count} deep).",
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default=DEFAULT_PG, help="an admin DSN (scratch databases are made there)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the tables here")
    parser.add_argument("--quick", action="store_true", help="a third of the sagas per case")
    parser.add_argument("--only", choices=("throughput", "ratio", "claims", "sqs"), help="one part only")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the concurrency 1 / 16 comparison")
    parser.add_argument("--sqs-sagas", type=int, default=1000, help="sagas waiting on SQS replies (default 1000)")
    parser.add_argument("--against", metavar="DIR", help="run the workers from another checkout (before/after)")
    args = parser.parse_args()
    if args.against:
        CODE["dir"] = os.path.abspath(args.against)
    out: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-worker-") as tmp:
        if args.only in (None, "throughput"):
            out += throughput(args.pg, args.quick, Path(tmp))
        if args.only in (None, "ratio"):
            out += ratio(args.pg, args.rounds, Path(tmp))
        if args.only in (None, "claims"):
            out += claims(args.pg, args.quick, Path(tmp))
        if args.only in (None, "sqs"):
            out += sqs_waiting(args.pg, args.sqs_sagas, Path(tmp))
    text = "\n".join(out)
    print(text)
    if args.markdown:
        Path(args.markdown).write_text(text + "\n")


if __name__ == "__main__":
    main()
