"""`show` on a terminal: why a saga failed, on top, and a timeline of its steps and compensations.

The timeline is read from the saga's transitions. The log records when each attempt of a step
or a compensation starts (``executing``/``compensating``, retries as ``executing -> executing``
with ``{"attempt": N, "retry": true}``) and when the last one ended (``completed``, ``failed``,
``compensated``); it does not record when a retried attempt failed. So a retried attempt is
drawn up to the start of the next one (its span includes the backoff, drawn ``▒``), and an
attempt with no end recorded ends where the saga row was last written (a compensation that gave
up, a driver that stopped) or, when someone still drives it, at ``now``.

Foreign text (step names, errors, IDs) reaches rich only as ``Text`` through
``output.terminal_safe``, secrets masked. rich loads only when a timeline is drawn.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sagactl.masking import mask_secrets
from sagactl.models import Phase, SagaRecord, SagaState, StepStatus, iso
from sagactl.views.output import humanize_seconds, terminal_safe


@dataclass(slots=True)
class Attempt:
    """One attempt: ``end`` None while it runs. ``ended``: "ok", "failed" (the phase's failing
    attempt), "retried" (failed, another followed: its end is not recorded), "running",
    "stopped" (no end recorded and nobody drives it: the row's last write stands for it)."""

    number: int
    start: datetime
    end: datetime | None = None
    ended: str = "running"


@dataclass(slots=True)
class Lane:
    """One row of the timeline: a step's action or its compensation."""

    step: str
    phase: Phase
    attempts: list[Attempt] = field(default_factory=list)
    status: str = "pending"  # pending, running, ok, failed, waiting (a retry is due)
    current: bool = False
    note: str = ""  # e.g. resolved by hand

    @property
    def label(self) -> str:
        return self.step if self.phase is Phase.ACTION else f"undo {self.step}"


@dataclass(slots=True)
class Timeline:
    start: datetime
    end: datetime
    lanes: list[Lane]
    now: datetime | None = None  # the saga is still active: where it stands now
    deadline: datetime | None = None


def build(saga: SagaRecord, now: datetime) -> Timeline:
    """The lanes of ``saga`` from its transitions: every step's action (in order), then each
    compensation in the order it began."""
    lanes: dict[tuple[str, Phase], Lane] = {(s.name, Phase.ACTION): Lane(s.name, Phase.ACTION) for s in saga.steps}
    for t in sorted(saga.transitions, key=lambda t: (t.at, t.id or 0)):
        if t.step_name is None:
            continue
        phase = Phase.COMPENSATION if t.new_state in ("compensating", "compensated") else Phase.ACTION
        lane = lanes.setdefault((t.step_name, phase), Lane(t.step_name, phase))
        if t.new_state in ("executing", "compensating"):
            _close(lane, t.at, "retried")
            number = t.detail.get("attempt")
            lane.attempts.append(Attempt(number if isinstance(number, int) else len(lane.attempts) + 1, t.at))
            lane.status = "running"
        else:
            ok = t.new_state in ("completed", "compensated")
            _close(lane, t.at, "ok" if ok else "failed")
            lane.status = "ok" if ok else "failed"
            if t.detail.get("action") == "resolve":
                lane.note = f"resolved by hand by {t.detail.get('by') or 'someone'}"
    active = not saga.state.terminal
    driven = saga.lease_owner is not None and (saga.lease_expires_at is None or saga.lease_expires_at >= now)
    for lane in lanes.values():
        if not lane.attempts or lane.attempts[-1].end is not None:
            continue
        record = next((s for s in saga.steps if s.name == lane.step), None)
        waiting = record.waiting if record is not None else None
        if waiting is not None and waiting.phase is lane.phase and waiting.kind == "retry":
            _close(lane, saga.updated_at, "retried")  # failed; the next attempt is due at wake_at
            lane.status = "waiting"
        elif active and (driven or (waiting is not None and waiting.phase is lane.phase)):
            lane.status = "running"  # being sent, or its reply awaited
        else:
            gave_up = lane.phase is Phase.COMPENSATION and record is not None and record.compensation_error
            _close(lane, max(saga.updated_at, lane.attempts[-1].start), "failed" if gave_up else "stopped")
            lane.status = "failed" if gave_up else "stopped"
    for step in saga.steps:  # a row another writer made, or history pruned: say what the row says
        lane = lanes[(step.name, Phase.ACTION)]
        if not lane.attempts and step.status is not StepStatus.PENDING:
            lane.note = f"{step.status.value} (not in the history)"
    actions = [(s.name, Phase.ACTION) for s in saga.steps]
    ordered = [lanes[key] for key in actions] + [lane for key, lane in lanes.items() if key not in actions]
    if active and saga.current_step_name is not None:
        phase = Phase.COMPENSATION if saga.state is SagaState.COMPENSATING else Phase.ACTION
        if (saga.current_step_name, phase) in lanes:
            lanes[(saga.current_step_name, phase)].current = True
    start = min([saga.created_at, *(a.start for lane in ordered for a in lane.attempts)])
    times = [saga.updated_at, *(t.at for t in saga.transitions)]
    times += [a.end for lane in ordered for a in lane.attempts if a.end is not None]
    end = max([*times, now]) if active else max(times)
    deadline = saga.deadline_at if active else None
    if deadline is not None and end < deadline <= start + 3 * (end - start):
        end = deadline  # near enough to show where it falls
    return Timeline(start, end, ordered, now if active else None, deadline)


def _close(lane: Lane, at: datetime, how: str) -> None:
    if lane.attempts and lane.attempts[-1].end is None:
        lane.attempts[-1].end = at
        lane.attempts[-1].ended = how


# -- drawing ----------------------------------------------------------------------------------

_STYLES = {
    (Phase.ACTION, "ok"): "green",
    (Phase.ACTION, "running"): "blue",
    (Phase.COMPENSATION, "ok"): "cyan",
    (Phase.COMPENSATION, "running"): "yellow",
}
_SUMMARY_STYLES = {"failed": "red", "waiting": "yellow", "running": "blue", "pending": "dim", "stopped": "yellow"}
_ICONS = {"ok": "✔", "failed": "✘", "running": "▶", "waiting": "↻", "stopped": "?", "pending": "·"}
LEGEND = (
    ("█", "attempt"),
    ("▒", "retried attempt and its backoff (when it failed is not recorded)"),
    ("↻", "retry"),
    ("✘", "failing attempt"),
    ("▶", "running"),
    ("?", "stopped, end not recorded"),
)
_TICKS: tuple[float, ...] = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2, 5, 10, 15, 30)
_TICKS += (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)


