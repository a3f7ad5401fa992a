"""The saga-log reads behind ``stats --steps``: one row per step execution (a step's action, or
its compensation, in one saga) from saga_transitions, and the definition snapshot each saga
type runs with. SQL for both dialects; the statistics themselves are sagactl.stepstats'.

What the transitions say (driver.py writes them):

- an attempt is a transition into ``executing`` (action) or ``compensating`` (a step's
  compensation); a retry's transition carries ``detail.after``: "timeout" when the attempt
  before it got no answer within the timeout, "error" for another transient failure;
- the action ends ``executing -> completed | failed`` (``detail.timed_out`` when the last
  attempt timed out); the compensation ends ``-> compensated`` (``detail.action = resolve``
  when an operator did it by hand). No end: still running, or stuck.

Sagas are chosen by when they were created (``--since``), from the saga_log_created index.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

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
        "SELECT l.saga_type, t.step_name,"
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
        " GROUP BY l.saga_type, t.saga_id, t.step_name"
    )


def step_runs(store: SqlStore, since: datetime, saga_type: str | None = None) -> Iterator[StepRun]:
    """Every step execution (action and compensation apart) of the sagas created since ``since``
    (of ``saga_type`` if given)."""
    params: list[Any] = [store._encode_time(since)]
    if saga_type:
        params.append(saga_type)
    rows = store._query(runs_statement(store.info.kind, saga_type), params, "reading step transitions")
    for saga_type_, step, a_tries, a_timeouts, a_end, a_seconds, c_tries, c_timeouts, c_end, c_seconds in rows:
        if a_tries:
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
