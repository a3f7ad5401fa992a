"""``sagactl ui``: the sagas (stuck first, then active, then recent) refreshed on their own, a
saga as ``show`` draws it, failure groups, the dead-letter queues, and, with
``--allow-actions``, resume / abort / resolve on a saga or a group behind a confirmation that
shows the plan and asks why.

Keys as k9s and lazygit have them: arrows or j/k, Enter to open, Escape back, / to filter, g
groups, d dead-letter queues, ? help, q (or Ctrl-C) to quit. Foreign text (IDs, errors, message
bodies) is shown as text, never as markup, control characters escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.coordinate import Coordinate
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Static

from sagactl.models import SagaRecord, SagaSummary, iso
from sagactl.tools.bulk import BulkAction
from sagactl.ui.source import ACTIONS, Overview, Row, Source, Target, matches
from sagactl.views.output import cell, humanize_seconds, rich_parts, terminal_safe

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


class SagasScreen(Screen[None]):
    """The main screen: a header with the counts, the sagas, a filter line."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "open"),
        Binding("slash", "filter", "filter"),
        Binding("g", "groups", "groups"),
        Binding("d", "dlq", "DLQ"),
        Binding("question_mark", "help", "help"),
        Binding("escape", "clear_filter", "clear filter", show=False),
        *[Binding(key, f"act('{action.value}')", action.value, show=False) for key, action in ACTIONS.items()],
    ]

    rows: list[Row] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="header")
        yield Table(id="sagas")
        yield Input(placeholder="filter: ID prefix, type, state, step or error text", id="filter")
        yield Static(id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#filter", Input).display = False
        self.query_one(Table).focus()

    @property
    def ui(self) -> SagactlUi:
        app = self.app
        assert isinstance(app, SagactlUi)
        return app

    def show(self, overview: Overview) -> None:
        ui = self.ui
        totals = overview.stats.totals()
        parts: list[tuple[str, str]] = [("sagactl", "bold")]
        counts = (
            ("active", totals["active"], "bold"),
            ("stuck", totals["stuck"], "bold yellow" if totals["stuck"] else "bold"),
            ("compensating", totals["compensating"], "bold red" if totals["compensating"] else "bold"),
            ("failed", totals["failed"], "bold"),
            ("completed", totals["completed"], "bold"),
        )
        for label, count, style in counts:
            parts += [(" · ", "dim"), (str(count), style), (f" {label}", "dim")]
        parts.append((" · actions on" if ui.allow_actions else " · read-only", "bold" if ui.allow_actions else "dim"))
        if ui.filter_text:
            parts.append((f" · filter: {terminal_safe(ui.filter_text)}", "bold magenta"))
        parts.append((f" · {terminal_safe(ui.where)}", "dim"))
        self.query_one("#header", Static).update(Text.assemble(*parts))
        rows = [row for row in overview.rows if matches(row, ui.filter_text)]
        self.rows = rows
        fill(self.query_one(Table), rows, ui.source.clock.now(), self.size.width or ui.size.width)
        every = f"refreshed every {humanize_seconds(ui.interval)}" if ui.interval else "refresh with F5"
        status = f"{len(rows)} saga{'' if len(rows) == 1 else 's'} shown; {every}"
        if overview.error:
            status = f"refresh failed: {overview.error} (showing the last good one)"
        self.query_one("#status", Static).update(Text(terminal_safe(status), style="red" if overview.error else "dim"))

    def on_resize(self) -> None:
        if self.rows is not None:
            fill(self.query_one(Table), self.rows, self.ui.source.clock.now(), self.size.width)

    def action_open(self) -> None:
        saga_id = selected(self.query_one(Table))
        if saga_id is not None:
            self.app.push_screen(SagaScreen(saga_id))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        box.value = self.ui.filter_text
        box.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.ui.filter_text = event.value.strip()
        event.input.display = False
        self.query_one(Table).focus()
        if self.ui.overview is not None:
            self.show(self.ui.overview)

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = False
        self.ui.filter_text = ""
        self.query_one(Table).focus()
        if self.ui.overview is not None:
            self.show(self.ui.overview)

    def action_groups(self) -> None:
        self.app.push_screen(GroupsScreen())

    def action_dlq(self) -> None:
        self.app.push_screen(DlqScreen())

    def action_help(self) -> None:
        self.app.push_screen(HelpScreen())

    def action_act(self, action: str) -> None:
        saga_id = selected(self.query_one(Table))
        if saga_id is not None:
            self.ui.ask(BulkAction(action), Target(saga_id=saga_id))


class SagaScreen(Screen[None]):
    """One saga as ``show`` draws it on a terminal: why it failed, details, the timeline."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "back"),
        Binding("j", "scroll('down')", "down", show=False),
        Binding("k", "scroll('up')", "up", show=False),
        Binding("question_mark", "app.help", "help"),
        *[Binding(key, f"act('{action.value}')", action.value, show=False) for key, action in ACTIONS.items()],
    ]

    def __init__(self, saga_id: str) -> None:
        super().__init__()
        self.saga_id = saga_id
        self.saga: SagaRecord | SagaSummary | None = None
        self.body: Any = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail"):
            yield Static(id="body")
        yield Footer()

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        from sagactl.views.sagas import show_document

        ui = self.app
        assert isinstance(ui, SagactlUi)
        body = self.query_one("#body", Static)
        try:
            self.saga = ui.source.saga(self.saga_id)
        except Exception as exc:  # a one-line reason, as the CLI gives it
            body.update(Text(terminal_safe(_one_line(exc)), style="red"))
            return
        width = max(40, self.size.width - 2 if self.size.width else ui.size.width - 2)
        parts = rich_parts(show_document(self.saga, ui.source.clock.now()), width)
        from rich.console import Group

        self.body = Group(*parts)
        body.update(self.body)

    def action_scroll(self, where: str) -> None:
        scroll = self.query_one("#detail", VerticalScroll)
        scroll.scroll_down() if where == "down" else scroll.scroll_up()

    def action_act(self, action: str) -> None:
        ui = self.app
        assert isinstance(ui, SagactlUi)
        step = None
        if BulkAction(action) is BulkAction.RESOLVE and isinstance(self.saga, SagaRecord):
            step = self.saga.current_step_name
        ui.ask(BulkAction(action), Target(saga_id=self.saga_id, step=step))


class GroupsScreen(Screen[None]):
    """Failure groups (of the stuck sagas; of the failed ones when none is stuck)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "back"),
        Binding("enter", "open", "open group"),
        Binding("question_mark", "app.help", "help"),
        *[Binding(key, f"act('{action.value}')", action.value, show=False) for key, action in ACTIONS.items()],
    ]

    def compose(self) -> ComposeResult:
        yield Static(id="title")
        yield Table(id="groups")
        yield Footer()

    def on_mount(self) -> None:
        ui = self.app
        assert isinstance(ui, SagactlUi)
        try:
            self.result = ui.source.groups()
        except Exception as exc:
            self.query_one("#title", Static).update(Text(terminal_safe(_one_line(exc)), style="red"))
            return
        what = "stuck sagas" if self.result.stuck else "failed sagas"
        self.query_one("#title", Static).update(
            Text.assemble(("Failure groups ", "bold"), (f"of the {what} by step and error", "dim"))
        )
        table = self.query_one(Table)
        table.add_columns("GROUP", "SAGAS", "STEP", "ERROR SIGNATURE", "OLDEST")
        now = ui.source.clock.now()
        for group in self.result.groups:
            oldest = "" if group.oldest is None else humanize_seconds(max(0.0, (now - group.oldest).total_seconds()))
            table.add_row(
                text(group.key),
                text(group.count),
                text(group.fields.get("step") or ""),
                text((group.fields.get("error") or "")[:120]),
                text(oldest),
                key=group.key,
            )
        table.focus()

    def action_open(self) -> None:
        key = selected(self.query_one(Table))
        if key is not None:
            self.app.push_screen(GroupSagasScreen(key, self.result.stuck))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_act(self, action: str) -> None:
        key = selected(self.query_one(Table))
        ui = self.app
        if key is not None and isinstance(ui, SagactlUi):
            ui.ask(BulkAction(action), Target(group=key, stuck=self.result.stuck))


