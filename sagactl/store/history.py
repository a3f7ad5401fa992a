"""The writes that change a saga after the fact, on a native saga log (both dialects): a failed
saga linked to its rerun, a saga moved to a new definition, and retention: finding finished
sagas to prune, reading them whole for the archive, deleting them with their histories in
short transactions.

A batch is found by an index range on (state, created_at) (or (saga_type, state, created_at)),
continued after the last one found, so each batch reads a short range however many sagas
were deleted before it. Only a saga whose state is ``completed`` or ``failed`` can be deleted:
the condition is written literally into the DELETE, whatever a caller asks for.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sagactl.models import SagaRecord, SagaState, StateCount, Transition, utcnow
from sagactl.store.base import LeaseLostError, PruneQuery, SagaExistsError
from sagactl.store.sql import Row, SqlStore

# A failed saga is linked to its rerun once: the condition is what makes two reruns exclusive.
LINK_RERUN = (
    "UPDATE saga_log SET rerun_as = ?, updated_at = ? WHERE saga_id = ? AND state = 'failed' AND rerun_as IS NULL"
)
FINISHED = "state IN ('completed', 'failed')"
_TRANSITION_COLUMNS = "id, saga_id, step_name, old_state, new_state, detail, at"

Run = Callable[[str, Sequence[Any]], list[tuple[Any, ...]]]


def _marks(count: int) -> str:
    return ", ".join("?" for _ in range(count))


class HistoryStore(SqlStore):
    """SqlStore with reruns, migrations and the retention queries (``prune``)."""

    lock_rows = ""  # what makes the chosen rows stay as read until the delete (PostgreSQL: FOR UPDATE)

    def _insert_rerun(self, row: Row, transitions: Sequence[Transition], original: str, at: Any) -> bool | None:
        """In one transaction: link saga ``original`` to the new one (rerun_as, updated_at ``at``)
        if it is failed and not rerun yet, insert ``row``, append the transitions. False when the
        original was not linked, None when the ID is taken (nothing written either way)."""
        raise NotImplementedError

    def create_rerun(self, saga: SagaRecord, transitions: Sequence[Transition], note: Transition) -> bool:
        assert saga.rerun_of is not None
        linked = self._insert_rerun(self._row(saga), [*transitions, note], saga.rerun_of, self._encode_time(note.at))
        if linked is None:
            raise SagaExistsError(f"saga {saga.saga_id} already exists in {self.info.location}")
        return linked

    def migrate(self, saga: SagaRecord, transitions: Sequence[Transition], *, owner: str) -> None:
        row = {
            "saga_id": saga.saga_id,
            **self._moving(saga),
            "steps": self._encode_json([s.to_stored() for s in saga.steps]),
            "definition": self._encode_json(saga.definition),
        }
        if not self._rewrite(row, {}, transitions, owner):
            raise LeaseLostError(f"lost the lease on saga {saga.saga_id}: another process is driving it")

    def _transaction(self, doing: str) -> AbstractContextManager[Run]:
        """One short write transaction; yields a function running one statement (``?``
        placeholders) in it and returning its rows (none for a statement without)."""
        raise NotImplementedError

    def _matching(self, query: PruneQuery) -> tuple[str, list[Any]]:
        """The WHERE conditions (after the state's) of ``query`` and their parameters. A saga
        finished before the cutoff was created before it too: created_at bounds the index range."""
        cutoff = self._encode_time(query.before)
        where = f"{FINISHED} AND created_at < ? AND updated_at < ?"
        params: list[Any] = [cutoff, cutoff]
        if query.saga_type is not None:
            where += " AND saga_type = ?"
            params.append(query.saga_type)
        return where, params

    def prunable(
        self, query: PruneQuery, state: SagaState, after: tuple[datetime, str] | None, limit: int
    ) -> list[tuple[str, datetime, str]]:
        where, params = self._matching(query)
        statement = f"SELECT saga_id, created_at, saga_type FROM saga_log WHERE state = ? AND {where}"
        params = [state.value, *params]
        if after is not None:
            at = self._encode_time(after[0])
            statement += " AND created_at >= ? AND (created_at > ? OR saga_id > ?)"
            params += [at, at, after[1]]
        statement += " ORDER BY created_at, saga_id LIMIT ?"
        rows = self._query(statement, [*params, int(limit)], "finding finished sagas to prune")
        return [(str(r[0]), self._decode_time(r[1]) or utcnow(), str(r[2])) for r in rows]

    def prunable_counts(self, query: PruneQuery) -> list[StateCount]:
        where, params = self._matching(query)
        states = [s.value for s in query.states if s.terminal]
        if not states:
            return []
        statement = (
            f"SELECT saga_type, state, count(*) FROM saga_log WHERE state IN ({_marks(len(states))}) AND {where}"
            " GROUP BY saga_type, state ORDER BY saga_type, state"
        )
        rows = self._query(statement, [*states, *params], "counting finished sagas to prune")
        return [StateCount(str(r[0]), SagaState(r[1]), int(r[2])) for r in rows]

    def records(self, saga_ids: Sequence[str]) -> list[SagaRecord]:
        if not saga_ids:
            return []
        marks = _marks(len(saga_ids))
        doing = "reading sagas to archive"
        rows = self._query(f"SELECT {self._columns()} FROM saga_log WHERE saga_id IN ({marks})", saga_ids, doing)
        found = {r.saga_id: r for r in map(self._record, rows)}
        history = self._query(
            f"SELECT {_TRANSITION_COLUMNS} FROM saga_transitions WHERE saga_id IN ({marks}) ORDER BY saga_id, id",
            saga_ids,
            doing,
        )
        for r in history:
            saga = found.get(r[1])
            if saga is not None:
                saga.transitions.append(self._transition(r))
        return [found[i] for i in saga_ids if i in found]

    def delete_finished(self, saga_ids: Sequence[str], query: PruneQuery) -> list[str]:
        states = [s.value for s in query.states if s.terminal]
        if not saga_ids or not states:
            return []
        where, params = self._matching(query)
        chosen = (
            f"SELECT saga_id FROM saga_log WHERE saga_id IN ({_marks(len(saga_ids))})"
            f" AND state IN ({_marks(len(states))}) AND {where}{self.lock_rows}"
        )
        with self._transaction(f"pruning {len(saga_ids)} finished sagas") as run:
            gone = [str(r[0]) for r in run(chosen, [*saga_ids, *states, *params])]
            if gone:
                marks = _marks(len(gone))
                run(f"DELETE FROM saga_transitions WHERE saga_id IN ({marks})", gone)
                run(f"DELETE FROM saga_log WHERE saga_id IN ({marks}) AND {FINISHED}", gone)
        return gone
