"""`list` on a terminal and with ``-o wide``: the AGE column, IDs that never fold, the columns a
narrow terminal leaves out first; and the frames of ``list --watch``.

The plain table a pipe gets and the JSON stay as views.list_document builds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sagactl.models import counted, iso, parse_iso, utcnow
from sagactl.views.output import Document, Table, humanize_seconds

if TYPE_CHECKING:
    from sagactl.tools.inspect import ListResult

# what a narrow terminal leaves out, first to last; SAGA and STATE always stay
DROP_ORDER = ("updated", "driver", "saga_type", "stuck_for", "step", "last_error", "age")


def age(since: str | None, now: datetime) -> str:
    """How long ago an ISO time was, for a cell: ``3m12s``; empty when unknown."""
    when = parse_iso(since)
    if when is None:
        return ""
    return humanize_seconds(max(0.0, (now - when).total_seconds()))


def driver(owner: str | None, expires: datetime | None, now: datetime | None) -> str:
    """Who drives a saga now, for a table cell: its lease owner, marked when the lease ran out
    (the driver stopped renewing it: a worker takes the saga over); empty when nobody does."""
    if not owner:
        return ""
    return f"{owner} (lapsed)" if expires is not None and now is not None and expires < now else owner


def step_label(index: int | None, name: str | None) -> str:
    if index is None and name is None:
        return "-"
    if index is None:
        return str(name)
    return f"{index} ({name})" if name else str(index)


def _short(text: str | None, limit: int) -> str:
    if not text:
        return ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


HEADERS = {
    "saga_id": "SAGA",
    "saga_type": "TYPE",
    "state": "STATE",
    "step": "STEP",
    "age": "AGE",
    "created_at": "CREATED",
    "updated": "UPDATED",
    "updated_at": "UPDATED",
    "deadline_at": "DEADLINE",
    "stuck_for": "STUCK FOR",
    "driver": "DRIVER",
    "lease_expires_at": "LEASE UNTIL",
    "last_error": "LAST ERROR",
    "source_state": "SOURCE STATE",
}
TERMINAL_COLUMNS = ("saga_id", "saga_type", "state", "step", "age", "updated", "stuck_for", "driver", "last_error")
WIDE_COLUMNS = (
    "saga_id",
    "saga_type",
    "state",
    "step",
    "age",
    "created_at",
    "updated_at",
    "deadline_at",
    "stuck_for",
    "driver",
    "lease_expires_at",
    "last_error",
)


def _cells(data: Sequence[dict[str, Any]], result: ListResult) -> list[dict[str, Any]]:
    """Each listed saga's fields, with the cells both terminal tables derive from them."""
    now = result.now or utcnow()
    return [
        {
            **row,
            "step": step_label(row["current_step"], row["current_step_name"]),
            "age": age(row["created_at"], now),
            "updated": f"{age(row['updated_at'], now)} ago" if row["updated_at"] else "",
            "stuck_for": humanize_seconds(row["stuck_for_seconds"]),
            "driver": driver(listed.saga.lease_owner, listed.saga.lease_expires_at, now),
        }
        for row, listed in zip(data, result.sagas, strict=True)
    ]


def terminal_table(data: Sequence[dict[str, Any]], result: ListResult) -> Table:
    """The rich table: relative times (AGE since created, UPDATED ago), the ID whole."""
    rows = [{**row, "last_error": _short(row["last_error"], 60)} for row in _cells(data, result)]
    return Table(
        columns=[(key, HEADERS[key]) for key in TERMINAL_COLUMNS],
        rows=rows,
        whole=("saga_id",),
        droppable=DROP_ORDER,
        folding=("last_error",),
    )


def wide_table(data: Sequence[dict[str, Any]], result: ListResult) -> Table:
    """``-o wide``: every field, the last error whole, times as recorded and AGE; a foreign
    table's rows with the framework's own state beside sagactl's (SOURCE STATE)."""
    keys = list(WIDE_COLUMNS)
    if any("source_state" in row for row in data):
        keys.insert(keys.index("state") + 1, "source_state")
    return Table(columns=[(key, HEADERS[key]) for key in keys], rows=_cells(data, result), whole=("saga_id",))


# -- list --watch ---------------------------------------------------------------------------


_VIEWS = ("tables", "terminal_tables", "wide")


class Frames:
    """Successive ``list`` documents of ``list --watch``, each marked against the one before:
    ``+`` for a saga that appeared, ``-`` for one that cleared (shown once more, dimmed, last)."""

    def __init__(self) -> None:
        self.number = self.count = 0
        self.appeared: list[str] = []
        self.cleared: list[str] = []
        self._before: dict[str, dict[str, dict[str, Any]]] | None = None  # view -> saga ID -> row

    def mark(self, doc: Document) -> Document:
        """``doc`` (a list document) with the mark column, in every table view."""
        self.number += 1
        listed = [str(row["saga_id"]) for row in doc.data]
        self.count = len(listed)
        before = self._before
        self.appeared = [i for i in listed if before is not None and i not in before["tables"]]
        self.cleared = [i for i in (before or {}).get("tables", {}) if i not in set(listed)]
        self._before = {}
        for view in _VIEWS:
            tables: list[Table] | None = getattr(doc, view)
            if not tables:
                continue
            table = tables[0]
            self._before[view] = {str(r["saga_id"]): r for r in table.rows}
            gone = [{**before[view][i], "mark": "-", "_style": "dim strike"} for i in self.cleared] if before else []
            rows = [{"mark": "+" if r["saga_id"] in self.appeared else "", **r} for r in table.rows] + gone
            marked = Table(
                [("mark", ""), *table.columns],
                rows,
                table.title,
                ("mark", *table.whole),
                table.droppable,
                table.folding,
                table.shorter,
            )
            setattr(doc, view, [marked, *tables[1:]])
        doc.empty_message = None  # an empty frame still shows its header line
        return doc

    def line(self, now: datetime | None, interval: float, what: str) -> str:
        """The line above a frame: what is watched, when, how many, what changed."""
        changes = f", {len(self.appeared)} new, {len(self.cleared)} cleared" if self.number > 1 else ""
        every = f"{interval:g}s" if interval >= 1 and interval == int(interval) else humanize_seconds(interval)
        return f"every {every}: {what}  {iso(now or utcnow())}  {counted(self.count, 'saga')}{changes}"

    def json(self, now: datetime | None, data: list[dict[str, Any]]) -> dict[str, Any]:
        """``--watch -o jsonl``: one object per frame."""
        return {"at": iso(now), "sagas": data, "appeared": self.appeared, "cleared": self.cleared}
