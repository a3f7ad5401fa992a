"""Participant results the saga log cannot hold (issue 8 item 11), on SQLite and PostgreSQL.

A result with a NUL character, NaN or Infinity, nesting deeper than codec.MAX_DEPTH (or deeper
than Python's JSON parser goes), an integer beyond MAX_DIGITS digits: the participant did act,
so the step fails with outcome unknown and is compensated like a lost answer; the saga ends
failed instead of staying wedged in executing. Error text from participants is stored as
every store can hold it. The same rules on both stores: a property test drives any JSON-like
result through both, and the CLI runs real HTTP participants.
"""

from __future__ import annotations

import json
import math
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.codec import MAX_DEPTH, storable
from sagactl.definitions.validation import check_text
from sagactl.engine.control import Engine
from sagactl.errors import ExitCode
from sagactl.models import Outcome, Phase, SagaState, StepStatus
from sagactl.store import Store, open_store
from sagactl.transports.base import Reply, Request, Status
from tests.support.clock import FakeClock
from tests.support.participants import Participants, answer

runner = CliRunner()

FAKE_YAML = """
saga: Hold
endpoints:
  svc: {type: exec, command: [participant]}
defaults:
  retry: {max_attempts: 1}
steps:
  - {name: first, endpoint: svc, action: {args: [a]}, compensation: {args: [c]}}
  - {name: second, endpoint: svc, action: {args: [a]}, compensation: {args: [c]}}
"""


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = [value]
    return value


def same(a: Any, b: Any) -> bool:
    """Equal as JSON: numbers by value (jsonb may give 1e20 back as an int), keys unordered."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or math.isclose(a, b, rel_tol=1e-15)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


class ResultTransport:
    """Answers the action of step ``second`` with ``result``; everything else succeeds. The
    participant is not the subject here, the saga log is."""

    def __init__(self, result: Any) -> None:
        self.result = result
        self.calls: list[tuple[str, str]] = []

    def call(self, request: Request) -> Reply:
        self.calls.append((request.step_name, request.phase.value))
        if (request.step_name, request.phase.value) == ("second", "action"):
            return Reply(Status.OK, result=self.result)
        return Reply(Status.OK, result={"ok": request.step_name})

    def close(self) -> None:
        return None


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def log(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One saga log of each kind for every example (sagas get fresh IDs)."""
    if request.param == "sqlite":
        dsn = f"sqlite:///{tmp_path_factory.mktemp('hold') / 'saga_log.db'}"
    else:
        dsn = request.getfixturevalue("pg_dsn")
    store = open_store(dsn)
    try:
        yield store
    finally:
        store.close()


def drive(store: Store, result: Any) -> tuple[Any, ResultTransport]:
    report = check_text(FAKE_YAML, "hold.yaml", "/tmp")
    assert not report.errors, report.problems
    transport = ResultTransport(result)
    engine = Engine(
        store=store, transport_factory=lambda d, e: transport, clock=FakeClock(), env={}, rng=random.Random(0)
    )
    return engine.run(report.definitions[0], {"order": 1}, f"hold-{uuid.uuid4().hex[:12]}"), transport


def assert_failed_and_compensated(store: Store, outcome: Any, transport: ResultTransport, problem: str) -> None:
    saga = outcome.saga
    assert (saga.state, outcome.exit_code) == (SagaState.FAILED, ExitCode.SAGA_FAILED)
    stored = store.get(saga.saga_id)
    assert stored is not None and stored.state is SagaState.FAILED and stored.lease_owner is None
    first, second = stored.steps
    assert (first.status, second.status) == (StepStatus.COMPENSATED, StepStatus.COMPENSATED)
    assert second.outcome is Outcome.UNKNOWN and second.result is None
    assert second.error == f"the participant answered, but its result cannot be stored: {problem}"  # kept
    assert stored.last_error == f"second: the participant answered, but its result cannot be stored: {problem}"
    # the participant acted, so its step is undone first, then the earlier one (strict reverse order)
    assert transport.calls == [
        ("first", "action"),
        ("second", "action"),
        ("second", "compensation"),
        ("first", "compensation"),
    ]
    failed = [t for t in store.transitions(saga.saga_id) if t.step_name == "second" and t.new_state == "failed"]
    assert [t.detail["outcome"] for t in failed] == ["unknown"]
    assert problem in failed[0].detail["error"]


