"""`list` on a terminal: the AGE column, IDs never folded (a narrow terminal drops other columns
first), ``-o wide`` and ``--no-headers``; snapshots at fixed widths on a real pseudo-terminal."""

from __future__ import annotations

import csv
import io

import pytest
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.config import resolve_settings
from sagactl.models import SagaState
from sagactl.ops.sagas import list_sagas
from sagactl.store import Store
from sagactl.tools.inspect import ListRequest
from sagactl.views.output import OutputFormat, emit
from sagactl.views.sagas import list_document
from tests.support.histories import OWNER
from tests.support.pty import call_on_pty, strip_escapes
from tests.support.sagas import add, at, saga
from tests.support.snapshots import assert_snapshot

runner = CliRunner()
IDS = (
    "0b4e7c1a-93d2-4f5e-8a61-2c3d4e5f6a7b",
    "5d2f8e3b-1c4a-4b6d-9e7f-8a9b0c1d2e3f",
    "c0ffee00-aaaa-4bbb-8ccc-ddddeeee0001",
)


@pytest.fixture
def listed(store: Store, store_dsn: str) -> str:
    """Three sagas: one compensating with a long error, one pending and driven, one completed."""
    comp = saga(
        IDS[0],
        state=SagaState.COMPENSATING,
        step=1,
        created=0,
        updated=60,
        deadline=90,
        error="HTTP 503 from POST /refunds: the payment provider is in maintenance until 09:00 UTC",
    )
    driven = saga(IDS[1], saga_type="OrderFulfillment", step=2, created=100, updated=170, deadline=400)
    driven.lease_owner, driven.lease_expires_at = OWNER, at(400)
    done = saga(IDS[2], state=SagaState.COMPLETED, step=None, created=30, updated=45)
    add(store, comp, driven, done)
    return store_dsn


def on_terminal(dsn: str, width: int, fmt: OutputFormat = OutputFormat.TABLE, **request: object) -> str:
    result = list_sagas(resolve_settings(dsn=dsn), ListRequest(**request), now=at(192))  # type: ignore[arg-type]
    _, tty = call_on_pty(lambda: emit(list_document(result), fmt), size=(width, 40))
    return strip_escapes(tty)


@pytest.mark.parametrize("width", [60, 100, 160])
def test_ids_are_never_folded_and_narrow_terminals_drop_columns_first(listed: str, width: int) -> None:
    text = on_terminal(listed, width)
    assert_snapshot(f"list-{width}", text)
    lines = text.splitlines()
    assert all(len(line) <= width for line in lines)
    for saga_id in IDS:  # each ID whole on one line, to be copied
        assert any(saga_id in line for line in lines), (saga_id, text)
    headers = lines[1]
    assert "SAGA" in headers and "STATE" in headers
    if width == 60:
        assert "TYPE" not in headers and "DRIVER" not in headers  # left out before any ID folds


def test_age_counts_from_creation_and_updated_is_relative(listed: str) -> None:
    text = on_terminal(listed, 200)
    row = next(line for line in text.splitlines() if IDS[1] in line)
    cells = [c.strip() for c in row.split("│")[1:-1]]
    assert cells[:6] == [IDS[1], "OrderFulfillment", "pending", "2 (notify)", "1m32s", "22s ago"]
    assert OWNER in cells


def test_wide_shows_every_field_on_a_terminal_too(listed: str) -> None:
    text = on_terminal(listed, 300, OutputFormat.WIDE)
    for header in ("AGE", "CREATED", "UPDATED", "DEADLINE", "DRIVER", "LEASE UNTIL", "LAST ERROR"):
        assert header in text
    assert "maintenance until 09:00 UTC" in text  # the last error whole


@pytest.mark.slow
def test_wide_and_no_headers_in_a_pipe(listed: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGACTL_DSN", listed)
    plain = runner.invoke(app, ["list"]).stdout.splitlines()
    assert plain[0].split()[:5] == ["SAGA", "TYPE", "STATE", "STEP", "UPDATED"]  # the pipe's shape as before
    bare = runner.invoke(app, ["list", "--no-headers"]).stdout.splitlines()
    assert [line.split()[:3] for line in bare] == [line.split()[:3] for line in plain[1:]]
    wide = runner.invoke(app, ["list", "-o", "wide"])
    assert wide.exit_code == 0, wide.stderr
    header, *rows = wide.stdout.splitlines()
    assert header.split()[:7] == ["SAGA", "TYPE", "STATE", "STEP", "AGE", "CREATED", "UPDATED"]
    assert "LEASE UNTIL" in header and len(rows) == 3
    assert "maintenance until 09:00 UTC" in wide.stdout
    bare = runner.invoke(app, ["list", "-o", "wide", "--no-headers"]).stdout.splitlines()
    assert [line.split()[:3] for line in bare] == [line.split()[:3] for line in rows]
    data = list(csv.reader(io.StringIO(runner.invoke(app, ["list", "-o", "csv", "--no-headers"]).stdout)))
    assert [r[0] for r in data] == [IDS[0], IDS[2], IDS[1]]  # compensating first, then oldest; no header row
    refused = runner.invoke(app, ["list", "-o", "json", "--no-headers"])
    assert (refused.exit_code, refused.stdout) == (2, "")
    assert refused.stderr == "sagactl: error: --no-headers applies to table, wide, csv and tsv output, not -o json\n"
