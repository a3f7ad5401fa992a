"""The use cases behind the commands: each opens what it needs, does one job, returns models.

The CLI calls exactly one of these per command and renders what comes back; nothing here
knows about Typer or output formats.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from sagactl import validation
from sagactl.config import Settings
from sagactl.definition import SagaDefinition
from sagactl.driver import Observer
from sagactl.engine import Engine
from sagactl.errors import ExitCode, Interrupted, SagactlError, UnavailableError, UsageError
from sagactl.models import RunResult
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
    """The configured saga log, closed afterwards.

    A mapped table (``store.table`` in the config) is read-only: commands that write refuse it
    rather than create sagactl tables in another orchestrator's database.
    """
    if create and settings.mapping is not None:
        where = f" ({settings.config_path})" if settings.config_path else ""
        raise UsageError(
            f"the store is a read-only mapped table {settings.mapping.table}{where}: only list, show"
            " and stats work on it",
            hint="point this command at a sagactl saga log with --dsn or another --context",
        )
    with closing(open_store(settings.dsn, create=create)) as store:
        yield store


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
    defn = validation.load(request.file, request.saga)
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


@dataclass(slots=True)
class ResumeReport:
    """What ``resume ID...`` did: a result per saga driven, and the error of each that was not."""

    results: list[RunResult]
    failures: list[tuple[str, SagactlError]]


def resume_sagas(settings: Settings, saga_ids: Sequence[str], observer: Observer | None = None) -> ResumeReport:
    """Resume each saga in turn from its stored snapshot.

    With one ID its error is raised as is. With several, a saga that cannot be resumed (not
    found, driven by another process) does not stop the others; the database becoming
    unreachable or an interrupt stops the whole run.
    """
    report = ResumeReport(results=[], failures=[])
    with store_for(settings) as store:
        engine = make_engine(store, observer)
        for saga_id in saga_ids:
            try:
                result = engine.resume(saga_id)
            except (UnavailableError, Interrupted):
                raise
            except SagactlError as exc:
                if len(saga_ids) == 1:
                    raise
                report.failures.append((saga_id, exc))
                continue
            result.saga.transitions = store.transitions(saga_id)
            report.results.append(result)
    return report


def init_db(settings: Settings) -> tuple[str, int]:
    """Create or upgrade the schema; returns (where, version)."""
    with store_for(settings) as store:
        return store.info.location, store.init_schema()


def validate_files(files: Sequence[str]) -> list[validation.Report]:
    return [validation.check_file(f) for f in files]


# -- operator actions ------------------------------------------------------------------------


def operator_name(env: Mapping[str, str] | None = None) -> str:
    """Who is acting, for saga_transitions: $USER, else the login name."""
    env = os.environ if env is None else env
    user = env.get("USER") or env.get("USERNAME")
    if user:
        return user
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _reason(reason: str) -> str:
    text = " ".join(reason.split())
    if not text:
        raise UsageError("--reason must say why (it is recorded with your name in the saga's history)")
    return text


def resolve_compensation(
    settings: Settings,
    saga_id: str,
    step: str,
    reason: str,
    *,
    user: str | None = None,
    observer: Observer | None = None,
) -> RunResult:
    """Record ``step``'s compensation as done by hand (who, why), then continue compensating."""
    why, who = _reason(reason), user or operator_name()
    return _drive_one(settings, saga_id, observer, lambda e: e.resolve_step(saga_id, step, reason=why, user=who))


def abort_saga(
    settings: Settings,
    saga_id: str,
    reason: str,
    *,
    user: str | None = None,
    observer: Observer | None = None,
) -> RunResult:
    """Stop a saga's forward progress and compensate now (who and why are recorded)."""
    why, who = _reason(reason), user or operator_name()
    return _drive_one(settings, saga_id, observer, lambda e: e.abort(saga_id, reason=why, user=who))


def _drive_one(
    settings: Settings, saga_id: str, observer: Observer | None, action: Callable[[Engine], RunResult]
) -> RunResult:
    with store_for(settings) as store:
        result = action(make_engine(store, observer))
        result.saga.transitions = store.transitions(saga_id)
        return result


@dataclass(slots=True)
class StuckResume:
    """What ``resume --stuck`` did: one result per saga resumed, and the ones it skipped."""

    found: int
    results: list[RunResult]
    skipped: list[tuple[str, str]]  # (saga_id, why)


def resume_stuck(
    settings: Settings,
    *,
    older_than: str | None = None,
    saga_type: str | None = None,
    observer: Observer | None = None,
    now: datetime | None = None,
) -> StuckResume:
    """Resume every stuck saga (as ``list --stuck`` finds them), compensating ones first.

    A saga another process is driving, or one that cannot be resumed, is skipped with the
    reason; the database becoming unreachable or an interrupt stops the whole run.
    """
    from sagactl.inspect import ListRequest, StoreSource, find_stuck, parse_older_than
    from sagactl.models import utcnow

    request = ListRequest(stuck=True, saga_type=saga_type, older_than=older_than)
    with store_for(settings) as store:
        stuck = find_stuck(
            StoreSource(store),
            now or utcnow(),
            older_than=parse_older_than(request.older_than),
            saga_type=request.saga_type,
        )
        engine = make_engine(store, observer)
        report = StuckResume(found=len(stuck), results=[], skipped=[])
        for row in stuck:
            saga_id = row.saga.saga_id
            try:
                result = engine.resume(saga_id)
            except (UnavailableError, Interrupted):
                raise
            except SagactlError as exc:
                report.skipped.append((saga_id, exc.one_line()))
                continue
            result.saga.transitions = store.transitions(saga_id)
            report.results.append(result)
    return report
