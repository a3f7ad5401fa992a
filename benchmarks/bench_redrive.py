#!/usr/bin/env python3
"""`sagactl redrive` against hand-written SQS loops on the same endpoint (issue 4).

    python benchmarks/bench_redrive.py                        # 500 messages, 3 rounds
    python benchmarks/bench_redrive.py --markdown benchmarks/RESULTS-redrive.md

Starts moto in server mode on 127.0.0.1 (its own process, a free port) and, in the same run
and each time from a fresh dead-letter queue holding --messages messages (same depth for
every contestant, with the message attributes a saga command carries), moves them all to the
source queue with:

  naive    receive one, send one, delete one, until the DLQ is empty;
  raw      receive 10, SendMessageBatch 10, DeleteMessageBatch 10, until empty: the floor for
           a client that moves messages safely (send before delete) one batch at a time;
  sagactl  sagactl.dlq.redrive.redrive() in process (source queue from ListDeadLetterSourceQueues,
           the same work the command does, progress and output aside);
  cli      the installed `sagactl redrive --dlq Q -o json` as a runbook runs it (a process:
           start-up included), for reference.

Each contestant runs --rounds times in turn (naive, raw, sagactl, cli, naive, ...); the table
shows medians. SQS API calls are counted with a botocore ``before-call`` event hook on the
client doing the work, and divided by the messages moved. Every run checks that the DLQ is
empty and the source queue holds every message. Targets: sagactl >= 5x naive, >= 70% of raw,
<= 0.35 API calls per message.

moto serves one call at a time and its per-call cost grows with queue depth, so absolute
figures are moto's, not SQS's; the ratios are what the benchmark is for.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import boto3

from sagactl.aws import sqs_client
from sagactl.config import AwsSettings
from sagactl.dlq.outcomes import RedriveRequest
from sagactl.dlq.redrive import redrive

REGION = "us-east-1"
ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": REGION}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# moto 5.x checks each message it returns against the retention period through
# get_queue_attributes, an O(depth) walk per returned message: ReceiveMessage then costs per
# message, batch or not, unlike SQS, where a call costs its round trip. With --retention-fix
# the server process answers that check from the queue's own attribute (same result, O(1)),
# so the endpoint's cost is per call, as on SQS. Both runs are reported; nothing in sagactl
# or in the other contestants changes.
RETENTION_FIX = """
import sys
from moto.core.utils import unix_time
from moto.sqs.models import SQSBackend

def _valid(self, queue_name, message):
    retention = int(self.get_queue(queue_name).message_retention_period)
    return retention + message.sent_timestamp / 1000 > unix_time()

