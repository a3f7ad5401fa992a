"""``db init``, ``validate``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sagactl.config import Settings
from sagactl.ops import store_for

if TYPE_CHECKING:
    from sagactl import validation


def init_db(settings: Settings) -> tuple[str, int]:
    """Create or upgrade the schema; returns (where, version)."""
    with store_for(settings) as store:
        return store.info.location, store.init_schema()


def validate_files(files: Sequence[str]) -> list[validation.Report]:
    """Every problem of every file, and the definitions that are valid."""
    from sagactl import validation

    return [validation.check_file(f) for f in files]
