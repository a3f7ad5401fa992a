"""What a foreign table's mapping says, read and checked: ``store:`` in sagactl.yaml (a
TableMapping, values as written), over the block of its preset if it names one.

    columns:                       sagactl name: their column, or a mapping
      saga_id: workflow_uuid       a column, or a list of columns (a composite key, one ID "a/b")
      updated_at: {column: updated_at, unit: ms}      epoch milliseconds (or s) in a number column
      current_step: {column: state_name, path: currentlyExecuting}   a field of a JSON column
    states:                        sagactl state: their value(s) in the state column...
      pending: [PENDING, ENQUEUED]
      completed: SUCCESS
    states:                        ...or boolean conditions, tried in the order written
      failed: [{end_state: true, compensating: true}, {end_state: true, failed: true}]
      completed: {end_state: true}
      pending: {}                  {} matches any row: "otherwise"
    state_case: exact              compare state values as written (default: in any case)
    stuck_states: [PENDING]        the values list --stuck considers (default: every active one)

A key written beside ``preset:`` overrides the preset's (``columns`` and ``states`` key by key).
A column key set to null maps nothing (``updated_at: null``: the table has no time to judge age
by). Nothing here touches a database: mapped.py checks the columns against the table's own.
"""

from __future__ import annotations

from collections.abc import Mapping as MappingABC
from dataclasses import dataclass, field
from typing import Any

from sagactl.config import TableMapping
from sagactl.errors import UsageError
from sagactl.models import ACTIVE_STATES, SagaState

ID_KEY = "saga_id"
STATE_KEY = "state"
TIME_KEYS = ("created_at", "updated_at", "deadline_at")
# the columns sagactl reads, besides the ID; the state is read from a column unless derived
FIELD_KEYS = (STATE_KEY, "saga_type", "current_step", "current_step_name", *TIME_KEYS, "last_error")
# read from a column of that name when the table has one and the mapping does not say otherwise
DEFAULT_COLUMNS = (ID_KEY, STATE_KEY, "updated_at")
UNITS = {"ms": "ms", "milliseconds": "ms", "s": "s", "seconds": "s"}
ID_SEPARATOR = "/"  # between the parts of a composite key's one ID


@dataclass(frozen=True, slots=True)
class Field:
    """Where one of sagactl's values is read: ``column``, or a field of that JSON column at
    ``path``; a time in a number column is epoch ``unit`` ("ms" or "s")."""

    key: str
    column: str
    path: tuple[str, ...] = ()
    unit: str | None = None

    def named(self) -> str:
        """The column (and path) for a message."""
        return self.column + "".join(f"->{p}" for p in self.path)


# One condition set: (column, wanted) pairs, all of which must hold; () holds for any row.
Conditions = tuple[tuple[str, bool], ...]


@dataclass(frozen=True, slots=True)
class Rule:
    """A state derived from boolean columns: ``state`` when any of ``when`` holds."""

    state: SagaState
    when: tuple[Conditions, ...]


@dataclass(frozen=True, slots=True)
class Mapping:
    """A foreign table as sagactl reads it. ``values``: the state column's values per state
    (value mode; ``rules`` empty), compared as written when ``exact`` (always for numbers), else
    in lower case; ``rules``: states derived from boolean columns, first match wins.
    ``written``: the keys the config file wrote itself (the rest came from the preset)."""

    table: tuple[str, ...]
    id_columns: tuple[str, ...]
    fields: dict[str, Field]
    values: dict[SagaState, tuple[Any, ...]] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    exact: bool = False
    stuck_values: tuple[Any, ...] | None = None
    preset: str | None = None
    written: frozenset[str] = frozenset()

    @property
    def table_name(self) -> str:
        return ".".join(self.table)

    @property
    def derived(self) -> bool:
        return bool(self.rules)

    def has(self, key: str) -> bool:
        return key in self.fields

    def compared(self, value: Any) -> Any:
        """A state value as the table's values are compared with it."""
        return value if self.exact or not isinstance(value, str) else value.lower()

    def boolean_columns(self) -> list[str]:
        """The columns derived states read, in order of first use."""
        return list(dict.fromkeys(c for rule in self.rules for cond in rule.when for c, _ in cond))

    def whose(self, key: str) -> str:
        """Who wrote ``key``, for a message: 'store.columns.X' or 'the dbos preset's X'."""
        if key in self.written or self.preset is None:
            return f"store.{key}"
        return f"the {self.preset} preset's {key}"


