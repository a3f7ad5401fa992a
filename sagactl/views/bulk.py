"""Failure groups and bulk actions -> output Documents (views.py holds the single-saga ones).
Secrets are masked on the way out, as in views.py."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sagactl.masking import mask_value
from sagactl.models import counted
from sagactl.views.output import Document, Table, humanize_seconds, rows_table
from sagactl.views.sagas import short

if TYPE_CHECKING:
    from sagactl.tools.bulk import BulkPlan, BulkReport
    from sagactl.tools.inspect import GroupResult

_FIELD_HEADERS = {"state": "STATE", "saga_type": "TYPE", "step": "STEP", "error": "ERROR SIGNATURE"}


def groups_document(result: GroupResult) -> Document:
    """``list --group-by``: an array of groups (key, the grouped fields, count, oldest and
    newest update, an example, every saga ID); a table of them; ``-q`` prints the keys."""
    data = mask_value([g.to_dict() for g in result.groups])
    fields = [name for name in _FIELD_HEADERS if result.groups and name in result.groups[0].fields]
    if not result.groups:
        from sagactl.tools.groups import FIELD_NAMES

        fields = [FIELD_NAMES[g] for g in result.by]

    def age(when: datetime | None) -> str:
        return "" if when is None else humanize_seconds(max(0.0, (result.now - when).total_seconds()))

    rows = []
    for group, row in zip(result.groups, data, strict=True):
        shown: dict[str, Any] = {"key": row["key"], "count": row["count"]}
        for name in fields:
            value = row[name]
            shown[name] = short(value, 70) if name == "error" and value else (value or "")
        shown["oldest"] = age(group.oldest)
        shown["newest"] = age(group.newest)
        shown["example"] = row["example_saga_id"]
        rows.append(shown)
    table = Table(
        columns=[
            ("key", "GROUP"),
            ("count", "SAGAS"),
            *((name, _FIELD_HEADERS[name]) for name in fields),
            ("oldest", "OLDEST"),
            ("newest", "NEWEST"),
            ("example", "EXAMPLE"),
        ],
        rows=rows,
        folding=("error",),
        droppable=("newest", "oldest", "example"),
    )
    flat = [{k: v for k, v in row.items() if k != "saga_ids"} for row in data]
    return Document(
        data=data,
        tables=[table],
        ids=[row["key"] for row in data],
        empty_message="no stuck sagas" if result.stuck else "no sagas match",
        delimited=rows_table(flat),
    )


def groups_summary_line(result: GroupResult) -> str:
    """The stderr line under the groups table: how many sagas in how many groups."""
    return f"{counted(result.total, 'saga')} in {counted(len(result.groups), 'group')}; act on one with --group KEY"


def plan_document(plan: BulkPlan) -> Document:
    """``--dry-run``: the job it would run as and, per selected saga, what would happen to it
    (``plan``) or why nothing would (``skip``); ``-q`` prints the IDs it would act on."""
    items = [item.to_dict() for item in plan.items]
    later = "over --max: left for the job's next run"
    items += [{**item.to_dict(), "plan": None, "skip": later} for item in plan.later]
    data = mask_value(
        {
            "job": plan.job.job_id,
            "continuing": plan.continuing,
            "action": plan.job.action,
            "selector": plan.selector_text,
            "reason": plan.job.reason,
            "started_by": plan.job.started_by,
            "dry_run": True,
            "sagas": items,
            "missing": plan.missing,
        }
    )
    rows = [
        {
            "saga_id": row["saga_id"],
            "saga_type": row["saga_type"] or "",
            "state": row["state"] or "",
            "step": row["current_step_name"] or "",
            "plan": row["plan"] if row["plan"] else f"skip: {row['skip']}",
        }
        for row in data["sagas"]
    ]
    table = Table(
        columns=[("saga_id", "SAGA"), ("saga_type", "TYPE"), ("state", "STATE"), ("step", "STEP"), ("plan", "PLAN")],
        rows=rows,
        folding=("plan",),
        droppable=("saga_type", "step", "state"),
    )
    details = [
        ("job", f"{data['job']} (continuing)" if plan.continuing else data["job"]),
        ("action", data["action"]),
        ("selector", data["selector"]),
    ]
    if data["reason"]:
        details.append(("reason", data["reason"]))
    return Document(
        data=data,
        tables=[table],
        details=details,
        ids=[item.saga_id for item in plan.to_act],
        empty_message="no sagas selected",
        delimited=rows_table(data["sagas"]),
    )


def _outcomes(report: BulkReport) -> str:
    states: dict[str, int] = {}
    for result in report.results:
        states[result.saga.state.value] = states.get(result.saga.state.value, 0) + 1
    return ", ".join(f"{n} {state}" for state, n in sorted(states.items(), key=lambda kv: -kv[1]))


def bulk_summary_line(report: BulkReport) -> str:
    """The stderr line every bulk run ends with: the job, what it did of what it selected,
    what it skipped and why, what is left."""
    plan = report.plan
    action = report.action
    selected = len(plan.items) + len(plan.later)
    if not selected:
        stuck = "stuck " if '--stuck' in plan.selector_text.split() else ""
        return f"no {stuck}sagas to {action.value}"
    skipped = [item for item in plan.items if item.skip is not None]
    before = [item for item in skipped if item.skip == "done by this job before"]
    others = [item for item in skipped if item.skip != "done by this job before"]
    tail = []
    if before:
        tail.append(f"{len(before)} done by this job before")
    if others:
        named = ", ".join(f"{i.saga_id} ({i.skip})" for i in others[:3])
        tail.append(f"skipped {len(others)}: {named}" + (", …" if len(others) > 3 else ""))
    if plan.later:
        tail.append(f"{len(plan.later)} left for the next run (--max)")
    rest = "".join(f"; {part}" for part in tail)
    if report.dry_run:
        would = f"would {action.value} {len(plan.to_act)} of {counted(selected, 'saga')}"
        return f"dry run: {plan.job.job_id} {would}{rest}; nothing was changed"
    done = len(report.results)
    outcome = _outcomes(report) or f"none {action.done}"
    failed = f"; failed {len(report.failures)}" if report.failures else ""
    job = f"{plan.job.job_id} ({plan.job.started_by})"
    line = f"{job}: {action.done} {done} of {counted(selected, 'saga')}: {outcome}{failed}{rest}"
    if report.stopped is not None:
        line += "; stopped: run the same command again to go on (the job skips what it did)"
    elif report.finished:
        line += f" in {humanize_seconds(report.elapsed) or '0s'}"
    return line
