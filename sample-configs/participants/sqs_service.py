"""Sample participant services for order-sqs.yaml: inventory, payment and shipping over SQS.

A long-running process (boto3) that consumes the three command queues and implements each
command the saga sends (DESIGN section 5):

- idempotency guard: a command whose idempotency key it has already acted on is not acted on
  again; it answers with the reply it gave the first time;
- the reply goes to the command's ``reply_to`` queue: ``SagaStepCompleted`` with a result,
  ``SagaStepFailed`` with an error (a refusal: shipping refuses an order without an address),
  ``SagaCompensationCompleted`` for an undo;
- a journal, one JSON line per command received (``journal.jsonl`` in SQS_SERVICE_DIR): the
  key, the command, its body, the outcome (``done``, ``refused``, ``duplicate`` or ``raised``)
  and the reply. The guard and the services' records are read back from it on start, so a
  restart forgets nothing;
- a broken refund handler on demand: while the file ``fail-refund`` exists in SQS_SERVICE_DIR,
  RefundPayment raises, the message is not deleted, SQS delivers it again after the queue's
  visibility timeout and, after its redrive policy's maxReceiveCount, moves it to the
  dead-letter queue. Remove the file to "fix the participant": no restart needed.

Environment: the queue names as in order-sqs.yaml (INVENTORY_QUEUE, PAYMENT_QUEUE,
SHIPPING_QUEUE, with the same defaults), SQS_SERVICE_DIR (default ./.sqs-service), and the
standard AWS settings (AWS_REGION, AWS_ENDPOINT_URL_SQS for moto or LocalStack, credentials).
One process per SQS_SERVICE_DIR. SIGTERM or Ctrl-C stops it within a few seconds.

    python sample-configs/participants/sqs_service.py
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

QUEUES = {
    "inventory": os.environ.get("INVENTORY_QUEUE") or "inventory-commands",
    "payment": os.environ.get("PAYMENT_QUEUE") or "payment-commands",
    "shipping": os.environ.get("SHIPPING_QUEUE") or "shipping-commands",
}
STATE_DIR = Path(os.environ.get("SQS_SERVICE_DIR") or ".sqs-service")
FAIL_REFUND = STATE_DIR / "fail-refund"
POLL_SECONDS = 2  # long poll; also how long stopping may take

log = logging.getLogger("sqs_service")


class Refused(Exception):
    """The service refuses the command for a business reason (a SagaStepFailed reply)."""


# -- the handlers: (command body, this service's records) -> result --------------------------

Records = dict[str, dict[str, Any]]


def reserve_items(body: dict[str, Any], stock: Records) -> dict[str, Any]:
    stock[body["order_id"]] = {"items": body.get("items", []), "state": "reserved"}
    return {"reservation_id": f"res-{body['order_id']}"}


def release_items(body: dict[str, Any], stock: Records) -> dict[str, Any]:
    record = stock.get(body["order_id"])
    if record is None:
        return {"released": False, "note": "nothing reserved"}
    record["state"] = "released"
    return {"released": True}


def charge_payment(body: dict[str, Any], payments: Records) -> dict[str, Any]:
    payments[body["order_id"]] = {"amount": body["amount"], "state": "charged"}
    return {"payment_id": f"pay-{body['order_id']}", "amount": body["amount"]}


def refund_payment(body: dict[str, Any], payments: Records) -> dict[str, Any]:
    record = payments.get(body["order_id"])
    if record is None:
        return {"refunded": False, "note": "nothing charged"}
    record["state"] = "refunded"
    return {"refunded": True, "amount": record["amount"]}


def create_shipment(body: dict[str, Any], shipments: Records) -> dict[str, Any]:
    if not str(body.get("address") or "").strip():
        raise Refused(f"no shipping address for order {body['order_id']}")
    shipments[body["order_id"]] = {"address": body["address"], "state": "created"}
    return {"shipment_id": f"shp-{body['order_id']}", "payment_id": body.get("payment_id")}


def cancel_shipment(body: dict[str, Any], shipments: Records) -> dict[str, Any]:
    record = shipments.get(body["order_id"])
    if record is None:
        return {"cancelled": False, "note": "no shipment"}
    record["state"] = "cancelled"
    return {"cancelled": True}


Handler = Callable[[dict[str, Any], Records], dict[str, Any]]
HANDLERS: dict[str, tuple[str, Handler]] = {  # command -> (service, handler)
    "InventoryService.ReserveItems": ("inventory", reserve_items),
    "InventoryService.ReleaseItems": ("inventory", release_items),
    "PaymentService.ChargePayment": ("payment", charge_payment),
    "PaymentService.RefundPayment": ("payment", refund_payment),
    "ShippingService.CreateShipment": ("shipping", create_shipment),
    "ShippingService.CancelShipment": ("shipping", cancel_shipment),
}


# -- the journal and the idempotency guard ----------------------------------------------------


class Journal:
    """Every command received, one JSON line each; the replies given, by idempotency key."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / "journal.jsonl"
        self.lock = threading.Lock()
        self.replies: dict[str, dict[str, Any]] = {}
        self.records: dict[str, Records] = {service: {} for service in QUEUES}
        if self.path.exists():  # a restart: the replies given and the services' records again
            for line in self.path.read_text("utf-8").splitlines():
                entry = json.loads(line)
                if entry["outcome"] == "done":
                    service, handler = HANDLERS[entry["command"]]
                    handler(entry["body"], self.records[service])
                if entry["outcome"] in ("done", "refused"):
                    self.replies[entry["key"]] = entry["reply"]

    def handle(self, command: str, key: str, body: dict[str, Any], reply: dict[str, Any]) -> dict[str, Any]:
        """Act on a command once per key; the reply to send. Raises when the handler raises
        (nothing is recorded as done: the message comes back)."""
        with self.lock:
            if key in self.replies:
                self.write(command, key, body, "duplicate", self.replies[key])
                return self.replies[key]
            service, handler = HANDLERS[command]
            try:
                if command == "PaymentService.RefundPayment" and FAIL_REFUND.exists():
                    raise RuntimeError(f"refund handler is broken ({FAIL_REFUND} exists)")
                reply["result"] = handler(body, self.records[service])
                outcome = "done"
            except Refused as refused:
                reply["type"], reply["error"] = "SagaStepFailed", str(refused)
                outcome = "refused"
            except Exception as exc:
                self.write(command, key, body, "raised", None, error=str(exc))
                raise
            self.replies[key] = reply
            self.write(command, key, body, outcome, reply)
            return reply

    def write(self, command: str, key: str, body: Any, outcome: str, reply: Any, error: str | None = None) -> None:
        entry = {
            "at": datetime.now(UTC).isoformat(),
            "key": key,
            "command": command,
            "outcome": outcome,
            "body": body,
            "reply": reply,
            "error": error,
        }
        with self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")
            out.flush()
            os.fsync(out.fileno())


