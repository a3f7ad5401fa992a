"""Property: whatever the step count, failure point and failure kind, compensations are exactly
the reverse of the completed and unknown-outcome steps that define one, and the saga ends
terminal with the right exit code.

The transport is an in-process fake (the engine is the subject here, the wire is proved in
tests/engine/test_engine.py and tests/transports/); the store is the real SQLite log in a temp dir.
"""

from __future__ import annotations

import random
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagactl.definitions.model import SagaDefinition, build
from sagactl.engine.control import Engine
from sagactl.errors import ExitCode
from sagactl.models import SagaState, exit_code_for
from sagactl.store.sqlite import SqliteStore
from sagactl.transports.base import Reply, Request, Status
from tests.support.clock import FakeClock

MAX_ATTEMPTS = 3
FAILURES = ["refuse", "transient-exhausted", "timeout", "connect-error"]
UNKNOWN_OUTCOME = {"transient-exhausted", "timeout"}


@dataclass(frozen=True)
class Plan:
    steps: int
    compensable: tuple[bool, ...]
    fail_at: int | None  # None: every step succeeds
    kind: str
    flaky: tuple[int, ...]  # transient failures before an action succeeds (< MAX_ATTEMPTS)
    comp_failures: tuple[int, ...]  # transient failures before a compensation succeeds (>= MAX: stuck)


@st.composite
def plans(draw: st.DrawFn) -> Plan:
    n = draw(st.integers(1, 8))
    fail_at = draw(st.one_of(st.none(), st.integers(0, n - 1)))
    return Plan(
        steps=n,
        compensable=tuple(draw(st.lists(st.booleans(), min_size=n, max_size=n))),
        fail_at=fail_at,
        kind=draw(st.sampled_from(FAILURES)),
        flaky=tuple(draw(st.lists(st.integers(0, MAX_ATTEMPTS - 1), min_size=n, max_size=n))),
        comp_failures=tuple(draw(st.lists(st.integers(0, MAX_ATTEMPTS + 1), min_size=n, max_size=n))),
    )


def definition(plan: Plan) -> SagaDefinition:
    retry = {"max_attempts": MAX_ATTEMPTS, "initial_backoff": "100ms", "max_backoff": "1s"}
    steps: list[dict[str, Any]] = []
    for i in range(plan.steps):
        step: dict[str, Any] = {"name": f"s{i}", "endpoint": "svc", "action": {"path": f"/s{i}"}}
        if plan.compensable[i]:
            step["compensation"] = {"path": f"/s{i}/undo"}
        steps.append(step)
    doc = {
        "saga": "Prop",
        "endpoints": {"svc": {"type": "http", "url": "http://127.0.0.1:9"}},
        "defaults": {"timeout": "1s", "retry": retry, "compensation_retry": retry},
        "steps": steps,
    }
    return build(doc, ".")


@dataclass
class FakeTransport:
    """Answers per the plan; records (step index, phase) of every call it is handed."""

    plan: Plan
    calls: list[tuple[int, str]] = field(default_factory=list)
    counts: dict[tuple[int, str], int] = field(default_factory=dict)
    repaired: bool = False  # an operator fixed the participant: compensations succeed

    def call(self, request: Request) -> Reply:
        index = int(request.step_name[1:])
        phase = request.phase.value
        assert request.idempotency_key == f"{request.saga_id}:{request.step_name}:{phase}"
        self.calls.append((index, phase))
        n = self.counts.get((index, phase), 0) + 1
        self.counts[(index, phase)] = n
        if phase == "compensation":
            if self.repaired or n > self.plan.comp_failures[index]:
                return Reply(Status.OK, result={"undone": index})
            return Reply(Status.TRANSIENT, error="503")
        if index == self.plan.fail_at:
            kind = self.plan.kind
            if kind == "refuse":
                return Reply(Status.REFUSED, error="422")
            if kind == "connect-error":
                return Reply(Status.TRANSIENT, error="connection refused", delivered=False)
            if kind == "timeout" and n == 1:
                # a refused connection first, then read timeouts: delivered at least once
                return Reply(Status.TRANSIENT, error="connection refused", delivered=False)
            return Reply(Status.TRANSIENT, error="no answer within 1s" if kind == "timeout" else "503")
        if n <= self.plan.flaky[index]:
            return Reply(Status.TRANSIENT, error="429", retry_after=0.2)
        return Reply(Status.OK, result={"done": index})

    def close(self) -> None:
        return None


@pytest.fixture(scope="module")
def store() -> Iterator[SqliteStore]:
    with tempfile.TemporaryDirectory(prefix="sagactl-prop-") as tmp:
        opened = SqliteStore(Path(tmp) / "saga_log.db")
        try:
            yield opened
        finally:
            opened.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=plans())
@pytest.mark.slow
def test_compensations_are_the_reverse_of_what_happened_and_the_saga_ends_terminal(
    store: SqliteStore, plan: Plan
) -> None:
    fake = FakeTransport(plan)
    clock = FakeClock()
    defn = definition(plan)

    def engine() -> Engine:
        return Engine(store=store, transport_factory=lambda d, e: fake, clock=clock, env={}, rng=random.Random(0))

    saga_id = str(uuid.uuid4())
    result = engine().run(defn, {"order": 1}, saga_id)
    resumes = 0
    while not result.saga.state.terminal:
        # only a compensation that kept failing stops a saga short of terminal
        assert result.saga.state is SagaState.COMPENSATING and result.exit_code == ExitCode.ATTENTION
        stuck = result.saga.current_step
        assert stuck is not None and plan.comp_failures[stuck] >= MAX_ATTEMPTS
        assert stuck not in {i for i, p in fake.calls if p == "compensation" and i < stuck}  # earlier wait
        fake.repaired = True
        result = engine().resume(saga_id)
        resumes += 1
        assert resumes == 1

    failed = plan.fail_at
    happened = [] if failed is None else list(range(failed))
    if failed is not None and plan.kind in UNKNOWN_OUTCOME:
        happened.append(failed)  # outcome unknown: compensated too
    expected = [i for i in reversed(happened) if plan.compensable[i]]
    compensations = [i for i, phase in fake.calls if phase == "compensation"]
    dedup = [i for n, i in enumerate(compensations) if n == 0 or compensations[n - 1] != i]
    assert dedup == expected

    # actions: every step up to the failure point was sent, none after; each retried as planned
    sent = sorted({i for i, phase in fake.calls if phase == "action"})
    assert sent == list(range(plan.steps if failed is None else failed + 1))
    for i in range(plan.steps if failed is None else failed):
        assert fake.counts[(i, "action")] == plan.flaky[i] + 1

    stored = store.get(saga_id)
    assert stored is not None
    if failed is None:
        assert stored.state is SagaState.COMPLETED and result.exit_code == ExitCode.OK
        assert all(s.status.value == "completed" for s in stored.steps)
    else:
        assert stored.state is SagaState.FAILED
        code = ExitCode.UNAVAILABLE if plan.kind == "connect-error" else ExitCode.SAGA_FAILED
        assert result.exit_code == code == exit_code_for(stored)
        for i, record in enumerate(stored.steps):
            if i in expected:
                assert record.status.value == "compensated"
            elif i < failed:
                assert record.status.value == "completed"  # nothing defined to undo it
            elif i == failed:
                assert record.status.value == "failed"
            else:
                assert record.status.value == "pending"
    assert stored.lease_owner is None
