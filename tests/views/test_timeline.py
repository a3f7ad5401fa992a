"""show's timeline and headline on a terminal: snapshots at 80 and 160 columns on a real
pseudo-terminal, what is derived from the transitions, and foreign text drawn literally."""

from __future__ import annotations

from datetime import datetime

import pytest

from sagactl.models import Phase, SagaRecord, SagaState
from sagactl.views.output import emit, terminal_safe
from sagactl.views.sagas import show_document
from sagactl.views.timeline import build, headline
from tests.support.histories import failed_saga, running_saga, stuck_saga, waiting_retry
from tests.support.pty import call_on_pty, colour_codes, strip_escapes
from tests.support.sagas import at
from tests.support.snapshots import assert_snapshot
from tests.test_foreign_text import EVIL, SHOWN, foreign_controls


def shown(record: SagaRecord, now: datetime, width: int) -> tuple[str, str]:
    """``show`` of ``record`` at ``now`` on a pty ``width`` columns wide: raw and without escapes."""
    _, tty = call_on_pty(lambda: emit(show_document(record, now)), size=(width, 60))
    return tty, strip_escapes(tty)


@pytest.mark.parametrize("width", [80, 160])
def test_a_failed_saga_at_80_and_160_columns(width: int) -> None:
    tty, text = shown(failed_saga(), at(40), width)
    assert_snapshot(f"show-failed-{width}", text)
    timeline = text[text.index("Timeline") : text.index("Steps")].splitlines()
    assert max(len(line) for line in timeline) <= width  # drawn to the width (detail lines wrap as before)
    assert text.startswith("✘ failed at charge (attempt 3): HTTP 402 from POST /charges: card declined\n")
    assert "\x1b[1;31m✘ failed at charge" in tty  # on top, in bold red
    assert colour_codes(tty)


@pytest.mark.parametrize("width", [80, 160])
def test_a_stuck_compensation_at_80_and_160_columns(width: int) -> None:
    _, text = shown(stuck_saga(), at(20), width)
    assert_snapshot(f"show-stuck-{width}", text)
    lines = text.splitlines()
    assert lines[0] == "✘ failed at charge: no reply within 5s"  # why it failed, above its compensation's trouble
    assert lines[1].startswith("↺ compensation of charge failing (attempt 3): HTTP 503 from POST /refunds")


def test_a_running_saga_shows_now_and_its_deadline() -> None:
    _, text = shown(running_saga(), at(20), 80)
    assert_snapshot("show-running-80", text)
    lane = next(line for line in text.splitlines() if line.startswith("▸ charge"))  # the current position
    assert "↻" in lane and lane.rstrip().endswith("▶")  # the retry, and the attempt in flight
    assert "┆" in text and "│ now +20s" in text and "┆ deadline 2026-11-26T08:00:25.000000Z (in 5.0s)" in text


def test_attempts_come_from_the_transitions() -> None:
    tl = build(failed_saga(), at(40))
    lanes = {(lane.step, lane.phase): lane for lane in tl.lanes}
    assert [lane.label for lane in tl.lanes] == ["reserve", "charge", "notify", "undo reserve"]
    charge = lanes[("charge", Phase.ACTION)]
    assert [(a.number, a.start, a.end, a.ended) for a in charge.attempts] == [
        (1, at(1.25), at(3.0), "retried"),  # its end is not recorded: the next attempt's start
        (2, at(3.0), at(6.5), "retried"),
        (3, at(6.5), at(8.0), "failed"),
    ]
    undo = lanes[("reserve", Phase.COMPENSATION)]
    assert [(a.number, a.ended) for a in undo.attempts] == [(1, "retried"), (2, "ok")]
    assert lanes[("notify", Phase.ACTION)].attempts == []
    assert (tl.start, tl.end, tl.now, tl.deadline) == (at(0), at(10.45), None, None)


def test_an_attempt_without_an_end_ends_where_it_stands() -> None:
    stuck = build(stuck_saga(), at(20))
    undo = stuck.lanes[-1]
    assert undo.attempts[-1].ended == "failed" and undo.attempts[-1].end == at(14)  # gave up: the row's last write
    assert stuck.now == at(20) and stuck.deadline == at(14)
    running = build(running_saga(), at(20)).lanes[1]
    assert (running.current, running.status, running.attempts[-1].end) == (True, "running", None)
    waiting = build(waiting_retry(running_saga(), until=22), at(20)).lanes[1]
    assert (waiting.status, waiting.attempts[-1].ended) == ("waiting", "retried")


def test_a_deadline_within_three_times_the_span_stretches_the_axis() -> None:
    """The axis runs from the start (0 s) to now (20 s); a deadline up to 3 x that span from the
    start (60 s) is drawn on it, one further out is only named in the footer."""
    record = running_saga()
    for deadline, end in ((25, 25), (60, 60), (60.5, 20), (20, 20)):
        record.deadline_at = at(deadline)
        tl = build(record, at(20))
        assert (tl.end, tl.deadline) == (at(end), at(deadline)), deadline
    record.state = SagaState.COMPLETED  # a finished saga has no deadline to show
    assert build(record, at(20)).deadline is None


def test_a_compensation_error_marks_only_the_compensation_lane_failed() -> None:
    """The driver crashed mid-call (no end recorded for charge's action) and the saga then
    compensated charge, which gave up: the compensation lane failed, the action lane stopped."""
    record = stuck_saga()
    record.transitions = [t for t in record.transitions if not (t.step_name == "charge" and t.new_state == "failed")]
    lanes = {(lane.step, lane.phase): lane for lane in build(record, at(20)).lanes}
    action, undo = lanes[("charge", Phase.ACTION)], lanes[("charge", Phase.COMPENSATION)]
    assert (action.status, action.attempts[-1].ended) == ("stopped", "stopped")
    assert (undo.status, undo.attempts[-1].ended) == ("failed", "failed")


def test_a_saga_without_history_still_draws() -> None:
    """A row another writer made, or one whose history was pruned: the steps, no bars."""
    record = stuck_saga()
    record.transitions = []
    _, text = shown(record, at(20), 80)
    timeline = text[text.index("Timeline") : text.index("Steps")]
    assert "█" not in timeline and "notify" in timeline
    assert "completed (not in the history)" in timeline and "compensating (not in the history)" in timeline


def test_headline_says_why_once_compensated_and_when_aborted() -> None:
    assert headline(failed_saga()) == [
        ("✘ failed at charge (attempt 3): HTTP 402 from POST /charges: card declined", "bold red"),
        ("  compensated reserve", "red"),
    ]
    aborted = running_saga()
    aborted.transitions.append(
        aborted.transitions[-1].__class__(
            aborted.saga_id, None, "pending", "compensating", at(21), {"action": "abort", "by": "alice", "reason": "r"}
        )
    )
    assert headline(aborted)[0] == ("✘ aborted by alice: r", "bold red")


def test_hostile_error_is_drawn_literally_in_the_headline_and_tables() -> None:
    record = failed_saga(error=EVIL)
    record.saga_id = "ev[/x]\x1b[31mID"
    tty, text = shown(record, at(40), 160)
    assert foreign_controls(tty) == []
    assert "\x1b[31mEVIL" not in tty and "\x1b]0;" not in tty
    first = text.splitlines()[0]
    assert first.startswith("✘ failed at charge (attempt 3): qty invalid at [/items/0/qty] [bold]B[/bold]")
    for token in SHOWN:
        assert token in text, token
    assert f"saga: {terminal_safe(record.saga_id)}" in text
