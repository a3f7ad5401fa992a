"""The run engine against real HTTP participants on 127.0.0.1, on SQLite and PostgreSQL.

Every scenario checks the exact calls the participants received (with their idempotency
keys), the final saga and step states, the transition history and the exit code. Backoff
sleeps go to a fake clock (recorded, not slept); timeouts are real and short.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sagactl.definitions.model import RetryPolicy, SagaDefinition
from sagactl.definitions.placeholders import MissingValueError
from sagactl.definitions.validation import load
from sagactl.engine.calls import backoff_delay
from sagactl.engine.control import Engine
from sagactl.errors import ExitCode, Interrupted, LeaseHeldError, UsageError
from sagactl.models import Outcome, RunResult, SagaState, StepStatus, exit_code_for
from sagactl.store import Store, open_store
from sagactl.store.base import LeaseLostError
from sagactl.transports import Transport, open_transport
from sagactl.transports.base import Reply, Request
from sagactl.views.sagas import run_summary_line, show_document
from tests.support.clock import FakeClock
from tests.support.participants import Participants, answer, gate, ok, refuse, slow, transient

STEPS = ["reserve", "charge", "ship", "notify"]
ENDPOINT_OF = {"reserve": "inventory", "charge": "payment", "ship": "inventory", "notify": "notify"}
INPUT: dict[str, Any] = {
    "order_id": "o-1",
    "items": [{"sku": "A", "qty": 2}, {"sku": "B", "qty": 1}],
    "amount": 12.5,
    "count": 3,
}

SAGA_YAML = """\
saga: Order
endpoints:
  inventory: {type: http, url: "${env.INVENTORY_URL}", headers: {Authorization: "Bearer ${env.INV_TOKEN:-s3cret}"}}
  payment:   {type: http, url: "${env.PAYMENT_URL}"}
  notify:    {type: http, url: "${env.NOTIFY_URL}"}
defaults:
  timeout: @TIMEOUT@
  retry: {max_attempts: 3, initial_backoff: 500ms, max_backoff: 10s}
  compensation_retry: {max_attempts: 3, initial_backoff: 1s, max_backoff: 20s}
steps:
  - name: reserve
    endpoint: inventory
    action:       {method: POST, path: /reservations, body: {order_id: "${input.order_id}", items: "${input.items}"}}
    compensation:
      method: POST
      path: /reservations/release
      body: {order_id: "${input.order_id}", reservation: "${steps.reserve.result.reservation_id}"}
  - name: charge
    endpoint: payment
    action:       {path: /charges}
    compensation: {path: /refunds}
  - name: ship
    endpoint: inventory
    action:
      method: PUT
      path: "/shipments/${input.order_id}"
      body:
        note: "order ${input.order_id} of ${input.amount}"
        items: "${input.items}"
        payment: "${steps.charge.result.payment_id}"
    compensation: {method: DELETE, path: "/shipments/${input.order_id}"}
  - name: notify
    endpoint: notify
    action:       {path: /notifications, body: {saga: "${saga_id}", count: "${input.count}"}}
    compensation: {path: /notifications/retract}
