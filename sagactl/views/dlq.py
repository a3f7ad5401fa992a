"""Dead-letter queue results -> output Documents (`dlq list`, `redrive`), and the redrive
progress bar. Kept apart from views.py so the saga commands never import the SQS modules."""

from __future__ import annotations

from collections.abc import Sequence

from sagactl.dlq.messages import GroupBy, group_messages
from sagactl.dlq.outcomes import Action, RedriveResult
from sagactl.dlq.peek import PeekResult
from sagactl.dlq.tasks import MoveTask
from sagactl.masking import mask_value
from sagactl.views.output import Document, Table, cell, humanize_seconds, rows_table
from sagactl.views.sagas import short

BODY_PREVIEW = 60  # characters of a message body in a terminal table
MOVED_ROWS = 50  # a redrive table lists moved messages only when there are at most this many

# csv/tsv columns: the JSON fields (docs/dlq.md), every value whole
MESSAGE_FIELDS = (
    "message_id",
    "saga_id",
    "step_name",
    "command",
    "error",
    "receive_count",
    "redrive_count",
    "sent_at",
    "age_seconds",
    "group_id",
    "source_arn",
    "attributes",
    "body",
)
GROUP_FIELDS = ("count", "oldest_sent_at", "newest_sent_at", "max_receive_count", "saga_ids", "step_names")
OUTCOME_FIELDS = (
    "message_id",
    "saga_id",
    "step_name",
    "command",
    "action",
    "reason",
    "destination",
    "new_message_id",
    "redrive_count",
    "receive_count",
    "group_id",
    "sent_at",
    "body",
)
TASK_FIELDS = (
    "task_handle",
    "status",
    "source_arn",
    "destination_arn",
    "max_messages_per_second",
    "approximate_messages_moved",
    "approximate_messages_to_move",
    "failure_reason",
    "started_at",
)


def _body_cell(body: str, truncate: bool) -> str:
    return short(" ".join(body.split()), BODY_PREVIEW) if truncate else body


