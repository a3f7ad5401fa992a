"""sqs transport: a command on ``queue``, the participant's answer on ``reply_queue`` (DESIGN 5).

The command's body is the command JSON; message attributes ``saga_id``, ``step_name``,
``command``, ``idempotency_key``, ``reply_to`` (the reply queue's URL) and ``phase``, and with
tracing on ``traceparent`` and ``tracestate`` (W3C; as many as SQS's 10 attributes leave room for).
Participants answer on the reply queue with ``{"type": "SagaStepCompleted" |
"SagaStepFailed" | "SagaCompensationCompleted", "saga_id", "step_name", "result" | "error"}``.

Replies are correlated by saga_id and step_name (and by idempotency_key when the reply
carries one). A reply for another saga or step is never lost: it is made visible again at
once, never deleted, for whoever waits for it. A late reply to the other phase of the same
step (the action's answer arriving while it is being compensated) is stale and deleted. Classification:
SagaStepCompleted -> OK with its result; SagaStepFailed -> REFUSED with its error;
SagaCompensationCompleted -> OK; no reply within the request's timeout -> TRANSIENT, the
command delivered (its outcome unknown). A command SQS never accepted (unreachable,
throttled) was not delivered.

FIFO command queues get MessageGroupId = saga_id and MessageDeduplicationId = the idempotency
key and the attempt number, so a retry is a new message while a duplicate send of one attempt
is dropped by SQS.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sagactl.aws import QueueRef, resolve_queue, sqs_client, sqs_errors
from sagactl.clock import Clock, SystemClock
from sagactl.codec import compact_json
from sagactl.config import AwsSettings
from sagactl.errors import SagactlError, UnavailableError
from sagactl.models import Phase
from sagactl.transports.base import Reply, Request, Status

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger("sagactl.transports.sqs")

COMPLETED = "SagaStepCompleted"
FAILED = "SagaStepFailed"
COMPENSATED = "SagaCompensationCompleted"
REPLY_TYPES = (COMPLETED, FAILED, COMPENSATED)
LONG_POLL = 20  # SQS's longest receive wait
REPLY_HOLD = 30  # seconds a received reply stays hidden if this process dies before acting on it
IDLE_PAUSE = 0.2  # seconds to wait when the reply queue holds only other sagas' replies


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else compact_json(value)


@dataclass(frozen=True, slots=True)
class ParticipantReply:
    """A participant's answer read from a reply queue (DESIGN section 5)."""

    kind: str  # SagaStepCompleted, SagaStepFailed or SagaCompensationCompleted
    saga_id: str
    step_name: str
    key: str | None  # the idempotency key it answers, when the participant says
    result: Any = None
    error: str | None = None

    def answers(self, phase: Phase) -> bool:
        """Whether it can answer ``phase``: SagaStepCompleted the action, SagaCompensationCompleted
        the compensation, SagaStepFailed either (its idempotency key says which, when given)."""
        if self.kind == COMPLETED:
            return phase is Phase.ACTION
        if self.kind == COMPENSATED:
            return phase is Phase.COMPENSATION
        return self.key is None or self.key.endswith(f":{phase.value}")

    def as_reply(self, queue_name: str) -> Reply:
        if self.kind == FAILED:
            return Reply(Status.REFUSED, error=f"sqs {queue_name}: {self.error or f'participant answered {FAILED}'}")
        return Reply(Status.OK, result=self.result)


def read_reply(message: Any) -> ParticipantReply | None:
    """The participant reply in a received SQS message (fields from the JSON body, else from
    message attributes), or None when it is not one."""
    try:
        body = json.loads(message.get("Body", ""))
    except (ValueError, RecursionError):  # not JSON, or JSON Python cannot read (deep, long numbers)
        return None
    if not isinstance(body, dict):
        return None
    attributes = message.get("MessageAttributes") or {}

    def field(name: str) -> Any:
        value = body.get(name)
        if value is None and name in attributes:
            value = attributes[name].get("StringValue")
        return value

    kind, saga_id, step_name = field("type"), field("saga_id"), field("step_name")
    if kind not in REPLY_TYPES or not isinstance(saga_id, str) or not isinstance(step_name, str):
        return None
    key = field("idempotency_key")
    return ParticipantReply(
        kind=kind,
        saga_id=saga_id,
        step_name=step_name,
        key=key if isinstance(key, str) else None,
        result=body.get("result"),
        error=_text(body.get("error")),
    )


