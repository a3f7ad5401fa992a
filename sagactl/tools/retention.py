"""``prune``: delete finished sagas and their histories from the saga log in small batches,
archiving each batch first when asked.

Guarantees:
- only sagas that are ``completed`` or ``failed`` are ever deleted (asking for another state is
  refused before anything is opened; the DELETE itself re-checks);
- each batch is its own short transaction (writers wait at most one batch, never the run);
- with an archive, a batch is written to it (one JSON object per saga, its transitions
  included) and fsynced before that batch is deleted: a crash can leave a saga archived and
  not deleted (archived again by the next run), never deleted and not archived;
- ``stats`` stays exact: the per-type/state counters follow each delete by trigger.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sagactl.codec import compact_json
from sagactl.errors import UnavailableError, UsageError
from sagactl.models import PRUNE_BATCH, SagaState, StateCount, iso
from sagactl.store.base import PruneQuery, Store

DEFAULT_BATCH = PRUNE_BATCH
MAX_BATCH = 10_000
FINISHED = (SagaState.COMPLETED, SagaState.FAILED)


def parse_states(values: Sequence[str] | None) -> tuple[SagaState, ...]:
    """``--state completed,failed`` (repeatable, comma-separated): finished states only;
    an active one is refused (exit 2), never pruned. Default: both finished states."""
    if not values:
        return FINISHED
    chosen: list[SagaState] = []
    for value in values:
        for name in (part.strip().lower() for part in value.split(",")):
            if not name:
                continue
            try:
                state = SagaState(name)
            except ValueError:
                raise UsageError(f"--state: unknown state '{name[:40]}'; prune takes completed, failed") from None
            if not state.terminal:
                raise UsageError(
                    f"--state {name}: active sagas are never pruned; prune takes completed, failed",
                    hint="finish them first (resume, abort), or list them with 'sagactl list --state " + name + "'",
                )
            if state not in chosen:
                chosen.append(state)
    if not chosen:
        raise UsageError("--state names no state; prune takes completed, failed")
    return tuple(chosen)


@dataclass(frozen=True, slots=True)
class PruneRequest:
    older_than: timedelta
    states: tuple[SagaState, ...] = FINISHED
    saga_type: str | None = None
    archive: str | None = None
    dry_run: bool = False
    batch: int = DEFAULT_BATCH

    def validate(self) -> None:
        if not 1 <= self.batch <= MAX_BATCH:
            raise UsageError(f"--batch must be 1 to {MAX_BATCH}, not {self.batch}")
        if self.archive is not None and self.dry_run:
            raise UsageError("--dry-run archives nothing: drop --archive, or --dry-run to prune")


@dataclass(slots=True)
class PruneResult:
    """What a prune did (or, dry run, would do): the ``prune`` JSON document."""

    cutoff: datetime
    states: tuple[SagaState, ...]
    saga_type: str | None
    dry_run: bool
    archive: str | None = None
    pruned: int = 0
    archived: int = 0
    batches: int = 0
    counts: list[StateCount] = field(default_factory=list)
    interrupted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "cutoff": iso(self.cutoff),
            "states": [s.value for s in self.states],
            "saga_type": self.saga_type,
            "matched": sum(c.count for c in self.counts),  # a run's counts are what it deleted
            "pruned": self.pruned,
            "archived": self.archived,
            "archive": self.archive,
            "batches": self.batches,
            "interrupted": self.interrupted,
            "counts": [{"saga_type": c.saga_type, "state": c.state.value, "count": c.count} for c in self.counts],
        }


Progress = Callable[[PruneResult], None]


def prune(
    store: Store, request: PruneRequest, now: datetime, progress: Progress | None = None
) -> PruneResult:
    """Delete (or count, ``dry_run``) the finished sagas ``request`` names, oldest first, one
    batch per transaction; archive each batch first when asked. Ctrl-C between batches stops
    the run with what is done kept (``interrupted``)."""
    request.validate()
    query = PruneQuery(before=now - request.older_than, states=request.states, saga_type=request.saga_type)
    result = PruneResult(query.before, request.states, request.saga_type, request.dry_run, request.archive)
    if request.dry_run:
        result.counts = store.prunable_counts(query)
        return result
    deleted: dict[tuple[str, SagaState], int] = {}
    with _open_archive(request.archive) as archive:
        try:
            for state in request.states:
                _prune_state(store, request, query, state, archive, result, deleted, progress)
        except KeyboardInterrupt:
            result.interrupted = True
    result.counts = [StateCount(t, s, n) for (t, s), n in sorted(deleted.items())]
    return result


def _prune_state(
    store: Store,
    request: PruneRequest,
    query: PruneQuery,
    state: SagaState,
    archive: IO[str] | None,
    result: PruneResult,
    deleted: dict[tuple[str, SagaState], int],
    progress: Progress | None,
) -> None:
    """Every batch of one state, oldest first."""
    after: tuple[datetime, str] | None = None
    while True:
        found = store.prunable(query, state, after, request.batch)
        if not found:
            return
        after = found[-1][1], found[-1][0]
        ids = [saga_id for saga_id, _, _ in found]
        if archive is not None:
            result.archived += _archive(archive, request.archive or "", store, ids)
        gone = store.delete_finished(ids, PruneQuery(query.before, (state,), query.saga_type))
        types = {saga_id: saga_type for saga_id, _, saga_type in found}
        for saga_id in gone:
            key = (types[saga_id], state)
            deleted[key] = deleted.get(key, 0) + 1
        result.pruned += len(gone)
        result.batches += 1
        if progress is not None:
            progress(result)


@contextmanager
def _open_archive(path: str | None) -> Iterator[IO[str] | None]:
    """The archive (None: none asked for), appended to (a re-run never overwrites what an
    earlier one archived), and private: it holds inputs, results and errors like the log."""
    if path is None:
        yield None
        return
    target = Path(path)
    new = not target.exists()
    try:
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    except OSError as exc:
        raise UsageError(f"cannot open archive {path}: {exc.strerror or exc}", hint="check the path") from exc
    with open(fd, "a", encoding="utf-8") as handle:
        if new:  # the new file's directory entry is durable too before anything is deleted
            directory = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        yield handle


def _archive(handle: IO[str], path: str, store: Store, saga_ids: Sequence[str]) -> int:
    """Write these sagas (row, definition snapshot, transitions) as JSON lines and fsync; a
    failure (disk full) is UnavailableError (exit 4) before anything of the batch is deleted."""
    records = store.records(saga_ids)
    try:
        for saga in records:
            document = {**saga.to_dict(), "definition": saga.definition}
            handle.write(compact_json(document) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    except OSError as exc:
        raise UnavailableError(
            f"writing archive {path} failed: {exc.strerror or exc}; the sagas of this batch were not deleted",
            hint="free space on that disk and run prune again (it appends; sagas archived twice are harmless)",
        ) from exc
    return len(records)