"""

Row = tuple[str | None, str | None, str]


# -- fixtures and helpers ----------------------------------------------------------------------


@pytest.fixture
def env(participants: Participants) -> dict[str, str]:
    return {
        "INVENTORY_URL": participants.url + "/inventory",
        "PAYMENT_URL": participants.url + "/payment",
        "NOTIFY_URL": participants.url + "/notify",
    }


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def write_saga(tmp_path: Path, timeout: str = "5s") -> Path:
    path = tmp_path / "order.yaml"
    path.write_text(SAGA_YAML.replace("@TIMEOUT@", timeout))
    return path


@pytest.fixture
def definition(tmp_path: Path) -> SagaDefinition:
    return load(write_saga(tmp_path))


def http_factory(env: dict[str, str]) -> Callable[[SagaDefinition, str], Transport]:
    def factory(defn: SagaDefinition, endpoint: str) -> Transport:
        return open_transport(defn.endpoints[endpoint], defn.base_dir, env)

    return factory


def make_engine(
    store: Store,
    env: dict[str, str],
    clock: FakeClock,
    factory: Callable[[SagaDefinition, str], Transport] | None = None,
) -> Engine:
    return Engine(
        store=store,
        transport_factory=factory or http_factory(env),
        clock=clock,
        env=env,
        rng=random.Random(7),
    )


def key(saga_id: str, step: str, phase: str = "action") -> str:
    return f"{saga_id}:{step}:{phase}"


def actions(*steps: str) -> list[tuple[str, str]]:
    return [(s, "action") for s in steps]


def compensations(*steps: str) -> list[tuple[str, str]]:
    return [(s, "compensation") for s in steps]


def assert_keys(participants: Participants, saga_id: str) -> None:
    """Every call carried the idempotency key of its saga, step and phase."""
    for call in participants.calls:
        assert call.key == key(saga_id, str(call.step), str(call.phase))
        assert call.saga_id == saga_id


def flow(store: Store, saga_id: str) -> list[Row]:
    """The transition history as (step, old, new), retries included."""
    return [(t.step_name, t.old_state, t.new_state) for t in store.transitions(saga_id)]


def statuses(store: Store, saga_id: str) -> dict[str, str]:
    saga = store.get(saga_id)
    assert saga is not None
    return {s.name: s.status.value for s in saga.steps}


def check_result(result: RunResult, store: Store, state: SagaState, code: ExitCode) -> None:
    stored = store.get(result.saga.saga_id)
    assert stored is not None
    assert result.saga.state is state
    assert stored.state is state
    assert result.exit_code == code
    assert exit_code_for(stored) == code
    if state.terminal:
        assert stored.lease_owner is None and stored.lease_expires_at is None
        assert stored.deadline_at is None


def forward_rows(step: str, end: str, retries: int = 0) -> list[Row]:
    return [(step, "pending", "executing"), *[(step, "executing", "executing")] * retries, (step, "executing", end)]


def undo_rows(step: str, start: str = "completed", retries: int = 0) -> list[Row]:
    return [
        (step, start, "compensating"),
        *[(step, "compensating", "compensating")] * retries,
        (step, "compensating", "compensated"),
    ]


def failed_flow(done: list[str], failing: str, failing_end: list[Row], undo: list[Row]) -> list[Row]:
    rows: list[Row] = [(None, None, "started"), (None, "started", "pending")]
    for step in done:
        rows += forward_rows(step, "completed")
    rows += failing_end
    rows.append((None, "pending", "compensating"))
    rows += undo
    rows.append((None, "compensating", "failed"))
    return rows


# -- the happy path ------------------------------------------------------------------------


def test_all_steps_complete(
    store: Store, env: dict[str, str], clock: FakeClock, definition: SagaDefinition, participants: Participants
) -> None:
    participants.script("reserve", "action", ok({"reservation_id": "r-1"}))
    participants.script("charge", "action", ok({"payment_id": "pay-9"}))

    result = make_engine(store, env, clock).run(definition, INPUT, "happy-1")

    check_result(result, store, SagaState.COMPLETED, ExitCode.OK)
    assert participants.sequence() == actions(*STEPS)
    assert_keys(participants, "happy-1")
    assert statuses(store, "happy-1") == dict.fromkeys(STEPS, "completed")
    rows: list[Row] = [(None, None, "started"), (None, "started", "pending")]
    for step in STEPS:
        rows += forward_rows(step, "completed")
    assert flow(store, "happy-1") == [*rows, (None, "pending", "completed")]
    stored = store.get("happy-1")
    assert stored is not None
    assert [s.result for s in stored.steps][:2] == [{"reservation_id": "r-1"}, {"payment_id": "pay-9"}]
    assert all(s.attempts == 1 and s.outcome is Outcome.SUCCEEDED for s in stored.steps)
    assert clock.sleeps == []


def test_wire_shapes_placeholders_and_default_bodies(
    store: Store, env: dict[str, str], clock: FakeClock, definition: SagaDefinition, participants: Participants
) -> None:
    """Exact placeholders keep their JSON type, embedded ones are stringified; omitted bodies
    take the seed shape; the saga headers ride on every call."""
    participants.script("reserve", "action", ok({"reservation_id": "r-1"}))
    participants.script("charge", "action", ok({"payment_id": "pay-9"}))
    participants.script("ship", "action", ok({"shipment_id": "sh-3"}))
    participants.script("notify", "action", refuse(409))

    result = make_engine(store, env, clock).run(definition, INPUT, "wire-1")

    check_result(result, store, SagaState.FAILED, ExitCode.SAGA_FAILED)
    reserve, charge, ship, notify, unship, refund, release = participants.calls
    assert (reserve.method, reserve.path) == ("POST", "/inventory/reservations")
    assert reserve.body == {"order_id": "o-1", "items": INPUT["items"]}
    assert reserve.headers["Authorization"] == "Bearer s3cret"
    assert reserve.headers["Content-Type"] == "application/json"
    assert (charge.method, charge.path) == ("POST", "/payment/charges")
    assert charge.body == {"saga_id": "wire-1", "step_name": "charge", **INPUT}
    assert "Authorization" not in charge.headers
    assert (ship.method, ship.path) == ("PUT", "/inventory/shipments/o-1")
    assert ship.body == {"note": "order o-1 of 12.5", "items": INPUT["items"], "payment": "pay-9"}
    assert notify.body == {"saga": "wire-1", "count": 3}
    assert (unship.method, unship.path) == ("DELETE", "/inventory/shipments/o-1")
    assert unship.body == {
        "saga_id": "wire-1",
        "step_name": "ship",
        "original_result": {"shipment_id": "sh-3"},
        **INPUT,
    }
    assert refund.body == {
        "saga_id": "wire-1",
        "step_name": "charge",
        "original_result": {"payment_id": "pay-9"},
        **INPUT,
    }
    assert (release.path, release.body) == (
        "/inventory/reservations/release",
        {"order_id": "o-1", "reservation": "r-1"},
    )
    for call in participants.calls:
        assert call.headers["Idempotency-Key"] == key("wire-1", str(call.step), str(call.phase))
        assert call.headers["X-Saga-Id"] == "wire-1"
        assert call.headers["X-Saga-Step"] == call.step
    assert participants.sequence() == [*actions(*STEPS), *compensations("ship", "charge", "reserve")]


# -- failures ------------------------------------------------------------------------------


@pytest.mark.parametrize("index", range(4))
def test_definitive_failure_compensates_completed_steps_in_reverse(
    index: int,
    store: Store,
    env: dict[str, str],
    clock: FakeClock,
    definition: SagaDefinition,
    participants: Participants,
) -> None:
    failing = STEPS[index]
    done = STEPS[:index]
    participants.script(failing, "action", refuse(422))
    saga_id = f"refuse-{index}"

    result = make_engine(store, env, clock).run(definition, INPUT, saga_id)

    check_result(result, store, SagaState.FAILED, ExitCode.SAGA_FAILED)
    assert participants.sequence() == [*actions(*done, failing), *compensations(*reversed(done))]
    assert_keys(participants, saga_id)
    expected = {s: "compensated" for s in done} | {failing: "failed"} | dict.fromkeys(STEPS[index + 1 :], "pending")
    assert statuses(store, saga_id) == expected
    stored = store.get(saga_id)
    assert stored is not None
    assert stored.steps[index].outcome is Outcome.REFUSED
    assert "HTTP 422" in (stored.steps[index].error or "")
    undo = [row for step in reversed(done) for row in undo_rows(step)]
    assert flow(store, saga_id) == failed_flow(done, failing, forward_rows(failing, "failed"), undo)
    assert clock.sleeps == []  # a refusal is never retried


@pytest.mark.parametrize("index", range(4))
@pytest.mark.slow
def test_transient_failures_exhausted_compensate_the_unknown_step_too(
    index: int,
    store: Store,
    env: dict[str, str],
    clock: FakeClock,
    definition: SagaDefinition,
    participants: Participants,
) -> None:
    failing = STEPS[index]
    done = STEPS[:index]
    participants.script(failing, "action", then=transient(503))
    saga_id = f"transient-{index}"

    result = make_engine(store, env, clock).run(definition, INPUT, saga_id)

    check_result(result, store, SagaState.FAILED, ExitCode.SAGA_FAILED)
    assert participants.sequence() == [
        *actions(*done),
        *actions(failing, failing, failing),
        *compensations(failing, *reversed(done)),
    ]
    assert_keys(participants, saga_id)
    stored = store.get(saga_id)
    assert stored is not None
    assert stored.steps[index].outcome is Outcome.UNKNOWN
    assert stored.steps[index].attempts == 3
    assert statuses(store, saga_id) == {s: "compensated" for s in [*done, failing]} | dict.fromkeys(
        STEPS[index + 1 :], "pending"
    )
    undo = undo_rows(failing, start="failed") + [row for step in reversed(done) for row in undo_rows(step)]
    assert flow(store, saga_id) == failed_flow(done, failing, forward_rows(failing, "failed", retries=2), undo)
    assert len(clock.sleeps) == 2
    assert 0.25 <= clock.sleeps[0] <= 0.5 and 0.5 <= clock.sleeps[1] <= 1.0  # equal jitter on 500ms, 1s


@pytest.mark.parametrize("index", range(4))
def test_connect_errors_never_delivered_are_not_compensated_and_exit_4(
    index: int,
    store: Store,
    env: dict[str, str],
    clock: FakeClock,
    definition: SagaDefinition,
    participants: Participants,
    closed_port: int,
) -> None:
    failing = STEPS[index]
    done = STEPS[:index]
    # Only the failing step's endpoint is down; steps sharing it before it still get through.
    env = {**env}
    url_var = {"inventory": "INVENTORY_URL", "payment": "PAYMENT_URL", "notify": "NOTIFY_URL"}[ENDPOINT_OF[failing]]
    saga_id = f"down-{index}"
    if failing == "ship":
        # reserve shares ship's endpoint: split them with a factory that sends ship to the dead port
        base = http_factory(env)
        down = http_factory({**env, url_var: f"http://127.0.0.1:{closed_port}"})

        def factory(defn: SagaDefinition, endpoint: str) -> Transport:
            return _ByStep(base(defn, endpoint), down(defn, endpoint), "ship")

        engine = make_engine(store, env, clock, factory)
    else:
        env[url_var] = f"http://127.0.0.1:{closed_port}"
        engine = make_engine(store, env, clock)

    result = engine.run(definition, INPUT, saga_id)

    check_result(result, store, SagaState.FAILED, ExitCode.UNAVAILABLE)
    assert participants.sequence() == [*actions(*done), *compensations(*reversed(done))]
    assert_keys(participants, saga_id)
    stored = store.get(saga_id)
    assert stored is not None
    assert stored.steps[index].outcome is Outcome.NOT_DELIVERED
    assert stored.steps[index].attempts == 3
    assert "cannot connect" in (stored.steps[index].error or "")
    expected = {s: "compensated" for s in done} | {failing: "failed"} | dict.fromkeys(STEPS[index + 1 :], "pending")
    assert statuses(store, saga_id) == expected
    assert len(clock.sleeps) == 2


@pytest.mark.parametrize("cause", ["connect-timeout", "dns"])
def test_a_step_that_never_connected_fails_undelivered_uncompensated_exit_4(
    cause: str,
    store: Store,
    env: dict[str, str],
    clock: FakeClock,
    tmp_path: Path,
    participants: Participants,
    request: pytest.FixtureRequest,
) -> None:
    """A connect timeout or an unresolvable name never delivered the step: it is recorded
    failed (not_delivered), never compensated, the earlier steps are, and the exit code is 4."""
    definition = load(write_saga(tmp_path, timeout="300ms"))
    if cause == "dns":
        payment_url = "http://nonexistent.invalid/payment"
    else:
        payment_url = f"http://127.0.0.1:{request.getfixturevalue('blackhole_port')}/payment"
    env = {**env, "PAYMENT_URL": payment_url}
    saga_id = f"never-{cause}"

    result = make_engine(store, env, clock).run(definition, INPUT, saga_id)

    assert result.exit_code == 4
    check_result(result, store, SagaState.FAILED, ExitCode.UNAVAILABLE)
    assert participants.sequence() == [*actions("reserve"), *compensations("reserve")]
    stored = store.get(saga_id)
    assert stored is not None
    charge = stored.steps[1]
    assert (charge.status, charge.outcome, charge.attempts) == (StepStatus.FAILED, Outcome.NOT_DELIVERED, 3)
    assert charge.compensation_attempts == 0
    assert (charge.error or "").startswith(f"POST {payment_url}/charges: cannot connect: ")
    assert statuses(store, saga_id) == {
        "reserve": "compensated",
        "charge": "failed",
        "ship": "pending",
        "notify": "pending",
    }
    assert [r for r in flow(store, saga_id) if r[0] == "charge"] == forward_rows("charge", "failed", retries=2)


class _ByStep:
    """Routes one step's calls to another transport (same endpoint, different address)."""

    def __init__(self, normal: Transport, special: Transport, step: str) -> None:
        self.normal, self.special, self.step = normal, special, step

    def call(self, request: Request) -> Reply:
        return (self.special if request.step_name == self.step else self.normal).call(request)

    def close(self) -> None:
        self.normal.close()
        self.special.close()


