"""Models -> output Documents: which JSON, which table columns, which IDs for ``-q``.

Secrets are masked here, on the way out, so no command can forget it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sagactl.config import mask_value
from sagactl.definition import Report
from sagactl.models import SagaRecord, iso
from sagactl.output import Document, Table, cell, humanize_seconds


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
