"""Crash safety for real: kill -9 the installed ``sagactl run`` while a call is in flight, then
``sagactl resume`` finishes the saga (same idempotency key re-sent, no completed step re-run),
on SQLite and PostgreSQL.

The participants block the chosen call (a gate) so the kill lands exactly while it is in
flight. The killed process's lease is still valid in the log; resume on the same host must
take it over (the holder's pid is dead, or a zombie nobody reaped yet), not wait for it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from sagactl.definitions.model import SagaDefinition
from sagactl.definitions.validation import load
from sagactl.engine.control import Engine
from sagactl.models import SagaState, utcnow
from sagactl.store import open_store
from sagactl.transports import Transport, open_transport
from tests.support.clock import FakeClock
from tests.support.participants import Gate, Participants, gate, ok, refuse

pytestmark = pytest.mark.slow

SAGA_YAML = """\
saga: Order
endpoints:
  inventory: {type: http, url: "${env.INVENTORY_URL}"}
  payment:   {type: http, url: "${env.PAYMENT_URL}"}
defaults:
  timeout: 20s
  retry: {max_attempts: 3, initial_backoff: 1ms, max_backoff: 5ms}
  compensation_retry: {max_attempts: 3, initial_backoff: 1ms, max_backoff: 5ms}
steps:
  - {name: reserve, endpoint: inventory, action: {path: /reserve}, compensation: {path: /release}}
  - {name: charge,  endpoint: payment,   action: {path: /charge},  compensation: {path: /refund}}
  - {name: ship,    endpoint: inventory, action: {path: /ship},    compensation: {path: /unship}}
  - {name: notify,  endpoint: payment,   action: {path: /notify},  compensation: {path: /retract}}
"""

STEPS = ["reserve", "charge", "ship", "notify"]


@dataclass
class Cli:
    cwd: Path
    env: dict[str, str]
    dsn: str

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "sagactl", *args, "--dsn", self.dsn]

    def start(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            self.argv(*args), cwd=self.cwd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.argv(*args), cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=60)


@pytest.fixture
def cli(tmp_path: Path, store_dsn: str, participants: Participants) -> Cli:
    (tmp_path / "order.yaml").write_text(SAGA_YAML)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGACTL_")}
    env.update(
        INVENTORY_URL=participants.url + "/inventory",
        PAYMENT_URL=participants.url + "/payment",
        NO_COLOR="1",
    )
    return Cli(tmp_path, env, store_dsn)


@pytest.fixture
def running(cli: Cli) -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test started; any still alive at the end are killed (by pid)."""
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


