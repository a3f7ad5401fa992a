"""Models -> output Documents: which JSON, which table columns, which IDs for ``-q``.

Secrets are masked here, on the way out, so no command can forget it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sagactl.config import mask_value
from sagactl.definition import Report
from sagactl.dlq import GroupBy, MoveTask, PeekResult, group_messages
from sagactl.models import SagaRecord, iso
from sagactl.output import Document, Table, cell, humanize_seconds
from sagactl.redrive import Action, RedriveResult
from sagactl.store.base import SagaSummary

if TYPE_CHECKING:
    from sagactl.inspect import ListResult, Stats
    from sagactl.operations import StuckResume


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    return humanize_seconds((end - start).total_seconds())


def saga_document(saga: SagaRecord) -> Document:
    """`show`, `run`, `resume`: the saga JSON plus details, steps and history tables."""
    data = mask_value(saga.to_dict())
    steps = Table(
        columns=[
            ("name", "STEP"),
            ("status", "STATUS"),
            ("attempts", "ATTEMPTS"),
            ("duration", "TOOK"),
            ("result", "RESULT"),
            ("error", "ERROR"),
        ],
        rows=[
            {
                "name": s["name"],
                "status": s["status"],
                "attempts": _attempts(s),
                "duration": _duration(step.started_at, step.finished_at),
                "result": _short(s["result"]),
                "error": s["error"],
            }
            for s, step in zip(data["steps"], saga.steps, strict=True)
        ],
        title="Steps",
    )
    history = Table(
        columns=[("at", "AT"), ("step_name", "STEP"), ("change", "CHANGE"), ("detail", "DETAIL")],
        rows=[
            {
                "at": t["at"],
                "step_name": t["step_name"] or "-",
                "change": f"{t['old_state'] or 'none'} -> {t['new_state']}",
                "detail": _short(t["detail"]) if t["detail"] else "",
            }
            for t in data["transitions"]
        ],
        title="Transitions",
    )
    details = [
        ("saga", saga.saga_id),
        ("type", saga.saga_type),
        ("state", saga.state.value),
        ("current step", _current(saga)),
        ("created", iso(saga.created_at) or ""),
        ("updated", iso(saga.updated_at) or ""),
    ]
    if saga.deadline_at and not saga.state.terminal:
        details.append(("deadline", iso(saga.deadline_at) or ""))
    if data["last_error"] and saga.state.value != "completed":
        details.append(("last error", data["last_error"]))
    return Document(data=data, tables=[steps, history], details=details, ids=[saga.saga_id])


def sagas_document(sagas: Sequence[SagaRecord]) -> Document:
    """Several run/resume results: an array of saga documents; tables concatenated."""
    docs = [saga_document(s) for s in sagas]
    if len(docs) == 1:
        return docs[0]
    summary = Table(
        columns=[
            ("saga_id", "SAGA"),
            ("saga_type", "TYPE"),
            ("state", "STATE"),
            ("last_error", "LAST ERROR"),
        ],
        rows=[{k: d.data[k] for k in ("saga_id", "saga_type", "state", "last_error")} for d in docs],
    )
    return Document(data=[d.data for d in docs], tables=[summary], ids=[s.saga_id for s in sagas])


def _current(saga: SagaRecord) -> str:
    if saga.current_step is None:
        return "-"
    return f"{saga.current_step} ({saga.current_step_name})"


def _attempts(step: dict[str, Any]) -> str:
    text = str(step["attempts"])
    if step.get("compensation_attempts"):
        text += f" +{step['compensation_attempts']}c"
    return text


def _short(value: Any, limit: int = 80) -> str:
    text = cell(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def validation_document(reports: Sequence[Report], files: Sequence[str]) -> Document:
    """`validate`: every problem, and per file the sagas that are valid."""
    problems = [
        {"file": p.file, "line": p.line, "column": p.column, "severity": p.severity, "message": p.message}
        for report in reports
        for p in report.problems
    ]
    sagas = [
        {"file": f, "saga": d.name, "steps": len(d.steps)}
        for f, report in zip(files, reports, strict=True)
        for d in report.definitions
    ]
    table = Table(
        columns=[("file", "FILE"), ("saga", "SAGA"), ("steps", "STEPS")],
        rows=sagas,
    )
    return Document(
        data={
            "valid": not any(p["severity"] == "error" for p in problems),
            "problems": problems,
            "sagas": sagas,
        },
        tables=[table],
        ids=[str(s["saga"]) for s in sagas],
    )


# -- inspection: list, show extras, stats, resume --stuck ------------------------------------


def list_document(result: ListResult) -> Document:
    """`list`: an array of list rows (DESIGN section 7 fields, plus last_error)."""
    data = mask_value([row.to_dict() for row in result.sagas])
    table = Table(
        columns=[
            ("saga_id", "SAGA"),
            ("saga_type", "TYPE"),
            ("state", "STATE"),
            ("step", "STEP"),
            ("updated_at", "UPDATED"),
            ("stuck_for", "STUCK FOR"),
            ("last_error", "LAST ERROR"),
        ],
        rows=[
            {
                "saga_id": row["saga_id"],
                "saga_type": row["saga_type"],
                "state": row["state"],
                "step": _step_label(row["current_step"], row["current_step_name"]),
                "updated_at": row["updated_at"],
                "stuck_for": humanize_seconds(row["stuck_for_seconds"]),
                "last_error": _short(row["last_error"], 60) if row["last_error"] else "",
            }
            for row in data
        ],
    )
    empty = "no stuck sagas" if result.stuck else "no sagas match"
    return Document(
        data=data,
        tables=[table],
        ids=[row["saga_id"] for row in data],
        empty_message=empty,
    )


def list_truncated_line(result: ListResult) -> str | None:
    """The stderr note when the default cap hid sagas."""
    if result.truncated_at is None:
        return None
    return (
        f"showing the first {result.truncated_at} sagas; narrow with --state/--type/--older-than"
        " or pass --limit 0 for all"
    )


def _step_label(index: int | None, name: str | None) -> str:
    if index is None and name is None:
        return "-"
    if index is None:
        return str(name)
    return f"{index} ({name})" if name else str(index)


def failing_steps(saga: SagaRecord) -> list[dict[str, Any]]:
    """Each step whose last attempt (action or compensation) ended with an error."""
    failing = []
    for step in saga.steps:
        if step.error is None:
            continue
        compensating = step.status.value in ("compensating", "compensated") or (
            step.compensation_attempts > 0 and step.status.value != "failed"
        )
        failing.append(
            {
                "name": step.name,
                "status": step.status.value,
                "phase": "compensation" if compensating else "action",
                "attempts": step.compensation_attempts if compensating else step.attempts,
                "error": step.error,
            }
        )
    return failing


def show_document(saga: SagaRecord | SagaSummary) -> Document:
    """`show`: the saga document (the same JSON as run/resume: each step's last error is in
    ``steps[].error``) with one detail line per failing step; for a mapped table, its row."""
    if isinstance(saga, SagaSummary):
        return _summary_document(saga)
    doc = saga_document(saga)
    for step in mask_value(failing_steps(saga)):
        doc.details.append(
            (f"{step['phase']} error at {step['name']}", f"{step['error']} (after {step['attempts']} attempts)")
        )
    return doc


def _summary_document(saga: SagaSummary) -> Document:
    data = mask_value(
        {
            "saga_id": saga.saga_id,
            "saga_type": saga.saga_type,
            "state": saga.state.value,
            "current_step": saga.current_step,
            "current_step_name": saga.current_step_name,
            "data": None,
            "created_at": iso(saga.created_at),
            "updated_at": iso(saga.updated_at),
            "deadline_at": iso(saga.deadline_at),
            "last_error": saga.last_error,
            "steps": [],
            "transitions": [],
        }
    )
    details = [
        ("saga", data["saga_id"]),
        ("type", data["saga_type"]),
        ("state", data["state"]),
        ("current step", _step_label(saga.current_step, saga.current_step_name)),
        ("created", data["created_at"] or ""),
        ("updated", data["updated_at"] or ""),
    ]
    if data["deadline_at"]:
        details.append(("deadline", data["deadline_at"]))
    if data["last_error"]:
        details.append(("last error", data["last_error"]))
    return Document(data=data, details=details, ids=[saga.saga_id])


def stats_document(stats: Stats) -> Document:
    """`stats`: JSON with totals and per type/state rows; a table of the non-zero rows;
    ``-o prometheus`` renders the gauges named in the README."""
    data = stats.to_dict()
    totals = data["totals"]
    table = Table(
        columns=[
            ("saga_type", "TYPE"),
            ("state", "STATE"),
            ("count", "COUNT"),
            ("stuck", "STUCK"),
            ("oldest", "OLDEST"),
        ],
        rows=[
            {
                "saga_type": row["saga_type"],
                "state": row["state"],
                "count": row["count"],
                "stuck": row["stuck"] if row["state"] in ("started", "pending", "compensating") else "",
                "oldest": humanize_seconds(row["oldest_age_seconds"]),
            }
            for row in data["sagas"]
            if row["count"] or row["stuck"]
        ],
        title="By type and state",
    )
    details = [
        ("store", data["store"]),
        (
            "sagas",
            f"{totals['active']} active ({totals['stuck']} stuck), {totals['completed']} completed,"
            f" {totals['failed']} failed",
        ),
    ]
    if data["oldest_active_age_seconds"] is not None:
        details.append(("oldest active", humanize_seconds(data["oldest_active_age_seconds"])))
    return Document(
        data=data,
        tables=[table],
        details=details,
        prometheus=lambda: stats_prometheus(stats),
        empty_message="no sagas recorded",
    )


def stats_prometheus(stats: Stats) -> str:
    """Text exposition (node_exporter textfile collector) via prometheus_client."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    sagas = Gauge(
        "sagactl_sagas",
        "Sagas in the saga log by type and state.",
        ["saga_type", "state"],
        registry=registry,
    )
    stuck = Gauge(
        "sagactl_sagas_stuck",
        "Stuck sagas (as sagactl list --stuck finds them) by type and state.",
        ["saga_type", "state"],
        registry=registry,
    )
    oldest = Gauge(
        "sagactl_oldest_active_saga_age_seconds",
        "Age of the oldest non-terminal saga of each type.",
        ["saga_type"],
        registry=registry,
    )
    ages: dict[str, float] = {}
    for row in stats.rows:
        sagas.labels(row.saga_type, row.state.value).set(row.count)
        if not row.state.terminal:
            stuck.labels(row.saga_type, row.state.value).set(row.stuck)
        age = stats.age_of(row)
        if age is not None:
            ages[row.saga_type] = max(age, ages.get(row.saga_type, 0.0))
    for saga_type, age in ages.items():
        oldest.labels(saga_type).set(age)
    return generate_latest(registry).decode("utf-8")


