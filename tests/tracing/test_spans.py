"""A saga is one trace (issue 21): spans received over real OTLP (http/protobuf and gRPC, a
receiver started here), their parents, links and attributes, the trace context each
participant gets (an http header, an exec's environment), and secrets masked in spans."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.otlp import Collector, ReceivedSpan, collector, parent_in
from tests.support.participants import Participants, refuse, transient
from tests.support.processes import sagactl

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
CALLER = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
SECRET = "s3cr3t-Token-98765"
# An exec participant that answers with the trace context it was given.
ECHO = 'import json, os; print(json.dumps({k: os.environ.get(k) for k in ("TRACEPARENT", "TRACESTATE")}))'


def shop(url: str) -> str:
    return f"""saga: Shop
endpoints:
  stock: {{type: http, url: "{url}", headers: {{Authorization: "Bearer ${{env.SHOP_TOKEN}}"}}}}
  local: {{type: exec, command: [python3, -c, '{ECHO}']}}
defaults:
  retry: {{max_attempts: 3, initial_backoff: 10ms, max_backoff: 20ms}}
steps:
  - name: reserve
    endpoint: stock
    action: {{method: POST, path: /reserve}}
    compensation: {{method: POST, path: /release}}
  - name: charge
    endpoint: local
    action: {{args: [charge]}}
    compensation: {{args: [refund]}}
  - name: ship
    endpoint: stock
    action: {{method: POST, path: /ship}}
