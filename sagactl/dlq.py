"""Dead-letter queues: look at messages without consuming them, and SQS's own move tasks.

Guarantees:
- ``peek`` never deletes: every message it receives is hidden only while the listing runs
  (so the scan does not meet it twice) and is made visible again (ChangeMessageVisibility 0)
  as soon as it ends, whether it ends normally, with an error or with Ctrl-C. A process killed
  outright leaves messages hidden until their visibility timeout (``hold``) expires, never lost.
- saga_id, step_name, command and error come from message attributes, else from the JSON body.
- Redriving (sagactl.redrive) shares the message model, the filters and the holder.

The functions taking ``settings`` are what the CLI calls; the others take an SQS client so
tests can hand in a stubbed one.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TextIO

from sagactl.aws import QueueRef, queue_arn, resolve_queue, sqs_client, sqs_errors
from sagactl.config import Settings
from sagactl.errors import NotFoundError, UsageError
from sagactl.models import SagaState, iso

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from sagactl.redrive import Progress, RedriveRequest, RedriveResult

BATCH = 10  # SQS's batch limit for receive, send, delete and visibility changes
PEEK_HOLD = 60  # seconds a listed message stays hidden at most if sagactl dies mid-listing
DEFAULT_WAIT = 1  # seconds of long polling before concluding a queue is drained
MAX_HOLD = 43200  # SQS's visibility timeout limit (12 h)
REDRIVE_COUNT_ATTRIBUTE = "sagactl_redrive_count"
_FIELDS = ("saga_id", "step_name", "command", "error")


# -- the message model -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DlqMessage:
    """One received message: what SQS returned plus the saga fields read from it."""

    message_id: str
    receipt_handle: str
    body: str
    system: dict[str, str]  # SQS system attributes (SentTimestamp, ApproximateReceiveCount, …)
    attributes: dict[str, dict[str, Any]]  # message attributes exactly as received
    md5_of_body: str | None = None
    saga_id: str | None = None
    step_name: str | None = None
    command: str | None = None
    error: str | None = None

    @property
    def receive_count(self) -> int:
        return _int(self.system.get("ApproximateReceiveCount"))

    @property
    def sent_at(self) -> datetime | None:
        millis = self.system.get("SentTimestamp")
        if not millis or not millis.isdigit():
            return None
        return datetime.fromtimestamp(int(millis) / 1000, UTC)

    @property
    def group_id(self) -> str | None:
        return self.system.get("MessageGroupId")

    @property
    def redrive_count(self) -> int:
        """How many times sagactl has redriven this message (its counter attribute)."""
        value = self.attributes.get(REDRIVE_COUNT_ATTRIBUTE) or {}
        return _int(value.get("StringValue"))

    def age_seconds(self, now: datetime) -> float | None:
        sent = self.sent_at
        return None if sent is None else max(0.0, (now - sent).total_seconds())

    def body_matches_md5(self, md5: str | None) -> bool:
        """True when ``md5`` (as SQS reports it) is the MD5 of this body's UTF-8 bytes."""
        return md5 is None or hashlib.md5(self.body.encode("utf-8")).hexdigest() == md5

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        """The ``dlq list`` JSON item (README "JSON fields"); bodies whole."""
        now = now or datetime.now(UTC)
        return {
            "message_id": self.message_id,
            "saga_id": self.saga_id,
            "step_name": self.step_name,
            "command": self.command,
            "error": self.error,
            "receive_count": self.receive_count,
            "redrive_count": self.redrive_count,
            "sent_at": iso(self.sent_at),
            "age_seconds": _round(self.age_seconds(now)),
            "group_id": self.group_id,
            "source_arn": self.system.get("DeadLetterQueueSourceArn"),
            "attributes": {name: _attribute_json(value) for name, value in sorted(self.attributes.items())},
            "body": self.body,
        }


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _attribute_json(value: dict[str, Any]) -> dict[str, Any]:
    """A message attribute as JSON: Binary values base64-encoded (and said so)."""
    import base64

    out: dict[str, Any] = {"data_type": value.get("DataType")}
    if "StringValue" in value:
        out["string_value"] = value["StringValue"]
    if "BinaryValue" in value:
        out["binary_value_base64"] = base64.b64encode(bytes(value["BinaryValue"])).decode("ascii")
    return out