def test_read_timeout_is_unknown_outcome_and_compensated(
    store: Store, env: dict[str, str], clock: FakeClock, tmp_path: Path, participants: Participants
) -> None:
    definition = load(write_saga(tmp_path, timeout="250ms"))
    participants.script("charge", "action", ok({"payment_id": "pay-9"}))
    participants.script("ship", "action", then=slow(2.0))

    result = make_engine(store, env, clock).run(definition, INPUT, "timeout-1")

    check_result(result, store, SagaState.FAILED, ExitCode.SAGA_FAILED)
    assert participants.sequence() == [
        *actions("reserve", "charge", "ship", "ship", "ship"),
        *compensations("ship", "charge", "reserve"),
    ]
    assert_keys(participants, "timeout-1")
    stored = store.get("timeout-1")
    assert stored is not None
    ship = stored.steps[2]
    assert (ship.status, ship.outcome, ship.attempts) == (StepStatus.COMPENSATED, Outcome.UNKNOWN, 3)
    assert "ship: " in (stored.last_error or "") and "no answer within 0.25s" in (stored.last_error or "")
    # The unknown step's compensation cannot know its result: original_result is null.
    unship = participants.calls_for("ship", "compensation")[0]
    assert unship.body["original_result"] is None


# -- why a saga failed is kept ---------------------------------------------------------------


def test_an_unknown_outcome_step_keeps_its_error_once_compensated(
    store: Store, env: dict[str, str], clock: FakeClock, definition: SagaDefinition, participants: Participants
) -> None:
    """Transient errors exhausted leave charge's outcome unknown: it is compensated (after one
    failed refund) and still says why the saga failed; the refund's error is gone once it is done."""
    participants.script("charge", "action", then=transient(503))
    participants.script("charge", "compensation", transient(500))

    result = make_engine(store, env, clock).run(definition, INPUT, "why-1")

    check_result(result, store, SagaState.FAILED, ExitCode.SAGA_FAILED)
    stored = store.get("why-1")
    assert stored is not None
    charge = stored.steps[1]
    assert (charge.status, charge.outcome, charge.compensation_attempts) == (
        StepStatus.COMPENSATED,
        Outcome.UNKNOWN,
        2,
    )
    why = f"POST {env['PAYMENT_URL']}/charges: HTTP 503: {{\"error\": \"try again\"}}"
    assert (charge.error, charge.compensation_error) == (why, None)
    assert stored.last_error == f"charge: {why}"
    assert stored.failed_step() is charge
    assert run_summary_line(stored) == f"saga why-1 failed at charge: {why}; compensated charge, reserve"
    assert ("action error at charge", f"{why} (after 3 attempts)") in show_document(stored).details