# -- the property: any result ends the saga, the same way on both stores ------------------------

text = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([4299, 4300]).map(lambda digits: 10**digits)  # 4300 digits fit, 4301 do not
    | st.floats(allow_nan=True, allow_infinity=True)
    | text
)
json_like = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=16,
)
results = json_like | st.integers(MAX_DEPTH - 2, MAX_DEPTH + 3).map(nested)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(result=results)
@pytest.mark.slow
def test_any_result_ends_the_saga_and_what_is_stored_reads_back(log: Store, result: Any) -> None:
    outcome, transport = drive(log, result)
    problem = storable(result, "result")
    if problem is None:
        assert (outcome.saga.state, outcome.exit_code) == (SagaState.COMPLETED, ExitCode.OK)
        stored = log.get(outcome.saga.saga_id)
        assert stored is not None and same(stored.steps[1].result, result)
    else:
        assert_failed_and_compensated(log, outcome, transport, problem)
    shown = log.detail(outcome.saga.saga_id)
    assert shown is not None
    json.loads(json.dumps(shown.to_dict(), default=str))  # show -o json can print it


@pytest.mark.parametrize(
    ("result", "problem"),
    [
        ({"name": "a\x00b"}, "a NUL character (\\u0000), which PostgreSQL cannot store, at result.name"),
        ({"total": float("nan")}, "NaN, which JSON cannot hold, at result.total"),
        ([1, float("inf")], "Infinity, which JSON cannot hold, at result[1]"),
        (nested(900), f"nesting deeper than {MAX_DEPTH} levels at result[0][0][0][0][0]…[0]"),
        ({"n": 10**4300}, "a number with more than 4300 digits at result.n"),
        ({"k\udc80": 1}, "text that is not valid Unicode (a lone surrogate U+DC80) in a key at result"),
    ],
)
def test_a_result_the_log_cannot_hold_fails_the_step_and_compensates(
    log: Store, result: Any, problem: str
) -> None:
    outcome, transport = drive(log, result)
    assert_failed_and_compensated(log, outcome, transport, problem)


# -- end to end: real HTTP participants, the CLI, both stores ------------------------------------

HTTP_YAML = """
saga: Hold
endpoints:
  svc: {type: http, url: "${env.SVC_URL}"}
defaults:
  timeout: 5s
  retry: {max_attempts: 1}
  compensation_retry: {max_attempts: 1}
steps:
  - {name: first, endpoint: svc, action: {path: /first}, compensation: {path: /first/undo}}
  - {name: second, endpoint: svc, action: {path: /second}, compensation: {path: /second/undo}}
"""


