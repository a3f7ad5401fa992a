"""sqs transport against moto in server mode on 127.0.0.1, with a participant thread that
consumes the command queue and answers on the reply queue (DESIGN 5)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from sagactl.config import AwsSettings
from sagactl.models import Phase
from sagactl.transports.base import Request, Status
from sagactl.transports.sqs import SqsTransport
from tests.support.sqs import Queue, Sqs

Answer = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any] | None]


def request(saga_id: str = "s-1", step: str = "charge", phase: Phase = Phase.ACTION, timeout: float = 5.0) -> Request:
    return Request(
        saga_id=saga_id,
        step_name=step,
        phase=phase,
        idempotency_key=f"{saga_id}:{step}:{phase.value}",
        spec={"command": "PaymentService.Charge" if phase is Phase.ACTION else "PaymentService.Refund"},
        body={"saga_id": saga_id, "amount": 12.5, "note": "café"},
        timeout=timeout,
    )


class Participant:
    """Consumes a command queue on a thread; ``answer(body, attributes)`` -> the reply body
    (sent to the reply_to queue) or None (no reply). Records every command it saw."""

    def __init__(self, sqs: Sqs, queue: Queue, answer: Answer) -> None:
        self.sqs = sqs
        self.queue = queue
        self.answer = answer
        self.seen: list[dict[str, Any]] = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        client = self.sqs.client
        while not self.stopping.is_set():
            messages = client.receive_message(
                QueueUrl=self.queue.url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            for message in messages:
                self.seen.append(message)
                attributes = {k: v.get("StringValue") for k, v in message.get("MessageAttributes", {}).items()}
                reply = self.answer(json.loads(message["Body"]), attributes)
                if reply is not None:
                    client.send_message(QueueUrl=attributes["reply_to"], MessageBody=json.dumps(reply))
                client.delete_message(QueueUrl=self.queue.url, ReceiptHandle=message["ReceiptHandle"])

    def __enter__(self) -> Participant:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)


def completed(body: dict[str, Any], attributes: dict[str, Any]) -> dict[str, Any]:
    kind = "SagaCompensationCompleted" if attributes["phase"] == "compensation" else "SagaStepCompleted"
    return {
        "type": kind,
        "saga_id": attributes["saga_id"],
        "step_name": attributes["step_name"],
        "result": {"payment_id": "p-77", "amount": body["amount"]},
    }


@pytest.fixture
def queues(sqs: Sqs) -> tuple[Queue, Queue]:
    return sqs.queue("commands"), sqs.queue("replies")


@pytest.fixture
def transport(queues: tuple[Queue, Queue], aws_env: Mapping[str, str]) -> Iterator[SqsTransport]:
    commands, replies = queues
    sqs_transport = SqsTransport("payment", {"queue": commands.name, "reply_queue": replies.name}, dict(os.environ))
    try:
        yield sqs_transport
    finally:
        sqs_transport.close()


def test_command_shape_and_completed_reply(sqs: Sqs, queues: tuple[Queue, Queue], transport: SqsTransport) -> None:
    commands, replies = queues
    with Participant(sqs, commands, completed) as participant:
        reply = transport.call(request())
    assert reply.status is Status.OK and reply.result == {"payment_id": "p-77", "amount": 12.5}
    (command,) = participant.seen
    assert json.loads(command["Body"]) == {"saga_id": "s-1", "amount": 12.5, "note": "café"}
    assert {k: v["StringValue"] for k, v in command["MessageAttributes"].items()} == {
        "saga_id": "s-1",
        "step_name": "charge",
        "command": "PaymentService.Charge",
        "idempotency_key": "s-1:charge:action",
        "reply_to": replies.url,
        "phase": "action",
    }
    assert sqs.counts(replies) == (0, 0)  # our reply was consumed


def test_failed_reply_is_a_refusal(sqs: Sqs, queues: tuple[Queue, Queue], transport: SqsTransport) -> None:
    def refuse(body: dict[str, Any], attributes: dict[str, Any]) -> dict[str, Any]:
        return {"type": "SagaStepFailed", "saga_id": "s-1", "step_name": "charge", "error": {"code": "card_declined"}}

    with Participant(sqs, queues[0], refuse):
        reply = transport.call(request())
    assert reply.status is Status.REFUSED and reply.delivered
    assert reply.error == f'sqs {queues[0].name}: {{"code":"card_declined"}}'


def test_compensation_completed(sqs: Sqs, queues: tuple[Queue, Queue], transport: SqsTransport) -> None:
    with Participant(sqs, queues[0], completed):
        reply = transport.call(request(phase=Phase.COMPENSATION))
    assert reply.status is Status.OK


def test_no_reply_is_transient_and_delivered(sqs: Sqs, queues: tuple[Queue, Queue], transport: SqsTransport) -> None:
    started = time.monotonic()
    reply = transport.call(request(timeout=1.0))
    took = time.monotonic() - started
    assert reply.status is Status.TRANSIENT and reply.delivered  # sent; outcome unknown
    assert reply.error == f"sqs {queues[0].name}: no reply on {queues[1].name} within 1s"
    assert 1.0 <= took < 10.0  # 10x the timeout on a loaded machine; half of one 20 s long poll
    assert sqs.counts(queues[0]) == (1, 0)  # the command is there for the participant


def test_other_sagas_replies_are_never_lost(sqs: Sqs, queues: tuple[Queue, Queue], transport: SqsTransport) -> None:
    commands, replies = queues
    foreign = [
        {"type": "SagaStepCompleted", "saga_id": "s-2", "step_name": "charge", "result": 1},
        {"type": "SagaStepCompleted", "saga_id": "s-1", "step_name": "ship", "result": 2},
        {"type": "SagaCompensationCompleted", "saga_id": "s-3", "step_name": "charge"},
        {"something": "not a reply"},
    ]
    sqs.send(replies, [json.dumps(f) for f in foreign])
    stale = {"type": "SagaStepCompleted", "saga_id": "s-1", "step_name": "charge", "result": "late"}
    sqs.send(replies, [json.dumps(stale)])  # the action's late answer: stale while compensating

    def slow_completed(body: dict[str, Any], attributes: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.3)  # let the transport meet the foreign replies first
        return completed(body, attributes)

    with Participant(sqs, commands, slow_completed):
        reply = transport.call(request(phase=Phase.COMPENSATION))
    assert reply.status is Status.OK
    left = sqs.receive_all(replies)
    # every foreign reply is visible again; the stale one and ours were deleted
    assert sorted((json.loads(m["Body"]) for m in left), key=json.dumps) == sorted(foreign, key=json.dumps)


@pytest.mark.parametrize("carried_in", ["body", "attribute"])
@pytest.mark.slow
def test_a_reply_with_another_idempotency_key_is_stale_deleted_and_never_the_answer(
    carried_in: str, sqs: Sqs, queues: tuple[Queue, Queue], transport: SqsTransport
) -> None:
    """Same saga, step and reply type, but the key of another call (e.g. a saga ID reused
    after a restore): it answers nobody waiting now, so it is deleted and the real reply is
    awaited."""
    commands, replies = queues
    stale_body: dict[str, Any] = {
        "type": "SagaStepCompleted",
        "saga_id": "s-1",
        "step_name": "charge",
        "result": {"payment_id": "from-another-call"},
    }
    attributes: Callable[[int], dict[str, Any]] | None = None
    if carried_in == "body":
        stale_body["idempotency_key"] = "s-0:charge:action"
    else:

        def attributes(index: int) -> dict[str, Any]:
            return {"idempotency_key": {"DataType": "String", "StringValue": "s-0:charge:action"}}

    sqs.send(replies, [json.dumps(stale_body)], attributes=attributes)

    def slow_completed(body: dict[str, Any], attributes: dict[str, Any]) -> dict[str, Any]:
        time.sleep(0.3)  # let the transport meet the stale reply first
        return {**completed(body, attributes), "idempotency_key": attributes["idempotency_key"]}

    with Participant(sqs, commands, slow_completed) as participant:
        reply = transport.call(request())

    assert (reply.status, reply.result) == (Status.OK, {"payment_id": "p-77", "amount": 12.5})
    assert len(participant.seen) == 1
    assert sqs.counts(replies) == (0, 0)  # the stale reply was deleted, not handed back


@pytest.mark.slow
def test_fifo_group_is_the_saga_and_each_attempt_is_a_new_message(sqs: Sqs, aws_env: Mapping[str, str]) -> None:
    commands = sqs.queue("commands", fifo=True)
    replies = sqs.queue("replies")
    transport = SqsTransport("payment", {"queue": commands.url, "reply_queue": replies.url}, dict(os.environ))
    try:
        first = transport.call(request(timeout=1.0))
        second = transport.call(request(timeout=1.0))  # a retry: same key, next attempt
    finally:
        transport.close()
    assert first.status is Status.TRANSIENT and second.status is Status.TRANSIENT
    sent = sqs.take_all(commands)
    assert [m["Attributes"]["MessageGroupId"] for m in sent] == ["s-1", "s-1"]
    assert [m["Attributes"]["MessageDeduplicationId"] for m in sent] == ["s-1:charge:action:1", "s-1:charge:action:2"]


def test_missing_queue_is_refused_undelivered(aws_env: Mapping[str, str], sqs: Sqs) -> None:
    replies = sqs.queue("replies")
    transport = SqsTransport("payment", {"queue": "no-such-queue", "reply_queue": replies.name}, dict(os.environ))
    reply = transport.call(request())
    assert reply.status is Status.REFUSED and not reply.delivered
    assert "SQS queue 'no-such-queue' does not exist" in (reply.error or "")


@pytest.mark.parametrize("which", ["queue", "reply_queue"])
@pytest.mark.slow
def test_a_queue_arn_in_another_region_is_refused_undelivered(
    sqs: Sqs, sqs_elsewhere: Sqs, queues: tuple[Queue, Queue], which: str
) -> None:
    """The endpoint names its queue (or reply queue) by an eu-west-1 ARN while SQS is reached
    in us-east-1: nothing goes to the us-east-1 queue of the same name; the step is refused,
    never delivered, and says why. With the endpoint's region set to eu-west-1 it is sent there."""
    commands, replies = queues
    there = sqs_elsewhere.queue(name=(commands if which == "queue" else replies).name)
    config = {"queue": commands.name, "reply_queue": replies.name, which: there.arn}
    transport = SqsTransport("payment", config, dict(os.environ))
    try:
        reply = transport.call(request())
    finally:
        transport.close()
    assert reply.status is Status.REFUSED and not reply.delivered
    assert reply.error == (
        f"sqs {config['queue']}: queue {there.arn} is in region eu-west-1, but SQS is reached in region"
        " us-east-1; pass --region eu-west-1 (or set the endpoint's region) to use that queue"
    )
    assert sqs.counts(commands) == (0, 0)
    if which == "queue":
        there_replies = sqs_elsewhere.queue("replies")
        config = {"queue": there.arn, "reply_queue": there_replies.name, "region": "eu-west-1"}
        sent = SqsTransport("payment", config, dict(os.environ))
        try:
            assert sent.call(request(timeout=1.0)).status is Status.TRANSIENT  # delivered, nobody answers
        finally:
            sent.close()
        assert sqs_elsewhere.counts(there) == (1, 0)
        assert sqs.counts(commands) == (0, 0)


