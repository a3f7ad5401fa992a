"""Models -> output Documents: which JSON, which table columns, which IDs for ``-q``.

Secrets are masked here, on the way out, so no command can forget it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sagactl.masking import mask_value
from sagactl.models import SUMMARY_FIELDS, SagaRecord, SagaSummary, StepRecord, counted, iso, utcnow
from sagactl.views.output import Document, Table, cell, humanize_seconds, rows_table

if TYPE_CHECKING:
    from sagactl.definitions.validation import Report
    from sagactl.tools.inspect import ListResult, Recount, Stats


def _duration(start: datetime | None, end: datetime | None) -> str:
    if start is None or end is None:
        return ""
    return humanize_seconds((end - start).total_seconds())


def saga_document(saga: SagaRecord) -> Document:
    """`show`, `run`, `resume`: the saga JSON plus details, steps and history tables; csv/tsv
    print one row per step with the saga ID."""
    data = mask_value(saga.to_dict())
    steps = _steps_table(data["steps"], saga.steps)
    history = Table(
        columns=[("at", "AT"), ("step_name", "STEP"), ("change", "CHANGE"), ("detail", "DETAIL")],
        rows=[
            {
                "at": t["at"],
                "at_offset": _offset(transition.at, saga.created_at),
                "step_name": t["step_name"] or "-",
                "change": f"{t['old_state'] or 'none'} -> {t['new_state']}",
                "detail": short(detail) if detail else "",
            }
            for t, detail, transition in zip(
                data["transitions"], _shown_details(data["transitions"]), saga.transitions, strict=True
            )
        ],
        title="Transitions",
        folding=("detail",),
        droppable=TRANSITIONS_DROP,
        shorter=(("at", "at_offset"),),
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
    details += [(label, link) for label, link in (("rerun of", saga.rerun_of), ("rerun as", saga.rerun_as)) if link]
    if saga.trace_id:  # look the saga up in Jaeger, Tempo...: one trace across every participant
        details.append(("trace", saga.trace_id))
    if data["last_error"] and saga.state.value != "completed":
        details.append(("last error", data["last_error"]))
    return Document(
        data=data,
        tables=[steps, history],
        details=details,
        ids=[saga.saga_id],
        delimited=_step_rows([data]),
    )


# What show's tables give up on a narrow terminal, in order, before a cell is split: the
# steps' RESULT (it is in -o json), TOOK and ATTEMPTS; the transitions' AT becomes the time
# since the saga was created (+1.234s), then DETAIL goes. ERROR and DETAIL fold meanwhile.
STEPS_DROP = ("result", "duration", "attempts")
TRANSITIONS_DROP = ("at", "detail")


def _offset(at: datetime | None, created: datetime | None) -> str:
    """A transition's time as the time since the saga was created: ``+0.103s``, ``+2m3s``."""
    if at is None or created is None:
        return ""
    seconds = max(0.0, (at - created).total_seconds())
    return f"+{seconds:.3f}s" if seconds < 60 else f"+{humanize_seconds(seconds)}"


def _steps_table(shown: Sequence[dict[str, Any]], steps: Sequence[StepRecord]) -> Table:
    """The Steps table: each step's JSON (masked) beside its record (for the durations)."""
    return Table(
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
                "result": short(s["result"]),
                "error": _errors(s),
            }
            for s, step in zip(shown, steps, strict=True)
        ],
        title="Steps",
        folding=("result", "error"),
        droppable=STEPS_DROP,
    )