def _unique(values: Sequence[str | None]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def dlq_messages_document(result: PeekResult, *, truncate: bool = True) -> Document:
    """`dlq list`: one JSON object per message, bodies whole; bodies cut short in a table."""
    data = mask_value([m.to_dict(result.listed_at) for m in result.messages])
    table = Table(
        columns=[
            ("message_id", "MESSAGE"),
            ("saga_id", "SAGA"),
            ("step_name", "STEP"),
            ("command", "COMMAND"),
            ("receive_count", "RECEIVES"),
            ("age", "AGE"),
            ("body", "BODY"),
        ],
        rows=[
            {
                "message_id": d["message_id"],
                "saga_id": d["saga_id"],
                "step_name": d["step_name"],
                "command": d["command"],
                "receive_count": d["receive_count"],
                "age": humanize_seconds(d["age_seconds"]),
                "body": _body_cell(d["body"], truncate),
            }
            for d in data
        ],
        folding=("body",),
        droppable=("command", "age", "message_id", "receive_count", "step_name"),  # IDs stay whole
    )
    return Document(
        data=data,
        tables=[table],
        details=_peek_details(result),
        ids=_unique([m.saga_id for m in result.messages]),
        empty_message=f"no messages in {result.queue.name}",
        delimited=rows_table(data, MESSAGE_FIELDS),
    )


def _peek_details(result: PeekResult) -> list[tuple[str, str]]:
    queue = result.queue
    depth = queue.count("ApproximateNumberOfMessages")
    details = [
        ("queue", queue.name),
        ("listed", f"{len(result.messages)} of {result.scanned} received (queue held ~{depth})"),
    ]
    if queue.count("ApproximateNumberOfMessagesNotVisible"):
        details.append(("in flight", f"{queue.count('ApproximateNumberOfMessagesNotVisible')} (not listed)"))
    if result.truncated:
        details.append(("limit", "reached: more messages may follow"))
    return details


def dlq_groups_document(result: PeekResult, by: GroupBy) -> Document:
    """`dlq list --group-by`: one JSON object per group, biggest first."""
    groups = group_messages(result.messages, by)
    data = mask_value([g.to_dict() for g in groups])
    key = groups[0].key_field if groups else {"saga": "saga_id", "step": "step_name", "error": "error"}[by.value]
    other = "step_names" if by is GroupBy.SAGA else "saga_ids"
    table = Table(
        columns=[
            ("key", key.upper().replace("_", " ")),
            ("count", "MESSAGES"),
            ("max_receive_count", "MAX RECEIVES"),
            ("oldest_sent_at", "OLDEST"),
            ("other", other.upper().replace("_", " ")),
        ],
        rows=[
            {
                "key": short(d[key] or "-", 80),
                "count": d["count"],
                "max_receive_count": d["max_receive_count"],
                "oldest_sent_at": d["oldest_sent_at"],
                "other": short(", ".join(d[other]), 80),
            }
            for d in data
        ],
        folding=("other", "key") if key == "error" else ("other",),
        droppable=("oldest_sent_at", "max_receive_count"),
    )
    return Document(
        data=data,
        tables=[table],
        details=_peek_details(result),
        ids=[str(d[key]) for d in data if d[key]],
        empty_message=f"no messages in {result.queue.name}",
        delimited=rows_table(data, (key, *GROUP_FIELDS, "message_ids")),
    )


def redrive_document(result: RedriveResult, *, truncate: bool = True) -> Document:
    """`redrive`: the summary {moved, skipped, poisoned, failed, dry_run, messages}; the table
    lists every message not moved (and the moved ones when there are few)."""
    data = mask_value(result.to_dict())
    show_moved = result.moved <= MOVED_ROWS
    rows = [
        {
            "action": m["action"],
            "message_id": m["message_id"],
            "saga_id": m["saga_id"],
            "step_name": m["step_name"],
            "destination": m["destination"],
            "reason": _body_cell(m["reason"] or "", truncate) if truncate else m["reason"],
        }
        for m in data["messages"]
        if show_moved or m["action"] != Action.MOVED.value
    ]
    table = Table(
        columns=[
            ("action", "ACTION"),
            ("message_id", "MESSAGE"),
            ("saga_id", "SAGA"),
            ("step_name", "STEP"),
            ("destination", "TO"),
            ("reason", "REASON"),
        ],
        rows=rows,
        title="Messages",
        folding=("reason",),
        droppable=("destination", "message_id", "step_name"),
    )
    route = f"{result.dlq.name} -> {result.destination.name if result.destination else '?'}"
    details = [("redrive", route + (" (dry run)" if result.dry_run else ""))]
    if result.dry_run:
        details.append(("would move", str(data["would_move"])))
        if data["would_poison"]:
            details.append(("would poison", str(data["would_poison"])))
    details += [
        ("moved", str(result.moved)),
        ("skipped", str(result.skipped)),
        ("poisoned", str(result.poisoned) + (f" (to {result.poison.name})" if result.poison else "")),
        ("failed", str(result.failed)),
        ("not matching", str(result.unmatched)),
    ]
    if result.release_failures:
        details.append(("still hidden", f"{result.release_failures} (visible again when their hold expires)"))
    if data["canary"] is not None:
        canary = data["canary"]
        details.append(("canary", f"{canary['verdict']}: {canary['reason']}"))
    if result.error is not None:
        details.append(("stopped", result.error.one_line()))
    moved = [o.message.saga_id for o in result.outcomes if o.action in (Action.MOVED, Action.POISONED)]
    return Document(
        data=data,
        tables=[table],
        details=details,
        ids=_unique(moved),
        delimited=rows_table(data["messages"], OUTCOME_FIELDS),
    )


def redrive_summary_line(result: RedriveResult) -> str:
    """One line for stderr: what a runbook log needs to show."""
    if result.dry_run:
        text = f"dry run: would move {result.count(Action.WOULD_MOVE)}"
        if result.count(Action.WOULD_POISON):
            text += f", would poison {result.count(Action.WOULD_POISON)}"
        return f"{text}, skipped {result.skipped}; nothing moved"
    text = f"moved {result.moved}, skipped {result.skipped}, poisoned {result.poisoned}, failed {result.failed}"
    if result.failed:
        text += "; failed messages stay in the DLQ (see the REASON column or -o json)"
    if result.stopped:
        text += f"; {result.stopped}"
    elif result.canary is not None:
        text += f"; canary {result.canary.to_dict()['verdict']}: {result.canary.to_dict()['reason']}"
    return text


def move_tasks_document(tasks: Sequence[MoveTask]) -> Document:
    """`redrive --status`: the queue's recent SQS move tasks."""
    data = [t.to_dict() for t in tasks]
    table = Table(
        columns=[
            ("task_handle", "TASK HANDLE"),
            ("status", "STATUS"),
            ("approximate_messages_moved", "MOVED"),
            ("approximate_messages_to_move", "TO MOVE"),
            ("max_messages_per_second", "RATE"),
            ("started_at", "STARTED"),
            ("failure_reason", "FAILURE"),
        ],
        rows=data,
        folding=("failure_reason",),
        droppable=("started_at", "max_messages_per_second", "approximate_messages_to_move"),
    )
    return Document(
        data=data,
        tables=[table],
        ids=[str(t.task_handle) for t in tasks if t.task_handle],
        empty_message="no move tasks for this queue",
        delimited=rows_table(data, TASK_FIELDS),
    )


def move_task_document(task: MoveTask) -> Document:
    """`redrive --native` / `--cancel`: the task, in the redrive summary's shape where it can."""
    data = {
        "native": True,
        **task.to_dict(),
        "moved": task.moved,
        "skipped": 0,
        "poisoned": 0,
        "failed": 0,
        "dry_run": False,
        "messages": [],
    }
    details = [(k.replace("_", " "), cell(v)) for k, v in task.to_dict().items() if v is not None]
    return Document(data=data, details=details, ids=[task.task_handle] if task.task_handle else [])


class _RedriveBar:
    """A rich progress bar on stderr, updated by the redrive's scanning thread."""

    def __init__(self) -> None:
        from sagactl.views.live import progress_bar

        self.bar = progress_bar()
        self.task = self.bar.add_task("redrive", total=None)

    def __enter__(self) -> _RedriveBar:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def __call__(self, result: RedriveResult, total: int | None) -> None:
        described = f"moved {result.moved}  failed {result.failed}  skipped {result.skipped}"
        size = max(total or 0, result.scanned) or None
        self.bar.update(self.task, completed=result.scanned, total=size, description=described)


def redrive_progress() -> _RedriveBar:
    """The terminal progress bar for `redrive` (the caller decides it is a terminal)."""
    return _RedriveBar()