def test_a_compensation_error_is_kept_apart_from_the_action_error_and_resolve_clears_only_it(
    store: Store, env: dict[str, str], clock: FakeClock, definition: SagaDefinition, participants: Participants
) -> None:
    participants.script("charge", "action", then=transient(503))
    participants.script("charge", "compensation", then=transient(500))

    result = make_engine(store, env, clock).run(definition, INPUT, "why-2")

    check_result(result, store, SagaState.COMPENSATING, ExitCode.ATTENTION)
    stored = store.get("why-2")
    assert stored is not None
    charge = stored.steps[1]
    why = f"POST {env['PAYMENT_URL']}/charges: HTTP 503: {{\"error\": \"try again\"}}"
    refund = f"POST {env['PAYMENT_URL']}/refunds: HTTP 500: {{\"error\": \"try again\"}}"
    assert (charge.status, charge.error, charge.compensation_error) == (StepStatus.COMPENSATING, why, refund)
    assert stored.last_error == f"charge compensation: {refund}"
    details = show_document(stored).details
    assert ("action error at charge", f"{why} (after 3 attempts)") in details
    assert ("compensation error at charge", f"{refund} (after 3 attempts)") in details
    assert run_summary_line(stored) == (
        f"saga why-2 is compensating at charge: charge compensation: {refund};"
        " fix the participant, then 'sagactl resume why-2'"
    )

    resolved = make_engine(store, env, clock).resolve_step("why-2", "charge", reason="refunded by hand", user="bob")

    check_result(resolved, store, SagaState.FAILED, ExitCode.SAGA_FAILED)
    stored = store.get("why-2")
    assert stored is not None
    assert (stored.steps[1].error, stored.steps[1].compensation_error) == (why, None)
    assert stored.last_error == f"charge: {why}"
    assert run_summary_line(stored) == f"saga why-2 failed at charge: {why}; compensated charge, reserve"


def test_retry_succeeds_with_the_same_key_and_honours_backoff_and_retry_after(
    store: Store, env: dict[str, str], clock: FakeClock, definition: SagaDefinition, participants: Participants
) -> None:
    participants.script("charge", "action", transient(503), transient(429, retry_after=7), ok({"payment_id": "p"}))

    result = make_engine(store, env, clock).run(definition, INPUT, "retry-1")

    check_result(result, store, SagaState.COMPLETED, ExitCode.OK)
    assert participants.sequence() == actions("reserve", "charge", "charge", "charge", "ship", "notify")
    assert [c.key for c in participants.calls_for("charge")] == [key("retry-1", "charge")] * 3
    assert 0.25 <= clock.sleeps[0] <= 0.5  # backoff 500ms with equal jitter
    assert clock.sleeps[1] == 7.0  # Retry-After beats the 0.5-1s backoff (below max_backoff 10s)
    assert len(clock.sleeps) == 2
    stored = store.get("retry-1")
    assert stored is not None
    assert (stored.steps[1].attempts, stored.steps[1].error, stored.steps[1].result) == (3, None, {"payment_id": "p"})
    charge_rows = [r for r in flow(store, "retry-1") if r[0] == "charge"]
    assert charge_rows == forward_rows("charge", "completed", retries=2)


def test_retry_after_is_capped_by_max_backoff(
    store: Store, env: dict[str, str], clock: FakeClock, definition: SagaDefinition, participants: Participants
) -> None:
    participants.script("reserve", "action", transient(503, retry_after=3600))

    result = make_engine(store, env, clock).run(definition, INPUT, "cap-1")

    check_result(result, store, SagaState.COMPLETED, ExitCode.OK)
    assert clock.sleeps == [10.0]


# Retry number -> the capped exponential for initial 500ms, max 10s; the delay lies in its
# upper half (equal jitter).
CEILINGS = [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 10.0), (7, 10.0), (30, 10.0), (999, 10.0)]


@pytest.mark.parametrize(("attempt", "ceiling"), CEILINGS)
def test_backoff_delay_is_capped_exponential_with_equal_jitter(attempt: int, ceiling: float) -> None:
    policy = RetryPolicy(max_attempts=1000, initial_backoff=0.5, max_backoff=10.0)

    delays = [backoff_delay(policy, attempt, random.Random(seed)) for seed in range(200)]

    assert all(ceiling / 2 <= d <= ceiling for d in delays), (min(delays), max(delays))
    assert len(set(delays)) == 200  # each seed its own delay: no thundering herd
    # spread over the whole upper half, not bunched at one end of it
    assert min(delays) < ceiling * 0.55 and max(delays) > ceiling * 0.95


def test_backoff_delay_draws_from_the_engines_random() -> None:
    policy = RetryPolicy(max_attempts=5, initial_backoff=1.0, max_backoff=60.0)
    same = [backoff_delay(policy, 3, random.Random(11)) for _ in range(2)]
    assert same[0] == same[1]  # a seeded engine retries reproducibly
    assert backoff_delay(policy, 3, random.Random(12)) != same[0]