"""


@pytest.fixture(params=["http/protobuf", "grpc"])
def otlp(request: pytest.FixtureRequest) -> Iterator[Collector]:
    with collector(request.param) as found:
        yield found


def traced_env(otlp: Collector, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {
        **otlp.env,
        "SAGACTL_DSN": f"sqlite:///{tmp_path}/log.db",
        "SHOP_TOKEN": SECRET,
        "TRACEPARENT": CALLER,
        "TRACESTATE": "vendor=abc",
        **extra,
    }


def one(spans: list[ReceivedSpan], name: str) -> ReceivedSpan:
    found = [s for s in spans if s.name == name]
    assert len(found) == 1, f"{name}: {len(found)} spans"
    return found[0]


def test_a_saga_is_one_trace_with_a_span_per_attempt(
    otlp: Collector, participants: Participants, tmp_path: Path
) -> None:
    participants.script("reserve", "action", transient(503))  # one retry, then the default 200
    participants.script("ship", "action", refuse(422, error=f"no stock; token was {SECRET}"))
    (tmp_path / "shop.yaml").write_text(shop(participants.url))
    env = traced_env(otlp, tmp_path, OTEL_SERVICE_NAME="orders", OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test")
    done = sagactl("run", "shop.yaml", "-o", "json", cwd=tmp_path, env=env)
    assert done.returncode == 1, done.stderr  # ship refused: compensated, failed
    assert "warning" not in done.stderr  # the spans went out
    saga = json.loads(done.stdout)
    assert saga["trace_id"] == CALLER_TRACE  # a child of the caller's trace

    spans = otlp.wait_for(lambda s: len(s) >= 7)
    assert {s.trace_id for s in spans} == {CALLER_TRACE}
    root = one(spans, "saga Shop")
    assert root.parent_id == CALLER_SPAN
    assert root.attributes == {
        "sagactl.saga_id": saga["saga_id"],
        "sagactl.saga_type": "Shop",
        "sagactl.outcome": "failed",
    }
    assert root.resource["service.name"] == "orders"
    assert root.resource["deployment.environment"] == "test"
    names = sorted(s.name for s in spans if s is not root)
    assert names == [
        "charge action",
        "charge compensation",
        "reserve action",
        "reserve action",
        "reserve compensation",
        "ship action",
    ]
    assert all(s.parent_id == root.span_id for s in spans if s is not root)

    first, retry = sorted((s for s in spans if s.name == "reserve action"), key=lambda s: s.start_ns)
    assert first.attributes == {
        "sagactl.saga_id": saga["saga_id"],
        "sagactl.saga_type": "Shop",
        "sagactl.step": "reserve",
        "sagactl.phase": "action",
        "sagactl.attempt": 1,
        "sagactl.idempotency_key": f"{saga['saga_id']}:reserve:action",
        "sagactl.endpoint": "stock",
        "sagactl.transport": "http",
        "sagactl.outcome": "transient_error",
    }
    assert first.kind == "client" and first.status == 2
    assert [name for name, _ in first.events] == ["error"]
    assert (retry.attributes["sagactl.attempt"], retry.attributes["sagactl.outcome"]) == (2, "succeeded")
    assert [(lk.span_id, lk.attributes) for lk in retry.links] == [(first.span_id, {"sagactl.link": "retry"})]

    # the http participant's parent is the attempt's span, and the caller's tracestate travels on
    calls = participants.calls_for("reserve")
    assert [parent_in(c.headers["traceparent"]) for c in calls] == [first.context, retry.context]
    assert {c.headers["tracestate"] for c in calls} == {"vendor=abc"}
    # the exec participant's too, in its environment
    charge = one(spans, "charge action")
    result = saga["steps"][1]["result"]
    assert (parent_in(result["TRACEPARENT"]), result["TRACESTATE"]) == (charge.context, "vendor=abc")
    refund = one(spans, "charge compensation")
    assert [(lk.span_id, lk.attributes) for lk in refund.links] == [(charge.span_id, {"sagactl.link": "compensates"})]
    assert refund.attributes["sagactl.outcome"] == "succeeded"

    # errors are events, masked like everything else: the token never reaches the collector
    ship = one(spans, "ship action")
    assert ship.attributes["sagactl.outcome"] == "refused" and ship.status == 2
    [(event, attributes)] = ship.events
    assert event == "error" and "HTTP 422" in attributes["error.message"] and "***" in attributes["error.message"]
    everything = json.dumps([(s.attributes, s.events, s.status_message, s.resource) for s in spans])
    assert SECRET not in everything

    shown = sagactl("show", saga["saga_id"], cwd=tmp_path, env={"SAGACTL_DSN": env["SAGACTL_DSN"]})
    assert ["trace:", CALLER_TRACE] in [line.split() for line in shown.stdout.splitlines()]
    as_json = sagactl("show", saga["saga_id"], "-o", "json", cwd=tmp_path, env={"SAGACTL_DSN": env["SAGACTL_DSN"]})
    assert json.loads(as_json.stdout)["trace_id"] == CALLER_TRACE


@pytest.mark.slow
def test_traceparent_option_is_the_parent_and_without_one_the_saga_starts_a_trace(
    otlp: Collector, participants: Participants, tmp_path: Path
) -> None:
    (tmp_path / "shop.yaml").write_text(shop(participants.url))
    given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    env = traced_env(otlp, tmp_path)
    done = sagactl("run", "shop.yaml", "-q", "--traceparent", given, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    root = otlp.wait_for(lambda s: any(x.name == "saga Shop" for x in s))
    assert (one(root, "saga Shop").trace_id, one(root, "saga Shop").parent_id) == (given[3:35], given[36:52])
    own = {k: v for k, v in env.items() if k not in ("TRACEPARENT", "TRACESTATE")}
    again = sagactl("run", "shop.yaml", "-o", "json", cwd=tmp_path, env=own)
    assert again.returncode == 0, again.stderr
    trace_id = json.loads(again.stdout)["trace_id"]
    spans = otlp.wait_for(lambda s: sum(x.name == "saga Shop" for x in s) == 2)
    fresh = next(s for s in spans if s.name == "saga Shop" and s.trace_id == trace_id)
    assert fresh.parent_id == "" and trace_id not in (given[3:35], CALLER_TRACE)


def test_off_nothing_of_opentelemetry_is_imported_and_no_caller_context_leaks(
    participants: Participants, tmp_path: Path
) -> None:
    """Tracing off: a run loads no OpenTelemetry module, sends no trace header, and the exec
    participant does not inherit the caller's TRACEPARENT (a parent nobody exported)."""
    (tmp_path / "shop.yaml").write_text(shop(participants.url))
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print(sorted({m.split('.')[0] for m in sys.modules if m.startswith('opentelemetry')}),"
        " file=sys.__stderr__))\n"
        "sys.argv = ['sagactl', 'run', 'shop.yaml', '-o', 'json']\n"
        "from sagactl.__main__ import main\n"
        "main()\n"
    )
    import subprocess
    import sys

    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SAGACTL_"))},
        "SAGACTL_DSN": f"sqlite:///{tmp_path}/log.db",
        "SHOP_TOKEN": SECRET,
        "TRACEPARENT": CALLER,
        "TRACESTATE": "vendor=abc",
    }
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "[]"
    saga = json.loads(done.stdout)
    assert saga["trace_id"] is None
    assert saga["steps"][1]["result"] == {"TRACEPARENT": None, "TRACESTATE": None}
    assert all("traceparent" not in {k.lower() for k in c.headers} for c in participants.calls)


def test_run_traceparent_with_tracing_off_says_it_has_no_effect(participants: Participants, tmp_path: Path) -> None:
    (tmp_path / "shop.yaml").write_text(shop(participants.url))
    env = {"SAGACTL_DSN": f"sqlite:///{tmp_path}/log.db", "SHOP_TOKEN": SECRET}
    done = sagactl("run", "shop.yaml", "-q", "--traceparent", CALLER, cwd=tmp_path, env=env)
    assert done.returncode == 0
    assert done.stderr == (
        "sagactl: warning: --traceparent has no effect: tracing is off (set OTEL_EXPORTER_OTLP_ENDPOINT, see docs)\n"
    )
