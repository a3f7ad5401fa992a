"""``resume``, ``abort`` and ``resolve --step`` over many sagas: select, plan, confirm, act at
a bounded pace as one recorded job, report (docs/bulk.md)."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sagactl.clock import Clock, SystemClock
from sagactl.config import Settings
from sagactl.errors import Interrupted, NotFoundError, SagactlError, UnavailableError, UsageError
from sagactl.models import RunResult
from sagactl.ops import make_engine, store_for, traced
from sagactl.ops.sagas import operator_name, recorded_reason
from sagactl.store.base import JobRecord, Store
from sagactl.tools.bulk import (
    BulkAction,
    BulkPlan,
    BulkReport,
    Pacer,
    PlanItem,
    check_job_id,
    check_limits,
    job_base,
    plan_item,
    tags,
)
from sagactl.tools.selectors import Selector, select

if TYPE_CHECKING:
    from sagactl.engine.control import Engine


@dataclass(frozen=True, slots=True)
class BulkRequest:
    """A bulk command: what to do (``step``/``out_of_order`` for resolve), to which sagas, why;
    ``max_sagas``: act on at most this many now (the job goes on at the next run)."""

    action: BulkAction
    selector: Selector
    reason: str | None = None
    step: str | None = None
    out_of_order: bool = False
    dry_run: bool = False
    rate: float | None = None
    max_sagas: int | None = None
    job: str | None = None


Confirm = Callable[[BulkPlan], bool]
Progress = Callable[[PlanItem, RunResult | None, SagactlError | None], None]


def _options(request: BulkRequest) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if request.step is not None:
        options["step"] = request.step
    if request.out_of_order:
        options["out_of_order"] = True
    return options


def _job(store: Store, request: BulkRequest, reason: str | None, who: str, now: datetime) -> tuple[JobRecord, bool]:
    """The job this run is: ``--job``'s, else the unfinished one the same command started
    before, else a new one. Continuing a job with another action or selector is refused."""
    selector = request.selector.to_dict()
    recorded_selector = {"action": request.action.value, "options": _options(request), **selector}
    if request.job is not None:
        candidates = [check_job_id(request.job)]
    else:
        base = job_base(request.action, _options(request), selector, reason)
        candidates = [base, *(f"{base}-{n}" for n in range(2, 1000))]
    for job_id in candidates:
        existing = store.job(job_id)
        if existing is None:
            return JobRecord(job_id, request.action.value, recorded_selector, reason, who, now), False
        if request.job is not None:
            if existing.action != request.action.value or existing.selector != recorded_selector:
                raise UsageError(
                    f"job {job_id} was a {existing.action} of {existing.selector}: continue it with the same"
                    " command and selectors, or pick another --job",
                )
            return existing, True
        if existing.finished_at is None:
            return existing, True
    raise UsageError("this command ran as a job 999 times already", hint="name the job with --job")


def _who(user: str | None) -> str:
    return f"{user or operator_name()}@{socket.gethostname()}"


def run_bulk(
    settings: Settings,
    request: BulkRequest,
    *,
    confirm: Confirm,
    progress: Progress | None = None,
    user: str | None = None,
    clock: Clock | None = None,
    now: datetime | None = None,
) -> BulkReport:
    """Select, plan, and (unless a dry run, or ``confirm`` declines) act on each saga in turn
    as one job, at most ``rate`` sagas a second and ``max_sagas`` of them. A saga that cannot
    be acted on (driven by another process, changed meanwhile) does not stop the others; an
    interrupt or the database going away stops the run (``stopped``); the job is finished only
    once its whole plan went through."""
    request.selector.check()
    check_limits(request.rate, request.max_sagas)
    if request.action is not BulkAction.RESUME and request.reason is None:
        raise UsageError(f"{request.action.value} needs --reason (recorded with your name in each saga's history)")
    if request.action is BulkAction.RESOLVE and not request.step:
        raise UsageError("resolve needs --step: the step whose compensation was done by hand")
    reason = None if request.reason is None else recorded_reason(request.reason)
    clock = clock or SystemClock()
    at = now or clock.now()
    who = _who(user)
    with store_for(settings, create=not request.dry_run) as store:
        sagas, missing = select(store, request.selector, at)
        job, continuing = _job(store, request, reason, who, at)
        done = store.touched_by(job.job_id) if continuing else set()
        items = [
            plan_item(
                request.action,
                saga,
                step=request.step,
                out_of_order=request.out_of_order,
                done_before=saga.saga_id in done,
            )
            for saga in sagas
        ]
        plan = BulkPlan(job, continuing, request.selector.describe(), items, missing=missing)
        if request.max_sagas is not None and len(plan.to_act) > request.max_sagas:
            cut = plan.to_act[request.max_sagas :]
            plan.later = cut
            plan.items = [i for i in items if i not in cut]
        report = BulkReport(request.action, plan, dry_run=request.dry_run)
        for token in missing:
            report.failures.append(
                (token, NotFoundError(f"saga {token} not found in {store.info.location}", hint="check the ID"))
            )
        if request.dry_run or not plan.to_act:
            return report
        if not confirm(plan):
            report.declined = True
            return report
        store.start_job(job)
        # one span for the job, each saga's action a child of it (tracing on)
        with traced(settings) as tracer, tracer.action(f"{request.action.value} (bulk)", job=job.job_id):
            _act(store, make_engine(store, settings, tracer=tracer), request, plan, report, clock, progress)
        if report.stopped is None and not plan.later:
            store.finish_job(job.job_id, clock.now())
            report.finished = True
    return report


def _act(
    store: Store,
    engine: Engine,
    request: BulkRequest,
    plan: BulkPlan,
    report: BulkReport,
    clock: Clock,
    progress: Progress | None,
) -> None:
    engine.tags = tags(plan.job, plan.selector_text)
    who, reason = plan.job.started_by, plan.job.reason or ""
    pacer = Pacer(request.rate, clock)
    started = clock.monotonic()
    try:
        for item in plan.to_act:
            pacer.wait()
            result: RunResult | None = None
            error: SagactlError | None = None
            try:
                if request.action is BulkAction.RESUME:
                    result = engine.resume(item.saga_id)
                elif request.action is BulkAction.ABORT:
                    result = engine.abort(item.saga_id, reason=reason, user=who)
                else:
                    assert request.step is not None
                    result = engine.resolve_step(
                        item.saga_id, request.step, reason=reason, user=who, out_of_order=request.out_of_order
                    )
            except (UnavailableError, Interrupted) as exc:
                report.stopped = exc
                if progress is not None:
                    progress(item, None, exc)
                return
            except SagactlError as exc:
                error = exc
                report.failures.append((item.saga_id, exc))
            if result is not None:
                result.saga.transitions = store.transitions(item.saga_id)
                report.results.append(result)
            if progress is not None:
                progress(item, result, error)
    except KeyboardInterrupt:  # between two sagas (waiting for --rate): nothing half done
        report.stopped = Interrupted("interrupted between two sagas")
    finally:
        report.elapsed = clock.monotonic() - started