def test_retry_sleeps_grow_to_the_cap_and_vary_with_the_random_source(
    store: Store, env: dict[str, str], tmp_path: Path, participants: Participants
) -> None:
    """Through the engine: 7 transient answers before success, 7 sleeps, each within the
    upper half of min(2s, 500ms * 2^n); two engines seeded differently sleep differently."""
    path = tmp_path / "order.yaml"
    path.write_text(
        SAGA_YAML.replace("@TIMEOUT@", "5s").replace(
            "retry: {max_attempts: 3, initial_backoff: 500ms, max_backoff: 10s}",
            "retry: {max_attempts: 8, initial_backoff: 500ms, max_backoff: 2s}",
        )
    )
    definition = load(path)
    ceilings = [0.5, 1.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    runs = []
    for seed in (1, 2):
        participants.script("charge", "action", *[transient(503)] * 7, then=ok({"payment_id": "p"}))
        clock = FakeClock()
        engine = Engine(store=store, transport_factory=http_factory(env), clock=clock, env=env, rng=random.Random(seed))

        result = engine.run(definition, INPUT, f"backoff-{seed}")

        check_result(result, store, SagaState.COMPLETED, ExitCode.OK)
        assert len(clock.sleeps) == 7
        for sleep, ceiling in zip(clock.sleeps, ceilings, strict=True):
            assert ceiling / 2 <= sleep <= ceiling, clock.sleeps
        runs.append(clock.sleeps)
    assert runs[0] != runs[1]
    assert len(participants.calls_for("charge")) == 16  # 8 attempts per saga


# -- compensation failures and resume ---------------------------------------------------------


def test_failing_compensation_stops_in_strict_order_then_resume_finishes(
    store: Store, env: dict[str, str], clock: FakeClock, definition: SagaDefinition, participants: Participants
) -> None:
    participants.script("ship", "action", refuse(400))
    participants.script("charge", "compensation", then=transient(500))

    result = make_engine(store, env, clock).run(definition, INPUT, "stuck-1")

    check_result(result, store, SagaState.COMPENSATING, ExitCode.ATTENTION)
    assert participants.sequence() == [
        *actions("reserve", "charge", "ship"),
        *compensations("charge", "charge", "charge"),  # reserve's compensation waits
    ]
    stored = store.get("stuck-1")
    assert stored is not None
    assert statuses(store, "stuck-1") == {
        "reserve": "completed",
        "charge": "compensating",
        "ship": "failed",
        "notify": "pending",
    }
    assert stored.current_step == 1 and stored.current_step_name == "charge"
    assert "charge compensation" in (stored.last_error or "") and "HTTP 500" in (stored.last_error or "")
    assert stored.deadline_at == clock.now()  # due now: list --stuck finds it at once
    assert stored.lease_owner is None  # released: an operator can resume at once
    assert 0.5 <= clock.sleeps[0] <= 1 and 1 <= clock.sleeps[1] <= 2 and len(clock.sleeps) == 2

    participants.clear()
    participants.script("charge", "compensation")  # the participant recovered
    resumed = make_engine(store, env, clock).resume("stuck-1")

    check_result(resumed, store, SagaState.FAILED, ExitCode.SAGA_FAILED)
    assert participants.sequence() == compensations("charge", "reserve")
    assert_keys(participants, "stuck-1")
    stored = store.get("stuck-1")
    assert stored is not None
    assert stored.steps[1].compensation_attempts == 4
    assert statuses(store, "stuck-1") == {
        "reserve": "compensated",
        "charge": "compensated",
        "ship": "failed",
        "notify": "pending",
    }
    assert flow(store, "stuck-1")[-5:] == [
        ("charge", "compensating", "compensating"),
        ("charge", "compensating", "compensated"),
        ("reserve", "completed", "compensating"),
        ("reserve", "compensating", "compensated"),
        (None, "compensating", "failed"),
    ]


def test_refused_compensation_is_not_retried_and_waits_for_an_operator(
    store: Store, env: dict[str, str], clock: FakeClock, definition: SagaDefinition, participants: Participants
) -> None:
    participants.script("notify", "action", refuse())
    participants.script("ship", "compensation", refuse(409))

    result = make_engine(store, env, clock).run(definition, INPUT, "comp-refused")

    check_result(result, store, SagaState.COMPENSATING, ExitCode.ATTENTION)
    assert participants.sequence() == [*actions(*STEPS), *compensations("ship")]
    assert clock.sleeps == []


@pytest.mark.parametrize("status", [404, 410])
def test_compensation_not_found_or_gone_counts_as_done(
    status: int,
    store: Store,
    env: dict[str, str],
    clock: FakeClock,
    definition: SagaDefinition,
    participants: Participants,
) -> None:
    participants.script("notify", "action", refuse())
    participants.script("ship", "compensation", answer(status, {"error": "no such shipment"}))

    result = make_engine(store, env, clock).run(definition, INPUT, f"gone-{status}")

    check_result(result, store, SagaState.FAILED, ExitCode.SAGA_FAILED)
    assert participants.sequence() == [*actions(*STEPS), *compensations("ship", "charge", "reserve")]
    assert statuses(store, f"gone-{status}")["ship"] == "compensated"
    undone = [t for t in store.transitions(f"gone-{status}") if t.step_name == "ship" and t.new_state == "compensated"]
    assert undone[0].detail.get("already_undone") is True


def test_action_404_is_a_definitive_failure(
    store: Store, env: dict[str, str], clock: FakeClock, definition: SagaDefinition, participants: Participants
) -> None:
    participants.script("charge", "action", answer(404))

    result = make_engine(store, env, clock).run(definition, INPUT, "a404")

    check_result(result, store, SagaState.FAILED, ExitCode.SAGA_FAILED)
    assert participants.sequence() == [*actions("reserve", "charge"), *compensations("reserve")]


# -- crash mid-call, resume, leases -----------------------------------------------------------


class Crash(BaseException):
    """A simulated process death: not an Exception, so nothing in the engine handles it."""


class _CrashAfterSend:
    """Delivers the request for real, then 'dies' before the reply is recorded."""

    def __init__(self, inner: Transport, step: str, phase: str) -> None:
        self.inner, self.step, self.phase = inner, step, phase

    def call(self, request: Request) -> Reply:
        reply = self.inner.call(request)
        if request.step_name == self.step and request.phase.value == self.phase:
            raise Crash(f"died with {self.step} {self.phase} in flight")
        return reply

    def close(self) -> None:
        self.inner.close()


def crashing_factory(
    env: dict[str, str], step: str, phase: str = "action"
) -> Callable[[SagaDefinition, str], Transport]:
    base = http_factory(env)

    def factory(defn: SagaDefinition, endpoint: str) -> Transport:
        return _CrashAfterSend(base(defn, endpoint), step, phase)

    return factory


def test_resume_resends_the_in_flight_step_with_its_key_and_never_reruns_completed_ones(
    store: Store, env: dict[str, str], clock: FakeClock, definition: SagaDefinition, participants: Participants
) -> None:
    crashed = make_engine(store, env, clock, crashing_factory(env, "ship"))
    with pytest.raises(Crash):
        crashed.run(definition, INPUT, "crash-1")
    stored = store.get("crash-1")
    assert stored is not None
    assert stored.state is SagaState.PENDING
    assert statuses(store, "crash-1") == {
        "reserve": "completed",
        "charge": "completed",
        "ship": "executing",
        "notify": "pending",
    }
    assert stored.lease_owner is not None  # the dead driver still holds it

    # A live-looking holder (same host, this very pid) blocks until its lease expires.
    with pytest.raises(LeaseHeldError):
        make_engine(store, env, clock).resume("crash-1")
    clock.advance(5 + 30 + 1)  # the step timeout plus the lease margin
    resumer = make_engine(store, env, clock)
    result = resumer.resume("crash-1")

    check_result(result, store, SagaState.COMPLETED, ExitCode.OK)
    # every transition names the driver that wrote it: the crashed one up to ship's send, then the resumer
    owners = [t.detail["owner"] for t in store.transitions("crash-1")]
    assert owners == [crashed.owner] * 7 + [resumer.owner] * 5 and crashed.owner != resumer.owner
    assert participants.sequence() == actions("reserve", "charge", "ship", "ship", "notify")
    assert [c.key for c in participants.calls_for("ship")] == [key("crash-1", "ship")] * 2
    assert [r for r in flow(store, "crash-1") if r[0] == "ship"] == [
        ("ship", "pending", "executing"),
        ("ship", "executing", "executing"),
        ("ship", "executing", "completed"),
    ]


def test_resume_of_a_compensation_in_flight_resends_it_then_continues_in_reverse(
    store: Store, env: dict[str, str], clock: FakeClock, definition: SagaDefinition, participants: Participants
) -> None:
    participants.script("notify", "action", refuse())
    with pytest.raises(Crash):
        make_engine(store, env, clock, crashing_factory(env, "charge", "compensation")).run(
            definition, INPUT, "crash-2"
        )
    assert statuses(store, "crash-2") == {
        "reserve": "completed",
        "charge": "compensating",
        "ship": "compensated",
        "notify": "failed",
    }
    clock.advance(3600)

    result = make_engine(store, env, clock).resume("crash-2")

    check_result(result, store, SagaState.FAILED, ExitCode.SAGA_FAILED)
    assert participants.sequence() == [*actions(*STEPS), *compensations("ship", "charge", "charge", "reserve")]
    assert_keys(participants, "crash-2")


def test_resume_of_a_finished_saga_sends_nothing(
    store: Store, env: dict[str, str], clock: FakeClock, definition: SagaDefinition, participants: Participants
) -> None:
    make_engine(store, env, clock).run(definition, INPUT, "done-1")
    participants.clear()

    result = make_engine(store, env, clock).resume("done-1")

    assert (result.exit_code, result.message) == (ExitCode.OK, "saga done-1 is already completed")
    assert participants.calls == []
    check_result(result, store, SagaState.COMPLETED, ExitCode.OK)


def test_two_concurrent_resumes_never_both_drive_a_saga(
    store: Store,
    store_dsn: str,
    env: dict[str, str],
    clock: FakeClock,
    definition: SagaDefinition,
    participants: Participants,
) -> None:
    first = make_engine(store, env, clock)
    saga = first.start(definition, INPUT, "twice-1")
    store.release_lease(saga.saga_id, first.owner)  # recorded, not driven (run --detach)
    held = gate()
    participants.script("reserve", "action", held)
    outcome: dict[str, Any] = {}

    def drive() -> None:
        outcome["result"] = first.resume("twice-1")

    worker = threading.Thread(target=drive)
    worker.start()
    try:
        assert held.arrived.wait(10), "the first resume never reached the participant"
        other = open_store(store_dsn)  # a second process, as far as the log can tell
        try:
            with pytest.raises(LeaseHeldError, match="being driven by"):
                make_engine(other, env, FakeClock()).resume("twice-1")
        finally:
            other.close()
    finally:
        held.release()
        worker.join(30)

    check_result(outcome["result"], store, SagaState.COMPLETED, ExitCode.OK)
    assert participants.sequence() == actions(*STEPS)  # each step sent exactly once


def test_the_lease_covers_the_step_timeout_a_second_resume_31s_in_is_refused(
    store: Store,
    store_dsn: str,
    env: dict[str, str],
    tmp_path: Path,
    participants: Participants,
) -> None:
    """A live driver waiting on a 2-minute step keeps the saga for those 2 minutes: a second
    engine (another owner, a clock 31 s later: past a 30 s margin, well within the step's
    timeout) is refused, changes nothing and sends nothing."""
    definition = load(write_saga(tmp_path, timeout="2m"))
    held = gate(ok({"payment_id": "p"}))
    participants.script("charge", "action", held)
    clock = FakeClock()
    first = make_engine(store, env, clock)
    outcome: dict[str, Any] = {}

    def drive() -> None:
        try:
            outcome["result"] = first.run(definition, INPUT, "long-1")
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=drive)
    worker.start()
    try:
        assert held.arrived.wait(10), "the first driver never reached the participant"
        other = open_store(store_dsn)  # a second process, as far as the log can tell
        try:
            in_flight = other.get("long-1")
            assert in_flight is not None
            assert in_flight.lease_owner == first.owner
            assert in_flight.deadline_at == clock.now() + timedelta(minutes=2)
            assert in_flight.lease_expires_at is not None
            assert in_flight.lease_expires_at >= clock.now() + timedelta(minutes=2)

            later = FakeClock(clock.now())
            later.advance(31)
            second = make_engine(other, env, later)
            assert second.owner != first.owner
            with pytest.raises(LeaseHeldError, match="saga long-1 is being driven by "):
                second.resume("long-1")
            after = other.get("long-1")
            assert after is not None
            assert (after.lease_owner, after.lease_expires_at) == (first.owner, in_flight.lease_expires_at)
            assert participants.sequence() == actions("reserve", "charge")  # the refused resume sent nothing
        finally:
            other.close()
    finally:
        held.release()
        worker.join(30)

    assert "error" not in outcome, outcome
    check_result(outcome["result"], store, SagaState.COMPLETED, ExitCode.OK)
    assert participants.sequence() == actions(*STEPS)  # each step sent exactly once


