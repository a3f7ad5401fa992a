"""redrive against moto in server mode on 127.0.0.1 (a real SQS endpoint over HTTP).

Standard and FIFO queues; filters, stdin IDs, --only-open with a real SQLite saga log,
dry run, byte-for-byte bodies and attributes, FIFO groups and order, the redrive counter and
the poison queue, --rate, a kill -9 mid-run, and a fault proxy in front of moto that fails
batch entries, throttles calls or fails outright.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sagactl.aws import sqs_client
from sagactl.cli import app
from sagactl.config import AwsSettings
from sagactl.dlq.messages import MessageFilter
from sagactl.dlq.outcomes import RedriveRequest, RedriveResult
from sagactl.dlq.redrive import redrive
from sagactl.errors import ExitCode, UsageError
from sagactl.models import SagaRecord, SagaState, utcnow
from sagactl.store import open_store
from tests.support.sqs import Forward, Queue, Sqs, SqsProxy, receive_waits, throttled, without_long_polls

# The redrive counter attribute on every redriven message: messages already sitting in queues
# carry it, so its name is a wire contract (a rename would restart every count).
REDRIVE_COUNT_ATTRIBUTE = "sagactl_redrive_count"

runner = CliRunner()


def attrs(saga_id: str, step: str = "charge", **extra: Any) -> dict[str, Any]:
    found: dict[str, Any] = {
        "saga_id": {"DataType": "String", "StringValue": saga_id},
        "step_name": {"DataType": "String", "StringValue": step},
        "command": {"DataType": "String", "StringValue": "PaymentService.RefundPayment"},
    }
    for name, value in extra.items():
        found[name] = value
    return found


def fill(sqs: Sqs, queue: Queue, count: int, *, sagas: int = 5) -> list[str]:
    bodies = [json.dumps({"saga_id": f"saga-{i % sagas}", "n": i}) for i in range(count)]
    sqs.send(
        queue,
        bodies,
        attributes=lambda i: attrs(f"saga-{i % sagas}", "charge" if i % 2 else "reserve"),
        group=lambda i: f"saga-{i % sagas}",
    )
    return bodies


def cli(*args: str, input: str | None = None) -> tuple[int, dict[str, Any], str]:
    result = runner.invoke(app, ["redrive", *args, "-o", "json", "--wait-time", "0"], input=input)
    data = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, data, result.stderr


def core(queue: Queue, endpoint: str | None = None, **options: Any) -> RedriveResult:
    client = sqs_client(AwsSettings(endpoint_url=endpoint))
    return redrive(client, RedriveRequest(dlq=queue.url, wait=0, **options))


# -- moving ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_redrive_moves_everything_back_to_the_source_queue(sqs: Sqs) -> None:
    dlq, source = sqs.dlq_pair()
    bodies = fill(sqs, dlq, 30)
    code, data, stderr = cli("--dlq", dlq.name)
    assert code == 0, stderr
    assert {k: data[k] for k in ("moved", "skipped", "poisoned", "failed", "dry_run")} == {
        "moved": 30,
        "skipped": 0,
        "poisoned": 0,
        "failed": 0,
        "dry_run": False,
    }
    assert data["destination"] == source.name
    assert len(data["messages"]) == 30 and {m["action"] for m in data["messages"]} == {"moved"}
    assert all(m["redrive_count"] == 1 and m["new_message_id"] for m in data["messages"])
    assert stderr == "sagactl: moved 30, skipped 0, poisoned 0, failed 0\n"
    assert sqs.counts(dlq) == (0, 0)
    assert sorted(m["Body"] for m in sqs.receive_all(source)) == sorted(bodies)


def test_redrive_csv_has_one_row_per_message_with_the_saga_id_and_the_whole_body(sqs: Sqs) -> None:
    dlq, _ = sqs.dlq_pair()
    body = ('{"note": "a 500-character body, with \\"quotes\\",\ta tab and\na newline"} ' * 10)[:500]
    sqs.send(dlq, [body], attributes=lambda i: attrs("saga-x"))
    result = runner.invoke(app, ["redrive", "--dlq", dlq.name, "--dry-run", "-o", "csv", "--wait-time", "0"])
    assert result.exit_code == 0, result.stderr
    header, row = csv.reader(io.StringIO(result.stdout))
    message = dict(zip(header, row, strict=True))
    assert (message["saga_id"], message["action"], message["body"]) == ("saga-x", "would_move", body)


@pytest.mark.slow
def test_bodies_and_attributes_are_kept_byte_for_byte(sqs: Sqs) -> None:
    dlq, source = sqs.dlq_pair()
    blob = bytes(range(256))
    bodies = [
        '{"saga_id":"s1","amount":"12.50","note":"naïve café ☕ 日本 \U0001f600"}',
        "  leading and trailing spaces, tabs\tand\nnewlines\r\n  ",
        "<xml attr='1'>&amp;</xml>",
        "\U0010ffff\ue000\ud7ff",
    ]
    extra = {
        "blob": {"DataType": "Binary", "BinaryValue": blob},
        "gz": {"DataType": "Binary.gzip", "BinaryValue": b"\x1f\x8b\x08\x00\x00"},
        "price": {"DataType": "Number", "StringValue": "1.50"},
        "label": {"DataType": "String.custom", "StringValue": "ünïcødé ✓"},
    }
    sqs.send(dlq, bodies, attributes=lambda i: attrs(f"s{i}", **extra))
    originals = {m["Body"]: m for m in sqs.receive_all(dlq, hold=1)}
    time.sleep(1.1)  # let the originals become visible again (1 s hold: SQS's smallest)
    result = core(dlq)
    assert result.moved == 4 and result.failed == 0
    moved = sqs.receive_all(source)
    assert sorted(m["Body"] for m in moved) == sorted(bodies)
    for message in moved:
        original = originals[message["Body"]]
        assert message["MD5OfBody"] == original["MD5OfBody"]
        got = dict(message["MessageAttributes"])
        assert got.pop(REDRIVE_COUNT_ATTRIBUTE) == {"DataType": "Number", "StringValue": "1"}
        assert got == original["MessageAttributes"]
        assert got["blob"]["BinaryValue"] == blob


@pytest.mark.slow
def test_fifo_keeps_groups_and_order_with_fresh_deduplication_ids(sqs: Sqs) -> None:
    dlq, source = sqs.dlq_pair(fifo=True)
    bodies = [f"g{i % 3}-{i // 3:02d}" for i in range(24)]  # three groups, interleaved
    sqs.send(dlq, bodies, attributes=lambda i: attrs(f"saga-{i % 3}"), group=lambda i: f"g{i % 3}")
    result = core(dlq, concurrency=4)
    assert result.moved == 24 and result.failed == 0
    assert result.destination is not None and result.destination.url == source.url
    moved = sqs.take_all(source)
    assert sorted(m["Body"] for m in moved) == sorted(bodies)
    for group in ("g0", "g1", "g2"):
        in_group = [m for m in moved if m["Attributes"]["MessageGroupId"] == group]
        assert [m["Body"] for m in in_group] == [b for b in bodies if b.startswith(group)]  # order kept
    dedup = {m["Attributes"]["MessageDeduplicationId"] for m in moved}
    assert len(dedup) == 24  # fresh and distinct: none dropped as a duplicate
    assert dedup == {f"{o.message.message_id}:redrive:1" for o in result.outcomes}


@dataclass(frozen=True)
class SendCall:
    """One SendMessageBatch as the proxy saw it: when it arrived, when it was answered, and the
    FIFO groups of its entries."""

    start: float
    end: float
    groups: frozenset[str]


def record_slow_sends(proxy: SqsProxy) -> list[SendCall]:
    """Hold every SendMessageBatch 0.3 s before passing it on (the first 0.6 s, so a later batch
    sent alongside it would reach SQS first), and record each call."""
    calls: list[SendCall] = []
    arrivals = itertools.count()
    lock = threading.Lock()

    def slow(operation: str, payload: dict[str, Any], headers: Mapping[str, str], forward: Forward) -> Any:
        if operation != "SendMessageBatch":
            return forward(payload)
        start = time.monotonic()
        time.sleep(0.6 if next(arrivals) == 0 else 0.3)
        answer = forward(payload)
        groups = frozenset(e.get("MessageGroupId", "") for e in payload["Entries"])
        with lock:
            calls.append(SendCall(start, time.monotonic(), groups))
        return answer

    proxy.handler = slow
    return calls


def overlapping_sends_of_one_group(calls: list[SendCall]) -> list[tuple[SendCall, SendCall]]:
    return [
        (a, b)
        for n, a in enumerate(calls)
        for b in calls[n + 1 :]
        if a.start < b.end and b.start < a.end and a.groups & b.groups
    ]


@pytest.mark.parametrize("fifo_dlq", [True, False], ids=["fifo-dlq-big-bodies", "standard-dlq-to-fifo"])
@pytest.mark.slow
def test_two_batches_of_one_fifo_group_are_never_in_flight_together(
    sqs: Sqs, sqs_proxy: SqsProxy, fifo_dlq: bool
) -> None:
    """Order within a FIFO group needs one batch of a group at a time, even with --concurrency 4.

    A group's next batch is ready while the previous one is still in flight when one receive
    is split into several sends (bodies of ~60 KB: the 256 KB batch payload limit makes
    batches of 4), or when the DLQ is a standard queue (it hands out a saga's messages all at
    once) redriven with --to into a FIFO queue (group = saga_id)."""
    if fifo_dlq:
        dlq, destination = sqs.dlq_pair(fifo=True)
        pad = "p" * 60_000  # one 60 KB run of letters (masking it once took minutes; now linear)
        big = [f"big-{n:02d}-{pad}" for n in range(13)]
        small = [f"small-{n:02d}" for n in range(4)]
        sqs.send(dlq, big + small, attributes=lambda i: attrs("saga-big" if i < 13 else "saga-small"),
                 group=lambda i: "big" if i < 13 else "small")  # fmt: skip
        expected = {"big": big, "small": small}
        to: tuple[str, ...] = ()
    else:
        dlq, _ = sqs.dlq_pair()
        destination = sqs.queue("dest", fifo=True)
        one = [f"one-{n:02d}" for n in range(23)]
        other = [f"other-{n:02d}" for n in range(3)]
        sqs.send(dlq, one + other, attributes=lambda i: attrs("saga-one" if i < 23 else "saga-other"))
        expected = {"saga-one": one, "saga-other": other}
        to = ("--to", destination.name)
    calls = record_slow_sends(sqs_proxy)
    code, data, stderr = cli("--dlq", dlq.name, *to, "--concurrency", "4", "--endpoint-url", sqs_proxy.url)
    assert code == 0, stderr
    assert data["moved"] == sum(len(v) for v in expected.values()) and data["failed"] == 0
    busiest = max(expected, key=lambda g: len(expected[g]))
    assert sum(1 for c in calls if busiest in c.groups) >= 3  # the group really came in several batches
    assert overlapping_sends_of_one_group(calls) == []
    moved = sqs.take_all(destination)
    for group, bodies in expected.items():
        got = [m["Body"].split(" ", 1)[0] for m in moved if m["Attributes"]["MessageGroupId"] == group]
        assert got == [b.split(" ", 1)[0] for b in bodies]  # order kept


@pytest.mark.slow
def test_explicit_to_and_several_or_no_source_queues(sqs: Sqs) -> None:
    dlq = sqs.queue("dlq")
    first = sqs.queue("src-a", dead_letter=dlq)
    second = sqs.queue("src-b", dead_letter=dlq)
    fill(sqs, dlq, 3)
    code, data, stderr = cli("--dlq", dlq.name)
    assert code == 2 and data == {}
    names = ", ".join(sorted([first.name, second.name]))
    assert stderr == (
        f"sagactl: error: 2 queues use {dlq.name} as their dead-letter queue ({names}); pass --to QUEUE to choose one\n"
    )
    code, data, _ = cli("--dlq", dlq.name, "--to", second.url)
    assert code == 0 and data["moved"] == 3 and sqs.counts(second) == (3, 0)
    orphan = sqs.queue("orphan")
    code, _, stderr = cli("--dlq", orphan.name)
    assert code == 2 and "no queue uses" in stderr and "pass --to QUEUE" in stderr
    code, _, stderr = cli("--dlq", orphan.name, "--to", orphan.name)
    assert code == 2 and "is the dead-letter queue itself" in stderr


# -- choosing ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
@pytest.mark.slow
def test_filters_leave_the_rest_untouched_and_visible(sqs: Sqs, fifo: bool) -> None:
    dlq, source = sqs.dlq_pair(fifo=fifo)
    fill(sqs, dlq, 30, sagas=5)
    code, data, _ = cli("--dlq", dlq.name, "--saga-id", "saga-1", "--saga-id", "saga-2")
    assert code == 0
    assert data["moved"] == 12
    # FIFO: a held message keeps the rest of its group from being handed out, so the scan sees
    # only the heads of the other groups (SQS semantics, and what keeps their order intact)
    assert data["unmatched"] == (6 if fifo else 18)
    assert {m["saga_id"] for m in data["messages"]} == {"saga-1", "saga-2"}
    assert sqs.counts(dlq) == (18, 0)  # held during the scan, visible again at the end
    code, data, _ = cli("--dlq", dlq.name, "--step", "charge", "--max", "4")
    assert code == 0 and data["moved"] == 4 and {m["step_name"] for m in data["messages"]} == {"charge"}
    assert sqs.counts(dlq) == (14, 0)
    assert sqs.counts(source)[0] == 16


@pytest.mark.slow
def test_the_sqs_under_test_loses_no_delete_made_at_the_same_time(sqs: Sqs) -> None:
    """The class of the flaky `(18, 2) != (18, 0)` above: redrive deletes batches from several
    threads, and moto lost one of two concurrent deletes (the deleted messages came back,
    hidden). tests/support/sqs.py serializes them, as SQS is; 12 batches at once, 8 threads."""
    queue = sqs.queue("deletes")
    sqs.send(queue, [f"m{i}" for i in range(120)])
    handles = [m["ReceiptHandle"] for m in sqs.receive_all(queue, hold=300)]
    assert len(handles) == 120

    def delete(batch: list[str]) -> None:
        entries: Any = [{"Id": str(n), "ReceiptHandle": handle} for n, handle in enumerate(batch)]
        assert not sqs.client.delete_message_batch(QueueUrl=queue.url, Entries=entries).get("Failed")

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(delete, [handles[i : i + 10] for i in range(0, 120, 10)]))
    assert sqs.counts(queue) == (0, 0)


def test_saga_ids_from_stdin(sqs: Sqs) -> None:
    dlq, _ = sqs.dlq_pair()
    fill(sqs, dlq, 10, sagas=5)
    code, data, _ = cli("--dlq", dlq.name, "--saga-id", "-", input="saga-0\nsaga-3\n")
    assert code == 0 and {m["saga_id"] for m in data["messages"]} == {"saga-0", "saga-3"} and data["moved"] == 4
    code, data, stderr = cli("--dlq", dlq.name, "--saga-id", "-", input="")
    assert code == 2 and data == {}  # nothing piped: said so, nothing moves
    assert stderr.startswith("sagactl: error: no IDs given: ") and stderr.count("\n") == 1
    assert sqs.counts(dlq) == (6, 0)


def _saga(saga_id: str, state: SagaState, *, stuck: bool = False) -> SagaRecord:
    now = utcnow()
    return SagaRecord(
        saga_id=saga_id,
        saga_type="OrderFulfillment",
        state=state,
        data={},
        steps=[],
        definition={},
        created_at=now - timedelta(hours=1),
        updated_at=now - timedelta(hours=1) if stuck else now,
        deadline_at=now - timedelta(minutes=30) if stuck else None,
    )


@pytest.fixture
def saga_log(tmp_path: Path) -> str:
    """A real SQLite saga log: open-1 (compensating, stuck), open-2 (pending, not stuck),
    done (completed), failed (failed)."""
    dsn = f"sqlite:///{tmp_path / 'saga_log.db'}"
    store = open_store(dsn)
    store.init_schema()
    for record in (
        _saga("open-1", SagaState.COMPENSATING, stuck=True),
        _saga("open-2", SagaState.PENDING),
        _saga("done", SagaState.COMPLETED),
        _saga("failed", SagaState.FAILED),
    ):
        store.create(record, [])
    store.close()
    return dsn


def test_only_open_redrives_running_sagas_and_reports_the_rest(sqs: Sqs, saga_log: str) -> None:
    dlq, source = sqs.dlq_pair()
    sagas = ["open-1", "open-2", "done", "failed", "unknown"]
    sqs.send(dlq, [f"m-{s}" for s in sagas], attributes=lambda i: attrs(sagas[i]))
    sqs.send(dlq, ["no saga at all"])
    code, data, _ = cli("--dlq", dlq.name, "--only-open", "--dsn", saga_log)
    assert code == 0
    assert data["moved"] == 2 and data["skipped"] == 4
    reasons = {m["saga_id"]: m["reason"] for m in data["messages"] if m["action"] == "skipped"}
    assert reasons == {
        "done": "saga done is completed (--only-open)",
        "failed": "saga failed is failed (--only-open)",
        "unknown": "saga unknown is not in the saga log (--only-open)",
        None: "no saga_id in the message (--only-open)",
    }
    assert sorted(m["Body"] for m in sqs.receive_all(source)) == ["m-open-1", "m-open-2"]
    assert sqs.counts(dlq) == (4, 0)


def test_only_open_reads_a_mapped_table(sqs: Sqs, pg_dsn: str, tmp_path: Path) -> None:
    """--only-open with another orchestrator's table (read-only, PostgreSQL) as the saga log."""
    import psycopg

    schema = f"dlq_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.sagas (id text PRIMARY KEY, status text, modified_at timestamptz)")
        conn.execute(f"INSERT INTO {schema}.sagas VALUES ('M-1', 'COMPENSATING', now()), ('M-2', 'COMPLETED', now())")
    config = tmp_path / "sagactl.yaml"
    config.write_text(
        f"""contexts:
  legacy:
    store:
      dsn: {pg_dsn}
      table: {schema}.sagas
      columns: {{saga_id: id, state: status, updated_at: modified_at}}
      states: {{started: STARTED, pending: PENDING, compensating: COMPENSATING,
               completed: COMPLETED, failed: FAILED}}
"""
    )
    dlq, source = sqs.dlq_pair()
    sqs.send(dlq, ["m-1", "m-2"], attributes=lambda i: attrs(f"M-{i + 1}"))
    try:
        code, data, stderr = cli("--dlq", dlq.name, "--only-open", "--config", str(config), "--context", "legacy")
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
    assert code == 0, stderr
    assert data["moved"] == 1 and data["skipped"] == 1
    assert [m["Body"] for m in sqs.receive_all(source)] == ["m-1"]


