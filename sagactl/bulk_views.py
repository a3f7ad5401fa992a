"""Failure groups and bulk actions -> output Documents (views.py holds the single-saga ones).
Secrets are masked on the way out, as in views.py."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sagactl.masking import mask_value
from sagactl.output import Document, Table, humanize_seconds, rows_table
from sagactl.views import short

if TYPE_CHECKING:
    from sagactl.inspect import GroupResult

_FIELD_HEADERS = {"state": "STATE", "saga_type": "TYPE", "step": "STEP", "error": "ERROR SIGNATURE"}


def groups_document(result: GroupResult) -> Document:
    """``list --group-by``: an array of groups (key, the grouped fields, count, oldest and
    newest update, an example, every saga ID); a table of them; ``-q`` prints the keys."""
    data = mask_value([g.to_dict() for g in result.groups])
    fields = [name for name in _FIELD_HEADERS if result.groups and name in result.groups[0].fields]
    if not result.groups:
        from sagactl.groups import FIELD_NAMES

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
    return f"{result.total} sagas in {len(result.groups)} groups; act on one with --group KEY"
