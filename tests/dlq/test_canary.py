"""Canary redrive against moto in server mode, with a real saga log (SQLite and PostgreSQL).

Six sagas wait in `compensating` at charge; their refund commands sit in the DLQ. A stand-in
for the payment participant and its worker consumes the source queue in a thread: fixed, it
marks each saga's charge compensated in the saga log and deletes the message; broken, it
never deletes, so SQS dead-letters the message again on its next receive (maxReceiveCount 1);
holding, it keeps messages in flight without answering. The canary's poll interval is short
and, where the wait must run out, its clock is a fake one.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.config import resolve_settings
from sagactl.dlq.canary import CanaryPlan, Verdict
from sagactl.dlq.outcomes import RedriveRequest
from sagactl.errors import ExitCode
from sagactl.models import SagaState, StepStatus, Transition, utcnow
from sagactl.ops.dlq import redrive_dlq
from sagactl.store import open_store
from tests.support.clock import FakeClock
from tests.support.sagas import saga
from tests.support.sqs import Queue, Sqs

SAGAS = [f"c-{n}" for n in range(6)]
runner = CliRunner()


class Participant:
    """Consumes the source queue until stopped; ``mode``: fixed, broken or holding."""

    def __init__(self, sqs: Sqs, queue: Queue, dsn: str, mode: str) -> None:
        self.sqs, self.queue, self.dsn, self.mode = sqs, queue, dsn, mode
        self.done: list[str] = []  # sagas whose refund it completed, in order
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, name=f"participant-{mode}")

    def run(self) -> None:
        store = open_store(self.dsn)
        try:
            while not self.stop.is_set():
                hold = 0 if self.mode == "broken" else 300
                batch = self.sqs.client.receive_message(
                    QueueUrl=self.queue.url,
                    MaxNumberOfMessages=10,
                    VisibilityTimeout=hold,
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
                for message in batch:
                    if self.mode == "fixed":
                        self.refund(store, message["MessageAttributes"]["saga_id"]["StringValue"])
                        self.sqs.client.delete_message(QueueUrl=self.queue.url, ReceiptHandle=message["ReceiptHandle"])
                time.sleep(0.02)
        finally:
            store.close()

    def refund(self, store: Any, saga_id: str) -> None:
        """What the worker does with the participant's SagaCompensationCompleted reply."""
        record = store.get(saga_id)
        now = utcnow()
        assert store.acquire_lease(saga_id, "worker", now + timedelta(seconds=30), now) is None
        record.steps[1].status = StepStatus.COMPENSATED
        record.lease_owner = record.lease_expires_at = None
        change = Transition(saga_id, "charge", "compensating", "compensated", now)
        store.save(record, [change], owner="worker", steps=[1])
        self.done.append(saga_id)


@pytest.fixture
def incident(sqs: Sqs, store_dsn: str) -> tuple[Queue, Queue]:
    """(DLQ, source queue): one refund command per saga in the DLQ; the sagas compensating."""
    return open_incident(sqs, store_dsn)


def open_incident(sqs: Sqs, dsn: str, more: Callable[[int], dict[str, Any]] | None = None) -> tuple[Queue, Queue]:
    """``incident`` on the saga log ``dsn``; ``more``: further attributes of message ``i``."""
    dlq = sqs.queue("dlq")
    policy = json.dumps({"deadLetterTargetArn": dlq.arn, "maxReceiveCount": 1})
    url = sqs.client.create_queue(QueueName=f"src-{dlq.name[4:]}", Attributes={"RedrivePolicy": policy})["QueueUrl"]
    source = Queue(url=url, name=url.rsplit("/", 1)[1], arn="")
    sqs.send(
        dlq,
        [json.dumps({"saga_id": s, "step_name": "charge"}) for s in SAGAS],
        attributes=lambda i: {
            "saga_id": {"DataType": "String", "StringValue": SAGAS[i]},
            "step_name": {"DataType": "String", "StringValue": "charge"},
            **(more(i) if more else {}),
        },
    )
    store = open_store(dsn)
    try:
        for saga_id in SAGAS:
            store.create(saga(saga_id, state=SagaState.COMPENSATING, step=1), [])
    finally:
        store.close()
    return dlq, source


@pytest.fixture
def participant(
    request: pytest.FixtureRequest, sqs: Sqs, incident: tuple[Queue, Queue], store_dsn: str
) -> Iterator[Participant]:
    worker = Participant(sqs, incident[1], store_dsn, request.param)
    worker.thread.start()
    try:
        yield worker
    finally:
        worker.stop.set()
        worker.thread.join()


def redrive_with_canary(dlq: Queue, dsn: str, plan: CanaryPlan, clock: Any = None) -> Any:
    request = RedriveRequest(dlq=dlq.url, wait=0, hold=30)
    return redrive_dlq(resolve_settings(dsn=dsn), request, canary=plan, clock=clock)


def in_dlq(sqs: Sqs, dlq: Queue) -> dict[str, int]:
    """saga_id -> the redrive counter of its message, for every message in the DLQ now."""
    found = sqs.receive_all(dlq, hold=1)
    return {
        m["MessageAttributes"]["saga_id"]["StringValue"]: int(
            m["MessageAttributes"].get("sagactl_redrive_count", {}).get("StringValue", 0)
        )
        for m in found
    }


