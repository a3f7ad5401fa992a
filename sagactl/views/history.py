"""prune results -> output Documents (which JSON, which table, the summary line)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sagactl.models import counted
from sagactl.views.output import Document, Table

if TYPE_CHECKING:
    from sagactl.tools.retention import PruneResult


def prune_document(result: PruneResult) -> Document:
    """``prune``: what was deleted (or, dry run, would be) per type and state."""
    data = result.to_dict()
    table = Table(
        columns=[("saga_type", "TYPE"), ("state", "STATE"), ("count", "WOULD PRUNE" if result.dry_run else "PRUNED")],
        rows=data["counts"],
    )
    details = [
        ("finished before", data["cutoff"]),
        ("states", ", ".join(data["states"])),
    ]
    if result.saga_type is not None:
        details.append(("type", result.saga_type))
    details.append(("would prune" if result.dry_run else "pruned", str(data["matched"])))
    if result.archive is not None:
        details.append(("archived", f"{result.archived} to {result.archive}"))
    return Document(data=data, tables=[table], details=details, empty_message="no finished saga matched")


def prune_summary_line(result: PruneResult) -> str:
    """The stderr line after ``prune``."""
    if result.dry_run:
        matched = counted(sum(c.count for c in result.counts), "finished saga")
        return f"dry run: {matched} would be pruned; nothing deleted"
    line = f"pruned {counted(result.pruned, 'finished saga')} in {counted(result.batches, 'batch', 'batches')}"
    if result.archive is not None:
        line += f", archived {result.archived} to {result.archive} first"
    if result.interrupted:
        line += "; interrupted: the rest is still in the log, run prune again"
    return line