def test_resume_uses_the_definition_snapshot_not_the_changed_file(
    store: Store, env: dict[str, str], clock: FakeClock, tmp_path: Path, participants: Participants
) -> None:
    path = write_saga(tmp_path)
    participants.script("ship", "action", refuse())
    participants.script("charge", "compensation", then=transient())
    first = make_engine(store, env, clock).run(load(path), INPUT, "snap-1")
    assert first.exit_code == ExitCode.ATTENTION

    # Someone edits the file: paths change and the charge step disappears.
    changed = SAGA_YAML.replace("/refunds", "/refunds-v2").replace("/reservations/release", "/v2/release")
    path.write_text(changed.replace("@TIMEOUT@", "5s"))
    participants.clear()
    participants.script("charge", "compensation")

    result = make_engine(store, env, clock).resume("snap-1")

    check_result(result, store, SagaState.FAILED, ExitCode.SAGA_FAILED)
    assert [(c.step, c.path) for c in participants.calls] == [
        ("charge", "/payment/refunds"),
        ("reserve", "/inventory/reservations/release"),
    ]


# -- fault injection at every write-ahead point -------------------------------------------------


class _CrashingStore:
    """Delegates to a real store; the k-th ``save`` dies before (or after) it commits."""

    def __init__(self, inner: Store, crash_at: int, after_commit: bool) -> None:
        self.inner = inner
        self.info = inner.info
        self.crash_at = crash_at
        self.after_commit = after_commit
        self.saves = 0
        self.crashed = False

    def save(self, saga: Any, transitions: Any, *, owner: str, steps: Any = None) -> None:
        self.saves += 1
        if self.saves == self.crash_at and not self.after_commit:
            self.crashed = True
            raise Crash(f"died before commit {self.saves}")
        self.inner.save(saga, transitions, owner=owner, steps=steps)
        if self.saves == self.crash_at:
            self.crashed = True
            raise Crash(f"died after commit {self.saves}")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


