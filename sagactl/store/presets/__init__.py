"""Presets: the saga tables of the frameworks people run, read by name (``preset: dbos`` in a
store block of sagactl.yaml, or ``--preset dbos`` beside ``--dsn``). A preset fills the mapping
block (table, columns, states; any key written beside it overrides the preset's), checks that
the table is the one it knows (a missing or retyped column is one line naming the column and
the preset, exit 4), and may add what the framework keeps elsewhere: the steps it recorded,
errors in its own formats.

    base.py       what a preset is (Preset), the defaults of its hooks
    dbos.py       DBOS Transact's system database: workflow_status, workflow_output, operation_outputs
    eventuate.py  Eventuate Tram Sagas' saga_instance: states from three booleans, a composite key

May import: what sagactl.store may (the root leaves, sagactl.definitions) and sagactl.store.
"""

from __future__ import annotations

from importlib import import_module

from sagactl.config import PRESET_NAMES
from sagactl.errors import UsageError
from sagactl.store.presets.base import Preset

# name -> module (loaded only when that preset is used), whose PRESET is the Preset
MODULES = {"dbos": "sagactl.store.presets.dbos", "eventuate": "sagactl.store.presets.eventuate"}
assert tuple(MODULES) == PRESET_NAMES, "config.PRESET_NAMES names the presets sagactl.yaml may use"


def preset_named(name: str) -> Preset:
    """The preset called ``name`` (UsageError for one sagactl does not know)."""
    module = MODULES.get(name)
    if module is None:
        raise UsageError(f"unknown preset '{name}'", hint=f"known presets: {', '.join(MODULES)}")
    preset: Preset = import_module(module).PRESET
    return preset


__all__ = ["MODULES", "Preset", "preset_named"]