class GroupSagasScreen(Screen[None]):
    """The sagas of one failure group."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "back"),
        Binding("enter", "open", "open"),
        Binding("question_mark", "app.help", "help"),
    ]

    def __init__(self, key: str, stuck: bool) -> None:
        super().__init__()
        self.key, self.stuck = key, stuck

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("Group ", "bold"), (self.key, "")), id="title")
        yield Table(id="members")
        yield Footer()

    def on_mount(self) -> None:
        ui = self.app
        assert isinstance(ui, SagactlUi)
        fill(self.query_one(Table), ui.source.group_rows(self.key, self.stuck), ui.source.clock.now(), ui.size.width)
        self.query_one(Table).focus()

    def action_open(self) -> None:
        saga_id = selected(self.query_one(Table))
        if saga_id is not None:
            self.app.push_screen(SagaScreen(saga_id))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()


class DlqScreen(Screen[None]):
    """The dead-letter queues of aws.dlqs, peeked: every message visible again at once. With
    --allow-actions, R redrives the queue under the cursor (its plan first)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "back"),
        Binding("R", "redrive", "redrive", show=False),
        Binding("question_mark", "app.help", "help"),
    ]
    body: Any = None

    def compose(self) -> ComposeResult:
        yield Table(id="dlqs")
        with VerticalScroll():
            yield Static(id="queues")
        yield Footer()

    def on_mount(self) -> None:
        from rich.console import Group

        from sagactl.views.dlq import dlq_messages_document

        ui = self.app
        assert isinstance(ui, SagactlUi)
        queues = ui.source.dlqs()
        table = self.query_one(Table)
        table.add_columns("QUEUE", "MESSAGES", "")
        parts: list[Any] = []
        if not queues:
            parts.append(Text("no dead-letter queues configured: name them in sagactl.yaml, aws.dlqs: [QUEUE, ...]"))
        for name, peeked in queues:
            count = "?" if isinstance(peeked, str) else str(len(peeked.messages))
            table.add_row(text(name), text(count), text(peeked if isinstance(peeked, str) else ""), key=name)
            parts.append(Text.assemble(("queue ", "bold"), (terminal_safe(name), "bold")))
            if isinstance(peeked, str):
                parts.append(Text(terminal_safe(peeked), style="red"))
                continue
            parts.extend(rich_parts(dlq_messages_document(peeked), max(40, ui.size.width - 2)))
        table.styles.height = len(queues) + 2
        self.body = Group(*parts)
        self.query_one("#queues", Static).update(self.body)
        table.focus()

    def action_redrive(self) -> None:
        queue = selected(self.query_one(Table))
        ui = self.app
        if queue is not None and isinstance(ui, SagactlUi):
            ui.ask_redrive(queue)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "close"),
        Binding("question_mark", "app.pop_screen", "close", show=False),
        Binding("q", "app.pop_screen", "close", show=False),
    ]
    KEYS: ClassVar[list[tuple[str, str]]] = [
        ("↑ ↓  j k", "move"),
        ("Enter", "open the saga (or the group)"),
        ("Escape", "back; clear the filter"),
        ("/", "filter: ID prefix, type, state, step or error text"),
        ("g", "failure groups (Enter lists a group's sagas)"),
        ("d", "dead-letter queues (peeked, never consumed)"),
        ("r  a  v", "resume, abort, resolve the current step (with --allow-actions)"),
        ("R", "on the DLQ screen: redrive the queue (with --allow-actions)"),
        ("F5", "refresh now (it also refreshes on its own, --interval)"),
        ("?", "this help"),
        ("q  Ctrl-C", "quit"),
    ]

    def compose(self) -> ComposeResult:
        lines = [Text.assemble((f"{key:<12}", "bold"), what) for key, what in self.KEYS]
        yield Static(Text("\n").join(lines), id="help")


