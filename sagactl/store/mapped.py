"""A read-only view of another orchestrator's saga table (``store.table`` or ``store.preset`` in
sagactl.yaml, ``--preset`` on the command line), on PostgreSQL or SQLite, for ``list``,
``show``, ``stats`` and the lookups of ``redrive --only-open``.

Table and column names come from the config file (or a preset) and are only ever quoted
identifiers; every value is a bound parameter (mapsql.py). The session is read-only: nothing is
ever written to the table or its database (foreign.py). Opening it reads the table's columns
from the catalog and checks the mapping against them (mapping.py, mapsql.py): a missing column
or one of the wrong type is one line naming the key, the column and the preset.

A row in a state the mapping does not name is never shown as something else: ``show`` names its
state in the error, ``stats`` names the unmapped states it left out in a warning. The
framework's own state is kept beside sagactl's (``source_state``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sagactl.config import TableMapping
from sagactl.errors import UsageError
from sagactl.models import ACTIVE_STATES, SagaState, SagaSummary, SortKey, StateCount
from sagactl.store.base import ActiveCount, SagaQuery, StoreInfo
from sagactl.store.foreign import ForeignDb
from sagactl.store.fragments import Param, Sql, join, sql
from sagactl.store.mapping import Mapping, resolve
from sagactl.store.mapsql import TableSql

if TYPE_CHECKING:
    from sagactl.store.presets import Preset

log = logging.getLogger("sagactl.store")


class MappedTableStore:
    """Read-only saga view over the table ``mapping`` describes, in the database ``dsn`` names."""

    def __init__(self, dsn: str, mapping: TableMapping) -> None:
        from sagactl.store.presets import preset_named

        self.preset: Preset | None = preset_named(mapping.preset) if mapping.preset else None
        self._warned: set[str] = set()
        self.db = ForeignDb(dsn)
        try:
            block = self.preset.block(self.db.dialect, None) if self.preset else None
            first = resolve(mapping, block)
            table = first.table_name
            suffix = f" (preset {self.preset.name})" if self.preset else ""
            self.where = f"mapped table {table}{suffix} in {self.db.location}"
            columns = self.db.columns(first.table, self.where)
            if columns is None:
                raise self._no_table(mapping)
            if self.preset is not None:
                block = self.preset.block(self.db.dialect, columns)
            self.mapping: Mapping = resolve(mapping, block, set(columns))
            if self.preset is not None:
                self.preset.check(self, columns)
            self.sql = TableSql(self.mapping, columns, self.db.dialect, self.where)
        except BaseException:
            self.db.close()
            raise
        self.table_name = self.mapping.table_name
        ages = any(self.mapping.has(k) for k in ("updated_at", "deadline_at"))
        self.info = StoreInfo(kind="mapped", location=f"{self.db.location} table {table}{suffix}", ages=ages)

    def _no_table(self, mapping: TableMapping) -> UsageError:
        if self.preset is not None and mapping.table is None:
            return UsageError(
                f"{self.where}: table not found: this database is not one the {self.preset.name} preset reads",
                hint=f"check --dsn (the database with {self.preset.framework}'s tables), or name the table"
                " with store.table",
            )
        return UsageError(
            f"{self.where}: table not found", hint="check store.table in the config file (case-sensitive)"
        )

    def rows(self, statement: Sql, doing: str) -> list[tuple[Any, ...]]:
        """The rows of ``statement`` (presets read the framework's other tables with it)."""
        return self.db.rows(statement, self.where, doing)

    def close(self) -> None:
        self.db.close()

    def warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("%s", message)

    def _needs(self, key: str, option: str) -> Sql:
        if not self.mapping.has(key):
            raise UsageError(f"{option} needs store.columns.{key}: {self.table_name} maps none")
        return self.sql.expr(key)

    # -- listing --------------------------------------------------------------------------

    def summaries(self, query: SagaQuery) -> list[SagaSummary]:
        """Like Store.list_sagas, over the mapped table; rows in unmapped states are skipped."""
        if self.preset is not None:
            self.preset.refuse(self, query)
        statement = self.statement(query)
        found = [s for s in (self.sql.summary(r)[0] for r in self.rows(statement, "listing sagas")) if s is not None]
        return self.preset.enrich(self, found) if self.preset is not None else found

    def statement(self, query: SagaQuery) -> Sql:
        """The SELECT behind ``summaries(query)`` (EXPLAIN in tests and benchmarks)."""
        where = self._where(query)
        statement = sql("{} WHERE {} ORDER BY {}", self.sql.select(), join(" AND ", where), self._order(query))
        return statement if query.limit is None else statement + sql(" LIMIT {}", Param(int(query.limit)))

    def _where(self, query: SagaQuery) -> list[Sql]:
        where: list[Sql] = []
        if query.stuck:
            where.append(self._stuck(query))
        if query.states:
            where.append(self.sql.state_in(query.states))
        elif not query.stuck:
            where.append(self.sql.state_in(list(SagaState)))
        if query.saga_type is not None:
            where.append(sql("{} = {}", self._needs("saga_type", "--type"), Param(query.saga_type)))
        if query.updated_before is not None:
            self._needs("updated_at", "--older-than")
            where.append(self.sql.time_compare("updated_at", "<", query.updated_before))
        self._filters(query, where)
        return where

    def _stuck(self, query: SagaQuery) -> Sql:
        """Active (or stuck_states), and past the deadline or idle since before idle_before; a
        table without times: compensating (said once on stderr)."""
        now = query.now or datetime.now(UTC)
        idle = query.idle_before or now
        states = self.sql.stuck_states()
        has_deadline, has_updated = self.mapping.has("deadline_at"), self.mapping.has("updated_at")
        if has_deadline and has_updated:
            late = sql(
                "({} OR ({} IS NULL AND {}))",
                self.sql.time_compare("deadline_at", "<", now),
                self.sql.expr("deadline_at"),
                self.sql.time_compare("updated_at", "<", idle),
            )
        elif has_updated:
            late = self.sql.time_compare("updated_at", "<", idle)
        elif has_deadline:
            late = self.sql.time_compare("deadline_at", "<", now)
        else:
            self.warn_once(
                "no-times",
                f"{self.table_name} has no time to judge age by (store.columns.updated_at): --stuck lists every"
                " compensating saga, however long it has been compensating",
            )
            return self.sql.state_in([SagaState.COMPENSATING])
        return sql("{} AND {}", states, late)

    def _filters(self, query: SagaQuery, where: list[Sql]) -> None:
        """list --saga-id/--since/--until/--step/--error, each on the column the mapping
        names, refused when it names none."""
        if query.job is not None:
            raise UsageError(
                "--job reads what a bulk job recorded in a sagactl saga log: a mapped table has no jobs",
                hint="point this command at the saga log with --dsn or another --context",
            )
        if query.saga_ids:
            where.append(self.sql.ids_in(query.saga_ids))
        for value, op, option in ((query.created_from, ">=", "--since"), (query.created_before, "<", "--until")):
            if value is not None:
                self._needs("created_at", option)
                where.append(self.sql.time_compare("created_at", op, value))
        if query.step is not None:
            if self.mapping.has("current_step_name") or not self.mapping.has("current_step"):
                step = self._needs("current_step_name", "--step")
            else:  # the other orchestrator records the step by name in its step column
                step = self.sql.expr("current_step")
            where.append(sql("CAST({} AS text) = {}", step, Param(query.step)))
        if query.error is not None:
            self._needs("last_error", "--error")
            where.append(self.sql.contains("last_error", query.error))

    def _order(self, query: SagaQuery) -> Sql:
        ids = self.sql.id_columns()
        has = self.mapping.has
        created = self.sql.expr("created_at") if has("created_at") else self.sql.expr("updated_at")
        if query.sort is SortKey.AGE:
            return join(", ", [created, *ids]) if has("created_at") or has("updated_at") else join(", ", ids)
        if query.sort is SortKey.UPDATED:
            return join(", ", [self._needs("updated_at", "--sort updated"), *ids])
        if query.sort is SortKey.TYPE:
            first = [self._needs("saga_type", "--sort type")]
            return join(", ", [*first, *([created] if has("created_at") or has("updated_at") else []), *ids])
        if query.sort is SortKey.NEWEST:
            newest = [created] if has("created_at") or has("updated_at") else []
            return join(", ", [sql("{} DESC", key) for key in (*newest, *ids)])
        keys: list[Sql] = []
        if self.sql.maps(SagaState.COMPENSATING):
            keys.append(sql("({}) DESC", self.sql.state_in([SagaState.COMPENSATING])))
        if query.stuck and has("deadline_at") and has("updated_at"):
            d, u = self.sql.expr("deadline_at"), self.sql.expr("updated_at")
            if self.sql.same_clock("deadline_at", "updated_at"):
                keys.append(sql("COALESCE({}, {})", d, u))
            else:  # different units: those with a deadline first, by it, then the idle ones
                keys += [sql("{} IS NULL", d), d, u]
        elif query.stuck and (has("updated_at") or has("deadline_at")):
            keys.append(self.sql.expr("updated_at" if has("updated_at") else "deadline_at"))
        elif has("created_at") or has("updated_at"):
            keys.append(created)
        return join(", ", [*keys, *ids])

    # -- one saga -------------------------------------------------------------------------

    def _row(self, saga_id: str) -> Sequence[Any] | None:
        test = self.sql.id_equals(saga_id)
        if test is None:
            return None  # not even a valid ID for the key's columns (e.g. a uuid)
        found = self.rows(sql("{} WHERE {}", self.sql.select(), test), f"reading saga {saga_id}")
        return found[0] if found else None

    def _unmapped(self, saga_id: str, source: str) -> UsageError:
        return UsageError(
            f"saga {saga_id} in mapped table {self.table_name} is in state {source!r}, which store.states"
            f" does not map ({self.sql.described_states()})",
            hint="add that value under store.states in the config file",
        )

    def summary(self, saga_id: str) -> SagaSummary | None:
        """One saga by ID, or None (also, with a warning naming its state, when the mapping
        does not know its state: a lookup such as redrive --only-open then skips it)."""
        row = self._row(saga_id)
        if row is None:
            return None
        found, found_id, source = self.sql.summary(row)
        if found is None:
            log.warning("%s", self._unmapped(found_id, source).one_line())
        return found

    def stamp(self, saga_id: str) -> tuple[Any, ...] | None:
        """The row's updated_at, state and step, read by its key."""
        test = self.sql.id_equals(saga_id)
        if test is None:
            return None
        values = [self.sql.expr("updated_at"), *self.sql.state_columns(), self.sql.expr("current_step")]
        statement = sql("SELECT {} FROM {} WHERE {}", join(", ", values), self.sql.table, test)
        found = self.rows(statement, f"reading saga {saga_id}")
        return tuple(found[0]) if found else None

    def detail(self, saga_id: str) -> SagaSummary | None:
        """All the table (and the preset) know of a saga: its row, and the steps the framework
        recorded where a preset reads them. A row in an unmapped state is a UsageError naming
        that state, never "not found"."""
        row = self._row(saga_id)
        if row is None:
            return None
        found, found_id, source = self.sql.summary(row)
        if found is None:
            raise self._unmapped(found_id, source)
        return self.preset.detail(self, found) if self.preset is not None else found

    # -- saga IDs -------------------------------------------------------------------------

    def _prefix_statement(self, prefix: str, limit: int) -> Sql | None:
        found = self.sql.prefix_test(prefix)
        if found is None:
            return None
        test, order = found
        columns = join(", ", self.sql.id_columns())
        return sql(
            "SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT {}",
            columns,
            self.sql.table,
            test,
            join(", ", order),
            Param(int(limit)),
        )

    def ids_with_prefix(self, prefix: str, limit: int) -> list[str]:
        """IDs starting with ``prefix``. A uuid column is read as the uuid range the prefix
        spans (its own btree serves it); a text column as the range [prefix, successor) in the
        "C" collation on PostgreSQL (served by an index in that collation), bytewise on SQLite
        (its primary key serves it); a composite key fixes its first parts; any other type is
        scanned."""
        statement = self._prefix_statement(prefix, limit)
        if statement is None:
            return []
        return [self.sql.id_text(r) for r in self.rows(statement, f"looking up saga IDs starting {prefix}")]

    def explain_prefix(self, prefix: str, limit: int = 11) -> str:
        """EXPLAIN of ``ids_with_prefix`` (proof of the index range scan)."""
        statement = self._prefix_statement(prefix, limit)
        assert statement is not None, "no ID starts with that"
        return self.db.explain(statement)

    def explain(self, query: SagaQuery) -> str:
        """EXPLAIN of ``summaries(query)``."""
        return self.db.explain(self.statement(query))

    # -- counts ---------------------------------------------------------------------------

    def _grouped(self, states: Sequence[SagaState] | None, aggregate: Sql) -> list[tuple[Any, ...]]:
        """(saga_type, state key, count, aggregate) per group, sorted; every state the table
        holds when ``states`` is None. Grouped by position: an expression with parameters (a
        JSON path) is written once."""
        saga_type = self.sql.expr("saga_type") if self.mapping.has("saga_type") else sql("NULL")
        where = sql("TRUE") if states is None else self.sql.state_in(states)
        statement = sql(
            "SELECT {}, {}, count(*), {} FROM {} WHERE {} GROUP BY 1, 2",
            saga_type,
            self.sql.state_key(),
            aggregate,
            self.sql.table,
            where,
        )
        rows = [
            (self.table_name if t is None and not self.mapping.has("saga_type") else t, *rest)
            for t, *rest in self.rows(statement, "counting sagas")
        ]
        return sorted(rows, key=lambda r: (str(r[0]), str(r[1])))

    def counts(self) -> list[StateCount]:
        """Sagas per (type, state). A mapped table has no counters: this scans it. Rows in
        states the mapping does not name are left out, with a warning that names them."""
        found: dict[tuple[str, SagaState], int] = {}
        unmapped: dict[str, int] = {}
        spelled = sql("min(CAST({} AS text))", self.sql.state_columns()[0]) if not self.mapping.derived else sql("NULL")
        for t, key, n, as_stored in self._grouped(None, spelled):
            state = self._state_of_key(key)
            if state is None:
                shown = "matching no condition" if self.mapping.derived else str(as_stored)
                unmapped[shown] = unmapped.get(shown, 0) + int(n)
            else:
                found[(str(t), state)] = found.get((str(t), state), 0) + int(n)
        if unmapped:
            left = ", ".join(f"{value!r}: {count}" for value, count in sorted(unmapped.items()))
            log.warning(
                "mapped table %s: rows in states store.states does not map are not counted (%s)",
                self.table_name,
                left,
            )
        return [StateCount(saga_type=t, state=s, count=n) for (t, s), n in found.items()]

    def _state_of_key(self, key: Any) -> SagaState | None:
        if self.mapping.derived:
            return SagaState(key) if key is not None else None
        return self.sql.decode_state([key])[0]

    def active_counts(self) -> list[ActiveCount]:
        """Exact counts of active sagas per (type, state) and the oldest one's start."""
        started = "created_at" if self.mapping.has("created_at") else "updated_at"
        oldest = sql("min({})", self.sql.expr(started)) if self.mapping.has(started) else sql("NULL")
        merged: dict[tuple[str, SagaState], tuple[int, datetime | None]] = {}
        for t, key, n, first in self._grouped(ACTIVE_STATES, oldest):
            state = self._state_of_key(key)
            if state is None:
                continue
            when = self.sql.time_value(started, first) if self.mapping.has(started) else None
            count, before = merged.get((str(t), state), (0, None))
            merged[(str(t), state)] = (count + int(n), min((w for w in (before, when) if w), default=None))
        return [ActiveCount(t, s, n, oldest_created_at=w) for (t, s), (n, w) in merged.items()]