def _text_attribute(attributes: dict[str, dict[str, Any]], name: str) -> str | None:
    value = attributes.get(name)
    if not value or "StringValue" not in value:
        return None
    return str(value["StringValue"])


def _body_field(doc: dict[str, Any] | None, name: str) -> str | None:
    if doc is None or doc.get(name) is None:
        return None
    value = doc[name]
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _json_object(body: str) -> dict[str, Any] | None:
    if not body.lstrip().startswith("{"):
        return None
    try:
        doc = json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def parse_message(raw: Any) -> DlqMessage:
    """A received SQS message as a DlqMessage (attributes first, JSON body as the fallback)."""
    body = str(raw.get("Body", ""))
    attributes = {str(k): dict(v) for k, v in (raw.get("MessageAttributes") or {}).items()}
    doc = _json_object(body)
    found = {name: _text_attribute(attributes, name) or _body_field(doc, name) for name in _FIELDS}
    return DlqMessage(
        message_id=str(raw.get("MessageId", "")),
        receipt_handle=str(raw.get("ReceiptHandle", "")),
        body=body,
        system={str(k): str(v) for k, v in (raw.get("Attributes") or {}).items()},
        attributes=attributes,
        md5_of_body=raw.get("MD5OfBody"),
        **found,
    )


@dataclass(frozen=True, slots=True)
class MessageFilter:
    """``--saga-id`` (None: any saga) and ``--step``."""

    saga_ids: frozenset[str] | None = None
    step: str | None = None

    def matches(self, message: DlqMessage) -> bool:
        if self.saga_ids is not None and message.saga_id not in self.saga_ids:
            return False
        return self.step is None or message.step_name == self.step


def read_saga_ids(values: Sequence[str] | None, stdin: TextIO | None = None) -> frozenset[str] | None:
    """``--saga-id`` values; ``-`` reads whitespace-separated IDs from stdin.

    None means "no filter". ``-`` with nothing on stdin gives an empty set: nothing matches,
    so an empty ``list --stuck -q`` never turns into "redrive everything".
    """
    if not values:
        return None
    ids: set[str] = set()
    for value in values:
        if value != "-":
            ids.add(value.strip())
            continue
        stream = stdin or sys.stdin
        if stream.isatty():
            raise UsageError("--saga-id - reads saga IDs from stdin, but stdin is a terminal", hint="pipe IDs in")
        for line in stream.read().splitlines():
            ids.update(line.split("#", 1)[0].split())
    return frozenset(i for i in ids if i)


# -- receiving and holding -------------------------------------------------------------------