@pytest.fixture
def http_saga(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_dsn: str, participants: Participants) -> Path:
    for name in ("SAGACTL_CONFIG", "SAGACTL_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAGACTL_DSN", store_dsn)
    monkeypatch.setenv("SVC_URL", participants.url)
    path = tmp_path / "hold.yaml"
    path.write_text(HTTP_YAML)
    return path


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b'{"note": "a\\u0000b"}', "a NUL character (\\u0000), which PostgreSQL cannot store, at result.note"),
        (b'{"id": "r-1", "total": NaN}', "NaN, which JSON cannot hold, at result.total"),
        (b'{"id": "r-1", "total": 1e400}', "Infinity, which JSON cannot hold, at result.total"),
        (b"[" * 900 + b"]" * 900, f"nesting deeper than {MAX_DEPTH} levels at result[0][0][0][0][0]…[0]"),
        (b"[" * 100_000 + b"]" * 100_000, f"nesting deeper than {MAX_DEPTH} levels in its JSON"),
        (b'{"n": ' + b"7" * 4301 + b"}", "a number with more than 4300 digits in its JSON"),
    ],
    ids=["nul", "nan", "overflow", "depth-900", "depth-100000", "digits"],
)
@pytest.mark.slow
def test_run_with_an_unstorable_result_ends_failed_and_compensated(
    http_saga: Path, participants: Participants, body: bytes, problem: str
) -> None:
    participants.script("second", "action", answer(200, body))
    result = runner.invoke(app, ["run", str(http_saga), "--saga-id", "h-1", "-o", "json"])
    assert result.exit_code == 1, result.stderr
    why = f"the participant answered, but its result cannot be stored: {problem}"
    assert result.stderr == f"sagactl: saga h-1 failed at second: {why}; compensated second, first\n"
    assert participants.sequence() == [
        ("first", "action"),
        ("second", "action"),
        ("second", "compensation"),
        ("first", "compensation"),
    ]
    # the compensation could not be told what the participant answered: like a lost answer
    assert participants.calls_for("second", "compensation")[0].body["original_result"] is None
    shown = runner.invoke(app, ["show", "h-1", "-o", "json"])
    assert shown.exit_code == 0, shown.stderr
    saga = json.loads(shown.stdout)
    assert (saga["state"], saga["last_error"]) == ("failed", f"second: {why}")
    assert [(s["name"], s["status"], s["outcome"], s["result"]) for s in saga["steps"]] == [
        ("first", "compensated", "succeeded", {"step": "first", "phase": "action", "n": 1}),
        ("second", "compensated", "unknown", None),
    ]


