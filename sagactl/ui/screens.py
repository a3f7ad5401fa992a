"""The screens ``sagactl ui`` opens from its main one: a saga as ``show`` draws it, failure
groups and a group's sagas, the dead-letter queues (peeked), help, and the confirmation every
action goes through (its plan, a reason, then its progress)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Input, Static

from sagactl.models import SagaRecord, SagaSummary
from sagactl.tools.bulk import BulkAction
from sagactl.ui.source import ACTIONS, Target
from sagactl.ui.widgets import Table, _one_line, fill, selected, text, ui_of
from sagactl.views.output import humanize_seconds, rich_parts, terminal_safe


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

        ui = ui_of(self)
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
        ui = ui_of(self)
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
        ui = ui_of(self)
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
        ui = ui_of(self)
        if key is not None:
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
        ui = ui_of(self)
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

        ui = ui_of(self)
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
        if queue is not None:
            ui_of(self).ask_redrive(queue)


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
        ui = ui_of(self)
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
        ui_of(self).load()


