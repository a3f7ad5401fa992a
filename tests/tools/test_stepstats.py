"""`stats --steps` on a saga log filled with known durations (SQLite and PostgreSQL): percentiles,
attempts per success, failure and timeout rates, the flags, --type and --since, SQS retention
asked of a real (moto) queue or unknown when SQS is unreachable; and the engine recording
what the statistics read (how each retried attempt ended)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.config import AwsSettings, Settings
from sagactl.definitions.model import Endpoint, RetryPolicy, StepDef, from_snapshot
from sagactl.definitions.validation import check_text, load
from sagactl.engine.control import Engine
from sagactl.errors import UsageError
from sagactl.models import SagaRecord, SagaState, StepRecord, StepStatus, Transition
from sagactl.ops.tools import step_stats
from sagactl.store import Store, open_store
from sagactl.store.stepruns import StepTotals, percentile, step_runs
from sagactl.tools.stepstats import Retention, StepStats, judge
from sagactl.transports import open_transport
from tests.conftest import STORE_KINDS
from tests.support.clock import FakeClock
from tests.support.participants import Participants, slow, transient
from tests.support.postgres import fresh_database
from tests.support.sqs import Sqs

T = datetime(2026, 11, 26, 8, 0, 0, tzinfo=UTC)
NOW = T + timedelta(hours=2)
runner = CliRunner()


def document(queue: str) -> dict[str, Any]:
    text = f"""
saga: Order
endpoints:
  web: {{type: http, url: "http://127.0.0.1:9/"}}
  pay: {{type: sqs, queue: {queue}, reply_queue: order-replies}}
defaults:
  timeout: 90s
  retry: {{max_attempts: 3, initial_backoff: 1s, max_backoff: 1s}}
steps:
  - name: reserve
    endpoint: web
    action: {{path: /r}}
    compensation: {{path: /u}}
  - name: charge
    endpoint: pay
    timeout: 5s
    compensation_retry: {{max_attempts: 5, initial_backoff: 10s, max_backoff: 20s}}
    action: {{command: Charge}}
    compensation: {{command: Refund}}
"""
    report = check_text(text, "order.yaml", ".")
    assert not report.errors, report.errors
    return report.definitions[0].snapshot()


class Log:
    """One saga's transitions, written as the driver writes them, at known times."""

    def __init__(self, saga_id: str, start: datetime) -> None:
        self.saga_id, self.start = saga_id, start
        self.rows: list[Transition] = []
        self.add(None, None, "started", 0)
        self.add(None, "started", "pending", 0)

    def add(self, step: str | None, old: str | None, new: str, seconds: float, **detail: Any) -> None:
        at = self.start + timedelta(seconds=seconds)
        self.rows.append(Transition(self.saga_id, step, old, new, at, detail))


def saga_of(log: Log, saga_type: str, snapshot: dict[str, Any], state: SagaState) -> SagaRecord:
    return SagaRecord(
        saga_id=log.saga_id,
        saga_type=saga_type,
        state=state,
        data={},
        steps=[StepRecord("reserve", StepStatus.COMPLETED), StepRecord("charge", StepStatus.COMPLETED)],
        definition=snapshot,
        created_at=log.start,
        updated_at=log.rows[-1].at,
    )


QUEUE = f"payments-{uuid.uuid4().hex[:10]}"  # in every snapshot; one test creates it on moto


