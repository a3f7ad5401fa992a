"""The trace is kept with the saga (issue 21, point 4): after a kill -9, a ``resume`` or a
worker's takeover in another process continues the same trace, its attempt linked to the one
it replaces (the span the participant saw as its parent); a saga recorded by ``run --detach``
is driven by a worker in the recorder's trace; operator actions are spans linked to the saga;
a worker flushes its spans on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.test_crash import wait_in_flight
from tests.support.otlp import Collector, ReceivedSpan, otlp_http, parent_in
from tests.support.participants import Participants, gate, refuse

SAGA = """saga: Order
endpoints:
  stock: {type: http, url: "${env.STOCK_URL}"}
defaults:
  timeout: 30s
  retry: {max_attempts: 3, initial_backoff: 1ms, max_backoff: 5ms}
steps:
  - {name: reserve, endpoint: stock, action: {path: /reserve}, compensation: {path: /release}}
  - {name: ship, endpoint: stock, action: {path: /ship}, compensation: {path: /unship}}
"""


class Cli:
    def __init__(self, cwd: Path, dsn: str, env: dict[str, str]) -> None:
        self.cwd, self.dsn, self.env = cwd, dsn, env
        self.procs: list[subprocess.Popen[str]] = []

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "sagactl", *args, "--dsn", self.dsn]

    def start(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            self.argv(*args), cwd=self.cwd, env={**self.env, **extra}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        env = {**self.env, **extra}
        return subprocess.run(self.argv(*args), cwd=self.cwd, env=env, capture_output=True, text=True, timeout=120)

    def show(self, saga_id: str) -> dict[str, object]:
        done = self.run("show", saga_id, "-o", "json")
        assert done.returncode in (0, 3), done.stderr
        return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.fixture
def otlp() -> Iterator[Collector]:
    with otlp_http() as found:
        yield found


@pytest.fixture
def cli(tmp_path: Path, store_dsn: str, participants: Participants, otlp: Collector) -> Iterator[Cli]:
    (tmp_path / "order.yaml").write_text(SAGA)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGACTL_", "OTEL_", "TRACE"))}
    env.update(otlp.env, STOCK_URL=participants.url, NO_COLOR="1")
    found = Cli(tmp_path, store_dsn, env)
    yield found
    for proc in found.procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def kill_mid_reserve(cli: Cli, participants: Participants, saga_id: str) -> str:
    """Run the saga until its reserve call is in flight, kill -9 the run, and return the
    traceparent that call carried (the first attempt's span, never exported: killed)."""
    held = gate()
    participants.script("reserve", "action", held)
    proc = cli.start("run", "order.yaml", "--saga-id", saga_id, "-q")
    wait_in_flight(held, proc)
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL
    [call] = participants.calls_for("reserve")
    return call.headers["traceparent"]


def attempt(spans: list[ReceivedSpan], name: str, number: int) -> ReceivedSpan:
    [found] = [s for s in spans if s.name == name and s.attributes.get("sagactl.attempt") == number]
    return found


@pytest.mark.slow
def test_kill_9_then_resume_continues_the_trace(cli: Cli, participants: Participants, otlp: Collector) -> None:
    first = kill_mid_reserve(cli, participants, "order-1")
    stored = cli.show("order-1")
    trace_id, root = stored["trace_id"], first.split("-")[1]
    assert trace_id == root  # the killed run recorded the trace with the saga

    done = cli.run("resume", "order-1", "-q")
    assert done.returncode == 0, done.stderr
    spans = otlp.wait_for(lambda s: any(x.name == "sagactl resume" for x in s) and len(s) >= 3)
    resumed = attempt(spans, "reserve action", 2)
    assert resumed.trace_id == trace_id
    [link] = resumed.links
    assert (link.trace_id, link.span_id, link.attributes) == (trace_id, first.split("-")[2], {"sagactl.link": "resume"})
    ship = attempt(spans, "ship action", 1)
    assert ship.trace_id == trace_id and ship.parent_id == resumed.parent_id  # both children of the saga's root
    # the resumed call's parent is the new attempt's span
    assert parent_in(participants.calls_for("reserve")[-1].headers["traceparent"]) == resumed.context
    # the operator's resume is a span of its own trace, linked to the saga's
    [action] = [s for s in spans if s.name == "sagactl resume"]
    assert action.trace_id != trace_id
    assert [(lk.trace_id, lk.span_id) for lk in action.links] == [(trace_id, resumed.parent_id)]
    assert action.attributes["sagactl.saga_id"] == "order-1"


@pytest.mark.slow
def test_kill_9_then_a_worker_takes_over_in_the_same_trace_and_flushes_on_sigterm(
    cli: Cli, participants: Participants, otlp: Collector
) -> None:
    first = kill_mid_reserve(cli, participants, "order-2")
    trace_id = cli.show("order-2")["trace_id"]
    # batches would wait a minute: the spans that reach the collector are the SIGTERM flush's
    worker = cli.start("worker", "--poll", "100ms", "--grace", "5s", OTEL_BSP_SCHEDULE_DELAY="60000")
    deadline = time.monotonic() + 60
    while cli.show("order-2")["state"] != "completed":
        assert worker.poll() is None, worker.stderr.read() if worker.stderr else ""
        assert time.monotonic() < deadline, "the worker did not finish the saga"
        time.sleep(0.2)
    assert otlp.received() == []  # nothing sent yet: still batched
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    spans = otlp.wait_for(lambda s: len(s) >= 2, timeout=5)
    resumed = attempt(spans, "reserve action", 2)
    assert resumed.trace_id == trace_id
    assert [(lk.span_id, lk.attributes) for lk in resumed.links] == [(first.split("-")[2], {"sagactl.link": "resume"})]
    assert attempt(spans, "ship action", 1).trace_id == trace_id


@pytest.mark.slow
def test_a_detached_saga_is_driven_by_a_worker_in_the_recorders_trace(
    cli: Cli, participants: Participants, otlp: Collector
) -> None:
    caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    recorded = cli.run("run", "order.yaml", "--detach", "--saga-id", "order-3", TRACEPARENT=caller)
    assert recorded.returncode == 0, recorded.stderr
    root = otlp.wait_for(lambda s: any(x.name == "saga Order" for x in s))[0]
    outcome = root.attributes["sagactl.outcome"]
    assert (root.trace_id, root.parent_id, outcome) == (caller[3:35], caller[36:52], "started")
    worker = cli.start("worker", "--poll", "100ms")
    spans = otlp.wait_for(lambda s: {x.name for x in s} >= {"reserve action", "ship action"}, timeout=60)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    driven = [s for s in spans if s.name in ("reserve action", "ship action")]
    assert {(s.trace_id, s.parent_id) for s in driven} == {(root.trace_id, root.span_id)}
    assert [parent_in(c.headers["traceparent"]) for c in participants.calls] == [s.context for s in driven]


@pytest.mark.slow
def test_abort_is_an_operator_span_linked_to_the_saga(cli: Cli, participants: Participants, otlp: Collector) -> None:
    recorded = cli.run("run", "order.yaml", "--detach", "--saga-id", "order-4")
    assert recorded.returncode == 0, recorded.stderr
    trace_id = cli.show("order-4")["trace_id"]
    done = cli.run("abort", "order-4", "--reason", "customer cancelled; password=hunter22 was typed here")
    assert done.returncode == 1, done.stderr
    spans = otlp.wait_for(lambda s: any(x.name == "sagactl abort" for x in s))
    [action] = [s for s in spans if s.name == "sagactl abort"]
    root = next(s for s in spans if s.name == "saga Order")
    assert [(lk.trace_id, lk.span_id) for lk in action.links] == [(trace_id, root.span_id)]
    assert action.attributes["sagactl.reason"] == "customer cancelled; password=*** was typed here"
    assert "hunter22" not in json.dumps([s.attributes for s in spans])


@pytest.mark.slow
def test_rerun_is_an_operator_span_and_the_new_saga_its_child(
    cli: Cli, participants: Participants, otlp: Collector
) -> None:
    participants.script("ship", "action", refuse(422))
    failed = cli.run("run", "order.yaml", "--saga-id", "order-5", "-q")
    assert failed.returncode == 1, failed.stderr
    old_trace = cli.show("order-5")["trace_id"]
    participants.script("ship", "action")  # fixed
    done = cli.run("rerun", "order-5", "-o", "json")
    assert done.returncode == 0, done.stderr
    new = json.loads(done.stdout)
    new = new[0] if isinstance(new, list) else new
    spans = otlp.wait_for(lambda s: any(x.name == "sagactl rerun" for x in s))
    [action] = [s for s in spans if s.name == "sagactl rerun"]
    old_root = next(s for s in spans if s.name == "saga Order" and s.trace_id == old_trace)
    assert [(lk.trace_id, lk.span_id) for lk in action.links] == [(old_trace, old_root.span_id)]
    new_root = next(s for s in spans if s.name == "saga Order" and s.trace_id == new["trace_id"])
    assert (new_root.trace_id, new_root.parent_id) == (action.trace_id, action.span_id)


@pytest.mark.slow
def test_a_bulk_abort_is_one_span_with_a_linked_child_per_saga(
    cli: Cli, participants: Participants, otlp: Collector
) -> None:
    for saga_id in ("bulk-1", "bulk-2"):
        recorded = cli.run("run", "order.yaml", "--detach", "--saga-id", saga_id)
        assert recorded.returncode == 0, recorded.stderr
    traces = {saga_id: cli.show(saga_id)["trace_id"] for saga_id in ("bulk-1", "bulk-2")}
    done = cli.run("abort", "--state", "started", "--reason", "incident 42", "--yes")
    assert done.returncode == 1, done.stderr  # both compensated (nothing to undo): failed
    spans = otlp.wait_for(lambda s: sum(x.name == "sagactl abort" for x in s) == 2)
    [job] = [s for s in spans if s.name == "sagactl abort (bulk)"]
    each = [s for s in spans if s.name == "sagactl abort"]
    assert {(s.trace_id, s.parent_id) for s in each} == {(job.trace_id, job.span_id)}
    assert {s.attributes["sagactl.saga_id"]: s.links[0].trace_id for s in each} == traces
    assert {s.attributes["sagactl.job"] for s in each} == {job.attributes["sagactl.job"]}


def test_resolve_is_an_operator_span_linked_to_the_saga(cli: Cli, participants: Participants, otlp: Collector) -> None:
    participants.script("ship", "action", refuse(422))
    participants.script("reserve", "compensation", refuse(409))  # cannot be undone: an operator must
    stuck = cli.run("run", "order.yaml", "--saga-id", "order-6", "-q")
    assert stuck.returncode == 3, stuck.stderr
    trace_id = cli.show("order-6")["trace_id"]
    done = cli.run("resolve", "order-6", "--step", "reserve", "--reason", "released by hand")
    assert done.returncode == 1, done.stderr
    spans = otlp.wait_for(lambda s: any(x.name == "sagactl resolve" for x in s))
    [action] = [s for s in spans if s.name == "sagactl resolve"]
    root = next(s for s in spans if s.name == "saga Order")
    assert [(lk.trace_id, lk.span_id) for lk in action.links] == [(trace_id, root.span_id)]
    assert (action.attributes["sagactl.step"], action.attributes["sagactl.reason"]) == ("reserve", "released by hand")
