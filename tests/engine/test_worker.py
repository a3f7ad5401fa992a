"""Workers (in process: the Worker with the CLI's own wiring) on both stores: detached sagas,
SQS replies that free the worker's slots, late replies, unknown ones, stopping within the grace
period (a real `sagactl worker` process), dead holders."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sagactl.config import Settings
from sagactl.definitions.validation import check_text
from sagactl.engine.control import Engine
from sagactl.engine.worker import Worker, WorkerOptions
from sagactl.models import SagaState, StepStatus
from sagactl.ops import make_engine
from sagactl.ops.worker import build_worker
from sagactl.store import Store, open_store
from tests.support.participants import Participants, gate
from tests.support.sqs import Queue, Sqs, SqsProxy
from tests.transports.test_sqs import Participant

HTTP_SAGA = """
saga: Http
endpoints:
  svc: {type: http, url: "${env.SVC_URL}"}
defaults: {timeout: 5s, retry: {max_attempts: 2, initial_backoff: 10ms, max_backoff: 20ms}}
steps:
  - {name: reserve, endpoint: svc, action: {path: /r}, compensation: {path: /r/undo}}
  - {name: charge, endpoint: svc, action: {path: /c}, compensation: {path: /c/undo}}
"""

SQS_SAGA = """
saga: Pay
endpoints:
  pay: {{type: sqs, queue: {commands}, reply_queue: {replies}}}
defaults:
  timeout: {timeout}
  retry: {{max_attempts: 2, initial_backoff: 10ms, max_backoff: 20ms}}
  compensation_retry: {{max_attempts: 2, initial_backoff: 10ms, max_backoff: 20ms}}
steps:
  - {{name: reserve, endpoint: pay, action: {{command: Stock.Reserve}}, compensation: {{command: Stock.Release}}}}
  - {{name: charge, endpoint: pay, action: {{command: Pay.Charge}}, compensation: {{command: Pay.Refund}}}}