SCENARIOS: dict[str, tuple[Callable[[Participants], None], SagaState]] = {
    "completes": (lambda p: p.script("charge", "action", transient(), ok({"payment_id": "p"})), SagaState.COMPLETED),
    "ship-refused": (lambda p: p.script("ship", "action", then=refuse()), SagaState.FAILED),
    "notify-unknown": (
        lambda p: (p.script("notify", "action", then=transient()), p.script("charge", "compensation", transient())),
        SagaState.FAILED,
    ),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
@pytest.mark.parametrize("after_commit", [False, True], ids=["before-commit", "after-commit"])
@pytest.mark.slow
def test_a_crash_at_every_write_ahead_point_is_recovered_by_resume(
    scenario: str,
    after_commit: bool,
    store: Store,
    env: dict[str, str],
    definition: SagaDefinition,
    participants: Participants,
) -> None:
    setup, final = SCENARIOS[scenario]
    k = 0
    while True:
        k += 1
        saga_id = f"{scenario}-{int(after_commit)}-{k}"
        participants.clear()
        setup(participants)
        clock = FakeClock()
        crashing = _CrashingStore(store, k, after_commit)
        with contextlib.suppress(Crash):
            make_engine(crashing, env, clock).run(definition, INPUT, saga_id)  # type: ignore[arg-type]
        if not crashing.crashed:
            break  # k passed the last flush: every write-ahead point was covered
        before = store.get(saga_id)
        assert before is not None
        completed_at_crash = {s.name for s in before.steps if s.status is StepStatus.COMPLETED}
        seen = len(participants.calls)

        clock.advance(3600)  # the dead driver's lease expires; a new owner takes over
        result = make_engine(store, env, clock).resume(saga_id)

        assert result.saga.state is final, f"crash at save {k}"
        check_result(result, store, final, exit_code_for(result.saga))
        calls = participants.calls
        after = calls[seen:]
        for step in completed_at_crash:
            assert (step, "action") not in [c.what for c in after], f"{step} re-run after crash at save {k}"
        assert_keys(participants, saga_id)
        stored = store.get(saga_id)
        assert stored is not None
        for record in stored.steps:
            sent = participants.calls_for(record.name)
            if record.status is not StepStatus.PENDING:
                assert sent, f"{record.name} recorded {record.status} but never sent (save {k})"
        comp_order = [STEPS.index(str(c.step)) for c in calls if c.phase == "compensation"]
        dedup = [i for n, i in enumerate(comp_order) if n == 0 or comp_order[n - 1] != i]
        assert dedup == sorted(set(dedup), reverse=True), f"compensations out of order: {comp_order}"
        compensated = {s.name for s in stored.steps if s.status is StepStatus.COMPENSATED}
        assert {str(c.step) for c in calls if c.phase == "compensation"} == compensated
    assert k > 4  # at least one flush per step was crashed at


# -- misc ------------------------------------------------------------------------------------


def test_transitions_are_logged(
    store: Store, env: dict[str, str], clock: FakeClock, definition: SagaDefinition, participants: Participants
) -> None:
    # Own handler on the engine's logger: the CLI reconfigures the 'sagactl' logger (no
    # propagation), so caplog would depend on which tests ran before.
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("sagactl.engine")
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    participants.script("notify", "action", refuse())
    try:
        make_engine(store, env, clock).run(definition, INPUT, "log-1")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)

    lines = [r.getMessage() for r in records]
    assert "log-1 - none -> started" in lines
    assert "log-1 notify executing -> failed" in lines
    assert "log-1 - pending -> compensating" in lines
    assert "log-1 ship completed -> compensating" in lines
    assert lines[-1] == "log-1 - compensating -> failed"
    failed = next(r for r in records if r.getMessage() == "log-1 notify executing -> failed")
    assert (failed.saga_id, failed.step_name, failed.old_state, failed.new_state) == (
        "log-1",
        "notify",
        "executing",
        "failed",
    )  # type: ignore[attr-defined]


# -- robustness: what an interrupted or misconfigured driver leaves behind ------------------------


class _InterruptAfterSend(_CrashAfterSend):
    """Ctrl-C (SIGTERM maps to it too) while the step is in flight."""

    def call(self, request: Request) -> Reply:
        reply = self.inner.call(request)
        if request.step_name == self.step and request.phase.value == self.phase:
            raise KeyboardInterrupt
        return reply


def test_interrupt_saves_releases_the_lease_and_resume_continues_at_once(
    store: Store, env: dict[str, str], clock: FakeClock, definition: SagaDefinition, participants: Participants
) -> None:
    base = http_factory(env)

    def factory(defn: SagaDefinition, endpoint: str) -> Transport:
        return _InterruptAfterSend(base(defn, endpoint), "charge", "action")

    with pytest.raises(Interrupted) as raised:
        make_engine(store, env, clock, factory).run(definition, INPUT, "int-1")
    assert raised.value.exit_code == ExitCode.INTERRUPTED
    assert "sagactl resume int-1" in raised.value.one_line()
    stored = store.get("int-1")
    assert stored is not None and stored.lease_owner is None
    assert statuses(store, "int-1")["charge"] == "executing"

    result = make_engine(store, env, clock).resume("int-1")  # no lease to wait for

    check_result(result, store, SagaState.COMPLETED, ExitCode.OK)
    assert participants.sequence() == actions("reserve", "charge", "charge", "ship", "notify")


def test_a_driver_that_lost_its_lease_sends_nothing_more(
    store: Store, store_dsn: str, env: dict[str, str], definition: SagaDefinition, participants: Participants
) -> None:
    """A stalled driver whose lease expired and was taken over stops at its next write."""
    held = gate(ok({"payment_id": "late"}))
    participants.script("charge", "action", held)
    slow_clock = FakeClock()
    stalled = make_engine(store, env, slow_clock)
    outcome: dict[str, BaseException] = {}

    def drive() -> None:
        try:
            stalled.run(definition, INPUT, "lost-1")
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=drive)
    worker.start()
    try:
        assert held.arrived.wait(10)
        other = open_store(store_dsn)
        try:
            later = FakeClock(slow_clock.now())
            later.advance(3600)  # the stalled driver's lease has long expired
            taken = make_engine(other, env, later).resume("lost-1")
            assert taken.exit_code == ExitCode.OK
        finally:
            other.close()
    finally:
        held.release()
        worker.join(30)

    assert isinstance(outcome.get("error"), LeaseLostError)
    assert participants.sequence() == actions("reserve", "charge", "charge", "ship", "notify")
    check_result(taken, store, SagaState.COMPLETED, ExitCode.OK)