@pytest.mark.slow
def test_stuck_list_piped_into_redrive(sqs: Sqs, saga_log: str, aws_env: Mapping[str, str]) -> None:
    """The runbook: sagactl list --stuck -q | sagactl redrive --dlq q --saga-id -"""
    dlq, source = sqs.dlq_pair()
    sagas = ["open-1", "open-2", "done"]
    sqs.send(dlq, [f"m-{s}" for s in sagas], attributes=lambda i: attrs(sagas[i]))
    env = {**os.environ, **aws_env, "SAGACTL_DSN": saga_log}
    pipeline = (
        f"{sys.executable} -m sagactl list --stuck -q"
        f" | {sys.executable} -m sagactl redrive --dlq {dlq.name} --saga-id - -o json --wait-time 0"
    )
    done = subprocess.run(pipeline, shell=True, capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["moved"] == 1 and data["messages"][0]["saga_id"] == "open-1"
    assert [m["Body"] for m in sqs.receive_all(source)] == ["m-open-1"]


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
@pytest.mark.slow
def test_dry_run_moves_nothing(sqs: Sqs, fifo: bool) -> None:
    dlq, source = sqs.dlq_pair(fifo=fifo)
    fill(sqs, dlq, 8)
    code, data, stderr = cli("--dlq", dlq.name, "--dry-run")
    assert code == 0
    assert data["dry_run"] is True and data["moved"] == 0 and data["would_move"] == 8
    assert {m["action"] for m in data["messages"]} == {"would_move"}
    assert stderr == "sagactl: dry run: would move 8, skipped 0; nothing moved\n"
    assert sqs.counts(dlq) == (8, 0) and sqs.counts(source) == (0, 0)


# -- the redrive counter -------------------------------------------------------------------------


def counter(n: int) -> dict[str, Any]:
    return {REDRIVE_COUNT_ATTRIBUTE: {"DataType": "Number", "StringValue": str(n)}}


@pytest.mark.parametrize("fifo", [False, True], ids=["standard", "fifo"])
@pytest.mark.slow
def test_counter_and_poison_queue(sqs: Sqs, fifo: bool) -> None:
    dlq, source = sqs.dlq_pair(fifo=fifo)
    poison = sqs.queue("poison", fifo=fifo)
    sqs.send(dlq, ["fresh", "fourth", "fifth"], attributes=lambda i: attrs(f"s{i}", **counter([0, 4, 5][i])))
    code, data, _ = cli("--dlq", dlq.name)  # default --max-redrives 5, no poison queue
    assert code == 0 and data["moved"] == 2 and data["skipped"] == 1
    stayed = next(m for m in data["messages"] if m["action"] == "skipped")
    assert stayed["saga_id"] == "s2" and "redriven 5 times (--max-redrives 5); left in the DLQ" in stayed["reason"]
    assert sqs.counts(dlq) == (1, 0)
    counts = {m["Body"]: m["MessageAttributes"][REDRIVE_COUNT_ATTRIBUTE]["StringValue"] for m in sqs.take_all(source)}
    assert counts == {"fresh": "1", "fourth": "5"}
    code, data, _ = cli("--dlq", dlq.name, "--poison-queue", poison.name)
    assert code == 0 and data["poisoned"] == 1 and data["moved"] == 0
    assert data["messages"][0]["destination"] == poison.name
    parked = sqs.take_all(poison)
    assert [m["Body"] for m in parked] == ["fifth"]
    assert parked[0]["MessageAttributes"][REDRIVE_COUNT_ATTRIBUTE]["StringValue"] == "5"  # unchanged
    assert sqs.counts(dlq) == (0, 0)


@pytest.mark.slow
def test_counter_grows_on_each_round_trip_and_limit_is_configurable(sqs: Sqs) -> None:
    dlq, source = sqs.dlq_pair()
    sqs.send(dlq, ["loop"], attributes=lambda i: attrs("s"))
    for expected in (1, 2):
        assert cli("--dlq", dlq.name, "--max-redrives", "2")[1]["moved"] == 1
        (message,) = sqs.take_all(source)
        assert message["MessageAttributes"][REDRIVE_COUNT_ATTRIBUTE]["StringValue"] == str(expected)
        # the participant fails again: SQS dead-letters it with its attributes
        sqs.send(dlq, [message["Body"]], attributes=lambda i, m=message: m["MessageAttributes"])
    code, data, _ = cli("--dlq", dlq.name, "--max-redrives", "2")
    assert code == 0 and data["skipped"] == 1 and data["moved"] == 0
    assert cli("--dlq", dlq.name, "--max-redrives", "0")[1]["moved"] == 1  # 0: no limit


def test_message_with_ten_attributes_moves_without_a_counter(sqs: Sqs) -> None:
    dlq, source = sqs.dlq_pair()
    ten = {f"a{i}": {"DataType": "String", "StringValue": str(i)} for i in range(10)}
    sqs.send(dlq, ["full"], attributes=lambda i: ten)
    code, data, _ = cli("--dlq", dlq.name)
    assert code == 0 and data["moved"] == 1
    assert data["messages"][0]["reason"] == "redrive counter not recorded: the message already has 10 attributes"
    (message,) = sqs.receive_all(source)
    assert message["MessageAttributes"] == ten


# -- pace, interruption, crashes --------------------------------------------------------------------


class FakePace:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_rate_caps_messages_per_second(sqs: Sqs) -> None:
    dlq, _ = sqs.dlq_pair()
    fill(sqs, dlq, 30)
    pace = FakePace()
    sent: list[tuple[float, int]] = []

    def progress(result: RedriveResult, total: int | None) -> None:
        sent.append((pace.now, result.moved))

    client = sqs_client(AwsSettings())
    result = redrive(client, RedriveRequest(dlq=dlq.url, wait=0, rate=4), clock=pace, progress=progress)
    assert result.moved == 30
    # batches of 4 (one second's worth) one second apart: 30 messages need 7 s after the first batch
    assert pace.now == pytest.approx(7.0)
    assert all(s == pytest.approx(1.0) for s in pace.sleeps)
    for at, moved in sent:
        assert moved <= 4 * at + 4  # never ahead of the rate (one batch of burst)


@pytest.mark.slow
def test_rate_is_honoured_in_real_time(sqs: Sqs) -> None:
    dlq, _ = sqs.dlq_pair()
    fill(sqs, dlq, 20)
    started = time.monotonic()
    result = core(dlq, rate=20)
    took = time.monotonic() - started
    assert result.moved == 20
    assert took >= 0.5  # two batches of 10, the second half a second after the first


@pytest.mark.slow
def test_interrupt_keeps_what_moved_and_releases_the_rest(sqs: Sqs) -> None:
    dlq, source = sqs.dlq_pair()
    bodies = fill(sqs, dlq, 40)

    pressed: list[int] = []

    def interrupt(result: RedriveResult, total: int | None) -> None:
        if result.moved >= 10 and not pressed:
            pressed.append(result.moved)
            raise KeyboardInterrupt  # Ctrl-C once 10 have moved

    client = sqs_client(AwsSettings())
    result = redrive(client, RedriveRequest(dlq=dlq.url, wait=0, concurrency=1), progress=interrupt)
    assert result.interrupted and result.exit_code == ExitCode.INTERRUPTED
    assert 10 <= result.moved < 40
    visible, in_flight = sqs.counts(dlq)
    assert in_flight == 0 and visible + result.moved == 40
    everything = [m["Body"] for m in sqs.receive_all(dlq) + sqs.receive_all(source)]
    assert sorted(everything) == sorted(bodies)


@pytest.mark.slow
def test_kill_9_mid_redrive_loses_nothing(sqs: Sqs, aws_env: Mapping[str, str]) -> None:
    dlq, source = sqs.dlq_pair()
    bodies = fill(sqs, dlq, 60)
    env = {**os.environ, **aws_env}
    command = [sys.executable, "-m", "sagactl", "redrive", "--dlq", dlq.name, "--rate", "20"]
    command += ["--visibility-timeout", "2", "--wait-time", "0", "-o", "json"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while sqs.counts(source)[0] < 10 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    moved_before_kill = sqs.counts(source)[0]
    assert 10 <= moved_before_kill < 60  # killed mid-run
    while sqs.counts(dlq)[1] and time.monotonic() < deadline:  # held ones come back after 2 s
        time.sleep(0.1)
    in_dlq = sqs.receive_all(dlq)
    in_source = sqs.receive_all(source)
    assert len(in_dlq) + len(in_source) >= 60
    assert set(bodies) <= {m["Body"] for m in in_dlq + in_source}


# -- a misbehaving endpoint --------------------------------------------------------------------------


def _header(headers: Mapping[str, str], name: str) -> str:
    return next((v for k, v in headers.items() if k.lower() == name), "")


def test_partial_send_failures_are_handled_per_entry(sqs: Sqs, sqs_proxy: SqsProxy) -> None:
    dlq, source = sqs.dlq_pair()
    bodies = [f"ok-{i}" if i % 4 else f"FAIL-{i}" for i in range(24)]
    sqs.send(dlq, bodies, attributes=lambda i: attrs(f"s{i}"))

    def fail_some(operation: str, payload: dict[str, Any], headers: Mapping[str, str], forward: Forward) -> Any:
        if operation != "SendMessageBatch":
            return forward(payload)
        failing = [e for e in payload["Entries"] if e["MessageBody"].startswith("FAIL")]
        kept = [e for e in payload["Entries"] if not e["MessageBody"].startswith("FAIL")]
        status, answer, extra = forward({**payload, "Entries": kept}) if kept else (200, {"Successful": []}, {})
        answer["Failed"] = answer.get("Failed", []) + [
            {"Id": e["Id"], "SenderFault": False, "Code": "InternalError", "Message": "injected failure"}
            for e in failing
        ]
        return status, answer, extra

    sqs_proxy.handler = fail_some
    code, data, stderr = cli("--dlq", dlq.name, "--endpoint-url", sqs_proxy.url)
    assert code == 3
    assert data["moved"] == 18 and data["failed"] == 6
    failed = [m for m in data["messages"] if m["action"] == "failed"]
    assert {m["body"] for m in failed} == {b for b in bodies if b.startswith("FAIL")}
    assert all(m["reason"] == f"not sent to {source.name}: InternalError: injected failure" for m in failed)
    assert "failed 6" in stderr
    assert sqs.counts(dlq) == (6, 0)  # failed entries stay in the DLQ, visible
    assert sorted(m["Body"] for m in sqs.receive_all(source)) == sorted(b for b in bodies if b.startswith("ok"))


def test_send_answered_with_a_wrong_body_md5_keeps_the_message_in_the_dlq(sqs: Sqs, sqs_proxy: SqsProxy) -> None:
    """SQS acknowledges the send but reports the MD5 of another body (a proxy or SDK that
    mangled it on the way): that message is not deleted, it is reported failed, the rest move."""
    dlq, source = sqs.dlq_pair()
    bodies = [f"mangled-{i}" if i % 5 == 0 else f"ok-{i}" for i in range(20)]
    sqs.send(dlq, bodies, attributes=lambda i: attrs(f"s{i}"))
    wrong_md5 = hashlib.md5(b"not the body that was sent").hexdigest()

    def mangle_md5(operation: str, payload: dict[str, Any], headers: Mapping[str, str], forward: Forward) -> Any:
        status, answer, extra = forward(payload)
        if operation == "SendMessageBatch":
            mangled = {e["Id"] for e in payload["Entries"] if e["MessageBody"].startswith("mangled")}
            for entry in answer.get("Successful", []):
                if entry["Id"] in mangled:
                    entry["MD5OfMessageBody"] = wrong_md5
        return status, answer, extra

    sqs_proxy.handler = mangle_md5
    code, data, stderr = cli("--dlq", dlq.name, "--endpoint-url", sqs_proxy.url)
    assert code == 3, stderr
    assert (data["moved"], data["failed"]) == (16, 4)
    assert "failed 4" in stderr
    failed = [m for m in data["messages"] if m["action"] == "failed"]
    assert sorted(m["body"] for m in failed) == sorted(b for b in bodies if b.startswith("mangled"))
    for message in failed:
        assert message["reason"].startswith(f"sent to {source.name} as ")
        assert message["reason"].endswith("but the body MD5 differs; kept in the DLQ")
    assert sqs.counts(dlq) == (4, 0)  # kept, and visible again
    assert sorted(m["Body"] for m in sqs.receive_all(dlq)) == sorted(b for b in bodies if b.startswith("mangled"))
    # SQS did take the mangled ones: a duplicate in the source queue, never a loss
    assert sorted(m["Body"] for m in sqs.receive_all(source)) == sorted(bodies)


def test_failed_deletes_duplicate_but_never_lose(sqs: Sqs, sqs_proxy: SqsProxy) -> None:
    dlq, source = sqs.dlq_pair()
    bodies = fill(sqs, dlq, 20)

    def fail_first_delete(operation: str, payload: dict[str, Any], headers: Mapping[str, str], forward: Forward) -> Any:
        if operation != "DeleteMessageBatch":
            return forward(payload)
        first, rest = payload["Entries"][0], payload["Entries"][1:]
        status, answer, extra = forward({**payload, "Entries": rest}) if rest else (200, {"Successful": []}, {})
        answer["Failed"] = [{"Id": first["Id"], "SenderFault": False, "Code": "InternalError", "Message": "x"}]
        return status, answer, extra

    sqs_proxy.handler = fail_first_delete
    code, data, _ = cli("--dlq", dlq.name, "--endpoint-url", sqs_proxy.url)
    assert code == 3 and data["moved"] == 18 and data["failed"] == 2
    for message in (m for m in data["messages"] if m["action"] == "failed"):
        assert (
            message["new_message_id"]
            and "but not deleted (InternalError); a duplicate stays in the DLQ" in message["reason"]
        )
    assert sqs.counts(dlq) == (2, 0) and sqs.counts(source) == (20, 0)
    assert sorted(m["Body"] for m in sqs.receive_all(source)) == sorted(bodies)


def test_throttling_endpoint_is_ridden_out_by_adaptive_retries(sqs: Sqs, sqs_proxy: SqsProxy) -> None:
    """SQS answers RequestThrottled to the first attempt of the first send, ThrottlingException
    to that of the first delete; botocore's adaptive mode retries (and slows the client down) and every message
    moves exactly once. (Each throttle this early costs seconds: adaptive mode starts from the
    rate it measured so far, which is nearly nothing.)"""
    dlq, source = sqs.dlq_pair(fifo=False)
    bodies = fill(sqs, dlq, 30)
    throttled_calls: list[str] = []

    def throttle_first(operation: str, payload: dict[str, Any], headers: Mapping[str, str], forward: Forward) -> Any:
        first_attempt = _header(headers, "amz-sdk-request").split(";")[0].strip() == "attempt=1"
        batch_call = operation in ("SendMessageBatch", "DeleteMessageBatch")
        if batch_call and first_attempt and operation not in throttled_calls:
            throttled_calls.append(operation)
            return throttled("RequestThrottled" if operation == "SendMessageBatch" else "ThrottlingException")
        return forward(payload)

    sqs_proxy.handler = throttle_first
    code, data, stderr = cli("--dlq", dlq.name, "--endpoint-url", sqs_proxy.url)
    assert code == 0, stderr
    assert data["moved"] == 30 and data["failed"] == 0
    assert throttled_calls == ["SendMessageBatch", "DeleteMessageBatch"]
    assert sqs.counts(dlq) == (0, 0)
    assert sorted(m["Body"] for m in sqs.receive_all(source)) == sorted(bodies)  # exactly once each


def test_sqs_failing_mid_run_exits_4_with_a_summary(sqs: Sqs, sqs_proxy: SqsProxy, aws_env: Mapping[str, str]) -> None:
    dlq, source = sqs.dlq_pair()
    bodies = fill(sqs, dlq, 20)

    def broken_sends(operation: str, payload: dict[str, Any], headers: Mapping[str, str], forward: Forward) -> Any:
        if operation == "SendMessageBatch":
            return 503, {"__type": "com.amazonaws.sqs#ServiceUnavailable", "message": "down"}, {}
        return forward(payload)

    sqs_proxy.handler = broken_sends
    os.environ["AWS_MAX_ATTEMPTS"] = "2"
    try:
        code, data, stderr = cli("--dlq", dlq.name, "--endpoint-url", sqs_proxy.url)
    finally:
        del os.environ["AWS_MAX_ATTEMPTS"]
    assert code == 4
    assert data["moved"] == 0 and data["error"].startswith("SQS at ")
    # the first batch of 10 failed, and the second too when it was already in flight
    assert data["failed"] in (10, 20)
    assert [m["action"] for m in data["messages"]] == ["failed"] * data["failed"]
    assert all(m["reason"].startswith(f"not sent to {source.name}: ") for m in data["messages"])
    lines = stderr.splitlines()
    assert lines[0].startswith("sagactl: moved 0") and lines[1].startswith("sagactl: error: SQS at ")
    assert sqs.counts(dlq) == (20, 0) and sqs.counts(source) == (0, 0)
    assert sorted(m["Body"] for m in sqs.receive_all(dlq)) == sorted(bodies)


WAITS = [(["--wait-time", "0"], 0), (["--wait-time", "3"], 3), ([], 1)]


@pytest.mark.parametrize(("flags", "wait"), WAITS, ids=["0", "3", "default"])
@pytest.mark.slow
def test_redrive_long_polls_as_long_as_it_is_told(sqs: Sqs, sqs_proxy: SqsProxy, flags: list[str], wait: int) -> None:
    """The receive that concludes the DLQ is drained waits --wait-time seconds (default 1);
    0 means no long poll at all. (The proxy records the wait and lets moto answer at once.)"""
    dlq, source = sqs.dlq_pair()
    fill(sqs, dlq, 12)
    sqs_proxy.handler = without_long_polls
    result = runner.invoke(app, ["redrive", "--dlq", dlq.name, "-o", "json", "--endpoint-url", sqs_proxy.url, *flags])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["moved"] == 12 and sqs.counts(source) == (12, 0)
    waits = receive_waits(sqs_proxy)
    assert waits[-1] == wait and set(waits) <= {0, wait}


# -- options -------------------------------------------------------------------------------------------


def test_request_validation() -> None:
    for bad in (
        RedriveRequest(dlq="q", max_messages=0),
        RedriveRequest(dlq="q", rate=0),
        RedriveRequest(dlq="q", max_redrives=0, poison_queue="p"),
        RedriveRequest(dlq="q", concurrency=0),
        RedriveRequest(dlq="q", hold=0),
        RedriveRequest(dlq="q", wait=21),
    ):
        with pytest.raises(UsageError):
            bad.validate()
    RedriveRequest(dlq="q", filter=MessageFilter(frozenset({"a"}))).validate()


def test_only_open_without_a_store_lookup_is_refused(aws_env: Mapping[str, str]) -> None:
    client = sqs_client(AwsSettings())
    with pytest.raises(UsageError, match="--only-open needs the saga log"):
        redrive(client, RedriveRequest(dlq="q", only_open=True))


def test_progress_bar_follows_the_run(sqs: Sqs) -> None:
    from sagactl.views.dlq import redrive_progress

    dlq, _ = sqs.dlq_pair()
    fill(sqs, dlq, 12)
    client = sqs_client(AwsSettings())
    with redrive_progress() as bar:
        result = redrive(client, RedriveRequest(dlq=dlq.url, wait=0), progress=bar)
        task = bar.bar.tasks[0]
    assert result.moved == 12
    assert task.completed == 12 and task.total == 12
    assert task.description == "moved 12  failed 0  skipped 0"


# -- queue ARNs are honoured -----------------------------------------------------------------------


@pytest.mark.slow
def test_an_arn_in_another_region_never_moves_the_namesake_here(sqs: Sqs, sqs_elsewhere: Sqs) -> None:
    """`redrive --dlq arn:aws:sqs:eu-west-1:…:q` run with region us-east-1 must not move the
    us-east-1 queue of the same name: it refuses (exit 2, one line); with --region eu-west-1
    it moves the eu-west-1 messages and leaves us-east-1 alone. --to and --poison-queue too."""
    dlq, source = sqs.dlq_pair()
    there_dlq = sqs_elsewhere.queue(name=dlq.name)
    there_source = sqs_elsewhere.queue(name=source.name, dead_letter=there_dlq)
    fill(sqs, dlq, 4)
    fill(sqs_elsewhere, there_dlq, 3)
    for extra in ([], ["--to", there_source.arn]):
        for args in (["--dlq", there_dlq.arn, *extra], ["--dlq", dlq.name, "--to", there_source.arn]):
            code, data, stderr = cli(*args)
            assert code == 2 and data == {}, stderr
            assert stderr.startswith("sagactl: error: queue arn:aws:sqs:eu-west-1:") and stderr.count("\n") == 1
            assert "is in region eu-west-1, but SQS is reached in region us-east-1" in stderr
    code, _, stderr = cli("--dlq", dlq.name, "--poison-queue", there_dlq.arn)
    assert code == 2 and "is in region eu-west-1" in stderr
    assert (sqs.counts(dlq), sqs.counts(source)) == ((4, 0), (0, 0))
    assert (sqs_elsewhere.counts(there_dlq), sqs_elsewhere.counts(there_source)) == ((3, 0), (0, 0))

    code, data, stderr = cli("--dlq", there_dlq.arn, "--region", "eu-west-1")
    assert code == 0, stderr
    assert data["moved"] == 3 and data["destination_url"] == there_source.url
    assert (sqs_elsewhere.counts(there_dlq), sqs_elsewhere.counts(there_source)) == ((0, 0), (3, 0))
    assert (sqs.counts(dlq), sqs.counts(source)) == ((4, 0), (0, 0))
