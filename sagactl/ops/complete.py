"""What shell completion offers: saga IDs, a saga's step names, context names. Each is
bounded and quick (a PostgreSQL log gets a 1 s connect timeout unless its DSN sets one) and
callers swallow every error: a Tab must never print a traceback or hang."""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import closing

from sagactl.config import Settings

LIMIT = 50


def _quick(dsn: str) -> str:
    if dsn.startswith(("postgresql://", "postgres://")) and "connect_timeout" not in dsn:
        return dsn + ("&" if "?" in dsn else "?") + "connect_timeout=1"
    return dsn


def saga_ids(settings: Settings, prefix: str, limit: int = LIMIT) -> list[str]:
    """Saga IDs of the configured log (or mapped table) starting with ``prefix``."""
    from sagactl.store import open_reader
    from sagactl.store.complete import ids_with_prefix
    from sagactl.store.sql import SqlStore

    if settings.mapping is not None:
        with closing(open_reader(_quick(settings.dsn), settings.mapping)) as mapped:
            return mapped.ids_with_prefix(prefix, limit)
    with closing(open_reader(_quick(settings.dsn))) as reader:
        return ids_with_prefix(reader, prefix, limit) if isinstance(reader, SqlStore) else []


def step_names(settings: Settings, saga_id: str) -> list[str]:
    """The step names of ``saga_id`` in the configured log."""
    from sagactl.store import open_reader
    from sagactl.store.complete import step_names as names
    from sagactl.store.sql import SqlStore

    if settings.mapping is not None or not saga_id:
        return []
    with closing(open_reader(_quick(settings.dsn))) as reader:
        return names(reader, saga_id) if isinstance(reader, SqlStore) else []


def context_names(config: str | None, env: Mapping[str, str]) -> list[str]:
    """The contexts the config file defines."""
    from sagactl.tools.contexts import list_contexts

    return [c.name for c in list_contexts(config, None, env).contexts]
