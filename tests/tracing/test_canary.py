"""A redrive is an operator's span linked to the saga steps of the messages it moved, and the
canary's watch a span of its own linked to the canary messages' sagas (issue 21, point 5):
received over OTLP from a redrive with a canary against moto and a real saga log."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sagactl.config import resolve_settings
from sagactl.dlq.canary import CanaryPlan
from sagactl.dlq.outcomes import RedriveRequest
from sagactl.errors import ExitCode
from sagactl.ops.dlq import redrive_dlq
from tests.dlq.test_canary import SAGAS, Participant, open_incident
from tests.support.otlp import Collector, otlp_http
from tests.support.sqs import Queue, Sqs


def context_of(index: int) -> str:
    """The traceparent the dead-lettered command of saga ``index`` carries (its step's span)."""
    return f"00-{index + 1:032x}-{index + 1:016x}-01"


@pytest.fixture
def otlp(monkeypatch: pytest.MonkeyPatch) -> Iterator[Collector]:
    with otlp_http() as found:
        for name, value in found.env.items():
            monkeypatch.setenv(name, value)
        yield found


@pytest.fixture
def incident(sqs: Sqs, tmp_path: Path) -> tuple[Queue, Queue, str]:
    """(DLQ, source queue, DSN): a traced refund command per compensating saga in the DLQ."""
    dsn = f"sqlite:///{tmp_path}/log.db"

    def traced(index: int) -> dict[str, Any]:
        return {"traceparent": {"DataType": "String", "StringValue": context_of(index)}}

    return (*open_incident(sqs, dsn, traced), dsn)


def test_the_redrive_and_the_canary_watch_link_to_the_sagas(
    sqs: Sqs, incident: tuple[Queue, Queue, str], otlp: Collector
) -> None:
    dlq, source, dsn = incident
    worker = Participant(sqs, source, dsn, "fixed")
    worker.thread.start()
    try:
        request = RedriveRequest(dlq=dlq.url, wait=0, hold=30)
        result = redrive_dlq(resolve_settings(dsn=dsn), request, canary=CanaryPlan(size=2, wait=60, poll=0.05))
    finally:
        worker.stop.set()
        worker.thread.join()
    assert result.exit_code == ExitCode.OK and result.moved == 6
    spans = otlp.wait_for(lambda s: {x.name for x in s} >= {"sagactl redrive", "sagactl canary watch"}, timeout=5)
    [redrive] = [s for s in spans if s.name == "sagactl redrive"]
    [watch] = [s for s in spans if s.name == "sagactl canary watch"]
    assert watch.parent_id == redrive.span_id and watch.trace_id == redrive.trace_id
    everyone = {context_of(i)[3:]: saga_id for i, saga_id in enumerate(SAGAS)}
    assert {f"{lk.trace_id}-{lk.span_id}-01": lk.attributes["sagactl.saga_id"] for lk in redrive.links} == everyone
    canaries = {m["saga_id"] for m in result.canary.to_dict()["messages"]}
    assert {lk.attributes["sagactl.saga_id"] for lk in watch.links} == canaries
    assert all(lk.attributes["sagactl.step"] == "charge" for lk in watch.links)
    assert (watch.attributes["sagactl.verdict"], watch.attributes["sagactl.canaries"]) == ("go", 2)
    assert (redrive.attributes["sagactl.moved"], redrive.attributes["sagactl.failed"]) == (6, 0)
