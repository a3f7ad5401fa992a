"""The operator's view: list, stuck, show and stats over a SagaReader (a native saga log or
a mapped table), read-only. ``now`` is a parameter everywhere, so tests control the clock.

Stuck (DESIGN section 7): a non-terminal saga whose ``deadline_at`` has passed, or, without
a deadline, idle (no update) longer than ``--older-than``; by default longer than its current
step's timeout from the stored definition (compensation timeout while compensating), else
15 minutes. ``stuck_for_seconds`` counts from the deadline, or from the last update for a
saga without one. Compensating sagas come first, then the longest stuck.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sagactl.errors import NotFoundError, UsageError
from sagactl.models import ACTIVE_STATES, SagaRecord, SagaState, SagaSummary, SortKey, StateCount, iso
from sagactl.store.base import ActiveCount, SagaQuery, SagaReader

if TYPE_CHECKING:  # groups.py (its regexes) loads only where a group is asked for
    from sagactl.tools.groups import FailureGroup, GroupBy

DEFAULT_IDLE_SECONDS = 900.0  # 15m: the stuck threshold when nothing better is known
DEFAULT_LIST_LIMIT = 1000  # plain `list` without --limit shows at most this many
MAX_COUNT = 1_000_000_000  # the largest --limit / --max a command takes
MAX_AGE = 3650 * 86400.0  # --older-than at most 10 years (datetime arithmetic stays in range)


def stuck_for(saga: SagaSummary, now: datetime, older_than: float | None = None) -> float | None:
    """Seconds ``saga`` has been stuck at ``now``, or None when it is not stuck."""
    if saga.state.terminal:
        return None
    if saga.deadline_at is not None:
        return (now - saga.deadline_at).total_seconds() if saga.deadline_at < now else None
    if saga.updated_at is None:
        return None
    idle = (now - saga.updated_at).total_seconds()
    if older_than is None:
        older_than = saga.idle_timeout if saga.idle_timeout is not None else DEFAULT_IDLE_SECONDS
    return idle if idle > older_than else None


@dataclass(frozen=True, slots=True)
class ListedSaga:
    """One row of ``sagactl list``; ``to_dict`` is the JSON contract (DESIGN section 7), and for
    a foreign table's row ``source_state``, the framework's own state."""

    saga: SagaSummary
    stuck_for_seconds: float | None

    def to_dict(self) -> dict[str, Any]:
        s = self.saga
        shown: dict[str, Any] = {"saga_id": s.saga_id, "saga_type": s.saga_type, "state": s.state.value}
        if s.source_state is not None:  # a foreign table's row: the framework's own state beside sagactl's
            shown["source_state"] = s.source_state
        return shown | {
            "current_step": s.current_step,
            "current_step_name": s.current_step_name,
            "created_at": iso(s.created_at),
            "updated_at": iso(s.updated_at),
            "deadline_at": iso(s.deadline_at),
            "stuck_for_seconds": None if self.stuck_for_seconds is None else round(self.stuck_for_seconds, 3),
            "last_error": s.last_error,
            "lease_owner": s.lease_owner,
            "lease_expires_at": iso(s.lease_expires_at),
        }


@dataclass(frozen=True, slots=True)
class ListRequest:
    """``sagactl list`` options (and the selectors of the commands that act on many sagas).
    ``limit``: None = default (all stuck sagas, or the first DEFAULT_LIST_LIMIT sagas), 0 = no
    limit. ``since``/``until``: created at or after / before, each a duration back from now
    (``24h``) or an ISO 8601 time; ``step``: the current step's name; ``error``: a literal
    substring of the last error; ``saga_ids``: exact IDs (resolve prefixes first); ``job``: the
    sagas a bulk job touched; ``group``: a failure group's key (groups.py)."""

    stuck: bool = False
    states: tuple[SagaState, ...] = ()
    saga_type: str | None = None
    older_than: str | None = None
    limit: int | None = None
    since: str | None = None
    until: str | None = None
    step: str | None = None
    error: str | None = None
    saga_ids: tuple[str, ...] = ()
    sort: SortKey | None = None
    job: str | None = None
    group: str | None = None