def fill(store: Store, queue: str = QUEUE) -> None:
    """100 Order sagas: reserve takes i seconds (1..100); charge times out once then succeeds
    (sagas 1-10, 8 s), succeeds at once (11-90, 2 s) or fails after an error, a timeout and a
    final timeout (91-100, 20 s), and then both steps are compensated (reserve of saga 100 by
    hand). Plus one Other saga, and one Order saga created before the window."""
    snapshot = document(queue)
    for i in range(1, 101):
        log = Log(f"o-{i:03}", T + timedelta(seconds=i))
        log.add("reserve", "pending", "executing", 0, attempt=1)
        log.add("reserve", "executing", "completed", i, attempt=1)
        c = i + 1.0
        log.add("charge", "pending", "executing", c, attempt=1)
        if i <= 10:
            log.add("charge", "executing", "executing", c + 6, attempt=2, retry=True, after="timeout")
            log.add("charge", "executing", "completed", c + 8, attempt=2)
            state = SagaState.COMPLETED
        elif i <= 90:
            log.add("charge", "executing", "completed", c + 2, attempt=1)
            state = SagaState.COMPLETED
        else:
            log.add("charge", "executing", "executing", c + 4, attempt=2, retry=True, after="error")
            log.add("charge", "executing", "executing", c + 12, attempt=3, retry=True, after="timeout")
            log.add("charge", "executing", "failed", c + 20, attempt=3, outcome="unknown", timed_out=True, error="x")
            log.add(None, "pending", "compensating", c + 20)
            log.add("charge", "failed", "compensating", c + 20, attempt=1)
            log.add("charge", "compensating", "compensated", c + 23, attempt=1)
            if i < 100:
                log.add("reserve", "completed", "compensating", c + 23, attempt=1)
                log.add("reserve", "compensating", "compensated", c + 24, attempt=1)
            else:
                log.add("reserve", "completed", "compensated", c + 30, action="resolve", by="ops", reason="by hand")
            state = SagaState.FAILED
        store.create(saga_of(log, "Order", snapshot, state), log.rows)
    other = Log("x-1", T)
    other.add("reserve", "pending", "executing", 0, attempt=1)
    other.add("reserve", "executing", "completed", 1, attempt=1)
    store.create(saga_of(other, "Other", snapshot, SagaState.COMPLETED), other.rows)
    old = Log("o-old", T - timedelta(days=2))
    old.add("reserve", "pending", "executing", 0, attempt=1)
    old.add("reserve", "executing", "completed", 500, attempt=1)
    store.create(saga_of(old, "Order", snapshot, SagaState.COMPLETED), old.rows)


@pytest.fixture(scope="module", params=STORE_KINDS)
def filled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The DSN of a saga log of each kind holding ``fill``'s sagas (filled once, only read)."""
    if request.param == "sqlite":
        dsn = f"sqlite:///{tmp_path_factory.mktemp('stepstats') / 'log.db'}"
        with closing(open_store(dsn)) as store:
            fill(store)
        yield dsn
        return
    with fresh_database(request.getfixturevalue("pg_admin_dsn"), "sagactl_stepstats") as dsn:
        with closing(open_store(dsn)) as store:
            fill(store)
        yield dsn


def by_step(report: Any) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(s["saga_type"], s["step_name"], s["phase"]): s for s in report.to_dict()["steps"]}


# -- on both stores ---------------------------------------------------------------------------


