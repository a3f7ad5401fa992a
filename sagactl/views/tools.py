"""Documents (output.Document) for the operator's tools: ``stats --steps``, ``doctor`` and
``config``. Foreign text (step and type names from the saga log, paths, DSNs) reaches
output.emit as data; emit escapes it for whatever format it writes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sagactl.views.output import Document, Table, humanize_seconds, rows_table

if TYPE_CHECKING:
    from sagactl.tools.contexts import Contexts
    from sagactl.tools.doctor import Checks
    from sagactl.tools.stepstats import StepStatsReport


def _percent(value: float | None) -> str:
    return "" if value is None else f"{value * 100:.1f}%"


def _seconds(value: float | None) -> str:
    return "" if value is None else humanize_seconds(value)


STEP_COLUMNS = (
    "saga_type", "step_name", "phase", "runs", "succeeded", "failed", "resolved", "running",
    "p50_seconds", "p95_seconds", "p99_seconds", "attempts", "attempts_per_success", "failure_rate",
    "timeouts", "timeout_rate", "timeouts_then_succeeded", "timeout_seconds", "retry_budget_seconds",
    "queue", "queue_retention_seconds", "flags",
)  # fmt: skip


# What `stats --steps` gives up on a narrow terminal, in order (no cell is ever split: a
# duration, a rate or a count stays one piece): the FLAGS count (the flags table follows),
# the configured TIMEOUT, P50, ATTEMPTS/OK, TIMEOUT%, FAILED, then TYPE.
STEPS_DROP = ("flags", "timeout", "p50", "attempts_per_success", "timeout_rate", "failed", "saga_type")


def step_stats_document(report: StepStatsReport) -> Document:
    """`stats --steps`: JSON {store, since, saga_type, steps: [...]}; a table per step and one of
    the flags; csv/tsv one row per step (flags joined by '; ')."""
    data = report.to_dict()
    rows = data["steps"]
    table = Table(
        columns=[
            ("saga_type", "TYPE"),
            ("step_name", "STEP"),
            ("phase", "PHASE"),
            ("runs", "RUNS"),
            ("failed", "FAILED"),
            ("p50", "P50"),
            ("p95", "P95"),
            ("p99", "P99"),
            ("attempts_per_success", "ATTEMPTS/OK"),
            ("failure_rate", "FAIL%"),
            ("timeout_rate", "TIMEOUT%"),
            ("timeout", "TIMEOUT"),
            ("flags", "FLAGS"),
        ],
        rows=[
            {
                "saga_type": row["saga_type"],
                "step_name": row["step_name"],
                "phase": row["phase"],
                "runs": row["runs"],
                "failed": row["failed"],
                "p50": _seconds(row["p50_seconds"]),
                "p95": _seconds(row["p95_seconds"]),
                "p99": _seconds(row["p99_seconds"]),
                "attempts_per_success": ""
                if row["attempts_per_success"] is None
                else f"{row['attempts_per_success']:.2f}",
                "failure_rate": _percent(row["failure_rate"]),
                "timeout_rate": _percent(row["timeout_rate"]),
                "timeout": _seconds(row["timeout_seconds"]),
                "flags": len(row["flags"]) or "",
            }
            for row in rows
        ],
        title="Steps",
        droppable=STEPS_DROP,
    )
    flags = Table(
        columns=[("saga_type", "TYPE"), ("step_name", "STEP"), ("phase", "PHASE"), ("flag", "FLAG")],
        rows=[
            {"saga_type": row["saga_type"], "step_name": row["step_name"], "phase": row["phase"], "flag": flag}
            for row in rows
            for flag in row["flags"]
        ],
        title="Flags",
        folding=("flag",),
        droppable=("saga_type", "phase"),
    )
    details = [("store", data["store"]), ("sagas created since", data["since"])]
    if data["saga_type"]:
        details.append(("saga type", data["saga_type"]))
    flat: list[dict[str, Any]] = [{**row, "flags": "; ".join(row["flags"])} for row in rows]
    return Document(
        data=data,
        tables=[table, flags] if flags.rows else [table],
        details=details,
        prometheus=lambda: step_stats_prometheus(report),
        empty_message="no step ran in that window",
        delimited=rows_table(flat, STEP_COLUMNS),
    )


def step_stats_prometheus(report: StepStatsReport) -> str:
    """Text exposition of the step statistics (node_exporter textfile collector)."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    labels = ["saga_type", "step", "phase"]
    seconds = Gauge(
        "sagactl_step_duration_seconds",
        "Step duration (first attempt to outcome) quantiles over the window.",
        [*labels, "quantile"],
        registry=registry,
    )
    runs = Gauge("sagactl_step_runs", "Step runs over the window by outcome.", [*labels, "outcome"], registry=registry)
    per_success = Gauge(
        "sagactl_step_attempts_per_success", "Attempts per successful run.", labels, registry=registry
    )
    timeouts = Gauge("sagactl_step_timeout_ratio", "Attempts that timed out / attempts.", labels, registry=registry)
    flagged = Gauge("sagactl_step_flags", "Configuration flags raised for the step.", labels, registry=registry)
    for step in report.steps:
        key = (step.saga_type, step.step_name, step.phase)
        row = step.to_dict()
        for quantile, name in (("0.5", "p50_seconds"), ("0.95", "p95_seconds"), ("0.99", "p99_seconds")):
            value = row[name]
            if value is not None:
                seconds.labels(*key, quantile).set(value)
        for outcome in ("succeeded", "failed", "resolved", "running"):
            runs.labels(*key, outcome).set(row[outcome])
        if row["attempts_per_success"] is not None:
            per_success.labels(*key).set(row["attempts_per_success"])
        if row["timeout_rate"] is not None:
            timeouts.labels(*key).set(row["timeout_rate"])
        flagged.labels(*key).set(len(row["flags"]))
    return generate_latest(registry).decode("utf-8")


def doctor_document(checks: Checks) -> Document:
    """`doctor`: JSON {ok, exit_code, checks: [{check, status, detail}]}; a table of them."""
    data = checks.to_dict()
    table = Table(
        columns=[("check", "CHECK"), ("status", "STATUS"), ("detail", "DETAIL")],
        rows=data["checks"],
        folding=("detail",),  # a check's name (a path) and its status stay one piece
    )
    return Document(data=data, tables=[table], delimited=rows_table(data["checks"]))


def contexts_document(found: Contexts) -> Document:
    """`config contexts`: JSON {config, current_context, contexts: [...]}; a table with the
    context in effect marked * (kubectl get-contexts)."""
    data = found.to_dict()
    rows = [
        {
            "current": "*" if c["current"] else "",
            "name": c["name"],
            "dsn": c["dsn"] or "",
            "table": " ".join(filter(None, (c["table"], c["preset"] and f"(preset {c['preset']})"))),
            "region": c["region"] or "",
            "endpoint_url": c["endpoint_url"] or "",
        }
        for c in data["contexts"]
    ]
    table = Table(
        columns=[
            ("current", "CURRENT"),
            ("name", "NAME"),
            ("dsn", "STORE"),
            ("table", "TABLE"),
            ("region", "REGION"),
            ("endpoint_url", "SQS ENDPOINT"),
        ],
        rows=rows,
        droppable=("table", "endpoint_url", "region"),  # a DSN (the store) stays one piece
    )
    where = data["config"] or "none found"
    return Document(
        data=data,
        tables=[table],
        empty_message=f"no contexts defined (config file: {where})",
        delimited=rows_table(data["contexts"]),
    )
