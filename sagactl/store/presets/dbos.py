"""``preset: dbos``: a DBOS Transact system database (PostgreSQL schema ``dbos``, or DBOS's
SQLite file), as DBOS 3.x writes it.

- ``workflow_status``: one row per workflow; times in epoch milliseconds (BIGINT); the
  workflow's function ``name`` is the saga type. Statuses: PENDING, ENQUEUED and DELAYED are
  pending; SUCCESS completed; ERROR, MAX_RECOVERY_ATTEMPTS_EXCEEDED (RETRIES_EXCEEDED in
  databases written before mid-2025) and CANCELLED failed; DBOS has no compensating status
  (a workflow compensates in its own code). ``list --stuck`` considers PENDING and ENQUEUED
  workflows past their deadline or idle past ``--older-than``: the stranded workflows of a dead
  executor. A DELAYED one waits on purpose.
- ``workflow_output`` (since schema version 109; ``workflow_status.error`` before): the error,
  serialized as ``workflow_status.serialization`` says: ``portable_json`` is shown as text; a
  pickle (``py_pickle``, or no serialization recorded) is never unpickled: show names the
  format and the class and text read from its opcodes.
- ``operation_outputs``: each step DBOS recorded (function_id, function_name, start and end in
  epoch ms). DBOS records a step once it has finished: a step in flight is not there.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sagactl.errors import UsageError
from sagactl.models import SagaState, SagaSummary, StepRecord, StepStatus
from sagactl.store.base import SagaQuery
from sagactl.store.foreign import Column, Kind
from sagactl.store.fragments import Dialect, Ident, Param, Sql, join, params, sql
from sagactl.store.presets.base import Preset, TableReader

KNOWN_VERSION = 125  # dbos_migrations.version written by DBOS Transact 3.4 (PostgreSQL and SQLite)
PENDING = ("PENDING", "ENQUEUED", "DELAYED")
FAILED = ("ERROR", "MAX_RECOVERY_ATTEMPTS_EXCEEDED", "RETRIES_EXCEEDED", "CANCELLED")
STEP_LIMIT = 5000  # steps show lists at most
CHUNK = 500  # workflow IDs per error lookup
TEXT = (Kind.TEXT,)
EPOCH = (Kind.INTEGER, Kind.NUMBER)
PICKLED = "py_pickle"
PORTABLE = "portable_json"


class Dbos(Preset):
    name = "dbos"
    framework = "DBOS"

    def block(self, dialect: Dialect, columns: dict[str, Column] | None) -> dict[str, Any]:
        mapped: dict[str, Any] = {
            "saga_id": "workflow_uuid",
            "saga_type": "name",
            "state": "status",
            "created_at": {"column": "created_at", "unit": "ms"},
            "updated_at": {"column": "updated_at", "unit": "ms"},
            "deadline_at": {"column": "workflow_deadline_epoch_ms", "unit": "ms"},
        }
        if columns is not None and "workflow_deadline_epoch_ms" not in columns:
            mapped["deadline_at"] = None  # a schema from before workflow deadlines
        return {
            "table": "dbos.workflow_status" if dialect == "postgres" else "workflow_status",
            "columns": mapped,
            "states": {
                "started": [],
                "pending": list(PENDING),
                "compensating": [],
                "completed": ["SUCCESS"],
                "failed": list(FAILED),
            },
            "state_case": "exact",  # DBOS writes them upper case: compared as written, its indexes serve
            "stuck_states": ["PENDING", "ENQUEUED"],
        }

    def check(self, store: TableReader, columns: dict[str, Column]) -> None:
        version = _version(store)
        known = f"DBOS Transact's system database up to schema version {KNOWN_VERSION}"
        why = known + ("" if version is None else f"; this one is at version {version}")
        wanted = [
            ("workflow_uuid", TEXT),
            ("status", TEXT),
            ("name", TEXT),
            ("created_at", EPOCH),
            ("updated_at", EPOCH),
        ]
        self.require(store, columns, wanted, why)
        if version is not None and version > KNOWN_VERSION:
            store.warn_once(
                "version",
                f"{store.where}: DBOS schema version {version} is newer than this sagactl knows ({KNOWN_VERSION});"
                " read as that version",
            )

    def refuse(self, store: TableReader, query: SagaQuery) -> None:
        if query.error is not None and not store.mapping.has("last_error"):
            raise UsageError(
                "--error: DBOS keeps a workflow's error apart (workflow_output), pickled unless it is portable_json:"
                " sagactl cannot filter by it",
                hint="list them with --state failed --group-by error, which reads each error",
            )

    def enrich(self, store: TableReader, sagas: list[SagaSummary]) -> list[SagaSummary]:
        """Failed workflows with their error as text (one lookup per 500, by primary key)."""
        if store.mapping.has("last_error"):
            return sagas
        failed = [s.saga_id for s in sagas if s.state is SagaState.FAILED]
        errors = _errors(store, failed)
        return [replace(s, last_error=errors[s.saga_id][0]) if s.saga_id in errors else s for s in sagas]

    def detail(self, store: TableReader, saga: SagaSummary) -> SagaSummary:
        notes: list[str] = []
        found = _errors(store, [saga.saga_id]).get(saga.saga_id)
        if found is not None:
            saga = replace(saga, last_error=found[0])
            notes.append(f"workflow error: {found[1]}")
        steps, step_notes = _steps(store, saga.saga_id)
        notes += step_notes
        if not saga.state.terminal:
            after = f" (the last recorded is #{len(steps)} {steps[-1].name})" if steps else ""
            notes.append(f"DBOS records a step once it has finished: a step in flight is not listed{after}")
        return replace(saga, steps=tuple(steps), notes=tuple(notes))


PRESET = Dbos()


def _sibling(store: TableReader, table: str) -> tuple[str, ...]:
    """Another DBOS table, in the schema of workflow_status."""
    return (*store.mapping.table[:-1], table)


def _version(store: TableReader) -> int | None:
    """dbos_migrations.version beside the table (None: no such table, an older DBOS)."""
    table = _sibling(store, "dbos_migrations")
    if store.db.columns(table, store.where) is None:
        return None
    rows = store.rows(sql("SELECT max(version) FROM {}", Ident(*table)), "reading the DBOS schema version")
    return int(rows[0][0]) if rows and rows[0][0] is not None else None


def _column_or_null(columns: dict[str, Column], alias: str, name: str) -> Sql:
    return sql("{}", Ident(alias, name)) if name in columns else sql("NULL")


def _errors(store: TableReader, saga_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Each of ``saga_ids`` that has an error: (the error as text, what format it was in). The
    error is workflow_output's (DBOS 3.3+) or else workflow_status's own column."""
    if not saga_ids:
        return {}
    status = store.sql.columns
    output = store.db.columns(_sibling(store, "workflow_output"), store.where)
    error = _column_or_null(status, "s", "error")
    if output is not None and "error" in output:
        error = sql("COALESCE({}, {})", Ident("o", "error"), error)
    serialization = _column_or_null(status, "s", "serialization")
    key = store.mapping.id_columns[0]
    source = sql("{} AS s", Ident(*store.mapping.table))
    if output is not None:
        joined = sql(
            "{} LEFT JOIN {} AS o ON {} = {}",
            source,
            Ident(*_sibling(store, "workflow_output")),
            Ident("o", "workflow_uuid"),
            Ident("s", key),
        )
        source = joined
    found: dict[str, tuple[str, str]] = {}
    for start in range(0, len(saga_ids), CHUNK):
        chunk = saga_ids[start : start + CHUNK]
        statement = sql(
            "SELECT {}, {}, {} FROM {} WHERE {} IN ({})",
            Ident("s", key),
            error,
            serialization,
            source,
            Ident("s", key),
            params(chunk),
        )
        for saga_id, text, form in store.rows(statement, "reading workflow errors"):
            if text is not None:
                found[str(saga_id)] = describe(str(text), form)
    return found


