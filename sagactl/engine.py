"""The saga engine: run, resume, abort, resolve. Knows only the Store and Transport protocols.

Guarantees (DESIGN section 3):
- write-ahead: every transition is committed before the call it leads to is sent; a
  result is committed together with the next step's start, or on its own at the end;
- per-attempt timeouts, retries with exponential backoff and jitter on transient failures;
- compensation in strict reverse order over steps that completed or whose outcome is
  unknown; a compensation that cannot finish stops the saga in `compensating` and the
  earlier compensations wait;
- idempotency key ``{saga_id}:{step}:{phase}`` on every call, across retries and resumes;
- one driver per saga: a lease, extended with every commit, checked by every write.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sagactl.definition import RetryPolicy, SagaDefinition, StepDef, from_snapshot
from sagactl.errors import ExitCode, Interrupted, LeaseHeldError, NotFoundError, UsageError
from sagactl.models import (
    Outcome,
    Phase,
    SagaRecord,
    SagaState,
    StepRecord,
    StepStatus,
    Transition,
    idempotency_key,
    utcnow,
)
from sagactl.placeholders import Context, MissingValueError, resolve
from sagactl.store.base import LeaseLostError, Store
from sagactl.transports.base import Reply, Request, Status, Transport

log = logging.getLogger("sagactl.engine")

LEASE_MARGIN = 30.0  # seconds a lease outlives the deadline it was written with


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return utcnow()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


TransportFactory = Callable[[SagaDefinition, str], Transport]
Observer = Callable[[SagaRecord, Transition], None]


def backoff_delay(policy: RetryPolicy, attempt: int, rng: random.Random) -> float:
    """Delay before retry number ``attempt`` (1-based): exponential, capped, equal jitter.

    Half the capped exponential is fixed, half is random: retries spread out (no thundering
    herd) yet never collapse to zero.
    """
    ceiling = min(policy.max_backoff, policy.initial_backoff * (2 ** (attempt - 1)))
    return float(ceiling / 2 + rng.uniform(0, ceiling / 2))


def default_body(saga: SagaRecord, step: str, phase: Phase, original_result: Any) -> dict[str, Any]:
    """The seed protocol's shape: ``{saga_id, step_name, [original_result], ...input}``."""
    body: dict[str, Any] = {"saga_id": saga.saga_id, "step_name": step}
    if phase is Phase.COMPENSATION:
        body["original_result"] = original_result
    if isinstance(saga.data, dict):
        body.update({k: v for k, v in saga.data.items() if k not in body})
    elif saga.data is not None:
        body["input"] = saga.data
    return body


def make_owner() -> str:
    """``host:pid:nonce``: lets a resume on the same host see that the holder is dead."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _holder_is_dead(owner: str) -> bool:
    host, _, rest = owner.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive under another user, or a zombie
    return _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    """A process killed with -9 still answers kill(pid, 0) until its parent reaps it (a
    runbook that starts `sagactl run &` and resumes right after the kill sees exactly that)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rpartition(")")[2].split()
    except OSError:
        return False
    return bool(fields) and fields[0] in ("Z", "X")


@dataclass(slots=True)
class RunResult:
    saga: SagaRecord
    exit_code: ExitCode
    message: str | None = None


def exit_code_for(saga: SagaRecord) -> ExitCode:
    """completed 0; failed 1 (4 when the failing step's endpoint was unreachable); else 3."""
    if saga.state is SagaState.COMPLETED:
        return ExitCode.OK
    if saga.state is SagaState.FAILED:
        if any(s.status is StepStatus.FAILED and s.outcome is Outcome.NOT_DELIVERED for s in saga.steps):
            return ExitCode.UNAVAILABLE
        return ExitCode.SAGA_FAILED
    return ExitCode.ATTENTION


