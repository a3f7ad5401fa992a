"""A worker's Prometheus metrics and its HTTP endpoint (``/metrics``, ``/healthz``).

Names (docs/workers.md): sagactl_worker_claims_total{kind="due|lapsed|dead_holder"},
sagactl_worker_steps_total{saga_type, step, phase, outcome}, sagactl_worker_step_seconds (histogram, by
saga_type, step and phase),
sagactl_worker_lease_takeovers_total, sagactl_worker_replies_total{result="applied|ignored|retried"},
sagactl_worker_sagas_in_flight, sagactl_worker_up.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app

from sagactl.models import SagaRecord, StepStatus, Transition

STEP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
TRACKED = 10_000  # compensations whose start this worker remembers (one that ends elsewhere is forgotten)


class WorkerMetrics:
    """Counters a worker keeps; ``observe`` is an engine observer (every committed transition)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.claims = Counter("sagactl_worker_claims", "Sagas claimed, by why.", ["kind"], registry=r)
        self.steps = Counter(
            "sagactl_worker_steps",
            "Steps and compensations ended, by saga type, step, phase and outcome.",
            ["saga_type", "step", "phase", "outcome"],
            registry=r,
        )
        self.step_seconds = Histogram(
            "sagactl_worker_step_seconds",
            "Time from a step's (or compensation's) first attempt to its end.",
            ["saga_type", "step", "phase"],
            buckets=STEP_BUCKETS,
            registry=r,
        )
        self.takeovers = Counter(
            "sagactl_worker_lease_takeovers", "Sagas taken from a driver that died (lapsed or dead holder).", registry=r
        )
        self.replies = Counter("sagactl_worker_replies", "Replies read, by result.", ["result"], registry=r)
        self.in_flight = Gauge("sagactl_worker_sagas_in_flight", "Sagas this worker is driving now.", registry=r)
        self.up = Gauge("sagactl_worker_up", "1 while the worker runs, 0 once it stops.", registry=r)
        self._started: dict[tuple[str, str, str], float] = {}
        self._lock = threading.Lock()

    def observe(self, saga: SagaRecord, transition: Transition) -> None:
        """Count step ends and time them (an engine observer). An action is timed from its
        recorded start, so also when another worker started it (a reply applied here); a
        compensation from the start this worker saw, the latest TRACKED of them kept (the
        others ended elsewhere: a long-running worker does not grow)."""
        if transition.step_name is None:
            return
        at = transition.at.timestamp()
        if transition.new_state == "compensating" and transition.old_state != transition.new_state:
            with self._lock:
                self._started[(saga.saga_id, transition.step_name, "compensation")] = at
                while len(self._started) > TRACKED:
                    del self._started[next(iter(self._started))]  # the oldest
            return
        ends = {
            StepStatus.COMPLETED.value: ("action", "completed"),
            StepStatus.FAILED.value: ("action", "failed"),
            StepStatus.COMPENSATED.value: ("compensation", "compensated"),
        }
        if transition.new_state not in ends:
            return
        phase, outcome = ends[transition.new_state]
        self.steps.labels(saga.saga_type, transition.step_name, phase, outcome).inc()
        if phase == "action":
            record = next((s for s in saga.steps if s.name == transition.step_name), None)
            started = record.started_at.timestamp() if record is not None and record.started_at else None
        else:
            with self._lock:
                started = self._started.pop((saga.saga_id, transition.step_name, phase), None)
        if started is not None:
            self.step_seconds.labels(saga.saga_type, transition.step_name, phase).observe(max(0.0, at - started))


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


def serve(metrics: WorkerMetrics, port: int, healthy: Callable[[], bool], host: str = "0.0.0.0") -> WSGIServer:
    """Serve ``/metrics`` (Prometheus text) and ``/healthz`` (200 ok / 503) on ``port`` in a
    daemon thread; the caller shuts the server down."""
    prometheus = make_wsgi_app(metrics.registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/healthz":
            ok = healthy()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"ok\n" if ok else b"stopping\n"]
        result: Iterable[bytes] = prometheus(environ, start_response)
        return result

    server = make_server(host, port, app, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, args=(0.5,), name="sagactl-metrics", daemon=True).start()
    return server
