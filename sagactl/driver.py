"""Driving one saga, holding its lease: forward through the steps, or back through the
compensations, one committed transition before every call (DESIGN section 3).

Engine (sagactl.engine) claims a saga and hands it to a Driver; the Driver owns the working
copy of the saga record until it commits its last transition and gives the lease up.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any, Protocol

from sagactl.clock import Clock
from sagactl.definition import RetryPolicy, SagaDefinition, StepDef
from sagactl.errors import ExitCode, Interrupted, UsageError
from sagactl.lease import lease_until
from sagactl.models import (
    Outcome,
    Phase,
    RunResult,
    SagaRecord,
    SagaState,
    StepRecord,
    StepStatus,
    Transition,
    exit_code_for,
    idempotency_key,
)
from sagactl.placeholders import Context, MissingValueError, resolve
from sagactl.store.base import LeaseLostError, Store
from sagactl.transports.base import Reply, Request, Status, Transport

log = logging.getLogger("sagactl.engine")

TransportFactory = Callable[[SagaDefinition, str], Transport]
Observer = Callable[[SagaRecord, Transition], None]


class DriverHost(Protocol):
    """What a Driver takes from the engine that started it (read-only)."""

    @property
    def store(self) -> Store: ...

    @property
    def transport_factory(self) -> TransportFactory: ...

    @property
    def clock(self) -> Clock: ...

    @property
    def observer(self) -> Observer | None: ...

    @property
    def env(self) -> Mapping[str, str]: ...

    @property
    def rng(self) -> random.Random: ...

    @property
    def owner(self) -> str: ...


def release(store: Store, saga: SagaRecord, owner: str) -> None:
    """Give ``saga``'s lease up (if ``owner`` holds it) and forget it in the working copy."""
    store.release_lease(saga.saga_id, owner)
    saga.lease_owner = None
    saga.lease_expires_at = None


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


def log_extra(t: Transition) -> dict[str, Any]:
    return {
        "saga_id": t.saga_id,
        "step_name": t.step_name,
        "old_state": t.old_state,
        "new_state": t.new_state,
        "detail": t.detail,
    }


class Driver:
    """One pass of driving one saga, holding its lease. Not reused."""

    def __init__(self, engine: DriverHost, saga: SagaRecord, definition: SagaDefinition) -> None:
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
            saga.lease_expires_at = lease_until(now, busy_for)
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
                extra=log_extra(t),
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
                release(self.store, self.saga, self.engine.owner)
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
                failed = saga.failed_step()
                if failed is not None and failed.error:
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
        reply, maybe_delivered = self._attempts(step, record, Phase.ACTION)
        record.finished_at = self.clock.now()
        if reply.status is Status.OK:
            record.result = reply.result
            record.error = None
            record.outcome = Outcome.SUCCEEDED
            self.step_to(record, StepStatus.COMPLETED, attempt=record.attempts)
            return True
        if reply.status is Status.REFUSED:
            record.outcome = Outcome.REFUSED if reply.delivered else Outcome.NOT_DELIVERED
        else:
            record.outcome = Outcome.UNKNOWN if maybe_delivered else Outcome.NOT_DELIVERED
        self.step_to(
            record,
            StepStatus.FAILED,
            attempt=record.attempts,
            outcome=record.outcome.value,
            error=reply.error,
        )
        return False

    def _undo(self, step: StepDef, record: StepRecord) -> bool:
        """One step's compensation with retries. False when it cannot finish (exhausted or
        refused): the saga stops here and the compensations of earlier steps wait."""
        reply, _ = self._attempts(step, record, Phase.COMPENSATION)
        if reply.status is not Status.OK:
            return False
        record.compensated_at = self.clock.now()
        record.compensation_error = None  # the action's error stays: it is why the saga failed
        detail: dict[str, Any] = {"attempt": record.compensation_attempts}
        if reply.already_undone:
            detail["already_undone"] = True
        self.step_to(record, StepStatus.COMPENSATED, **detail)
        return True

    def _attempts(self, step: StepDef, record: StepRecord, phase: Phase) -> tuple[Reply, bool]:
        """Call ``phase`` of ``step`` until it answers OK, refuses, or its retry budget is
        spent; every attempt is committed (write-ahead) before it is sent. Returns the last
        reply and whether any attempt may have reached the participant."""
        action = phase is Phase.ACTION
        policy = step.retry if action else step.compensation_retry
        timeout = step.timeout if action else step.compensation_timeout
        busy = StepStatus.EXECUTING if action else StepStatus.COMPENSATING
        # Open the transport before anything is recorded: a transport that cannot be opened
        # must not leave a step 'executing' that was never sent.
        self._transport(step)
        # A step found executing was in flight when its driver stopped: it may have been
        # delivered, so it is re-sent (same key) at least once whatever its attempt count.
        maybe_delivered = record.status is StepStatus.EXECUTING
        tries = 0
        while True:
            tries += 1
            if action:
                record.attempts += 1
                attempt = record.attempts
            else:
                record.compensation_attempts += 1
                attempt = record.compensation_attempts
            if record.status is not busy:
                if action:
                    record.started_at = record.started_at or self.clock.now()
                self.step_to(record, busy, attempt=attempt)
            else:
                self.pending.append(
                    Transition(
                        self.saga.saga_id,
                        record.name,
                        busy.value,
                        busy.value,
                        self.clock.now(),
                        {"attempt": attempt, "retry": True},
                    )
                )
            self.flush(timeout)
            reply = self._call(step, record, phase, timeout)
            if reply.status is Status.OK:
                return reply, True
            maybe_delivered = maybe_delivered or reply.delivered
            if action:
                record.error = reply.error
            else:
                record.compensation_error = reply.error
            what = step.name if action else f"{step.name} compensation"
            self.saga.last_error = f"{what}: {reply.error}"
            if reply.status is Status.TRANSIENT and tries < policy.max_attempts:
                delay = self._delay(policy, tries, reply)
                self.flush(delay + timeout)
                self.clock.sleep(delay)
                continue
            return reply, maybe_delivered

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
