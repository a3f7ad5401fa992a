"""What ``sagactl ui`` shows and does, without Textual: the sagas (stuck first, then active,
then recent) through the indexed queries ``list`` uses, a saga as ``show`` draws it, the
failure groups, the configured dead-letter queues (peeked, never consumed), and the actions an
operator may take, planned and run through the same code as the CLI (sagactl.ops.bulk).

The reader is opened once and kept; a failed read closes it so the next refresh reconnects.
Time comes from a Clock, so tests move it instead of waiting.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from sagactl.clock import Clock, SystemClock
from sagactl.config import Settings
from sagactl.errors import SagactlError, UsageError
from sagactl.models import ACTIVE_STATES, SagaRecord, SagaState, SagaSummary, SortKey
from sagactl.tools.bulk import BulkAction
from sagactl.tools.inspect import ListedSaga, ListRequest, Stats

if TYPE_CHECKING:
    from sagactl.dlq.peek import PeekResult
    from sagactl.ops.bulk import Progress
    from sagactl.store.base import SagaReader
    from sagactl.tools.bulk import BulkPlan, BulkReport
    from sagactl.tools.inspect import GroupResult

STUCK_LIMIT = 500  # stuck sagas shown at most (list --stuck reads them all; a screen needs no more)
ACTIVE_LIMIT = 200
RECENT_LIMIT = 100
GROUP_BY = ("step", "error")


@dataclass(frozen=True, slots=True)
class Row:
    """One saga on the main screen: why it is there (stuck, active, recent) and its listing."""

    section: str
    listed: ListedSaga

    @property
    def saga(self) -> SagaSummary:
        return self.listed.saga


@dataclass(slots=True)
class Overview:
    """The main screen's data: the counts ``stats`` shows and the rows, stuck first."""

    stats: Stats
    rows: list[Row] = field(default_factory=list)
    error: str | None = None  # the last refresh failed: why (the rows are the previous ones)


def matches(row: Row, text: str) -> bool:
    """``/`` filter: any text, case-insensitive, found in the ID (a prefix or anywhere), the
    type, the state, the current step or the last error."""
    needle = text.strip().lower()
    if not needle:
        return True
    saga = row.saga
    fields = (saga.saga_id, saga.saga_type, saga.state.value, saga.current_step_name or "", saga.last_error or "")
    return any(needle in value.lower() for value in fields)


