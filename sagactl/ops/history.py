"""Commands over sagas that ended: ``rerun`` (a failed saga run again as a new saga) and
``prune`` (finished sagas removed from the log, archived first if asked)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sagactl.codec import merge_patch
from sagactl.config import Settings
from sagactl.errors import Interrupted, SagactlError, UnavailableError
from sagactl.models import RunResult, check_saga_id, utcnow
from sagactl.ops import make_engine, store_for, traced
from sagactl.ops.sagas import ResumeReport, definition_for, definitions_in, looking_up, operator_name, read_input

if TYPE_CHECKING:
    from sagactl.definitions.model import SagaDefinition
    from sagactl.engine.control import Engine
    from sagactl.engine.host import Observer
    from sagactl.tools.retention import Progress as PruneProgress
    from sagactl.tools.retention import PruneRequest, PruneResult


@dataclass(frozen=True, slots=True)
class RerunRequest:
    """``rerun SAGA_ID... [--definition FILE] [--input-patch JSON] [--detach]``."""

    saga_ids: Sequence[str]
    definition: str | None = None
    input_patch: str | None = None
    detach: bool = False


def rerun_sagas(
    settings: Settings, request: RerunRequest, observer: Observer | None = None, *, user: str | None = None
) -> ResumeReport:
    """Run each failed saga again as a new saga, linked both ways, and drive it (or only record
    it, with ``detach``). The definition file and the patch are read and checked before the log
    is opened. With one ID its error is raised as is; with several, a saga that cannot be rerun
    (not failed, already rerun, not found) does not stop the others; the database becoming
    unreachable or an interrupt stops the whole run."""
    for saga_id in request.saga_ids:
        check_saga_id(saga_id, lookup=True)
    definitions = definitions_in(request.definition) if request.definition is not None else None
    patch = read_input(request.input_patch, source="--input-patch") if request.input_patch is not None else None
    who = user or operator_name()
    report = ResumeReport(results=[], failures=[])
    with traced(settings) as tracer, store_for(settings) as store:
        engine = make_engine(store, settings, observer, tracer=tracer)
        for saga_id in request.saga_ids:
            try:
                with looking_up(saga_id):
                    result = _rerun_one(engine, saga_id, definitions, request, patch, who)
            except (UnavailableError, Interrupted):
                raise
            except SagactlError as exc:
                if len(request.saga_ids) == 1:
                    raise
                report.failures.append((saga_id, exc))
                continue
            result.saga.transitions = store.transitions(result.saga.saga_id)
            report.results.append(result)
    return report


def _rerun_one(
    engine: Engine,
    saga_id: str,
    definitions: list[SagaDefinition] | None,
    request: RerunRequest,
    patch: Any,
    user: str,
) -> RunResult:
    failed = engine.store.get(saga_id)
    definition = None
    if failed is not None and definitions is not None and request.definition is not None:
        definition = definition_for(definitions, request.definition, failed.saga_type)
    if patch is not None and failed is not None:
        data = merge_patch(failed.data, patch)
        return engine.rerun(saga_id, definition=definition, data=data, user=user, detached=request.detach)
    return engine.rerun(saga_id, definition=definition, user=user, detached=request.detach)


def prune_log(
    settings: Settings, request: PruneRequest, progress: PruneProgress | None = None, *, now: datetime | None = None
) -> PruneResult:
    """``prune``: delete (or count, dry run) finished sagas older than the cutoff in batches,
    archiving each batch first when asked. The request is checked before the log is opened."""
    from sagactl.tools.retention import prune

    request.validate()
    with store_for(settings) as store:
        return prune(store, request, now or utcnow(), progress)