def preflight(
    definition: SagaDefinition,
    data: Any,
    env: Mapping[str, str],
    *,
    steps: Sequence[StepDef] | None = None,
    actions: bool = True,
) -> None:
    """Fail before anything is recorded or sent when input or environment lack what the saga
    names. ``steps``: only these steps and their endpoints (default: the whole definition);
    ``actions=False``: only their compensations (a saga that is compensating sends no action).
    """
    ctx = Context(saga_id="preflight", input=data, env=env)
    chosen = definition.steps if steps is None else tuple(steps)
    used = {step.endpoint for step in chosen}
    for endpoint in definition.endpoints.values():
        if steps is None or endpoint.name in used:
            resolve(endpoint.config, ctx)
    for step in chosen:
        specs = [step.action] if actions else []
        if step.compensation is not None:
            specs.append(step.compensation)
        for spec in specs:
            try:
                resolve(spec, ctx)
            except MissingValueError as exc:
                raise MissingValueError(f"step '{step.name}': {exc.message}", hint=exc.hint) from exc


@dataclass
class Engine:
    """Drives sagas against ``store``; transports come from ``transport_factory``."""

    store: Store
    transport_factory: TransportFactory
    clock: Clock = field(default_factory=SystemClock)
    observer: Observer | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    rng: random.Random = field(default_factory=random.Random)
    owner: str = field(default_factory=make_owner)

    # -- entry points ----------------------------------------------------------------------

    def start(self, definition: SagaDefinition, data: Any, saga_id: str | None = None) -> SagaRecord:
        """Record a new saga in state `started`, lease held by this engine. Nothing is sent."""
        preflight(definition, data, self.env)
        now = self.clock.now()
        saga = SagaRecord(
            saga_id=saga_id or str(uuid.uuid4()),
            saga_type=definition.name,
            state=SagaState.STARTED,
            data=data,
            steps=[StepRecord(name=s.name) for s in definition.steps],
            definition=definition.snapshot(),
            created_at=now,
            updated_at=now,
            current_step=0,
            lease_owner=self.owner,
            lease_expires_at=now + timedelta(seconds=LEASE_MARGIN),
        )
        first = Transition(saga.saga_id, None, None, SagaState.STARTED.value, now, {"owner": self.owner})
        self.store.create(saga, [first])
        log.info("%s - none -> started", saga.saga_id, extra=_log_extra(first))
        if self.observer:
            self.observer(saga, first)
        return saga

    def run(self, definition: SagaDefinition, data: Any, saga_id: str | None = None) -> RunResult:
        """Start a saga and drive it to an end (or to where an operator must act)."""
        saga = self.start(definition, data, saga_id)
        return self._drive(saga, definition)

    def resume(self, saga_id: str) -> RunResult:
        """Continue a saga from the log with its stored definition snapshot.

        Input and environment are checked against what is still to be sent before anything
        is touched: a shell that lacks a variable leaves the saga exactly as it was.
        """
        saga = self._claim(saga_id)
        if saga.state.terminal:
            self._release(saga)
            return RunResult(saga, exit_code_for(saga), f"saga {saga_id} is already {saga.state.value}")
        definition = from_snapshot(saga.definition)
        try:
            _preflight_remaining(definition, saga, self.env)
        except BaseException:
            self._release(saga)
            raise
        return self._drive(saga, definition)

    def abort(self, saga_id: str, *, reason: str, user: str) -> RunResult:
        """Stop forward progress and compensate now."""
        saga = self._claim(saga_id)
        if saga.state.terminal:
            self._release(saga)
            raise UsageError(f"saga {saga_id} is already {saga.state.value}; nothing to abort")
        definition = from_snapshot(saga.definition)
        try:
            preflight(definition, saga.data, self.env, steps=_to_compensate(definition, saga), actions=False)
        except BaseException:
            self._release(saga)
            raise
        driver = _Driver(self, saga, definition)
        if saga.state is not SagaState.COMPENSATING:
            driver.saga_to(SagaState.COMPENSATING, action="abort", by=user, reason=reason)
        else:
            driver.note(action="abort", by=user, reason=reason)
        return driver.drive()

    def resolve_step(self, saga_id: str, step: str, *, reason: str, user: str) -> RunResult:
        """Record a compensation done by hand, then continue compensating."""
        saga = self._claim(saga_id)
        try:
            record = saga.step(step)
        except KeyError:
            self._release(saga)
            names = ", ".join(s.name for s in saga.steps)
            raise NotFoundError(f"saga {saga_id} has no step '{step}' (steps: {names})") from None
        if saga.state is not SagaState.COMPENSATING or not record.needs_compensation():
            self._release(saga)
            raise UsageError(
                f"step '{step}' of saga {saga_id} is {record.status.value} and the saga is"
                f" {saga.state.value}: there is no compensation waiting to be resolved",
                hint="resolve applies to a saga in compensating; see 'sagactl show'",
            )
        definition = from_snapshot(saga.definition)
        earlier = [s for s in _to_compensate(definition, saga) if s.name != step]
        try:
            preflight(definition, saga.data, self.env, steps=earlier, actions=False)
        except BaseException:
            self._release(saga)
            raise
        driver = _Driver(self, saga, definition)
        driver.step_to(record, StepStatus.COMPENSATED, action="resolve", by=user, reason=reason)
        record.compensated_at = self.clock.now()
        record.error = None
        return driver.drive()

    # -- lease -----------------------------------------------------------------------------

    def _claim(self, saga_id: str) -> SagaRecord:
        """Load a saga and take its lease (from a dead holder on this host, too)."""
        saga = self.store.get(saga_id)
        if saga is None:
            raise NotFoundError(
                f"saga {saga_id} not found in {self.store.info.location}",
                hint="check the ID with 'sagactl list' and the store with --dsn",
            )
        now = self.clock.now()
        until = now + timedelta(seconds=LEASE_MARGIN)
        holder = self.store.acquire_lease(saga_id, self.owner, until, now)
        if holder is not None:
            if (
                holder.owner
                and _holder_is_dead(holder.owner)
                and self.store.take_over_lease(saga_id, self.owner, holder.owner, until)
            ):
                log.info("%s took over the lease of dead process %s", saga_id, holder.owner)
            else:
                expires = holder.expires_at.isoformat() if holder.expires_at else "unknown"
                raise LeaseHeldError(
                    f"saga {saga_id} is being driven by {holder.owner} (lease until {expires})",
                    hint="wait for that process to finish or stop it, then resume",
                )
        claimed = self.store.get(saga_id)
        assert claimed is not None
        claimed.transitions = []
        return claimed

    def _drive(self, saga: SagaRecord, definition: SagaDefinition) -> RunResult:
        return _Driver(self, saga, definition).drive()

    def _release(self, saga: SagaRecord) -> None:
        self.store.release_lease(saga.saga_id, self.owner)
        saga.lease_owner = None
        saga.lease_expires_at = None