SQSBackend.is_message_valid_based_on_retention_period = _valid
from moto.server import main
sys.exit(main(sys.argv[1:]))
"""


def start_moto(retention_fix: bool = False) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    launcher = ["-c", RETENTION_FIX] if retention_fix else ["-m", "moto.server"]
    proc = subprocess.Popen(
        [sys.executable, *launcher, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **ENV},
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, endpoint
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit("moto server did not start")


class CallCounter:
    """Counts SQS API calls made through a client (botocore before-call hook)."""

    def __init__(self, client: Any) -> None:
        self.calls: dict[str, int] = {}
        client.meta.events.register("before-call.sqs", self._count)

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[model.name] = self.calls.get(model.name, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.calls.values())


@dataclass
class Run:
    name: str
    seconds: float
    moved: int
    calls: int | None
    by_call: dict[str, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.moved / self.seconds

    @property
    def calls_per_message(self) -> float | None:
        return None if self.calls is None else self.calls / self.moved


class Bench:
    def __init__(self, endpoint: str, messages: int) -> None:
        self.endpoint = endpoint
        self.messages = messages
        self.admin = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)

    def client(self) -> Any:
        # the same client settings sagactl uses (adaptive retries, timeouts), for fairness
        return sqs_client(AwsSettings(region=REGION, endpoint_url=self.endpoint))

    def fresh_pair(self) -> tuple[str, str, list[str]]:
        """A DLQ holding ``messages`` saga commands and its source queue (redrive policy)."""
        tag = uuid.uuid4().hex[:8]
        dlq = self.admin.create_queue(QueueName=f"bench-dlq-{tag}")["QueueUrl"]
        arn = self.admin.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": 5})
        source = self.admin.create_queue(QueueName=f"bench-src-{tag}", Attributes={"RedrivePolicy": policy})["QueueUrl"]
        bodies = [
            json.dumps({"saga_id": f"saga-{i:05d}", "step_name": "process_payment", "order_id": i, "amount": "12.50"})
            for i in range(self.messages)
        ]
        for start in range(0, len(bodies), 10):
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": bodies[i],
                    "MessageAttributes": {
                        "saga_id": {"DataType": "String", "StringValue": f"saga-{i:05d}"},
                        "step_name": {"DataType": "String", "StringValue": "process_payment"},
                        "command": {"DataType": "String", "StringValue": "PaymentService.RefundPayment"},
                    },
                }
                for i in range(start, min(start + 10, len(bodies)))
            ]
            self.admin.send_message_batch(QueueUrl=dlq, Entries=entries)
        return dlq, source, bodies

    def check(self, dlq: str, source: str, bodies: list[str]) -> None:
        counts = self.admin.get_queue_attributes(
            QueueUrl=dlq, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        assert counts == {"ApproximateNumberOfMessages": "0", "ApproximateNumberOfMessagesNotVisible": "0"}, counts
        moved: list[str] = []
        while True:
            batch = self.admin.receive_message(QueueUrl=source, MaxNumberOfMessages=10, VisibilityTimeout=300)
            if not batch.get("Messages"):
                break
            moved += [m["Body"] for m in batch["Messages"]]
        assert sorted(moved) == sorted(bodies), f"source holds {len(moved)} of {len(bodies)}"

    def timed(self, name: str, work: Callable[[Any, str, str], int]) -> Run:
        dlq, source, bodies = self.fresh_pair()
        client = self.client()
        counter = CallCounter(client)
        started = time.perf_counter()
        moved = work(client, dlq, source)
        seconds = time.perf_counter() - started
        self.check(dlq, source, bodies)
        assert moved == self.messages, (name, moved)
        return Run(name, seconds, moved, counter.total, dict(counter.calls))

    def naive(self) -> Run:
        def work(client: Any, dlq: str, source: str) -> int:
            moved = 0
            while True:
                got = client.receive_message(
                    QueueUrl=dlq, MaxNumberOfMessages=1, VisibilityTimeout=300, MessageAttributeNames=["All"]
                ).get("Messages", [])
                if not got:
                    return moved
                message = got[0]
                client.send_message(
                    QueueUrl=source,
                    MessageBody=message["Body"],
                    MessageAttributes=message.get("MessageAttributes", {}),
                )
                client.delete_message(QueueUrl=dlq, ReceiptHandle=message["ReceiptHandle"])
                moved += 1

        return self.timed("naive", work)

    def raw(self) -> Run:
        def work(client: Any, dlq: str, source: str) -> int:
            moved = 0
            while True:
                got = client.receive_message(
                    QueueUrl=dlq, MaxNumberOfMessages=10, VisibilityTimeout=300, MessageAttributeNames=["All"]
                ).get("Messages", [])
                if not got:
                    return moved
                sent = client.send_message_batch(
                    QueueUrl=source,
                    Entries=[
                        {"Id": str(n), "MessageBody": m["Body"], "MessageAttributes": m.get("MessageAttributes", {})}
                        for n, m in enumerate(got)
                    ],
                )
                ok = {s["Id"] for s in sent.get("Successful", [])}
                client.delete_message_batch(
                    QueueUrl=dlq,
                    Entries=[
                        {"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(got) if str(n) in ok
                    ],
                )
                moved += len(ok)

        return self.timed("raw", work)

    def sagactl(self) -> Run:
        def work(client: Any, dlq: str, source: str) -> int:
            result = redrive(client, RedriveRequest(dlq=dlq, wait=0))
            assert result.failed == 0 and result.destination is not None and result.destination.url == source
            return result.moved

        return self.timed("sagactl", work)

    def cli(self) -> Run:
        dlq, source, bodies = self.fresh_pair()
        env = {**os.environ, **ENV, "AWS_ENDPOINT_URL_SQS": self.endpoint}
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "sagactl", "redrive", "--dlq", dlq, "-o", "json", "--wait-time", "0"],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
        )
        seconds = time.perf_counter() - started
        assert done.returncode == 0, done.stderr
        self.check(dlq, source, bodies)
        return Run("cli", seconds, json.loads(done.stdout)["moved"], None)


def probe_receive_cost(bench: Bench) -> list[tuple[int, float]]:
    """(messages per ReceiveMessage, ms per call) at the benchmark's depth: how the endpoint's
    receive cost splits into per-call and per-message parts (messages held, not deleted)."""
    dlq, _, _ = bench.fresh_pair()
    client = bench.client()
    found = []
    for size in (1, 10, 1, 10):
        started = time.perf_counter()
        for _ in range(3):
            got = client.receive_message(QueueUrl=dlq, MaxNumberOfMessages=size, VisibilityTimeout=600)
            assert len(got.get("Messages", [])) == size
        found.append((size, (time.perf_counter() - started) / 3 * 1000))
    return found


def median_run(runs: list[Run]) -> Run:
    ordered = sorted(runs, key=lambda r: r.seconds)
    return ordered[len(ordered) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500, help="queue depth for every contestant")
    parser.add_argument("--rounds", type=int, default=3, help="runs per contestant (median shown)")
    parser.add_argument("--markdown", type=Path, help="also write the results as Markdown here")
    parser.add_argument(
        "--retention-fix",
        action="store_true",
        help="serve moto with its O(depth) per-message retention check made O(1) (see RETENTION_FIX)",
    )
    args = parser.parse_args()

    os.environ.update(ENV)
    proc, endpoint = start_moto(args.retention_fix)
    try:
        bench = Bench(endpoint, args.messages)
        bench.raw()  # warm-up: imports, moto's first-call costs
        probe = probe_receive_cost(bench) if args.messages >= 66 else []  # it holds 66 messages
        results: dict[str, list[Run]] = {"naive": [], "raw": [], "sagactl": [], "cli": []}
        for round_no in range(args.rounds):
            for name in results:
                run = getattr(bench, name)()
                results[name].append(run)
                print(f"round {round_no + 1} {name:8} {run.seconds:7.3f} s  {run.per_second:7.1f} msg/s", flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    medians = {name: median_run(runs) for name, runs in results.items()}
    sag, naive, raw = medians["sagactl"], medians["naive"], medians["raw"]
    vs_naive = sag.per_second / naive.per_second
    vs_raw = sag.per_second / raw.per_second
    calls = sag.calls_per_message or 0.0
    targets = [
        ("sagactl vs naive loop", f"{vs_naive:.1f}x", ">= 5x", vs_naive >= 5),
        ("sagactl vs raw batch cycle", f"{vs_raw:.0%}", ">= 70%", vs_raw >= 0.70),
        ("SQS API calls per message (sagactl)", f"{calls:.3f}", "<= 0.35", calls <= 0.35),
    ]
    lines = [
        f"# redrive benchmark ({args.messages} messages, moto server on 127.0.0.1"
        f"{' with the retention fix' if args.retention_fix else ''}, median of {args.rounds})",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()},"
        f" {platform.system()} {platform.release()}. Command: `python benchmarks/bench_redrive.py"
        f" --messages {args.messages} --rounds {args.rounds}{' --retention-fix' if args.retention_fix else ''}`.",
        "",
        "| contestant | seconds | messages/s | API calls | calls/message | calls by operation |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, run in medians.items():
        by_call = ", ".join(f"{k} {v}" for k, v in sorted(run.by_call.items())) or "(a process; not counted)"
        calls_text = "" if run.calls is None else str(run.calls)
        per_text = "" if run.calls_per_message is None else f"{run.calls_per_message:.3f}"
        lines.append(f"| {name} | {run.seconds:.3f} | {run.per_second:.1f} | {calls_text} | {per_text} | {by_call} |")
    lines += ["", "| target | measured | wanted | met |", "|---|---:|---:|---|"]
    lines += [f"| {what} | {got} | {want} | {'yes' if ok else 'NO'} |" for what, got, want, ok in targets]
    lines += [
        "",
        "All runs: " + "; ".join(f"{n} " + ", ".join(f"{r.seconds:.2f}s" for r in rs) for n, rs in results.items()),
    ]
    if not probe:
        print("\n".join(lines) + "\n")
        sys.exit(0 if all(ok for *_, ok in targets) else 1)
    one = statistics.mean(ms for size, ms in probe if size == 1)
    ten = statistics.mean(ms for size, ms in probe if size == 10)
    per_message = (ten - one) / 9
    lines += [
        "",
        f"ReceiveMessage at a depth of {args.messages}: {one:.1f} ms for 1 message, {ten:.1f} ms for 10"
        f" ({per_message:.1f} ms per extra message, {one - per_message:.1f} ms per call).",
    ]
    # per message, moto's receive cost grows with depth, which falls linearly from N to 0 as the
    # queue drains: receiving each message once costs about N x (cost at depth N) / 2
    floor = args.messages * per_message / 1000 / 2
    if args.retention_fix:
        lines += [
            "",
            "moto's per-message retention check answered in O(1) (RETENTION_FIX in the script): the",
            "endpoint's cost is per call, as on SQS, so batching pays as it does there.",
        ]
    else:
        lines += why_not_five(args.messages, per_message, floor, naive.seconds, vs_naive, vs_raw)
    text = "\n".join(lines) + "\n"
    print()
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if not all(ok for *_, ok in targets):
        sys.exit(1)


def why_not_five(
    messages: int, per_message: float, floor: float, naive: float, vs_naive: float, vs_raw: float
) -> list[str]:
    return [
        "",
        "Why no mover can be 5x the naive loop on this endpoint: moto checks every message it returns",
        "against the queue's retention period by computing all the queue's attributes, an O(depth) walk",
        "(`SQSBackend.is_message_valid_based_on_retention_period` calls `get_queue_attributes` per message),",
        "so ReceiveMessage costs per message returned, batch or not; a batch of 10 saves only the per-call",
        f"part. As the queue drains from {messages} to 0 that per-message part averages half its starting"
        f" value: receiving every message once costs about {messages} x {per_message:.1f} ms / 2 ="
        f" {floor:.1f} s whoever receives it, which bounds any mover near {naive / floor:.1f}x the naive"
        f" loop's {naive:.1f} s. sagactl is at {vs_naive:.1f}x, {vs_raw:.0%} of the raw cycle. On SQS a"
        " call costs its round trip whatever its batch size; the calls-per-message figure is what carries over.",
    ]


if __name__ == "__main__":
    main()
