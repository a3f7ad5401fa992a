"""The use cases behind the commands, one function per command, in modules that mirror
sagactl/cli (sagas, dlq, admin). Each opens what it needs, does one job and returns models;
nothing here knows about Typer or output formats.

This package is the only place that opens saga stores, SQS clients, transports and tracing:
the helpers below are how.

    sagas.py     run, resume, resolve, abort, list, show, stats
    bulk.py      resume, abort, resolve --step over many sagas: select, plan, confirm, act
    history.py   rerun, prune
    dlq.py       dlq list, redrive
    admin.py     db init, db recount, validate
    tools.py     graph, stats --steps
    doctor.py    doctor: every dependency tried without changing anything
    reach.py     whether a definition's endpoints can be reached (doctor)
    contexts.py  config contexts, use-context, view
    complete.py  what shell completion offers
    worker.py    worker
    monitoring.py  the log's metrics for stats -o prometheus and /metrics; the shipped rules

May import: everything below it (engine, tools, views, store, transports, dlq, tracing,
definitions, the root leaves); never sagactl.cli.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import closing, contextmanager
from typing import TYPE_CHECKING

from sagactl.config import Settings
from sagactl.errors import UsageError
from sagactl.store import SagaReader, Store, open_reader, open_store

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

    from sagactl.definitions.model import SagaDefinition
    from sagactl.engine.control import Engine
    from sagactl.engine.host import Observer
    from sagactl.tracing import Tracing
    from sagactl.transports import Transport


@contextmanager
def store_for(
    settings: Settings, *, create: bool = True, progress: Callable[[int, str], None] | None = None
) -> Iterator[Store]:
    """The configured saga log, to write to; closed afterwards.

    A mapped table (``store.table`` or a preset) is read-only: commands that write refuse it
    (their dry runs too) rather than create sagactl tables in another orchestrator's database.
    """
    if settings.mapping is not None:
        where = f" ({settings.config_path})" if settings.config_path and settings.mapping.table else ""
        raise UsageError(
            f"the store is a read-only mapped table {settings.mapping.describe()}{where}: only list, show"
            " and stats work on it",
            hint="point this command at a sagactl saga log with --dsn or another --context (without a preset)",
        )
    with closing(open_store(settings.dsn, create=create, progress=progress)) as store:
        yield store


@contextmanager
def reader_for(settings: Settings) -> Iterator[SagaReader]:
    """The configured saga log or mapped table, to read from; closed afterwards."""
    with closing(open_reader(settings.dsn, settings.mapping)) as reader:
        yield reader


def sqs_for(settings: Settings, *, pool_size: int = 10) -> SQSClient:
    """An SQS client for the resolved AWS settings."""
    from sagactl.aws import sqs_client

    return sqs_client(settings.aws, pool_size=pool_size)


@contextmanager
def traced(settings: Settings, *, traceparent: str | None = None, timeout: float | None = None) -> Iterator[Tracing]:
    """Tracing as the environment and the config's ``tracing:`` block ask for it (NOOP when
    off: nothing of OpenTelemetry loaded); its spans flushed on the way out, within ``timeout``
    seconds (a command's one second by default), whatever happened inside."""
    from sagactl.tracing import FLUSH_TIMEOUT
    from sagactl.tracing.start import open_tracing

    where = str(settings.config_path or "sagactl.yaml")
    tracer = open_tracing(settings.tracing, os.environ, traceparent=traceparent, where=where)
    try:
        yield tracer
    finally:
        tracer.close(FLUSH_TIMEOUT if timeout is None else timeout)


def make_engine(
    store: Store,
    settings: Settings,
    observer: Observer | None = None,
    env: Mapping[str, str] | None = None,
    tracer: Tracing | None = None,
) -> Engine:
    """An engine on ``store`` whose transports get the resolved settings (AWS included), its
    spans going to ``tracer`` (None: tracing off). (The engine loads here, not with this
    package: list, show and stats never need it.)"""
    from sagactl.engine.control import Engine
    from sagactl.tracing import NOOP
    from sagactl.transports import open_transport

    environ = dict(os.environ if env is None else env)

    def transport(definition: SagaDefinition, endpoint: str) -> Transport:
        return open_transport(definition.endpoints[endpoint], definition.base_dir, environ, settings.aws)

    return Engine(store=store, transport_factory=transport, observer=observer, env=environ, tracer=tracer or NOOP)
