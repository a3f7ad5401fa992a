"""What every screen of ``sagactl ui`` shares: foreign text as cells, saga tables fitted to the
terminal's width (columns left out in list's order, IDs never split), the row under the
cursor, errors as one line, and the application as the screens see it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol, cast

from rich.text import Text
from textual.binding import Binding, BindingType
from textual.coordinate import Coordinate
from textual.dom import DOMNode
from textual.widgets import DataTable

from sagactl.models import iso
from sagactl.tools.bulk import BulkAction
from sagactl.ui.source import Overview, Row, Source, Target
from sagactl.views.output import cell, humanize_seconds, terminal_safe


class UiApp(Protocol):
    """The application as its screens use it."""

    source: Source
    allow_actions: bool
    interval: float
    where: str
    filter_text: str
    overview: Overview | None

    @property
    def size(self) -> Any: ...

    def ask(self, action: BulkAction, target: Target) -> None: ...
    def ask_redrive(self, queue: str) -> None: ...
    def load(self) -> Any: ...
    def call_from_thread(self, callback: Callable[..., Any], *args: Any) -> Any: ...


def ui_of(node: DOMNode) -> UiApp:
    return cast(UiApp, node.app)


NAV: list[BindingType] = [
    Binding("j", "cursor_down", "down", show=False),
    Binding("k", "cursor_up", "up", show=False),
]
COLUMNS = (  # (key, header); the last error takes what width is left
    ("saga_id", "SAGA"),
    ("saga_type", "TYPE"),
    ("state", "STATE"),
    ("step", "STEP"),
    ("age", "AGE"),
    ("stuck_for", "STUCK FOR"),
    ("last_error", "LAST ERROR"),
)
DROP_ORDER = ("saga_type", "stuck_for", "step", "last_error", "age")  # as list leaves them out
ELASTIC, ELASTIC_MIN = "last_error", 12
STATE_STYLE = {"compensating": "bold red", "failed": "red", "completed": "green", "pending": "cyan", "started": "cyan"}


def text(value: Any, style: str = "") -> Text:
    """Foreign text as a cell: never markup, control characters escaped."""
    return Text(terminal_safe(cell(value)), style=style)


class Table(DataTable[Text]):
    """A row-cursor table with j/k."""

    BINDINGS: ClassVar[list[BindingType]] = NAV

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(cursor_type="row", zebra_stripes=False, **kwargs)


def saga_cells(row: Row, now: Any) -> dict[str, Text]:
    from sagactl.views.listing import age, step_label

    saga = row.saga
    stuck = humanize_seconds(row.listed.stuck_for_seconds) if row.listed.stuck_for_seconds is not None else ""
    return {
        "saga_id": text(saga.saga_id),
        "saga_type": text(saga.saga_type),
        "state": text(saga.state.value, STATE_STYLE.get(saga.state.value, "")),
        "step": text(step_label(saga.current_step, saga.current_step_name)),
        "age": text(age(iso(saga.created_at), now)),
        "stuck_for": text(stuck, "yellow" if stuck else ""),
        "last_error": text(" ".join((saga.last_error or "").split())[:500]),
    }


def fitted(cells: Sequence[dict[str, Text]], width: int) -> list[tuple[str, str, int]]:
    """The columns that fit ``width`` (key, header, width): whole IDs, states, steps and times
    never fold; columns are left out in list's order, and the last error takes what is left."""
    widths = {key: max([len(header), *(c[key].cell_len for c in cells)]) for key, header in COLUMNS}
    shown = [key for key, _ in COLUMNS]

    def needed() -> int:
        fixed = sum(widths[k] for k in shown if k != ELASTIC)
        return fixed + (ELASTIC_MIN if ELASTIC in shown else 0) + 2 * len(shown)  # a cell's padding: 1 each side

    for key in DROP_ORDER:
        if needed() <= width:
            break
        shown.remove(key)
    headers = dict(COLUMNS)
    found = [(k, headers[k], widths[k]) for k in shown if k != ELASTIC]
    if ELASTIC in shown:
        left = max(ELASTIC_MIN, width - sum(w for _, _, w in found) - 2 * len(shown))
        found.append((ELASTIC, headers[ELASTIC], min(left, widths[ELASTIC])))
    return found


def fill(table: Table, rows: Sequence[Row], now: Any, width: int) -> None:
    """Replace ``table``'s rows and columns (fitted to ``width``), keeping the cursor on the
    same saga where it still is."""
    current = selected(table)
    cells = [saga_cells(row, now) for row in rows]
    columns = fitted(cells, width)
    table.clear(columns=True)
    for key, header, size in columns:
        table.add_column(Text(header, style="bold"), width=size, key=key)
    for row, shown in zip(rows, cells, strict=True):
        values = []
        for key, _, size in columns:
            value = shown[key]
            if value.cell_len > size:
                value = value.copy()
                value.truncate(size - 1)
                value.append("…")
            values.append(value)
        table.add_row(*values, key=row.saga.saga_id)
    if current is not None:
        keys = [row.saga.saga_id for row in rows]
        if current in keys:
            table.move_cursor(row=keys.index(current))


def selected(table: Table) -> str | None:
    if not table.row_count:
        return None
    return str(table.coordinate_to_cell_key(Coordinate(table.cursor_row, 0)).row_key.value)


def _one_line(exc: BaseException) -> str:
    from sagactl.errors import SagactlError
    from sagactl.masking import mask_secrets

    text = exc.one_line() if isinstance(exc, SagactlError) else f"{type(exc).__name__}: {exc}"
    return mask_secrets(" ".join(text.split()))


