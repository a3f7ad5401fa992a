"""What ``show --follow`` and ``list --watch`` print as they poll (sagactl.tools.poll).

On a terminal (table output) both redraw one screen in place: the saga as ``show`` draws it
(why it failed, details, timeline, steps, history), or the listing with ``+``/``-`` marks. In a
pipe, ``--follow`` prints each transition once, as a line (or a JSON line with ``-o jsonl``;
``-o json`` prints the saga once it ends), and ``--watch`` prints a frame per interval: a
header line and the table (or one JSON object per frame with ``-o jsonl``).

Each takes a ``run`` function that polls and calls back (ops.follow_saga / ops.watch_sagas
bound to their arguments, a clock among them), so tests drive them with a fake clock.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any, TextIO

from sagactl.codec import to_json
from sagactl.errors import ExitCode, UsageError
from sagactl.masking import mask_value
from sagactl.models import SagaRecord, SagaSummary, Transition, iso
from sagactl.tools.poll import Seen, unclaimed, verdict
from sagactl.views.output import (
    OutputFormat,
    cell,
    emit,
    info_line,
    json_safe,
    rich_parts,
    stream_is_tty,
    terminal_safe,
)

FOLLOW_FORMATS = (OutputFormat.TABLE, OutputFormat.JSON, OutputFormat.JSONL)
WATCH_FORMATS = (OutputFormat.TABLE, OutputFormat.WIDE, OutputFormat.JSONL)


def transition_line(t: Transition) -> str:
    """One transition as a line: when, step, change, detail (masked, escaped, compact)."""
    detail = mask_value(t.detail)
    line = f"{iso(t.at)}  {t.step_name or '-'}  {t.old_state or 'none'} -> {t.new_state}"
    return terminal_safe(f"{line}  {cell(detail)}" if detail else line)


def _summary_line(saga: SagaSummary) -> str:
    from sagactl.views.listing import step_label

    parts = [iso(saga.updated_at) or "-", step_label(saga.current_step, saga.current_step_name), saga.state.value]
    if saga.last_error:
        parts.append(saga.last_error)
    return terminal_safe(str(mask_value("  ".join(parts))))


class _Printer:
    """``--follow`` in a pipe: what happened since the last look, once."""

    def __init__(self, out: TextIO, jsonl: bool) -> None:
        self.out, self.jsonl, self.printed = out, jsonl, 0

    def __call__(self, saga: SagaRecord | SagaSummary, changed: bool, now: datetime) -> None:
        if not changed:
            return
        if isinstance(saga, SagaSummary):  # a mapped table has no history: a line per change of its row
            from sagactl.views.sagas import show_document

            data = show_document(saga).data
            self.out.write(json_safe(to_json(data, indent=None)) if self.jsonl else _summary_line(saga))
            self.out.write("\n")
        else:
            for t in saga.transitions[self.printed :]:  # the history only grows
                text = json_safe(to_json(mask_value(t.to_dict()), indent=None)) if self.jsonl else transition_line(t)
                self.out.write(text + "\n")
            self.printed = len(saga.transitions)
        self.out.flush()  # a reader of the pipe sees each transition as it lands


def undriven(saga: SagaRecord | SagaSummary, now: datetime) -> str | None:
    """What to say at once of a followed saga that nothing drives now (no driver holds a live
    lease): what it waits for and who could take it; None while a driver holds it, once it
    ended, and for a saga nothing will move on (following stops at once, saying so)."""
    if not isinstance(saga, SagaRecord) or saga.state.terminal:
        return None
    if saga.lease_owner is not None and (saga.lease_expires_at is None or saga.lease_expires_at >= now):
        return None
    step = saga.steps[saga.current_step].name if saga.current_step is not None else None
    compensating = saga.state.value == "compensating"
    what = f"the compensation of {step}" if compensating and step else f"step {step}" if step else "it"
    takers = f"a worker ('sagactl worker') takes it within its --poll, or 'sagactl resume {saga.saga_id}'"
    if saga.lease_owner is not None:
        lapsed = iso(saga.lease_expires_at)
        return (
            f"nothing drives saga {saga.saga_id} now: {what} waits; its driver {saga.lease_owner} stopped renewing"
            f" its lease (lapsed at {lapsed}); {takers}"
        )
    if saga.wake_at is None:
        return None
    if saga.wake_at <= now:
        return f"nothing drives saga {saga.saga_id} now: {what} has been due since {iso(saga.wake_at)}; {takers}"
    return (
        f"nothing drives saga {saga.saga_id} now: {what} waits for a reply or a retry until"
        f" {iso(saga.wake_at)}; then {takers}"
    )


def follow(
    run: Callable[[Seen], ExitCode], fmt: OutputFormat, *, quiet: bool = False, out: TextIO | None = None
) -> ExitCode:
    """``show --follow``: ``run`` polls and calls back; this draws. The saga's exit code."""
    from sagactl.views.sagas import run_summary_line, show_document

    if fmt not in FOLLOW_FORMATS:
        raise UsageError(
            f"--follow prints a live view or transition lines: -o {fmt.value} does not apply",
            hint="use -o jsonl for JSON lines, or -o json for the saga once it ends",
        )
    stream = sys.stdout if out is None else out
    last: list[SagaRecord | SagaSummary] = []
    when: list[datetime] = []
    said: list[str] = []  # the note on a saga nothing drives, once (again only when it changes)

    def keep(saga: SagaRecord | SagaSummary, changed: bool, now: datetime) -> None:
        last[:], when[:] = [saga], [now]

    def note(saga: SagaRecord | SagaSummary, now: datetime) -> str | None:
        """The undriven note when it is new (a pipe gets it on stderr, a terminal on top)."""
        text = undriven(saga, now) if verdict(saga, now) is None else None
        key = text.split(";")[0] if text else ""
        if text is None or (said and said[-1] == key):
            return None
        said.append(key)
        return text

    def keep_and_say(saga: SagaRecord | SagaSummary, changed: bool, now: datetime) -> None:
        keep(saga, changed, now)
        text = note(saga, now)
        if text is not None:
            info_line(f"sagactl: {text}")

    if quiet or fmt is OutputFormat.JSON:
        code = run(keep_and_say)
    elif fmt is OutputFormat.TABLE and stream_is_tty(stream):
        from sagactl.views.live import LiveScreen

        with LiveScreen() as screen:

            def draw(saga: SagaRecord | SagaSummary, changed: bool, now: datetime) -> None:
                from rich.text import Text

                keep(saga, changed, now)
                text = undriven(saga, now) if verdict(saga, now) is None else None
                on_top = [Text(terminal_safe(f"sagactl: {text}"), style="yellow")] if text else []
                screen.show([*on_top, *rich_parts(show_document(saga, now), screen.width)])

            code = run(draw)
    else:
        printer = _Printer(stream, jsonl=fmt is OutputFormat.JSONL)

        def print_and_keep(saga: SagaRecord | SagaSummary, changed: bool, now: datetime) -> None:
            printer(saga, changed, now)
            keep_and_say(saga, changed, now)

        code = run(print_and_keep)
    saga = last[0]
    if quiet or fmt is OutputFormat.JSON:
        emit(show_document(saga), fmt, quiet=quiet, stream=stream)
    summary = run_summary_line(saga) if isinstance(saga, SagaRecord) else None
    if isinstance(saga, SagaRecord) and (since := unclaimed(saga, when[0])) is not None:
        why = (
            f"its driver {saga.lease_owner} stopped renewing its lease (lapsed at {iso(since)})"
            if saga.lease_owner
            else f"it was due at {iso(since)} (a retry, or a reply's deadline)"
        )
        summary = (
            f"saga {saga.saga_id} is {saga.state.value} and nothing drives it: {why} and no worker"
            f" took it; 'sagactl resume {saga.saga_id}', or start 'sagactl worker'"
        )
    info_line(f"sagactl: {summary or f'saga {saga.saga_id} {saga.state.value}'}")
    return code