def wait_in_flight(held: Gate, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while not held.arrived.wait(0.05):
        if proc.poll() is not None:
            pytest.fail(
                f"sagactl run ended ({proc.returncode}) before the call: {proc.stderr.read() if proc.stderr else ''}"
            )
        if time.monotonic() > deadline:
            pytest.fail("the call never reached the participant")


def saga_json(stdout: str) -> dict[str, Any]:
    data = json.loads(stdout)
    return data[0] if isinstance(data, list) else data  # type: ignore[no-any-return]


@dataclass(frozen=True)
class Scenario:
    step: str
    phase: str
    before_kill: list[tuple[str, str]]
    after_resume: list[tuple[str, str]]
    final: SagaState
    exit_code: int
    refuse: str | None = None
    reap_before_resume: bool = True


def a(*steps: str) -> list[tuple[str, str]]:
    return [(s, "action") for s in steps]


def c(*steps: str) -> list[tuple[str, str]]:
    return [(s, "compensation") for s in steps]


SCENARIOS = {
    "step-1-in-flight": Scenario("reserve", "action", a("reserve"), a("reserve", *STEPS[1:]), SagaState.COMPLETED, 0),
    # the killed process is left a zombie during resume (no one has reaped it yet)
    "step-3-in-flight": Scenario(
        "ship",
        "action",
        a("reserve", "charge", "ship"),
        a("ship", "notify"),
        SagaState.COMPLETED,
        0,
        reap_before_resume=False,
    ),
    "compensation-in-flight": Scenario(
        "ship",
        "compensation",
        [*a(*STEPS), *c("ship")],
        c("ship", "charge", "reserve"),
        SagaState.FAILED,
        1,
        refuse="notify",
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_kill_9_mid_call_then_resume_completes(
    name: str, cli: Cli, participants: Participants, running: list[subprocess.Popen[str]]
) -> None:
    scenario = SCENARIOS[name]
    saga_id = f"crash-{name}"
    held = gate()
    participants.script(scenario.step, scenario.phase, held)
    if scenario.refuse:
        participants.script(scenario.refuse, "action", refuse())

    proc = cli.start("run", "order.yaml", "--saga-id", saga_id, "-o", "json")
    running.append(proc)
    wait_in_flight(held, proc)

    if name == "step-3-in-flight":
        # While the driver is alive its lease holds: a second driver is refused (exit 3).
        second = cli.run("resume", saga_id, "-o", "json")
        assert second.returncode == 3, second.stderr
        assert f"saga {saga_id} is being driven by {socket.gethostname()}:{proc.pid}:" in second.stderr

    os.kill(proc.pid, signal.SIGKILL)
    if scenario.reap_before_resume:
        assert proc.wait(timeout=10) == -signal.SIGKILL
    held.release()  # the participant's handler finishes; its answer goes nowhere
    assert participants.sequence() == scenario.before_kill

    store = open_store(cli.dsn)
    try:
        stored = store.get(saga_id)
        assert stored is not None
        # The dead driver's lease is still valid: only a take-over lets resume go on now.
        assert stored.lease_owner is not None and stored.lease_owner.startswith(f"{socket.gethostname()}:{proc.pid}:")
        assert stored.lease_expires_at is not None and stored.lease_expires_at > utcnow()
        completed = {s.name for s in stored.steps if s.status.value == "completed"}
    finally:
        store.close()

    participants.clear()
    resumed = cli.run("resume", saga_id, "-o", "json", "-v")
    if not scenario.reap_before_resume:
        assert proc.wait(timeout=10) == -signal.SIGKILL

    assert resumed.returncode == scenario.exit_code, resumed.stderr
    assert "took over the lease of dead process" in resumed.stderr
    assert participants.sequence() == scenario.after_resume
    for call in participants.calls:
        assert call.key == f"{saga_id}:{call.step}:{call.phase}"
    resent = participants.calls[0]
    assert (resent.step, resent.phase) == (scenario.step, scenario.phase)  # the in-flight call, same key
    for step in completed:
        assert (step, "action") not in participants.sequence(), f"completed step {step} re-run"
    doc = saga_json(resumed.stdout)
    assert doc["state"] == scenario.final.value
    if scenario.final is SagaState.FAILED:
        assert [s["status"] for s in doc["steps"]] == ["compensated", "compensated", "compensated", "failed"]
    else:
        assert [s["status"] for s in doc["steps"]] == ["completed"] * 4

    again = cli.run("resume", saga_id, "-o", "json")  # finished: nothing more is sent
    assert again.returncode == scenario.exit_code
    assert participants.sequence() == scenario.after_resume


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_step_exits_130_and_resume_completes(
    signum: signal.Signals, cli: Cli, participants: Participants, running: list[subprocess.Popen[str]]
) -> None:
    """SIGTERM or Ctrl-C while a step is in flight: exit 130, state saved, lease released;
    `sagactl resume` re-sends the in-flight step with its key and completes (exit 0)."""
    saga_id = f"sig-{signum.name}"
    held = gate()
    participants.script("charge", "action", held)

    # A child inherits an ignored SIGINT (pytest started in the background by a shell script);
    # a handled one arrives as the default, which Python turns into KeyboardInterrupt.
    inherited = signal.getsignal(signal.SIGINT)
    if inherited == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        proc = cli.start("run", "order.yaml", "--saga-id", saga_id, "-o", "json")
    finally:
        if inherited == signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    running.append(proc)
    wait_in_flight(held, proc)
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=30)
    held.release()

    assert proc.returncode == 130, stderr
    assert f"interrupted; saga {saga_id} is saved pending at charge" in stderr
    assert f"continue with 'sagactl resume {saga_id}'" in stderr
    assert "Traceback" not in stderr
    store = open_store(cli.dsn)
    try:
        stored = store.get(saga_id)
        assert stored is not None
        assert stored.state is SagaState.PENDING
        assert [s.status.value for s in stored.steps] == ["completed", "executing", "pending", "pending"]
        assert (stored.lease_owner, stored.lease_expires_at) == (None, None)  # given up on the way out
    finally:
        store.close()
    assert participants.sequence() == a("reserve", "charge")

    participants.clear()
    resumed = cli.run("resume", saga_id, "-o", "json", "-v")

    assert resumed.returncode == 0, resumed.stderr
    assert "took over" not in resumed.stderr  # nothing to take over: the lease was released
    doc = saga_json(resumed.stdout)
    assert (doc["saga_id"], doc["state"]) == (saga_id, "completed")
    assert [s["status"] for s in doc["steps"]] == ["completed"] * 4
    assert participants.sequence() == a("charge", "ship", "notify")  # reserve is not re-run
    assert participants.calls[0].key == f"{saga_id}:charge:action"  # the in-flight step, same key
    for call in participants.calls:
        assert call.key == f"{saga_id}:{call.step}:{call.phase}"


def test_a_live_driver_keeps_a_2m_step_from_a_cli_resume_31s_in(cli: Cli, participants: Participants) -> None:
    """The lease covers the step's timeout, not only a fixed margin: 31 s into a 2-minute
    step whose driver (this very process, alive) still waits, `sagactl resume` exits 3 and
    sends nothing. The driver's clock started 31 s ago, so no one waits 31 s for real."""
    (cli.cwd / "long.yaml").write_text(SAGA_YAML.replace("timeout: 20s", "timeout: 2m"))
    definition = load(cli.cwd / "long.yaml")
    held = gate(ok({"payment_id": "p"}))
    participants.script("charge", "action", held)

    def factory(defn: SagaDefinition, endpoint: str) -> Transport:
        return open_transport(defn.endpoints[endpoint], defn.base_dir, cli.env)

    store = open_store(cli.dsn)
    clock = FakeClock(utcnow() - timedelta(seconds=31))
    driver = Engine(store=store, transport_factory=factory, clock=clock, env=cli.env)
    outcome: dict[str, Any] = {}

    def drive() -> None:
        try:
            outcome["result"] = driver.run(definition, {}, "long-cli-1")
        except BaseException as exc:
            outcome["error"] = exc

    worker = threading.Thread(target=drive)
    worker.start()
    try:
        assert held.arrived.wait(10), "the driver never reached the participant"
        second = cli.run("resume", "long-cli-1", "-o", "json")
        assert second.returncode == 3, second.stderr
        assert second.stdout == ""
        assert f"saga long-cli-1 is being driven by {socket.gethostname()}:{os.getpid()}:" in second.stderr
        assert "took over" not in second.stderr
        assert participants.sequence() == a("reserve", "charge")  # the refused resume sent nothing
    finally:
        held.release()
        worker.join(30)
        store.close()

    assert "error" not in outcome, outcome
    assert outcome["result"].saga.state is SagaState.COMPLETED
    assert participants.sequence() == a(*STEPS)  # each step sent exactly once