def receive(client: SQSClient, queue: QueueRef, count: int, hold: int, wait: int) -> list[DlqMessage]:
    """Up to ``count`` messages, hidden for ``hold`` seconds, with every attribute."""
    with sqs_errors(f"'{queue.name}'", client):
        answer = client.receive_message(
            QueueUrl=queue.url,
            MaxNumberOfMessages=max(1, min(BATCH, count)),
            VisibilityTimeout=hold,
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
    return [parse_message(raw) for raw in answer.get("Messages", [])]


@dataclass(slots=True)
class Holder:
    """Receipt handles of messages this process keeps hidden, to be made visible again.

    Only the thread that scans touches it. The newest receipt handle wins: SQS honours only
    the latest one after a message is received again.
    """

    handles: dict[str, str] = field(default_factory=dict)

    def hold(self, message: DlqMessage) -> None:
        self.handles[message.message_id] = message.receipt_handle

    def forget(self, message_id: str) -> None:
        self.handles.pop(message_id, None)

    def release(self, client: SQSClient, queue: QueueRef, *, workers: int = 4) -> int:
        """Make every held message visible now; returns how many could not be released
        (they reappear when their hold expires). Deleted or re-received ones do not count."""
        handles = list(self.handles.values())
        self.handles.clear()
        batches = [handles[i : i + BATCH] for i in range(0, len(handles), BATCH)]
        if not batches:
            return 0

        def release_batch(batch: list[str]) -> int:
            entries: list[Any] = [
                {"Id": str(n), "ReceiptHandle": handle, "VisibilityTimeout": 0} for n, handle in enumerate(batch)
            ]
            with sqs_errors(f"'{queue.name}'", client):
                answer = client.change_message_visibility_batch(QueueUrl=queue.url, Entries=entries)
            return sum(1 for f in answer.get("Failed", []) if f.get("Code") != "ReceiptHandleIsInvalid")

        if len(batches) <= 2 or workers <= 1:
            return sum(release_batch(b) for b in batches)
        with ThreadPoolExecutor(max_workers=min(workers, len(batches))) as pool:
            return sum(pool.map(release_batch, batches))


def validate_timing(hold: int, wait: int) -> None:
    if not 1 <= hold <= MAX_HOLD:
        raise UsageError(f"--visibility-timeout must be 1..{MAX_HOLD} seconds, not {hold}")
    if not 0 <= wait <= 20:
        raise UsageError(f"--wait-time must be 0..20 seconds, not {wait}")


# -- peek ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PeekRequest:
    queue: str
    filter: MessageFilter = MessageFilter()
    limit: int | None = None
    hold: int = PEEK_HOLD
    wait: int = DEFAULT_WAIT


@dataclass(slots=True)
class PeekResult:
    queue: QueueRef
    messages: list[DlqMessage]
    scanned: int = 0  # distinct messages received
    truncated: bool = False  # --limit reached before the end of the queue
    release_failures: int = 0
    listed_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def unseen(self) -> int:
        """Messages visible when the listing began that it could not reach (FIFO groups whose
        head was in flight, or more arrived); 0 when it saw them all."""
        return max(0, self.queue.count("ApproximateNumberOfMessages") - self.scanned)


def peek(client: SQSClient, queue: QueueRef, request: PeekRequest) -> PeekResult:
    """Receive every visible message once without consuming any, then make them all visible.

    FIFO queues show only the messages SQS hands out while earlier ones of their group are
    in flight (the head of each group); ``PeekResult.unseen`` counts the rest.
    """
    validate_timing(request.hold, request.wait)
    if request.limit is not None and request.limit < 1:
        raise UsageError(f"--limit must be at least 1, not {request.limit}")
    result = PeekResult(queue=queue, messages=[])
    holder = Holder()
    seen: set[str] = set()
    confirming = False
    try:
        while True:
            batch = receive(client, queue, BATCH, request.hold, request.wait if confirming else 0)
            if not batch:
                if confirming or request.wait == 0:
                    break
                confirming = True  # short polls can miss messages on real SQS: one long poll
                continue
            confirming = False
            for message in batch:
                holder.hold(message)
                if message.message_id in seen:
                    continue  # its hold expired during a long scan and it came round again
                seen.add(message.message_id)
                result.scanned += 1
                if request.filter.matches(message):
                    result.messages.append(message)
            if request.limit is not None and len(result.messages) >= request.limit:
                result.truncated = True  # stopped at --limit: more may follow
                del result.messages[request.limit :]
                break
    finally:
        result.release_failures = holder.release(client, queue)
    return result


class GroupBy(StrEnum):
    SAGA = "saga"
    STEP = "step"
    ERROR = "error"


_GROUP_FIELD = {GroupBy.SAGA: "saga_id", GroupBy.STEP: "step_name", GroupBy.ERROR: "error"}


@dataclass(frozen=True, slots=True)
class MessageGroup:
    key_field: str
    key: str | None
    messages: tuple[DlqMessage, ...]

    def to_dict(self) -> dict[str, Any]:
        sent = [m.sent_at for m in self.messages if m.sent_at is not None]
        return {
            self.key_field: self.key,
            "count": len(self.messages),
            "oldest_sent_at": iso(min(sent)) if sent else None,
            "newest_sent_at": iso(max(sent)) if sent else None,
            "max_receive_count": max((m.receive_count for m in self.messages), default=0),
            "saga_ids": sorted({m.saga_id for m in self.messages if m.saga_id}),
            "step_names": sorted({m.step_name for m in self.messages if m.step_name}),
            "message_ids": [m.message_id for m in self.messages],
        }


def group_messages(messages: Iterable[DlqMessage], by: GroupBy) -> list[MessageGroup]:
    """Messages grouped by saga, step or error; biggest group first, then by key."""
    key_field = _GROUP_FIELD[by]
    groups: dict[str | None, list[DlqMessage]] = {}
    for message in messages:
        groups.setdefault(getattr(message, key_field), []).append(message)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0] or ""))
    return [MessageGroup(key_field, key, tuple(items)) for key, items in ordered]


