"""What resume, abort and resolve share when they act on many sagas: the selector from their
options, confirmation, the progress bar, the plan and the summary (ops.bulk does the work)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sagactl.cli.common import Shared, mask_secrets
from sagactl.errors import ExitCode, UsageError
from sagactl.views.output import emit, error_line, info_line, stream_is_tty, terminal_safe

if TYPE_CHECKING:
    from sagactl.models import RunResult
    from sagactl.ops.bulk import BulkRequest
    from sagactl.tools.bulk import BulkAction, BulkPlan, PlanItem
    from sagactl.tools.inspect import ListRequest
    from sagactl.tools.selectors import Selector


def selector_of(ids: Sequence[str] | None, request: ListRequest) -> Selector:
    """The selector of a command's IDs (``-`` read from stdin) and list filters."""
    from sagactl.tools.selectors import Selector, check_tokens, expand_stdin

    check_tokens(t for t in ids or () if t != "-")
    tokens, from_stdin = expand_stdin(ids or ())
    return Selector(ids=tuple(tokens), from_stdin=from_stdin, request=request)


def bulk_request(
    action: BulkAction,
    ids: Sequence[str] | None,
    opts: Shared,
    *,
    reason: str | None = None,
    step: str | None = None,
    out_of_order: bool = False,
) -> BulkRequest | None:
    """The bulk run a command's options ask for, or None when they name one saga by its ID
    (or prefix) and nothing else: that saga is driven as before, under the live view."""
    from sagactl.ops.bulk import BulkRequest
    from sagactl.tools.bulk import BulkAction
    from sagactl.tools.inspect import ListRequest

    more = opts.more
    request = ListRequest(
        stuck=more["stuck"],
        states=tuple(more["state"] or ()),
        saga_type=more["saga_type"],
        older_than=more["older_than"],
        since=more["since"],
        until=more["until"],
        step=more.get("step"),
        error=more["error"],
        group=more["group"],
    )
    bulk_options = [more["dry_run"], more["yes"], more["rate"], more["max_sagas"], more["job"]]
    single = ids is not None and len(ids) == 1 and ids[0] != "-"
    plain = not any(o not in (None, False) for o in bulk_options) and request == ListRequest()
    if single and plain and (action is not BulkAction.RESUME or reason is None):
        return None
    return BulkRequest(
        action=action,
        selector=selector_of(ids, request),
        reason=reason,
        step=step,
        out_of_order=out_of_order,
        dry_run=more["dry_run"],
        rate=more["rate"],
        max_sagas=more["max_sagas"],
        job=more["job"],
    )


def _confirm(action: BulkAction, yes: bool, selector: Selector) -> Callable[[BulkPlan], bool]:
    """Going ahead with a plan: at once for one saga, for sagas all named on the command line,
    or with --yes; else asked on a terminal (stdin and stderr), else refused (exit 2)."""

    def confirm(plan: BulkPlan) -> bool:
        count = len(plan.to_act)
        if count <= 1 or yes or selector.typed:
            return True
        what = f"{action.value} {count} sagas as {plan.job.job_id}"
        if not (stream_is_tty(sys.stdin) and stream_is_tty(sys.stderr)):
            raise UsageError(
                f"this would {what}: pass --yes to go ahead", hint="see the plan first with --dry-run"
            )
        sys.stderr.write(f"sagactl: {what}? [y/N] ")
        sys.stderr.flush()
        return sys.stdin.readline().strip().lower() in ("y", "yes")

    return confirm


class _Bar:
    """A rich progress bar on stderr (sagas done of those planned, how many of them ended
    failed, and how many could not be acted on), shown once confirmed; with -q too, since it
    is on stderr and only while stderr is a terminal."""

    def __init__(self, action: BulkAction) -> None:
        from sagactl.views.live import progress_bar

        self.action = action
        self.bar = progress_bar()
        self.task = self.bar.add_task(action.value, total=None)
        self.failed = 0  # sagas that ended failed
        self.errors = 0  # sagas that could not be acted on (reported after the run)
        self.started = False

    def start(self, total: int) -> None:
        self.bar.update(self.task, total=total)
        self.bar.start()
        self.started = True

    def stop(self) -> None:
        if self.started:
            self.bar.stop()

    def __call__(self, item: PlanItem, result: RunResult | None, error: Exception | None) -> None:
        from sagactl.models import SagaState

        self.failed += result is not None and result.saga.state is SagaState.FAILED
        self.errors += error is not None
        errors = f"  errors {self.errors}" if self.errors else ""
        self.bar.update(
            self.task,
            advance=1,
            description=f"{self.action.value} {terminal_safe(item.saga_id[:13])}  failed {self.failed}{errors}",
        )


def run_bulk_command(request: BulkRequest, opts: Shared) -> int:
    """Plan, confirm, act, report: the plan (dry run) or the sagas on stdout, a summary line
    (and one per saga that failed) on stderr; the worst exit code."""
    from sagactl.ops.bulk import run_bulk
    from sagactl.views.bulk import bulk_summary_line, plan_document

    confirm = _confirm(request.action, bool(opts.more.get("yes")), request.selector)
    bar = _Bar(request.action) if not request.dry_run and stream_is_tty(sys.stderr) else None

    def confirmed(plan: BulkPlan) -> bool:
        if not confirm(plan):
            return False
        if bar is not None:
            bar.start(len(plan.to_act))
        return True

    try:
        report = run_bulk(opts.settings(), request, confirm=confirmed, progress=bar)
    finally:
        if bar is not None:
            bar.stop()
    if report.dry_run:
        emit(plan_document(report.plan), opts.output, quiet=opts.quiet)
    elif report.declined:
        info_line("sagactl: not confirmed; nothing was done")
        return ExitCode.INTERRUPTED
    else:
        opts.report(report.results, live=False, array=True)
    for saga_id, failure in report.failures:
        line = failure.one_line()
        error_line(mask_secrets(line if saga_id in failure.message else f"{saga_id}: {line}"))
    if report.stopped is not None:
        error_line(mask_secrets(report.stopped.one_line()))
    info_line(f"sagactl: {mask_secrets(bulk_summary_line(report))}")
    codes = [r.exit_code for r in report.results] + [f.exit_code for _, f in report.failures]
    if report.stopped is not None:
        codes.append(report.stopped.exit_code)
    return ExitCode.worst(codes)
