"""The one output module: every format, data on stdout only, no colour or boxes in a pipe."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from sagactl.codec import to_json
from sagactl.errors import UsageError
from sagactl.views.output import (
    Document,
    OutputFormat,
    Table,
    cell,
    emit,
    error_line,
    humanize_seconds,
    info_line,
    json_safe,
    rows_table,
    same_terminal,
    terminal_safe,
    warning_line,
)


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


DOC = Document(
    data=[{"saga_id": "a", "state": "failed", "n": None}, {"saga_id": "b,c", "state": "completed", "n": [1, 2]}],
    tables=[
        Table(
            columns=[("saga_id", "SAGA"), ("state", "STATE"), ("n", "N")],
            rows=[
                {"saga_id": "a", "state": "failed", "n": None},
                {"saga_id": "b,c", "state": "completed", "n": [1, 2]},
            ],
        )
    ],
    ids=["a", "b,c"],
)


def render(doc: Document, fmt: OutputFormat, stream: io.StringIO | None = None, quiet: bool = False) -> str:
    out = stream or io.StringIO()
    emit(doc, fmt, quiet=quiet, stream=out)
    return out.getvalue()


def test_json_is_the_data_verbatim() -> None:
    assert json.loads(render(DOC, OutputFormat.JSON)) == DOC.data


def test_empty_list_is_brackets() -> None:
    assert render(Document(data=[]), OutputFormat.JSON) == "[]\n"


def test_jsonl_one_object_per_line() -> None:
    lines = render(DOC, OutputFormat.JSONL).splitlines()
    assert [json.loads(line) for line in lines] == DOC.data


def test_csv_quotes_and_nulls() -> None:
    assert render(DOC, OutputFormat.CSV) == 'saga_id,state,n\na,failed,\n"b,c",completed,"[1,2]"\n'


def test_tsv() -> None:
    assert render(DOC, OutputFormat.TSV) == "saga_id\tstate\tn\na\tfailed\t\nb,c\tcompleted\t[1,2]\n"


def test_markdown() -> None:
    text = render(DOC, OutputFormat.MARKDOWN)
    assert text.splitlines()[0].startswith("| SAGA")
    assert "| b,c" in text


def test_plain_table_in_a_pipe_has_no_colour_or_boxes() -> None:
    text = render(DOC, OutputFormat.TABLE)
    assert "\x1b[" not in text
    assert not set(text) & set("│┃━─╇┏┗")
    assert text.splitlines()[0].split() == ["SAGA", "STATE", "N"]


def test_rich_table_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    text = render(DOC, OutputFormat.TABLE, Tty())
    assert "SAGA" in text and "b,c" in text


def test_quiet_prints_ids_only() -> None:
    assert render(DOC, OutputFormat.JSON, quiet=True) == "a\nb,c\n"


def test_prometheus_only_where_offered() -> None:
    with pytest.raises(UsageError, match="only available for 'sagactl stats'"):
        render(DOC, OutputFormat.PROMETHEUS)
    offered = Document(data={}, prometheus=lambda: "x 1\n")
    assert render(offered, OutputFormat.PROMETHEUS) == "x 1\n"


@pytest.mark.parametrize(
    ("value", "text"), [(None, ""), (True, "true"), ({"a": 1}, '{"a":1}'), ("é", "é"), (1.5, "1.5")]
)
def test_cell(value: object, text: str) -> None:
    assert cell(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, ""), (0.0456, "46ms"), (2.25, "2.2s"), (42, "42s"), (3725, "1h2m"), (90061, "1d1h"), (600, "10m")],
)
def test_humanize_seconds(seconds: float | None, text: str) -> None:
    assert humanize_seconds(seconds) == text


# -- foreign text --------------------------------------------------------------------------------

HOSTILE = "at [/items/0/qty] [bold]b[/bold] :smile: \x1b[31mred\x1b]0;t\x07 a\nb\tc\r \x9b2J \u202egnp.exe \\x1b"
HOSTILE_SHOWN = (
    "at [/items/0/qty] [bold]b[/bold] :smile: \\x1b[31mred\\x1b]0;t\\x07 a\\nb\\tc\\r \\x9b2J \\u202egnp.exe \\x1b"
)


def test_terminal_safe_escapes_control_characters_and_nothing_else() -> None:
    assert terminal_safe(HOSTILE) == HOSTILE_SHOWN
    assert terminal_safe("\x00\x7f\u2028\u2066") == "\\x00\\x7f\\u2028\\u2066"
    ordinary = "naïve café ☕ 日本 C:\\path [x] * _ `"
    assert terminal_safe(ordinary) is ordinary


def test_every_character_escaped_has_its_escape() -> None:
    from sagactl.views.output import _ESCAPES, _JSON_ESCAPES, _JSON_UNSAFE, _UNSAFE

    everything = "".join(chr(c) for c in range(0x30000) if not 0xD800 <= c < 0xE000)
    assert set(_UNSAFE.findall(everything)) == set(_ESCAPES)
    assert set(_JSON_UNSAFE.findall(everything)) == set(_JSON_ESCAPES)
    assert all(len(terminal_safe(ch)) > 1 and terminal_safe(ch).isprintable() for ch in _ESCAPES)


def test_json_safe_writes_what_json_leaves_raw_as_escapes() -> None:
    text = json_safe(to_json({"e": "\x9b2J\u202e\x7f", "ok": "café"}))
    assert "\\u009b2J\\u202e\\u007f" in text and "café" in text
    assert json.loads(text) == {"e": "\x9b2J\u202e\x7f", "ok": "café"}


HOSTILE_DOC = Document(
    data=[{"saga_id": HOSTILE, "state": "failed"}],
    tables=[Table(columns=[("saga_id", "SAGA"), ("state", "STATE")], rows=[{"saga_id": HOSTILE, "state": "failed"}])],
    details=[("last error", HOSTILE)],
    ids=["a\nb"],
)


@pytest.mark.parametrize("fmt", [OutputFormat.TABLE, OutputFormat.MARKDOWN])
def test_views_show_foreign_text_literally(fmt: OutputFormat, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    for stream in (io.StringIO(), Tty()):
        text = render(HOSTILE_DOC, fmt, stream)
        assert "\x1b]" not in text and "\x07" not in text and "\x9b" not in text and "\u202e" not in text
        assert "\x1b[31mred" not in text
        shown = HOSTILE_SHOWN.replace("|", "\\|") if fmt is OutputFormat.MARKDOWN else HOSTILE_SHOWN
        assert shown in text, text  # markup, emoji codes and all, as written


def test_quiet_ids_are_one_line_each() -> None:
    assert render(HOSTILE_DOC, OutputFormat.JSON, quiet=True) == "a\\nb\n"


def test_csv_is_exact_in_a_pipe_and_escaped_on_a_terminal() -> None:
    piped = render(HOSTILE_DOC, OutputFormat.CSV)
    assert list(csv.reader(io.StringIO(piped))) == [["saga_id", "state"], [HOSTILE, "failed"]]
    on_terminal = render(HOSTILE_DOC, OutputFormat.CSV, Tty())
    assert list(csv.reader(io.StringIO(on_terminal))) == [["saga_id", "state"], [HOSTILE_SHOWN, "failed"]]


def test_csv_rows_come_from_the_data_unless_a_document_says() -> None:
    doc = Document(data={"store": "x.db", "schema_version": 2}, details=[("store", "x.db")])
    assert render(doc, OutputFormat.CSV) == "store,schema_version\nx.db,2\n"
    explicit = Document(data=[], tables=DOC.tables, delimited=rows_table([], ("saga_id", "n")))
    assert render(explicit, OutputFormat.TSV) == "saga_id\tn\n"  # the header even with no rows
    assert render(Document(data=[]), OutputFormat.CSV) == ""


def test_stderr_lines_are_one_escaped_line() -> None:
    for write, prefix in ((error_line, "sagactl: error: "), (warning_line, "sagactl: warning: "), (info_line, "")):
        stream = io.StringIO()
        write(HOSTILE, stream)
        assert stream.getvalue() == f"{prefix}{HOSTILE_SHOWN}\n"


def test_same_terminal_needs_both_streams_on_one_terminal(tmp_path: Path) -> None:
    import os

    master, slave = os.openpty()
    other_master, other_slave = os.openpty()
    with (
        open(slave, "w", closefd=True) as one,
        open(os.dup(slave), "w", closefd=True) as same,
        open(other_slave, "w", closefd=True) as other,
        open(tmp_path / "f", "w") as file,
    ):
        assert same_terminal(one, same)
        assert not same_terminal(one, other)
        assert not same_terminal(one, file)
        assert not same_terminal(one, io.StringIO())
    os.close(master)
    os.close(other_master)