def split_table(name: str) -> tuple[str, ...]:
    """``TABLE`` or ``SCHEMA.TABLE`` as its parts (used exactly as written, case included)."""
    parts = tuple(name.split("."))
    if not 1 <= len(parts) <= 2 or not all(parts) or any("\0" in p for p in parts):
        raise UsageError(
            f"store.table {name!r} is not a table name",
            hint="use TABLE or SCHEMA.TABLE (names are used exactly as written, case included)",
        )
    return parts


def _merged(given: TableMapping, preset: MappingABC[str, Any] | None) -> tuple[dict[str, Any], frozenset[str]]:
    """The block in effect: the preset's, with each key the config wrote over it; and the
    keys written (``columns.X``, ``states.X``, ``table``...)."""
    block: dict[str, Any] = {
        "table": None,
        "columns": {},
        "states": {},
        "state_case": None,
        "stuck_states": None,
        **dict(preset or {}),
    }
    written: set[str] = set()
    block["columns"] = {**block["columns"], **given.columns}
    block["states"] = {**block["states"], **given.states}
    written.update(f"columns.{k}" for k in given.columns)
    written.update(f"states.{k}" for k in given.states)
    if given.states and any(_is_condition(v) for v in given.states.values()) != any(
        _is_condition(v) for v in (preset or {}).get("states", {}).values()
    ):
        block["states"] = dict(given.states)  # values replace conditions (or the other way): all of them
    for key in ("table", "state_case", "stuck_states"):
        value = getattr(given, key)
        if value is not None:
            block[key] = value
            written.add(key)
    return block, frozenset(written)


def resolve(
    given: TableMapping, preset: MappingABC[str, Any] | None = None, columns: set[str] | None = None
) -> Mapping:
    """The mapping ``given`` describes over ``preset``'s block (or UsageError naming the key).
    ``columns``: the table's columns, when known, for the defaults (DEFAULT_COLUMNS)."""
    block, written = _merged(given, preset)
    if block["table"] is None:
        raise UsageError("store.table is not set", hint="name the saga table (TABLE or SCHEMA.TABLE)")
    table = split_table(str(block["table"]))
    raw: dict[str, Any] = block["columns"]
    unknown = sorted(set(raw) - {ID_KEY, *FIELD_KEYS})
    if unknown:
        known = ", ".join((ID_KEY, *FIELD_KEYS))
        raise UsageError(f"store.columns: unknown column key(s) {', '.join(unknown)} (known: {known})")
    states_raw: dict[str, Any] = block["states"]
    derived = any(_is_condition(v) for v in states_raw.values())
    fields: dict[str, Field] = {}
    for key in FIELD_KEYS:
        if key == STATE_KEY and derived:
            if raw.get(STATE_KEY) is not None:
                raise UsageError("store.columns.state: states derived from boolean columns read no state column")
            continue
        spec = raw.get(key, key if key in DEFAULT_COLUMNS and (columns is None or key in columns) else None)
        if spec is not None:
            fields[key] = _field(key, spec)
    if not derived and STATE_KEY not in fields:
        raise UsageError("store.columns.state is not set", hint="name the column that holds each saga's state")
    id_spec = raw.get(ID_KEY, ID_KEY)
    id_columns = tuple(_column(ID_KEY, c) for c in (id_spec if isinstance(id_spec, list) else [id_spec]))
    if not id_columns:
        raise UsageError("store.columns.saga_id is an empty list", hint="name the ID column (or key columns)")
    state_case = block["state_case"] or "any"
    if state_case not in ("any", "exact"):
        raise UsageError(f"store.state_case must be 'any' or 'exact', not {state_case!r}")
    _check_state_keys(states_raw)
    preset_name = given.preset
    if derived:
        rules = tuple(_rule(SagaState(k.lower()), v) for k, v in states_raw.items())
        if block["stuck_states"] is not None:
            raise UsageError("store.stuck_states lists state values: states derived from booleans have none")
        return Mapping(table, id_columns, fields, rules=rules, preset=preset_name, written=written)
    values, exact = _values(states_raw, state_case == "exact")
    stuck = _stuck(block["stuck_states"], values, exact)
    return Mapping(table, id_columns, fields, values, (), exact, stuck, preset_name, written)


def _is_condition(value: Any) -> bool:
    return isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, dict) for v in value))