@dataclass(frozen=True, slots=True)
class ListResult:
    sagas: list[ListedSaga]
    stuck: bool
    truncated_at: int | None = None  # the default cap, when more sagas matched
    now: datetime | None = None  # when it was listed (a lease that ran out before is lapsed)


def parse_older_than(duration: str | None) -> float | None:
    """``--older-than`` in seconds (None when not given): above zero, at most MAX_AGE."""
    if duration is None:
        return None
    from sagactl.definitions.model import duration_option

    seconds = duration_option(duration, "--older-than")
    if seconds <= 0:
        raise UsageError(f"--older-than must be positive, got '{duration}'")
    if seconds > MAX_AGE:
        raise UsageError(f"--older-than must be at most 3650d (10 years), got '{duration[:40]}'")
    return seconds


def parse_time_bound(value: str | None, option: str, now: datetime) -> datetime | None:
    """``--since``/``--until``: a duration back from ``now`` (``24h``, ``90m``, ``7d``) or an
    ISO 8601 time (``2026-11-26``, ``2026-11-26T08:00:00Z``; without a zone: UTC)."""
    if value is None:
        return None
    text = value.strip()
    if text[:1].isdigit() and text[-1:].isalpha() and "-" not in text and ":" not in text:
        from sagactl.definitions.model import parse_duration

        try:
            seconds = parse_duration(text)
        except UsageError:
            pass
        else:
            if seconds > MAX_AGE:
                raise UsageError(f"{option} must be at most 3650d (10 years) back, got '{value[:40]}'")
            return now - timedelta(seconds=seconds)
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise UsageError(
            f"{option}: '{value[:40]}' is neither a duration nor an ISO 8601 time",
            hint="e.g. 24h, 30m, 7d, 2026-11-26 or 2026-11-26T08:00:00Z",
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def check_list_request(request: ListRequest, now: datetime | None = None) -> None:
    """Refuse what ``list`` cannot honour before any store is opened."""
    parse_older_than(request.older_than)
    if request.limit is not None and not 0 <= request.limit <= MAX_COUNT:
        raise UsageError(f"--limit must be 0 (no limit) to {MAX_COUNT}, got {request.limit}")
    at = now or datetime.now(UTC)
    since = parse_time_bound(request.since, "--since", at)
    until = parse_time_bound(request.until, "--until", at)
    if since is not None and until is not None and since >= until:
        raise UsageError(f"--since ({iso(since)}) must be before --until ({iso(until)})")
    if request.group is not None:
        from sagactl.tools.groups import check_key

        check_key(request.group)
    for option, text in (("--step", request.step), ("--error", request.error), ("--job", request.job)):
        if text is not None and not text:
            raise UsageError(f"{option} needs a value (an empty one would match everything)")


def base_query(request: ListRequest, now: datetime) -> SagaQuery:
    """The filters of ``request`` every listing applies, stuck or not."""
    return SagaQuery(
        states=request.states,
        saga_type=request.saga_type,
        saga_ids=request.saga_ids,
        created_from=parse_time_bound(request.since, "--since", now),
        created_before=parse_time_bound(request.until, "--until", now),
        step=request.step,
        error=request.error,
        job=request.job,
        sort=request.sort,
    )


def find_stuck(
    reader: SagaReader,
    now: datetime,
    *,
    older_than: float | None = None,
    states: Sequence[SagaState] = (),
    saga_type: str | None = None,
    limit: int | None = None,
    filters: SagaQuery | None = None,
) -> list[ListedSaga]:
    """Stuck sagas, compensating first, then the longest stuck (or in ``filters.sort``
    order). Reads only active sagas. ``filters``: further filters (states and type there win
    over ``states`` and ``saga_type``). A reader without times (a foreign table that keeps
    none) gives its compensating sagas, with no stuck_for_seconds."""
    base = filters or SagaQuery(states=states, saga_type=saga_type)
    if not reader.info.ages:  # no time to judge by: the reader's stuck ones are its compensating ones
        if older_than is not None:
            raise UsageError(f"--older-than: {reader.info.location} has no time to judge age by")
        return [ListedSaga(r, None) for r in reader.summaries(replace(base, stuck=True, now=now, limit=limit))]
    if older_than is not None:
        query = replace(base, stuck=True, now=now, idle_before=now - timedelta(seconds=older_than), limit=limit)
        rows = reader.summaries(query)
    else:
        # Each saga has its own idle threshold: fetch every overdue or deadline-less active
        # saga (still only the active-state index) and apply the thresholds here.
        rows = reader.summaries(replace(base, stuck=True, now=now, idle_before=now, limit=None))
    listed = [ListedSaga(r, stuck_for(r, now, older_than)) for r in rows]
    stuck = [row for row in listed if row.stuck_for_seconds is not None]
    return stuck[:limit] if limit is not None else stuck


def list_sagas(reader: SagaReader, request: ListRequest, now: datetime, *, everything: bool = False) -> ListResult:
    """``sagactl list``: sagas matching the filters, or with ``stuck`` the stuck ones.
    ``everything``: no default cap (failure groups and bulk commands see every match)."""
    check_list_request(request, now)
    older_than = parse_older_than(request.older_than)
    limit = None if request.limit == 0 else request.limit
    cap = DEFAULT_LIST_LIMIT if request.limit is None and not request.stuck and not everything else None
    group = None
    if request.group is not None:
        from sagactl.tools.groups import check_key

        group = check_key(request.group)
    # a group is picked out of the rows read: read them all, then cut
    read = None if group is not None else cap + 1 if cap is not None else limit
    base = base_query(request, now)
    if request.stuck:
        sagas = find_stuck(reader, now, older_than=older_than, limit=read, filters=base)
    else:
        query = replace(
            base, updated_before=now - timedelta(seconds=older_than) if older_than is not None else None, limit=read
        )
        sagas = [ListedSaga(r, stuck_for(r, now)) for r in reader.summaries(query)]
    if group is not None:
        from sagactl.tools.groups import keys_of

        sagas = [row for row in sagas if group in keys_of(row.saga)]
    truncated = cap if cap is not None and len(sagas) > cap else None
    shown = cap if cap is not None else limit
    sagas = sagas[:shown] if shown is not None else sagas
    return ListResult(sagas, stuck=request.stuck, truncated_at=truncated, now=now)


@dataclass(frozen=True, slots=True)
class GroupResult:
    """``list --group-by``: the failure groups, largest first (``limit``: at most that many)."""

    groups: list[FailureGroup]
    by: tuple[GroupBy, ...]
    stuck: bool
    total: int  # sagas folded
    now: datetime


def group_sagas(
    reader: SagaReader, request: ListRequest, by: Sequence[GroupBy], now: datetime
) -> GroupResult:
    """Every saga the filters match (no default cap), folded into failure groups."""
    limit = None if request.limit == 0 else request.limit
    listed = list_sagas(reader, replace(request, limit=0), now, everything=True).sagas
    from sagactl.tools.groups import fold

    groups = fold((row.saga for row in listed), by)
    return GroupResult(
        groups=groups[:limit] if limit is not None else groups,
        by=tuple(by),
        stuck=request.stuck,
        total=len(listed),
        now=now,
    )


def show_saga(reader: SagaReader, saga_id: str) -> SagaRecord | SagaSummary:
    """One saga with its full history (a mapped table gives only its summary row)."""
    saga = reader.detail(saga_id)
    if saga is None:
        where = "the config's store section" if reader.info.kind == "mapped" else "the store with --dsn"
        raise NotFoundError(
            f"saga {saga_id} not found in {reader.info.location}", hint=f"check the ID with 'sagactl list' and {where}"
        )
    return saga


# -- stats ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StatsRow:
    saga_type: str
    state: SagaState
    count: int
    stuck: int = 0
    oldest_created_at: datetime | None = None
    exhausted: int | None = None  # compensating and waiting for an operator; None: cannot tell


@dataclass(frozen=True, slots=True)
class Stats:
    """``sagactl stats``: sagas per type and state (every state, zeros included), stuck
    counts, the oldest active saga's age. Terminal counts come from the counters kept with
    each transition; active counts are exact."""

    generated_at: datetime
    location: str
    rows: list[StatsRow] = field(default_factory=list)

    def age_of(self, row: StatsRow) -> float | None:
        if row.oldest_created_at is None:
            return None
        return max(0.0, (self.generated_at - row.oldest_created_at).total_seconds())

    @property
    def oldest_active(self) -> datetime | None:
        starts = [r.oldest_created_at for r in self.rows if r.oldest_created_at is not None]
        return min(starts, default=None)

    def totals(self) -> dict[str, int]:
        totals = {state.value: 0 for state in SagaState}
        for row in self.rows:
            totals[row.state.value] += row.count
        totals["active"] = sum(totals[s.value] for s in ACTIVE_STATES)
        totals["stuck"] = sum(r.stuck for r in self.rows)
        return totals

    def to_dict(self) -> dict[str, Any]:
        oldest = self.oldest_active
        return {
            "generated_at": iso(self.generated_at),
            "store": self.location,
            "totals": self.totals(),
            "oldest_active_created_at": iso(oldest),
            "oldest_active_age_seconds": (
                None if oldest is None else round((self.generated_at - oldest).total_seconds(), 3)
            ),
            "sagas": [
                {
                    "saga_type": r.saga_type,
                    "state": r.state.value,
                    "count": r.count,
                    "stuck": r.stuck,
                    "oldest_created_at": iso(r.oldest_created_at),
                    "oldest_age_seconds": None if (age := self.age_of(r)) is None else round(age, 3),
                    "exhausted": r.exhausted,
                }
                for r in self.rows
            ],
        }


def stats(reader: SagaReader, now: datetime) -> Stats:
    """Counts per (saga_type, state), stuck counts and the oldest active saga's age.

    Reads the counters table and the active-state indexes only: the cost does not grow with
    the number of finished sagas (a mapped table has no counters and is scanned).
    """
    counters = {(c.saga_type, c.state): c.count for c in reader.counts()}
    active = {(a.saga_type, a.state): a for a in reader.active_counts()}
    stuck: dict[tuple[str, SagaState], int] = {}
    for row in find_stuck(reader, now):
        key = (row.saga.saga_type, row.saga.state)
        stuck[key] = stuck.get(key, 0) + 1
    location = reader.info.location
    types = sorted({t for t, _ in counters} | {t for t, _ in active} | {t for t, _ in stuck})
    rows = []
    for saga_type in types:
        for state in SagaState:
            exact = active.get((saga_type, state))
            exact_count = exact.count if exact else 0
            count = counters.get((saga_type, state), 0) if state.terminal else exact_count
            rows.append(
                StatsRow(
                    saga_type=saga_type,
                    state=state,
                    count=count,
                    stuck=stuck.get((saga_type, state), 0),
                    oldest_created_at=exact.oldest_created_at if exact else None,
                    exhausted=_exhausted(state, exact),
                )
            )
    return Stats(generated_at=now, location=location, rows=rows)


def _exhausted(state: SagaState, exact: ActiveCount | None) -> int | None:
    """Compensating sagas that wait for an operator (0 in other states; None: cannot tell)."""
    if state is not SagaState.COMPENSATING:
        return 0
    return 0 if exact is None else exact.exhausted


@dataclass(frozen=True, slots=True)
class Recount:
    """What ``db recount`` found: each (type, state) counter before and after."""

    location: str
    before: list[StateCount]
    after: list[StateCount]

    def rows(self) -> list[dict[str, Any]]:
        was = {(c.saga_type, c.state.value): c.count for c in self.before}
        now = {(c.saga_type, c.state.value): c.count for c in self.after}
        return [
            {"saga_type": t, "state": state, "before": was.get((t, state), 0), "after": now.get((t, state), 0)}
            for t, state in sorted(was.keys() | now.keys())
        ]

    def to_dict(self) -> dict[str, Any]:
        rows = self.rows()
        return {
            "store": self.location,
            "sagas": sum(r["after"] for r in rows),
            "corrected": sum(1 for r in rows if r["before"] != r["after"]),
            "counters": rows,
        }
