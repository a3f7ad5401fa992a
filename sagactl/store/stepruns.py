"""The saga-log reads behind ``stats --steps``: one row per step execution (a step's action, or
its compensation, in one saga) from saga_transitions, and the definition snapshot each saga
type runs with. SQL for both dialects; the statistics themselves are sagactl.tools.stepstats'.

What the transitions say (driver.py writes them):

- an attempt is a transition into ``executing`` (action) or ``compensating`` (a step's
  compensation); a retry's transition carries ``detail.after``: "timeout" when the attempt
  before it got no answer within the timeout, "error" for another transient failure;
- the action ends ``executing -> completed | failed`` (``detail.timed_out`` when the last
  attempt timed out); the compensation ends ``-> compensated`` (``detail.action = resolve``
  when an operator did it by hand). No end: still running, or stuck.

Sagas are chosen by when they were created (``--since``), from the saga_log_created index.
PostgreSQL aggregates per step in the database (percentile_cont; a few rows come back, with
work_mem raised and JIT off for the one statement); SQLite returns one row per step run and the
totals are folded here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sagactl.store.listing import ACTIVE
from sagactl.store.sql import SqlStore


@dataclass(frozen=True, slots=True)
class StepRun:
    """One step's action or compensation in one saga. ``outcome``: completed, failed (action),
    compensated, resolved (compensation) or None (not ended); ``seconds`` from its first
    attempt to its end (retries and backoffs included), None when not ended."""

    saga_type: str
    step_name: str
    phase: str
    attempts: int
    timeouts: int
    outcome: str | None
    seconds: float | None


def _text(kind: str, key: str) -> str:
    """The JSON text of ``detail.key`` in this dialect."""
    return f"(t.detail->>'{key}')" if kind == "postgres" else f"json_extract(t.detail, '$.{key}')"


def _seconds(kind: str, start: str, end: str) -> str:
    if kind == "postgres":
        return f"EXTRACT(EPOCH FROM ({end} - {start}))"
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


def runs_statement(kind: str, saga_type: str | None) -> str:
    """One row per (saga, step) with both phases' attempts, timeouts, ends and durations."""
    after, timed_out, action = _text(kind, "after"), _text(kind, "timed_out"), _text(kind, "action")
    true = "'true'" if kind == "postgres" else "1"
    act_end = "t.old_state = 'executing' AND t.new_state IN ('completed', 'failed')"
    comp_busy = "t.new_state = 'compensating'"
    a_start = "MIN(CASE WHEN t.new_state = 'executing' THEN t.at END)"
    a_end = f"MAX(CASE WHEN {act_end} THEN t.at END)"
    c_start = f"MIN(CASE WHEN {comp_busy} THEN t.at END)"
    c_end = "MAX(CASE WHEN t.new_state = 'compensated' THEN t.at END)"
    where = "l.created_at >= ? AND t.step_name IS NOT NULL" + (" AND l.saga_type = ?" if saga_type else "")
    return (
        "SELECT min(l.saga_type), t.step_name,"
        " SUM(CASE WHEN t.new_state = 'executing' THEN 1 ELSE 0 END),"
        f" SUM(CASE WHEN t.new_state = 'executing' AND {after} = 'timeout' THEN 1 ELSE 0 END)"
        f" + MAX(CASE WHEN {act_end} AND {timed_out} = {true} THEN 1 ELSE 0 END),"
        f" MAX(CASE WHEN {act_end} THEN t.new_state END),"
        f" {_seconds(kind, a_start, a_end)},"
        f" SUM(CASE WHEN {comp_busy} THEN 1 ELSE 0 END),"
        f" SUM(CASE WHEN {comp_busy} AND {after} = 'timeout' THEN 1 ELSE 0 END),"
        f" MAX(CASE WHEN t.new_state = 'compensated' THEN (CASE WHEN {action} = 'resolve' THEN 2 ELSE 1 END) END),"
        f" {_seconds(kind, c_start, c_end)}"
        " FROM saga_log l JOIN saga_transitions t ON t.saga_id = l.saga_id"
        f" WHERE {where}"
        " GROUP BY t.saga_id, t.step_name"  # one saga, one type: the narrowest key to group on
    )