Runner = Callable[[str | None, Callable[[str], None]], str]
"""An action once confirmed: (reason, a line of progress) -> its summary line."""


class ConfirmScreen(ModalScreen[None]):
    """An action's plan (the dry run the CLI prints), a reason when it records one, then the
    run's progress and its summary."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "cancel")]

    def __init__(self, title: str, plan: list[Any], runner: Runner, reason: str) -> None:
        super().__init__()
        self.title_text, self.plan, self.runner = title, plan, runner
        self.reason_rule = reason  # required | optional | none
        self.done = False

    def compose(self) -> ComposeResult:
        from rich.console import Group

        with VerticalScroll(id="confirm"):
            yield Static(Text.assemble(("Plan: ", "bold"), terminal_safe(self.title_text)))
            yield Static(Group(*self.plan), id="plan")
            yield Static(id="progress")
        if self.reason_rule == "none":
            hint = "Enter runs it, Escape cancels"
        else:
            optional = " (optional)" if self.reason_rule == "optional" else ""
            hint = f"why{optional}: recorded with your name in each saga; Enter runs it, Escape cancels"
        yield Input(placeholder=hint, id="reason")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self.done:
            self.app.pop_screen()
            return
        reason = event.value.strip() or None
        if reason is None and self.reason_rule == "required":
            self.query_one("#progress", Static).update(Text("give a reason: it is recorded in each saga", style="red"))
            return
        event.input.disabled = True
        self.run(reason if self.reason_rule != "none" else None)

    @work(thread=True, exclusive=True)
    def run(self, reason: str | None) -> None:
        ui = self.app
        lines: list[Text] = []

        def line(message: str) -> None:
            lines.append(Text(terminal_safe(message)))
            ui.call_from_thread(self._progress, lines[-20:])

        try:
            summary = self.runner(reason, line)
        except Exception as exc:
            summary = _one_line(exc)
        lines.append(Text(terminal_safe(summary), style="bold"))
        lines.append(Text("Enter or Escape to close", style="dim"))
        ui.call_from_thread(self._finished, lines[-22:])

    def _progress(self, lines: Iterable[Text]) -> None:
        self.query_one("#progress", Static).update(Text("\n").join(lines))

    def _finished(self, lines: Iterable[Text]) -> None:
        self.done = True
        self._progress(lines)
        box = self.query_one("#reason", Input)
        box.disabled = False
        box.focus()
        ui = self.app
        if isinstance(ui, SagactlUi):
            ui.load()


def _one_line(exc: BaseException) -> str:
    from sagactl.errors import SagactlError
    from sagactl.masking import mask_secrets

    text = exc.one_line() if isinstance(exc, SagactlError) else f"{type(exc).__name__}: {exc}"
    return mask_secrets(" ".join(text.split()))


class SagactlUi(App[int]):
    """The application: refreshes the main screen every ``interval`` seconds."""

    TITLE = "sagactl"
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    #header { height: 1; padding: 0 1; background: $boost; }
    #status { height: 1; padding: 0 1; }
    #filter { dock: bottom; }
    Table { height: 1fr; }
    #help { width: 72; height: auto; border: round $accent; padding: 1 2; background: $surface; }
    HelpScreen { align: center middle; }
    ConfirmScreen { align: center middle; }
    #confirm { width: 90%; height: 80%; border: round $warning; padding: 0 1; background: $surface; }
    #reason { width: 90%; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("f5", "reload", "refresh", show=False),
        Binding("ctrl+c", "quit", "quit", show=False, priority=True),
    ]

    def __init__(self, source: Source, *, interval: float = 2.0, allow_actions: bool = False, where: str = "") -> None:
        super().__init__()
        self.source, self.interval, self.allow_actions, self.where = source, interval, allow_actions, where
        self.filter_text = ""
        self.overview: Overview | None = None
        self.loads = 0  # refreshes shown (tests wait on it)

    def on_mount(self) -> None:
        self.push_screen(SagasScreen())
        self.load()
        if self.interval > 0:
            self.set_interval(self.interval, self.load)

    @work(thread=True, exclusive=True, group="load")
    def load(self) -> None:
        try:
            overview = self.source.overview()
        except Exception as exc:
            from sagactl.tools.inspect import Stats

            last = self.overview
            stats = last.stats if last else Stats(self.source.clock.now(), self.where)
            overview = Overview(stats, last.rows if last else [], _one_line(exc))
        self.call_from_thread(self._shown, overview)

    def _shown(self, overview: Overview) -> None:
        if overview.error is None:
            self.overview = overview
        for screen in self.screen_stack:
            if isinstance(screen, SagasScreen):
                screen.show(overview)
        self.loads += 1

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_reload(self) -> None:
        self.load()

    def ask(self, action: BulkAction, target: Target) -> None:
        """Plan ``action`` on ``target`` and ask for confirmation and a reason; refused with a
        note when actions are off (the default) or the log is a foreign table."""
        if not self.allow_actions:
            self.notify("read-only: start sagactl ui with --allow-actions to act", severity="warning")
            return
        if self.source.read_only:
            self.notify("a foreign table is read-only", severity="warning")
            return
        if action is BulkAction.RESOLVE and not target.step and target.saga_id:
            self.notify("resolve needs the step whose compensation was done by hand: open the saga", severity="warning")
            return
        from sagactl.views.bulk import bulk_summary_line, plan_document

        try:
            plan = self.source.plan(action, target)
        except Exception as exc:
            self.notify(_one_line(exc), severity="error")
            return

        def runner(reason: str | None, line: Callable[[str], None]) -> str:
            def report(item: Any, result: Any, error: Any) -> None:
                outcome = _one_line(error) if error is not None else result.saga.state.value if result else "done"
                line(f"{item.saga.saga_id}: {outcome}")

            return bulk_summary_line(self.source.act(action, target, reason, report))

        parts = rich_parts(plan_document(plan), max(40, self.size.width - 6))
        rule = "optional" if action is BulkAction.RESUME else "required"
        self.push_screen(ConfirmScreen(f"{action.value} {target.describe()}", parts, runner, rule))

    def ask_redrive(self, queue: str) -> None:
        """Plan a redrive of ``queue`` (the CLI's --dry-run), then run it on Enter."""
        if not self.allow_actions:
            self.notify("read-only: start sagactl ui with --allow-actions to act", severity="warning")
            return
        from sagactl.views.dlq import redrive_document, redrive_summary_line

        try:
            plan = self.source.redrive(queue, dry_run=True)
        except Exception as exc:
            self.notify(_one_line(exc), severity="error")
            return

        def runner(reason: str | None, line: Callable[[str], None]) -> str:
            def progress(result: Any, total: int | None) -> None:
                line(redrive_summary_line(result))

            return redrive_summary_line(self.source.redrive(queue, progress=progress))

        parts = rich_parts(redrive_document(plan), max(40, self.size.width - 6))
        self.push_screen(ConfirmScreen(f"redrive --dlq {queue}", parts, runner, "none"))


def run_ui(source: Source, *, interval: float, allow_actions: bool, where: str) -> int:
    """Run the UI until q or Ctrl-C; the terminal is restored whatever happens (Textual's own
    driver puts it back, on a crash of the view too). The exit code: 0."""
    app = SagactlUi(source, interval=interval, allow_actions=allow_actions, where=where)
    try:
        app.run()
    finally:
        source.close()
    return int(app.return_code or 0)