def test_unreachable_sqs_is_transient_undelivered(aws_env: Mapping[str, str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "AWS_MAX_ATTEMPTS": "1"}
    aws = AwsSettings(endpoint_url=f"http://127.0.0.1:{port}")
    transport = SqsTransport("payment", {"queue": "commands", "reply_queue": "replies"}, env, aws)
    reply = transport.call(request())
    assert reply.status is Status.TRANSIENT and not reply.delivered
    assert "cannot reach SQS" in (reply.error or "")


def test_endpoint_config_beats_the_resolved_settings(sqs: Sqs, queues: tuple[Queue, Queue]) -> None:
    config = {
        "queue": queues[0].name,
        "reply_queue": queues[1].name,
        "endpoint_url": sqs.endpoint,
        "region": "us-east-1",
    }
    settings = AwsSettings(region="eu-west-1", profile="ops", endpoint_url="http://127.0.0.1:9")
    transport = SqsTransport("payment", config, dict(os.environ), settings)
    assert transport.aws == AwsSettings(region="us-east-1", profile="ops", endpoint_url=sqs.endpoint)


SAGA = """
saga: PaySqs
endpoints:
  payment: {{type: sqs, queue: {commands}, reply_queue: {replies}}}
defaults:
  timeout: 5s
  retry: {{max_attempts: 1}}
steps:
  - name: reserve
    endpoint: payment
    action: {{command: Stock.Reserve}}
    compensation: {{command: Stock.Release}}
  - name: charge
    endpoint: payment
    action: {{command: Payment.Charge}}
    compensation: {{command: Payment.Refund}}
"""


@pytest.mark.slow
def test_a_saga_over_sqs_end_to_end(sqs: Sqs, queues: tuple[Queue, Queue], tmp_path: Path) -> None:
    """`sagactl run` with both steps on SQS: charge is declined, reserve is compensated."""
    commands, replies = queues
    definition = tmp_path / "pay.yaml"
    definition.write_text(SAGA.format(commands=commands.name, replies=replies.name))

    def participant(body: dict[str, Any], attributes: dict[str, Any]) -> dict[str, Any]:
        if attributes["command"] == "Payment.Charge":
            return {
                "type": "SagaStepFailed",
                "saga_id": attributes["saga_id"],
                "step_name": "charge",
                "error": "declined",
            }
        return completed({"amount": 1}, attributes)

    env = {**os.environ, "SAGACTL_DSN": f"sqlite:///{tmp_path / 'log.db'}"}
    with Participant(sqs, commands, participant) as seen:
        done = subprocess.run(
            [sys.executable, "-m", "sagactl", "run", str(definition), "--input", '{"order": 7}', "-o", "json"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    assert done.returncode == 1, done.stderr
    saga = json.loads(done.stdout)
    assert saga["state"] == "failed"
    assert [(s["name"], s["status"]) for s in saga["steps"]] == [("reserve", "compensated"), ("charge", "failed")]
    assert saga["steps"][0]["result"] == {"payment_id": "p-77", "amount": 1}
    commands_seen = [m["MessageAttributes"]["command"]["StringValue"] for m in seen.seen]
    assert commands_seen == ["Stock.Reserve", "Payment.Charge", "Stock.Release"]


@pytest.mark.parametrize("where", ["config", "context", "flags"])
@pytest.mark.slow
def test_aws_settings_from_sagactl_yaml_or_flags_reach_the_sqs_transport(
    sqs: Sqs, queues: tuple[Queue, Queue], tmp_path: Path, where: str
) -> None:
    """No AWS_ENDPOINT_URL* and no region in the environment: the endpoint and region come only
    from sagactl.yaml (aws:, or the chosen context's aws:) or from --endpoint-url/--region, and
    the saga's sqs steps reach moto with them (DESIGN section 7, precedence flag > env > file)."""
    commands, replies = queues
    definition = tmp_path / "pay.yaml"
    definition.write_text(SAGA.format(commands=commands.name, replies=replies.name))
    aws = f"{{endpoint_url: '{sqs.endpoint}', region: us-east-1}}"
    config = {
        "config": f"aws: {aws}\n",
        "context": f"current_context: local\ncontexts:\n  local:\n    aws: {aws}\n",
        "flags": "aws: {endpoint_url: 'http://127.0.0.1:9', region: eu-west-3}\n",  # the flags win over it
    }[where]
    (tmp_path / "sagactl.yaml").write_text(config)
    unset = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION")
    env = {k: v for k, v in os.environ.items() if not k.startswith(unset)}
    env["SAGACTL_DSN"] = f"sqlite:///{tmp_path / 'log.db'}"
    flags = ["--endpoint-url", sqs.endpoint, "--region", "us-east-1"] if where == "flags" else []
    with Participant(sqs, commands, completed) as seen:
        done = subprocess.run(
            [sys.executable, "-m", "sagactl", "run", str(definition), "--input", '{"amount": 3}', "-o", "json", *flags],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "completed"
    assert [m["MessageAttributes"]["command"]["StringValue"] for m in seen.seen] == ["Stock.Reserve", "Payment.Charge"]