# -- SQS move tasks (--native, --status, --cancel) -------------------------------------------

NATIVE_MAX_RATE = 500


@dataclass(frozen=True, slots=True)
class MoveTask:
    """One SQS message move task (StartMessageMoveTask / ListMessageMoveTasks)."""

    task_handle: str | None
    status: str | None
    source_arn: str | None
    destination_arn: str | None
    max_messages_per_second: int | None
    moved: int | None
    to_move: int | None
    failure_reason: str | None = None
    started_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_handle": self.task_handle,
            "status": self.status,
            "source_arn": self.source_arn,
            "destination_arn": self.destination_arn,
            "max_messages_per_second": self.max_messages_per_second,
            "approximate_messages_moved": self.moved,
            "approximate_messages_to_move": self.to_move,
            "failure_reason": self.failure_reason,
            "started_at": iso(self.started_at),
        }


def _native_rate(rate: float | None) -> int | None:
    if rate is None:
        return None
    if rate != int(rate) or not 1 <= rate <= NATIVE_MAX_RATE:
        raise UsageError(f"--rate with --native must be a whole number 1..{NATIVE_MAX_RATE}, not {rate:g}")
    return int(rate)


def start_move_task(client: SQSClient, dlq: str, to: str | None, rate: float | None) -> MoveTask:
    """Start an SQS-side move of every message in ``dlq`` (to ``to``, else to each message's
    original source queue); ``rate`` caps messages per second."""
    per_second = _native_rate(rate)
    source = resolve_queue(client, dlq)
    destination = resolve_queue(client, to) if to else None
    params: dict[str, Any] = {"SourceArn": queue_arn(client, source)}
    if destination is not None:
        params["DestinationArn"] = queue_arn(client, destination)
    if per_second is not None:
        params["MaxNumberOfMessagesPerSecond"] = per_second
    with sqs_errors(f"'{source.name}'", client):
        answer = client.start_message_move_task(**params)
    return MoveTask(
        task_handle=answer.get("TaskHandle"),
        status="RUNNING",
        source_arn=params["SourceArn"],
        destination_arn=params.get("DestinationArn"),
        max_messages_per_second=per_second,
        moved=None,
        to_move=source.count("ApproximateNumberOfMessages"),
    )


def list_move_tasks(client: SQSClient, queue: str) -> list[MoveTask]:
    """The most recent move tasks (up to 10) whose source is ``queue``, newest first."""
    source = resolve_queue(client, queue)
    with sqs_errors(f"'{source.name}'", client):
        answer = client.list_message_move_tasks(SourceArn=queue_arn(client, source), MaxResults=10)
    tasks = []
    for entry in answer.get("Results", []):
        started = entry.get("StartedTimestamp")
        tasks.append(
            MoveTask(
                task_handle=entry.get("TaskHandle"),
                status=entry.get("Status"),
                source_arn=entry.get("SourceArn"),
                destination_arn=entry.get("DestinationArn"),
                max_messages_per_second=entry.get("MaxNumberOfMessagesPerSecond"),
                moved=entry.get("ApproximateNumberOfMessagesMoved"),
                to_move=entry.get("ApproximateNumberOfMessagesToMove"),
                failure_reason=entry.get("FailureReason"),
                started_at=datetime.fromtimestamp(started / 1000, UTC) if started else None,
            )
        )
    return tasks


