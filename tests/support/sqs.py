"""A real SQS endpoint for tests: moto in server mode on 127.0.0.1 (one per session), dummy
credentials in the environment, helpers to make queues and count messages, and a fault proxy
(a small HTTP server in front of moto) that can fail batch entries or throttle calls, and that
answers SQS's message move task calls itself (moto lacks them) by really moving messages on moto.

Queues get unique names, so tests share the one server without resetting it. moto serves one
call at a time and slows down with queue depth: keep queues to tens of messages.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "sagactl-test-id", "AWS_SECRET_ACCESS_KEY": "sagactl-test-secret"}
_CLEARED = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_MAX_ATTEMPTS",
    "AWS_RETRY_MODE",
    "SAGACTL_CONFIG",
    "SAGACTL_CONTEXT",
)


def serialize_moto_deletes() -> None:
    """moto's Queue.delete_message rebuilds the queue's message list without the queue's lock:
    two deletes at once (redrive deletes batches from several threads) each write back a list
    that still holds the other's messages, which come back from the dead, in flight and hidden
    (issue 18's flaky `(18, 2) != (18, 0)`: the 2 messages of the last batch, moved and deleted,
    back in the DLQ), and a message sent meanwhile can vanish. Real SQS has no such race: take
    the lock moto's add_message already holds, for every delete."""
    from moto.sqs.models import Queue

    original = Queue.delete_message
    if getattr(original, "serialized", False):
        return

    def delete_message(self: Any, receipt_handle: str) -> None:
        with self._messages_lock:
            original(self, receipt_handle)

    delete_message.serialized = True  # type: ignore[attr-defined]
    Queue.delete_message = delete_message  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto server running for the whole session (its deletes
    serialized as SQS's are: serialize_moto_deletes)."""
    from moto.server import ThreadedMotoServer

    serialize_moto_deletes()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log lines in test output
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(sqs_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """Dummy credentials, region us-east-1 and AWS_ENDPOINT_URL_SQS -> moto; nothing read from
    ~/.aws. Returns the variables set (subprocess tests pass them on)."""
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    values = {
        **CREDENTIALS,
        "AWS_DEFAULT_REGION": REGION,
        "AWS_REGION": REGION,
        "AWS_ENDPOINT_URL_SQS": sqs_endpoint,
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


@dataclass(frozen=True)
class Queue:
    url: str
    name: str
    arn: str

    @property
    def fifo(self) -> bool:
        return self.name.endswith(".fifo")


@dataclass
class Sqs:
    """Test-side SQS access (plain boto3, not sagactl's code) to set up and check queues."""

    client: Any
    endpoint: str

    def queue(
        self, prefix: str = "q", *, fifo: bool = False, dead_letter: Queue | None = None, name: str | None = None
    ) -> Queue:
        """A new queue (``name``, else a unique one); with ``dead_letter`` its redrive policy
        names that queue."""
        name = name or f"{prefix}-{uuid.uuid4().hex[:10]}" + (".fifo" if fifo else "")
        attributes: dict[str, str] = {}
        if fifo:
            attributes["FifoQueue"] = "true"
        if dead_letter is not None:
            attributes["RedrivePolicy"] = json.dumps({"deadLetterTargetArn": dead_letter.arn, "maxReceiveCount": 5})
        url = self.client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        return Queue(url=url, name=name, arn=arn)

    def dlq_pair(self, *, fifo: bool = False) -> tuple[Queue, Queue]:
        """(dead-letter queue, its source queue)."""
        dlq = self.queue("dlq", fifo=fifo)
        return dlq, self.queue("src", fifo=fifo, dead_letter=dlq)

    def send(
        self,
        queue: Queue,
        bodies: Sequence[str],
        *,
        attributes: Callable[[int], dict[str, Any]] | None = None,
        group: Callable[[int], str] | None = None,
    ) -> None:
        """Send ``bodies`` in order (batches of 10); attributes and FIFO group per index."""
        for start in range(0, len(bodies), 10):
            entries = []
            for index in range(start, min(start + 10, len(bodies))):
                entry: dict[str, Any] = {"Id": str(index), "MessageBody": bodies[index]}
                if attributes is not None:
                    entry["MessageAttributes"] = attributes(index)
                if queue.fifo:
                    entry["MessageGroupId"] = group(index) if group else "g"
                    entry["MessageDeduplicationId"] = uuid.uuid4().hex
                entries.append(entry)
            answer = self.client.send_message_batch(QueueUrl=queue.url, Entries=entries)
            assert not answer.get("Failed"), answer["Failed"]

    def counts(self, queue: Queue) -> tuple[int, int]:
        """(visible, in flight) as SQS reports them (exact on moto)."""
        found = self.client.get_queue_attributes(
            QueueUrl=queue.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(found["ApproximateNumberOfMessages"]), int(found["ApproximateNumberOfMessagesNotVisible"])

    def receive_all(self, queue: Queue, *, hold: int = 30) -> list[dict[str, Any]]:
        """Every visible message, kept hidden for ``hold`` seconds (not deleted), in order.

        On FIFO queues a group's later messages come only after its earlier ones are
        deleted, so FIFO queues are read by deleting: use ``take_all`` there.
        """
        found: list[dict[str, Any]] = []
        while True:
            batch = self.client.receive_message(
                QueueUrl=queue.url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=hold,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not batch:
                return found
            found.extend(batch)

    def take_all(self, queue: Queue) -> list[dict[str, Any]]:
        """Receive and delete every message, in delivery order (the way to read a FIFO queue)."""
        found: list[dict[str, Any]] = []
        while True:
            batch = self.client.receive_message(
                QueueUrl=queue.url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=30,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not batch:
                return found
            found.extend(batch)
            self.client.delete_message_batch(
                QueueUrl=queue.url,
                Entries=[{"Id": str(n), "ReceiptHandle": m["ReceiptHandle"]} for n, m in enumerate(batch)],
            )


@pytest.fixture
def sqs(aws_env: dict[str, str], sqs_endpoint: str) -> Sqs:
    """A boto3 SQS client on the moto server, with queue helpers."""
    client = boto3.client("sqs", endpoint_url=sqs_endpoint, region_name=REGION)
    return Sqs(client=client, endpoint=sqs_endpoint)


OTHER_REGION = "eu-west-1"


@pytest.fixture
def sqs_elsewhere(aws_env: dict[str, str], sqs_endpoint: str) -> Sqs:
    """The same moto server seen from OTHER_REGION (moto keeps queues per region, as SQS does)."""
    client = boto3.client("sqs", endpoint_url=sqs_endpoint, region_name=OTHER_REGION)
    return Sqs(client=client, endpoint=sqs_endpoint)


# -- a fault-injecting proxy in front of moto -----------------------------------------------

Answer = tuple[int, dict[str, Any], dict[str, str]]
Forward = Callable[[dict[str, Any]], Answer]
Handler = Callable[[str, dict[str, Any], Mapping[str, str], Forward], Answer]


def throttled(code: str = "RequestThrottled") -> Answer:
    """What SQS answers when it throttles a call (RequestThrottled or ThrottlingException)."""
    return (
        400,
        {"__type": f"com.amazonaws.sqs#{code}", "message": "Rate exceeded"},
        {"x-amzn-query-error": f"{code};Sender"},
    )


def without_long_polls(operation: str, payload: dict[str, Any], headers: Mapping[str, str], forward: Forward) -> Answer:
    """A handler passing every call on, ReceiveMessage with WaitTimeSeconds 0: a test reads the
    wait asked for from ``SqsProxy.requests`` without waiting it out."""
    if operation == "ReceiveMessage":
        payload = {**payload, "WaitTimeSeconds": 0}
    return forward(payload)


def receive_waits(proxy: SqsProxy) -> list[int]:
    """WaitTimeSeconds of each ReceiveMessage the client sent through ``proxy`` (0 when absent)."""
    return [int(payload.get("WaitTimeSeconds", 0)) for op, payload in proxy.requests if op == "ReceiveMessage"]


# -- SQS message move tasks, emulated over moto ----------------------------------------------

MOVE_TASK_OPERATIONS = frozenset({"StartMessageMoveTask", "ListMessageMoveTasks", "CancelMessageMoveTask"})


class MoveTaskError(Exception):
    """An SQS error answer: ``code`` as the query-compatible code, ``type_name`` as ``__type``."""

    def __init__(self, code: str, message: str, type_name: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.type_name = type_name or code
        self.message = message

    def answer(self) -> Answer:
        return 400, {"__type": self.type_name, "message": self.message}, {"x-amzn-query-error": f"{self.code};Sender"}


def _invalid(message: str) -> MoveTaskError:
    return MoveTaskError("InvalidParameterValue", message, "InvalidParameterValueException")


def _not_found(message: str) -> MoveTaskError:
    return MoveTaskError("ResourceNotFoundException", message)


@dataclass
class MoveTask:
    """One emulated move task; ``moved`` grows as its thread moves messages."""

    task_id: str
    source_arn: str
    destination_arn: str | None
    rate: int | None
    to_move: int
    started_ms: int
    status: str = "RUNNING"
    moved: int = 0
    failure_reason: str | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    @property
    def handle(self) -> str:
        """SQS's shape: base64 of {"taskId": …, "sourceArn": …}."""
        doc = json.dumps({"taskId": self.task_id, "sourceArn": self.source_arn}, separators=(",", ":"))
        return base64.b64encode(doc.encode()).decode()

    def entry(self) -> dict[str, Any]:
        """A ListMessageMoveTasks result entry: the handle only while RUNNING, absent fields left out."""
        found: dict[str, Any] = {
            "SourceArn": self.source_arn,
            "Status": self.status,
            "StartedTimestamp": self.started_ms,
            "ApproximateNumberOfMessagesToMove": self.to_move,
            "ApproximateNumberOfMessagesMoved": self.moved,
        }
        if self.status == "RUNNING":
            found["TaskHandle"] = self.handle
        if self.destination_arn:
            found["DestinationArn"] = self.destination_arn
        if self.rate is not None:
            found["MaxNumberOfMessagesPerSecond"] = self.rate
        if self.failure_reason:
            found["FailureReason"] = self.failure_reason
        return found


class MoveTasks:
    """StartMessageMoveTask, ListMessageMoveTasks and CancelMessageMoveTask over moto, answering
    the shapes SQS (as LocalStack implements it) answers: a base64 task handle; statuses RUNNING,
    COMPLETED, CANCELLING, CANCELLED, FAILED; one active task per source; InvalidParameterValue
    for a source that is no dead-letter queue, a second active task or an undecodable handle;
    ResourceNotFoundException for a missing queue or an unknown (or no longer running) task.

    A task's thread moves one message at a time, as SQS does: receive from the DLQ, send body
    and attributes to the destination, delete, then wait 1/MaxNumberOfMessagesPerSecond.
    Without a destination a message goes back to its DeadLetterQueueSourceArn; moto does not set
    that attribute, so then to the one queue whose redrive policy names the DLQ (the task fails,
    the message stays, when there is none or several).

    The answers were compared once, call by call, with LocalStack 4.9.2's own SQS. One deliberate
    difference: cancelling a task that is no longer running is ResourceNotFoundException here (AWS
    cancels only running tasks); LocalStack answers 200 and leaves the task CANCELLING for good.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.tasks: dict[str, MoveTask] = {}
        self.lock = threading.Lock()

    @cached_property
    def client(self) -> Any:
        """moto itself (not the proxy): the moving happens inside "SQS"."""
        return boto3.client(
            "sqs",
            endpoint_url=self.upstream,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def answer(self, operation: str, payload: dict[str, Any]) -> Answer:
        try:
            if operation == "StartMessageMoveTask":
                return 200, self.start(payload), {}
            if operation == "ListMessageMoveTasks":
                return 200, self.list(payload), {}
            return 200, self.cancel(payload), {}
        except MoveTaskError as exc:
            return exc.answer()

    def stop(self) -> None:
        for task in list(self.tasks.values()):
            task.cancel.set()
            if task.thread is not None:
                task.thread.join(timeout=10)

    # -- the calls ---------------------------------------------------------------------------

    def start(self, payload: dict[str, Any]) -> dict[str, Any]:
        source_arn = str(payload.get("SourceArn", ""))
        source = self._queue_url(source_arn, "SourceArn")
        if not self.client.list_dead_letter_source_queues(QueueUrl=source).get("queueUrls"):
            raise _invalid("Source queue must be configured as a Dead Letter Queue.")
        destination_arn = payload.get("DestinationArn")
        destination = self._queue_url(destination_arn, "DestinationArn") if destination_arn else None
        rate = payload.get("MaxNumberOfMessagesPerSecond")
        depth = self.client.get_queue_attributes(QueueUrl=source, AttributeNames=["ApproximateNumberOfMessages"])
        with self.lock:
            if any(t.source_arn == source_arn and t.status in ("RUNNING", "CANCELLING") for t in self.tasks.values()):
                raise _invalid(
                    "There is already a task running. Only one active task is allowed for a source queue arn"
                    " at a given time."
                )
            task = MoveTask(
                task_id=str(uuid.uuid4()),
                source_arn=source_arn,
                destination_arn=destination_arn,
                rate=None if rate is None else int(rate),
                to_move=int(depth["Attributes"]["ApproximateNumberOfMessages"]),
                started_ms=int(time.time() * 1000),
            )
            self.tasks[task.task_id] = task
        task.thread = threading.Thread(target=self._run, args=(task, source, destination), daemon=True)
        task.thread.start()
        return {"TaskHandle": task.handle}

    def list(self, payload: dict[str, Any]) -> dict[str, Any]:
        source_arn = str(payload.get("SourceArn", ""))
        self._queue_url(source_arn, "SourceArn")
        with self.lock:
            tasks = sorted(
                (t for t in self.tasks.values() if t.source_arn == source_arn),
                key=lambda t: t.started_ms,
                reverse=True,
            )
            return {"Results": [t.entry() for t in tasks[: int(payload.get("MaxResults") or 1)]]}

    def cancel(self, payload: dict[str, Any]) -> dict[str, Any]:
        try:
            doc = json.loads(base64.b64decode(str(payload.get("TaskHandle", "")), validate=True))
            task_id, source_arn = str(doc["taskId"]), str(doc["sourceArn"])
        except (ValueError, KeyError, TypeError) as exc:
            raise _invalid("Value for parameter TaskHandle is invalid.") from exc
        self._queue_url(source_arn, "SourceArn")
        with self.lock:
            task = self.tasks.get(task_id)
            if task is None or task.status != "RUNNING":
                raise _not_found("Task does not exist.")
            task.status = "CANCELLING"
            task.cancel.set()
            return {"ApproximateNumberOfMessagesMoved": task.moved}

    # -- moving ------------------------------------------------------------------------------

    def _queue_url(self, arn: str, parameter: str) -> str:
        parts = arn.split(":")
        if len(parts) != 6 or parts[0] != "arn":
            raise _invalid(
                f"You must use this format to specify the {parameter}: "
                "arn:<partition>:<service>:<region>:<account-id>:<resource-id>"
            )
        try:
            return str(self.client.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"])
        except self.client.exceptions.QueueDoesNotExist as exc:
            raise _not_found(f"The resource that you specified for the {parameter} parameter doesn't exist.") from exc

    def _original_source(self, message: dict[str, Any], dlq: str) -> str:
        arn = message.get("Attributes", {}).get("DeadLetterQueueSourceArn")
        if arn:
            return self._queue_url(arn, "DeadLetterQueueSourceArn")
        sources = self.client.list_dead_letter_source_queues(QueueUrl=dlq).get("queueUrls", [])
        if len(sources) != 1:
            raise MoveTaskError("NoSourceQueue", f"{len(sources)} queues use this dead-letter queue")
        return str(sources[0])

    def _run(self, task: MoveTask, source: str, destination: str | None) -> None:
        try:
            while not task.cancel.is_set():
                found = self.client.receive_message(
                    QueueUrl=source,
                    MaxNumberOfMessages=1,
                    VisibilityTimeout=30,
                    MessageSystemAttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
                if not found:
                    break
                message = found[0]
                try:
                    target = destination or self._original_source(message, source)
                except MoveTaskError:
                    self.client.change_message_visibility(
                        QueueUrl=source, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=0
                    )
                    raise
                entry: dict[str, Any] = {"QueueUrl": target, "MessageBody": message["Body"]}
                attributes = {
                    name: {k: v for k, v in value.items() if k in ("DataType", "StringValue", "BinaryValue")}
                    for name, value in message.get("MessageAttributes", {}).items()
                }
                if attributes:
                    entry["MessageAttributes"] = attributes
                if target.endswith(".fifo"):
                    entry["MessageGroupId"] = message["Attributes"].get("MessageGroupId", "default")
                    entry["MessageDeduplicationId"] = f"{message['MessageId']}:moved"
                self.client.send_message(**entry)
                self.client.delete_message(QueueUrl=source, ReceiptHandle=message["ReceiptHandle"])
                with self.lock:
                    task.moved += 1
                if task.rate:
                    task.cancel.wait(1 / task.rate)
        except Exception as exc:
            with self.lock:
                task.status = "FAILED"
                task.failure_reason = exc.code if isinstance(exc, MoveTaskError) else type(exc).__name__
            return
        with self.lock:
            task.status = "CANCELLED" if task.cancel.is_set() else "COMPLETED"


@dataclass
class SqsProxy:
    """An HTTP endpoint on 127.0.0.1 that passes SQS JSON calls to moto through ``handler``.

    ``handler(operation, payload, headers, forward)`` may change the payload, call
    ``forward`` (moto), change its answer, or answer by itself. ``calls`` records operations,
    ``requests`` each operation with the payload the client sent. ``forward`` answers the
    message move task calls from ``move_tasks`` (see MoveTasks) instead of moto.
    """

    upstream: str
    handler: Handler | None = None
    calls: list[str] = field(default_factory=list)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    url: str = ""
    move_tasks: MoveTasks | None = None
    _server: ThreadingHTTPServer | None = None

    def forward(self, payload: dict[str, Any], headers: Mapping[str, str]) -> Answer:
        operation = next((v for k, v in headers.items() if k.lower() == "x-amz-target"), "").rsplit(".", 1)[-1]
        if operation in MOVE_TASK_OPERATIONS and self.move_tasks is not None:
            return self.move_tasks.answer(operation, payload)
        parts = urlsplit(self.upstream)
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
        body = json.dumps(payload).encode()
        sent = {k: v for k, v in headers.items() if k.lower() not in ("content-length", "connection")}
        sent["Content-Length"] = str(len(body))
        try:
            conn.request("POST", "/", body=body, headers=sent)
            response = conn.getresponse()
            data = response.read()
            kept = {
                k: v
                for k, v in response.getheaders()
                if k.lower() in ("x-amzn-query-error", "x-amzn-requestid", "content-type")
            }
            return response.status, json.loads(data or b"{}"), kept
        finally:
            conn.close()

    def start(self) -> SqsProxy:
        proxy = self
        self.move_tasks = MoveTasks(self.upstream)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                payload = json.loads(self.rfile.read(length) or b"{}")
                operation = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
                headers = dict(self.headers.items())
                proxy.calls.append(operation)
                proxy.requests.append((operation, json.loads(json.dumps(payload))))

                def forward(changed: dict[str, Any]) -> Answer:
                    return proxy.forward(changed, headers)

                if proxy.handler is None:
                    status, answer, extra = forward(payload)
                else:
                    status, answer, extra = proxy.handler(operation, payload, headers, forward)
                body = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.0")
                for key, value in extra.items():
                    if key.lower() != "content-type":
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        return self

    def stop(self) -> None:
        if self.move_tasks is not None:
            self.move_tasks.stop()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def sqs_proxy(sqs_endpoint: str) -> Iterator[SqsProxy]:
    """A fault proxy in front of moto; set ``.handler`` and point clients at ``.url``."""
    proxy = SqsProxy(upstream=sqs_endpoint).start()
    try:
        yield proxy
    finally:
        proxy.stop()
