"""The use cases behind the commands: each opens what it needs, does one job, returns models.

The CLI calls exactly one of these per command and renders what comes back; nothing here
knows about Typer or output formats.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from sagactl import definition as definitions
from sagactl.config import Settings
from sagactl.definition import SagaDefinition
from sagactl.engine import Engine, Observer, RunResult
from sagactl.errors import ExitCode, NotFoundError, UsageError
from sagactl.models import SagaRecord
from sagactl.store import Store, open_store
from sagactl.transports import Transport, open_transport


def read_input(value: str | None, stdin: TextIO | None = None) -> Any:
    """``--input``: inline JSON, ``@FILE`` or ``-`` (stdin). Missing means ``{}``."""
    if value is None:
        return {}
    source = "--input"
    if value == "-":
        text, source = (stdin or sys.stdin).read(), "stdin"
    elif value.startswith("@"):
        path = Path(value[1:])
        try:
            text, source = path.read_text("utf-8"), str(path)
        except OSError as exc:
            raise UsageError(f"cannot read input file {path}: {exc.strerror or exc}") from exc
    else:
        text = value
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"input from {source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            hint="pass JSON, @file.json or - for stdin",
        ) from exc


@contextmanager
def store_for(settings: Settings, *, create: bool = True) -> Iterator[Store]:
    """The configured saga log, closed afterwards."""
    store = open_store(settings.dsn, create=create)
    try:
        yield store
    finally:
        store.close()


def _transport_factory(env: dict[str, str]) -> Any:
    def factory(defn: SagaDefinition, endpoint: str) -> Transport:
        return open_transport(defn.endpoints[endpoint], defn.base_dir, env)

    return factory


def make_engine(store: Store, observer: Observer | None = None) -> Engine:
    env = dict(os.environ)
    return Engine(store=store, transport_factory=_transport_factory(env), observer=observer, env=env)


@dataclass(frozen=True, slots=True)
class RunRequest:
    file: str
    input: str | None = None
    saga_id: str | None = None
    saga: str | None = None
    detach: bool = False


def run_file(settings: Settings, request: RunRequest, observer: Observer | None = None) -> RunResult:
    """Load, check and run one saga definition (or only record it, with ``detach``)."""
    defn = definitions.load(request.file, request.saga)
    data = read_input(request.input)
    with store_for(settings) as store:
        engine = make_engine(store, observer)
        if request.detach:
            saga = engine.start(defn, data, request.saga_id)
            store.release_lease(saga.saga_id, engine.owner)
            saga.transitions = store.transitions(saga.saga_id)
            return RunResult(saga, ExitCode.OK)
        result = engine.run(defn, data, request.saga_id)
        result.saga.transitions = store.transitions(result.saga.saga_id)
        return result


def resume_sagas(
    settings: Settings, saga_ids: Sequence[str], observer: Observer | None = None
) -> list[RunResult]:
    """Resume each saga in turn from its stored snapshot."""
    results = []
    with store_for(settings) as store:
        engine = make_engine(store, observer)
        for saga_id in saga_ids:
            result = engine.resume(saga_id)
            result.saga.transitions = store.transitions(saga_id)
            results.append(result)
    return results


def show_saga(settings: Settings, saga_id: str) -> SagaRecord:
    """One saga with its full transition history."""
    with store_for(settings, create=False) as store:
        saga = store.get(saga_id)
        if saga is None:
            raise NotFoundError(
                f"saga {saga_id} not found in {store.info.location}",
                hint="check the ID with 'sagactl list' and the store with --dsn",
            )
        saga.transitions = store.transitions(saga_id)
        return saga


def init_db(settings: Settings) -> tuple[str, int]:
    """Create or upgrade the schema; returns (where, version)."""
    with store_for(settings) as store:
        return store.info.location, store.init_schema()


def validate_files(files: Sequence[str]) -> list[definitions.Report]:
    return [definitions.check_file(f) for f in files]
