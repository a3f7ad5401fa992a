"""Every output format in one place: rich table (terminal), plain (pipe), json, jsonl, csv,
tsv, markdown, prometheus; and the one-line messages on stderr.

Commands build a ``Document`` (JSON data, display tables, IDs) and call ``emit``. Data
goes to stdout, messages to stderr, colour only on a terminal without NO_COLOR. rich and
tabulate are imported only when a format needs them.

Every text is foreign until proven otherwise (participant errors and results, message
bodies, saga IDs, step names): whatever a person reads goes through ``terminal_safe``
(control characters escaped) and reaches rich only as ``Text``, never as markup. JSON keeps
the data exact; csv/tsv keep values whole and exact except on a terminal.
"""

from __future__ import annotations

import io
import os
import re
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
    WIDE = "wide"  # the table with every field (`list -o wide`)


@dataclass(slots=True)
class Table:
    """Display rows. ``columns`` are (key, header) pairs; values are shown as given.

    On a terminal only the ``folding`` columns (free text: errors, results, bodies) ever fold;
    every other cell stays one piece (an ID to be copied, a number with its unit, a time), and
    the ``whole`` ones do even in a wide table. When the table is wider than the terminal the
    ``droppable`` columns go, in that order, until the rest fits with the folding ones at
    FOLDED_MIN cells: a column named in ``shorter`` (column -> the row key of its short cells)
    is shortened the first time it comes up there and left out the next. A row's ``_style``
    key styles the whole row. Pipes and the other formats show every column as given."""

    columns: list[tuple[str, str]]
    rows: list[dict[str, Any]]
    title: str | None = None
    whole: tuple[str, ...] = ()
    droppable: tuple[str, ...] = ()
    folding: tuple[str, ...] = ()
    shorter: tuple[tuple[str, str], ...] = ()


