"""Create the queues of order-sqs.yaml (no sagactl needed): each service's command queue with
a dead-letter queue ``<name>-dlq`` and a redrive policy, and the saga's reply queue (no redrive
policy: sagactl workers delete each reply once applied). Safe to run again: it sets the
attributes of queues that exist. Prints each queue's URL.

    python sample-configs/participants/make_queues.py [--max-receive-count 3] [--visibility-timeout 30]

Queue names come from the environment as in order-sqs.yaml (INVENTORY_QUEUE, PAYMENT_QUEUE,
SHIPPING_QUEUE, ORDER_REPLY_QUEUE, with the same defaults); SQS from the standard AWS settings
(AWS_REGION, AWS_ENDPOINT_URL_SQS=http://localhost:4566 for LocalStack or moto, credentials).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

import boto3


def queue_names() -> tuple[list[str], str]:
    commands = [
        os.environ.get("INVENTORY_QUEUE") or "inventory-commands",
        os.environ.get("PAYMENT_QUEUE") or "payment-commands",
        os.environ.get("SHIPPING_QUEUE") or "shipping-commands",
    ]
    return commands, os.environ.get("ORDER_REPLY_QUEUE") or "order-saga-replies"


def ensure(sqs: Any, name: str, attributes: dict[str, str]) -> str:
    """The queue's URL, created or updated to ``attributes``."""
    url = str(sqs.create_queue(QueueName=name)["QueueUrl"])
    if attributes:
        sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    return url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--max-receive-count", type=int, default=3, help="deliveries before SQS dead-letters a command (default 3)"
    )
    parser.add_argument(
        "--visibility-timeout",
        type=int,
        default=30,
        help="seconds a received command stays hidden before SQS delivers it again (default 30)",
    )
    args = parser.parse_args()
    sqs = boto3.client("sqs", region_name=os.environ.get("AWS_REGION") or None)  # else AWS_DEFAULT_REGION, the profile
    commands, replies = queue_names()
    for name in commands:
        dlq_url = ensure(sqs, f"{name}-dlq", {})
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(args.max_receive_count)})
        url = ensure(sqs, name, {"RedrivePolicy": policy, "VisibilityTimeout": str(args.visibility_timeout)})
        print(f"{name}\t{url}\tdead letters -> {name}-dlq after {args.max_receive_count} receives")
    print(f"{replies}\t{ensure(sqs, replies, {})}\treplies")


if __name__ == "__main__":
    main()
