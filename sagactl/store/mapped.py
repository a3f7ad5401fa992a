"""A read-only view of another orchestrator's saga table on PostgreSQL (``store.table`` in
sagactl.yaml), for ``list``, ``show`` and ``stats``.

Table and column names come from the config file and are only ever quoted identifiers
(psycopg.sql.Identifier, schema-qualified names included); every value is a bound
parameter. The session is read-only (SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY):
nothing is ever written to the mapped table or its database.

``store.states`` keys and values match in any case (``completed: COMPLETED`` reads
``Completed`` rows too): the state column is compared as ``lower(state::text)``. A row in a
state the mapping does not name is never shown as something else: ``show`` names its state in
the error, ``stats`` names the unmapped states it left out in a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from sagactl.config import TableMapping
from sagactl.errors import UnavailableError, UsageError
from sagactl.models import ACTIVE_STATES, SUMMARY_FIELDS, SagaState, SagaSummary, SortKey, StateCount, parse_iso
from sagactl.store.base import ActiveCount, SagaQuery, StoreInfo
from sagactl.store.listing import prefix_successor
from sagactl.store.postgres import RETRY_HINT, connect, failed, first_line, masked

log = logging.getLogger("sagactl.store")

# Logical columns sagactl understands; the first three default to their own names.
REQUIRED_COLUMNS = ("saga_id", "state", "updated_at")
OPTIONAL_COLUMNS = (
    "saga_type",
    "current_step",
    "current_step_name",
    "created_at",
    "deadline_at",
    "last_error",
)

# Type OIDs of the ID column that decide how a prefix is looked up.
UUID_OID = 2950
TEXT_OIDS = frozenset({25, 1043, 1042, 19})  # text, varchar, bpchar, name
UUID_LOW = "00000000-0000-0000-0000-000000000000"
UUID_HIGH = "ffffffff-ffff-ffff-ffff-ffffffffffff"
HEX = frozenset("0123456789abcdef")

_SELECT_KEYS = (*SUMMARY_FIELDS, "last_error")


def _split_table(name: str) -> tuple[str, ...]:
    parts = tuple(name.split("."))
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise UsageError(
            f"store.table {name!r} is not a table name",
            hint="use TABLE or SCHEMA.TABLE (names are used exactly as written, case included)",
        )
    return parts


class MappedTableStore:
    """Read-only saga view over ``mapping.table`` reached with ``dsn``."""

    def __init__(self, dsn: str, mapping: TableMapping) -> None:
        if not dsn.startswith(("postgresql://", "postgres://")):
            raise UsageError(
                "a mapped saga table (store.table) needs a PostgreSQL DSN",
                hint="set store.dsn to postgresql://user@host/db",
            )
        unknown = sorted(set(mapping.columns) - set(REQUIRED_COLUMNS) - set(OPTIONAL_COLUMNS))
        if unknown:
            known = ", ".join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)
            raise UsageError(f"store.columns: unknown column key(s) {', '.join(unknown)} (known: {known})")
        states = {key.lower(): value for key, value in mapping.states.items()}
        bad_states = sorted(set(states) - {s.value for s in SagaState})
        if bad_states:
            known = ", ".join(s.value for s in SagaState)
            raise UsageError(f"store.states: unknown state(s) {', '.join(bad_states)} (known: {known})")
        self.table_name = mapping.table
        self.table = sql.Identifier(*_split_table(mapping.table))
        self.columns: dict[str, str] = {c: mapping.columns.get(c, c) for c in REQUIRED_COLUMNS}
        self.columns.update({c: mapping.columns[c] for c in OPTIONAL_COLUMNS if c in mapping.columns})
        for key, column in self.columns.items():
            if not column:
                raise UsageError(f"store.columns.{key} is empty")
        # compared in lower case: the column as lower(state::text), these as given, lowered
        self.values: dict[SagaState, str] = {s: states.get(s.value, s.value).lower() for s in SagaState}
        if len(set(self.values.values())) != len(self.values):
            raise UsageError("store.states maps two sagactl states to the same value (compared in any case)")
        self.states_by_value = {v: s for s, v in self.values.items()}
        self.dsn = dsn
        self.info = StoreInfo(kind="mapped", location=f"{masked(dsn)} table {mapping.table}")
        self._conn = connect(dsn, read_only=True)

    # -- SQL pieces ---------------------------------------------------------------------

    def _col(self, key: str) -> sql.Composable:
        column = self.columns.get(key)
        return sql.Identifier(column) if column else sql.NULL

    def _select(self) -> sql.Composed:
        columns = sql.SQL(", ").join(self._col(k) for k in _SELECT_KEYS)
        return sql.SQL("SELECT {} FROM {}").format(columns, self.table)

    def _state(self) -> sql.Composable:
        """The state column as compared: in lower case, whatever its type (text, enum)."""
        return sql.SQL("lower(CAST({} AS text))").format(self._col("state"))

    def _state_in(self, states: Sequence[SagaState], params: list[Any]) -> sql.Composable:
        params.extend(self.values[s] for s in states)
        return sql.SQL("{} IN ({})").format(self._state(), sql.SQL(", ").join(sql.Placeholder() for _ in states))

    def _mapped(self, state: Any) -> SagaState | None:
        return self.states_by_value.get(str(state).lower())

    def _unmapped(self, saga_id: Any, state: Any) -> UsageError:
        known = ", ".join(f"{s.value}: {v}" for s, v in self.values.items())
        return UsageError(
            f"saga {saga_id} in mapped table {self.table_name} is in state {str(state)!r}, which store.states"
            f" does not map ({known})",
            hint="add that value under store.states in the config file",
        )

    def _summary(self, row: Sequence[Any]) -> SagaSummary | None:
        saga_id, saga_type, state, step, step_name, created, updated, deadline, error = row
        mapped = self._mapped(state)
        if mapped is None:
            return None
        current_step: int | None = None
        if isinstance(step, int):
            current_step = step
        elif step is not None and str(step).lstrip("-").isdigit():
            current_step = int(str(step))
        elif step is not None and step_name is None:
            step_name = str(step)  # the other orchestrator records the step by name
        return SagaSummary(
            saga_id=str(saga_id),
            saga_type=str(saga_type) if saga_type is not None else self.table_name,
            state=mapped,
            current_step=current_step,
            current_step_name=str(step_name) if step_name is not None else None,
            created_at=_when(created),
            updated_at=_when(updated),
            deadline_at=_when(deadline),
            last_error=str(error) if error is not None else None,
        )

    @contextmanager
    def _db(self, doing: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        where = f"mapped table {self.table_name} in {masked(self.dsn)}"
        try:
            yield self._conn
        except psycopg.errors.UndefinedTable:
            raise UsageError(
                f"{where}: table not found", hint="check store.table in the config file (case-sensitive)"
            ) from None
        except psycopg.errors.UndefinedColumn as exc:
            raise UsageError(
                f"{where}: {first_line(exc)}", hint="check store.columns in the config file (case-sensitive)"
            ) from None
        except psycopg.errors.InsufficientPrivilege as exc:
            raise UnavailableError(f"{where}: {first_line(exc)}", hint="grant SELECT on it") from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise failed(where, doing, self.dsn, exc, RETRY_HINT) from None
        except (psycopg.ProgrammingError, psycopg.DataError) as exc:
            raise UsageError(
                f"{where}: {doing} failed: {first_line(exc)}",
                hint="check store.columns: times must be timestamp or timestamptz columns",
            ) from None

    def _needs(self, key: str, option: str) -> sql.Composable:
        if key not in self.columns:
            raise UsageError(f"{option} needs store.columns.{key} in the config file")
        return self._col(key)

    def _id_kind(self) -> str:
        """What the ID column is: "uuid", "text" (text, varchar...) or "other" (read as text)."""
        known: str | None = self.__dict__.get("_kind")
        if known is None:
            statement = sql.SQL("SELECT {} FROM {} LIMIT 0").format(self._col("saga_id"), self.table)
            with self._db("reading the ID column's type") as conn:
                cursor = conn.execute(statement)
                oid = cursor.description[0].type_code if cursor.description else 0
            known = "uuid" if oid == UUID_OID else "text" if oid in TEXT_OIDS else "other"
            self.__dict__["_kind"] = known
        return known

    def _ids_in(self, saga_ids: Sequence[str], params: list[Any]) -> sql.Composable:
        """The ID column among ``saga_ids``, natively (its index serves it) where its type
        allows; IDs a uuid column cannot hold match nothing."""
        kind = self._id_kind()
        column = self._col("saga_id")
        if kind == "uuid":
            saga_ids = [i for i in saga_ids if _as_uuid(i) is not None]
        elif kind == "other":
            column = sql.SQL("CAST({} AS text)").format(column)
        if not saga_ids:
            return sql.SQL("FALSE")
        params.extend(saga_ids)
        return sql.SQL("{} IN ({})").format(column, sql.SQL(", ").join(sql.Placeholder() for _ in saga_ids))

    def ids_with_prefix(self, prefix: str, limit: int) -> list[str]:
        """IDs starting with ``prefix``. A uuid column is read as the uuid range the prefix
        spans (its own btree serves it); a text column as the range [prefix, successor) in the
        "C" collation (served by an index in that collation); any other type is scanned."""
        found = self._prefix_statement(prefix, limit)
        if found is None:
            return []  # no uuid's text starts with it
        with self._db(f"looking up saga IDs starting {prefix}") as conn:
            return [str(r[0]) for r in conn.execute(*found).fetchall()]

    def explain_prefix(self, prefix: str, limit: int = 11) -> str:
        """EXPLAIN of ``ids_with_prefix`` (proof of the index range scan)."""
        found = self._prefix_statement(prefix, limit)
        assert found is not None, "no uuid starts with that"
        with self._db("explaining a query") as conn:
            return "\n".join(str(r[0]) for r in conn.execute(sql.SQL("EXPLAIN ") + found[0], found[1]))

    def _prefix_statement(self, prefix: str, limit: int) -> tuple[sql.Composed, list[Any]] | None:
        kind = self._id_kind()
        column = self._col("saga_id")
        params: list[Any]
        if kind == "uuid":
            low = _uuid_bound(prefix, UUID_LOW)
            if low is None:
                return None
            cond = sql.SQL("{c} BETWEEN %s AND %s").format(c=column)
            params = [low, _uuid_bound(prefix, UUID_HIGH)]
            ordered: sql.Composable = column
        else:
            text = column if kind == "text" else sql.SQL("CAST({} AS text)").format(column)
            ordered = sql.SQL('{} COLLATE "C"').format(text)
            cond = sql.SQL("{} >= %s").format(ordered)
            params = [prefix]
            upper = prefix_successor(prefix)
            if upper is not None:
                cond = sql.SQL("{} AND {} < %s").format(cond, ordered)
                params.append(upper)
        statement = sql.SQL("SELECT {c} FROM {t} WHERE {cond} ORDER BY {o} LIMIT %s").format(
            c=column, t=self.table, cond=cond, o=ordered
        )
        return statement, [*params, int(limit)]

    def _filters(self, query: SagaQuery, where: list[sql.Composable], params: list[Any]) -> None:
        """The filters beyond state, type and stuckness (list --saga-id/--since/--until/--step/
        --error), each on the column the config maps, refused when it maps none."""
        if query.job is not None:
            raise UsageError(
                "--job reads what a bulk job recorded in a sagactl saga log: a mapped table has no jobs",
                hint="point this command at the saga log with --dsn or another --context",
            )
        if query.saga_ids:
            where.append(self._ids_in(query.saga_ids, params))
        for value, op, option in ((query.created_from, ">=", "--since"), (query.created_before, "<", "--until")):
            if value is not None:
                where.append(sql.SQL("{} {} %s").format(self._needs("created_at", option), sql.SQL(op)))
                params.append(value)
        if query.step is not None:
            if "current_step_name" in self.columns or "current_step" not in self.columns:
                step = self._needs("current_step_name", "--step")
            else:  # the other orchestrator records the step by name in its step column
                step = self._col("current_step")
            where.append(sql.SQL("CAST({} AS text) = %s").format(step))
            params.append(query.step)
        if query.error is not None:
            error = self._needs("last_error", "--error")
            where.append(sql.SQL("strpos(CAST({} AS text), %s) > 0").format(error))
            params.append(query.error)

    def _order(self, query: SagaQuery, params: list[Any]) -> sql.Composable:
        updated, deadline = self._col("updated_at"), self._col("deadline_at")
        created = self._col("created_at") if "created_at" in self.columns else updated
        saga_id = self._col("saga_id")
        if query.sort is SortKey.AGE:
            return sql.SQL("{}, {}").format(created, saga_id)
        if query.sort is SortKey.UPDATED:
            return sql.SQL("{}, {}").format(updated, saga_id)
        if query.sort is SortKey.TYPE:
            return sql.SQL("{}, {}, {}").format(self._needs("saga_type", "--sort type"), created, saga_id)
        if query.sort is SortKey.NEWEST:
            return sql.SQL("{} DESC, {} DESC").format(created, saga_id)
        params.append(self.values[SagaState.COMPENSATING])
        age: sql.Composable
        if query.stuck and "deadline_at" in self.columns:
            age = sql.SQL("COALESCE({}, {})").format(deadline, updated)
        else:
            age = created if not query.stuck else updated
        return sql.SQL("{} = %s DESC, {}, {}").format(self._state(), age, saga_id)

    # -- reads --------------------------------------------------------------------------

    def summaries(self, query: SagaQuery) -> list[SagaSummary]:
        """Like Store.list_sagas, over the mapped table; rows in unmapped states are skipped."""
        params: list[Any] = []
        where: list[sql.Composable] = []
        updated, deadline = self._col("updated_at"), self._col("deadline_at")
        if query.stuck:
            now = query.now or datetime.now(UTC)
            where.append(self._state_in(ACTIVE_STATES, params))
            if "deadline_at" in self.columns:
                where.append(sql.SQL("({d} < %s OR ({d} IS NULL AND {u} < %s))").format(d=deadline, u=updated))
                params += [now, query.idle_before or now]
            else:
                where.append(sql.SQL("{} < %s").format(updated))
                params.append(query.idle_before or now)
        if query.states:
            where.append(self._state_in(query.states, params))
        elif not query.stuck:
            where.append(self._state_in(list(SagaState), params))
        if query.saga_type is not None:
            if "saga_type" not in self.columns:
                raise UsageError("--type needs store.columns.saga_type in the config file")
            where.append(sql.SQL("{} = %s").format(self._col("saga_type")))
            params.append(query.saga_type)
        if query.updated_before is not None:
            where.append(sql.SQL("{} < %s").format(updated))
            params.append(query.updated_before)
        self._filters(query, where, params)
        statement = sql.SQL("{select} WHERE {where} ORDER BY {order}").format(
            select=self._select(), where=sql.SQL(" AND ").join(where), order=self._order(query, params)
        )
        if query.limit is not None:
            statement = statement + sql.SQL(" LIMIT %s")
            params.append(int(query.limit))
        with self._db("listing sagas") as conn:
            rows = conn.execute(statement, params).fetchall()
        return [s for s in (self._summary(r) for r in rows) if s is not None]

    def _row(self, saga_id: str) -> Sequence[Any] | None:
        statement = sql.SQL("{} WHERE {} = %s").format(self._select(), self._col("saga_id"))
        with self._db(f"reading saga {saga_id}") as conn:
            try:
                return conn.execute(statement, [saga_id]).fetchone()
            except psycopg.errors.InvalidTextRepresentation:
                return None  # not even a valid ID for that column's type (e.g. uuid)

    def summary(self, saga_id: str) -> SagaSummary | None:
        """One saga by ID, or None (also, with a warning naming its state, when the mapping
        does not know its state: a lookup such as redrive --only-open then skips it)."""
        row = self._row(saga_id)
        if row is None:
            return None
        found = self._summary(row)
        if found is None:
            log.warning("%s", self._unmapped(row[0], row[2]).one_line())
        return found

    def stamp(self, saga_id: str) -> tuple[Any, ...] | None:
        """The row's updated_at and state, read by its ID column."""
        statement = sql.SQL("SELECT {}, {} FROM {} WHERE {} = %s").format(
            self._col("updated_at"), self._col("state"), self.table, self._col("saga_id")
        )
        with self._db(f"reading saga {saga_id}") as conn:
            try:
                row = conn.execute(statement, [saga_id]).fetchone()
            except psycopg.errors.InvalidTextRepresentation:
                return None
        return None if row is None else tuple(row)

    def detail(self, saga_id: str) -> SagaSummary | None:
        """All a mapped table knows of a saga: its row (no steps, no history). A row in an
        unmapped state is a UsageError naming that state, never "not found"."""
        row = self._row(saga_id)
        if row is None:
            return None
        found = self._summary(row)
        if found is None:
            raise self._unmapped(row[0], row[2])
        return found

    def _grouped(self, states: Sequence[SagaState] | None, aggregate: sql.Composable) -> list[tuple[Any, ...]]:
        """(saga_type, state value in lower case, count, aggregate) per group, sorted; every
        state the table holds when ``states`` is None."""
        params: list[Any] = []
        keys = [self._state()]
        if "saga_type" in self.columns:
            keys.insert(0, self._col("saga_type"))
        where = sql.SQL("TRUE") if states is None else self._state_in(states, params)
        statement = sql.SQL("SELECT {keys}, count(*), {agg} FROM {table} WHERE {cond} GROUP BY {keys}").format(
            keys=sql.SQL(", ").join(keys), agg=aggregate, table=self.table, cond=where
        )
        with self._db("counting sagas") as conn:
            rows = conn.execute(statement, params).fetchall()
        if "saga_type" not in self.columns:
            rows = [(self.table_name, *r) for r in rows]
        return sorted(rows, key=lambda r: (str(r[0]), str(r[1])))

    def counts(self) -> list[StateCount]:
        """Sagas per (type, state). A mapped table has no counters: this scans it. Rows in
        states the mapping does not name are left out, with a warning that names them."""
        found: list[StateCount] = []
        unmapped: dict[str, int] = {}
        spelled = sql.SQL("min(CAST({} AS text))").format(self._col("state"))  # one spelling, as stored
        for t, s, n, as_stored in self._grouped(None, spelled):
            state = self._mapped(s)
            if state is None:
                unmapped[str(as_stored)] = unmapped.get(str(as_stored), 0) + int(n)
            else:
                found.append(StateCount(saga_type=str(t), state=state, count=int(n)))
        if unmapped:
            left = ", ".join(f"{value!r}: {count}" for value, count in sorted(unmapped.items()))
            log.warning(
                "mapped table %s: rows in states store.states does not map are not counted (%s)",
                self.table_name,
                left,
            )
        return found

    def active_counts(self) -> list[ActiveCount]:
        """Exact counts of active sagas per (type, state) and the oldest one's start."""
        started = "created_at" if "created_at" in self.columns else "updated_at"
        oldest = sql.SQL("min({})").format(self._col(started))
        return [
            ActiveCount(
                saga_type=str(t),
                state=self.states_by_value[str(s).lower()],
                count=int(n),
                oldest_created_at=_when(first),
            )
            for t, s, n, first in self._grouped(ACTIVE_STATES, oldest)
        ]

    def close(self) -> None:
        self._conn.close()


def _when(value: Any) -> datetime | None:
    """A timestamp from the mapped table in UTC (a naive timestamp is taken as UTC)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    try:
        return parse_iso(str(value))
    except ValueError:
        raise UsageError(
            f"mapped table value {str(value)[:40]!r} is not a timestamp",
            hint="map created_at/updated_at/deadline_at to timestamp or timestamptz columns",
        ) from None


def _as_uuid(text: str) -> str | None:
    """``text`` as PostgreSQL would read a uuid, or None when it is not one."""
    import uuid

    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


def _uuid_bound(prefix: str, fill: str) -> str | None:
    """The uuid whose text starts with ``prefix`` (any case) and goes on as ``fill``; None when
    no uuid's text starts with it."""
    prefix = prefix.lower()
    if len(prefix) > len(fill):
        return None
    for char, shape in zip(prefix, fill, strict=False):
        if (shape == "-") != (char == "-") or (char != "-" and char not in HEX):
            return None
    return prefix + fill[len(prefix) :]