@dataclass(slots=True)
class Document:
    """What a command hands to ``emit``.

    data: the JSON contract (json/jsonl); tables: the table and markdown views; details:
    key/value lines above the tables; ids: what ``-q`` prints; prometheus: text exposition,
    for ``stats`` only; delimited: the csv/tsv rows (default: ``data`` itself when it is an
    object or an array of objects, one column per field, values whole).

    On a terminal only: ``lead`` (rich renderables above the details, e.g. why a saga failed),
    ``extras`` (between the details and the tables, e.g. show's timeline) and
    ``terminal_tables`` (instead of ``tables``, e.g. list's relative AGE). ``wide``: the
    tables of ``-o wide`` (default: ``tables``).
    """

    data: Any
    tables: list[Table] = field(default_factory=list)
    details: list[tuple[str, str]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    prometheus: Callable[[], str] | None = None
    empty_message: str | None = None
    delimited: Table | None = None
    lead: list[Any] = field(default_factory=list)
    extras: list[Any] = field(default_factory=list)
    terminal_tables: list[Table] | None = None
    wide: list[Table] | None = None


def stream_is_tty(stream: TextIO | None = None) -> bool:
    stream = sys.stdout if stream is None else stream
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def same_terminal(one: TextIO, other: TextIO) -> bool:
    """Both streams are one and the same terminal (e.g. stdout and stderr of `sagactl run` in a
    terminal, but not when either is redirected)."""
    if not (stream_is_tty(one) and stream_is_tty(other)):
        return False
    try:
        return os.path.samestat(os.fstat(one.fileno()), os.fstat(other.fileno()))
    except (AttributeError, OSError, ValueError):
        return False


# C0 controls, DEL and C1 controls (ESC starts terminal sequences, U+009B is CSI on its own),
# line and paragraph separators, and the bidi overrides and isolates that reorder what is shown.
_UNSAFE_CODES = (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_ESCAPES = {chr(c): f"\\x{c:02x}" if c <= 0xFF else f"\\u{c:04x}" for c in _UNSAFE_CODES} | {
    "\t": "\\t",
    "\n": "\\n",
    "\r": "\\r",
}
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")  # _ESCAPES' keys
# what JSON leaves raw (it escapes C0 controls itself), as JSON escapes
_JSON_ESCAPES = {ch: f"\\u{ord(ch):04x}" for ch in _ESCAPES if ord(ch) >= 0x7F}
_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")  # _JSON_ESCAPES' keys


def terminal_safe(text: str) -> str:
    """``text`` as a terminal may show it: literally, one line, with every control character
    escaped (ESC as ``\\x1b``, a newline as ``\\n``, a bidi override as ``\\u202e``), so
    foreign text can neither move the cursor, retitle the window, recolour the screen nor
    break a table row. Backslashes are left as they are. Linear; cheap when there is nothing
    to escape."""
    if _UNSAFE.search(text) is None:
        return text
    return _UNSAFE.sub(lambda m: _ESCAPES[m.group()], text)


def json_safe(text: str) -> str:
    """JSON text with the characters JSON leaves raw but a terminal may act on (DEL, C1
    controls, line separators, bidi overrides) written as ``\\uXXXX``: the same data."""
    if _JSON_UNSAFE.search(text) is None:
        return text
    return _JSON_UNSAFE.sub(lambda m: _JSON_ESCAPES[m.group()], text)


def cell(value: Any) -> str:
    """A value as text in a table cell: nulls empty, structures compact JSON."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return to_json(value, indent=None)
    return str(value)


def rows_table(rows: list[dict[str, Any]], first: tuple[str, ...] = ()) -> Table:
    """A table of JSON objects: one column per field (``first`` ones first, then in the order
    they appear), headed by the field names; what csv/tsv print."""
    keys = dict.fromkeys(first)
    for row in rows:
        keys.update(dict.fromkeys(row))
    return Table(columns=[(key, key) for key in keys], rows=rows)


def emit(
    doc: Document,
    fmt: OutputFormat = OutputFormat.TABLE,
    *,
    quiet: bool = False,
    stream: TextIO | None = None,
    headers: bool = True,
) -> None:
    """Write ``doc`` to stdout (or ``stream``) in ``fmt``; ``quiet`` prints only IDs;
    ``headers=False`` leaves the header line out of table, wide, csv and tsv output."""
    out = sys.stdout if stream is None else stream
    if quiet:
        for ident in doc.ids:
            out.write(f"{terminal_safe(ident)}\n")
        return
    if fmt is OutputFormat.JSON:
        out.write(json_safe(to_json(doc.data)) + "\n")
    elif fmt is OutputFormat.JSONL:
        items = doc.data if isinstance(doc.data, list) else [doc.data]
        for item in items:
            out.write(json_safe(to_json(item, indent=None)) + "\n")
    elif fmt is OutputFormat.PROMETHEUS:
        if doc.prometheus is None:
            raise UsageError("-o prometheus is only available for 'sagactl stats'")
        out.write(doc.prometheus())
    elif fmt in (OutputFormat.CSV, OutputFormat.TSV):
        _write_delimited(_delimited(doc), out, fmt, headers)
    elif fmt is OutputFormat.MARKDOWN:
        _write_markdown(doc, out)
    elif stream_is_tty(out):
        _write_rich(doc, out, wide=fmt is OutputFormat.WIDE, headers=headers)
    else:
        _write_plain(doc, out, wide=fmt is OutputFormat.WIDE, headers=headers)


def _delimited(doc: Document) -> Table:
    if doc.delimited is not None:
        return doc.delimited
    if isinstance(doc.data, dict):
        return rows_table([doc.data])
    if isinstance(doc.data, list) and doc.data and all(isinstance(row, dict) for row in doc.data):
        return rows_table(doc.data)
    return doc.tables[0] if doc.tables else Table([], [])


def _write_delimited(table: Table, out: TextIO, fmt: OutputFormat, headers: bool = True) -> None:
    """Every value whole and exact (csv quoting keeps commas, quotes and newlines), except on
    a terminal, where control characters are escaped as in every view."""
    if not table.columns:
        return
    safe = terminal_safe if stream_is_tty(out) else str
    buffer = io.StringIO()
    delimiter = "," if fmt is OutputFormat.CSV else "\t"
    import csv

    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    if headers:
        writer.writerow([safe(key) for key, _ in table.columns])
    for row in table.rows:
        writer.writerow([safe(cell(row.get(key))) for key, _ in table.columns])
    out.write(buffer.getvalue())


def _tabulate(table: Table, tablefmt: str, safe: Callable[[str], str] = terminal_safe, *, headers: bool = True) -> str:
    from tabulate import tabulate

    rows = [[safe(cell(row.get(key))) for key, _ in table.columns] for row in table.rows]
    if not headers:
        return str(tabulate(rows, tablefmt=tablefmt, disable_numparse=True))
    names = [header for _, header in table.columns]
    return str(tabulate(rows, headers=names, tablefmt=tablefmt, disable_numparse=True))


def _markdown_safe(text: str) -> str:
    return terminal_safe(text).replace("|", "\\|")


def _write_markdown(doc: Document, out: TextIO) -> None:
    for key, value in doc.details:
        out.write(f"- **{_markdown_safe(key)}**: {_markdown_safe(value)}\n")
    for table in doc.tables:
        if doc.details or len(doc.tables) > 1:
            out.write(f"\n### {table.title or ''}\n\n")
        out.write(_tabulate(table, "github", _markdown_safe) + "\n")


def _write_plain(doc: Document, out: TextIO, *, wide: bool = False, headers: bool = True) -> None:
    details = [(terminal_safe(key), terminal_safe(value)) for key, value in doc.details]
    width = max((len(key) for key, _ in details), default=0)
    for key, value in details:
        out.write(f"{key + ':':<{width + 1}} {value}\n")
    tables = doc.wide if wide and doc.wide is not None else doc.tables
    for table in tables:
        if doc.details or len(tables) > 1:
            out.write(f"\n{(table.title or '').upper()}\n")
        if table.rows:
            out.write(_tabulate(table, "plain", headers=headers) + "\n")
        elif doc.empty_message and len(tables) == 1:
            info_line(doc.empty_message)


def _write_rich(doc: Document, out: TextIO, *, wide: bool = False, headers: bool = True) -> None:
    from rich.console import Console
    from rich.text import Text

    console = terminal_console(out)
    for part in doc.lead:
        console.print(part)
    for key, value in doc.details:  # one line each, as long as it is: the terminal wraps it
        console.print(Text.assemble((f"{terminal_safe(key)}:", "bold"), " ", terminal_safe(value)), soft_wrap=True)
    for part in rich_parts(doc, console.width, wide=wide, headers=headers, lead=False):
        console.print(part)
    tables = terminal_view(doc, wide)
    if doc.empty_message and len(tables) == 1 and not tables[0].rows:
        Console(stderr=True).print(Text(terminal_safe(doc.empty_message), style="dim"))


def terminal_console(out: TextIO | None = None) -> Any:
    """A rich Console on ``out`` (stdout): colour unless NO_COLOR, nothing highlighted."""
    from rich.console import Console

    return Console(file=out, no_color="NO_COLOR" in os.environ, highlight=False)


def terminal_view(doc: Document, wide: bool = False) -> list[Table]:
    """The tables a terminal shows of ``doc``."""
    if wide and doc.wide is not None:
        return doc.wide
    return doc.terminal_tables if doc.terminal_tables is not None else doc.tables


def rich_parts(
    doc: Document, width: int, *, wide: bool = False, headers: bool = True, tables: bool = True, lead: bool = True
) -> list[Any]:
    """What a terminal shows of ``doc``, as rich renderables fitted to ``width`` columns: the
    lead and the details (unless ``lead`` is False), the extras, the tables (``tables``)."""
    from rich.text import Text

    parts: list[Any] = []
    if lead:
        parts.extend(doc.lead)
        for key, value in doc.details:
            parts.append(Text.assemble((f"{terminal_safe(key)}:", "bold"), " ", terminal_safe(value)))
    parts.extend(doc.extras)
    if tables:
        shown = terminal_view(doc, wide)
        for table in shown:
            if table.rows or not (doc.empty_message and len(shown) == 1):
                parts.append(_rich_table(table, width, headers=headers, fit=not wide))
    return parts


def _rich_table(table: Table, width: int, *, headers: bool = True, fit: bool = True) -> Any:
    from rich.table import Table as RichTable
    from rich.text import Text

    columns = _fitted(table, width) if fit else table.columns
    title = Text(table.title) if table.title else None
    rich_table = RichTable(title=title, title_justify="left", header_style="bold", show_header=headers)
    for key, header in columns:
        # only the folding columns fold: an ID, a state, a step, a number with its unit or a
        # time stays one piece while the free text takes the squeeze
        whole = key in table.whole or (fit and key not in table.folding)
        rich_table.add_column(
            Text(header), overflow="fold", no_wrap=whole, min_width=_width(table, key, header) if whole else None
        )
    for row in table.rows:
        rich_table.add_row(*(_styled(key, row.get(key)) for key, _ in columns), style=row.get("_style"))
    return rich_table


def _width(table: Table, key: str, header: str = "") -> int:
    """The widest cell of a column as shown (header included)."""
    from rich.cells import cell_len

    cells = [cell_len(terminal_safe(cell(row.get(key)))) for row in table.rows]
    return max([cell_len(header), *cells])


FOLDED_MIN = 12  # a column that may fold still wants this many cells to be read


def _fitted(table: Table, width: int) -> list[tuple[str, str]]:
    """``table``'s columns, shortened or left out in the droppable order until they fit
    ``width``: each column at its widest, a folding one at most FOLDED_MIN (rich folds the
    rest), plus rich's borders and padding (3 cells a column and 1). A shortened column keeps
    its header and shows the cells of its short key."""
    columns = list(table.columns)
    shorter = dict(table.shorter)
    needed = {key: _width(table, key, header) for key, header in [*columns, *((s, "") for s in shorter.values())]}
    for key, header in columns:
        if key in shorter:
            needed[shorter[key]] = max(needed[shorter[key]], len(header))

    def total() -> int:
        return (
            sum(min(needed[k], FOLDED_MIN) if k in table.folding else needed[k] for k, _ in columns)
            + 3 * len(columns)
            + 1
        )

    for key in table.droppable:
        if total() <= width:
            break
        if key in shorter and (key, dict(columns).get(key)) in columns:
            columns = [(shorter[key], header) if k == key else (k, header) for k, header in columns]
        else:
            columns = [column for column in columns if column[0] not in (key, shorter.get(key))]
    return columns


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
    """A rich cell: always ``Text`` (a plain string would be parsed as markup); states in
    their colour."""
    from rich.text import Text

    text = terminal_safe(cell(value))
    style = _STATE_STYLES.get(text, "") if key in ("state", "status", "new_state") else ""
    return Text(text, style=style)


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
    """``sagactl: error: …`` on stderr: one line (control characters escaped), already masked."""
    (sys.stderr if stream is None else stream).write(f"sagactl: error: {terminal_safe(message)}\n")


def warning_line(message: str, stream: TextIO | None = None) -> None:
    """``sagactl: warning: …`` on stderr, one line like ``error_line``."""
    (sys.stderr if stream is None else stream).write(f"sagactl: warning: {terminal_safe(message)}\n")


def info_line(message: str, stream: TextIO | None = None) -> None:
    """A message on stderr, one line like ``error_line``."""
    (sys.stderr if stream is None else stream).write(f"{terminal_safe(message)}\n")
