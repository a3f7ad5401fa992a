"""The SQL of a mapped table, for either dialect: each mapped value as an expression (a column,
or a field of a JSON column), the state tests (values of a state column, or conditions on
boolean columns), saga IDs (one column or a composite key), times in the table's own units,
and a row read back as a SagaSummary.

Identifiers are always quoted, values always bound parameters; the only literals written are
sagactl's own state names (in the CASE of derived states: a GROUP BY must repeat it exactly).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sagactl.errors import UnavailableError, UsageError
from sagactl.models import ACTIVE_STATES, SagaState, SagaSummary, iso, parse_iso
from sagactl.store.foreign import Column, Kind
from sagactl.store.fragments import Dialect, Ident, Param, Sql, join, params, sql
from sagactl.store.mapping import ID_SEPARATOR, TIME_KEYS, Field, Mapping

# the values a row is read as, after the ID column(s) and before the state's
ROW_KEYS = ("saga_type", "current_step", "current_step_name", "created_at", "updated_at", "deadline_at", "last_error")
UUID_LOW = "00000000-0000-0000-0000-000000000000"
UUID_HIGH = "ffffffff-ffff-ffff-ffff-ffffffffffff"
HEX = frozenset("0123456789abcdef")
_NUMBERS = (Kind.INTEGER, Kind.NUMBER)


class TableSql:
    """SQL pieces for ``mapping`` over a table with ``columns``, in ``dialect``."""

    def __init__(self, mapping: Mapping, columns: dict[str, Column], dialect: Dialect, where: str) -> None:
        self.m = mapping
        self.columns = columns
        self.dialect = dialect
        self.where = where
        self.table = Ident(*mapping.table)
        state = mapping.fields.get("state")
        # numbers read from JSON on PostgreSQL come back as text (#>>): compare them as text
        self._numbers_as_text = dialect == "postgres" and state is not None and bool(state.path)
        self.check()

    # -- the table's columns against the mapping ------------------------------------------

    def _problem(self, key: str, text: str, hint: str) -> UsageError | UnavailableError:
        """A column that does not fit: the config's mistake (exit 2) when the config wrote that
        key, the table's (a schema the preset does not know: exit 4) when the preset did."""
        whose = self.m.whose(key)
        if self.m.preset is not None and not whose.startswith("store."):
            return UnavailableError(
                f"{self.where}: {text}, which {whose} reads: not the table the {self.m.preset} preset knows",
                hint=f"check the DSN and the table, or write columns.{key.split('.')[-1]} beside the preset",
            )
        return UsageError(f"{self.where}: {text} ({whose})", hint=hint)

    def _column(self, key: str, name: str) -> Column:
        found = self.columns.get(name)
        if found is None:
            near = [c for c in self.columns if c.lower() == name.lower()]
            also = f" (there is {near[0]!r}: names are case-sensitive)" if near else ""
            raise self._problem(key, f"column {name!r} does not exist{also}", "check store.columns in the config file")
        return found

    def check(self) -> None:
        """Every mapped column exists and holds what it is read as; else one line naming the
        key, the column and (for a preset's key) the preset."""
        for part in self.m.id_columns:
            self._column("columns.saga_id", part)
        for key, f in self.m.fields.items():
            column = self._column(f"columns.{key}", f.column)
            if f.path:
                if column.kind not in (Kind.JSON, Kind.TEXT, Kind.OTHER):
                    raise self._problem(
                        f"columns.{key}", f"column {f.column!r} is {column.declared}, not JSON", "drop path:"
                    )
            elif key in TIME_KEYS:
                self._check_time(key, f, column)
        for name in self.m.boolean_columns():
            column = self._column("states", name)
            if column.kind not in (Kind.BOOLEAN, Kind.INTEGER, Kind.OTHER):
                raise self._problem("states", f"column {name!r} is {column.declared}, not boolean", "fix store.states")
        if not self.m.derived and any(isinstance(v, int) for vs in self.m.values.values() for v in vs):
            state = self.m.fields["state"]
            kind = self.columns[state.column].kind
            if not state.path and kind not in (*_NUMBERS, Kind.OTHER):
                raise self._problem(
                    "states",
                    f"store.states are numbers but column {state.column!r} is {self.columns[state.column].declared}",
                    "write the states as the text the column holds",
                )

    def _check_time(self, key: str, f: Field, column: Column) -> None:
        if column.kind in _NUMBERS and f.unit is None:
            raise self._problem(
                f"columns.{key}",
                f"column {f.column!r} is {column.declared}: a time in it needs its unit",
                f"write {key}: {{column: {f.column}, unit: ms}} (or unit: s) under store.columns",
            )
        if f.unit is not None and column.kind not in (*_NUMBERS, Kind.OTHER):
            raise self._problem(
                f"columns.{key}", f"column {f.column!r} is {column.declared}, not epoch {f.unit}", "drop unit:"
            )
        readable = (Kind.TIMESTAMP, *_NUMBERS) if self.dialect == "postgres" else (Kind.TIMESTAMP, Kind.TEXT)
        if f.unit is None and column.kind not in (*readable, Kind.OTHER):
            raise self._problem(
                f"columns.{key}",
                f"column {f.column!r} is {column.declared}, not a time",
                "map times to timestamp columns, or to number columns with unit: ms or s",
            )

    # -- values ---------------------------------------------------------------------------

    def has(self, key: str) -> bool:
        return self.m.has(key)

    def expr(self, key: str) -> Sql:
        """The value ``key`` maps to (NULL when the mapping names none)."""
        f = self.m.fields.get(key)
        if f is None:
            return sql("NULL")
        return self.field_expr(f)

    def field_expr(self, f: Field) -> Sql:
        column = Ident(f.column)
        if not f.path:
            return sql("{}", column)
        kind = self.columns[f.column].kind
        if self.dialect == "sqlite":
            path = "$" + "".join(f'."{p}"' for p in f.path)
            return sql("(CASE WHEN json_valid({}) THEN json_extract({}, {}) END)", column, column, Param(path))
        if kind is Kind.JSON:
            return sql("({} #>> {})", column, Param(list(f.path)))
        # JSON kept as text: read only what looks like a JSON document (a text column may hold
        # anything, and one bad row must not fail the whole listing)
        return sql(
            "(CASE WHEN left(ltrim(CAST({} AS text)), 1) IN ('{', '[')"
            " THEN CAST(CAST({} AS text) AS jsonb) #>> {} END)",
            column,
            column,
            Param(list(f.path)),
        )

    def text(self, key: str) -> Sql:
        return sql("CAST({} AS text)", self.expr(key))

    def contains(self, key: str, needle: str) -> Sql:
        """A literal, case-sensitive substring test (no LIKE: % and _ mean themselves)."""
        function = "strpos" if self.dialect == "postgres" else "instr"
        return sql(f"{function}({{}}, {{}}) > 0", self.text(key), Param(needle))

    # -- times ----------------------------------------------------------------------------

    def time_param(self, key: str, when: datetime) -> Param:
        """``when`` as the time column of ``key`` holds times (epoch ms/s, a timestamp, ISO text)."""
        f = self.m.fields[key]
        if f.unit == "ms":
            return Param(int(when.timestamp() * 1000))
        if f.unit == "s":
            return Param(int(when.timestamp()))
        if self.dialect == "sqlite":
            return Param(iso(when))
        return Param(when)

    def time_compare(self, key: str, op: str, when: datetime) -> Sql:
        """The time of ``key`` compared with ``when`` (``op``: <, >=). SQLite text times are
        compared as instants (julianday reads '2026-12-06 16:33:15.494' and
        '2026-12-06T16:33:15.494Z' alike), the rest as stored."""
        column = self.expr(key)
        if self.dialect == "sqlite" and self.m.fields[key].unit is None:
            return sql(f"julianday({{}}) {op} julianday({{}})", column, self.time_param(key, when))
        return sql(f"{{}} {op} {{}}", column, self.time_param(key, when))

    def time_value(self, key: str, value: Any) -> datetime | None:
        """A time read from the column of ``key``, in UTC (a naive timestamp is taken as UTC)."""
        if value is None:
            return None
        f = self.m.fields[key]
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if f.unit is not None and (isinstance(value, int | float) or str(value).lstrip("-").isdigit()):
            seconds = float(value) / (1000.0 if f.unit == "ms" else 1.0)
            try:
                return datetime.fromtimestamp(seconds, UTC)
            except (OverflowError, OSError, ValueError):
                pass
        else:
            try:
                return parse_iso(str(value))
            except ValueError:
                pass
        raise UsageError(
            f"{self.where}: value {str(value)[:40]!r} of column {f.column!r} is not a time",
            hint=f"map {key} to a timestamp column, or to a number column with unit: ms or s",
        )

    def same_clock(self, a: str, b: str) -> bool:
        """Whether the times of ``a`` and ``b`` compare as they are stored (COALESCE them)."""
        fa, fb = self.m.fields[a], self.m.fields[b]
        return fa.unit == fb.unit and self.columns[fa.column].kind == self.columns[fb.column].kind

    # -- states ---------------------------------------------------------------------------

    def state_key(self) -> Sql:
        """What a row's state is compared and grouped by: the state value (in lower case
        unless exact), or the name of the derived state (NULL when no condition matches)."""
        if self.m.derived:
            arms = [
                sql(f"WHEN {{}} THEN '{rule.state.value}'", self._any(rule.when)) for rule in self.m.rules if rule.when
            ]
            return sql("(CASE {} END)", join(" ", arms)) if arms else sql("NULL")
        value = self.expr("state")
        lower = "lower" if self.dialect == "postgres" else "sagactl_lower"  # foreign.py: Unicode on SQLite too
        return value if self.m.exact else sql(f"{lower}(CAST({{}} AS text))", value)

    def _any(self, when: Sequence[tuple[tuple[str, bool], ...]]) -> Sql:
        ors = []
        for conditions in when:
            tests = [sql("{} IS TRUE" if wanted else "{} IS NOT TRUE", Ident(c)) for c, wanted in conditions]
            ors.append(sql("({})", join(" AND ", tests)) if tests else sql("TRUE"))
        return join(" OR ", ors)

    def state_in(self, states: Sequence[SagaState]) -> Sql:
        """The row is in one of ``states`` (FALSE when none of them has a value)."""
        if self.m.derived:
            return (
                sql("{} IN ({})", self.state_key(), join(", ", [f"'{s.value}'" for s in states]))
                if states
                else (sql("FALSE"))
            )
        return self.values_in([self.compared(v) for s in states for v in self.m.values[s]])

    def compared(self, value: Any) -> Any:
        """A state value as the state key is compared with it."""
        value = self.m.compared(value)
        return str(value) if self._numbers_as_text and isinstance(value, int) else value

    def values_in(self, wanted: Sequence[Any]) -> Sql:
        """The state key is one of ``wanted``. Compared as written, as ORed equalities: the
        PostgreSQL planner matches each to the framework's partial indexes (WHERE status =
        'DELAYED', WHERE status IN ('ENQUEUED', 'PENDING')...) and ORs their bitmaps, where an IN
        list spanning two such indexes would be a sequential scan."""
        if not wanted:
            return sql("FALSE")
        if len(wanted) == 1:
            return sql("{} = {}", self.state_key(), Param(wanted[0]))
        if self.m.exact:
            key = self.state_key()
            return sql("({})", join(" OR ", (sql("{} = {}", key, Param(v)) for v in wanted)))
        return sql("{} IN ({})", self.state_key(), params(wanted))

    def stuck_states(self) -> Sql:
        """The states ``list --stuck`` considers: stuck_states when given, else every active one."""
        if self.m.stuck_values is not None:
            return self.values_in([self.compared(v) for v in self.m.stuck_values])
        return self.state_in(ACTIVE_STATES)

    def maps(self, state: SagaState) -> bool:
        """Whether any row can be in ``state``."""
        if self.m.derived:
            return any(rule.state is state for rule in self.m.rules)
        return bool(self.m.values[state])

    def state_columns(self) -> list[Sql]:
        """What a row's state is read from: the state value, or the derived state and the
        boolean columns (kept as the source state)."""
        if self.m.derived:
            return [self.state_key(), *(sql("{}", Ident(c)) for c in self.m.boolean_columns())]
        return [self.expr("state")]

    def decode_state(self, parts: Sequence[Any]) -> tuple[SagaState | None, str]:
        """The sagactl state of a row's state parts (None: unmapped) and its source state."""
        if self.m.derived:
            names = self.m.boolean_columns()
            shown = " ".join(f"{n}={_bool_text(v)}" for n, v in zip(names, parts[1:], strict=True))
            return (SagaState(parts[0]) if parts[0] is not None else None), shown
        raw = parts[0]
        key = raw if self.m.exact else str(raw).lower()
        if self.m.exact and isinstance(raw, float | Decimal) and float(raw).is_integer():
            key = int(raw)
        for state, values in self.m.values.items():
            if any(self.compared(v) == key for v in values):
                return state, str(raw)
        return None, str(raw)

    def described_states(self) -> str:
        """The mapping's states for a message."""
        if self.m.derived:
            return ", ".join(f"{r.state.value}: {list(map(dict, r.when))}" for r in self.m.rules)
        return ", ".join(
            f"{s.value}: {'/'.join(str(self.m.compared(v)) for v in vs) or '-'}" for s, vs in self.m.values.items()
        )

    # -- saga IDs -------------------------------------------------------------------------

    def id_columns(self) -> list[Sql]:
        return [sql("{}", Ident(c)) for c in self.m.id_columns]

    def id_parts(self, saga_id: str) -> list[Any] | None:
        """``saga_id`` as the values of the ID column(s), or None when it names no row (a
        composite ID without its parts, text that is no uuid for a uuid column...)."""
        parts = saga_id.split(ID_SEPARATOR, len(self.m.id_columns) - 1)
        if len(parts) != len(self.m.id_columns):
            return None
        values = [self._part_value(column, part) for part, column in zip(parts, self.m.id_columns, strict=True)]
        return None if any(v is None for v in values) else values

    def _part_value(self, column: str, part: str) -> Any:
        """One part of an ID as its column holds it (None: it cannot hold it)."""
        kind = self.columns[column].kind
        if kind is Kind.UUID:
            return _as_uuid(part)
        if kind is Kind.INTEGER:
            return int(part) if part.lstrip("-").isdigit() and len(part) < 19 else None
        return part

    def _id_column(self, column: str) -> Sql:
        kind = self.columns[column].kind
        return sql("CAST({} AS text)", Ident(column)) if kind in (Kind.OTHER, Kind.NUMBER) else sql("{}", Ident(column))

    def id_equals(self, saga_id: str) -> Sql | None:
        """The row of ``saga_id`` (None: no row can have it)."""
        values = self.id_parts(saga_id)
        if values is None:
            return None
        tests = [sql("{} = {}", self._id_column(c), Param(v)) for c, v in zip(self.m.id_columns, values, strict=True)]
        return join(" AND ", tests)

    def ids_in(self, saga_ids: Sequence[str]) -> Sql:
        """The rows of ``saga_ids`` (each ID that no row can have matches nothing)."""
        found = [v for v in (self.id_parts(i) for i in saga_ids) if v is not None]
        if not found:
            return sql("FALSE")
        columns = join(", ", (self._id_column(c) for c in self.m.id_columns))
        if len(self.m.id_columns) == 1:
            return sql("{} IN ({})", columns, params(v[0] for v in found))
        rows = join(", ", (sql("({})", params(v)) for v in found))
        return sql("({}) IN ({})", columns, rows)

    def id_text(self, parts: Sequence[Any]) -> str:
        return ID_SEPARATOR.join(str(p) for p in parts)

    def prefix_test(self, prefix: str) -> tuple[Sql, list[Sql]] | None:
        """IDs starting with ``prefix``: the test and the order, as index ranges where the
        columns' types allow (None: no ID can start with it). A composite key's prefix fixes
        its first parts and ranges over the next."""
        from sagactl.store.listing import prefix_successor

        parts = prefix.split(ID_SEPARATOR, len(self.m.id_columns) - 1)
        tests: list[Sql] = []
        order: list[Sql] = []
        for index, (part, column) in enumerate(zip(parts, self.m.id_columns, strict=False)):
            kind = self.columns[column].kind
            last = index == len(parts) - 1
            if not last:
                value = self._part_value(column, part)
                if value is None:
                    return None
                tests.append(sql("{} = {}", self._id_column(column), Param(value)))
                order.append(sql("{}", Ident(column)))
                continue
            if kind is Kind.UUID:
                low, high = _uuid_bound(part, UUID_LOW), _uuid_bound(part, UUID_HIGH)
                if low is None:
                    return None
                tests.append(sql("{} BETWEEN {} AND {}", Ident(column), Param(low), Param(high)))
                order.append(sql("{}", Ident(column)))
                continue
            text = sql("{}", Ident(column)) if kind is Kind.TEXT else sql("CAST({} AS text)", Ident(column))
            ordered = sql('{} COLLATE "C"', text) if self.dialect == "postgres" else text
            tests.append(sql("{} >= {}", ordered, Param(part)))
            upper = prefix_successor(part)
            if upper is not None:
                tests.append(sql("{} < {}", ordered, Param(upper)))
            order.append(ordered)
        order += [sql("{}", Ident(c)) for c in self.m.id_columns[len(parts) :]]
        return join(" AND ", tests), order

    # -- rows -----------------------------------------------------------------------------

    def select(self) -> Sql:
        """SELECT the ID part(s), ROW_KEYS and the state part(s), FROM the table."""
        columns = [*self.id_columns(), *(self.expr(k) for k in ROW_KEYS), *self.state_columns()]
        return sql("SELECT {} FROM {}", join(", ", columns), self.table)

    def summary(self, row: Sequence[Any]) -> tuple[SagaSummary | None, str, str]:
        """A selected row as a SagaSummary (None: its state is not mapped), its ID and its source state."""
        width = len(self.m.id_columns)
        saga_id = self.id_text(row[:width])
        saga_type, step, step_name, created, updated, deadline, error = row[width : width + len(ROW_KEYS)]
        state, source = self.decode_state(row[width + len(ROW_KEYS) :])
        if state is None:
            return None, saga_id, source
        current_step: int | None = None
        if isinstance(step, int) and not isinstance(step, bool):
            current_step = step
        elif step is not None and str(step).lstrip("-").isdigit():
            current_step = int(str(step))
        elif step is not None and step_name is None:
            step_name = str(step)  # the other orchestrator records the step by name
        found = SagaSummary(
            saga_id=saga_id,
            saga_type=str(saga_type) if saga_type is not None else self.m.table_name,
            state=state,
            current_step=current_step,
            current_step_name=str(step_name) if step_name is not None else None,
            created_at=self.time_value("created_at", created),
            updated_at=self.time_value("updated_at", updated),
            deadline_at=self.time_value("deadline_at", deadline),
            last_error=str(error) if error is not None else None,
            source_state=source,
        )
        return found, saga_id, source


def _bool_text(value: Any) -> str:
    return "null" if value is None else "true" if value else "false"


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