@pytest.mark.parametrize("participant", ["fixed"], indirect=True)
@pytest.mark.slow
def test_canary_go_moves_the_rest_once_the_canary_sagas_got_on(
    sqs: Sqs, incident: tuple[Queue, Queue], participant: Participant, store_dsn: str
) -> None:
    dlq, _ = incident
    result = redrive_with_canary(dlq, store_dsn, CanaryPlan(size=2, wait=60, poll=0.05))
    assert result.exit_code == ExitCode.OK and result.stopped is None
    canary = result.canary.to_dict()
    assert canary["verdict"] == Verdict.GO and canary["size"] == 2
    canaries = [m["saga_id"] for m in canary["messages"]]
    assert len(canaries) == 2 and all(m["progress"] == "done" for m in canary["messages"])
    assert result.moved == 6 and sqs.counts(dlq) == (0, 0)
    while len(participant.done) < 6:  # the rest are refunded too (no deadline: CI may be slow)
        time.sleep(0.05)
    assert sorted(participant.done[:2]) == sorted(canaries)  # nothing else left before the verdict
    assert json.loads(json.dumps(result.to_dict()))["canary"]["verdict"] == "go"


@pytest.mark.parametrize("participant", ["broken"], indirect=True)
def test_canary_stop_on_a_still_broken_participant_leaves_the_rest_in_the_dlq(
    sqs: Sqs, incident: tuple[Queue, Queue], participant: Participant, store_dsn: str
) -> None:
    dlq, _ = incident
    result = redrive_with_canary(dlq, store_dsn, CanaryPlan(size=2, wait=600, poll=0.05))
    assert result.exit_code == ExitCode.ATTENTION
    canary = result.canary.to_dict()
    assert canary["verdict"] == Verdict.STOP and "canary messages came back to the DLQ" in canary["reason"]
    assert result.moved == 2 and result.stopped.endswith("the rest stays in the DLQ")
    canaries = {m["saga_id"] for m in canary["messages"]}
    while sum(sqs.counts(dlq)) < 6:  # the second canary, if it was not back yet, comes back too
        time.sleep(0.05)
    counters = in_dlq(sqs, dlq)
    assert set(counters) == set(SAGAS)  # no message lost
    assert {s for s, n in counters.items() if n == 1} == canaries  # the canaries went and came back
    assert {s for s, n in counters.items() if n == 0} == set(SAGAS) - canaries  # the rest never left
    assert participant.done == []


@pytest.mark.parametrize("participant", ["holding"], indirect=True)
@pytest.mark.slow
def test_canary_stop_when_the_sagas_do_not_get_on_within_the_wait(
    sqs: Sqs, incident: tuple[Queue, Queue], participant: Participant, store_dsn: str
) -> None:
    dlq, source = incident
    clock = FakeClock()
    result = redrive_with_canary(dlq, store_dsn, CanaryPlan(size=2, wait=120, poll=5), clock)
    assert result.exit_code == ExitCode.ATTENTION
    canary = result.canary.to_dict()
    assert canary["verdict"] == Verdict.STOP
    assert canary["reason"] == "2 of 2 canary sagas did not get on within 120s"
    assert canary["waited_seconds"] == 120 and clock.sleeps == [5.0] * 24
    assert [m["progress"] for m in canary["messages"]] == ["waiting", "waiting"]
    assert sqs.counts(dlq)[0] + sum(sqs.counts(dlq)[1:]) == 4  # the rest never left
    while sum(sqs.counts(source)) < 2:  # the canaries are in their source queue (held in flight)
        time.sleep(0.05)
    assert sum(sqs.counts(source)) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--canary", "2", "--dry-run"], "--canary moves messages and watches their sagas: it cannot be a --dry-run"),
        (["--canary", "2", "--native"], "--native moves every message server-side and cannot take --canary"),
        (["--canary", "0"], "--canary must be 1 to 1000, not 0"),
        (["--canary", "2", "--canary-wait", "soon"], "--canary-wait"),
    ],
)
@pytest.mark.slow
def test_canary_mistakes_exit_2(sqs: Sqs, store_dsn: str, args: list[str], message: str) -> None:
    dlq, _ = sqs.dlq_pair()
    result = runner.invoke(app, ["redrive", "--dlq", dlq.name, "--dsn", store_dsn, *args])
    assert (result.exit_code, result.stdout) == (2, ""), result.stderr
    assert result.stderr.startswith("sagactl: error: ") and message in result.stderr


@pytest.mark.slow
def test_canary_through_the_cli_on_an_empty_dlq(sqs: Sqs, store_dsn: str) -> None:
    dlq, _ = sqs.dlq_pair()
    result = runner.invoke(
        app, ["redrive", "--dlq", dlq.name, "--dsn", store_dsn, "--canary", "3", "-o", "json", "--wait-time", "0"]
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["moved"] == 0 and data["canary"]["verdict"] == "go" and data["canary"]["reason"] == "no message to move"
    plain = runner.invoke(app, ["redrive", "--dlq", dlq.name, "-o", "json", "--wait-time", "0"])
    assert json.loads(plain.stdout)["canary"] is None