def watch(
    run: Callable[[Callable[[Any], None]], None],
    fmt: OutputFormat,
    *,
    what: str,
    interval: float,
    headers: bool = True,
    out: TextIO | None = None,
) -> ExitCode:
    """``list --watch``: ``run`` polls and calls back with each listing; this draws it, marked
    against the frame before. Ctrl-C ends it: exit 0."""
    from sagactl.views.listing import Frames
    from sagactl.views.sagas import list_document

    if fmt not in WATCH_FORMATS:
        raise UsageError(
            f"--watch redraws a table or prints frames: -o {fmt.value} does not apply",
            hint="use -o jsonl for one JSON object per frame",
        )
    stream = sys.stdout if out is None else out
    frames = Frames()
    try:
        if fmt is not OutputFormat.JSONL and stream_is_tty(stream):
            from rich.text import Text

            from sagactl.views.live import LiveScreen

            with LiveScreen() as screen:

                def draw(result: Any) -> None:
                    doc = frames.mark(list_document(result))
                    head = Text(frames.line(result.now, interval, what), style="dim")
                    wide = fmt is OutputFormat.WIDE
                    screen.show([head, *rich_parts(doc, screen.width, wide=wide, headers=headers)])

                run(draw)
        else:

            def write(result: Any) -> None:
                doc = frames.mark(list_document(result))
                if fmt is OutputFormat.JSONL:
                    stream.write(json_safe(to_json(frames.json(result.now, doc.data), indent=None)) + "\n")
                else:
                    stream.write(frames.line(result.now, interval, what) + "\n")
                    emit(doc, fmt, stream=stream, headers=headers)
                    stream.write("\n")
                stream.flush()

            run(write)
    except KeyboardInterrupt:
        pass  # the operator has seen enough: not an error
    return ExitCode.OK
