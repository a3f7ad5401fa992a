"""The saga commands: run, resume, resolve, abort, list, show, stats."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from sagactl.clock import Clock, SystemClock
from sagactl.codec import storable, storable_text, unreadable
from sagactl.config import Settings
from sagactl.errors import (
    DefinitionError,
    ExitCode,
    Interrupted,
    NotFoundError,
    SagactlError,
    UnavailableError,
    UsageError,
)
from sagactl.models import RunResult, SagaRecord, SagaSummary, check_saga_id, saga_id_problem, utcnow
from sagactl.ops import make_engine, reader_for, store_for, traced
from sagactl.tools import inspect
from sagactl.tools.selectors import resolve_id, resolve_ids

if TYPE_CHECKING:
    from sagactl.definitions.model import SagaDefinition
    from sagactl.engine.control import Engine
    from sagactl.engine.host import Observer
    from sagactl.tools import poll
    from sagactl.tools.groups import GroupBy


def read_input(value: str | None, stdin: TextIO | None = None, *, source: str = "--input") -> Any:
    """``--input``: inline JSON, ``@FILE`` or ``-`` (stdin). Missing means ``{}``. ``source``
    names inline JSON in messages. Input the saga log cannot hold (codec.storable: NaN, a NUL
    character, deep nesting...) is refused here, before anything is opened or recorded, the
    same whichever store is configured."""
    if value is None:
        return {}
    try:
        if value == "-":
            text, source = (stdin or sys.stdin).read(), "stdin"
        elif value.startswith("@"):
            path = Path(value[1:])
            text, source = path.read_text("utf-8"), str(path)
        else:
            text = value
    except OSError as exc:
        where = "from stdin" if value == "-" else f"file {value[1:]}"
        raise UsageError(f"cannot read input {where}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        where = "stdin" if value == "-" else value[1:]
        raise UsageError(f"input from {where} is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    hint = "pass JSON, @file.json or - for stdin"
    try:
        data = json.loads(text)
        problem = storable(data, "input")
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"input from {source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}", hint=hint
        ) from exc
    except (RecursionError, ValueError) as exc:
        why = unreadable(exc)
        if why is None:
            raise
        problem = f"{why} at input"
    if problem is not None:
        raise UsageError(f"input from {source} cannot be stored in the saga log: {problem}", hint=hint)
    return data


@contextmanager
def looking_up(saga_id: str) -> Iterator[None]:
    """``saga_id`` given to find a saga. One no store can hold (empty, not UTF-8) is refused at
    once; any other is looked up as given (another writer may have recorded an ID sagactl would
    not), and when it finds nothing the error says what is wrong with it, if anything."""
    check_saga_id(saga_id, lookup=True)
    try:
        yield
    except NotFoundError as exc:
        problem = saga_id_problem(saga_id)
        if problem is None or not exc.message.startswith(f"saga {saga_id} not found"):
            raise
        raise NotFoundError(f"{exc.message} (the ID {problem})", hint=exc.hint) from None


@dataclass(frozen=True, slots=True)
class RunRequest:
    file: str
    input: str | None = None
    saga_id: str | None = None
    saga: str | None = None
    detach: bool = False
    traceparent: str | None = None  # the parent of the saga's trace, over the environment's TRACEPARENT


def run_file(settings: Settings, request: RunRequest, observer: Observer | None = None) -> RunResult:
    """Load, check and run one saga definition (or only record it, with ``detach``)."""
    from sagactl.definitions import validation
    from sagactl.engine.checks import check_input

    if request.saga_id is not None:
        check_saga_id(request.saga_id)
    defn = validation.load(request.file, request.saga)
    data = read_input(request.input)
    check_input(defn, data)  # before the log is opened: a wrong input leaves no trace
    with traced(settings, traceparent=request.traceparent) as tracer, store_for(settings) as store:
        engine = make_engine(store, settings, observer, tracer=tracer)
        if request.detach:
            saga = engine.start(defn, data, request.saga_id, detached=True)
            saga.transitions = store.transitions(saga.saga_id)
            return RunResult(saga, ExitCode.OK)
        result = engine.run(defn, data, request.saga_id)
        result.saga.transitions = store.transitions(result.saga.saga_id)
        return result


MAX_LINE_PROBLEMS = 20  # --inputs: the bad lines named one by one; past this, a count


def read_inputs(path: str, stdin: TextIO | None = None) -> tuple[str, list[tuple[int, Any]]]:
    """``--inputs``: JSON lines from FILE or ``-`` (stdin), one saga input a line; blank lines
    and ``#`` comment lines are skipped. Returns the source's name and (line number, input) of
    each line. Every line is read before anything else happens: each that is not a JSON
    object is a ``FILE:LINE: what`` problem, all raised together (DefinitionError, exit 2)."""
    source = "stdin" if path == "-" else path
    try:
        text = (stdin or sys.stdin).read() if path == "-" else Path(path).read_text("utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read --inputs {source}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"--inputs {source} is not UTF-8 text: {exc.reason} at byte {exc.start}") from exc
    found: list[tuple[int, Any]] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not stripped.startswith("{"):
            problems.append(f"{source}:{number}: not a JSON object (one saga input per line)")
            continue
        try:
            found.append((number, read_input(line, source="this line")))  # columns as in the file
        except UsageError as exc:
            problems.append(f"{source}:{number}: {exc.message}")
    _raise_line_problems(source, problems)
    if not found:
        raise UsageError(
            f"--inputs {source} holds no saga inputs (every line is blank or a # comment)",
            hint="write one JSON object per line",
        )
    return source, found


def _raise_line_problems(source: str, problems: list[str]) -> None:
    if not problems:
        return
    shown = problems[:MAX_LINE_PROBLEMS]
    if len(problems) > len(shown):
        shown.append(f"{source}: {len(problems) - len(shown)} more lines with problems; nothing was recorded")
    raise DefinitionError(shown)


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    """``run FILE --inputs FILE|-``: one detached saga per input line."""

    file: str
    inputs: str
    saga: str | None = None
    traceparent: str | None = None


def submit_inputs(settings: Settings, request: SubmitRequest, recorded: Callable[[str], None]) -> int:
    """Record one detached saga (state started, due for a worker at once) per input line, on one
    store connection, one commit per saga; ``recorded`` hears each ID once it is committed.
    Every line is checked first (a JSON object with what the definition reads from it): any
    problem raises before anything is recorded. Returns how many sagas were recorded."""
    from sagactl.definitions import validation
    from sagactl.engine.checks import preflight

    defn = validation.load(request.file, request.saga)
    source, inputs = read_inputs(request.inputs)
    env = dict(os.environ)
    problems = []
    for number, data in inputs:
        try:
            preflight(defn, data, env)
        except UsageError as exc:
            problems.append(f"{source}:{number}: {exc.message}")
    _raise_line_problems(source, problems)
    with traced(settings, traceparent=request.traceparent) as tracer, store_for(settings) as store:
        engine = make_engine(store, settings, env=env, tracer=tracer)
        for _, data in inputs:
            recorded(engine.start(defn, data, detached=True).saga_id)
    return len(inputs)


def definitions_in(path: str) -> list[SagaDefinition]:
    """Every saga a definition file holds, validated (DefinitionError lists each problem)."""
    from sagactl.definitions.validation import check_file

    report = check_file(path)
    if report.errors:
        raise DefinitionError([str(p) for p in report.errors])
    return list(report.definitions)


def definition_for(definitions: Sequence[SagaDefinition], path: str, saga_type: str) -> SagaDefinition:
    """The definition of ``saga_type`` among those of file ``path`` (a file may hold several)."""
    for definition in definitions:
        if definition.name == saga_type:
            return definition
    names = ", ".join(d.name for d in definitions)
    raise UsageError(
        f"{path} defines no saga of type '{saga_type}' (it defines {names})",
        hint="pass the new version of that saga's definition",
    )


@dataclass(slots=True)
class ResumeReport:
    """What ``resume ID...`` did: a result per saga driven, and the error of each that was not."""

    results: list[RunResult]
    failures: list[tuple[str, SagactlError]]


def resume_sagas(
    settings: Settings,
    saga_ids: Sequence[str],
    observer: Observer | None = None,
    *,
    definition: str | None = None,
    user: str | None = None,
) -> ResumeReport:
    """Resume each saga in turn from its stored snapshot, or (``definition``: a file) first move
    it to that new version of its definition, which is read and validated before the log is
    opened (engine.migrate says when a saga cannot move).

    With one ID its error is raised as is. With several, a saga that cannot be resumed (not
    found, driven by another process) does not stop the others; the database becoming
    unreachable or an interrupt stops the whole run.
    """
    for saga_id in saga_ids:
        check_saga_id(saga_id, lookup=True)
    definitions = definitions_in(definition) if definition is not None else None
    who = user or operator_name() if definition is not None else ""
    report = ResumeReport(results=[], failures=[])
    with traced(settings) as tracer, store_for(settings) as store:
        engine = make_engine(store, settings, observer, tracer=tracer)
        for token in saga_ids:
            try:
                saga_id = resolve_id(store, token)
                with looking_up(saga_id):
                    if definitions is None or definition is None:
                        result = engine.resume(saga_id)
                    else:
                        result = _migrate(engine, saga_id, definitions, definition, who)
            except (UnavailableError, Interrupted):
                raise
            except SagactlError as exc:
                if len(saga_ids) == 1:
                    raise
                report.failures.append((token, exc))
                continue
            result.saga.transitions = store.transitions(saga_id)
            report.results.append(result)
    return report


def _migrate(engine: Engine, saga_id: str, definitions: list[SagaDefinition], path: str, user: str) -> RunResult:
    saga = engine.store.get(saga_id)
    if saga is None:
        return engine.resume(saga_id)  # says it is not found, as resume does
    return engine.migrate(saga_id, definition_for(definitions, path, saga.saga_type), user=user, source=path)


# -- operator actions ------------------------------------------------------------------------


def operator_name(env: Mapping[str, str] | None = None) -> str:
    """Who is acting, for saga_transitions: $USER, else the login name."""
    env = os.environ if env is None else env
    user = env.get("USER") or env.get("USERNAME")
    if user:
        return storable_text(user)
    import getpass

    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def recorded_reason(reason: str) -> str:
    """The operator's reason on one line, secrets masked: it is stored in the saga's history."""
    from sagactl.masking import mask_secrets

    text = " ".join(reason.split())
    if not text:
        raise UsageError("--reason must say why (it is recorded with your name in the saga's history)")
    problem = storable(text, "--reason")
    if problem is not None:
        raise UsageError(f"the saga log cannot store this reason: {problem}")
    return mask_secrets(text)


def resolve_compensation(
    settings: Settings,
    saga_id: str,
    step: str,
    reason: str,
    *,
    user: str | None = None,
    observer: Observer | None = None,
    out_of_order: bool = False,
) -> RunResult:
    """Record ``step``'s compensation as done by hand (who, why), then continue compensating.
    ``out_of_order``: the step is not the compensation waiting (recorded as such)."""
    check_saga_id(saga_id, lookup=True)
    why, who = recorded_reason(reason), user or operator_name()
    return _drive_one(
        settings,
        saga_id,
        observer,
        lambda e, found: e.resolve_step(found, step, reason=why, user=who, out_of_order=out_of_order),
    )


def abort_saga(
    settings: Settings,
    saga_id: str,
    reason: str,
    *,
    user: str | None = None,
    observer: Observer | None = None,
) -> RunResult:
    """Stop a saga's forward progress and compensate now (who and why are recorded)."""
    check_saga_id(saga_id, lookup=True)
    why, who = recorded_reason(reason), user or operator_name()
    return _drive_one(settings, saga_id, observer, lambda e, found: e.abort(found, reason=why, user=who))


