"""The saga log's metrics (``stats -o prometheus`` and a worker's ``/metrics``) and the alert
rules and dashboard that ship with sagactl (``sagactl monitoring rules|dashboard``).

Guarantees: the log is read with the queries ``stats`` uses (counters and the active-state
indexes: flat in the number of finished sagas); a worker computes them at most once per
``ttl`` on a connection of their own, one scrape at a time (a second scrape meanwhile gets the
last result), so a scrape never waits on a driver and no driver waits on a scrape; a log or a
queue that cannot be read is reported in the metrics (sagactl_log_up, sagactl_dlq_up), never
as a failed scrape.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from importlib import resources
from typing import TYPE_CHECKING, Any

from sagactl.config import Settings
from sagactl.errors import SagactlError
from sagactl.models import utcnow
from sagactl.ops import reader_for
from sagactl.tools.monitoring import LogSnapshot, budgets

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from sagactl.dlq.peek import DlqDepth
    from sagactl.store.base import SagaReader

log = logging.getLogger("sagactl.engine.worker")

DEFAULT_TTL = 15.0  # seconds a worker keeps the log's metrics (Prometheus's default scrape interval)
RUNBOOK_BASE = "https://sagactl.dev/monitoring/"


def snapshot(settings: Settings, *, now: datetime | None = None) -> LogSnapshot:
    """The log's metrics now (``stats -o prometheus``): counts, budgets, configured DLQs."""
    with reader_for(settings) as reader:
        return read_snapshot(reader, settings, now or utcnow(), {})


def read_snapshot(
    reader: SagaReader,
    settings: Settings,
    now: datetime,
    known: dict[str, dict[str, Any]],
    sqs: Callable[[], SQSClient] | None = None,
) -> LogSnapshot:
    """The snapshot from ``reader``. ``known``: definition snapshots by type seen before (kept
    up to date here: a type with no saga in flight keeps its last known budget)."""
    from sagactl.tools.inspect import stats

    result = LogSnapshot(stats(reader, now))
    if settings.mapping is None:  # a foreign table has no definitions: no budgets
        from sagactl.store.sql import SqlStore
        from sagactl.store.stepruns import active_definitions

        if isinstance(reader, SqlStore):
            known.update(active_definitions(reader))
        result.budgets, result.steps = budgets(known)
    if settings.aws.dlqs:
        result.dlqs = dlq_depths(settings, now, sqs)
    return result


def dlq_depths(settings: Settings, now: datetime, sqs: Callable[[], SQSClient] | None = None) -> list[DlqDepth]:
    """Each queue of aws.dlqs: its depth, or why it could not be read (one line, masked)."""
    from sagactl.aws import resolve_queue
    from sagactl.dlq.peek import DlqDepth, depth
    from sagactl.masking import mask_secrets
    from sagactl.ops import sqs_for

    found = []
    client: SQSClient | None = None
    for name in settings.aws.dlqs:
        try:
            if client is None:
                client = sqs() if sqs is not None else sqs_for(settings, pool_size=2)
            found.append(depth(client, resolve_queue(client, name), now))
        except SagactlError as exc:
            found.append(DlqDepth(name, error=mask_secrets(exc.one_line())))
    return found


class LogCollector:
    """A prometheus_client collector of the log's metrics for a worker's registry: computed at
    most once per ``ttl`` seconds, on its own connection, by one scrape at a time."""

    def __init__(self, settings: Settings, ttl: float = DEFAULT_TTL, clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._families: list[Any] = []
        self._at: float | None = None
        self._reader: SagaReader | None = None
        self._sqs: SQSClient | None = None
        self._known: dict[str, dict[str, Any]] = {}

    def collect(self) -> Iterator[Any]:
        fresh = self._at is not None and self.clock() - self._at < self.ttl
        if not fresh and self._lock.acquire(blocking=self._at is None):
            try:
                self._families = self._compute()
                self._at = self.clock()
            finally:
                self._lock.release()
        return iter(self._families)

    def _compute(self) -> list[Any]:
        from sagactl.tools.inspect import Stats
        from sagactl.views.metrics import log_families

        try:
            if self._reader is None:
                from sagactl.store import open_reader

                self._reader = open_reader(self.settings.dsn, self.settings.mapping)
            snap = read_snapshot(self._reader, self.settings, utcnow(), self._known, self._client)
            return list(log_families(snap, log_up=True))
        except SagactlError as exc:
            log.warning("could not read the saga log for /metrics: %s", exc.one_line())
            self.close()  # a fresh connection next time
            return list(log_families(LogSnapshot(Stats(utcnow(), self.settings.dsn)), log_up=False))

    def _client(self) -> SQSClient:
        if self._sqs is None:
            from sagactl.ops import sqs_for

            self._sqs = sqs_for(self.settings, pool_size=2)
        return self._sqs

    def close(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(Exception):  # the connection is already gone
                self._reader.close()
            self._reader = None


# -- shipped rules and dashboard -------------------------------------------------------------


def _shipped(name: str) -> str:
    return resources.files("sagactl.views").joinpath("monitoring", name).read_text("utf-8")


def alert_rules(runbook_base: str = RUNBOOK_BASE) -> str:
    """The Prometheus alerting rules, each alert's runbook_url under ``runbook_base``."""
    base = runbook_base if runbook_base.endswith(("/", "#", "=")) else runbook_base + "/"
    return _shipped("rules.yml").replace(RUNBOOK_BASE, base)


def dashboard() -> str:
    """The Grafana dashboard (JSON, provisioning-ready)."""
    return _shipped("dashboard.json")