def stuck_resume_line(report: StuckResume) -> str:
    """The summary of `resume --stuck` (stderr)."""
    if report.found == 0:
        return "no stuck sagas to resume"
    by_state: dict[str, int] = {}
    for result in report.results:
        by_state[result.saga.state.value] = by_state.get(result.saga.state.value, 0) + 1
    outcome = ", ".join(f"{n} {state}" for state, n in sorted(by_state.items())) or "none resumed"
    line = f"resumed {len(report.results)} of {report.found} stuck sagas: {outcome}"
    if report.skipped:
        line += f"; skipped {len(report.skipped)}: " + "; ".join(f"{s} ({why})" for s, why in report.skipped)
    return line


# -- dead-letter queues: dlq list, redrive ------------------------------------------------------

BODY_PREVIEW = 60  # characters of a message body in a terminal table
MOVED_ROWS = 50  # a redrive table lists moved messages only when there are at most this many


def _body_cell(body: str, truncate: bool) -> str:
    return _short(" ".join(body.split()), BODY_PREVIEW) if truncate else body


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
    )
    return Document(
        data=data,
        tables=[table],
        details=_peek_details(result),
        ids=_unique([m.saga_id for m in result.messages]),
        empty_message=f"no messages in {result.queue.name}",
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
                "key": _short(d[key] or "-", 80),
                "count": d["count"],
                "max_receive_count": d["max_receive_count"],
                "oldest_sent_at": d["oldest_sent_at"],
                "other": _short(", ".join(d[other]), 80),
            }
            for d in data
        ],
    )
    return Document(
        data=data,
        tables=[table],
        details=_peek_details(result),
        ids=[str(d[key]) for d in data if d[key]],
        empty_message=f"no messages in {result.queue.name}",
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
    if result.error is not None:
        details.append(("stopped", result.error.one_line()))
    moved = [o.message.saga_id for o in result.outcomes if o.action in (Action.MOVED, Action.POISONED)]
    return Document(data=data, tables=[table], details=details, ids=_unique(moved))


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
    )
    return Document(
        data=data,
        tables=[table],
        ids=[str(t.task_handle) for t in tasks if t.task_handle],
        empty_message="no move tasks for this queue",
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
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
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
