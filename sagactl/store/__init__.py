"""Saga log stores, picked by DSN. A module per dialect, each loaded only when asked for.

    base.py        the Store (writer) and SagaReader protocols and the records they speak
    sql.py         the queries both dialects share
    listing.py     the SELECTs behind list and saga ID prefixes, and the list rows
    history.py     reruns, migrations, retention (prune)
    stepruns.py    the reads behind stats --steps: one row per step execution
    complete.py    the reads behind shell completion
    health.py      the reads behind doctor (writable, in flight)
    migrations.py  the versioned schema files in schema/<dialect>/
    sqlite.py      the embedded log (one file)
    postgres.py    the team log (one statement per write)
    mapped.py      another orchestrator's table, read-only (a SagaReader), on either dialect
    mapping.py     its mapping (store: in sagactl.yaml, over a preset's block), read and checked
    mapsql.py      its SQL: mapped values, state tests, IDs, times in the table's units
    fragments.py   SQL built from text, quoted identifiers and bound parameters, for either dialect
    foreign.py     its database: a read-only connection, the catalog, failures as one line
    presets/       the frameworks' tables read by name: dbos, eventuate

May import: the root leaves and sagactl.definitions. SQL lives here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable

from sagactl.config import TableMapping
from sagactl.errors import UsageError
from sagactl.masking import mask_dsn
from sagactl.store.base import SagaReader, Store


def open_store(dsn: str, *, create: bool = True, progress: Callable[[int, str], None] | None = None) -> Store:
    """Open the saga log named by ``dsn``.

    ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` or
    ``postgresql://user@host/db``. With ``create=False`` a missing SQLite file reads as an
    empty log and is not created (read-only commands leave no trace). ``progress(version,
    name)`` is called before each migration a writer applies on opening.
    """
    if dsn.startswith("sqlite://"):
        from sagactl.store.sqlite import SqliteStore

        path = dsn.removeprefix("sqlite://")
        path = path[1:] if path.startswith("/") else path
        if not path:
            raise UsageError(f"no file in DSN {dsn!r}", hint="use sqlite:///path/to/file.db")
        return SqliteStore(path, create=create, progress=progress)
    if dsn.startswith(("postgresql://", "postgres://")):
        try:
            from sagactl.store.postgres import PostgresStore
        except ImportError as exc:  # pragma: no cover - depends on installation
            raise UsageError(f"PostgreSQL support is not installed: {exc}") from exc
        return PostgresStore(dsn, create=create, progress=progress)
    raise UsageError(
        f"unsupported DSN {mask_dsn(dsn)!r}",
        hint="use sqlite:///path/file.db or postgresql://user@host/db",
    )


def open_reader(dsn: str, mapping: TableMapping | None = None) -> SagaReader:
    """The saga log named by ``dsn`` for reading (nothing created or upgraded), or with
    ``mapping`` another orchestrator's table in that database (PostgreSQL or SQLite)."""
    if mapping is not None:
        from sagactl.store.mapped import MappedTableStore

        return MappedTableStore(dsn, mapping)
    return open_store(dsn, create=False)


__all__ = ["SagaReader", "Store", "open_reader", "open_store"]
