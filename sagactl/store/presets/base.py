"""What a preset is: a framework's mapping block and the hooks sagactl.store.mapped's
MappedTableStore calls, each a no-op unless the preset needs it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sagactl.errors import UnavailableError
from sagactl.models import SagaSummary
from sagactl.store.base import SagaQuery
from sagactl.store.foreign import Column, ForeignDb, Kind
from sagactl.store.fragments import Dialect, Sql
from sagactl.store.mapping import Mapping
from sagactl.store.mapsql import TableSql


class TableReader(Protocol):
    """What a preset reads through (sagactl.store.mapped.MappedTableStore): the table's mapping,
    its SQL, its database; ``where`` names the table in messages."""

    where: str
    mapping: Mapping
    db: ForeignDb
    sql: TableSql

    def rows(self, statement: Sql, doing: str) -> list[tuple[Any, ...]]: ...

    def warn_once(self, key: str, message: str) -> None: ...


class Preset:
    """A framework's saga table, by name. ``framework``: what to call it in messages."""

    name = ""
    framework = ""

    def block(self, dialect: Dialect, columns: dict[str, Column] | None) -> dict[str, Any]:
        """The mapping block (``table``, ``columns``, ``states``, ``state_case``,
        ``stuck_states``) for ``dialect``; ``columns``: the table's, once known (a preset may
        leave out what an older schema lacks)."""
        raise NotImplementedError

    def check(self, store: TableReader, columns: dict[str, Column]) -> None:
        """Raise one line (UnavailableError, exit 4) when the table is not the one this preset
        knows; the mapping's own check follows."""

    def refuse(self, store: TableReader, query: SagaQuery) -> None:
        """Raise UsageError for a filter this framework's table cannot answer."""

    def enrich(self, store: TableReader, sagas: list[SagaSummary]) -> list[SagaSummary]:
        """``sagas`` with what the framework keeps beside the table (errors...)."""
        return sagas

    def detail(self, store: TableReader, saga: SagaSummary) -> SagaSummary:
        """``saga`` as ``show`` gives it: with the steps the framework recorded, notes."""
        return saga

    def require(
        self,
        store: TableReader,
        columns: dict[str, Column],
        wanted: Sequence[tuple[str, Sequence[Kind]]],
        why: str,
    ) -> None:
        """UnavailableError naming the first column of ``wanted`` the table lacks or holds as
        another kind, this preset, and ``why`` (what schema it knows)."""
        for name, kinds in wanted:
            found = columns.get(name)
            if found is None:
                problem = f"has no column {name!r}"
            elif found.kind not in kinds and found.kind is not Kind.OTHER:
                problem = f"holds {name!r} as {found.declared}, not {' or '.join(k.value for k in kinds)}"
            else:
                continue
            raise UnavailableError(
                f"{store.where}: the table {problem}, which the {self.name} preset reads: {why}",
                hint=f"check --dsn and the table; map it with store.table and store.columns if it is not"
                f" {self.framework}'s",
            )
