"""``db init``, ``db recount``, ``validate``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from sagactl.config import Settings
from sagactl.ops import store_for
from sagactl.tools.inspect import Recount

if TYPE_CHECKING:
    from sagactl.definitions import validation


def init_db(settings: Settings, progress: Callable[[int, str], None] | None = None) -> tuple[str, int]:
    """Create or upgrade the schema; returns (where, version). ``progress(version, name)``
    before each migration applied."""
    with store_for(settings, progress=progress) as store:  # a writer upgrades on opening
        return store.info.location, store.init_schema(progress)


def recount(settings: Settings) -> Recount:
    """``db recount``: rebuild the per-type/state counters ``stats`` reads from saga_log."""
    with store_for(settings) as store:
        before, after = store.recount()
        return Recount(store.info.location, before, after)


def validate_files(files: Sequence[str]) -> list[validation.Report]:
    """Every problem of every file, and the definitions that are valid."""
    from sagactl.definitions import validation

    return [validation.check_file(f) for f in files]
