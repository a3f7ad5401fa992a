"""A shipping service over SQS for the worker scale tests: the sample service's shipping part
(sample-configs/participants/sqs_service.py: CreateShipment refused without an address,
CancelShipment, one action per idempotency key, a journal), answering in batches so that
hundreds of sagas cost few calls to moto (a receive of up to 10 commands, one batch send of
the replies per reply queue, one batch delete).

    python -m tests.support.sqs_shop QUEUE_NAME JOURNAL

SQS settings from the standard AWS variables (AWS_ENDPOINT_URL_SQS, AWS_REGION, credentials).
The journal has one JSON line per command received, as the sample's: ``{at, key, command,
outcome}`` with outcome ``done``, ``refused`` or ``duplicate``. SIGTERM stops it within 2 s.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from typing import Any

import boto3

WAIT = 1  # long poll, seconds (also how long stopping takes)


def answer(command: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(outcome, reply fields) for a command the service has not acted on yet."""
    order = body.get("order_id")
    if command == "ShippingService.CreateShipment":
        if not str(body.get("address") or "").strip():
            return "refused", {"type": "SagaStepFailed", "error": f"no shipping address for order {order}"}
        return "done", {"type": "SagaStepCompleted", "result": {"shipment_id": f"shp-{order}"}}
    if command == "ShippingService.CancelShipment":
        return "done", {"type": "SagaCompensationCompleted", "result": {"cancelled": True}}
    return "refused", {"type": "SagaStepFailed", "error": f"unknown command {command}"}


def serve(queue_name: str, journal_path: str, stopping: threading.Event) -> None:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
    given: dict[str, dict[str, Any]] = {}  # key -> the reply given (the idempotency guard)
    with open(journal_path, "a", encoding="utf-8") as journal:
        while not stopping.is_set():
            messages = sqs.receive_message(
                QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=WAIT, MessageAttributeNames=["All"]
            ).get("Messages", [])
            replies: dict[str, list[dict[str, Any]]] = {}
            for message in messages:
                attributes = {k: v.get("StringValue") for k, v in message.get("MessageAttributes", {}).items()}
                key, command = str(attributes.get("idempotency_key")), str(attributes.get("command"))
                if key in given:
                    outcome, reply = "duplicate", given[key]
                else:
                    outcome, fields = answer(command, json.loads(message["Body"]))
                    reply = {
                        "saga_id": attributes.get("saga_id"),
                        "step_name": attributes.get("step_name"),
                        "idempotency_key": key,
                        **fields,
                    }
                    given[key] = reply
                entry = {"at": time.time(), "key": key, "command": command, "outcome": outcome}
                journal.write(json.dumps(entry) + "\n")
                replies.setdefault(str(attributes.get("reply_to")), []).append(reply)
            journal.flush()
            for reply_to, bodies in replies.items():
                for start in range(0, len(bodies), 10):
                    entries: Any = [
                        {"Id": str(n), "MessageBody": json.dumps(body)}
                        for n, body in enumerate(bodies[start : start + 10])
                    ]
                    sqs.send_message_batch(QueueUrl=reply_to, Entries=entries)
            if messages:  # answered: now they may go
                handles: Any = [{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(messages)]
                sqs.delete_message_batch(QueueUrl=url, Entries=handles)


def main() -> None:
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    serve(sys.argv[1], sys.argv[2], stopping)


if __name__ == "__main__":
    main()