def _column(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        what = "empty" if value in ("", None) else f"a {type(value).__name__}, not a column name"
        raise UsageError(f"store.columns.{key} is {what}")
    if "\0" in value:
        raise UsageError(f"store.columns.{key} holds a NUL character")
    return value


def _field(key: str, spec: Any) -> Field:
    if not isinstance(spec, dict):
        return Field(key, _column(key, spec))
    extra = sorted(set(spec) - {"column", "unit", "path"})
    if extra:
        raise UsageError(
            f"store.columns.{key}: unknown key(s) {', '.join(map(str, extra))} (known: column, unit, path)"
        )
    column = _column(key, spec.get("column"))
    unit = spec.get("unit")
    if unit is not None:
        if key not in TIME_KEYS:
            raise UsageError(f"store.columns.{key}.unit: only a time (created_at, updated_at, deadline_at) has a unit")
        if str(unit).lower() not in UNITS:
            raise UsageError(f"store.columns.{key}.unit must be ms or s (epoch milliseconds or seconds), not {unit!r}")
        unit = UNITS[str(unit).lower()]
    path_spec = spec.get("path")
    path: tuple[str, ...] = ()
    if path_spec is not None:
        if key in TIME_KEYS:
            raise UsageError(f"store.columns.{key}.path: a time is read from a column of its own, not a JSON field")
        parts = path_spec if isinstance(path_spec, list) else str(path_spec).split(".")
        path = tuple(str(p) for p in parts)
        if any('"' in p or "\0" in p for p in path):
            raise UsageError(f"store.columns.{key}.path: a key with a double quote or NUL cannot be read")
        if not path or not all(path):
            raise UsageError(f"store.columns.{key}.path {path_spec!r} is not a path (Field, Outer.Inner or a list)")
    return Field(key, column, path, unit)


def _check_state_keys(states: MappingABC[str, Any]) -> None:
    bad = sorted(k for k in states if k.lower() not in {s.value for s in SagaState})
    if bad:
        known = ", ".join(s.value for s in SagaState)
        raise UsageError(f"store.states: unknown state(s) {', '.join(bad)} (known: {known})")


def _rule(state: SagaState, spec: Any) -> Rule:
    sets = spec if isinstance(spec, list) else [spec]
    when: list[Conditions] = []
    for conditions in sets:
        if not isinstance(conditions, dict):
            raise UsageError(
                f"store.states.{state.value}: {conditions!r} is not a condition: write {{column: true|false}}"
                " (states are values of a state column, or conditions on boolean columns, not both)"
            )
        for column, wanted in conditions.items():
            _column(f"states.{state.value}", column)
            if not isinstance(wanted, bool):
                raise UsageError(f"store.states.{state.value}.{column} must be true or false, not {wanted!r}")
        when.append(tuple((str(c), bool(w)) for c, w in conditions.items()))
    return Rule(state, tuple(when))


def _values(states: MappingABC[str, Any], exact: bool) -> tuple[dict[SagaState, tuple[Any, ...]], bool]:
    """Each state's values (a state the mapping leaves out: its own name, or none when the
    states are numbers), and whether they compare as written (exact, or numbers)."""
    given = {SagaState(k.lower()): v for k, v in states.items()}
    values: dict[SagaState, tuple[Any, ...]] = {}
    for state, spec in given.items():
        listed = tuple(spec) if isinstance(spec, list) else (spec,)
        for value in listed:
            if isinstance(value, bool) or not isinstance(value, str | int):
                raise UsageError(f"store.states.{state.value}: {value!r} is not a state value (text or a number)")
        values[state] = listed
    kinds = {isinstance(v, int) for listed in values.values() for v in listed}
    if kinds == {True, False}:
        raise UsageError("store.states mixes numbers and text: the state column holds one or the other")
    numbers = kinds == {True}
    for state in SagaState:
        values.setdefault(state, () if numbers else (state.value,))
    values = {state: values[state] for state in SagaState}
    exact = exact or numbers
    seen: dict[Any, SagaState] = {}
    for state, listed in values.items():
        for value in listed:
            key = value if exact or not isinstance(value, str) else value.lower()
            if key in seen and seen[key] is not state:
                raise UsageError(
                    f"store.states maps two sagactl states to the same value {value!r}"
                    + ("" if exact else " (compared in any case)")
                )
            seen[key] = state
    return values, exact


def _stuck(spec: Any, values: MappingABC[SagaState, tuple[Any, ...]], exact: bool) -> tuple[Any, ...] | None:
    if spec is None:
        return None
    active = {(v if exact or not isinstance(v, str) else v.lower()): v for s in ACTIVE_STATES for v in values[s]}
    listed = spec if isinstance(spec, list) else [spec]
    chosen = []
    for value in listed:
        key = value if exact or not isinstance(value, str) else str(value).lower()
        if key not in active:
            raise UsageError(
                f"store.stuck_states: {value!r} is not a value of an active state (started, pending, compensating)"
            )
        chosen.append(active[key])
    return tuple(chosen)
