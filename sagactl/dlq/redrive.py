"""Redrive: move dead-lettered messages back to their source queue without ever losing one.

Guarantees (DESIGN section 6):
- A message leaves the DLQ only after SQS acknowledged its send and reported the MD5 of the
  body sagactl sent: a crash can duplicate a message, never lose one. Batch results are read
  per entry; a failed entry stays in the DLQ and is counted failed.
- Body and message attributes are sent byte for byte (Binary values included); sagactl sets
  one attribute, the redrive counter ``sagactl_redrive_count``. A message redriven
  ``--max-redrives`` times goes to ``--poison-queue`` unchanged, or stays and is reported.
- FIFO: MessageGroupId kept; a fresh MessageDeduplicationId derived from the DLQ message ID and
  the new counter (so a re-run after a crash inside SQS's 5-minute window is not duplicated,
  and a message that failed again is never dropped as a duplicate). Order within a group is
  kept: SQS hands out a group's later messages only once the earlier ones are deleted, a batch
  is sent in order, and two batches holding the same group are never in flight together.
- Every message received and not moved (filtered out, skipped, dry run, failed, beyond
  ``--max``) is held invisible while the scan runs, so the scan ends, and is made visible
  again as soon as it ends.
- ``--rate`` caps messages sent per second; without it several batches are in flight.
"""

from __future__ import annotations

from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sagactl.aws import QueueRef, queue_name, resolve_queue, sqs_errors
from sagactl.clock import Clock, SystemClock
from sagactl.dlq.messages import BATCH, REDRIVE_COUNT_ATTRIBUTE, DlqMessage
from sagactl.dlq.outcomes import Action, Outcome, Progress, RedriveRequest, RedriveResult, SagaStateLookup
from sagactl.dlq.peek import Holder, scan
from sagactl.errors import NotFoundError, SagactlError, UnavailableError, UsageError
from sagactl.models import SagaState

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MAX_ATTRIBUTES = 10  # SQS's limit of message attributes per message
MAX_BATCH_BYTES = 256 * 1024  # stay under SendMessageBatch's payload limit whatever the queue allows


def source_queue(client: SQSClient, dlq: QueueRef) -> QueueRef:
    """The one queue whose redrive policy names ``dlq``; several or none is a usage error."""
    urls: list[str] = []
    token: str | None = None
    with sqs_errors(f"'{dlq.name}'", client):
        while True:
            params: dict[str, Any] = {"QueueUrl": dlq.url, "MaxResults": 1000}
            if token:
                params["NextToken"] = token
            answer = client.list_dead_letter_source_queues(**params)
            urls.extend(answer.get("queueUrls", []))
            token = answer.get("NextToken")
            if not token:
                break
    if not urls:
        raise UsageError(f"no queue uses {dlq.name} as its dead-letter queue", hint="pass --to QUEUE to say where to")
    if len(urls) > 1:
        names = ", ".join(sorted(queue_name(u) for u in urls))
        raise UsageError(
            f"{len(urls)} queues use {dlq.name} as their dead-letter queue ({names})",
            hint="pass --to QUEUE to choose one",
        )
    return resolve_queue(client, urls[0])


class RateLimiter:
    """At most ``rate`` messages per second on average, bursts of one batch."""

    def __init__(self, rate: float, clock: Clock) -> None:
        self.rate = rate
        self.clock = clock
        self.next_at: float | None = None

    def take(self, count: int) -> None:
        """Wait until ``count`` more messages may go, and account for them."""
        now = self.clock.monotonic()
        if self.next_at is not None and self.next_at > now:
            self.clock.sleep(self.next_at - now)
            now = self.next_at
        self.next_at = now + count / self.rate


@dataclass(slots=True)
class _Item:
    message: DlqMessage
    destination: QueueRef
    poison: bool
    size: int
    counter_recorded: bool = True

    @property
    def new_count(self) -> int:
        return self.message.redrive_count if self.poison else self.message.redrive_count + 1


@dataclass(slots=True)
class _BatchDone:
    outcomes: list[Outcome]
    fatal: SagactlError | None = None


def _attribute_size(name: str, value: dict[str, Any]) -> int:
    data = value.get("BinaryValue", b"") or str(value.get("StringValue", "")).encode("utf-8")
    return len(name.encode("utf-8")) + len(str(value.get("DataType", ""))) + len(data)


def _copy_attribute(value: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"DataType": value["DataType"]}
    for key in ("StringValue", "BinaryValue"):
        if key in value:
            out[key] = value[key]
    return out


