"""``db init``, ``db recount``, ``validate``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sagactl.config import Settings
from sagactl.ops import store_for
from sagactl.store.base import StateCount

if TYPE_CHECKING:
    from sagactl import validation


def init_db(settings: Settings) -> tuple[str, int]:
    """Create or upgrade the schema; returns (where, version)."""
    with store_for(settings) as store:
        return store.info.location, store.init_schema()


@dataclass(frozen=True, slots=True)
class Recount:
    """What ``db recount`` found: each (type, state) counter before and after."""

    location: str
    before: list[StateCount]
    after: list[StateCount]

    def rows(self) -> list[dict[str, Any]]:
        was = {(c.saga_type, c.state.value): c.count for c in self.before}
        now = {(c.saga_type, c.state.value): c.count for c in self.after}
        return [
            {"saga_type": t, "state": state, "before": was.get((t, state), 0), "after": now.get((t, state), 0)}
            for t, state in sorted(was.keys() | now.keys())
        ]

    def to_dict(self) -> dict[str, Any]:
        rows = self.rows()
        return {
            "store": self.location,
            "sagas": sum(r["after"] for r in rows),
            "corrected": sum(1 for r in rows if r["before"] != r["after"]),
            "counters": rows,
        }


def recount(settings: Settings) -> Recount:
    """``db recount``: rebuild the per-type/state counters ``stats`` reads from saga_log."""
    with store_for(settings) as store:
        before, after = store.recount()
        return Recount(store.info.location, before, after)


def validate_files(files: Sequence[str]) -> list[validation.Report]:
    """Every problem of every file, and the definitions that are valid."""
    from sagactl import validation

    return [validation.check_file(f) for f in files]
