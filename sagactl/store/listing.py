"""The SELECTs behind ``list`` and saga ID prefixes on a native saga log, for both dialects.

A dialect differs here only in three expressions (``Dialect``); everything else is written
once. Statements use ``?`` placeholders (the PostgreSQL store turns them into ``%s``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sagactl.errors import UsageError
from sagactl.models import SagaRecord, SagaState, SagaSummary, SortKey, utcnow
from sagactl.store.base import SagaQuery

# Written literally (never as parameters) so the planners can prove the partial indexes apply.
ACTIVE = "state NOT IN ('completed', 'failed')"
MAX_CODE_POINT = 0x10FFFF


@dataclass(frozen=True, slots=True)
class Dialect:
    """``contains``: a literal, case-sensitive substring test of a column (``{column}``) for one
    parameter (no LIKE: ``%`` and ``_`` in the text mean themselves); ``job``: detail.job of a
    transition as text; ``saga_id``: the saga ID compared bytewise (code point order), as an
    index holds it."""

    contains: str
    job: str
    saga_id: str


SQLITE = Dialect(
    contains="instr({column}, ?) > 0",
    job="json_extract(detail, '$.job')",
    saga_id="saga_id",  # BINARY collation: memcmp of UTF-8, served by the primary key's index
)
POSTGRES = Dialect(
    contains="strpos({column}, ?) > 0",
    job="(detail->>'job')",
    saga_id='(saga_id COLLATE "C")',  # served by saga_log_id_prefix (schema v5)
)

_ORDER = {
    SortKey.AGE: "created_at, saga_id",
    SortKey.UPDATED: "updated_at, saga_id",
    SortKey.TYPE: "saga_type, created_at, saga_id",
    SortKey.NEWEST: "created_at DESC, saga_id DESC",  # saga_log_created read backwards
}


def prefix_successor(prefix: str) -> str | None:
    """The least string greater than every string that starts with ``prefix`` (code point
    order, which is UTF-8 byte order), or None when there is none (all U+10FFFF)."""
    for index in range(len(prefix) - 1, -1, -1):
        point = ord(prefix[index]) + 1
        if point > MAX_CODE_POINT:
            continue
        if 0xD800 <= point <= 0xDFFF:  # surrogates are not characters: the next one is U+E000
            point = 0xE000
        return prefix[:index] + chr(point)
    return None


def prefix_statement(prefix: str, limit: int, dialect: Dialect) -> tuple[str, list[Any]]:
    """IDs that start with ``prefix`` as an index range scan: [prefix, successor)."""
    params: list[Any] = [prefix]
    cond = f"{dialect.saga_id} >= ?"
    upper = prefix_successor(prefix)
    if upper is not None:
        cond += f" AND {dialect.saga_id} < ?"
        params.append(upper)
    params.append(int(limit))
    return f"SELECT saga_id FROM saga_log WHERE {cond} ORDER BY {dialect.saga_id} LIMIT ?", params


def touched_statement(dialect: Dialect) -> str:
    """The sagas a job wrote transitions for (one parameter: the job ID)."""
    return f"SELECT DISTINCT saga_id FROM saga_transitions WHERE {dialect.job} = ?"


def _filters(query: SagaQuery, encode_time: Callable[[Any], Any], dialect: Dialect) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    if query.stuck:
        now = query.now or utcnow()
        where.append(ACTIVE)
        where.append("(deadline_at < ? OR (deadline_at IS NULL AND updated_at < ?))")
        params += [encode_time(now), encode_time(query.idle_before or now)]
    if query.states:
        where.append(f"state IN ({', '.join('?' for _ in query.states)})")
        params += [s.value for s in query.states]
    if query.saga_type is not None:
        where.append("saga_type = ?")
        params.append(query.saga_type)
    if query.updated_before is not None:
        where.append("updated_at < ?")
        params.append(encode_time(query.updated_before))
    if query.saga_ids:
        where.append(f"saga_id IN ({', '.join('?' for _ in query.saga_ids)})")
        params += list(query.saga_ids)
    if query.created_from is not None:
        where.append("created_at >= ?")
        params.append(encode_time(query.created_from))
    if query.created_before is not None:
        where.append("created_at < ?")
        params.append(encode_time(query.created_before))
    if query.step is not None:
        where.append("current_step_name = ?")
        params.append(query.step)
    if query.error is not None:
        where.append(f"last_error IS NOT NULL AND {dialect.contains.format(column='last_error')}")
        params.append(query.error)
    if query.job is not None:
        where.append(f"saga_id IN ({touched_statement(dialect)})")
        params.append(query.job)
    return where, params


def list_statement(
    query: SagaQuery, encode_time: Callable[[Any], Any], columns: str, dialect: Dialect = SQLITE
) -> tuple[str, list[Any]]:
    """The SELECT behind ``list_sagas(query)`` and its parameters; ``encode_time`` turns a
    datetime into what the dialect stores, ``columns`` are what a row is read as."""
    where, params = _filters(query, encode_time, dialect)
    if not query.stuck and query.limit is not None and query.sort is None:
        # Compensating sagas first, then the oldest: each part read in created_at order from an
        # index (saga_log_state_created, saga_log_created), so a short listing never sorts the log.
        limit = int(query.limit)

        def part(state_test: str) -> str:
            cond = " AND ".join([state_test, *where])
            return f"SELECT * FROM (SELECT {columns} FROM saga_log WHERE {cond} ORDER BY created_at, saga_id LIMIT ?)"

        first, rest = part("state = 'compensating'"), part("state <> 'compensating'")
        statement = (
            f"SELECT * FROM ({first} AS compensating UNION ALL {rest} AS others) AS listed"
            " ORDER BY state = 'compensating' DESC, created_at, saga_id LIMIT ?"
        )
        return statement, [*params, limit, *params, limit, limit]
    statement = f"SELECT {columns} FROM saga_log"
    if where:
        statement += " WHERE " + " AND ".join(where)
    if query.sort is not None:
        statement += f" ORDER BY {_ORDER[query.sort]}"
    elif query.stuck:
        statement += " ORDER BY state = 'compensating' DESC, COALESCE(deadline_at, updated_at), saga_id"
    else:
        statement += " ORDER BY state = 'compensating' DESC, created_at, saga_id"
    if query.limit is not None:
        statement += " LIMIT ?"
        params.append(int(query.limit))
    return statement, params


def idle_timeout(saga: SagaRecord) -> float | None:
    """Seconds the current step may take per the saga's stored definition, or None."""
    if saga.current_step is None or not saga.definition:
        return None
    from sagactl.definitions.model import from_snapshot

    try:
        step = from_snapshot(saga.definition).steps[saga.current_step]
    except (KeyError, IndexError, TypeError, ValueError, UsageError):
        return None  # a snapshot this version cannot read: fall back to the default
    return step.compensation_timeout if saga.state is SagaState.COMPENSATING else step.timeout


def summarize(saga: SagaRecord) -> SagaSummary:
    """The list row of a saga record (the idle timeout only where it decides stuckness)."""
    needs_timeout = not saga.state.terminal and saga.deadline_at is None
    return SagaSummary(
        saga_id=saga.saga_id,
        saga_type=saga.saga_type,
        state=saga.state,
        current_step=saga.current_step,
        current_step_name=saga.current_step_name,
        created_at=saga.created_at,
        updated_at=saga.updated_at,
        deadline_at=saga.deadline_at,
        last_error=saga.last_error,
        idle_timeout=idle_timeout(saga) if needs_timeout else None,
        lease_owner=saga.lease_owner,
        lease_expires_at=saga.lease_expires_at,
    )