class Source:
    """The UI's one door to the saga log, SQS and the bulk actions."""

    def __init__(self, settings: Settings, clock: Clock | None = None, *, open_reader: Any = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self._open = open_reader
        self._reader: SagaReader | None = None

    @property
    def read_only(self) -> bool:
        """A foreign table: nothing can be acted on."""
        return self.settings.mapping is not None

    def reader(self) -> SagaReader:
        if self._reader is None:
            if self._open is not None:
                self._reader = self._open(self.settings)
            else:
                from sagactl.store import open_reader

                self._reader = open_reader(self.settings.dsn, self.settings.mapping)
        return self._reader

    def _reading(self, work: Callable[[SagaReader], Any]) -> Any:
        try:
            return work(self.reader())
        except SagactlError:
            self.close()  # reconnect on the next refresh
            raise

    def close(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(Exception):
                self._reader.close()
            self._reader = None

    # -- reading ---------------------------------------------------------------------------

    def overview(self) -> Overview:
        """Stuck sagas (compensating first, then the longest stuck), the other active ones
        (oldest first), then the newest finished ones: three indexed reads and the counters."""
        from sagactl.tools.inspect import list_sagas, stats

        now = self.clock.now()

        def read(reader: SagaReader) -> Overview:
            counts = stats(reader, now)
            stuck = list_sagas(reader, ListRequest(stuck=True, limit=STUCK_LIMIT), now).sagas
            seen = {row.saga.saga_id for row in stuck}
            active = list_sagas(reader, ListRequest(states=ACTIVE_STATES, limit=ACTIVE_LIMIT), now).sagas
            recent = list_sagas(
                reader,
                ListRequest(states=(SagaState.COMPLETED, SagaState.FAILED), limit=RECENT_LIMIT, sort=SortKey.NEWEST),
                now,
            ).sagas
            rows = [Row("stuck", s) for s in stuck]
            rows += [Row("active", s) for s in active if s.saga.saga_id not in seen]
            rows += [Row("recent", s) for s in recent]
            return Overview(counts, rows)

        result: Overview = self._reading(read)
        return result

    def saga(self, saga_id: str) -> SagaRecord | SagaSummary:
        """One saga with its history (a foreign table gives its row)."""
        from sagactl.tools.inspect import show_saga

        found: SagaRecord | SagaSummary = self._reading(lambda reader: show_saga(reader, saga_id))
        return found

    def groups(self) -> GroupResult:
        """The failure groups of the stuck sagas, and of the failed ones when none is stuck."""
        from sagactl.tools.groups import parse_group_by
        from sagactl.tools.inspect import group_sagas

        now = self.clock.now()
        by = parse_group_by(GROUP_BY)

        def read(reader: SagaReader) -> GroupResult:
            stuck = group_sagas(reader, ListRequest(stuck=True), by, now)
            if stuck.groups:
                return stuck
            return group_sagas(reader, ListRequest(states=(SagaState.FAILED,)), by, now)

        result: GroupResult = self._reading(read)
        return result

    def group_rows(self, key: str, stuck: bool) -> list[Row]:
        """The sagas of one failure group, as listed."""
        from sagactl.tools.inspect import list_sagas

        request = ListRequest(stuck=True, group=key) if stuck else ListRequest(states=(SagaState.FAILED,), group=key)
        now = self.clock.now()
        listed = self._reading(lambda reader: list_sagas(reader, replace(request, limit=0), now).sagas)
        return [Row("group", s) for s in listed]

    def dlqs(self) -> list[tuple[str, PeekResult | str]]:
        """Each queue of aws.dlqs peeked (every message visible again at once), or why not."""
        from sagactl.dlq.peek import PeekRequest
        from sagactl.ops.dlq import list_dlq

        found: list[tuple[str, PeekResult | str]] = []
        for queue in self.settings.aws.dlqs:
            try:
                found.append((queue, list_dlq(self.settings, PeekRequest(queue, limit=100, wait=0))))
            except SagactlError as exc:
                found.append((queue, exc.one_line()))
        return found

    # -- acting ----------------------------------------------------------------------------

    def redrive(self, queue: str, *, dry_run: bool = False, progress: Any = None) -> Any:
        """``redrive --dlq QUEUE`` (its source queue found by SQS, as the CLI finds it), or its
        plan with ``dry_run``: the same code, the same result."""
        from sagactl.dlq.outcomes import RedriveRequest
        from sagactl.ops.dlq import redrive_dlq

        return redrive_dlq(self.settings, RedriveRequest(dlq=queue, dry_run=dry_run), progress)

    def plan(self, action: BulkAction, target: Target) -> BulkPlan:
        """What ``action`` would do to ``target``: the dry run the CLI prints."""
        from sagactl.ops.bulk import run_bulk

        report = run_bulk(self.settings, target.request(action, None, dry_run=True), confirm=lambda plan: False)
        return report.plan

    def act(self, action: BulkAction, target: Target, reason: str | None, progress: Progress | None) -> BulkReport:
        """Run ``action`` on ``target`` as one job (who, why, the selector in every transition),
        exactly as the CLI's bulk commands do."""
        from sagactl.ops.bulk import run_bulk

        if self.read_only:
            raise UsageError("this is a foreign table: sagactl only reads it")
        return run_bulk(self.settings, target.request(action, reason), confirm=lambda plan: True, progress=progress)


@dataclass(frozen=True, slots=True)
class Target:
    """What an action applies to: one saga (by ID), or a failure group (by key, among the stuck
    sagas or the failed ones); ``step`` for resolve."""

    saga_id: str | None = None
    group: str | None = None
    stuck: bool = True
    step: str | None = None

    def describe(self) -> str:
        return f"saga {self.saga_id}" if self.saga_id else f"group {self.group}"

    def request(self, action: BulkAction, reason: str | None, *, dry_run: bool = False) -> Any:
        from sagactl.ops.bulk import BulkRequest
        from sagactl.tools.selectors import Selector

        if self.saga_id is not None:
            selector = Selector(ids=(self.saga_id,))
        elif self.stuck:
            selector = Selector(request=ListRequest(stuck=True, group=self.group))
        else:
            selector = Selector(request=ListRequest(states=(SagaState.FAILED,), group=self.group))
        step = self.step if action is BulkAction.RESOLVE else None
        return BulkRequest(action, selector, reason=reason, step=step, dry_run=dry_run)


ACTIONS: dict[str, BulkAction] = {"r": BulkAction.RESUME, "a": BulkAction.ABORT, "v": BulkAction.RESOLVE}
"""The keys that act (with --allow-actions), each behind a confirmation with the plan."""