def _shown_details(transitions: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The history table's details: every transition names its writer (``owner``), shown only
    where the driver changes (the JSON keeps them all)."""
    shown, previous = [], None
    for t in transitions:
        detail, owner = dict(t["detail"] or {}), (t["detail"] or {}).get("owner")
        shown.append({k: v for k, v in detail.items() if k != "owner" or owner != previous})
        previous = owner or previous
    return shown


STEP_FIELDS = ("saga_id", *StepRecord("").to_dict())


def _step_rows(sagas: Sequence[dict[str, Any]]) -> Table:
    """csv/tsv of sagas: one row per step, the saga ID first, every field whole."""
    return rows_table([{"saga_id": saga["saga_id"], **step} for saga in sagas for step in saga["steps"]], STEP_FIELDS)


def _errors(step: dict[str, Any]) -> str:
    """The ERROR cell: the action's error and, while or once it ran, the compensation's."""
    action, compensation = step["error"], step.get("compensation_error")
    if not compensation:
        return action or ""
    return f"{action}; compensation: {compensation}" if action else f"compensation: {compensation}"


def sagas_document(sagas: Sequence[SagaRecord], *, array: bool = False) -> Document:
    """run/resume results: one saga's document; several (or any number with ``array``, as
    `resume` prints) an array of them, shown as a summary table."""
    docs = [saga_document(s) for s in sagas]
    if len(docs) == 1:
        doc = docs[0]
        if array:
            doc.data = [doc.data]
        return doc
    summary = Table(
        columns=[
            ("saga_id", "SAGA"),
            ("saga_type", "TYPE"),
            ("state", "STATE"),
            ("last_error", "LAST ERROR"),
        ],
        rows=[{k: d.data[k] for k in ("saga_id", "saga_type", "state", "last_error")} for d in docs],
        whole=("saga_id",),
        folding=("last_error",),
        droppable=("saga_type",),
    )
    return Document(
        data=[d.data for d in docs],
        tables=[summary],
        ids=[s.saga_id for s in sagas],
        delimited=_step_rows([d.data for d in docs]),
    )


def _current(saga: SagaRecord) -> str:
    if saga.current_step is None:
        return "-"
    return f"{saga.current_step} ({saga.current_step_name})"


def _attempts(step: dict[str, Any]) -> str:
    text = str(step["attempts"])
    if step.get("compensation_attempts"):
        text += f" +{step['compensation_attempts']}c"
    return text


def short(value: Any, limit: int = 80) -> str:
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
    """`list`: an array of list rows (DESIGN section 7 fields, plus last_error); on a terminal
    with AGE and the ID whole (list_views), ``-o wide`` with every field."""
    from sagactl.views.listing import driver, step_label, terminal_table, wide_table

    data = mask_value([row.to_dict() for row in result.sagas])
    table = Table(
        columns=[
            ("saga_id", "SAGA"),
            ("saga_type", "TYPE"),
            ("state", "STATE"),
            ("step", "STEP"),
            ("updated_at", "UPDATED"),
            ("stuck_for", "STUCK FOR"),
            ("driver", "DRIVER"),
            ("last_error", "LAST ERROR"),
        ],
        rows=[
            {
                "saga_id": row["saga_id"],
                "saga_type": row["saga_type"],
                "state": row["state"],
                "step": step_label(row["current_step"], row["current_step_name"]),
                "updated_at": row["updated_at"],
                "stuck_for": humanize_seconds(row["stuck_for_seconds"]),
                "driver": driver(listed.saga.lease_owner, listed.saga.lease_expires_at, result.now),
                "last_error": short(row["last_error"], 60) if row["last_error"] else "",
            }
            for row, listed in zip(data, result.sagas, strict=True)
        ],
    )
    empty = "no stuck sagas" if result.stuck else "no sagas match"
    return Document(
        data=data,
        tables=[table],
        ids=[row["saga_id"] for row in data],
        empty_message=empty,
        delimited=rows_table(data, LIST_FIELDS),
        terminal_tables=[terminal_table(data, result)],
        wide=[wide_table(data, result)],
    )


LIST_FIELDS = (*SUMMARY_FIELDS, "stuck_for_seconds", "last_error")


def list_truncated_line(result: ListResult) -> str | None:
    """The stderr note when the default cap hid sagas."""
    if result.truncated_at is None:
        return None
    return (
        f"showing the first {result.truncated_at} sagas; narrow with --state/--type/--older-than"
        " or pass --limit 0 for all"
    )


def driver_line(saga: SagaRecord, now: datetime) -> str:
    """`show`'s driver line: the lease owner and until when, or when a worker takes the saga up."""
    owner, expires = saga.lease_owner, saga.lease_expires_at
    if owner:
        if expires is None:
            return owner
        if expires < now:
            return f"{owner} (lease expired {iso(expires)}: a worker takes it over)"
        return f"{owner} (lease until {iso(expires)})"
    if saga.state.terminal:
        return "none"
    if saga.wake_at is not None:
        when = "since" if saga.wake_at <= now else "at"
        return f"none; due for a worker {when} {iso(saga.wake_at)}"
    return "none; nothing is due until a reply comes or an operator acts"


def failing_steps(saga: SagaRecord) -> list[dict[str, Any]]:
    """Each error a step keeps: its action's (also once compensated: why the saga failed) and
    its compensation's (one not done yet), with the attempts it took."""
    failing = []
    for step in saga.steps:
        common = {"name": step.name, "status": step.status.value}
        if step.error is not None:
            failing.append({**common, "phase": "action", "attempts": step.attempts, "error": step.error})
        if step.compensation_error is not None:
            failing.append(
                {
                    **common,
                    "phase": "compensation",
                    "attempts": step.compensation_attempts,
                    "error": step.compensation_error,
                }
            )
    return failing


def show_document(saga: SagaRecord | SagaSummary, now: datetime | None = None) -> Document:
    """`show`: the saga document (the same JSON as run/resume: each step's last error is in
    ``steps[].error``) with a line saying who drives it and one per failing step; for a mapped
    table, its row (no lease: the lease fields are null)."""
    if isinstance(saga, SagaSummary):
        return _summary_document(saga)
    from sagactl.views.timeline import Headline, TimelineView, build

    doc = saga_document(saga)
    now = now or utcnow()
    doc.details.insert(4, ("driver", driver_line(saga, now)))
    doc.lead, doc.extras = [Headline(saga)], [TimelineView(build(saga, now))]  # a terminal's only
    for step in mask_value(failing_steps(saga)):
        doc.details.append(
            (
                f"{step['phase']} error at {step['name']}",
                f"{step['error']} (after {counted(step['attempts'], 'attempt')})",
            )
        )
    return doc


