"""``preset: eventuate``: Eventuate Tram Sagas' ``eventuate.saga_instance``, as its
SagaInstanceRepositoryJdbc writes it.

The table has no state column and no time: the state is three nullable booleans (end_state,
compensating, failed; NULL reads as false) and ``state_name``, the orchestrator's JSON
``{"currentlyExecuting": N, "compensating": …, "endState": …, "failed": …}`` ("????" for an
instant while a saga is created). The key is (saga_type, saga_id): one ID ``TYPE/ID`` that
``show`` takes back.

    failed        failed, or ended while compensating (a compensated end)
    completed     ended otherwise
    compensating  compensating, not ended
    pending       anything else: running

Without a time, ``list --stuck`` lists every compensating saga (and says so once on stderr).
"""

from __future__ import annotations

from typing import Any

from sagactl.store.foreign import Column, Kind
from sagactl.store.fragments import Dialect
from sagactl.store.presets.base import Preset, TableReader

TEXT = (Kind.TEXT,)
BOOLEAN = (Kind.BOOLEAN, Kind.INTEGER)


class Eventuate(Preset):
    name = "eventuate"
    framework = "Eventuate Tram Sagas"

    def block(self, dialect: Dialect, columns: dict[str, Column] | None) -> dict[str, Any]:
        return {
            "table": "eventuate.saga_instance" if dialect == "postgres" else "saga_instance",
            "columns": {
                "saga_id": ["saga_type", "saga_id"],
                "saga_type": "saga_type",
                "current_step": {"column": "state_name", "path": "currentlyExecuting"},
                "updated_at": None,  # no time at all
            },
            "states": {
                "failed": [{"failed": True}, {"end_state": True, "compensating": True}],
                "completed": {"end_state": True},
                "compensating": {"compensating": True},
                "pending": {},
            },
        }

    def check(self, store: TableReader, columns: dict[str, Column]) -> None:
        wanted = [
            ("saga_type", TEXT),
            ("saga_id", TEXT),
            ("state_name", TEXT),
            ("end_state", BOOLEAN),
            ("compensating", BOOLEAN),
            ("failed", BOOLEAN),
        ]
        why = (
            "the saga_instance of Eventuate Tram Sagas with its end_state, compensating and failed columns"
            " (tables created before those columns keep the state only in state_name)"
        )
        self.require(store, columns, wanted, why)


PRESET = Eventuate()
