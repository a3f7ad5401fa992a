"""The one output module: every format, data on stdout only, no colour or boxes in a pipe."""

from __future__ import annotations

import io
import json

import pytest

from sagactl.errors import UsageError
from sagactl.output import Document, OutputFormat, Table, cell, emit, humanize_seconds


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
