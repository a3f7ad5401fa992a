"""Workers at scale (issue 9's proof), real processes only: sagas recorded with one
`sagactl run FILE --inputs -`, driven by several `sagactl worker` processes (--concurrency 4),
one of them killed with SIGKILL while it holds sagas (frozen first, so what it holds is
known); an HTTP participant process (tests/support/shop.py) and a shipping service over SQS on
moto. PostgreSQL: 200 sagas, 3 workers, the shipping
service of tests/support/sqs_shop.py (it answers in batches: fewer moto calls); SQLite (one
machine): 40 sagas, 2 workers, the sample service (sample-configs/participants/sqs_service.py).
On a 2-CPU machine at load ~2 they take ~35 s and ~29 s, 10 s of each the surviving workers'
clean stop (their reply listeners' long poll).

Each saga's input plans its outcome: success, refusals at each step (http and SQS), transient
errors that succeed on retry, transient errors that exhaust the retries, a compensation that
fails once. Afterwards:

- every saga is terminal and in the state its input calls for, with exactly the steps that
  completed (or whose outcome is unknown) compensated, in reverse order;
- the participants' journals: each idempotency key acted on at most once (done or refused),
  every compensation that is due done exactly once, nothing sent past a refusal; a key
  answered twice (a ``duplicate``) only for a saga the killed worker held when it died;
- no two drivers interleaved one saga: every transition names its writer, and the writer
  changes only where a saga was put aside (an SQS command sent, a retry's backoff), after the
  submitting process, or once, from the killed worker to the one that took it over; the
  killed worker wrote nothing after its death.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pytest

from sagactl.models import SagaRecord, Transition
from sagactl.store import Store, open_store
from tests.support.postgres import fresh_database
from tests.support.shop import read_journal
from tests.support.sqs import Sqs

ROOT = Path(__file__).parents[2]
SQS_SERVICE = ROOT / "sample-configs" / "participants" / "sqs_service.py"

SAGA = """
saga: MixedOrder
endpoints:
  shop: {type: http, url: "${env.SHOP_URL}"}
  shipping: {type: sqs, queue: "${env.SHIPPING_QUEUE}", reply_queue: "${env.ORDER_REPLY_QUEUE}"}
defaults:
  timeout: 30s  # generous: a call that times out is sent again (a legitimate duplicate) on a loaded machine
  retry: {max_attempts: 3, initial_backoff: 10ms, max_backoff: 40ms}
  compensation_retry: {max_attempts: 3, initial_backoff: 10ms, max_backoff: 40ms}
steps:
  - name: reserve
    endpoint: shop
    action: {path: /reserve, body: {order_id: "${input.order_id}", plan: "${input.plan}"}}
    compensation: {path: /reserve/undo, body: {order_id: "${input.order_id}", plan: "${input.plan}"}}
  - name: create_shipment
    endpoint: shipping
    timeout: 60s
    compensation_timeout: 60s
    action:
      command: ShippingService.CreateShipment
      body: {order_id: "${input.order_id}", address: "${input.address}"}
    compensation: {command: ShippingService.CancelShipment, body: {order_id: "${input.order_id}"}}
  - name: confirm
    endpoint: shop
    action: {path: /confirm, body: {order_id: "${input.order_id}", plan: "${input.plan}"}}
    compensation: {path: /confirm/undo, body: {order_id: "${input.order_id}", plan: "${input.plan}"}}