def _to_compensate(definition: SagaDefinition, saga: SagaRecord) -> list[StepDef]:
    return [step for step, record in zip(definition.steps, saga.steps, strict=True) if record.needs_compensation()]


def _preflight_remaining(definition: SagaDefinition, saga: SagaRecord, env: Mapping[str, str]) -> None:
    """Check what a resume may still send: every step not completed (and any compensation)
    while going forward, only the compensations still due once compensating."""
    if saga.state is SagaState.COMPENSATING:
        preflight(definition, saga.data, env, steps=_to_compensate(definition, saga), actions=False)
        return
    pending = [s for s, r in zip(definition.steps, saga.steps, strict=True) if r.status is not StepStatus.COMPLETED]
    preflight(definition, saga.data, env, steps=pending)
    undoable = [s for s in definition.steps if s.compensation is not None]
    preflight(definition, saga.data, env, steps=undoable, actions=False)


def _log_extra(t: Transition) -> dict[str, Any]:
    return {
        "saga_id": t.saga_id,
        "step_name": t.step_name,
        "old_state": t.old_state,
        "new_state": t.new_state,
        "detail": t.detail,
    }


class _Driver:
    """One pass of driving one saga, holding its lease. Not reused."""

    def __init__(self, engine: Engine, saga: SagaRecord, definition: SagaDefinition) -> None:
        self.engine = engine
        self.store = engine.store
        self.clock = engine.clock
        self.saga = saga
        self.definition = definition
        self.prev_state = saga.state
        self.pending: list[Transition] = []
        self.transports: dict[str, Transport] = {}
        if [s.name for s in definition.steps] != [s.name for s in saga.steps]:
            raise UsageError(f"saga {saga.saga_id}: stored steps do not match its definition snapshot")

    # -- recording -------------------------------------------------------------------------

    def saga_to(self, state: SagaState, **detail: Any) -> None:
        if self.saga.state is state:
            return
        self.pending.append(
            Transition(self.saga.saga_id, None, self.saga.state.value, state.value, self.clock.now(), detail)
        )
        self.saga.state = state

    def note(self, **detail: Any) -> None:
        """A transition row that records an operator action without a state change."""
        state = self.saga.state.value
        self.pending.append(Transition(self.saga.saga_id, None, state, state, self.clock.now(), detail))

    def step_to(self, record: StepRecord, status: StepStatus, **detail: Any) -> None:
        old = record.status.value
        self.pending.append(
            Transition(self.saga.saga_id, record.name, old, status.value, self.clock.now(), detail)
        )
        record.status = status

    def flush(self, busy_for: float | None, *, release: bool = False) -> None:
        """Commit the saga row and pending transitions. ``busy_for``: seconds until the next
        answer is due (sets deadline_at and extends the lease); None when nothing is due.
        ``release``: give the lease up in the same commit (this driver is done)."""
        now = self.clock.now()
        saga = self.saga
        saga.updated_at = now
        saga.deadline_at = now + timedelta(seconds=busy_for) if busy_for is not None else None
        if release:
            saga.lease_owner = None
            saga.lease_expires_at = None
        else:
            saga.lease_owner = self.engine.owner
            saga.lease_expires_at = now + timedelta(seconds=(busy_for or 0.0) + LEASE_MARGIN)
        self.store.save(saga, self.pending, prev_state=self.prev_state, owner=self.engine.owner)
        self.prev_state = saga.state
        written, self.pending = self.pending, []
        saga.transitions.extend(written)
        for t in written:
            log.info(
                "%s %s %s -> %s",
                t.saga_id,
                t.step_name or "-",
                t.old_state or "none",
                t.new_state,
                extra=_log_extra(t),
            )
            if self.engine.observer:
                self.engine.observer(saga, t)

    # -- driving ---------------------------------------------------------------------------

    def drive(self) -> RunResult:
        try:
            return self._drive()
        except KeyboardInterrupt:
            self._save_and_release()
            saga = self.saga
            where = f" at {saga.current_step_name}" if saga.current_step_name else ""
            raise Interrupted(
                f"interrupted; saga {saga.saga_id} is saved {saga.state.value}{where}",
                hint=f"continue with 'sagactl resume {saga.saga_id}'",
            ) from None
        except LeaseLostError:
            raise  # another driver owns the saga now: write nothing more
        except Exception:
            # The store or a transport failed under us: keep what is known and free the saga,
            # so the next resume (from any host) need not wait for the lease to expire.
            self._save_and_release()
            raise
        finally:
            for transport in self.transports.values():
                transport.close()

    def _save_and_release(self) -> None:
        """Commit the transitions already true (results received) and give the lease up."""
        try:
            if self.pending:
                self.flush(None, release=True)
            else:
                self.engine._release(self.saga)
        except Exception:  # the log still holds the last committed state; resume starts there
            log.warning("could not save on stopping; resume continues from the last commit")

    def _drive(self) -> RunResult:
        saga = self.saga
        if saga.state in (SagaState.STARTED, SagaState.PENDING):
            if self._forward():
                self.saga_to(SagaState.COMPLETED)
                saga.current_step = None
                saga.last_error = None
                self.flush(None, release=True)
                return RunResult(saga, ExitCode.OK)
            self.saga_to(SagaState.COMPENSATING)
        if saga.state is SagaState.COMPENSATING:
            if self._compensate():
                self.saga_to(SagaState.FAILED)
                saga.current_step = None
                # Every compensation is done: the error that matters is why the saga failed,
                # not a compensation error that was since retried away or resolved by hand.
                failed = next((r for r in saga.steps if r.status is StepStatus.FAILED and r.error), None)
                if failed is not None:
                    saga.last_error = f"{failed.name}: {failed.error}"
                self.flush(None, release=True)
            else:
                # A compensation could not finish; the earlier ones wait (strict order). The
                # deadline is now: the saga needs an operator and `list --stuck` shows it at once.
                self.flush(0.0, release=True)
        return RunResult(saga, exit_code_for(saga))

    def _transport(self, step: StepDef) -> Transport:
        if step.endpoint not in self.transports:
            endpoint = self.definition.endpoints[step.endpoint]
            self.transports[step.endpoint] = self.engine.transport_factory(self.definition, endpoint.name)
        return self.transports[step.endpoint]

    def _request(self, step: StepDef, record: StepRecord, phase: Phase, timeout: float) -> Request:
        spec = step.action if phase is Phase.ACTION else (step.compensation or {})
        results = {r.name: r.result for r in self.saga.steps if r.result is not None}
        ctx = Context(saga_id=self.saga.saga_id, input=self.saga.data, results=results, env=self.engine.env)
        resolved = resolve({k: v for k, v in spec.items() if k != "body"}, ctx)
        if "body" in spec:
            body = resolve(spec["body"], ctx)
        else:
            body = default_body(self.saga, step.name, phase, record.result)
        return Request(
            saga_id=self.saga.saga_id,
            step_name=step.name,
            phase=phase,
            idempotency_key=idempotency_key(self.saga.saga_id, step.name, phase),
            spec=resolved,
            body=body,
            timeout=timeout,
        )

    def _call(self, step: StepDef, record: StepRecord, phase: Phase, timeout: float) -> Reply:
        try:
            request = self._request(step, record, phase, timeout)
        except MissingValueError as exc:
            return Reply(Status.REFUSED, error=exc.one_line(), delivered=False)
        return self._transport(step).call(request)

    def _forward(self) -> bool:
        """Run the remaining steps in order. False when a step failed (compensate)."""
        saga = self.saga
        for index, step in enumerate(self.definition.steps):
            record = saga.steps[index]
            if record.status is StepStatus.COMPLETED:
                continue
            saga.current_step = index
            if record.status is StepStatus.FAILED:
                # Its failure is already recorded (an interrupt landed before the switch to
                # compensating was committed): compensate; a refused action is never re-sent.
                return False
            self.saga_to(SagaState.PENDING)
            if not self._execute(step, record):
                return False
        return True

    def _execute(self, step: StepDef, record: StepRecord) -> bool:
        """One step's action with retries. Leaves the record completed or failed."""
        policy = step.retry
        # Open the transport before anything is recorded: a transport that cannot be opened
        # must not leave a step 'executing' that was never sent.
        self._transport(step)
        # A step found executing was in flight when its driver stopped: it may have been
        # delivered, so it is re-sent (same key) at least once whatever its attempt count.
        maybe_delivered = record.status is StepStatus.EXECUTING
        tries = 0
        while True:
            tries += 1
            record.attempts += 1
            if record.status is not StepStatus.EXECUTING:
                record.started_at = record.started_at or self.clock.now()
                self.step_to(record, StepStatus.EXECUTING, attempt=record.attempts)
            elif tries > 1 or maybe_delivered:
                self.pending.append(
                    Transition(
                        self.saga.saga_id,
                        record.name,
                        "executing",
                        "executing",
                        self.clock.now(),
                        {"attempt": record.attempts, "retry": True},
                    )
                )
            self.flush(step.timeout)
            reply = self._call(step, record, Phase.ACTION, step.timeout)
            if reply.status is Status.OK:
                record.result = reply.result
                record.error = None
                record.outcome = Outcome.SUCCEEDED
                record.finished_at = self.clock.now()
                self.step_to(record, StepStatus.COMPLETED, attempt=record.attempts)
                return True
            maybe_delivered = maybe_delivered or reply.delivered
            record.error = reply.error
            self.saga.last_error = f"{step.name}: {reply.error}"
            if reply.status is Status.TRANSIENT and tries < policy.max_attempts:
                delay = self._delay(policy, tries, reply)
                self.flush(delay + step.timeout)
                self.clock.sleep(delay)
                continue
            if reply.status is Status.REFUSED:
                record.outcome = Outcome.REFUSED if reply.delivered else Outcome.NOT_DELIVERED
            else:
                record.outcome = Outcome.UNKNOWN if maybe_delivered else Outcome.NOT_DELIVERED
            record.finished_at = self.clock.now()
            self.step_to(
                record,
                StepStatus.FAILED,
                attempt=record.attempts,
                outcome=record.outcome.value,
                error=reply.error,
            )
            return False

    def _delay(self, policy: RetryPolicy, tries: int, reply: Reply) -> float:
        delay = backoff_delay(policy, tries, self.engine.rng)
        if reply.retry_after is not None:
            delay = max(delay, min(reply.retry_after, policy.max_backoff))
        return delay

    def _compensate(self) -> bool:
        """Compensate in strict reverse order. False when one cannot finish (saga stays
        compensating, earlier compensations wait)."""
        saga = self.saga
        for index in range(len(self.definition.steps) - 1, -1, -1):
            step = self.definition.steps[index]
            record = saga.steps[index]
            if not record.needs_compensation():
                continue
            if step.compensation is None:
                if record.status is StepStatus.EXECUTING:
                    # in flight when the driver stopped, nothing defined to undo it
                    record.outcome = Outcome.UNKNOWN
                    self.step_to(record, StepStatus.FAILED, outcome="unknown", note="no compensation defined")
                continue
            saga.current_step = index
            if not self._undo(step, record):
                return False
        return True

    def _undo(self, step: StepDef, record: StepRecord) -> bool:
        policy = step.compensation_retry
        self._transport(step)
        tries = 0
        while True:
            tries += 1
            record.compensation_attempts += 1
            if record.status is not StepStatus.COMPENSATING:
                self.step_to(record, StepStatus.COMPENSATING, attempt=record.compensation_attempts)
            else:
                self.pending.append(
                    Transition(
                        self.saga.saga_id,
                        record.name,
                        "compensating",
                        "compensating",
                        self.clock.now(),
                        {"attempt": record.compensation_attempts, "retry": True},
                    )
                )
            self.flush(step.compensation_timeout)
            reply = self._call(step, record, Phase.COMPENSATION, step.compensation_timeout)
            if reply.status is Status.OK:
                record.compensated_at = self.clock.now()
                record.error = None
                detail: dict[str, Any] = {"attempt": record.compensation_attempts}
                if reply.already_undone:
                    detail["already_undone"] = True
                self.step_to(record, StepStatus.COMPENSATED, **detail)
                return True
            record.error = reply.error
            self.saga.last_error = f"{step.name} compensation: {reply.error}"
            if reply.status is Status.TRANSIENT and tries < policy.max_attempts:
                delay = self._delay(policy, tries, reply)
                self.flush(delay + step.compensation_timeout)
                self.clock.sleep(delay)
                continue
            # Exhausted or refused: stop here; _drive records it (deadline now) and the
            # compensations of earlier steps wait.
            return False
