"""A real SQS endpoint for tests: moto in server mode on 127.0.0.1 (one per session), dummy
credentials in the environment, helpers to make queues and count messages, and a fault proxy
(a small HTTP server in front of moto) that can fail batch entries or throttle calls.

Queues get unique names, so tests share the one server without resetting it. moto serves one
call at a time and slows down with queue depth: keep queues to tens of messages.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
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


@pytest.fixture(scope="session")
def sqs_endpoint() -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a moto server running for the whole session."""
    from moto.server import ThreadedMotoServer

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

    def queue(self, prefix: str = "q", *, fifo: bool = False, dead_letter: Queue | None = None) -> Queue:
        """A new queue; with ``dead_letter`` its redrive policy names that queue."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}" + (".fifo" if fifo else "")
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


@dataclass
class SqsProxy:
    """An HTTP endpoint on 127.0.0.1 that passes SQS JSON calls to moto through ``handler``.

    ``handler(operation, payload, headers, forward)`` may change the payload, call
    ``forward`` (moto), change its answer, or answer by itself. ``calls`` records operations,
    ``requests`` each operation with the payload the client sent.
    """

    upstream: str
    handler: Handler | None = None
    calls: list[str] = field(default_factory=list)
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    url: str = ""
    _server: ThreadingHTTPServer | None = None

    def forward(self, payload: dict[str, Any], headers: Mapping[str, str]) -> Answer:
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