# -- consuming the queues ---------------------------------------------------------------------


def attribute(message: dict[str, Any], name: str) -> str | None:
    value = message.get("MessageAttributes", {}).get(name, {}).get("StringValue")
    return str(value) if value is not None else None


def serve_one(sqs: Any, journal: Journal, queue_url: str, message: dict[str, Any]) -> None:
    """Handle one command message; delete it once answered. A handler that raises leaves it
    in the queue (SQS delivers it again, then dead-letters it)."""
    command, key, reply_to = (attribute(message, n) for n in ("command", "idempotency_key", "reply_to"))
    saga_id, step_name, phase = (attribute(message, n) for n in ("saga_id", "step_name", "phase"))
    if not (command and key and reply_to and saga_id and step_name):
        log.error("not a saga command (attributes missing), deleted: %s", message.get("MessageId"))
        sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        return
    compensation = phase == "compensation" or key.endswith(":compensation")
    reply: dict[str, Any] = {
        "type": "SagaCompensationCompleted" if compensation else "SagaStepCompleted",
        "saga_id": saga_id,
        "step_name": step_name,
        "idempotency_key": key,
    }
    if command not in HANDLERS:
        reply = {**reply, "type": "SagaStepFailed", "error": f"unknown command {command}"}
    else:
        try:
            reply = journal.handle(command, key, json.loads(message["Body"]), reply)
        except Exception as exc:
            log.error("%s %s: raised, message left for redelivery: %s", command, key, exc)
            return
    sqs.send_message(QueueUrl=reply_to, MessageBody=json.dumps(reply))
    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    log.info("%s %s: %s", command, key, reply["type"])


def consume(sqs: Any, journal: Journal, queue_name: str, stopping: threading.Event) -> None:
    queue_url = None
    while not stopping.is_set():
        try:
            queue_url = queue_url or sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
            found = sqs.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=POLL_SECONDS,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            for message in found:
                serve_one(sqs, journal, queue_url, message)
        except Exception:
            log.exception("%s: receive failed; retrying", queue_name)
            stopping.wait(POLL_SECONDS)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sqs_service %(message)s")
    journal = Journal(STATE_DIR)
    sqs = boto3.client("sqs", region_name=os.environ.get("AWS_REGION") or None)  # else AWS_DEFAULT_REGION, the profile
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    threads = [
        threading.Thread(target=consume, args=(sqs, journal, name, stopping), name=service, daemon=True)
        for service, name in QUEUES.items()
    ]
    for thread in threads:
        thread.start()
    log.info("consuming %s; journal %s", ", ".join(QUEUES.values()), journal.path)
    try:
        while not stopping.is_set():
            stopping.wait(0.5)
    except KeyboardInterrupt:
        stopping.set()
    for thread in threads:
        thread.join(POLL_SECONDS + 5)


if __name__ == "__main__":
    main()