"""


FAST = WorkerOptions(concurrency=1, poll=0.05, reply_wait=1)  # tests stop in a second


def definition(text: str) -> Any:
    report = check_text(text, "saga.yaml", ".")
    assert not report.errors, report.errors
    return report.definitions[0]


@contextmanager
def running(worker: Worker) -> Iterator[Worker]:
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()
        assert worker.join(30), "the worker did not stop"


def wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def states(store: Store, ids: list[str]) -> list[str]:
    return [s.state.value if (s := store.get(i)) else "missing" for i in ids]


def detach(store: Store, text: str, count: int, env: dict[str, str]) -> list[str]:
    engine = make_engine(store, Settings(), env=env)
    defn = definition(text)
    return [engine.start(defn, {"n": n, "amount": n}, detached=True).saga_id for n in range(count)]


def test_detached_sagas_are_driven_to_the_end(store_dsn: str, participants: Participants) -> None:
    env = {**os.environ, "SVC_URL": participants.url}
    store = open_store(store_dsn)
    ids = detach(store, HTTP_SAGA, 12, env)
    os.environ["SVC_URL"] = participants.url
    try:
        with running(build_worker(Settings(dsn=store_dsn), replace(FAST, concurrency=3))) as worker:
            wait_for(lambda: states(store, ids) == ["completed"] * 12)
            assert worker.metrics.claims.labels("due")._value.get() == 12
    finally:
        os.environ.pop("SVC_URL")
        store.close()
    keys = [call.key for call in participants.calls]
    assert len(keys) == 24 and len(set(keys)) == 24  # each step once, each with its own key


@pytest.fixture
def sqs_queues(sqs: Sqs) -> tuple[Queue, Queue]:
    return sqs.queue("commands"), sqs.queue("replies")


def answered(body: dict[str, Any], attributes: dict[str, Any]) -> dict[str, Any]:
    compensating = attributes["phase"] == "compensation"
    return {
        "type": "SagaCompensationCompleted" if compensating else "SagaStepCompleted",
        "saga_id": attributes["saga_id"],
        "step_name": attributes["step_name"],
        "idempotency_key": attributes["idempotency_key"],
        "result": {"command": attributes["command"]},
    }


@pytest.mark.slow
def test_sagas_waiting_for_replies_hold_no_slot(store_dsn: str, sqs: Sqs, sqs_queues: tuple[Queue, Queue]) -> None:
    """12 sagas over SQS with one driver thread: each waits for its replies put aside, so one
    thread moves them all; every command sent once per step."""
    commands, replies = sqs_queues
    text = SQS_SAGA.format(commands=commands.name, replies=replies.name, timeout="60s")
    store = open_store(store_dsn)
    ids = detach(store, text, 12, dict(os.environ))
    try:
        with (
            Participant(sqs, commands, answered) as participant,
            running(build_worker(Settings(dsn=store_dsn), FAST)) as worker,
        ):
            wait_for(lambda: states(store, ids) == ["completed"] * 12, timeout=180)  # liveness only
        assert worker.metrics.replies.labels("applied")._value.get() == 24
        assert len(participant.seen) == 24
        saga = store.get(ids[0])
        assert saga is not None and saga.steps[1].result == {"command": "Pay.Charge"}
        assert saga.lease_owner is None and saga.wake_at is None
        assert sqs.counts(replies) == (0, 0)  # every reply deleted once applied
    finally:
        store.close()


@pytest.mark.slow
def test_applied_replies_are_deleted_in_batches(
    store_dsn: str, sqs: Sqs, sqs_proxy: SqsProxy, sqs_queues: tuple[Queue, Queue], monkeypatch: pytest.MonkeyPatch
) -> None:
    """12 sagas wait for their first reply; the participant then answers them all at once: the
    worker (its SQS calls counted by a proxy in front of moto) deletes what it applied 10 to a
    call where it can, every reply exactly once, and leaves the reply queue empty."""
    commands, replies = sqs_queues
    text = SQS_SAGA.format(commands=commands.name, replies=replies.name, timeout="60s")
    store = open_store(store_dsn)
    ids = detach(store, text, 12, dict(os.environ))
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", sqs_proxy.url)  # the worker's calls only
    try:
        with running(build_worker(Settings(dsn=store_dsn), replace(FAST, concurrency=4))) as worker:
            sent = lambda: sqs.counts(commands)[0]  # noqa: E731
            wait_for(lambda: sent() == 12, timeout=60)  # every saga waits for its first reply
            with Participant(sqs, commands, answered):
                wait_for(lambda: states(store, ids) == ["completed"] * 12, timeout=60)
                wait_for(lambda: sqs.counts(replies) == (0, 0))
        assert worker.metrics.replies.labels("applied")._value.get() == 24
    finally:
        store.close()
    deleted = [len(p["Entries"]) if op == "DeleteMessageBatch" else 1 for op, p in sqs_proxy.requests if "Delete" in op]
    assert sum(deleted) == 24 and max(deleted) > 1, deleted  # each once; some together


@pytest.mark.slow
def test_a_late_compensation_reply_finishes_the_saga(store_dsn: str, sqs: Sqs, sqs_queues: tuple[Queue, Queue]) -> None:
    """The refund is never answered: its retries run out and the saga waits in compensating
    for an operator. The answer then comes (a redriven message was finally processed): the
    worker applies it and the saga ends failed, every completed step compensated once."""
    commands, replies = sqs_queues
    text = SQS_SAGA.format(commands=commands.name, replies=replies.name, timeout="30s")
    # The actions are answered (a loaded machine may take seconds); the refund never is.
    text = text.replace("  timeout: 30s\n", "  timeout: 30s\n  compensation_timeout: 1s\n")

    def participant(body: dict[str, Any], attributes: dict[str, Any]) -> dict[str, Any] | None:
        if attributes["command"] == "Pay.Charge":
            return {"type": "SagaStepFailed", "saga_id": attributes["saga_id"], "step_name": "charge", "error": "no"}
        if attributes["command"] == "Stock.Release":
            return None  # the refund handler is broken: no answer
        return answered(body, attributes)

    store = open_store(store_dsn)
    (saga_id,) = detach(store, text, 1, dict(os.environ))
    try:
        with (
            Participant(sqs, commands, participant) as seen,
            running(build_worker(Settings(dsn=store_dsn), replace(FAST, concurrency=2))),
        ):

            def stuck() -> bool:
                saga = store.get(saga_id)
                return (
                    saga is not None
                    and saga.state is SagaState.COMPENSATING
                    and saga.lease_owner is None
                    and saga.wake_at is None
                )

            wait_for(stuck, timeout=30)
            saga = store.get(saga_id)
            assert saga is not None and saga.steps[0].compensation_attempts == 2
            late = {
                "type": "SagaCompensationCompleted",
                "saga_id": saga_id,
                "step_name": "reserve",
                "idempotency_key": f"{saga_id}:reserve:compensation",
            }
            sqs.client.send_message(QueueUrl=replies.url, MessageBody=json.dumps(late))
            wait_for(lambda: states(store, [saga_id]) == ["failed"])
        saga = store.get(saga_id)
        assert saga is not None
        assert [s.status for s in saga.steps] == [StepStatus.COMPENSATED, StepStatus.FAILED]
        sent = [
            (m["MessageAttributes"]["command"]["StringValue"], m["MessageAttributes"]["idempotency_key"]["StringValue"])
            for m in seen.seen
        ]
        assert sent == [
            ("Stock.Reserve", f"{saga_id}:reserve:action"),
            ("Pay.Charge", f"{saga_id}:charge:action"),
            ("Stock.Release", f"{saga_id}:reserve:compensation"),
            ("Stock.Release", f"{saga_id}:reserve:compensation"),
        ]
    finally:
        store.close()


@pytest.mark.slow
def test_a_retry_on_a_fifo_queue_is_a_new_message(store_dsn: str, sqs: Sqs) -> None:
    """The first command of each step goes unanswered: its retry, sent by whichever driver
    takes the saga up after the timeout, carries the next attempt's deduplication ID (from the
    saga log), so SQS does not drop it as a duplicate and the saga completes."""
    commands, replies = sqs.queue("commands", fifo=True), sqs.queue("replies")
    text = SQS_SAGA.format(commands=commands.name, replies=replies.name, timeout="2s")
    text = text.replace("max_attempts: 2", "max_attempts: 5")  # an answer later than 2 s: one more try
    seen: set[str] = set()

    def second_time(body: dict[str, Any], attributes: dict[str, Any]) -> dict[str, Any] | None:
        key = attributes["idempotency_key"]
        if key not in seen:
            seen.add(key)
            return None  # lost: no answer
        return answered(body, attributes)

    store = open_store(store_dsn)
    (saga_id,) = detach(store, text, 1, dict(os.environ))
    try:
        with (
            Participant(sqs, commands, second_time) as participant,
            running(build_worker(Settings(dsn=store_dsn), replace(FAST, concurrency=2))),
        ):
            wait_for(lambda: states(store, [saga_id]) == ["completed"], timeout=30)
        for step in ("reserve", "charge"):
            key = f"{saga_id}:{step}:action"
            sent = [m for m in participant.seen if m["MessageAttributes"]["idempotency_key"]["StringValue"] == key]
            dedup = [m["Attributes"]["MessageDeduplicationId"] for m in sent]
            assert len(dedup) >= 2 and dedup == [f"{key}:{n}" for n in range(1, len(dedup) + 1)]
    finally:
        store.close()


@pytest.mark.slow
def test_unknown_duplicate_and_stale_replies_are_deleted_without_harm(
    store_dsn: str, sqs: Sqs, sqs_queues: tuple[Queue, Queue]
) -> None:
    commands, replies = sqs_queues
    text = SQS_SAGA.format(commands=commands.name, replies=replies.name, timeout="60s")
    store = open_store(store_dsn)
    (saga_id,) = detach(store, text, 1, dict(os.environ))
    try:
        with (
            Participant(sqs, commands, answered),
            running(build_worker(Settings(dsn=store_dsn), replace(FAST, concurrency=2))) as worker,
        ):
            wait_for(lambda: states(store, [saga_id]) == ["completed"])
            before = store.get(saga_id)
            junk = [
                {"type": "SagaStepCompleted", "saga_id": "no-such-saga", "step_name": "reserve"},
                {"type": "SagaStepCompleted", "saga_id": saga_id, "step_name": "no-such-step"},
                {"type": "SagaStepCompleted", "saga_id": saga_id, "step_name": "charge", "result": {"again": 1}},
                {"type": "SagaCompensationCompleted", "saga_id": saga_id, "step_name": "reserve"},
                {"not": "a reply"},
            ]
            for body in junk:
                sqs.client.send_message(QueueUrl=replies.url, MessageBody=json.dumps(body))
            wait_for(lambda: worker.metrics.replies.labels("ignored")._value.get() == 5)
            wait_for(lambda: sqs.counts(replies) == (0, 0))
        after = store.get(saga_id)
        assert before is not None and after is not None
        assert [s.to_dict() for s in after.steps] == [s.to_dict() for s in before.steps]
        assert [t.new_state for t in store.transitions(saga_id)][-1] == "completed"
    finally:
        store.close()


@pytest.mark.slow
def test_sigterm_puts_sagas_aside_within_the_grace_period_and_exits_0(
    store_dsn: str, participants: Participants, tmp_path: Path
) -> None:
    """A real worker process, SIGTERM while a step is in flight: it finishes that step, puts the
    saga aside (due at once) and exits 0; another worker completes it, each step sent once."""
    held = gate()
    participants.script("reserve", "action", held)
    store = open_store(store_dsn)
    env = {**os.environ, "SVC_URL": participants.url, "SAGACTL_DSN": store_dsn}
    (saga_id,) = detach(store, HTTP_SAGA, 1, env)
    worker = subprocess.Popen(
        [sys.executable, "-m", "sagactl", "worker", "--poll", "50ms", "--grace", "20s"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert held.arrived.wait(30)
        worker.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        held.release()
        assert worker.wait(timeout=30) == 0, worker.stderr.read() if worker.stderr else ""
        saga = store.get(saga_id)
        assert saga is not None and saga.steps[0].status is StepStatus.COMPLETED
        assert saga.lease_owner is None and saga.wake_at is not None  # put aside, due for another worker
        os.environ["SVC_URL"] = participants.url
        try:
            with running(build_worker(Settings(dsn=store_dsn), FAST)):
                wait_for(lambda: states(store, [saga_id]) == ["completed"])
        finally:
            os.environ.pop("SVC_URL")
        assert [c.step for c in participants.calls] == ["reserve", "charge"]
    finally:
        if worker.poll() is None:
            worker.kill()
        store.close()


def test_a_dead_holders_saga_is_taken_over_at_once(store_dsn: str, participants: Participants) -> None:
    """A driver on this host died holding the lease (its lease still runs for minutes): the
    worker sees the process is gone and takes the saga over without waiting for expiry."""
    store = open_store(store_dsn)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    owner = f"{socket.gethostname()}:{dead.pid}:dead"
    env = {**os.environ, "SVC_URL": participants.url}
    factory = make_engine(store, Settings(), env=env).transport_factory
    engine = Engine(store=store, transport_factory=factory, owner=owner, env=env)
    saga = engine.start(definition(HTTP_SAGA), {}, "held-by-the-dead")
    assert saga.lease_owner is not None
    os.environ["SVC_URL"] = participants.url
    try:
        with running(build_worker(Settings(dsn=store_dsn), FAST)) as worker:
            wait_for(lambda: states(store, ["held-by-the-dead"]) == ["completed"], timeout=20)
            assert worker.metrics.takeovers._value.get() == 1
    finally:
        os.environ.pop("SVC_URL")
        store.close()


def test_the_database_going_away_costs_a_pause_not_the_worker(
    pg_dsn: str, pg_admin_dsn: str, participants: Participants
) -> None:
    """Every connection of the worker is terminated (a restart, a failover) while it drives:
    its threads connect again and every saga still ends completed."""
    import psycopg

    open_store(pg_dsn).close()
    store = open_store(pg_dsn)
    env = {**os.environ, "SVC_URL": participants.url}
    first = detach(store, HTTP_SAGA, 5, env)
    os.environ["SVC_URL"] = participants.url
    try:
        with running(build_worker(Settings(dsn=pg_dsn), replace(FAST, concurrency=2))) as worker:
            wait_for(lambda: states(store, first) == ["completed"] * 5)
            dbname = pg_dsn.rsplit("/", 1)[1]
            with psycopg.connect(pg_admin_dsn, autocommit=True) as admin:
                killed = admin.execute(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = %s AND application_name = 'sagactl' AND pid <> %s",
                    [dbname, store._conn.info.backend_pid],  # type: ignore[attr-defined]
                ).fetchone()
            assert killed is not None and killed[0] >= 2
            second = detach(store, HTTP_SAGA, 5, env)
            wait_for(lambda: states(store, second) == ["completed"] * 5, timeout=30)
            assert worker.healthy()
    finally:
        os.environ.pop("SVC_URL")
        store.close()