def _seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


def _offset(seconds: float) -> str:
    """A tick label: 0, 250ms, 1.5s, 30s, 2m, 1h30m."""
    return "0" if seconds <= 0 else humanize_seconds(seconds)


class TimelineView:
    """A rich renderable: the timeline fitted to the width it is given (a live view redraws it
    at the terminal's width)."""

    def __init__(self, timeline: Timeline) -> None:
        self.timeline = timeline

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        yield from self.lines(options.max_width)

    def lines(self, width: int) -> list[Any]:
        from rich.text import Text

        tl = self.timeline
        summaries = [self._summary(lane) for lane in tl.lanes]
        labels = [terminal_safe(lane.label) for lane in tl.lanes]
        label_w = min(max(map(len, labels), default=4), max(12, width * 2 // 7))
        summary_w = max(map(len, summaries), default=0)
        bar = width - 2 - label_w - 1 - 1 - summary_w
        if bar < 12:  # narrow: the bar before the summary
            summary_w, bar = 0, width - 2 - label_w - 1
        bar = max(bar, 4)
        span = max(_seconds(tl.start, tl.end), 0.001)

        def col(at: datetime) -> int:
            return min(bar - 1, max(0, int(_seconds(tl.start, at) / span * (bar - 1) + 0.5)))

        pad = " " * (2 + label_w + 1)
        out = [Text(""), Text.assemble(("Timeline", "bold"), f"  {iso(tl.start)} +{humanize_seconds(span)}")]
        ticks, ruler = self._axis(span, bar)
        out.append(Text(pad + ticks, style="dim"))
        out.append(Text(pad + ruler, style="dim"))
        for lane, label, summary in zip(tl.lanes, labels, summaries, strict=True):
            cells = self._cells(lane, col, bar)
            line = Text("▸ " if lane.current else "  ", style="bold")
            name = label if len(label) <= label_w else label[: label_w - 1] + "…"
            line.append(f"{name:<{label_w}} ", style="bold" if lane.current else "")
            for char, style in cells:
                line.append(char, style=style)
            if summary_w:
                line.append(f" {summary:<{summary_w}}", style=_SUMMARY_STYLES.get(lane.status, ""))
            out.append(line)
        out.append(Text(self._footer(), style="dim"))
        used = {char for lane in tl.lanes for char, _ in self._cells(lane, col, bar)}
        legend = "  ".join(f"{char} {meaning}" for char, meaning in LEGEND if char in used)
        if legend:
            out.append(Text(legend, style="dim"))
        return out

    def _axis(self, span: float, bar: int) -> tuple[str, str]:
        """Tick labels and the ruler under them: as many ticks as labels fit."""
        step = next((s for s in _TICKS if span / s <= max(1, bar // 9)), _TICKS[-1])
        labels, ruler = [" "] * bar, ["─"] * bar
        n, last_end = 0, -1
        while n * step <= span:
            at = min(bar - 1, int(n * step / span * (bar - 1) + 0.5))
            text = _offset(n * step)
            ruler[at] = "┼" if n else "├"
            if at > last_end and at + len(text) <= bar:
                labels[at : at + len(text)] = list(text)
                last_end = at + len(text)
            n += 1
        return "".join(labels), "".join(ruler)

    def _cells(self, lane: Lane, col: Any, bar: int) -> list[tuple[str, str]]:
        tl = self.timeline
        cells: list[tuple[str, str]] = [(" ", "")] * bar
        ok = _STYLES.get((lane.phase, "ok"), "green")
        for attempt in lane.attempts:
            end = attempt.end if attempt.end is not None else (tl.now or tl.end)
            first, last = col(attempt.start), col(end)
            fill, style = "█", ok
            if attempt.ended == "retried":
                fill, style = "▒", "red"
            elif attempt.ended == "failed":
                style = "red"
            elif attempt.ended in ("running", "stopped"):
                style = _STYLES.get((lane.phase, "running"), "blue")
            for c in range(first, last + 1):
                cells[c] = (fill, style)
            mark = {"failed": "✘", "running": "▶", "stopped": "?"}.get(attempt.ended)
            if mark:
                cells[last] = (mark, f"bold {style}")
            if attempt.number > 1 and (first != last or not mark):
                cells[first] = ("↻", "bold yellow")
        for at, char, style in ((tl.now, "│", "dim"), (tl.deadline, "┆", "red")):
            if at is not None and tl.start <= at <= tl.end and cells[col(at)][0] == " ":
                cells[col(at)] = (char, style)
        return cells

    def _summary(self, lane: Lane) -> str:
        """Right of the bar: how long it took, its attempts, how it ended."""
        if not lane.attempts:
            return lane.note or ("pending" if lane.status == "pending" else "")
        start = lane.attempts[0].start
        end = lane.attempts[-1].end or self.timeline.now or self.timeline.end
        tries = f" {len(lane.attempts)} tries" if len(lane.attempts) > 1 else ""
        text = f"{humanize_seconds(_seconds(start, end))}{tries} {_ICONS.get(lane.status, '')}"
        return f"{text} {lane.note}" if lane.note else text

    def _footer(self) -> str:
        tl = self.timeline
        parts = []
        if tl.now is not None:
            parts.append(f"│ now +{humanize_seconds(_seconds(tl.start, tl.now))}")
        if tl.deadline is not None:
            when = tl.now or tl.end
            rel = _seconds(when, tl.deadline)
            due = f"in {humanize_seconds(rel)}" if rel >= 0 else f"{humanize_seconds(-rel)} ago"
            where = "" if tl.deadline <= tl.end else ", past the axis"
            parts.append(f"┆ deadline {iso(tl.deadline)} ({due}{where})")
        return "   ".join(parts) if parts else f"ended +{humanize_seconds(_seconds(tl.start, tl.end))}"


# -- why it failed, on top ----------------------------------------------------------------------


def headline(saga: SagaRecord) -> list[tuple[str, str]]:
    """One line or two saying where the saga stands and, when it failed, where and why (also
    once its compensations ran): (text, rich style) pairs, foreign text escaped and masked."""
    lines: list[tuple[str, str]] = []
    failed = saga.failed_step()
    abort = next((t for t in saga.transitions if t.detail.get("action") == "abort"), None)
    if failed is not None:
        attempts = f" (attempt {failed.attempts})" if failed.attempts > 1 else ""
        why = failed.error or "no error recorded"
        lines.append((f"✘ failed at {failed.name}{attempts}: {why}", "bold red"))
    elif abort is not None:
        lines.append((f"✘ aborted by {abort.detail.get('by')}: {abort.detail.get('reason')}", "bold red"))
    undoing = [s for s in saga.steps if s.compensation_error and s.status is StepStatus.COMPENSATING]
    for step in undoing:
        lines.append(
            (
                f"↺ compensation of {step.name} failing (attempt {step.compensation_attempts}):"
                f" {step.compensation_error}; earlier compensations wait",
                "bold yellow",
            )
        )
    if saga.state is SagaState.FAILED:
        undone = [s.name for s in reversed(saga.steps) if s.status is StepStatus.COMPENSATED]
        lines.append(("  compensated " + ", ".join(undone) if undone else "  nothing to compensate", "red"))
    elif saga.state is SagaState.COMPLETED:
        took = humanize_seconds(_seconds(saga.created_at, saga.updated_at))
        lines.append((f"✔ completed in {took}", "bold green"))
    elif not lines and saga.current_step_name is not None:
        lines.append((f"▶ {saga.state.value} at {saga.current_step_name}", "bold blue"))
    return [(terminal_safe(mask_secrets(text)), style) for text, style in lines]


class Headline:
    """A rich renderable of ``headline``'s lines."""

    def __init__(self, saga: SagaRecord) -> None:
        self.lines = headline(saga)

    def __rich_console__(self, console: Any, options: Any) -> Iterator[Any]:
        from rich.text import Text

        for text, style in self.lines:
            yield Text(text, style=style)
