"""SQS's own message move tasks (``redrive --native``, ``--status``, ``--cancel``): a
server-side move of every message, no filters."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sagactl.aws import queue_arn, resolve_queue, sqs_errors
from sagactl.errors import NotFoundError, UsageError
from sagactl.models import iso

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

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
    if not math.isfinite(rate) or rate != int(rate) or not 1 <= rate <= NATIVE_MAX_RATE:
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
