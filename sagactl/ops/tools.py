"""``graph`` and ``stats --steps``: what a definition looks like, how its steps behave."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sagactl.config import AwsSettings, Settings
from sagactl.errors import UsageError
from sagactl.ops import reader_for

if TYPE_CHECKING:
    from sagactl.definitions.model import Endpoint
    from sagactl.tools.stepstats import Retention, StepStatsReport


def graph_file(file: str, saga: str | None, fmt: str) -> str:
    """``graph``: the definition in ``file`` (``saga`` picks among several) as Mermaid or DOT
    text. An invalid file raises DefinitionError (exit 2) listing every problem."""
    from sagactl.definitions import validation
    from sagactl.views import graph

    return graph.render(validation.load(file, saga), fmt)


def parse_since(value: str) -> float:
    """``--since`` in seconds: above zero, at most 3650d."""
    from sagactl.definitions.model import duration_option
    from sagactl.tools.inspect import MAX_AGE

    seconds = duration_option(value, "--since")
    if not 0 < seconds <= MAX_AGE:
        raise UsageError(f"--since must be above 0 and at most 3650d (10 years), got '{value[:40]}'")
    return seconds


def step_stats(
    settings: Settings,
    *,
    since: str = "24h",
    saga_type: str | None = None,
    now: datetime | None = None,
    env: Mapping[str, str] | None = None,
) -> StepStatsReport:
    """``stats --steps``: per step of the sagas created in the last ``since`` (of ``saga_type``),
    durations, attempts, failure and timeout rates, and flags against each type's newest
    definition snapshot (SQS retention asked of SQS once per queue; unknown when unreachable)."""
    from sagactl.models import iso, utcnow
    from sagactl.store.sql import SqlStore
    from sagactl.store.stepruns import latest_definitions, step_totals
    from sagactl.tools import stepstats

    window = parse_since(since)
    env = os.environ if env is None else env
    start = (now or utcnow()) - timedelta(seconds=window)
    if settings.mapping is not None:
        raise UsageError(
            f"stats --steps reads saga_transitions, which the mapped table {settings.mapping.describe()} does not have",
            hint="point it at a sagactl saga log with --dsn or another --context",
        )
    with reader_for(settings) as reader:
        assert isinstance(reader, SqlStore)  # a native saga log (no mapping)
        totals = step_totals(reader, start, saga_type)
        snapshots = latest_definitions(reader, sorted({t.saga_type for t in totals}))
        location = reader.info.location
    return stepstats.report(location, iso(start) or "", saga_type, totals, snapshots, _retention(settings, env))


def _retention(settings: Settings, env: Mapping[str, str]) -> Callable[[Endpoint], Retention]:
    """Each sqs endpoint's command queue retention, asked once per queue; None with why when
    the queue cannot be asked (SQS unreachable, no credentials, a placeholder not set)."""
    from sagactl.definitions.placeholders import MissingValueError
    from sagactl.ops.reach import QueueProber, resolved, sqs_settings
    from sagactl.tools.stepstats import Retention

    prober = QueueProber(env)
    unreachable: dict[AwsSettings, str] = {}

    def lookup(endpoint: Endpoint) -> Retention:
        try:
            config = resolved(endpoint, env)
        except MissingValueError as exc:
            return Retention(str(endpoint.config.get("queue", endpoint.name)), None, exc.message)
        queue, aws = str(config.get("queue", "")), sqs_settings(config, settings.aws)
        if aws in unreachable:
            return Retention(queue, None, unreachable[aws])
        probe = prober.queue(queue, aws)
        if probe.unreachable:
            unreachable[aws] = probe.detail
        period = probe.attributes.get("MessageRetentionPeriod")
        seconds = float(period) if period and period.isdigit() else None
        return Retention(queue, seconds, None if seconds is not None else probe.detail)

    return lookup