def _drive_one(
    settings: Settings, token: str, observer: Observer | None, action: Callable[[Engine, str], RunResult]
) -> RunResult:
    """``action`` on the saga ``token`` names (its ID or a unique prefix of it)."""
    with traced(settings) as tracer, store_for(settings) as store:
        saga_id = resolve_id(store, token)
        with looking_up(saga_id):
            result = action(make_engine(store, settings, observer, tracer=tracer), saga_id)
            result.saga.transitions = store.transitions(saga_id)
            return result


# -- the operator's view ---------------------------------------------------------------------


def list_sagas(settings: Settings, request: inspect.ListRequest, *, now: datetime | None = None) -> inspect.ListResult:
    """``list``: the sagas matching the filters, or the stuck ones."""
    inspect.check_list_request(request)  # before anything is opened: a usage error is exit 2
    for token in request.saga_ids:
        check_saga_id(token, lookup=True)
    with reader_for(settings) as reader:
        if request.saga_ids:  # unique prefixes name their sagas; one naming none matches nothing
            request = replace(request, saga_ids=tuple(resolve_ids(reader, request.saga_ids)))
        return inspect.list_sagas(reader, request, now or utcnow())


def list_groups(
    settings: Settings, request: inspect.ListRequest, by: Sequence[GroupBy], *, now: datetime | None = None
) -> inspect.GroupResult:
    """``list --group-by``: the sagas matching the filters, folded into failure groups."""
    inspect.check_list_request(request)
    for token in request.saga_ids:
        check_saga_id(token, lookup=True)
    with reader_for(settings) as reader:
        if request.saga_ids:
            request = replace(request, saga_ids=tuple(resolve_ids(reader, request.saga_ids)))
        return inspect.group_sagas(reader, request, by, now or utcnow())


