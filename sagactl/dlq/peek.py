"""Receiving from a dead-letter queue without consuming it (``dlq list``), and the scan that
redrive shares.

Guarantees:
- ``peek`` never deletes: every message it receives is hidden only while the listing runs
  (so the scan does not meet it twice) and is made visible again (ChangeMessageVisibility 0)
  as soon as it ends, whether it ends normally, with an error or with Ctrl-C. A process killed
  outright leaves messages hidden until their visibility timeout (``hold``) expires, never lost.
- ``scan`` yields each visible message once, holding every one it receives; it ends when a
  long poll finds the queue empty.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sagactl.aws import QueueRef, sqs_errors
from sagactl.dlq.messages import BATCH, DlqMessage, MessageFilter, parse_message
from sagactl.errors import UsageError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

PEEK_HOLD = 60  # seconds a listed message stays hidden at most if sagactl dies mid-listing
MAX_COUNT = 1_000_000_000  # the largest --limit / --max / --max-redrives a command takes
DEFAULT_WAIT = 1  # seconds of long polling before concluding a queue is drained
MAX_HOLD = 43200  # SQS's visibility timeout limit (12 h)


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


def scan(
    client: SQSClient,
    queue: QueueRef,
    holder: Holder,
    *,
    hold: int,
    wait: int,
    batch_size: int = BATCH,
    idle: Callable[[], bool] = lambda: False,
) -> Iterator[list[DlqMessage]]:
    """Each batch of messages not seen before, every message received held in ``holder``.

    Ends when the queue looks drained: an empty short poll, confirmed by one long poll of
    ``wait`` seconds (short polls can miss messages on real SQS). ``idle`` is asked first
    whenever a receive comes back empty: True means it made messages visible again (e.g.
    finished sends a FIFO group waited on), so look again at once.
    """
    seen: set[str] = set()
    confirming = False
    while True:
        received = receive(client, queue, batch_size, hold, wait if confirming else 0)
        if not received:
            if idle():
                continue
            if confirming or wait == 0:
                return
            confirming = True
            continue
        confirming = False
        fresh = []
        for message in received:
            holder.hold(message)
            if message.message_id in seen:
                continue  # its hold expired during a long scan and it came round again
            seen.add(message.message_id)
            fresh.append(message)
        yield fresh


@dataclass(frozen=True, slots=True)
class PeekRequest:
    queue: str
    filter: MessageFilter = field(default_factory=MessageFilter)
    limit: int | None = None
    hold: int = PEEK_HOLD
    wait: int = DEFAULT_WAIT

    def validate(self) -> None:
        """Refuse what ``dlq list`` cannot honour, before SQS is contacted."""
        validate_timing(self.hold, self.wait)
        if self.limit is not None and not 1 <= self.limit <= MAX_COUNT:
            raise UsageError(f"--limit must be 1 to {MAX_COUNT}, not {self.limit}")
        self.filter.validate()


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
    request.validate()
    result = PeekResult(queue=queue, messages=[])
    holder = Holder()
    try:
        for batch in scan(client, queue, holder, hold=request.hold, wait=request.wait):
            result.scanned += len(batch)
            result.messages.extend(m for m in batch if request.filter.matches(m))
            if request.limit is not None and len(result.messages) >= request.limit:
                result.truncated = True  # stopped at --limit: more may follow
                del result.messages[request.limit :]
                break
    finally:
        result.release_failures = holder.release(client, queue)
    return result


@dataclass(frozen=True, slots=True)
class DlqDepth:
    """A dead-letter queue as monitoring sees it. ``messages``: approximate visible messages;
    ``in_flight``: received and hidden now (a redrive or a listing in progress);
    ``oldest_age``: seconds since the oldest message sagactl sampled was first sent (a lower
    bound; None when the queue is empty); ``error``: why the queue could not be read (then
    every count is None)."""

    queue: str
    messages: int | None = None
    in_flight: int | None = None
    oldest_age: float | None = None
    error: str | None = None


def depth(client: SQSClient, queue: QueueRef, now: datetime) -> DlqDepth:
    """``queue``'s depth (from the attributes resolve_queue read) and, when it holds messages,
    the age of the oldest of a sample of up to 10, received with a visibility timeout of 0: they
    stay visible, never consumed (each counts as one receive, which sagactl's redrive never
    reads; SQS offers no other way to learn a message's age)."""
    messages = queue.count("ApproximateNumberOfMessages")
    oldest = None
    if messages:
        sent = [m.sent_at for m in receive(client, queue, BATCH, hold=0, wait=0) if m.sent_at is not None]
        if sent:
            oldest = max(0.0, (now - min(sent)).total_seconds())
    return DlqDepth(queue.name, messages, queue.count("ApproximateNumberOfMessagesNotVisible"), oldest)