"""
STEPS = ("reserve", "create_shipment", "confirm")
SQS_STEPS = {"create_shipment"}


@dataclass(frozen=True)
class Plan:
    """One kind of saga: what its input asks of the participants, and how it must end."""

    name: str
    plan: dict[str, str]
    state: str
    statuses: tuple[str, str, str]
    compensated: tuple[str, ...] = ()  # in the order they must be compensated
    address: str = "1 Main St"  # the shipping service refuses an empty address

    def transients(self) -> dict[tuple[str, str], int]:
        """(step, phase) -> the transient answers its key gets (no takeover in between)."""
        found = {}
        for what, how in self.plan.items():
            step, _, phase = what.partition(":")
            if how.startswith("flaky "):
                found[(step, phase or "action")] = int(how.split()[1])
            elif how == "down":
                found[(step, phase or "action")] = 3  # max_attempts
        return found


DONE = ("completed", "completed", "completed")
PLANS = [
    Plan("ok", {}, "completed", DONE),
    Plan("reserve refused", {"reserve": "refuse"}, "failed", ("failed", "pending", "pending")),
    Plan("reserve flaky", {"reserve": "flaky 1"}, "completed", DONE),
    Plan("shipment refused (SQS)", {}, "failed", ("compensated", "failed", "pending"), ("reserve",), address=""),
    Plan(
        "confirm refused",
        {"confirm": "refuse"},
        "failed",
        ("compensated", "compensated", "failed"),
        ("create_shipment", "reserve"),
    ),
    Plan(
        "confirm down (retries exhausted)",
        {"confirm": "down"},
        "failed",
        ("compensated", "compensated", "compensated"),  # its outcome is unknown: compensated too
        ("confirm", "create_shipment", "reserve"),
    ),
    Plan("confirm flaky", {"confirm": "flaky 2"}, "completed", DONE),
    Plan(
        "confirm refused, an undo fails once",
        {"confirm": "refuse", "reserve:compensation": "flaky 1"},
        "failed",
        ("compensated", "compensated", "failed"),
        ("create_shipment", "reserve"),
    ),
    Plan("ok", {}, "completed", DONE),
    Plan("reserve flaky twice", {"reserve": "flaky 2"}, "completed", DONE),
]


def stopped_holding(worker: subprocess.Popen[Any], held: Callable[[], set[str]]) -> bool:
    """Freeze ``worker``; True (left frozen) when it then holds a saga, else it runs on. The
    holdings are read twice, 50 ms apart, and must agree: a statement it had sent to the
    database before the freeze lands in between (nothing more is sent)."""
    worker.send_signal(signal.SIGSTOP)
    time.sleep(0.05)
    first = held()
    time.sleep(0.05)
    if first and held() == first:
        return True
    worker.send_signal(signal.SIGCONT)
    return False


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@contextmanager
def process(argv: list[str], env: dict[str, str], log: IO[str], **kwargs: Any) -> Iterator[subprocess.Popen[str]]:
    """A child process, stopped with SIGTERM at the end (SIGKILL if it does not stop)."""
    child = subprocess.Popen(argv, env=env, stderr=log, text=True, cwd=ROOT, **kwargs)
    try:
        yield child
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def owner(t: Transition) -> str:
    return str(t.detail.get("owner"))


def interleavings(history: list[Transition], victim: str) -> list[str]:
    """Every change of writer that is not a hand-over at a point where the saga was put aside."""
    wrong = []
    for before, after in itertools.pairwise(history):
        if owner(before) == owner(after):
            continue
        if before.old_state is None and before.new_state == "started":
            continue  # the submitting process recorded it; a worker drives it
        if owner(before).startswith(victim):
            continue  # taken over from the killed worker
        attempt = before.step_name is not None and before.new_state in ("executing", "compensating")
        same_step = after.step_name == before.step_name
        retry = after.new_state == before.new_state and bool(after.detail.get("retry"))
        if attempt and same_step and (before.step_name in SQS_STEPS or retry):
            continue  # sent over SQS, or backing off before a retry: put aside, anyone takes it up
        wrong.append(
            f"{before.step_name} {before.new_state} by {owner(before)}"
            f" -> {after.step_name} {after.new_state} by {owner(after)}"
        )
    return wrong


def check_saga(saga: SagaRecord, history: list[Transition], plan: Plan) -> None:
    assert saga.state.value == plan.state, (saga.saga_id, plan.name, saga.last_error)
    assert tuple(s.status.value for s in saga.steps) == plan.statuses, (saga.saga_id, plan.name)
    assert saga.lease_owner is None and saga.wake_at is None
    undone = [t.step_name for t in history if t.new_state == "compensated"]
    assert tuple(undone) == plan.compensated, (saga.saga_id, plan.name)  # strict reverse order


def check_journals(
    by_saga: dict[str, Plan],
    http: list[dict[str, Any]],
    sqs: list[dict[str, Any]],
    taken_over: set[str],
    describe: Callable[[str], str] = str,
) -> None:
    """Each key acted on at most once, exactly what each plan calls for; duplicates only where
    the killed worker died holding the saga (it may have sent the call in flight again)."""
    acted: Counter[tuple[str, str]] = Counter()  # (key, outcome) for done / refused
    duplicates: Counter[str] = Counter()  # saga_id -> duplicate calls
    transients: Counter[str] = Counter()  # key -> transient answers
    for entry in http:
        if entry["outcome"] in ("done", "refused"):
            acted[(entry["key"], entry["outcome"])] += 1
        elif entry["outcome"] == "duplicate":
            duplicates[entry["saga_id"]] += 1
        else:
            transients[entry["key"]] += 1
    for entry in sqs:
        if entry["outcome"] in ("done", "refused"):
            acted[(entry["key"], entry["outcome"])] += 1
        elif entry["outcome"] == "duplicate":
            duplicates[entry["key"].split(":", 1)[0]] += 1
    expected: Counter[tuple[str, str]] = Counter()
    for saga_id, plan in by_saga.items():
        for index, step in enumerate(STEPS):
            status = plan.statuses[index]
            if status == "pending":
                continue
            action = f"{saga_id}:{step}:action"
            if plan.plan.get(step) == "refuse" or (step == "create_shipment" and not plan.address):
                expected[(action, "refused")] += 1
            elif plan.plan.get(step) != "down":
                expected[(action, "done")] += 1
            if step in plan.compensated:
                expected[(f"{saga_id}:{step}:compensation", "done")] += 1
        if saga_id not in taken_over:
            for (step, phase), n in plan.transients().items():
                assert transients[f"{saga_id}:{step}:{phase}"] == n, (saga_id, plan.name, step, phase)
    assert acted == expected
    unexpected = [saga_id for saga_id in duplicates if saga_id not in taken_over]
    assert not unexpected, "\n".join(describe(saga_id) for saga_id in unexpected)
    assert all(n == 1 for n in duplicates.values()), duplicates  # at most the one call in flight


@dataclass
class Scenario:
    dsn: str
    sagas: int
    workers: int
    tmp: Path
    sqs: Sqs
    aws_env: dict[str, str]
    batched_sqs: bool = False  # tests/support/sqs_shop.py instead of the sample service


def run_scenario(s: Scenario) -> None:
    run = uuid.uuid4().hex[:8]
    names = {
        "INVENTORY_QUEUE": f"scale-inventory-{run}",
        "PAYMENT_QUEUE": f"scale-payment-{run}",
        "SHIPPING_QUEUE": f"scale-shipping-{run}",
        "ORDER_REPLY_QUEUE": f"scale-replies-{run}",
    }
    queues = {key: s.sqs.queue(name=name) for key, name in names.items()}
    service_dir = s.tmp / "sqs-service"
    sqs_journal = service_dir / "journal.jsonl"
    service_dir.mkdir()
    shop_journal = s.tmp / "shop.jsonl"
    definition = s.tmp / "mixed.yaml"
    definition.write_text(SAGA)
    env = {
        **os.environ,
        **s.aws_env,
        **names,
        "SAGACTL_DSN": s.dsn,
        "SQS_SERVICE_DIR": str(service_dir),
        "PYTHONPATH": str(ROOT),
    }
    env = {k: v for k, v in env.items() if k not in ("SAGACTL_CONFIG", "SAGACTL_CONTEXT")}
    logs = {name: (s.tmp / f"{name}.log").open("w") for name in ("shop", "sqs_service", "submit", "workers")}
    store: Store = open_store(s.dsn)
    with ExitStack() as stack:
        stack.callback(store.close)
        for log in logs.values():
            stack.callback(log.close)
        try:
            shop = stack.enter_context(
                process(
                    [sys.executable, "-m", "tests.support.shop", "--journal", str(shop_journal)],
                    env,
                    logs["shop"],
                    stdout=subprocess.PIPE,
                )
            )
            assert shop.stdout is not None
            env["SHOP_URL"] = f"http://127.0.0.1:{int(shop.stdout.readline())}"
            if s.batched_sqs:  # the same shipping service, answering 10 commands in 3 calls to moto
                shipping = [sys.executable, "-m", "tests.support.sqs_shop", names["SHIPPING_QUEUE"], str(sqs_journal)]
            else:
                shipping = [sys.executable, str(SQS_SERVICE)]
            stack.enter_context(process(shipping, env, logs["sqs_service"]))

            began = time.monotonic()
            # The workers start up while the sagas are recorded (they claim them as they come).
            worker_argv = [sys.executable, "-m", "sagactl", "worker", "--concurrency", "4", "--poll", "100ms"]
            workers = [stack.enter_context(process(worker_argv, env, logs["workers"])) for _ in range(s.workers)]
            victim = workers[0]
            victim_owner = f"{socket.gethostname()}:{victim.pid}:"

            def lap(what: str) -> None:  # where the time goes (shown with -s, and on failure)
                print(f"{time.monotonic() - began:6.1f}s {what}")

            plans = [PLANS[n % len(PLANS)] for n in range(s.sagas)]
            lines = "".join(
                json.dumps({"order_id": f"o-{n}", "plan": p.plan, "address": p.address}) + "\n"
                for n, p in enumerate(plans)
            )
            submitted = subprocess.run(
                [sys.executable, "-m", "sagactl", "run", str(definition), "--inputs", "-"],
                input=lines,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                cwd=ROOT,
                check=False,
            )
            assert submitted.returncode == 0, submitted.stderr
            ids = submitted.stdout.split()
            assert len(ids) == s.sagas == len(set(ids))
            by_saga = dict(zip(ids, plans, strict=True))
            lap(f"{s.sagas} sagas recorded")

            def finished() -> int:
                return sum(c.count for c in store.counts() if c.state.terminal)

            def held_by_victim() -> set[str]:
                return {saga_id for saga_id, by in store.held_on(socket.gethostname()) if by.startswith(victim_owner)}

            # Mid-way, while it holds sagas: SIGKILL, no chance to put anything aside.
            wait_for(lambda: finished() > 0, 120, "the workers to start")
            lap("first saga ended")
            # Frozen (SIGSTOP) before looking, so what it holds cannot change between the look and
            # the kill: a saga's step takes milliseconds, and one seen held a moment before the
            # kill could be released by then. Early, while every worker is busy with sagas still to
            # start (later most wait for SQS replies, held by no one, and a look rarely finds one).
            wait_for(lambda: stopped_holding(victim, held_by_victim), 60, "the victim to hold a saga")
            victim.kill()
            killed_at = datetime.now(UTC)
            victim.wait()
            taken_over = held_by_victim()  # it is dead: these wait for a takeover
            assert taken_over, "the killed worker held no saga when it died; nothing was taken over"
            lap(f"worker killed at {finished()} sagas ended, holding {len(taken_over)}")

            wait_for(lambda: finished() == s.sagas, 180, "every saga to end")
            # Replies the killed worker had received and not applied come back after their hold
            # and are deleted as answered already.
            replies = queues["ORDER_REPLY_QUEUE"]
            lap("every saga ended")
            wait_for(lambda: s.sqs.counts(replies) == (0, 0), 60, "the reply queue to drain")
            lap("reply queue drained")
            for worker in workers[1:]:  # they stop (up to 10 s: a reply long poll) while we check
                worker.send_signal(signal.SIGTERM)
            check_all(store, by_saga, victim_owner, killed_at, taken_over)
            http, shipping = read_journal(shop_journal), read_journal(sqs_journal)

            def describe(saga_id: str) -> str:  # a saga's story, for a failure report
                calls = [f"  {e['at']} {e['key']} {e['outcome']}" for e in http + shipping if saga_id in e["key"]]
                history = [
                    f"  {t.at:%H:%M:%S.%f} {t.step_name} {t.old_state}->{t.new_state} {t.detail}"
                    for t in store.transitions(saga_id)
                ]
                return "\n".join([f"saga {saga_id} ({by_saga[saga_id].name}):", *history, *calls])

            check_journals(by_saga, http, shipping, taken_over, describe)
            for worker in workers[1:]:
                assert worker.wait(timeout=60) == 0
            lap("checked; workers stopped")
        except BaseException:
            for log in logs.values():
                log.flush()
            for name in logs:
                print(f"--- {name}\n{(s.tmp / f'{name}.log').read_text()[-20000:]}")
            raise


def check_all(
    store: Store, by_saga: dict[str, Plan], victim_owner: str, killed_at: datetime, taken_over: set[str]
) -> None:
    """Every saga's end, its compensations and its writers (see the module docstring)."""
    wrong: dict[str, list[str]] = {}
    for saga_id, plan in by_saga.items():
        saga = store.get(saga_id)
        assert saga is not None
        history = store.transitions(saga_id)
        check_saga(saga, history, plan)
        if found := interleavings(history, victim_owner):
            wrong[saga_id] = found
        by_victim = [t for t in history if owner(t).startswith(victim_owner)]
        assert all(t.at <= killed_at for t in by_victim), saga_id  # nothing written after its death
        if saga_id in taken_over:  # claimed by the victim (maybe nothing written yet), ended by another
            assert not owner(history[-1]).startswith(victim_owner), saga_id
    assert not wrong, wrong


@pytest.fixture
def scale_pg(pg_admin_dsn: str) -> Iterator[str]:
    with fresh_database(pg_admin_dsn, "sagactl_scale") as dsn:
        yield dsn


@pytest.mark.slow
def test_200_sagas_3_workers_one_killed_on_postgres(
    scale_pg: str, sqs: Sqs, aws_env: dict[str, str], tmp_path: Path
) -> None:
    scenario = Scenario(dsn=scale_pg, sagas=200, workers=3, tmp=tmp_path, sqs=sqs, aws_env=aws_env, batched_sqs=True)
    run_scenario(scenario)


@pytest.mark.slow
def test_40_sagas_2_workers_one_killed_on_sqlite(sqs: Sqs, aws_env: dict[str, str], tmp_path: Path) -> None:
    run_scenario(
        Scenario(
            dsn=f"sqlite:///{tmp_path / 'saga_log.db'}", sagas=40, workers=2, tmp=tmp_path, sqs=sqs, aws_env=aws_env
        )
    )
