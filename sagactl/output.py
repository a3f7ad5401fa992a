"""Every output format in one place: rich table (terminal), plain (pipe), json, jsonl, csv,
tsv, markdown, prometheus; and the one-line messages on stderr.

Commands build a ``Document`` (JSON data, display tables, IDs) and call ``emit``. Data
goes to stdout, messages to stderr, colour only on a terminal without NO_COLOR. rich and
tabulate are imported only when a format needs them.
"""

from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TextIO

from sagactl.codec import to_json
from sagactl.errors import UsageError


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    JSONL = "jsonl"
    CSV = "csv"
    TSV = "tsv"
    MARKDOWN = "markdown"
    PROMETHEUS = "prometheus"


@dataclass(slots=True)
class Table:
    """Display rows. ``columns`` are (key, header) pairs; values are shown as given."""

    columns: list[tuple[str, str]]
    rows: list[dict[str, Any]]
    title: str | None = None


@dataclass(slots=True)
class Document:
    """What a command hands to ``emit``.

    data: the JSON contract (json/jsonl); tables: table/csv/tsv/markdown views (csv and tsv
    show the first, ``primary``, table); details: key/value lines above the tables on a
    terminal; ids: what ``-q`` prints; prometheus: text exposition, for ``stats`` only.
    """

    data: Any
    tables: list[Table] = field(default_factory=list)
    details: list[tuple[str, str]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    prometheus: Callable[[], str] | None = None
    empty_message: str | None = None


def stream_is_tty(stream: TextIO | None = None) -> bool:
    stream = sys.stdout if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def cell(value: Any) -> str:
    """A value as text in a table cell: nulls empty, structures compact JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return to_json(value, indent=None)
    return str(value)


def emit(
    doc: Document,
    fmt: OutputFormat = OutputFormat.TABLE,
    *,
    quiet: bool = False,
    stream: TextIO | None = None,
) -> None:
    """Write ``doc`` to stdout (or ``stream``) in ``fmt``; ``quiet`` prints only IDs."""
    out = sys.stdout if stream is None else stream
    if quiet:
        for ident in doc.ids:
            out.write(f"{ident}\n")
        return
    if fmt is OutputFormat.JSON:
        out.write(to_json(doc.data) + "\n")
    elif fmt is OutputFormat.JSONL:
        items = doc.data if isinstance(doc.data, list) else [doc.data]
        for item in items:
            out.write(to_json(item, indent=None) + "\n")
    elif fmt is OutputFormat.PROMETHEUS:
        if doc.prometheus is None:
            raise UsageError("-o prometheus is only available for 'sagactl stats'")
        out.write(doc.prometheus())
    elif fmt in (OutputFormat.CSV, OutputFormat.TSV):
        _write_delimited(doc.tables[0] if doc.tables else Table([], []), out, fmt)
    elif fmt is OutputFormat.MARKDOWN:
        _write_markdown(doc, out)
    elif stream_is_tty(out):
        _write_rich(doc, out)
    else:
        _write_plain(doc, out)


def _write_delimited(table: Table, out: TextIO, fmt: OutputFormat) -> None:
    buffer = io.StringIO()
    delimiter = "," if fmt is OutputFormat.CSV else "\t"
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow([key for key, _ in table.columns])
    for row in table.rows:
        writer.writerow([cell(row.get(key)) for key, _ in table.columns])
    out.write(buffer.getvalue())


def _tabulate(table: Table, tablefmt: str) -> str:
    from tabulate import tabulate

    headers = [header for _, header in table.columns]
    rows = [[cell(row.get(key)) for key, _ in table.columns] for row in table.rows]
    return tabulate(rows, headers=headers, tablefmt=tablefmt, disable_numparse=True)


def _write_markdown(doc: Document, out: TextIO) -> None:
    for key, value in doc.details:
        out.write(f"- **{key}**: {value}\n")
    for table in doc.tables:
        if doc.details or len(doc.tables) > 1:
            out.write(f"\n### {table.title or ''}\n\n")
        out.write(_tabulate(table, "github") + "\n")


def _write_plain(doc: Document, out: TextIO) -> None:
    width = max((len(key) for key, _ in doc.details), default=0)
    for key, value in doc.details:
        out.write(f"{key + ':':<{width + 1}} {value}\n")
    for table in doc.tables:
        if doc.details or len(doc.tables) > 1:
            out.write(f"\n{(table.title or '').upper()}\n")
        if table.rows:
            out.write(_tabulate(table, "plain") + "\n")
        elif doc.empty_message and len(doc.tables) == 1:
            sys.stderr.write(f"{doc.empty_message}\n")


def _write_rich(doc: Document, out: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    console = Console(file=out, no_color="NO_COLOR" in os.environ, highlight=False)
    for key, value in doc.details:
        console.print(f"[bold]{key}:[/bold] {value}", markup=True, soft_wrap=True)
    for table in doc.tables:
        if not table.rows and doc.empty_message and len(doc.tables) == 1:
            Console(stderr=True).print(doc.empty_message, style="dim")
            continue
        rich_table = RichTable(title=table.title, title_justify="left", header_style="bold")
        for _, header in table.columns:
            rich_table.add_column(header, overflow="fold")
        for row in table.rows:
            rich_table.add_row(*(_styled(key, row.get(key)) for key, _ in table.columns))
        console.print(rich_table)


_STATE_STYLES = {
    "completed": "green",
    "compensated": "cyan",
    "failed": "red",
    "compensating": "yellow",
    "executing": "blue",
    "pending": "dim",
    "started": "dim",
}


def _styled(key: str, value: Any) -> Any:
    text = cell(value)
    if key in ("state", "status", "new_state") and text in _STATE_STYLES:
        from rich.text import Text

        return Text(text, style=_STATE_STYLES[text])
    return text


def humanize_seconds(seconds: float | None) -> str:
    """3725 -> '1h2m5s'; for table cells."""
    if seconds is None:
        return ""
    total = int(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if total < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{total}s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return "".join(parts[:2])


def error_line(message: str, stream: TextIO | None = None) -> None:
    """``sagactl: error: …`` on stderr (the message is already one line and masked)."""
    (sys.stderr if stream is None else stream).write(f"sagactl: error: {message}\n")


def warning_line(message: str, stream: TextIO | None = None) -> None:
    (sys.stderr if stream is None else stream).write(f"sagactl: warning: {message}\n")


def info_line(message: str, stream: TextIO | None = None) -> None:
    (sys.stderr if stream is None else stream).write(f"{message}\n")
