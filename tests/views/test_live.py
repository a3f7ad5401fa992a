"""The live step table: foreign text drawn literally, and a view that fails to draw never stops
the saga it shows (the engine calls it on every commit)."""

from __future__ import annotations

import io

import pytest

from sagactl.models import SagaRecord, SagaState, StepStatus, Transition
from sagactl.views.live import LiveView
from tests.support.sagas import T0, saga


def hostile_saga() -> tuple[SagaRecord, Transition]:
    record = saga("s[/x]\x1b]0;t\x07", state=SagaState.COMPENSATING, step=1, error="refund [/items/0] \x1b[31mred\nx")
    record.steps[0].status = StepStatus.COMPENSATED
    record.steps[1].error = "charge [bold]failed"
    return record, Transition(record.saga_id, "charge", "compensating", "compensating", T0)


def test_the_live_view_draws_foreign_text_literally() -> None:
    from rich.console import Console

    record, _ = hostile_saga()
    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(LiveView()._render(record))
    assert isinstance(console.file, io.StringIO)
    drawn = console.file.getvalue()
    assert "Order s[/x]\\x1b]0;t\\x07  compensating" in drawn
    assert "compensation: refund [/items/0] \\x1b[31mred\\nx" in drawn  # the compensation's error while it runs
    assert "\x1b" not in drawn and "\x07" not in drawn


def test_a_view_that_cannot_draw_stops_drawing_and_the_saga_goes_on(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    record, transition = hostile_saga()
    view = LiveView()
    calls = []

    def broken(drawn: object) -> object:
        calls.append(drawn)
        raise RuntimeError("cannot draw \x1b[2J")

    monkeypatch.setattr(view, "_render", broken)
    with view:
        view(record, transition)
        view(record, transition)
    assert len(calls) == 1  # it stopped trying after the first failure
    err = capsys.readouterr().err
    assert err.endswith("sagactl: warning: the live view stopped drawing (RuntimeError: cannot draw \\x1b[2J)\n")