def test_known_durations_give_exact_statistics(filled: str, aws_env: dict[str, str], closed_port: int) -> None:
    unreachable = AwsSettings(region="us-east-1", endpoint_url=f"http://127.0.0.1:{closed_port}")
    report = step_stats(Settings(dsn=filled, aws=unreachable), since="24h", saga_type="Order", now=NOW)
    steps = by_step(report)
    assert list(steps) == [
        ("Order", "reserve", "action"),
        ("Order", "charge", "action"),
        ("Order", "reserve", "compensation"),
        ("Order", "charge", "compensation"),
    ]
    reserve = steps["Order", "reserve", "action"]
    assert (reserve["runs"], reserve["succeeded"], reserve["failed"], reserve["attempts"]) == (100, 100, 0, 100)
    assert (reserve["p50_seconds"], reserve["p95_seconds"], reserve["p99_seconds"]) == (50.5, 95.05, 99.01)
    assert (reserve["attempts_per_success"], reserve["failure_rate"], reserve["timeout_rate"]) == (1.0, 0.0, 0.0)
    assert reserve["flags"] == ["timeout 1m30s is below the observed p99 1m39s"]

    charge = steps["Order", "charge", "action"]
    assert (charge["runs"], charge["succeeded"], charge["failed"], charge["attempts"]) == (100, 90, 10, 130)
    assert (charge["p50_seconds"], charge["p95_seconds"], charge["p99_seconds"]) == (2.0, 20.0, 20.0)
    assert charge["attempts_per_success"] == pytest.approx(100 / 90)
    assert charge["failure_rate"] == pytest.approx(0.1)
    assert (charge["timeouts"], charge["timeouts_then_succeeded"]) == (30, 10)
    assert charge["timeout_rate"] == pytest.approx(30 / 130)
    assert charge["flags"] == [
        "timeout 5s fired on 10 attempts of runs that then succeeded on retry: the participant answers,"
        " later than the timeout",
        "timeout 5s is below the observed p99 20s",
    ]

    undo_reserve = steps["Order", "reserve", "compensation"]
    assert (undo_reserve["runs"], undo_reserve["succeeded"], undo_reserve["resolved"]) == (10, 9, 1)
    assert undo_reserve["p99_seconds"] == 1.0 and undo_reserve["flags"] == []

    refund = steps["Order", "charge", "compensation"]
    assert (refund["runs"], refund["succeeded"], refund["p50_seconds"]) == (10, 10, 3.0)
    assert refund["retry_budget_seconds"] == 5 * 5 + 10 + 20 + 20 + 20
    # SQS cannot be asked: retention unknown, SQS's default (4 days) is far above 95 s
    assert (refund["queue"], refund["queue_retention_seconds"]) == (QUEUE, None)
    assert refund["flags"] == []


def test_type_and_since_choose_the_sagas(filled: str) -> None:
    settings = Settings(dsn=filled)
    everything = by_step(step_stats(settings, since="7d", now=NOW, env={}))
    assert everything["Order", "reserve", "action"]["runs"] == 101  # the old saga is within 7 days
    assert everything["Other", "reserve", "action"]["runs"] == 1
    recent = by_step(step_stats(settings, since="1h", now=T + timedelta(minutes=30), env={}))
    assert recent["Order", "reserve", "action"]["runs"] == 100
    assert step_stats(settings, since="1h", saga_type="Nope", now=NOW, env={}).steps == []


@pytest.mark.slow
def test_compensation_budget_outlasting_a_real_queues_retention_is_flagged(filled: str, sqs: Sqs) -> None:
    try:
        url = sqs.client.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    except sqs.client.exceptions.QueueDoesNotExist:
        url = sqs.client.create_queue(QueueName=QUEUE, Attributes={"MessageRetentionPeriod": "60"})["QueueUrl"]
    queue = sqs.client.get_queue_attributes(QueueUrl=url, AttributeNames=["MessageRetentionPeriod"])
    assert queue["Attributes"]["MessageRetentionPeriod"] == "60"
    settings = Settings(dsn=filled, aws=AwsSettings(region="us-east-1", endpoint_url=sqs.endpoint))
    refund = by_step(step_stats(settings, now=NOW))["Order", "charge", "compensation"]
    assert (refund["queue"], refund["queue_retention_seconds"]) == (QUEUE, 60.0)
    assert refund["flags"] == [f"retry budget 1m35s outlasts the queue {QUEUE} retention 1m"]


@pytest.mark.slow
def test_stats_steps_from_the_command_line(filled: str) -> None:
    store_dsn = filled
    result = runner.invoke(app, ["stats", "--steps", "--since", "3650d", "--dsn", store_dsn, "-o", "csv"])
    assert result.exit_code == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.startswith("saga_type,step_name,phase,runs,") and len(rows) == 5
    table = runner.invoke(app, ["stats", "--steps", "--since", "3650d", "--type", "Order", "--dsn", store_dsn])
    assert table.exit_code == 0 and "FLAG" in table.stdout and "timeout 5s is below the observed p99" in table.stdout
    metrics = runner.invoke(
        app, ["stats", "--steps", "--since", "3650d", "--type", "Other", "--dsn", store_dsn, "-o", "prometheus"]
    )
    assert 'sagactl_step_duration_seconds{phase="action",quantile="0.99",saga_type="Other",step="reserve"} 1.0' in (
        metrics.stdout
    )