def show_saga(settings: Settings, saga_id: str) -> SagaRecord | SagaSummary:
    """``show``: one saga (by its ID or a unique prefix of it) with its history (a mapped
    table gives its row)."""
    return show_sagas(settings, [saga_id])[0]


def show_sagas(settings: Settings, tokens: Sequence[str]) -> list[SagaRecord | SagaSummary]:
    """``show ID...`` / ``show -``: each saga in turn, on one connection. Every ID is checked
    before the store is opened; the first that finds nothing (or is ambiguous) stops it."""
    for token in tokens:
        check_saga_id(token, lookup=True)
    shown: list[SagaRecord | SagaSummary] = []
    with reader_for(settings) as reader:
        for token in tokens:
            saga_id = resolve_id(reader, token)
            with looking_up(saga_id):
                shown.append(inspect.show_saga(reader, saga_id))
    return shown


def follow_saga(
    settings: Settings, saga_id: str, seen: poll.Seen, *, interval: float, clock: Clock | None = None
) -> ExitCode:
    """``show --follow``: hand ``seen`` the saga as it changes; its exit code once it ends."""
    from sagactl.tools import poll  # only --follow polls

    check_saga_id(saga_id, lookup=True)
    with reader_for(settings) as reader, looking_up(saga_id):
        return poll.follow(reader, saga_id, seen, clock=clock or SystemClock(), interval=interval)


def watch_sagas(
    settings: Settings,
    request: inspect.ListRequest,
    frame: Callable[[inspect.ListResult], None],
    *,
    interval: float,
    clock: Clock | None = None,
) -> None:
    """``list --watch``: hand ``frame`` the listing every ``interval`` seconds until interrupted."""
    from sagactl.tools import poll  # only --watch polls

    inspect.check_list_request(request)  # before anything is opened: a usage error is exit 2
    with reader_for(settings) as reader:
        poll.watch(reader, request, frame, clock=clock or SystemClock(), interval=interval)


def stats(settings: Settings, *, now: datetime | None = None) -> inspect.Stats:
    """``stats``: counts per type and state, stuck counts, the oldest active saga's age."""
    with reader_for(settings) as reader:
        return inspect.stats(reader, now or utcnow())
