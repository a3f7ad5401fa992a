"""The incident loop of docs/workers.md (the walkthrough), end to end, as an operator lives it: real processes
only (a `sagactl worker`, the sample participant service sample-configs/participants/
sqs_service.py, the `sagactl` commands), moto for SQS, PostgreSQL for the saga log.

run --detach -> the shipment is refused -> the refund handler is broken and SQS dead-letters
its messages -> `list --stuck` shows the saga -> the participant is fixed (its flag file
removed, no restart) -> `redrive --dlq … --only-open` -> the worker applies the late reply ->
the saga ends failed; the participant's journal shows every completed step compensated
exactly once per idempotency key and no action run twice.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sagactl.models import SagaState
from sagactl.store import open_store
from tests.support.postgres import fresh_database
from tests.support.sqs import Queue, Sqs

SAMPLES = Path(__file__).parent.parent / "sample-configs"
PARTICIPANTS = SAMPLES / "participants"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\n$")


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sagactl(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sagactl", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    found = [line.rsplit(" ", 1)[1] for line in text.splitlines() if line.startswith(name + " ")]
    return float(found[0]) if found else 0.0


@pytest.fixture
def saga_log(pg_admin_dsn: str) -> Iterator[str]:
    with fresh_database(pg_admin_dsn, "sagactl_incident") as dsn:
        yield dsn


@pytest.mark.slow
def test_the_incident_loop(sqs: Sqs, aws_env: dict[str, str], saga_log: str, tmp_path: Path) -> None:
    run = uuid.uuid4().hex[:8]
    names = {
        "INVENTORY_QUEUE": f"inventory-{run}",
        "PAYMENT_QUEUE": f"payment-{run}",
        "SHIPPING_QUEUE": f"shipping-{run}",
        "ORDER_REPLY_QUEUE": f"replies-{run}",
    }
    service_dir = tmp_path / "service"
    env = {**os.environ, **aws_env, **names, "SAGACTL_DSN": saga_log, "SQS_SERVICE_DIR": str(service_dir)}
    # The queues, as docs/workers.md makes them: dead-lettered after 2 receives, visible again after 1 s.
    made = subprocess.run(
        [sys.executable, str(PARTICIPANTS / "make_queues.py"), "--max-receive-count", "2", "--visibility-timeout", "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    assert [line.split("\t")[0] for line in made.stdout.splitlines()] == [
        names["INVENTORY_QUEUE"],
        names["PAYMENT_QUEUE"],
        names["SHIPPING_QUEUE"],
        names["ORDER_REPLY_QUEUE"],
    ]
    dlq_name = f"{names['PAYMENT_QUEUE']}-dlq"
    dlq = Queue(url=sqs.client.get_queue_url(QueueName=dlq_name)["QueueUrl"], name=dlq_name, arn="")
    replies = Queue(url=sqs.client.get_queue_url(QueueName=names["ORDER_REPLY_QUEUE"])["QueueUrl"], name="", arn="")

    service_dir.mkdir()
    (service_dir / "fail-refund").touch()  # the refund handler is broken from the start
    port = free_port()
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("participant", "worker")}
    participant = subprocess.Popen(
        [sys.executable, str(PARTICIPANTS / "sqs_service.py")], env=env, stderr=logs["participant"]
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "sagactl", "worker", "--poll", "100ms", "--metrics-port", str(port), "-v"],
        env=env,
        stderr=logs["worker"],
    )
    store = open_store(saga_log)
    try:
        order = {**json.loads((SAMPLES / "order-input.json").read_text()), "address": ""}  # shipping refuses
        started = sagactl(env, "run", str(SAMPLES / "order-sqs.yaml"), "--input", json.dumps(order), "--detach")
        assert started.returncode == 0, started.stderr
        assert UUID.match(started.stdout), started.stdout  # only the ID
        saga_id = started.stdout.strip()

        # The refund is never answered: its 2 attempts run out, the saga waits for an operator.
        def stuck() -> bool:
            saga = store.get(saga_id)
            if saga is None or saga.state is not SagaState.COMPENSATING:
                return False
            return saga.lease_owner is None and saga.wake_at is None  # nothing due: an operator's turn

        wait_for(stuck, 30, "the saga to be stuck compensating")
        listed = sagactl(env, "list", "--stuck", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        rows = json.loads(listed.stdout)
        assert [(r["saga_id"], r["state"], r["current_step_name"], r["lease_owner"]) for r in rows] == [
            (saga_id, "compensating", "charge_payment", None)
        ]
        assert rows[0]["last_error"].startswith("charge_payment compensation: ")
        # Both refund messages (one per attempt, one key) are dead-lettered.
        wait_for(lambda: sqs.counts(dlq) == (2, 0), 20, "both refunds in the DLQ")

        (service_dir / "fail-refund").unlink()  # fix the participant: no restart
        moved = sagactl(env, "redrive", "--dlq", dlq_name, "--only-open", "-o", "json")
        assert moved.returncode == 0, moved.stderr
        summary = json.loads(moved.stdout)
        assert (summary["moved"], summary["skipped"], summary["failed"]) == (2, 0, 0)
        assert summary["destination"] == names["PAYMENT_QUEUE"]

        wait_for(lambda: (s := store.get(saga_id)) is not None and s.state.terminal, 20, "the saga to end")
        shown = sagactl(env, "show", saga_id, "-o", "json")
        assert shown.returncode == 0, shown.stderr
        doc = json.loads(shown.stdout)
        assert doc["state"] == "failed" and doc["lease_owner"] is None and doc["wake_at"] is None
        assert [(s["name"], s["status"]) for s in doc["steps"]] == [
            ("reserve_inventory", "compensated"),
            ("charge_payment", "compensated"),
            ("create_shipment", "failed"),
        ]
        assert doc["last_error"] == (
            f"create_shipment: sqs {names['ORDER_REPLY_QUEUE']}: no shipping address for order {order['order_id']}"
        )
        # The second refund reply (the redriven duplicate) found nobody waiting: deleted.
        wait_for(lambda: sqs.counts(replies) == (0, 0), 10, "the reply queue to drain")
        assert metric(port, 'sagactl_worker_replies_total{result="applied"}') == 5
        assert metric(port, 'sagactl_worker_replies_total{result="ignored"}') == 1
        health = urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert (health.status, health.read()) == (200, b"ok\n")

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
    except BaseException:
        for name in logs:  # what the processes said, for the failure report
            print(f"--- {name}\n{(tmp_path / f'{name}.log').read_text()}")
        raise
    finally:
        store.close()
        for process in (worker, participant):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in (worker, participant):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs.values():
            log.close()

    journal = [json.loads(line) for line in (service_dir / "journal.jsonl").read_text().splitlines()]
    acted = Counter((e["key"], e["outcome"]) for e in journal)
    key = f"{saga_id}:{{}}".format
    # Every action once; the refused shipment not compensated; each completed step compensated
    # exactly once per key (the redriven duplicate answered from the guard, not acted on).
    assert {k: n for k, n in acted.items() if k[1] in ("done", "refused")} == {
        (key("reserve_inventory:action"), "done"): 1,
        (key("charge_payment:action"), "done"): 1,
        (key("create_shipment:action"), "refused"): 1,
        (key("charge_payment:compensation"), "done"): 1,
        (key("reserve_inventory:compensation"), "done"): 1,
    }
    assert acted[(key("charge_payment:compensation"), "raised")] == 4  # 2 messages x 2 receives
    assert acted[(key("charge_payment:compensation"), "duplicate")] == 1
    acted_in_order = [(e["command"], e["outcome"]) for e in journal if e["outcome"] in ("done", "refused")]
    assert acted_in_order == [
        ("InventoryService.ReserveItems", "done"),
        ("PaymentService.ChargePayment", "done"),
        ("ShippingService.CreateShipment", "refused"),
        ("PaymentService.RefundPayment", "done"),  # compensations in strict reverse order
        ("InventoryService.ReleaseItems", "done"),
    ]
    refund = next(e for e in journal if e["outcome"] == "done" and e["command"] == "PaymentService.RefundPayment")
    assert refund["reply"]["result"] == {"refunded": True, "amount": order["amount"]}