class _Stopped(Exception):
    """Ends the scan from inside it (a fatal error came back while it waited)."""


class _Mover:
    """One redrive run: the scanning thread receives, classifies and submits; a pool sends
    and deletes. Only the scanning thread touches the result and the holder."""

    def __init__(
        self,
        client: SQSClient,
        request: RedriveRequest,
        result: RedriveResult,
        saga_state: SagaStateLookup | None,
        clock: Clock,
        progress: Progress | None,
    ) -> None:
        self.client = client
        self.request = request
        self.result = result
        self.dlq = result.dlq
        self.saga_state = saga_state
        self.states: dict[str, SagaState | None] = {}
        self.progress = progress
        self.total = result.dlq.count("ApproximateNumberOfMessages") or None
        self.limiter = RateLimiter(request.rate, clock) if request.rate else None
        self.batch_size = BATCH if request.rate is None else max(1, min(BATCH, int(request.rate)))
        self.holder = Holder()
        self.selected = 0
        self.pending: dict[str, list[_Item]] = {}
        self.inflight: dict[Future[_BatchDone], set[str]] = {}
        self.stop = False
        self.pool = ThreadPoolExecutor(max_workers=request.concurrency, thread_name_prefix="sagactl-redrive")

    # -- the scanning thread -------------------------------------------------------------

    def run(self) -> None:
        try:
            self._scan()
            self._flush()
            self._drain()
        except KeyboardInterrupt:
            self.result.interrupted = True
        except SagactlError as exc:
            self.result.error = exc
        finally:
            self.pool.shutdown(wait=True)
            self._collect([f for f in self.inflight if f.done()])
            self._release()
            self._report()

    def _scan(self) -> None:
        request = self.request
        if request.max_messages is not None and self.selected >= request.max_messages:
            return
        batches = scan(
            self.client,
            self.dlq,
            self.holder,
            hold=request.hold,
            wait=request.wait,
            batch_size=self.batch_size,
            idle=self._idle,
        )
        try:
            for batch in batches:
                for message in batch:
                    self.result.scanned += 1
                    if request.max_messages is None or self.selected < request.max_messages:
                        self._classify(message)
                self._collect([f for f in self.inflight if f.done()])
                self._report()
                if self.stop or (request.max_messages is not None and self.selected >= request.max_messages):
                    return
        except _Stopped:
            return

    def _idle(self) -> bool:
        """The DLQ looks empty: send what is pending and wait for the batches in flight (on
        FIFO queues a group's next messages come only once these are deleted); True when there
        were any, so the scan looks again."""
        self._flush()
        if not self.inflight:
            return False
        self._drain()
        if self.stop:
            raise _Stopped  # a batch hit a fatal error: end the scan now
        return True

    def _skip(self, message: DlqMessage, reason: str) -> None:
        self.result.outcomes.append(Outcome(message, Action.SKIPPED, reason=reason))

    def _classify(self, message: DlqMessage) -> None:
        request = self.request
        if not request.filter.matches(message):
            self.result.unmatched += 1
            return
        if request.only_open and not self._open(message):
            return
        limit = request.redrive_limit
        poison = bool(limit) and message.redrive_count >= limit
        if poison and self.result.poison is None:
            self._skip(
                message,
                f"redriven {message.redrive_count} times (--max-redrives {limit}); left in the DLQ: "
                "fix the participant, then pass --poison-queue or a higher --max-redrives",
            )
            return
        destination = self.result.poison if poison else self.result.destination
        assert destination is not None
        self.selected += 1
        if request.dry_run:
            action = Action.WOULD_POISON if poison else Action.WOULD_MOVE
            new_count = message.redrive_count if poison else message.redrive_count + 1
            self.result.outcomes.append(Outcome(message, action, destination.name, redrive_count=new_count))
            return
        item = self._item(message, destination, poison)
        batch = self.pending.setdefault(destination.url, [])
        if batch and sum(i.size for i in batch) + item.size > MAX_BATCH_BYTES:
            self._submit(destination, self.pending.pop(destination.url))
            batch = self.pending.setdefault(destination.url, [])
        batch.append(item)
        if len(batch) >= self.batch_size:
            self._submit(destination, self.pending.pop(destination.url))

    def _open(self, message: DlqMessage) -> bool:
        """--only-open: True when the message's saga is still running; else report the skip."""
        assert self.saga_state is not None
        if not message.saga_id:
            self._skip(message, "no saga_id in the message (--only-open)")
            return False
        if message.saga_id not in self.states:
            self.states[message.saga_id] = self.saga_state(message.saga_id)
        state = self.states[message.saga_id]
        if state is None:
            self._skip(message, f"saga {message.saga_id} is not in the saga log (--only-open)")
            return False
        if state.terminal:
            self._skip(message, f"saga {message.saga_id} is {state.value} (--only-open)")
            return False
        return True

    def _item(self, message: DlqMessage, destination: QueueRef, poison: bool) -> _Item:
        size = len(message.body.encode("utf-8")) + sum(_attribute_size(k, v) for k, v in message.attributes.items())
        recorded = poison or (REDRIVE_COUNT_ATTRIBUTE in message.attributes or len(message.attributes) < MAX_ATTRIBUTES)
        return _Item(message, destination, poison, size + 64, recorded)

    def _submit(self, destination: QueueRef, items: list[_Item]) -> None:
        if self.stop:
            return  # held: released, untouched, when the run ends
        if self.limiter is not None:
            self.limiter.take(len(items))
        groups = {f"{destination.url}#{_group_id(i.message)}" for i in items if destination.fifo}
        # never two batches of one FIFO group in flight (order), never more than the pool
        while self.inflight and (
            len(self.inflight) >= self.request.concurrency or any(groups & g for g in self.inflight.values())
        ):
            self._wait_some()
        future = self.pool.submit(self._send_batch, destination, items)
        self.inflight[future] = groups

    def _flush(self) -> None:
        for url in list(self.pending):
            items = self.pending.pop(url)
            if items:
                self._submit(items[0].destination, items)

    def _wait_some(self) -> None:
        done, _ = wait(list(self.inflight), return_when=FIRST_COMPLETED)
        self._collect(list(done))

    def _drain(self) -> None:
        while self.inflight:
            self._wait_some()

    def _collect(self, done: list[Future[_BatchDone]]) -> None:
        for future in done:
            self.inflight.pop(future, None)
            batch = future.result()
            for outcome in batch.outcomes:
                if outcome.action in (Action.MOVED, Action.POISONED):
                    self.holder.forget(outcome.message.message_id)
            self.result.outcomes.extend(batch.outcomes)
            if batch.fatal is not None and self.result.error is None:
                self.result.error = batch.fatal
                self.stop = True
        if done:
            self._report()

    def _release(self) -> None:
        try:
            self.result.release_failures += self.holder.release(self.client, self.dlq)
        except SagactlError as exc:
            # they reappear on their own when the hold expires; say so rather than hide it
            self.result.release_failures += 1
            if self.result.error is None:
                self.result.error = exc

    def _report(self) -> None:
        if self.progress is not None:
            self.progress(self.result, self.total)

    # -- pool threads ----------------------------------------------------------------------

    def _entry(self, index: int, item: _Item) -> dict[str, Any]:
        message = item.message
        attributes = {name: _copy_attribute(value) for name, value in message.attributes.items()}
        if not item.poison and item.counter_recorded:
            attributes[REDRIVE_COUNT_ATTRIBUTE] = {"DataType": "Number", "StringValue": str(item.new_count)}
        entry: dict[str, Any] = {"Id": str(index), "MessageBody": message.body}
        if attributes:
            entry["MessageAttributes"] = attributes
        if item.destination.fifo:
            entry["MessageGroupId"] = _group_id(message)
            kind = "poison" if item.poison else "redrive"
            entry["MessageDeduplicationId"] = f"{message.message_id}:{kind}:{item.new_count}"[:128]
        trace = message.system.get("AWSTraceHeader")
        if trace:
            entry["MessageSystemAttributes"] = {"AWSTraceHeader": {"DataType": "String", "StringValue": trace}}
        return entry

    def _send_batch(self, destination: QueueRef, items: list[_Item]) -> _BatchDone:
        """Send ``items`` to ``destination`` in one call, then delete from the DLQ exactly
        those SQS acknowledged with the right body MD5. Never raises."""
        where = destination.name
        entries: list[Any] = [self._entry(n, item) for n, item in enumerate(items)]
        try:
            with sqs_errors(f"'{where}'", self.client):
                answer = self.client.send_message_batch(QueueUrl=destination.url, Entries=entries)
        except SagactlError as exc:
            fatal = exc if isinstance(exc, UnavailableError | NotFoundError) else None
            return _BatchDone([_failed(i, f"not sent to {where}: {exc.one_line()}") for i in items], fatal)
        except Exception as exc:  # a bug or an unexpected library error: count it, keep the message
            return _BatchDone([_failed(i, f"not sent to {where}: {type(exc).__name__}: {exc}") for i in items])
        outcomes: list[Outcome] = []
        sent: list[tuple[_Item, str]] = []
        failures = {str(f.get("Id")): f for f in answer.get("Failed", [])}
        successes = {str(s.get("Id")): s for s in answer.get("Successful", [])}
        for index, item in enumerate(items):
            key = str(index)
            if key in successes:
                ok = successes[key]
                new_id = str(ok.get("MessageId", ""))
                if item.message.body_matches_md5(ok.get("MD5OfMessageBody")):
                    sent.append((item, new_id))
                else:
                    outcomes.append(
                        _failed(item, f"sent to {where} as {new_id} but the body MD5 differs; kept in the DLQ")
                    )
            elif key in failures:
                failure = failures[key]
                code = failure.get("Code", "error")
                outcomes.append(_failed(item, f"not sent to {where}: {code}: {failure.get('Message', '')}"))
            else:
                outcomes.append(_failed(item, f"no result from SQS for this entry; kept in the DLQ ({where})"))
        if not sent:
            return _BatchDone(outcomes)
        return self._delete(sent, outcomes)

    def _delete(self, sent: list[tuple[_Item, str]], outcomes: list[Outcome]) -> _BatchDone:
        entries: list[Any] = [
            {"Id": str(n), "ReceiptHandle": item.message.receipt_handle} for n, (item, _) in enumerate(sent)
        ]
        duplicate = "a duplicate stays in the DLQ"
        try:
            with sqs_errors(f"'{self.dlq.name}'", self.client):
                answer = self.client.delete_message_batch(QueueUrl=self.dlq.url, Entries=entries)
        except SagactlError as exc:
            for item, new_id in sent:
                reason = f"sent to {item.destination.name} as {new_id} but not deleted ({exc.one_line()}); {duplicate}"
                outcomes.append(_failed(item, reason, new_id))
            fatal = exc if isinstance(exc, UnavailableError | NotFoundError) else None
            return _BatchDone(outcomes, fatal)
        failures = {str(f.get("Id")): f for f in answer.get("Failed", [])}
        for index, (item, new_id) in enumerate(sent):
            failure = failures.get(str(index))
            if failure is not None:
                code = failure.get("Code", "error")
                reason = f"sent to {item.destination.name} as {new_id} but not deleted ({code}); {duplicate}"
                outcomes.append(_failed(item, reason, new_id))
                continue
            note = None
            if not item.counter_recorded:
                note = f"redrive counter not recorded: the message already has {MAX_ATTRIBUTES} attributes"
            outcomes.append(
                Outcome(
                    item.message,
                    Action.POISONED if item.poison else Action.MOVED,
                    item.destination.name,
                    reason=note,
                    new_message_id=new_id,
                    redrive_count=item.new_count,
                )
            )
        return _BatchDone(outcomes)


