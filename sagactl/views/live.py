"""The live view of a running saga on a terminal: one row per step, updated on every commit;
and the screen ``show --follow`` and ``list --watch`` redraw in place.

Everything in it that came from elsewhere (saga ID and type, step names, errors) is shown as
``Text`` through ``output.terminal_safe``; and a view that fails to draw stops drawing, never
the saga it shows.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from sagactl.masking import mask_secrets
from sagactl.models import SagaRecord, StepRecord, StepStatus, Transition
from sagactl.views.output import terminal_safe, warning_line

_ICONS = {
    StepStatus.PENDING: ("·", "dim"),
    StepStatus.EXECUTING: ("▶", "blue"),
    StepStatus.COMPLETED: ("✔", "green"),
    StepStatus.FAILED: ("✘", "red"),
    StepStatus.COMPENSATING: ("↺", "yellow"),
    StepStatus.COMPENSATED: ("↩", "cyan"),
}


class LiveView:
    """An engine observer that redraws a step table on stderr (rich.live)."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=True)
        self._live = Live(console=self.console, refresh_per_second=8, transient=False)
        self._saga: SagaRecord | None = None
        self.failure: Exception | None = None

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._saga is not None:
            self._draw(self._saga)
        self._live.__exit__(kind, exc, tb)
        if self.failure is not None:
            warning_line(f"the live view stopped drawing ({type(self.failure).__name__}: {self.failure})")

    def __call__(self, saga: SagaRecord, transition: Transition) -> None:
        self._saga = saga
        self._draw(saga)

    def _draw(self, saga: SagaRecord) -> None:
        """Redraw; a failure to draw is kept for a warning at the end and the view goes blank,
        so the engine calling this goes on driving the saga."""
        if self.failure is not None:
            return
        try:
            self._live.update(self._render(saga), refresh=True)
        except Exception as exc:
            from rich.text import Text

            self.failure = exc
            self._live.update(Text(""), refresh=False)

    def _render(self, saga: SagaRecord) -> Any:
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        title = Text.assemble(
            terminal_safe(f"{saga.saga_type} {saga.saga_id}"), "  ", (saga.state.value, "bold")
        )
        table = Table(show_edge=False, header_style="bold")
        for header in ("", "STEP", "STATUS", "ATTEMPTS", "DETAIL"):
            table.add_column(header, overflow="fold")
        for step in saga.steps:
            icon, style = _ICONS[step.status]
            attempts = str(step.attempts) + (
                f" +{step.compensation_attempts}c" if step.compensation_attempts else ""
            )
            table.add_row(
                Text(icon, style=style),
                Text(terminal_safe(step.name)),
                Text(step.status.value, style=style),
                Text(attempts),
                Text(terminal_safe(mask_secrets(_detail(step)))),
            )
        return Group(title, table)


def _detail(step: StepRecord) -> str:
    """The step's error: the compensation's while it is being undone, else the action's."""
    if step.compensation_error and step.status in (StepStatus.COMPENSATING, StepStatus.COMPENSATED):
        return f"compensation: {step.compensation_error}"
    return step.error or ""


class LiveScreen:
    """A display on stdout redrawn in place with each frame it is given (``show --follow``,
    ``list --watch``); the last frame stays on the screen, whole, when it stops."""

    def __init__(self) -> None:
        from rich.live import Live

        from sagactl.views.output import terminal_console

        self.console = terminal_console()
        self._live = Live(console=self.console, auto_refresh=False, transient=False)

    def __enter__(self) -> LiveScreen:
        self._live.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._live.__exit__(kind, exc, tb)

    def show(self, parts: list[Any]) -> None:
        """Draw ``parts`` (rich renderables) as the new frame."""
        from rich.console import Group

        self._live.update(Group(*parts), refresh=True)

    @property
    def width(self) -> int:
        return int(self.console.width)


def spinner(text: str) -> Any:
    """A transient spinner with ``text`` on stderr (``.update(text)``; a context manager), for
    work whose length is not known: db init's migrations."""
    from rich.console import Console

    return Console(stderr=True).status(text)


def progress_bar() -> Any:
    """A transient rich progress bar on stderr (description as plain text, never markup; done of
    total; elapsed): redrive's and the bulk commands'."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    )