def _steps(store: TableReader, saga_id: str) -> tuple[list[StepRecord], list[str]]:
    """The steps DBOS recorded for the workflow, in order, and notes on what is not shown."""
    table = _sibling(store, "operation_outputs")
    columns = store.db.columns(table, store.where)
    if columns is None or "function_name" not in columns:
        return [], [f"no {'.'.join(table)} with function names: the steps are not shown"]
    names = (
        "function_id",
        "function_name",
        "output",
        "error",
        "child_workflow_id",
        "started_at_epoch_ms",
        "completed_at_epoch_ms",
        "serialization",
    )
    picked = join(", ", (sql("{}", Ident(n)) if n in columns else sql("NULL") for n in names))
    statement = sql(
        "SELECT {} FROM {} WHERE {} = {} ORDER BY {} LIMIT {}",
        picked,
        Ident(*table),
        Ident("workflow_uuid"),
        Param(saga_id),
        Ident("function_id"),
        Param(STEP_LIMIT + 1),
    )
    rows = store.rows(statement, f"reading the steps of {saga_id}")
    steps: list[StepRecord] = []
    pickled_outputs = 0
    for _, name, output, error, child, started, completed, form in rows[:STEP_LIMIT]:
        result: Any = None
        if output is not None and form == PORTABLE:
            try:
                result = json.loads(output)
            except ValueError:
                result = str(output)
        elif output is not None:
            pickled_outputs += 1
        if child is not None:
            result = {"child_workflow_id": str(child), **({"output": result} if result is not None else {})}
        steps.append(
            StepRecord(
                name=str(name),
                status=StepStatus.FAILED if error is not None else StepStatus.COMPLETED,
                attempts=1,
                result=result,
                error=describe(str(error), form)[0] if error is not None else None,
                started_at=_epoch_ms(started),
                finished_at=_epoch_ms(completed),
            )
        )
    notes = []
    if pickled_outputs:
        notes.append(f"step outputs pickled ({PICKLED}) are never unpickled: {pickled_outputs} not shown")
    if len(rows) > STEP_LIMIT:
        notes.append(f"only the first {STEP_LIMIT} steps are listed")
    return steps, notes