MAX_ATTRIBUTES = 10  # SQS's limit of message attributes per message


def with_trace(attributes: dict[str, Any], trace: Mapping[str, str]) -> dict[str, Any]:
    """``attributes`` and the W3C trace context (``traceparent``, then ``tracestate``) as String
    attributes, as many as SQS's 10 leave room for: a command's own attributes always go, the
    trace context only where it fits (sagactl's six leave room for both). Left out: logged."""
    room = MAX_ATTRIBUTES - len(attributes)
    for name in ("traceparent", "tracestate"):
        if name not in trace or name in attributes:
            continue
        if room <= 0:
            log.debug("sqs: no room for %s among the message's %d attributes; not sent", name, len(attributes))
            continue
        attributes[name] = {"DataType": "String", "StringValue": trace[name]}
        room -= 1
    return attributes


def _dedup_id(key: str, attempt: int) -> str:
    """``{idempotency_key}:{attempt}`` within SQS's 128 characters (hashed when longer)."""
    text = f"{key}:{attempt}"
    if len(text) <= 128 and text.isascii() and text.isprintable():
        return text
    return f"{hashlib.sha256(key.encode()).hexdigest()}:{attempt}"


class SqsTransport:
    """One endpoint: a command queue and a reply queue (``region``/``endpoint_url`` optional,
    else AWS_REGION / AWS_ENDPOINT_URL_SQS / the standard chain)."""

    def __init__(
        self,
        name: str,
        config: dict[str, Any],
        env: Mapping[str, str],
        aws: AwsSettings | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self.queue_name = str(config["queue"])
        self.reply_name = str(config["reply_queue"])
        given = aws or AwsSettings()
        self.aws = AwsSettings(
            region=config.get("region") or given.region,
            profile=given.profile,
            endpoint_url=config.get("endpoint_url") or given.endpoint_url,
        )
        self.env = env
        self.clock = clock or SystemClock()
        self.attempts: dict[str, int] = {}
        self._client: SQSClient | None = None
        self._queue: QueueRef | None = None
        self._reply: QueueRef | None = None

    def _open(self) -> tuple[SQSClient, QueueRef, QueueRef]:
        if self._client is None:
            self._client = sqs_client(self.aws, env=self.env)
        if self._queue is None:
            self._queue = resolve_queue(self._client, self.queue_name, attributes=False)
        if self._reply is None:
            self._reply = resolve_queue(self._client, self.reply_name, attributes=False)
        return self._client, self._queue, self._reply

    def call(self, request: Request) -> Reply:
        where = f"sqs {self.queue_name}"
        try:
            client, queue, reply_queue = self._open()
        except UnavailableError as exc:
            return Reply(Status.TRANSIENT, error=f"{where}: {exc.one_line()}", delivered=False)
        except SagactlError as exc:  # the queue does not exist, bad settings: retrying will not help
            return Reply(Status.REFUSED, error=f"{where}: {exc.one_line()}", delivered=False)
        sent = self._send(client, queue, reply_queue, request, self._attempt(request))
        if sent is not None:
            return sent
        return self._await(client, reply_queue, request)

    def _send(
        self, client: SQSClient, queue: QueueRef, reply_queue: QueueRef, request: Request, attempt: int
    ) -> Reply | None:
        """Send the command; None when SQS accepted it, else the Reply saying why not."""
        command = str(request.spec.get("command", ""))
        attributes = {
            "saga_id": request.saga_id,
            "step_name": request.step_name,
            "command": command,
            "idempotency_key": request.idempotency_key,
            "reply_to": reply_queue.url,
            "phase": request.phase.value,
        }
        params: dict[str, Any] = {
            "QueueUrl": queue.url,
            "MessageBody": compact_json(request.body),
            "MessageAttributes": with_trace(
                {name: {"DataType": "String", "StringValue": value} for name, value in attributes.items() if value},
                request.trace,
            ),
        }
        if queue.fifo:
            params["MessageGroupId"] = request.saga_id
            params["MessageDeduplicationId"] = _dedup_id(request.idempotency_key, attempt)
        where = f"sqs {queue.name}"
        import botocore.exceptions as bce

        try:
            with sqs_errors(f"'{queue.name}'", client):
                client.send_message(**params)
        except SagactlError as exc:
            cause = exc.__cause__
            # a read timeout or a reset after sending may have delivered it; anything else did not
            maybe = isinstance(cause, bce.ReadTimeoutError | bce.ConnectionClosedError)
            status = Status.TRANSIENT if isinstance(exc, UnavailableError) else Status.REFUSED
            return Reply(status, error=f"{where}: {exc.one_line()}", delivered=maybe)
        return None

    def _await(self, client: SQSClient, reply_queue: QueueRef, request: Request) -> Reply:
        """Wait up to the request's timeout for this saga step's reply."""
        deadline = self.clock.monotonic() + request.timeout
        released: set[str] = set()
        while True:
            remaining = deadline - self.clock.monotonic()
            if remaining <= 0:
                return Reply(
                    Status.TRANSIENT,
                    error=f"sqs {self.queue_name}: no reply on {reply_queue.name} within {request.timeout:g}s",
                    timed_out=True,
                )
            try:
                with sqs_errors(f"'{reply_queue.name}'", client):
                    answer = client.receive_message(
                        QueueUrl=reply_queue.url,
                        MaxNumberOfMessages=10,
                        WaitTimeSeconds=min(LONG_POLL, max(1, math.ceil(remaining))),
                        VisibilityTimeout=REPLY_HOLD,
                        MessageAttributeNames=["All"],
                    )
            except SagactlError as exc:
                return Reply(Status.TRANSIENT, error=f"sqs {reply_queue.name}: {exc.one_line()}")
            mine: Reply | None = None
            others: list[str] = []
            fresh = False
            for message in answer.get("Messages", []):
                handle = str(message.get("ReceiptHandle", ""))
                verdict, reply = self._match(message, request)
                if verdict == "stale" or (verdict == "mine" and mine is None):
                    self._delete(client, reply_queue, handle)
                    mine = mine or reply
                    continue
                others.append(handle)  # another saga's or step's (or a second copy of ours)
                fresh = fresh or str(message.get("MessageId")) not in released
                released.add(str(message.get("MessageId")))
            self._release(client, reply_queue, others)
            if mine is not None:
                return mine
            if others and not fresh:
                # only replies already seen and handed back: do not spin on them
                self.clock.sleep(min(IDLE_PAUSE, max(0.0, deadline - self.clock.monotonic())))

    def _match(self, message: Any, request: Request) -> tuple[str, Reply | None]:
        """("mine", Reply) when ``message`` answers ``request``; ("stale", None) for a late
        reply to the other phase of this very step, or to another key (nobody waits for it any
        more); else ("other", None): another saga's or step's reply, or not a reply at all."""
        reply = read_reply(message)
        if reply is None or reply.saga_id != request.saga_id or reply.step_name != request.step_name:
            return "other", None
        if not reply.answers(request.phase) or reply.key not in (None, request.idempotency_key):
            return "stale", None  # e.g. the action's late SagaStepCompleted while compensating
        return "mine", reply.as_reply(self.queue_name)

    def send(self, request: Request) -> Reply | None:
        """Send the command and do not wait: None when SQS took it (its answer comes on the
        reply queue), else the Reply saying why it was not sent."""
        where = f"sqs {self.queue_name}"
        try:
            client, queue, reply_queue = self._open()
        except UnavailableError as exc:
            return Reply(Status.TRANSIENT, error=f"{where}: {exc.one_line()}", delivered=False)
        except SagactlError as exc:
            return Reply(Status.REFUSED, error=f"{where}: {exc.one_line()}", delivered=False)
        return self._send(client, queue, reply_queue, request, self._attempt(request))

    def _attempt(self, request: Request) -> int:
        """The attempt number in a FIFO deduplication ID: the saga log's count, so a retry is a
        new message also when another process (a worker, a resume) sends it; counted here for
        a request that does not say."""
        if request.attempt:
            return request.attempt
        attempt = self.attempts.get(request.idempotency_key, 0) + 1
        self.attempts[request.idempotency_key] = attempt
        return attempt

    @property
    def reply_queue(self) -> tuple[AwsSettings, str]:
        """Which reply queue this endpoint's answers come on (settings and name, URL or ARN):
        equal for endpoints that share one."""
        return self.aws, self.reply_name

    # -- a worker's reply listener ------------------------------------------------------------

    def listen(self, wait: int, hold: int) -> list[Any]:
        """Up to 10 messages from the reply queue (long poll ``wait`` s), each hidden ``hold`` s
        while a driver applies it. Raises SagactlError when SQS cannot be reached."""
        client, _, reply_queue = self._open()
        with sqs_errors(f"'{reply_queue.name}'", client):
            answer = client.receive_message(
                QueueUrl=reply_queue.url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=wait,
                VisibilityTimeout=hold,
                MessageAttributeNames=["All"],
            )
        return list(answer.get("Messages", []))

    def done(self, *messages: Any) -> None:
        """Delete replies that were applied or are of no use (duplicates, stale answers), up to
        10 in one call. One that fails to go comes back after its hold and is deleted then."""
        client, _, reply_queue = self._open()
        if len(messages) == 1:
            self._delete(client, reply_queue, str(messages[0].get("ReceiptHandle", "")))
            return
        for start in range(0, len(messages), 10):
            entries: Any = [
                {"Id": str(n), "ReceiptHandle": str(m.get("ReceiptHandle", ""))}
                for n, m in enumerate(messages[start : start + 10])
            ]
            try:
                with sqs_errors(f"'{reply_queue.name}'", client):
                    client.delete_message_batch(QueueUrl=reply_queue.url, Entries=entries)
            except SagactlError:
                pass  # they come back when their hold expires, are found of no use and deleted

    def later(self, message: Any, seconds: int) -> None:
        """Hand a reply back to the queue, visible again in ``seconds`` (its saga is busy)."""
        client, _, reply_queue = self._open()
        entry: Any = {"Id": "0", "ReceiptHandle": str(message.get("ReceiptHandle", "")), "VisibilityTimeout": seconds}
        try:
            with sqs_errors(f"'{reply_queue.name}'", client):
                client.change_message_visibility_batch(QueueUrl=reply_queue.url, Entries=[entry])
        except SagactlError:
            pass  # it reappears when its hold expires: late, never lost

    def _delete(self, client: SQSClient, queue: QueueRef, handle: str) -> None:
        try:
            with sqs_errors(f"'{queue.name}'", client):
                client.delete_message(QueueUrl=queue.url, ReceiptHandle=handle)
        except SagactlError:
            pass  # the reply was read; if it comes back, the step's idempotency makes it harmless

    def _release(self, client: SQSClient, queue: QueueRef, handles: list[str]) -> None:
        """Make other sagas' replies visible again now (they are never deleted here)."""
        for start in range(0, len(handles), 10):
            entries: list[Any] = [
                {"Id": str(n), "ReceiptHandle": h, "VisibilityTimeout": 0}
                for n, h in enumerate(handles[start : start + 10])
            ]
            try:
                with sqs_errors(f"'{queue.name}'", client):
                    client.change_message_visibility_batch(QueueUrl=queue.url, Entries=entries)
            except SagactlError:
                pass  # they reappear when REPLY_HOLD expires: late, never lost

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
