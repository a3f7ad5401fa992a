"""Spans reach the collector before a command exits, and a collector that cannot be reached
costs at most a second at exit, one warning line, and never the exit code (issue 21, point 6).
"Hung": a listener that accepts and never answers; "closed": a port that refuses."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from sagactl.models import SagaRecord, SagaState, utcnow
from sagactl.tracing.start import open_tracing
from tests.support.otlp import otlp_http
from tests.support.processes import sagactl
from tests.tracing.conftest import Caught

ONE_STEP = """saga: One
endpoints:
  local: {type: exec, command: [/bin/true]}
steps:
  - name: only
    endpoint: local
    action: {args: [go]}
"""


@pytest.fixture(params=["closed", "hung"])
def unreachable(request: pytest.FixtureRequest) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` where no collector answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    if request.param == "hung":
        sock.listen(64)  # the kernel accepts; nobody reads or answers
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def a_saga() -> SagaRecord:
    now = utcnow()
    return SagaRecord("s-1", "One", SagaState.STARTED, {}, [], {}, now, now)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_close_is_bounded_and_warns_once(
    unreachable: str, protocol: str, tracing_log: Caught
) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": unreachable, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol}
    tracer = open_tracing(None, env)
    assert tracer.enabled
    for _ in range(20):
        tracer.saga(a_saga()).end("completed")
    started = time.monotonic()
    tracer.close(1.0)
    took = time.monotonic() - started
    time.sleep(1.5)  # an export that fails after the close says nothing more
    assert took < 1.5, f"close took {took:.2f}s"
    warnings = tracing_log.warnings
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("tracing: ") and unreachable in warnings[0]
    assert warnings[0].endswith("sagas are not affected")


def test_a_run_with_an_unreachable_collector_keeps_its_exit_code_and_says_so_once(
    unreachable: str, tmp_path: Path
) -> None:
    (tmp_path / "one.yaml").write_text(ONE_STEP)
    base = {"SAGACTL_DSN": f"sqlite:///{tmp_path}/log.db", "OTEL_EXPORTER_OTLP_TIMEOUT": "30"}
    with otlp_http() as otlp:
        started = time.monotonic()
        reached = sagactl("run", "one.yaml", "-q", cwd=tmp_path, env={**base, **otlp.env})
        reachable = time.monotonic() - started
        assert (reached.returncode, reached.stderr) == (0, "")
        assert otlp.wait_for(lambda s: len(s) == 2, timeout=1)  # sent before it exited
    started = time.monotonic()
    done = sagactl("run", "one.yaml", "-q", cwd=tmp_path, env={**base, "OTEL_EXPORTER_OTLP_ENDPOINT": unreachable})
    took = time.monotonic() - started
    assert done.returncode == 0
    [line] = done.stderr.splitlines()
    assert line.startswith("sagactl: warning: tracing: ") and line.endswith("sagas are not affected")
    # an exporter left to itself would wait 30 s (its timeout) and retry; the exit waits one
    assert took - reachable < 3.0, f"{took:.1f}s with no collector, {reachable:.1f}s with one"


def test_an_invalid_traceparent_in_the_environment_starts_a_trace_of_its_own(tracing_log: Caught) -> None:
    with otlp_http() as otlp:
        tracer = open_tracing(None, {**otlp.env, "TRACEPARENT": "00-not-a-context"})
        saga = a_saga()
        tracer.saga(saga).end("started")
        tracer.close(1.0)
        [root] = otlp.wait_for(lambda s: len(s) == 1, timeout=5)
    assert root.parent_id == "" and saga.trace_id == root.trace_id
    assert tracing_log.warnings == [
        "TRACEPARENT '00-not-a-context' is not a W3C traceparent: sagas start traces of their own"
    ]


def test_asked_for_without_the_otel_extra_one_warning_and_the_run_goes_on(tmp_path: Path) -> None:
    """OpenTelemetry made unimportable (as without ``pip install 'sagactl[otel]'``)."""
    import os
    import subprocess
    import sys

    (tmp_path / "one.yaml").write_text(ONE_STEP)
    probe = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # not installed\n"
        "sys.argv = ['sagactl', 'run', 'one.yaml', '-q']\n"
        "from sagactl.__main__ import main\n"
        "main()\n"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SAGACTL_"))},
        "SAGACTL_DSN": f"sqlite:///{tmp_path}/log.db",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
    }
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0
    assert done.stderr == (
        "sagactl: warning: tracing is asked for (OTEL_EXPORTER_OTLP_ENDPOINT) but OpenTelemetry is not installed"
        " (opentelemetry): pip install 'sagactl[otel]'; running without tracing\n"
    )