def cancel_move_task(client: SQSClient, task_handle: str) -> MoveTask:
    """Cancel a running move task; the messages it moved stay moved."""
    import botocore.exceptions

    try:
        with sqs_errors("the move task", client):
            answer = client.cancel_message_move_task(TaskHandle=task_handle)
    except UsageError as exc:
        cause = exc.__cause__
        if isinstance(cause, botocore.exceptions.ClientError) and cause.response.get("Error", {}).get("Code") in (
            "ResourceNotFoundException",
            "AWS.SimpleQueueService.ResourceNotFoundException",
        ):
            raise NotFoundError(
                f"no running move task with handle {task_handle}",
                hint="see 'sagactl redrive --status QUEUE'",
            ) from exc
        raise
    return MoveTask(
        task_handle=task_handle,
        status="CANCELLING",
        source_arn=None,
        destination_arn=None,
        max_messages_per_second=None,
        moved=answer.get("ApproximateNumberOfMessagesMoved"),
        to_move=None,
    )


# -- what the CLI calls ----------------------------------------------------------------------


def list_dlq(settings: Settings, request: PeekRequest) -> PeekResult:
    """``dlq list``: peek at ``request.queue`` with the configured AWS settings."""
    client = sqs_client(settings.aws)
    return peek(client, resolve_queue(client, request.queue), request)


def redrive_dlq(
    settings: Settings,
    request: RedriveRequest,
    progress: Progress | None = None,
) -> RedriveResult:
    """``redrive``: move messages back; with ``only_open`` the saga log decides which."""
    from sagactl.redrive import redrive

    client = sqs_client(settings.aws, pool_size=request.concurrency + 2)
    if not request.only_open:
        return redrive(client, request, progress=progress)
    with saga_states(settings) as lookup:
        return redrive(client, request, saga_state=lookup, progress=progress)


@contextmanager
def saga_states(settings: Settings) -> Iterator[Callable[[str], SagaState | None]]:
    """Saga ID -> its state in the configured saga log (or mapped table), read-only."""
    if settings.mapping is not None:
        from sagactl.store.mapped import MappedTableStore

        with closing(MappedTableStore(settings.dsn, settings.mapping)) as table:

            def mapped_state(saga_id: str) -> SagaState | None:
                summary = table.get_summary(saga_id)
                return None if summary is None else summary.state

            yield mapped_state
        return
    from sagactl.store import open_store

    with closing(open_store(settings.dsn, create=False)) as store:

        def stored_state(saga_id: str) -> SagaState | None:
            saga = store.get(saga_id)
            return None if saga is None else saga.state

        yield stored_state


def start_native(settings: Settings, dlq: str, to: str | None, rate: float | None) -> MoveTask:
    """``redrive --native``."""
    return start_move_task(sqs_client(settings.aws), dlq, to, rate)


def move_task_status(settings: Settings, queue: str) -> list[MoveTask]:
    """``redrive --status QUEUE``."""
    return list_move_tasks(sqs_client(settings.aws), queue)


def cancel_native(settings: Settings, task_handle: str) -> MoveTask:
    """``redrive --cancel TASK_HANDLE``."""
    return cancel_move_task(sqs_client(settings.aws), task_handle)


__all__ = [
    "BATCH",
    "REDRIVE_COUNT_ATTRIBUTE",
    "DlqMessage",
    "GroupBy",
    "Holder",
    "MessageFilter",
    "MoveTask",
    "PeekRequest",
    "PeekResult",
    "cancel_move_task",
    "group_messages",
    "list_move_tasks",
    "parse_message",
    "peek",
    "read_saga_ids",
    "start_move_task",
]
