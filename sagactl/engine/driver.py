"""Driving one saga, holding its lease: forward through the steps, or back through the
compensations, one committed transition before every call (DESIGN section 3).

Engine (sagactl.engine.control) claims a saga and hands it to a Driver; the Driver owns the working
copy of the saga record until it commits its last transition and gives the lease up.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, cast

from sagactl.codec import storable_text
from sagactl.definitions.model import RetryPolicy, SagaDefinition, StepDef
from sagactl.definitions.placeholders import MissingValueError
from sagactl.engine.calls import backoff_delay, build_request, result_problem, send
from sagactl.engine.host import DriverHost, Parked, log_extra, release
from sagactl.engine.lease import lease_until
from sagactl.engine.traced import attempt_span, finish
from sagactl.errors import ExitCode, Interrupted, UnavailableError, UsageError
from sagactl.models import (
    Outcome,
    Phase,
    RunResult,
    SagaRecord,
    SagaState,
    StepRecord,
    StepStatus,
    Transition,
    Waiting,
    exit_code_for,
)
from sagactl.store.base import LeaseLostError
from sagactl.tracing import NOSPAN
from sagactl.transports.base import AsyncTransport, Reply, Status, Transport

log = logging.getLogger("sagactl.engine")



class Driver:
    """One pass of driving one saga, holding its lease. Not reused."""

    def __init__(self, engine: DriverHost, saga: SagaRecord, definition: SagaDefinition) -> None:
        self.engine = engine
        self.store = engine.store
        self.clock = engine.clock
        self.saga = saga
        self.definition = definition
        self.index = {record.name: i for i, record in enumerate(saga.steps)}
        self.dirty: set[int] = set()  # step records changed since the last commit
        self.pending: list[Transition] = []
        self.transports: dict[str, Transport] = {}
        self.sending: set[str] = set()  # endpoints whose transport sends without waiting (SQS)
        self.arrived: dict[tuple[str, Phase], Reply] = {}  # replies a worker received for this saga
        # Participant errors are masked here, before they reach the record, last_error or a
        # transition: the saga log never holds a secret a definition resolved.
        self.masker = engine.prepared.masker(definition, engine.env)
        if [s.name for s in definition.steps] != [s.name for s in saga.steps]:
            raise UsageError(f"saga {saga.saga_id}: stored steps do not match its definition snapshot")

    # -- recording -------------------------------------------------------------------------

    def transition(self, step: str | None, old: str | None, new: str, detail: dict[str, Any]) -> None:
        """Queue a transition for the next commit. Its detail names the lease owner that writes
        it: which driver did what, and proof that no two drivers ever interleaved one saga."""
        detail.setdefault("owner", self.engine.owner)
        self.pending.append(Transition(self.saga.saga_id, step, old, new, self.clock.now(), detail))

    def saga_to(self, state: SagaState, **detail: Any) -> None:
        if self.saga.state is state:
            return
        self.transition(None, self.saga.state.value, state.value, detail)
        self.saga.state = state

    def note(self, **detail: Any) -> None:
        """A transition row that records an operator action without a state change."""
        state = self.saga.state.value
        self.transition(None, state, state, detail)

    def touch(self, record: StepRecord) -> None:
        """``record`` changed: the next commit writes it."""
        self.dirty.add(self.index[record.name])

    def step_to(self, record: StepRecord, status: StepStatus, **detail: Any) -> None:
        self.touch(record)
        self.transition(record.name, record.status.value, status.value, detail)
        record.status = status

    def flush(self, busy_for: float | None, *, release: bool = False, wake_at: datetime | None = None) -> None:
        """Commit the saga row and pending transitions. ``busy_for``: seconds until the next
        answer is due (sets deadline_at and extends the lease); None when nothing is due.
        ``release``: give the lease up in the same commit (this driver is done); ``wake_at``:
        when a worker must take it up again (None: nothing is due until an operator acts)."""
        now = self.clock.now()
        saga = self.saga
        saga.updated_at = now
        saga.deadline_at = now + timedelta(seconds=busy_for) if busy_for is not None else None
        saga.wake_at = wake_at if release else None
        if release:
            saga.lease_owner = None
            saga.lease_expires_at = None
        else:
            saga.lease_owner = self.engine.owner
            saga.lease_expires_at = lease_until(now, busy_for)
        if self.engine.tags:
            self.pending = [dataclasses.replace(t, detail={**self.engine.tags, **t.detail}) for t in self.pending]
        self.store.save(saga, self.pending, owner=self.engine.owner, steps=self.dirty)
        self.dirty = set()
        written, self.pending = self.pending, []
        saga.transitions.extend(written)
        for t in written:
            old, step = t.old_state or "none", t.step_name or "-"
            log.info("%s %s %s -> %s", t.saga_id, step, old, t.new_state, extra=log_extra(t))
            if self.engine.observer:
                self.engine.observer(saga, t)

    # -- driving ---------------------------------------------------------------------------

    def drive(self) -> RunResult:
        root = self.engine.tracer.saga(self.saga) if self.saga.traceparent is None else NOSPAN
        try:
            return self._drive()
        except Parked as parked:
            wait = max(0.0, (parked.until - self.clock.now()).total_seconds())
            self.flush(wait, release=True, wake_at=parked.until)
            return RunResult(self.saga, exit_code_for(self.saga), f"saga {self.saga.saga_id} waits: {parked.why}")
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
        except UnavailableError as exc:
            # The saga log (or an endpoint's service) failed under us: what was committed last
            # stands, and a resume continues from there once the cause is fixed.
            self._save_and_release(quiet=True)
            saga_id = self.saga.saga_id
            then = f"then 'sagactl resume {saga_id}' continues the saga from its last committed state"
            raise UnavailableError(exc.message, hint=f"{exc.hint}; {then}" if exc.hint else then) from exc
        except Exception:
            # The store or a transport failed under us: keep what is known and free the saga,
            # so the next resume (from any host) need not wait for the lease to expire.
            self._save_and_release()
            raise
        finally:
            root.end(self.saga.state.value)
            for transport in self.transports.values():
                transport.close()

    def _save_and_release(self, *, quiet: bool = False) -> None:
        """Commit the transitions already true (results received) and give the lease up.
        ``quiet``: the error that stopped the driver already says the log failed."""
        try:
            if self.pending:
                self.flush(None, release=True)
                return
        except Exception:  # the log still holds the last committed state; resume starts there
            (log.info if quiet else log.warning)("could not save on stopping; resume continues from the last commit")
        try:
            release(self.store, self.saga, self.engine.owner)
        except Exception:  # the lease runs out, or a resume on this host takes it from the dead process
            log.info("could not give the lease up on stopping")

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
            opened = self.transports[step.endpoint] = self.engine.transport_factory(self.definition, endpoint.name)
            if isinstance(opened, AsyncTransport):  # a runtime protocol check: ~20 µs, once per endpoint
                self.sending.add(step.endpoint)
        return self.transports[step.endpoint]

    def _call(
        self, step: StepDef, record: StepRecord, phase: Phase, timeout: float, trace: Mapping[str, str]
    ) -> Reply | None:
        """One attempt (``trace``: its span's W3C context); the reply's error masked (the one
        place errors enter the record). None when a worker sent it over SQS and the answer comes
        on the reply queue (the saga is put aside meanwhile)."""
        try:
            request = build_request(self.saga, step, record, phase, timeout, self.engine.env, trace)
        except MissingValueError as exc:
            return Reply(Status.REFUSED, error=self.masker.text(exc.one_line()), delivered=False)
        transport = self._transport(step)
        if self.engine.park and step.endpoint in self.sending:
            reply = cast(AsyncTransport, transport).send(request)
        else:
            reply = send(transport, request)
        return self.masked(reply)

    def masked(self, reply: Reply | None) -> Reply | None:
        """``reply`` with its error masked (secrets never reach the saga log) and written as every
        store can hold it (foreign text: NUL characters, lone surrogates)."""
        if reply is not None and reply.error:
            return dataclasses.replace(reply, error=storable_text(self.masker.text(reply.error)))
        return reply

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
            self._stop_point()
            self.saga_to(SagaState.PENDING)
            if not self._execute(step, record):
                return False
        return True

    def _stop_point(self) -> None:
        """Between steps: a stopping worker puts the saga aside, due at once for another."""
        stop = self.engine.stop
        if stop is not None and stop.is_set() and not self.arrived:  # a reply in hand is applied first
            raise Parked(self.clock.now(), "the worker stopped; another takes it up")

    def _execute(self, step: StepDef, record: StepRecord) -> bool:
        """One step's action with retries. Leaves the record completed or failed."""
        reply, maybe_delivered = self._attempts(step, record, Phase.ACTION)
        record.finished_at = self.clock.now()
        if reply.status is Status.OK:
            problem = result_problem(reply)
            if problem is not None:
                return self._unstorable(record, problem)
            record.result = reply.result
            record.error = None
            record.outcome = Outcome.SUCCEEDED
            self.step_to(record, StepStatus.COMPLETED, attempt=record.attempts)
            return True
        if reply.status is Status.REFUSED:
            record.outcome = Outcome.REFUSED if reply.delivered else Outcome.NOT_DELIVERED
        else:
            record.outcome = Outcome.UNKNOWN if maybe_delivered else Outcome.NOT_DELIVERED
        timed_out = {"timed_out": True} if reply.timed_out else {}  # stats --steps counts timeouts
        self.step_to(
            record,
            StepStatus.FAILED,
            attempt=record.attempts,
            outcome=record.outcome.value,
            error=reply.error,
            **timed_out,
        )
        return False

    def _unstorable(self, record: StepRecord, problem: str) -> bool:
        """The participant did the step but answered with a result the saga log cannot hold
        (docs/guarantees.md). Like an answer lost in flight: failed with outcome unknown, so it
        is compensated (with a null original_result) instead of wedging the saga."""
        record.result = None
        record.outcome = Outcome.UNKNOWN
        record.error = f"the participant answered, but its result cannot be stored: {problem}"
        self.saga.last_error = f"{record.name}: {record.error}"
        self.step_to(
            record, StepStatus.FAILED, attempt=record.attempts, outcome=record.outcome.value, error=record.error
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
        reply and whether any attempt may have reached the participant. In worker mode a wait
        (an SQS reply, a backoff) raises Parked; taken up again, it continues where it was."""
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
        tries, reply, after = self._taken_up(record, phase, timeout)
        maybe_delivered = maybe_delivered or reply is not None
        while True:
            if reply is None:
                tries += 1
                self._record_attempt(record, phase, busy, after)
                span = attempt_span(self.engine.tracer, self.saga, self.definition, step, record, phase, after=after)
                try:
                    self.flush(timeout)
                    reply = self._call(step, record, phase, timeout, span.carrier)
                except BaseException:
                    span.end("interrupted")
                    raise
                finish(span, reply)
                if reply is None:  # sent over SQS by a worker: the answer comes on the reply queue
                    until = self.clock.now() + timedelta(seconds=timeout)
                    record.waiting = Waiting(phase, "reply", tries, until)
                    self.touch(record)
                    raise Parked(until, f"the reply to {record.name} {phase.value}")
            self.touch(record)  # whatever came back changes the record again
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
                after = "timeout" if reply.timed_out else "error"  # how the attempt retried ended
                if self.engine.park:  # a worker does not hold the saga through a backoff
                    until = self.clock.now() + timedelta(seconds=delay)
                    record.waiting = Waiting(phase, "retry", tries, until, after)
                    raise Parked(until, f"the retry of {record.name} {phase.value}")
                self.flush(delay + timeout)
                self.clock.sleep(delay)
                reply = None
                continue
            return reply, maybe_delivered

    def _taken_up(self, record: StepRecord, phase: Phase, timeout: float) -> tuple[int, Reply | None, str | None]:
        """Where a step put aside by a worker stands: the tries it has used, the answer that is
        in (a reply received, or none within the timeout), and how the attempt before a
        finished backoff ended ("timeout" or "error"); (0, None, None) for a fresh start."""
        waiting = record.waiting
        if waiting is None or waiting.phase is not phase:
            return 0, None, None
        record.waiting = None
        self.touch(record)
        if waiting.kind != "reply":
            return waiting.tries, None, waiting.after  # the backoff is over: the next attempt
        arrived = self.masked(self.arrived.pop((record.name, phase), None))
        if arrived is not None:
            step = self.definition.steps[self.index[record.name]]
            span = attempt_span(self.engine.tracer, self.saga, self.definition, step, record, phase, received=True)
            finish(span, arrived)
            return waiting.tries, arrived, None
        if waiting.until <= self.clock.now():
            return waiting.tries, Reply(Status.TRANSIENT, error=f"no reply within {timeout:g}s", timed_out=True), None
        return waiting.tries, None, None  # taken up before its time (a resume): send again, same key

    def _record_attempt(self, record: StepRecord, phase: Phase, busy: StepStatus, after: str | None = None) -> None:
        """Count one more attempt and record it (a transition) before it is sent; a retry's
        transition says how the attempt before it ended (``after``: "timeout" or "error")."""
        self.touch(record)
        if phase is Phase.ACTION:
            record.attempts += 1
            attempt = record.attempts
        else:
            record.compensation_attempts += 1
            attempt = record.compensation_attempts
        if record.status is not busy:
            if phase is Phase.ACTION:
                record.started_at = record.started_at or self.clock.now()
            self.step_to(record, busy, attempt=attempt)
        else:
            detail: dict[str, Any] = {"attempt": attempt, "retry": True}
            if after is not None:
                detail["after"] = after
            self.transition(record.name, busy.value, busy.value, detail)

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
            self._stop_point()
            if not self._undo(step, record):
                return False
        return True