def test_resume_in_a_shell_missing_the_endpoint_url_changes_nothing(
    store: Store, env: dict[str, str], clock: FakeClock, definition: SagaDefinition, participants: Participants
) -> None:
    with pytest.raises(Crash):
        make_engine(store, env, clock, crashing_factory(env, "charge")).run(definition, INPUT, "env-1")
    clock.advance(3600)
    before = store.get("env-1")
    history = flow(store, "env-1")
    broken = {k: v for k, v in env.items() if k != "NOTIFY_URL"}

    with pytest.raises(MissingValueError, match="NOTIFY_URL"):
        make_engine(store, broken, clock).resume("env-1")

    after = store.get("env-1")
    assert before is not None and after is not None
    assert [s.to_dict() for s in after.steps] == [s.to_dict() for s in before.steps]
    assert flow(store, "env-1") == history  # nothing recorded, nothing sent
    assert participants.sequence() == actions("reserve", "charge")
    result = make_engine(store, env, clock).resume("env-1")  # fixed shell, at once
    check_result(result, store, SagaState.COMPLETED, ExitCode.OK)
    assert participants.sequence() == actions("reserve", "charge", "charge", "ship", "notify")


def test_resume_in_a_shell_missing_a_header_variable_does_not_fail_the_step(
    store: Store, env: dict[str, str], clock: FakeClock, tmp_path: Path, participants: Participants
) -> None:
    """A placeholder that cannot resolve is the operator's shell, not the participant's
    answer: the step must not be failed (and compensated) as 'never delivered'."""
    path = tmp_path / "order.yaml"
    path.write_text(
        SAGA_YAML.replace("@TIMEOUT@", "5s").replace(
            "action:       {path: /charges}", 'action:       {path: /charges, headers: {X-Key: "${env.PAY_KEY}"}}'
        )
    )
    definition = load(path)
    env = {**env, "PAY_KEY": "k"}
    participants.script("charge", "action", then=transient())
    with pytest.raises(Crash):
        make_engine(store, env, clock, crashing_factory(env, "reserve")).run(definition, INPUT, "env-2")
    clock.advance(3600)
    participants.script("charge", "action")

    with pytest.raises(MissingValueError, match="PAY_KEY"):
        make_engine(store, {k: v for k, v in env.items() if k != "PAY_KEY"}, clock).resume("env-2")

    assert statuses(store, "env-2") == {
        "reserve": "executing",
        "charge": "pending",
        "ship": "pending",
        "notify": "pending",
    }
    result = make_engine(store, env, clock).resume("env-2")
    check_result(result, store, SagaState.COMPLETED, ExitCode.OK)


def test_a_compensating_saga_resumes_without_variables_only_actions_need(
    store: Store, env: dict[str, str], clock: FakeClock, tmp_path: Path, participants: Participants
) -> None:
    path = tmp_path / "order.yaml"
    path.write_text(
        SAGA_YAML.replace("@TIMEOUT@", "5s").replace(
            "action:       {path: /charges}", 'action:       {path: /charges, headers: {X-Key: "${env.PAY_KEY}"}}'
        )
    )
    participants.script("ship", "action", refuse())
    participants.script("charge", "compensation", then=transient())
    first = make_engine(store, {**env, "PAY_KEY": "k"}, clock).run(load(path), INPUT, "env-3")
    assert first.exit_code == ExitCode.ATTENTION
    participants.script("charge", "compensation")

    result = make_engine(store, env, clock).resume("env-3")  # PAY_KEY only mattered to the action

    check_result(result, store, SagaState.FAILED, ExitCode.SAGA_FAILED)


def test_a_failed_step_found_in_the_log_is_never_sent_again(
    store: Store, env: dict[str, str], clock: FakeClock, definition: SagaDefinition, participants: Participants
) -> None:
    """An interrupt can land between recording a refusal and the switch to compensating;
    resume must compensate, not re-send the refused action."""
    engine = make_engine(store, env, clock)
    saga = engine.start(definition, INPUT, "refused-1")
    saga.state = SagaState.PENDING
    saga.current_step = 1
    reserve, charge = saga.steps[0], saga.steps[1]
    reserve.status, reserve.outcome, reserve.attempts, reserve.result = (
        StepStatus.COMPLETED,
        Outcome.SUCCEEDED,
        1,
        {"reservation_id": "r"},
    )
    charge.status, charge.outcome, charge.attempts, charge.error = (StepStatus.FAILED, Outcome.REFUSED, 1, "HTTP 422")
    saga.lease_owner = None
    store.save(saga, [], owner=engine.owner)

    result = make_engine(store, env, clock).resume("refused-1")

    check_result(result, store, SagaState.FAILED, ExitCode.SAGA_FAILED)
    assert participants.sequence() == compensations("reserve")


def test_the_run_result_and_the_log_agree_on_the_lease(
    store: Store, env: dict[str, str], clock: FakeClock, definition: SagaDefinition, participants: Participants
) -> None:
    result = make_engine(store, env, clock).run(definition, INPUT, "lease-1")
    stored = store.get("lease-1")
    assert stored is not None
    assert (
        (result.saga.lease_owner, result.saga.lease_expires_at)
        == (None, None)
        == (stored.lease_owner, stored.lease_expires_at)
    )


def test_a_transport_that_cannot_be_opened_keeps_what_is_known_and_frees_the_saga(
    store: Store, env: dict[str, str], clock: FakeClock, definition: SagaDefinition, participants: Participants
) -> None:
    base = http_factory(env)

    def factory(defn: SagaDefinition, endpoint: str) -> Transport:
        if endpoint == "notify":
            raise UsageError("endpoint notify: cannot open (simulated)")
        return base(defn, endpoint)

    with pytest.raises(UsageError, match="simulated"):
        make_engine(store, env, clock, factory).run(definition, INPUT, "open-1")

    stored = store.get("open-1")
    assert stored is not None
    assert stored.lease_owner is None  # the next resume need not wait for the lease
    # ship's result is kept; notify was never marked executing because nothing was sent
    assert statuses(store, "open-1") == {
        "reserve": "completed",
        "charge": "completed",
        "ship": "completed",
        "notify": "pending",
    }
    result = make_engine(store, env, clock).resume("open-1")
    check_result(result, store, SagaState.COMPLETED, ExitCode.OK)
    assert participants.sequence() == actions(*STEPS)  # nothing sent twice