def step_runs(store: SqlStore, since: datetime, saga_type: str | None = None) -> Iterator[StepRun]:
    """Every step execution (action and compensation apart) of the sagas created since ``since``
    (of ``saga_type`` if given)."""
    params: list[Any] = [store._encode_time(since)]
    if saga_type:
        params.append(saga_type)
    rows = store._query(runs_statement(store.info.kind, saga_type), params, "reading step transitions")
    for saga_type_, step, a_tries, a_timeouts, a_end, a_seconds, c_tries, c_timeouts, c_end, c_seconds in rows:
        if a_tries or a_end:
            yield StepRun(
                saga_type_, step, "action", int(a_tries), int(a_timeouts), a_end, _float(a_seconds) if a_end else None
            )
        if c_tries or c_end:
            outcome = {1: "compensated", 2: "resolved"}.get(int(c_end)) if c_end else None
            seconds = _float(c_seconds) if outcome == "compensated" else None
            yield StepRun(saga_type_, step, "compensation", int(c_tries), int(c_timeouts), outcome, seconds)


def _float(value: Any) -> float | None:
    return None if value is None else max(0.0, float(value))


def latest_definitions(store: SqlStore, saga_types: Sequence[str]) -> dict[str, dict[str, Any]]:
    """The definition snapshot of the newest saga of each type (what that type runs with now)."""
    found: dict[str, dict[str, Any]] = {}
    for saga_type in saga_types:
        rows = store._query(
            "SELECT definition FROM saga_log WHERE saga_type = ? ORDER BY created_at DESC LIMIT 1",
            [saga_type],
            f"reading the definition of {saga_type}",
        )
        if rows and isinstance(snapshot := store._decode_json(rows[0][0]), dict):
            found[saga_type] = snapshot
    return found


def active_definitions(store: SqlStore) -> dict[str, dict[str, Any]]:
    """The definition snapshot of the newest active saga of each type (what the sagas in flight
    run with), read through the active-state index only: flat in the number of finished sagas."""
    newest = store._query(
        f"SELECT saga_type, max(created_at) FROM saga_log WHERE {ACTIVE} GROUP BY saga_type",
        [],
        "reading the types of active sagas",
    )
    found: dict[str, dict[str, Any]] = {}
    for saga_type, created_at in newest:
        rows = store._query(
            f"SELECT definition FROM saga_log WHERE {ACTIVE} AND saga_type = ? AND created_at = ? LIMIT 1",
            [saga_type, created_at],
            f"reading the definition of {saga_type}",
        )
        if rows and isinstance(snapshot := store._decode_json(rows[0][0]), dict):
            found[str(saga_type)] = snapshot
    return found


@dataclass(slots=True)
class StepTotals:
    """What was observed of one step's action or compensation in one saga type."""

    saga_type: str
    step_name: str
    phase: str
    runs: int = 0
    succeeded: int = 0
    failed: int = 0
    resolved: int = 0
    attempts: int = 0
    attempts_of_successes: int = 0
    timeouts: int = 0
    timeouts_then_succeeded: int = 0
    quantiles: tuple[float | None, float | None, float | None] = (None, None, None)  # p50, p95, p99
    durations: list[float] = field(default_factory=list)  # while folding

    def add(self, run: StepRun) -> None:
        self.runs += 1
        self.attempts += run.attempts
        self.timeouts += run.timeouts
        if run.outcome in ("completed", "compensated"):
            self.succeeded += 1
            self.attempts_of_successes += run.attempts
            self.timeouts_then_succeeded += run.timeouts
        elif run.outcome == "failed":
            self.failed += 1
        elif run.outcome == "resolved":
            self.resolved += 1
        if run.seconds is not None:
            self.durations.append(run.seconds)


