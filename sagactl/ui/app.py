"""``sagactl ui``: the sagas (stuck first, then active, then recent) refreshed on their own, a
saga as ``show`` draws it, failure groups, the dead-letter queues, and, with
``--allow-actions``, resume / abort / resolve on a saga or a group behind a confirmation that
shows the plan and asks why.

Keys as k9s and lazygit have them: arrows or j/k, Enter to open, Escape back, / to filter, g
groups, d dead-letter queues, ? help, q (or Ctrl-C) to quit. Foreign text (IDs, errors, message
bodies) is shown as text, never as markup, control characters escaped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Input, Static

from sagactl.tools.bulk import BulkAction
from sagactl.ui.screens import ConfirmScreen, DlqScreen, GroupsScreen, HelpScreen, SagaScreen
from sagactl.ui.source import ACTIONS, Overview, Row, Source, Target, matches
from sagactl.ui.widgets import Table, _one_line, fill, selected, ui_of
from sagactl.views.output import humanize_seconds, rich_parts, terminal_safe


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
    def ui(self) -> Any:
        return ui_of(self)

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
