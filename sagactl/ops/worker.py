"""``worker``: drive sagas from the configured saga log until stopped (SIGTERM, Ctrl-C)."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sagactl.config import Settings
from sagactl.definitions.model import SagaDefinition
from sagactl.engine.metrics import WorkerMetrics, serve
from sagactl.engine.worker import Worker, WorkerOptions, listeners_of
from sagactl.ops import make_engine, store_for, traced
from sagactl.store import Store, open_store
from sagactl.tracing import NOOP, WORKER_FLUSH_TIMEOUT, Tracing
from sagactl.transports import Transport, TransportPool, open_transport

if TYPE_CHECKING:
    from sagactl.engine.control import Engine

log = logging.getLogger("sagactl.engine.worker")


@dataclass(frozen=True, slots=True)
class Started:
    """What the CLI tells when the worker is up."""

    store: str
    owner_prefix: str
    metrics_port: int | None


def build_worker(settings: Settings, options: WorkerOptions, tracer: Tracing = NOOP) -> Worker:
    """A worker on the configured saga log (schema created or upgraded first; a mapped table
    is refused), its transports and reply listeners on the resolved settings, its spans to
    ``tracer``."""
    with store_for(settings) as store:  # refuses a mapped table; creates or upgrades the schema
        location = store.info.location
    env = dict(os.environ)

    def opened(definition: SagaDefinition, endpoint: str) -> Transport:
        return open_transport(definition.endpoints[endpoint], definition.base_dir, env, settings.aws)

    def engine_on(store: Store, metrics: WorkerMetrics, stop: threading.Event) -> Engine:
        engine = make_engine(store, settings, metrics.observe, env, tracer=tracer)
        engine.park, engine.stop = True, stop
        engine.transport_factory = TransportPool(engine.transport_factory)  # connections kept between sagas
        return engine

    return Worker(
        open_store=lambda: open_store(settings.dsn),
        make_engine=engine_on,
        listeners=lambda snapshot: listeners_of(snapshot, opened),
        options=options,
        location=location,
    )


def run_worker(
    settings: Settings,
    options: WorkerOptions,
    *,
    metrics_port: int | None = None,
    announce: Callable[[Started], None] | None = None,
) -> None:
    """Run a worker until interrupted (KeyboardInterrupt: SIGTERM or Ctrl-C), then stop it
    within ``options.grace`` seconds; its last spans are flushed then (a few seconds at most)."""
    with traced(settings, timeout=WORKER_FLUSH_TIMEOUT) as tracer:
        _run(build_worker(settings, options, tracer), settings, options, metrics_port, announce)


def _run(
    worker: Worker,
    settings: Settings,
    options: WorkerOptions,
    metrics_port: int | None,
    announce: Callable[[Started], None] | None,
) -> None:
    server = None
    if metrics_port is not None:
        from sagactl.ops.monitoring import LogCollector

        collector = LogCollector(settings)
        worker.metrics.registry.register(collector)
        server = serve(worker.metrics, metrics_port, worker.healthy)
    worker.start()
    if announce is not None:
        announce(Started(worker.location, f"{worker.host}:{os.getpid()}", metrics_port))
    try:
        while not worker.stopping.is_set():
            worker.stopping.wait(1.0)
    except KeyboardInterrupt:
        log.info("stopping: sagas in hand are put aside at their next step (grace %gs)", options.grace)
    finally:
        worker.stop()
        if not worker.join(options.grace):
            log.warning("grace period over with sagas still in hand; their leases lapse and another worker takes over")
        if server is not None:
            server.shutdown()
            collector.close()