def percentile(ordered: list[float], fraction: float) -> float | None:
    """Linear interpolation between the closest ranks (PostgreSQL's percentile_cont) of an
    ascending list; None when it is empty."""
    if not ordered:
        return None
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def fold(runs: Iterable[StepRun]) -> list[StepTotals]:
    """Step runs folded per (saga type, step, phase), with their duration quantiles."""
    found: dict[tuple[str, str, str], StepTotals] = {}
    for run in runs:
        key = (run.saga_type, run.step_name, run.phase)
        totals = found.get(key)
        if totals is None:
            totals = found[key] = StepTotals(*key)
        totals.add(run)
    for totals in found.values():
        ordered = sorted(totals.durations)
        totals.quantiles = (percentile(ordered, 0.5), percentile(ordered, 0.95), percentile(ordered, 0.99))
        totals.durations = []
    return list(found.values())


def _phase_totals(phase: str, tries: str, timeouts: str, end: str, ok: str, seconds: str, failed: str) -> str:
    """One phase's totals per (type, step) over the ``runs`` CTE (PostgreSQL)."""
    return (
        f'SELECT saga_type COLLATE "C", step_name COLLATE "C", \'{phase}\', count(*),'
        f" count(*) FILTER (WHERE {end} = {ok}),"
        f" count(*) FILTER (WHERE {failed}), count(*) FILTER (WHERE {end} = 2), sum({tries}),"
        f" coalesce(sum({tries}) FILTER (WHERE {end} = {ok}), 0), sum({timeouts}),"
        f" coalesce(sum({timeouts}) FILTER (WHERE {end} = {ok}), 0),"
        f" percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY {seconds})"
        f" FILTER (WHERE {end} = {ok} OR ({failed}))"
        f" FROM runs WHERE {tries} > 0 OR {end} IS NOT NULL"
        ' GROUP BY saga_type COLLATE "C", step_name COLLATE "C"'  # bytes compared: no collation cost
    )


def _postgres_totals(store: Any, since: datetime, saga_type: str | None) -> list[StepTotals]:
    inner = runs_statement("postgres", saga_type).replace("?", "%s")  # its columns named by the CTE
    columns = "saga_type, step_name, a_tries, a_timeouts, a_end, a_seconds, c_tries, c_timeouts, c_end, c_seconds"
    action = _phase_totals(
        "action",
        "a_tries",
        "a_timeouts",
        "(CASE a_end WHEN 'completed' THEN 1 WHEN 'failed' THEN 3 END)",
        "1",
        "a_seconds",
        "a_end = 'failed'",
    )
    compensation = _phase_totals("compensation", "c_tries", "c_timeouts", "c_end", "1", "c_seconds", "false")
    statement = f"WITH runs ({columns}) AS ({inner}) {action} UNION ALL {compensation}"
    params: list[Any] = [since, *([saga_type] if saga_type else [])]
    with store._db("reading step transitions") as conn, conn.transaction():
        conn.execute("SET LOCAL work_mem = '128MB'")  # the per-run grouping stays in memory (~1M transitions)
        conn.execute("SET LOCAL jit = off")  # compiling costs more than it saves here
        rows = conn.execute(statement.encode(), params).fetchall()
    found = []
    for row in rows:
        quantiles = tuple(float(q) for q in row[11]) if row[11] is not None else (None, None, None)
        found.append(
            StepTotals(
                saga_type=row[0],
                step_name=row[1],
                phase=row[2],
                runs=int(row[3]),
                succeeded=int(row[4]),
                failed=int(row[5]),
                resolved=int(row[6]),
                attempts=int(row[7] or 0),
                attempts_of_successes=int(row[8] or 0),
                timeouts=int(row[9] or 0),
                timeouts_then_succeeded=int(row[10] or 0),
                quantiles=(quantiles[0], quantiles[1], quantiles[2]),
            )
        )
    return found


def step_totals(store: SqlStore, since: datetime, saga_type: str | None = None) -> list[StepTotals]:
    """Per (saga type, step, phase) totals of the sagas created since ``since``."""
    if store.info.kind == "postgres":
        return _postgres_totals(store, since, saga_type)
    return fold(step_runs(store, since, saga_type))