def _epoch_ms(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(int(value) / 1000.0, UTC)


def describe(text: str, form: str | None) -> tuple[str, str]:
    """An error DBOS serialized, as text, and what format it was in. A portable_json error is
    its name and message; a pickle is never unpickled: the class and the text it holds are read
    from its opcodes (pickletools, which runs nothing)."""
    if form == PORTABLE:
        try:
            data = json.loads(text)
        except ValueError:
            return text, f"{PORTABLE} (not valid JSON: shown as stored)"
        if isinstance(data, dict) and "message" in data:
            code = f" (code {data['code']})" if data.get("code") not in (None, "") else ""
            return f"{data.get('name') or 'Error'}: {data['message']}{code}", f"{PORTABLE}, shown as text"
        return json.dumps(data), f"{PORTABLE}, shown as text"
    if form not in (None, PICKLED):
        return f"(an error in the {form!r} serialization)", f"{form!r}: a serializer of the application; not shown"
    read = read_pickle(text)
    fmt = f"{PICKLED} (a base64 pickle: never unpickled"
    if read is None:
        return f"(a pickled error: {PICKLED}, not unpickled)", fmt + "; no text could be read from it)"
    return read, fmt + "; the class and text shown are read from its opcodes)"


MAX_PICKLE = 65536  # bytes of a pickle read for its text


def read_pickle(encoded: str) -> str | None:
    """``Class: text`` read from a base64 pickle's opcodes without unpickling it (None when
    it holds neither)."""
    import base64
    import binascii
    import pickletools

    try:
        data = base64.b64decode(encoded[: MAX_PICKLE * 4 // 3 + 4], validate=False)
    except (binascii.Error, ValueError):
        return None
    names: list[str] = []
    strings: list[str] = []
    try:
        for opcode, arg, _ in pickletools.genops(data):
            if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE") and isinstance(arg, str):
                strings.append(arg)
            elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(strings[-1])
                del strings[-2:]
            elif opcode.name == "GLOBAL" and isinstance(arg, str):
                names.append(arg.split(" ")[-1])
    except Exception:  # a cut or foreign stream: keep what was read before it
        pass
    if not names and not strings:
        return None
    text = "; ".join(s for s in strings if s.strip())[:500]
    return f"{names[0]}: {text}" if names and text else names[0] if names else text
