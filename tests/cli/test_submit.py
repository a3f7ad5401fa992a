"""`run --detach` prints only the ID; `run --inputs FILE|-` records one detached saga per JSON
line and prints one ID per line, every line checked before anything is recorded; on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.models import SagaState
from sagactl.store import open_store
from sagactl.store.base import SagaQuery

ROOT = Path(__file__).parent.parent.parent
SAMPLE = ROOT / "sample-configs" / "order.yaml"
ORDER = json.loads((ROOT / "sample-configs" / "order-input.json").read_text())
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
runner = CliRunner()


@pytest.fixture
def log(store_dsn: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    monkeypatch.setenv("SAGACTL_DSN", store_dsn)
    for name in ("SAGACTL_CONFIG", "SAGACTL_CONTEXT", "FAIL_STEP", "FAIL_COMPENSATION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return store_dsn


def invoke(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def order(n: int) -> dict[str, Any]:
    return {**ORDER, "order_id": f"ord-{n}"}


def recorded(dsn: str) -> list[tuple[str, Any]]:
    """(state, input) of every saga in the log, with its lease and wake-up checked: detached."""
    store = open_store(dsn)
    try:
        sagas = [store.get(saga_id) for saga_id in ids_in(dsn)]
        found = []
        for saga in sagas:
            assert saga is not None and saga.lease_owner is None and saga.wake_at == saga.created_at
            assert [t.new_state for t in store.transitions(saga.saga_id)] == ["started"]
            found.append((saga.state.value, saga.data))
        return found
    finally:
        store.close()


def ids_in(dsn: str) -> list[str]:
    store = open_store(dsn)
    try:
        return [s.saga_id for s in sorted(store.summaries(SagaQuery()), key=lambda s: (s.created_at, s.saga_id))]
    finally:
        store.close()


def test_detach_prints_only_the_id(log: str) -> None:
    code, out, err = invoke("run", str(SAMPLE), "--input", json.dumps(order(1)), "--detach")
    assert code == 0 and re.fullmatch(f"{UUID}\n", out), out
    saga_id = out.strip()
    assert err == f"sagactl: saga {saga_id} recorded (started); a worker drives it, or 'sagactl resume {saga_id}'\n"
    assert recorded(log) == [(SagaState.STARTED.value, order(1))]
    assert invoke("run", str(SAMPLE), "--input", json.dumps(order(2)), "--detach", "--saga-id", "mine")[1] == "mine\n"


def test_inputs_refuses_an_output_format(log: str, tmp_path: Path) -> None:
    path = tmp_path / "one.jsonl"
    path.write_text(json.dumps(order(1)) + "\n")
    code, out, err = invoke("run", str(SAMPLE), "--inputs", str(path), "-o", "json")
    assert (code, out) == (2, "")
    assert err == (
        "sagactl: error: --inputs prints only saga IDs, one per line: -o json does not apply;"
        " drop -o; 'sagactl show ID -o json' prints a saga's document\n"
    )
    assert ids_in(log) == []


def test_inputs_records_one_detached_saga_per_line(log: str, tmp_path: Path) -> None:
    lines = ["# orders of the night", json.dumps(order(1)), "", "   ", json.dumps(order(2)), "  # indented", ""]
    lines.append(json.dumps(order(3)))
    path = tmp_path / "orders.jsonl"
    path.write_text("\n".join(lines) + "\n")
    code, out, err = invoke("run", str(SAMPLE), "--inputs", str(path))
    assert (code, err) == (0, "sagactl: recorded 3 sagas (started); 'sagactl worker' drives them\n")
    assert re.fullmatch(f"({UUID}\n){{3}}", out), out
    assert out.split() == ids_in(log)  # in line order
    assert recorded(log) == [("started", order(1)), ("started", order(2)), ("started", order(3))]


def test_inputs_from_stdin_implies_detach(log: str) -> None:
    stdin = "".join(json.dumps(order(n)) + "\n" for n in range(5))
    code, out, err = invoke("run", str(SAMPLE), "--inputs", "-", stdin=stdin)
    assert code == 0, err
    assert len(out.splitlines()) == 5 and out.split() == ids_in(log)
    assert [data for _, data in recorded(log)] == [order(n) for n in range(5)]


def test_every_line_is_checked_before_anything_is_recorded(log: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    lines = [json.dumps(order(1)), "[1, 2]", '{"order_id": "x",', json.dumps(order(2)), '"text"', "  {} trailing"]
    path.write_text("\n".join(lines) + "\n")
    code, out, err = invoke("run", str(SAMPLE), "--inputs", str(path))
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        f"sagactl: error: {path}:2: not a JSON object (one saga input per line)",
        f"sagactl: error: {path}:3: input from this line is not valid JSON: Expecting property name enclosed in"
        " double quotes at line 1 column 18",
        f"sagactl: error: {path}:5: not a JSON object (one saga input per line)",
        f"sagactl: error: {path}:6: input from this line is not valid JSON: Extra data at line 1 column 6",
    ]
    assert ids_in(log) == []


def test_lines_that_lack_what_the_definition_reads_are_refused(log: str) -> None:
    missing = {k: v for k, v in order(2).items() if k != "address"}
    stdin = "\n".join(json.dumps(x) for x in (order(1), missing, order(3), {})) + "\n"
    code, out, err = invoke("run", str(SAMPLE), "--inputs", "-", stdin=stdin)
    assert (code, out) == (2, "")
    assert err.splitlines() == [
        "sagactl: error: stdin:2: step 'create_shipment': input has no 'address' (used as ${input.address})",
        "sagactl: error: stdin:4: step 'reserve_inventory': input has no 'order_id' (used as ${input.order_id})",
    ]
    assert ids_in(log) == []


def test_many_bad_lines_are_counted_past_twenty(log: str) -> None:
    code, out, err = invoke("run", str(SAMPLE), "--inputs", "-", stdin="nope\n" * 25)
    assert (code, out) == (2, "")
    lines = err.splitlines()
    assert len(lines) == 21 and lines[19] == "sagactl: error: stdin:20: not a JSON object (one saga input per line)"
    assert lines[20] == "sagactl: error: stdin: 5 more lines with problems; nothing was recorded"


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["--saga-id", "s-1"], "{}\n", "--inputs takes each saga's input from its line: --saga-id cannot be given"),
        (["--input", "{}"], "{}\n", "--inputs takes each saga's input from its line: --input cannot be given"),
        (["-o", "jsonl"], "{}\n", "--inputs prints only saga IDs, one per line: -o jsonl does not apply"),
        ([], "\n# nothing\n\n", "--inputs stdin holds no saga inputs (every line is blank or a # comment)"),
    ],
)
def test_inputs_mistakes_exit_2(log: str, args: list[str], stdin: str, message: str) -> None:
    code, out, err = invoke("run", str(SAMPLE), "--inputs", "-", *args, stdin=stdin)
    assert (code, out) == (2, "")
    assert err.startswith(f"sagactl: error: {message}") and err.count("\n") == 1
    assert ids_in(log) == []


def test_inputs_file_that_cannot_be_read(log: str, tmp_path: Path) -> None:
    code, out, err = invoke("run", str(SAMPLE), "--inputs", str(tmp_path / "nope.jsonl"))
    assert (code, out) == (2, "")
    assert err == f"sagactl: error: cannot read --inputs {tmp_path / 'nope.jsonl'}: No such file or directory\n"