def _summary_document(saga: SagaSummary) -> Document:
    """`show` of a foreign table's saga: its row (sagactl's state, then the framework's own),
    the steps the framework recorded where a preset reads them, and notes on what it cannot
    tell (a step in flight, an error's format)."""
    from sagactl.views.listing import step_label

    data = mask_value(
        {
            "saga_id": saga.saga_id,
            "saga_type": saga.saga_type,
            "state": saga.state.value,
            **({"source_state": saga.source_state} if saga.source_state is not None else {}),
            "current_step": saga.current_step,
            "current_step_name": saga.current_step_name,
            "data": None,
            "created_at": iso(saga.created_at),
            "updated_at": iso(saga.updated_at),
            "deadline_at": iso(saga.deadline_at),
            "last_error": saga.last_error,
            "lease_owner": None,
            "lease_expires_at": None,
            "wake_at": None,
            "rerun_of": None,
            "rerun_as": None,
            "trace_id": None,
            "steps": [step.to_dict() for step in saga.steps],
            "transitions": [],
            **({"notes": list(saga.notes)} if saga.notes else {}),
        }
    )
    details = [
        ("saga", data["saga_id"]),
        ("type", data["saga_type"]),
        ("state", data["state"]),
    ]
    if saga.source_state is not None:
        details.append(("source state", data["source_state"]))
    details += [
        ("current step", step_label(saga.current_step, saga.current_step_name)),
        ("created", data["created_at"] or ""),
        ("updated", data["updated_at"] or ""),
    ]
    if data["deadline_at"]:
        details.append(("deadline", data["deadline_at"]))
    if data["last_error"]:
        details.append(("last error", data["last_error"]))
    details += [("note", note) for note in data.get("notes", [])]
    if saga.steps:
        tables = [_steps_table(data["steps"], saga.steps)]
        delimited = _step_rows([data])
    else:
        tables = []
        delimited = rows_table([{k: v for k, v in data.items() if k not in ("data", "steps", "transitions", "notes")}])
    return Document(data=data, tables=tables, details=details, ids=[saga.saga_id], delimited=delimited)


def stats_document(stats: Stats) -> Document:
    """`stats`: JSON with totals and per type/state rows; a table of the non-zero rows;
    ``-o prometheus`` renders the gauges named in docs/inspecting.md."""
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
        delimited=rows_table(
            data["sagas"], ("saga_type", "state", "count", "stuck", "oldest_created_at", "oldest_age_seconds")
        ),
    )


def stats_prometheus(stats: Stats) -> str:
    """Text exposition (node_exporter textfile collector): the log's metrics of ``stats`` alone
    (``stats -o prometheus`` adds budgets and dead-letter queues through sagactl.views.metrics)."""
    from sagactl.tools.monitoring import LogSnapshot
    from sagactl.views.metrics import log_exposition

    return log_exposition(LogSnapshot(stats))


def db_init_document(store: str, version: int) -> Document:
    """`db init -o …`: where the saga log is and its schema version (DSN password masked)."""
    data = {"store": mask_value(store), "schema_version": version}
    return Document(data=data, details=[("saga log", data["store"]), ("schema version", str(version))])


def run_summary_line(saga: SagaRecord) -> str | None:
    """The stderr line after run/resume/resolve/abort for a saga that did not complete."""
    state = saga.state.value
    if state == "completed":
        return None
    if state == "started":
        return f"saga {saga.saga_id} recorded (started); a worker drives it, or 'sagactl resume {saga.saga_id}'"
    undone = [s.name for s in reversed(saga.steps) if s.status.value == "compensated"]
    failed = saga.failed_step()
    if state == "failed":
        where = f" at {failed.name}: {failed.error or 'no error recorded'}" if failed else ""
        comp = f"; compensated {', '.join(undone)}" if undone else "; nothing to compensate"
        return f"saga {saga.saga_id} failed{where}{comp}"
    blocked = saga.current_step_name or "?"
    return (
        f"saga {saga.saga_id} is {state} at {blocked}: {saga.last_error or 'no error recorded'};"
        f" fix the participant, then 'sagactl resume {saga.saga_id}'"
    )


def recount_document(recount: Recount) -> Document:
    """``db recount``: every counter before and after; the corrected ones matter."""
    data = mask_value(recount.to_dict())
    table = Table(
        columns=[("saga_type", "TYPE"), ("state", "STATE"), ("before", "BEFORE"), ("after", "AFTER")],
        rows=data["counters"],
        title="Counters",
    )
    details = [
        ("store", data["store"]),
        ("sagas", str(data["sagas"])),
        ("corrected", counted(data["corrected"], "counter")),
    ]
    return Document(data=data, tables=[table], details=details, empty_message="no sagas recorded")
