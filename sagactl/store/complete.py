"""The saga-log reads behind shell completion: saga IDs by prefix (a range over the primary
key, bounded) and the step names of one saga."""

from __future__ import annotations

from typing import Any

from sagactl.store.sql import SqlStore


def ids_with_prefix(store: SqlStore, prefix: str, limit: int) -> list[str]:
    """Up to ``limit`` saga IDs starting with ``prefix``, in order. The primary key's index is
    read as a range (``prefix <= id < prefix with its last character raised``), and the
    prefix is checked exactly on what the range returns."""
    params: list[Any]
    if not prefix:
        statement, params = "SELECT saga_id FROM saga_log ORDER BY saga_id LIMIT ?", [limit]
    else:
        upper = prefix[:-1] + chr(min(ord(prefix[-1]) + 1, 0x10FFFF))
        statement = (
            "SELECT saga_id FROM saga_log WHERE saga_id >= ? AND saga_id < ? AND substr(saga_id, 1, ?) = ?"
            " ORDER BY saga_id LIMIT ?"
        )
        params = [prefix, upper, len(prefix), prefix, limit]
    return [str(row[0]) for row in store._query(statement, params, "completing saga IDs")]


def step_names(store: SqlStore, saga_id: str) -> list[str]:
    """The steps of one saga, in order (none for an unknown saga)."""
    saga = store.get(saga_id)
    return [] if saga is None else [step.name for step in saga.steps]