def test_type_and_since_need_steps(store_dsn: str) -> None:
    result = runner.invoke(app, ["stats", "--since", "1h", "--dsn", store_dsn])
    assert (result.exit_code, result.stderr) == (2, "sagactl: error: --type and --since apply only with --steps\n")
    bad = runner.invoke(app, ["stats", "--steps", "--since", "0s", "--dsn", store_dsn])
    assert bad.exit_code == 2 and "--since must be above 0" in bad.stderr


# -- the statistics themselves ----------------------------------------------------------------


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 0.5) is None
    assert percentile([4.0], 0.99) == 4.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5


def test_unknown_retention_assumes_the_sqs_default_of_4_days() -> None:
    policy = RetryPolicy(max_attempts=10, initial_backoff=1.0, max_backoff=1.0)
    step = StepDef("charge", "pay", 86400.0, 86400.0, policy, policy, {}, {"command": "Refund"})
    definition = from_snapshot(document("q"))
    stats = StepStats(StepTotals("Order", "charge", "compensation"))
    asked: list[Endpoint] = []

    def lookup(endpoint: Endpoint) -> Retention:
        asked.append(endpoint)
        return Retention("q", None, "cannot reach SQS")

    judge(stats, step, definition, lookup)
    assert [e.name for e in asked] == ["pay"]
    assert stats.flags == [
        "retry budget 10d9s outlasts the queue q retention unknown (cannot reach SQS), SQS's default 4d assumed"
    ]


def test_a_mapped_table_has_no_transitions(tmp_path: Path) -> None:
    from sagactl.config import TableMapping

    settings = Settings(dsn=f"sqlite:///{tmp_path / 'x.db'}", mapping=TableMapping("t"))
    with pytest.raises(UsageError, match="mapped table"):
        step_stats(settings, env={})


# -- what the engine records for them ----------------------------------------------------------

TIMED = """\
saga: Timed
endpoints:
  web: {type: http, url: "${env.URL}"}
defaults:
  timeout: 300ms
  retry: {max_attempts: 3, initial_backoff: 10ms, max_backoff: 10ms}
steps:
  - {name: a, endpoint: web, action: {path: /a}, compensation: {path: /undo}}
"""


def test_the_engine_records_how_each_retried_attempt_ended(
    store: Store, participants: Participants, tmp_path: Path
) -> None:
    """A retry's transition says whether the attempt before it timed out or failed otherwise;
    a step failing on a timeout says so too: what stats --steps counts."""
    path = tmp_path / "timed.yaml"
    path.write_text(TIMED)
    definition = load(path)
    env = {"URL": participants.url}
    engine = Engine(
        store=store,
        transport_factory=lambda d, e: open_transport(d.endpoints[e], d.base_dir, env),
        clock=FakeClock(),
        env=env,
        rng=random.Random(1),
    )
    participants.script("a", "action", slow(1.0), transient(503))
    engine.run(definition, {}, "t-1")
    attempts = [t.detail for t in store.transitions("t-1") if t.step_name == "a" and t.new_state == "executing"]
    owner = {"owner": engine.owner}  # every transition names the driver that wrote it
    assert attempts == [
        {"attempt": 1, **owner},
        {"attempt": 2, "retry": True, "after": "timeout", **owner},
        {"attempt": 3, "retry": True, "after": "error", **owner},
    ]
    participants.script("a", "action", then=slow(1.0))
    engine.run(definition, {}, "t-2")
    [failed] = [t.detail for t in store.transitions("t-2") if t.step_name == "a" and t.new_state == "failed"]
    assert failed["timed_out"] is True and failed["attempt"] == 3
    runs = sorted(
        (r.attempts, r.timeouts, r.outcome)
        for r in step_runs(store, T - timedelta(days=3650))  # type: ignore[arg-type]
        if r.phase == "action"
    )
    assert runs == [(3, 1, "completed"), (3, 3, "failed")]
