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
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sagactl.clock import Clock, SystemClock
from sagactl.codec import storable
from sagactl.definitions.model import SagaDefinition, StepDef
from sagactl.engine.calls import Prepared
from sagactl.engine.checks import check_input, preflight
from sagactl.engine.driver import Driver
from sagactl.engine.host import Observer, TransportFactory, log_extra, release
from sagactl.engine.lease import holder_is_dead, lease_until, make_owner
from sagactl.errors import ExitCode, LeaseHeldError, NotFoundError, UsageError
from sagactl.models import (
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
from sagactl.store.base import LeaseLostError, Store
from sagactl.tracing import NOOP, NOSPAN, Span, Tracing
from sagactl.transports.base import Reply

log = logging.getLogger("sagactl.engine")
_ORIGINAL: Any = object()  # rerun: the failed saga's own input


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
    park: bool = False  # worker mode: SQS replies and backoffs are awaited without holding the saga
    stop: threading.Event | None = None  # set when a worker stops: sagas are put aside between steps
    tags: Mapping[str, Any] = field(default_factory=dict)  # into every transition's detail (a bulk job)
    tracer: Tracing = NOOP  # spans of sagas, attempts and operator actions (off: nothing happens)
    prepared: Prepared = field(default_factory=Prepared, repr=False)  # definitions and maskers, once each

    # -- entry points ----------------------------------------------------------------------

    def start(
        self, definition: SagaDefinition, data: Any, saga_id: str | None = None, *, detached: bool = False
    ) -> SagaRecord:
        """Record a new saga in state `started`, lease held by this engine; ``detached``:
        without a lease, due at once for a worker (or a resume). Nothing is sent. Input or a
        definition the saga log cannot hold is refused before anything is recorded."""
        saga, root = self._record(definition, data, saga_id, detached=detached)
        root.end(saga.state.value)
        return saga

    def _record(
        self, definition: SagaDefinition, data: Any, saga_id: str | None, *, detached: bool
    ) -> tuple[SagaRecord, Span]:
        """``start`` with the saga's root span still open (its context recorded with the saga)."""
        saga, first = self._new_saga(definition, data, saga_id, detached=detached)
        root = self.tracer.saga(saga)
        try:
            self.store.create(saga, [first])
        except BaseException:
            root.end("not_recorded")
            raise
        self._started(saga, first)
        return saga, root

    def _new_saga(
        self, definition: SagaDefinition, data: Any, saga_id: str | None, *, detached: bool, **detail: Any
    ) -> tuple[SagaRecord, Transition]:
        """A new saga record and its first transition (``detail`` added to it), checked as
        ``start`` promises; nothing recorded yet."""
        check_input(definition, data)
        snapshot = definition.snapshot()
        for value, what in ((data, "input"), (snapshot, "definition")):
            problem = storable(value, what)
            if problem is not None:
                raise UsageError(f"the saga log cannot store this {what}: {problem}")
        preflight(definition, data, self.env)
        now = self.clock.now()
        saga = SagaRecord(
            saga_id=saga_id or str(uuid.uuid4()),
            saga_type=definition.name,
            state=SagaState.STARTED,
            data=data,
            steps=[StepRecord(name=s.name) for s in definition.steps],
            definition=snapshot,
            created_at=now,
            updated_at=now,
            current_step=0,
            lease_owner=None if detached else self.owner,
            lease_expires_at=None if detached else lease_until(now),
            wake_at=now if detached else None,
        )
        first = Transition(saga.saga_id, None, None, SagaState.STARTED.value, now, {"owner": self.owner, **detail})
        return saga, first

    def _started(self, saga: SagaRecord, first: Transition) -> None:
        log.info("%s - none -> started", saga.saga_id, extra=log_extra(first))
        if self.observer:
            self.observer(saga, first)

    def rerun(
        self,
        failed_id: str,
        *,
        definition: SagaDefinition | None = None,
        data: Any = _ORIGINAL,
        user: str,
        detached: bool = False,
    ) -> RunResult:
        """Record a new saga (new ID, so fresh idempotency keys) that runs saga ``failed_id``
        again, with its input (or ``data``) under its stored definition (or ``definition``), and
        link the two both ways in one commit, then drive it like ``run`` (``detached``: only
        record it, due for a worker). Only a saga that ended failed, once: any other is refused
        (UsageError) and nothing is recorded."""
        failed = self.store.get(failed_id)
        if failed is None:
            raise NotFoundError(
                f"saga {failed_id} not found in {self.store.info.location}",
                hint="check the ID with 'sagactl list --state failed' and the store with --dsn",
            )
        _check_rerunnable(failed)
        chosen = definition or self.prepared.definition(failed.definition)
        if chosen.name != failed.saga_type:
            raise UsageError(
                f"the definition is of saga type '{chosen.name}', saga {failed_id} is a '{failed.saga_type}'",
                hint="pass the definition of the same saga type",
            )
        with self.tracer.action("rerun", saga_id=failed_id, by=user) as act:
            act.link(failed.traceparent, failed.tracestate, saga_id=failed_id)
            given = failed.data if data is _ORIGINAL else data
            return self._rerun(failed, chosen, given, user=user, detached=detached)

    def _rerun(
        self, failed: SagaRecord, chosen: SagaDefinition, given: Any, *, user: str, detached: bool
    ) -> RunResult:
        failed_id = failed.saga_id
        saga, first = self._new_saga(chosen, given, None, detached=detached, rerun_of=failed_id, by=user)
        root = self.tracer.saga(saga)  # a child of the rerun's span
        saga.rerun_of = failed_id
        note = Transition(
            failed_id, None, SagaState.FAILED.value, SagaState.FAILED.value, first.at,
            {"action": "rerun", "rerun_as": saga.saga_id, "by": user},
        )  # fmt: skip
        try:
            linked = self.store.create_rerun(saga, [first], note)
        except BaseException:
            root.end("not_recorded")
            raise
        if not linked:
            root.end("not_recorded")
            now = self.store.get(failed_id)
            if now is None:
                raise NotFoundError(f"saga {failed_id} was removed from {self.store.info.location} meanwhile")
            _check_rerunnable(now)
            raise UsageError(f"saga {failed_id} changed while its rerun was recorded; nothing was recorded")
        self._started(saga, first)
        if detached:
            root.end(saga.state.value)
            return RunResult(saga, ExitCode.OK)
        return self._drive(saga, chosen, root)

    def run(self, definition: SagaDefinition, data: Any, saga_id: str | None = None) -> RunResult:
        """Start a saga and drive it to an end (or to where an operator must act)."""
        saga, root = self._record(definition, data, saga_id, detached=False)
        return self._drive(saga, definition, root)

    def resume(self, saga_id: str, *, held: bool = False) -> RunResult:
        """Continue a saga from the log with its stored definition snapshot. ``held``: this
        engine's owner took the lease already (a worker's claim), so it is not taken again.

        Input and environment are checked against what is still to be sent before anything
        is touched: a shell that lacks a variable leaves the saga exactly as it was.
        """
        if held:  # a worker's: not an operator's action
            return self._resume(saga_id, held=True)
        with self.tracer.action("resume", saga_id=saga_id, by=self.tags.get("by"), job=self.tags.get("job")) as act:
            return self._resume(saga_id, held=False, act=act)

    def _resume(self, saga_id: str, *, held: bool, act: Span = NOSPAN) -> RunResult:
        with self._claimed(saga_id, held=held, act=act) as saga:
            if saga.state.terminal:
                self._release(saga)
                return RunResult(saga, exit_code_for(saga), f"saga {saga_id} is already {saga.state.value}")
            definition = self.prepared.definition(saga.definition)
            _preflight_remaining(definition, saga, self.env)
        driver = Driver(self, saga, definition)
        if self.tags:  # a bulk job: its first commit records it, whatever the saga does next
            driver.note(action="resume")
        return driver.drive()

    def migrate(self, saga_id: str, definition: SagaDefinition, *, user: str, source: str) -> RunResult:
        """Move an unfinished saga to a new version of its definition, then continue it like
        ``resume``. Refused (UsageError, nothing written) when the steps it has touched do not
        keep their names and order in ``definition`` (each difference is named), when it has
        ended, or is of another type. The new snapshot is stored with the step records, in one
        commit with a transition naming the old and new snapshots' digests."""

        with self.tracer.action("resume", saga_id=saga_id, by=user, definition=source) as act:
            return self._migrate(saga_id, definition, user=user, source=source, act=act)

    def _migrate(self, saga_id: str, definition: SagaDefinition, *, user: str, source: str, act: Span) -> RunResult:
        from sagactl.engine.migration import differences, digest, moved_steps

        with self._claimed(saga_id, act=act) as saga:
            if saga.state.terminal:
                raise UsageError(f"saga {saga_id} is already {saga.state.value}; nothing to migrate")
            if definition.name != saga.saga_type:
                raise UsageError(
                    f"{source} is a definition of saga type '{definition.name}', saga {saga_id} is a"
                    f" '{saga.saga_type}'"
                )
            found = differences(saga, definition)
            if found:
                raise UsageError(
                    f"cannot move saga {saga_id} to {source}: " + "; ".join(found),
                    hint="the steps a saga has done must keep their names and order; later steps may change",
                )
            old, new = saga.definition, definition.snapshot()
            problem = storable(new, "definition")
            if problem is not None:
                raise UsageError(f"the saga log cannot store this definition: {problem}")
            saga.steps = moved_steps(saga, definition)
            _preflight_remaining(definition, saga, self.env)
            if digest(old) != digest(new):  # the same definition again: nothing to move
                saga.definition, saga.updated_at = new, self.clock.now()
                detail = {"action": "migrate", "by": user, "from": digest(old), "to": digest(new), "file": source}
                state = saga.state.value
                note = Transition(saga_id, None, state, state, saga.updated_at, detail)
                self.store.migrate(saga, [note], owner=self.owner)
                saga.transitions.append(note)
                log.info("%s migrated to %s (%s)", saga_id, detail["to"], source, extra=log_extra(note))
        return Driver(self, saga, definition).drive()

    def apply_reply(self, saga_id: str, step: str, phase: Phase, reply: Reply) -> RunResult | None:
        """A participant's answer that came on a reply queue: if ``step`` of the saga waits for
        it (or, compensating, its compensation could not finish), claim the saga, apply it and
        drive on. None when nobody waits for it (a duplicate, a stale or unknown reply): the
        saga is left as it is.

        Raises LeaseHeldError when another driver holds the saga (try again later).
        """
        saga = self.store.get(saga_id)
        if saga is None or not _awaits(saga, step, phase):
            return None
        with self._claimed(saga_id) as saga:
            if not _awaits(saga, step, phase):
                self._release(saga)
                return None
            definition = self.prepared.definition(saga.definition)
            _preflight_remaining(definition, saga, self.env)
            record = saga.step(step)
            if record.waiting is None or record.waiting.kind != "reply" or record.waiting.phase is not phase:
                # nobody awaits it any more (it timed out, its retries ran out): taken as the
                # answer to the last attempt, as it is (the key is the same for every attempt)
                record.waiting = Waiting(phase, "reply", _tries(record, phase), self.clock.now())
        driver = Driver(self, saga, definition)
        driver.arrived[(step, phase)] = reply
        return driver.drive()

    def abort(self, saga_id: str, *, reason: str, user: str) -> RunResult:
        """Stop forward progress and compensate now."""
        with self.tracer.action("abort", saga_id=saga_id, by=user, reason=reason, job=self.tags.get("job")) as act:
            return self._abort(saga_id, reason=reason, user=user, act=act)

    def _abort(self, saga_id: str, *, reason: str, user: str, act: Span) -> RunResult:
        with self._claimed(saga_id, act=act) as saga:
            if saga.state.terminal:
                raise UsageError(f"saga {saga_id} is already {saga.state.value}; nothing to abort")
            definition = self.prepared.definition(saga.definition)
            preflight(definition, saga.data, self.env, steps=_to_compensate(definition, saga), actions=False)
        driver = Driver(self, saga, definition)
        if saga.state is not SagaState.COMPENSATING:
            driver.saga_to(SagaState.COMPENSATING, action="abort", by=user, reason=reason)
        else:
            driver.note(action="abort", by=user, reason=reason)
        return driver.drive()

    def resolve_step(
        self, saga_id: str, step: str, *, reason: str, user: str, out_of_order: bool = False
    ) -> RunResult:
        """Record a compensation done by hand, then continue compensating.

        Compensations run in strict reverse order, so the one that can be resolved is the one
        waiting: the latest step that still needs its (defined) compensation. Another step
        needs ``out_of_order`` (the operator undid it by hand ahead of its turn), which the
        transition records."""
        attributes = {"saga_id": saga_id, "step": step, "by": user, "reason": reason, "job": self.tags.get("job")}
        with self.tracer.action("resolve", **attributes) as act:
            return self._resolve(saga_id, step, reason=reason, user=user, out_of_order=out_of_order, act=act)

    def _resolve(
        self, saga_id: str, step: str, *, reason: str, user: str, out_of_order: bool, act: Span
    ) -> RunResult:
        with self._claimed(saga_id, act=act) as saga:
            try:
                record = saga.step(step)
            except KeyError:
                names = ", ".join(s.name for s in saga.steps)
                raise NotFoundError(f"saga {saga_id} has no step '{step}' (steps: {names})") from None
            if saga.state is not SagaState.COMPENSATING or not record.needs_compensation():
                raise UsageError(
                    f"step '{step}' of saga {saga_id} is {record.status.value} and the saga is"
                    f" {saga.state.value}: there is no compensation waiting to be resolved",
                    hint="resolve applies to a saga in compensating; see 'sagactl show'",
                )
            definition = self.prepared.definition(saga.definition)
            waiting = _waiting(definition, saga)
            if waiting is not None and waiting != step and not out_of_order:
                raise UsageError(
                    f"step '{step}' of saga {saga_id} is not the compensation waiting: '{waiting}' is"
                    " (compensations run in reverse order)",
                    hint=f"resolve --step {waiting} first, or add --out-of-order if '{step}' was undone by"
                    " hand ahead of its turn",
                )
            earlier = [s for s in _to_compensate(definition, saga) if s.name != step]
            preflight(definition, saga.data, self.env, steps=earlier, actions=False)
        driver = Driver(self, saga, definition)
        detail: dict[str, Any] = {"action": "resolve", "by": user, "reason": reason}
        if waiting is not None and waiting != step:
            detail.update(out_of_order=True, waiting=waiting)
        driver.step_to(record, StepStatus.COMPENSATED, **detail)
        record.compensated_at = self.clock.now()
        record.compensation_error = None
        return driver.drive()

    # -- lease -----------------------------------------------------------------------------

    def _claim(self, saga_id: str, held: bool = False) -> SagaRecord:
        """Load a saga and take its lease (from a dead holder on this host, too); ``held``:
        only check that this engine's owner holds it already (one read, no write)."""
        saga = self.store.get(saga_id)
        if saga is None:
            raise NotFoundError(
                f"saga {saga_id} not found in {self.store.info.location}",
                hint="check the ID with 'sagactl list' and the store with --dsn",
            )
        if held:
            if saga.lease_owner != self.owner:
                raise LeaseLostError(f"saga {saga_id} is held by {saga.lease_owner}, not by {self.owner}")
            saga.transitions = []
            return saga
        now = self.clock.now()
        until = lease_until(now)
        holder = self.store.acquire_lease(saga_id, self.owner, until, now)
        if holder is not None:
            if (
                holder.owner
                and holder_is_dead(holder.owner)
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

    @contextmanager
    def _claimed(self, saga_id: str, *, held: bool = False, act: Span = NOSPAN) -> Iterator[SagaRecord]:
        """The saga with its lease taken (``act``, an operator's action, linked to its trace);
        the lease is given back if the block raises (a check or preflight refused: nothing was
        written)."""
        saga = self._claim(saga_id, held)
        act.link(saga.traceparent, saga.tracestate, saga_id=saga.saga_id)
        try:
            yield saga
        except BaseException:
            self._release(saga)
            raise

    def _drive(self, saga: SagaRecord, definition: SagaDefinition, root: Span) -> RunResult:
        """Drive a saga this engine just recorded, then end its root span (open until then)."""
        result: RunResult | None = None
        try:
            result = Driver(self, saga, definition).drive()
            return result
        finally:
            if saga.last_error and saga.state in (SagaState.FAILED, SagaState.COMPENSATING):
                root.error(saga.last_error)
            root.end(saga.state.value if result is not None else "interrupted")

    def _release(self, saga: SagaRecord) -> None:
        release(self.store, saga, self.owner)


def _check_rerunnable(saga: SagaRecord) -> None:
    """Only a saga that ended failed, and was not rerun yet, can be rerun (exit 2 otherwise)."""
    if saga.rerun_as is not None:
        raise UsageError(
            f"saga {saga.saga_id} was already rerun as {saga.rerun_as}",
            hint=f"see 'sagactl show {saga.rerun_as}'; rerun that one if it failed too",
        )
    if saga.state is not SagaState.FAILED:
        raise UsageError(
            f"saga {saga.saga_id} is {saga.state.value}: only a saga that ended failed can be rerun",
            hint="resume or abort a saga still running"
            if not saga.state.terminal
            else "a completed saga has nothing to run again",
        )


def _awaits(saga: SagaRecord, step: str, phase: Phase) -> bool:
    """Whether an answer to ``phase`` of ``step`` still matters: its action is in flight, or
    its compensation is (also after its retries ran out: a late answer finishes it)."""
    if saga.state.terminal:
        return False
    try:
        record = saga.step(step)
    except KeyError:
        return False
    if phase is Phase.ACTION:
        return record.status is StepStatus.EXECUTING and saga.state is not SagaState.COMPENSATING
    return record.status is StepStatus.COMPENSATING and saga.state is SagaState.COMPENSATING


def _tries(record: StepRecord, phase: Phase) -> int:
    """How many attempts of ``phase`` a step has made (its retry budget counts from here)."""
    return record.attempts if phase is Phase.ACTION else record.compensation_attempts


def _waiting(definition: SagaDefinition, saga: SagaRecord) -> str | None:
    """The step whose compensation is next in reverse order (None: none is defined)."""
    due = [s for s in _to_compensate(definition, saga) if s.compensation is not None]
    return due[-1].name if due else None


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