def test_participant_error_text_with_nul_is_kept_on_every_store(http_saga: Path, participants: Participants) -> None:
    participants.script("second", "action", answer(422, b"bad\x00input \xff here"))
    result = runner.invoke(app, ["run", str(http_saga), "--saga-id", "e-1", "-q"])
    assert result.exit_code == 1, result.stderr
    shown = json.loads(runner.invoke(app, ["show", "e-1", "-o", "json"]).stdout)
    assert shown["state"] == "failed"
    error = f"POST {participants.url}/second: HTTP 422: bad\\u0000input \ufffd here"
    assert (shown["steps"][1]["error"], shown["last_error"]) == (error, f"second: {error}")
    assert shown["steps"][1]["outcome"] == "refused" and shown["steps"][0]["status"] == "compensated"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ('{"total": NaN}', "NaN, which JSON cannot hold, at input.total"),
        ('{"total": -Infinity}', "-Infinity, which JSON cannot hold, at input.total"),
        ('{"note": "a\\u0000b"}', "a NUL character (\\u0000), which PostgreSQL cannot store, at input.note"),
        ('{"note": "\\udc80"}', "text that is not valid Unicode (a lone surrogate U+DC80) at input.note"),
        ("[" * 900 + "]" * 900, f"nesting deeper than {MAX_DEPTH} levels at input[0][0][0][0][0]…[0]"),
        ("[" * 100_000 + "]" * 100_000, f"nesting deeper than {MAX_DEPTH} levels at input"),
        ("1" * 4301, "a number with more than 4300 digits at input"),
    ],
    ids=["nan", "-inf", "nul", "surrogate", "depth-900", "depth-100000", "digits"],
)
@pytest.mark.slow
def test_input_the_log_cannot_hold_is_refused_before_anything_is_recorded(
    http_saga: Path, participants: Participants, given: str, message: str
) -> None:
    result = runner.invoke(app, ["run", str(http_saga), "--input", given, "--saga-id", "i-1"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        f"sagactl: error: input from --input cannot be stored in the saga log: {message};"
        " pass JSON, @file.json or - for stdin\n"
    )
    assert participants.sequence() == []
    assert runner.invoke(app, ["list", "-q"]).stdout == ""


def test_input_from_a_file_or_stdin_is_checked_the_same(
    http_saga: Path, participants: Participants, tmp_path: Path
) -> None:
    (tmp_path / "nan.json").write_text('{"total": NaN}')
    (tmp_path / "latin1.json").write_bytes(b'{"name": "caf\xe9"}')
    from_file = runner.invoke(app, ["run", str(http_saga), "--input", f"@{tmp_path / 'nan.json'}"])
    assert (from_file.exit_code, from_file.stderr) == (
        2,
        f"sagactl: error: input from {tmp_path / 'nan.json'} cannot be stored in the saga log: NaN, which JSON"
        " cannot hold, at input.total; pass JSON, @file.json or - for stdin\n",
    )
    not_utf8 = runner.invoke(app, ["run", str(http_saga), "--input", f"@{tmp_path / 'latin1.json'}"])
    assert (not_utf8.exit_code, not_utf8.stderr) == (
        2,
        f"sagactl: error: input from {tmp_path / 'latin1.json'} is not UTF-8 text: invalid continuation byte"
        " at byte 13\n",
    )
    stdin = runner.invoke(app, ["run", str(http_saga), "--input", "-"], input='{"a": [Infinity]}')
    assert (stdin.exit_code, stdin.stderr) == (
        2,
        "sagactl: error: input from stdin cannot be stored in the saga log: Infinity, which JSON cannot hold,"
        " at input.a[0]; pass JSON, @file.json or - for stdin\n",
    )
    assert participants.sequence() == []
    assert runner.invoke(app, ["list", "-q"]).stdout == ""


def test_a_definition_the_log_cannot_hold_is_refused_before_anything_is_recorded(
    http_saga: Path, participants: Participants
) -> None:
    http_saga.write_text(HTTP_YAML.replace("saga: Hold", 'saga: Hold\ndescription: "nul \\0 here"'))
    result = runner.invoke(app, ["run", str(http_saga)])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == (
        "sagactl: error: the saga log cannot store this definition: a NUL character (\\u0000), which PostgreSQL"
        " cannot store, at definition.document.description\n"
    )
    assert participants.sequence() == []
    assert runner.invoke(app, ["list", "-q"]).stdout == ""


class WorkerTransport:
    """An SQS-like transport as a worker uses it: it sends and the answer comes separately."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def call(self, request: Request) -> Reply:
        raise AssertionError("a worker sends and does not wait")

    def send(self, request: Request) -> Reply | None:
        self.sent.append((request.step_name, request.phase.value))
        return None

    def close(self) -> None:
        return None


def test_a_reply_a_worker_receives_is_held_to_the_same_rule(log: Store) -> None:
    """Over a reply queue the same result fails the step the same way, and compensation runs."""
    report = check_text(FAKE_YAML, "hold.yaml", "/tmp")
    transport = WorkerTransport()
    engine = Engine(
        store=log, transport_factory=lambda d, e: transport, clock=FakeClock(), env={}, rng=random.Random(0), park=True
    )
    saga_id = f"w-{uuid.uuid4().hex[:12]}"
    assert engine.run(report.definitions[0], {"order": 1}, saga_id).saga.state is SagaState.PENDING  # put aside
    answers = [
        ("first", Phase.ACTION, Reply(Status.OK, result={"ok": 1})),
        ("second", Phase.ACTION, Reply(Status.OK, result={"total": float("nan")})),
        ("second", Phase.COMPENSATION, Reply(Status.OK)),
        ("first", Phase.COMPENSATION, Reply(Status.OK)),
    ]
    outcome = None
    for step, phase, reply in answers:
        outcome = engine.apply_reply(saga_id, step, phase, reply)
        assert outcome is not None
    assert outcome is not None and (outcome.saga.state, outcome.exit_code) == (SagaState.FAILED, ExitCode.SAGA_FAILED)
    assert transport.sent == [(step, phase.value) for step, phase, _ in answers]
    stored = log.get(saga_id)
    assert stored is not None
    assert [(s.status, s.outcome) for s in stored.steps] == [
        (StepStatus.COMPENSATED, Outcome.SUCCEEDED),
        (StepStatus.COMPENSATED, Outcome.UNKNOWN),
    ]
    assert stored.last_error == (
        "second: the participant answered, but its result cannot be stored: NaN, which JSON cannot hold,"
        " at result.total"
    )