def _group_id(message: DlqMessage) -> str:
    """The FIFO group a message goes to: its own, else its saga's (DESIGN: group = saga_id)."""
    return message.group_id or message.saga_id or message.message_id


def _failed(item: _Item, reason: str, new_id: str | None = None) -> Outcome:
    return Outcome(item.message, Action.FAILED, item.destination.name, reason=reason, new_message_id=new_id)


def redrive(
    client: SQSClient,
    request: RedriveRequest,
    *,
    saga_state: SagaStateLookup | None = None,
    clock: Clock | None = None,
    progress: Progress | None = None,
) -> RedriveResult:
    """Move the messages of ``request.dlq`` that pass its filters to their source queue.

    Raises SagactlError when nothing could start (bad options, queue missing, SQS
    unreachable). Once messages flow it returns a result whatever happens; an error that
    stopped the run early (SQS gone) or Ctrl-C is recorded in it, and its ``exit_code``
    says 0, 3 (some failed), 4 or 130.
    """
    request.validate()
    if request.only_open and saga_state is None:
        raise UsageError("--only-open needs the saga log", hint="pass --dsn or configure store.dsn")
    dlq = resolve_queue(client, request.dlq)
    destination = resolve_queue(client, request.to) if request.to else source_queue(client, dlq)
    poison = resolve_queue(client, request.poison_queue) if request.poison_queue else None
    for other, option in ((destination, "--to"), (poison, "--poison-queue")):
        if other is not None and other.url.rstrip("/") == dlq.url.rstrip("/"):
            raise UsageError(f"{option} {other.name} is the dead-letter queue itself")
    result = RedriveResult(dlq=dlq, destination=destination, poison=poison, dry_run=request.dry_run)
    _Mover(client, request, result, saga_state, clock or SystemClock(), progress).run()
    return result
