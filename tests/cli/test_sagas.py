"""The operator's commands end to end through the CLI (CliRunner; stdout, stderr and exit code
checked separately), on SQLite and PostgreSQL: list, stats, show extras, resolve, abort,
resume --stuck, a mapped table through a sagactl.yaml context, and start-up imports."""

from __future__ import annotations

import csv
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.codec import escaped
from sagactl.models import SagaState
from sagactl.store import open_store
from sagactl.views.output import cell
from tests.support.sagas import add, at, saga


def this_process(owner: str) -> str:
    """``owner`` when it is a lease owner of this process (``host:pid:nonce``), else a failure."""
    host, pid, nonce = owner.split(":")
    assert (host, pid, len(nonce)) == (socket.gethostname(), str(os.getpid()), 8), owner
    return owner


ROOT = Path(__file__).parent.parent.parent
PARTICIPANTS = ROOT / "sample-configs" / "participants"
runner = CliRunner()

# Three steps on the sample exec participants; compensations are tried once, so a failing
# one leaves the saga compensating at once (no backoff to wait for).
SAGA_YAML = f"""
saga: FastOrder
endpoints:
  inventory: {{type: exec, command: [python3, {PARTICIPANTS}/inventory.py]}}
  payment: {{type: exec, command: [python3, {PARTICIPANTS}/payment.py]}}
  shipping: {{type: exec, command: [python3, {PARTICIPANTS}/shipping.py]}}
defaults:
  timeout: 20s
  retry: {{max_attempts: 1, initial_backoff: 1ms, max_backoff: 1ms}}
  compensation_retry: {{max_attempts: 1, initial_backoff: 1ms, max_backoff: 1ms}}
steps:
  - name: reserve
    endpoint: inventory
    action: {{args: [reserve], body: {{order_id: "${{input.order_id}}", items: "${{input.items}}"}}}}
    compensation: {{args: [release], body: {{order_id: "${{input.order_id}}"}}}}
  - name: charge
    endpoint: payment
    action: {{args: [charge], body: {{order_id: "${{input.order_id}}", amount: 10}}}}
    compensation: {{args: [refund], body: {{order_id: "${{input.order_id}}"}}}}
  - name: ship
    endpoint: shipping
    action: {{args: [create], body: {{order_id: "${{input.order_id}}", address: x, payment_id: p}}}}
"""
INPUT = '{"order_id": "o-1", "items": [{"sku": "A", "qty": 1}]}'


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_dsn: str) -> Path:
    """An empty saga log of each kind (SAGACTL_DSN), the saga file, USER=alice."""
    for name in ("FAIL_STEP", "FAIL_STEP_MODE", "FAIL_COMPENSATION", "SAGACTL_CONFIG", "SAGACTL_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAGACTL_DSN", store_dsn)
    monkeypatch.setenv("SAMPLE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("USER", "alice")
    path = tmp_path / "fast.yaml"
    path.write_text(SAGA_YAML)
    return path


def run_stuck(saga_file: Path, monkeypatch: pytest.MonkeyPatch, saga_id: str = "c-1") -> None:
    """A saga whose ship step is refused and whose charge refund keeps failing: compensating."""
    monkeypatch.setenv("FAIL_STEP", "ship")
    monkeypatch.setenv("FAIL_COMPENSATION", "charge")
    result = runner.invoke(app, ["run", str(saga_file), "--input", INPUT, "--saga-id", saga_id, "-q"])
    assert result.exit_code == 3, result.stderr
    monkeypatch.delenv("FAIL_STEP")


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


# -- list ----------------------------------------------------------------------------------------


def test_empty_log_lists_brackets_in_json_and_a_note_in_tables(cli: Path) -> None:
    assert invoke("list", "-o", "json") == (0, "[]\n", "")
    assert invoke("list", "--stuck", "-o", "json", "--exit-code") == (0, "[]\n", "")
    assert invoke("list", "--stuck") == (0, "", "no stuck sagas\n")
    assert invoke("list", "-q") == (0, "", "")


def test_stuck_saga_in_every_format(cli: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_stuck(cli, monkeypatch)
    code, out, err = invoke("list", "--stuck", "-o", "json")
    assert (code, err) == (0, "")
    [row] = json.loads(out)
    assert list(row) == [
        "saga_id",
        "saga_type",
        "state",
        "current_step",
        "current_step_name",
        "created_at",
        "updated_at",
        "deadline_at",
        "stuck_for_seconds",
        "last_error",
        "lease_owner",
        "lease_expires_at",
    ]
    assert (row["saga_id"], row["saga_type"], row["state"]) == ("c-1", "FastOrder", "compensating")
    assert (row["lease_owner"], row["lease_expires_at"]) == (None, None)  # nobody drives it: it waits
    assert (row["current_step"], row["current_step_name"]) == (1, "charge")
    assert 0 <= row["stuck_for_seconds"] < 600 and row["deadline_at"].endswith("Z")  # stuck since the run just now
    assert "FAIL_COMPENSATION=charge" in row["last_error"]
    assert invoke("list", "--stuck", "-q") == (0, "c-1\n", "")
    assert invoke("list", "--stuck", "-q", "--exit-code") == (3, "c-1\n", "")
    assert invoke("list", "--stuck", "-q", "--exit-code", "--type", "Other") == (0, "", "")
    code, out, err = invoke("list", "--stuck")
    assert code == 0 and err == ""
    header, line = out.splitlines()
    assert header.split()[:4] == ["SAGA", "TYPE", "STATE", "STEP"]
    assert line.startswith("c-1") and "1 (charge)" in line and "charge compensation: exec" in line
    code, out, err = invoke("list", "--stuck", "-o", "csv")
    assert (code, err) == (0, "")
    header, line = list(csv.reader(io.StringIO(out)))
    assert header == list(row)  # the JSON fields, every value whole
    shown = dict(zip(header, line, strict=True))
    assert float(shown.pop("stuck_for_seconds")) >= row["stuck_for_seconds"]  # a moment later
    assert shown == {key: cell(value) for key, value in row.items() if key != "stuck_for_seconds"}
    jsonl = invoke("list", "-o", "jsonl", "--state", "COMPENSATING")[1]
    assert [json.loads(x)["saga_id"] for x in jsonl.splitlines()] == ["c-1"]


def test_list_filters(cli: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_stuck(cli, monkeypatch, "c-1")
    monkeypatch.delenv("FAIL_COMPENSATION")
    assert runner.invoke(app, ["run", str(cli), "--input", INPUT, "--saga-id", "ok-1", "-q"]).exit_code == 0
    assert invoke("list", "-q") == (0, "c-1\nok-1\n", "")
    assert invoke("list", "-q", "--state", "completed", "--state", "failed") == (0, "ok-1\n", "")
    assert invoke("list", "-q", "--limit", "1") == (0, "c-1\n", "")
    assert invoke("list", "-q", "--older-than", "1h") == (0, "", "")
    assert invoke("list", "-q", "--stuck", "--older-than", "1h") == (0, "c-1\n", "")  # past its deadline
    assert invoke("list", "-q", "--type", "FastOrder' OR '1'='1") == (0, "", "")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--state", "pending' OR '1'='1"],
            "sagactl: error: invalid value for '--state': \"pending' OR '1'='1\" is not one of",
        ),
        (["--state", "running"], "sagactl: error: invalid value for '--state': 'running' is not one of"),
        (["--limit", "-1"], "sagactl: error: --limit must be 0 (no limit) to 1000000000, got -1"),
        (["--limit", "1; DROP TABLE saga_log"], "sagactl: error: invalid value for '--limit'"),
        (["--older-than", "5 minutes"], "sagactl: error: --older-than: invalid duration '5 minutes'"),
        (["--older-than", "1m'; DROP TABLE saga_log; --"], "sagactl: error: --older-than: invalid duration"),
        (["-o", "prometheus"], "sagactl: error: invalid value for '-o' / '--output': 'prometheus' is not one of"),
    ],
)
@pytest.mark.slow
def test_list_option_errors_exit_2(cli: Path, args: list[str], message: str) -> None:
    code, out, err = invoke("list", "--stuck", *args)
    assert code == 2 and out == ""
    assert err.startswith(message) and err.count("\n") == 1, err
    assert invoke("list", "-o", "json") == (0, "[]\n", "")  # the log is intact


# -- stats ---------------------------------------------------------------------------------------


def test_stats_json_prometheus_and_table(cli: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_stuck(cli, monkeypatch)
    code, out, err = invoke("stats", "-o", "json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["totals"]["compensating"] == 1 and data["totals"]["stuck"] == 1
    assert 0 <= data["oldest_active_age_seconds"] < 600  # the saga was run just now
    code, out, err = invoke("stats", "-o", "prometheus")
    assert (code, err) == (0, "")
    assert 'sagactl_sagas{saga_type="FastOrder",state="compensating"} 1.0' in out.splitlines()
    assert 'sagactl_sagas_stuck{saga_type="FastOrder",state="compensating"} 1.0' in out.splitlines()
    assert "# TYPE sagactl_oldest_active_saga_age_seconds gauge" in out
    code, out, err = invoke("stats")
    assert code == 0 and "1 active (1 stuck), 0 completed, 0 failed" in out
    assert "FastOrder  compensating" in out


# -- show ------------------------------------------------------------------------------------------


def test_show_gives_the_last_error_of_each_failing_step(cli: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_stuck(cli, monkeypatch)
    code, out, err = invoke("show", "c-1")
    assert (code, err) == (0, "")
    assert "compensation error at charge: " in out and "FAIL_COMPENSATION=charge" in out
    assert "action error at ship: " in out and "FAIL_STEP=ship" in out
    data = json.loads(invoke("show", "c-1", "-o", "json")[1])
    # the refused action's error on ship; charge's compensation error apart from its (absent) action error
    assert [s["error"] is not None for s in data["steps"]] == [False, False, True]
    assert [s["compensation_error"] is not None for s in data["steps"]] == [False, True, False]
    assert "FAIL_COMPENSATION=charge" in data["steps"][1]["compensation_error"]
    code, out, err = invoke("show", "nope' OR '1'='1")
    assert (code, out) == (2, "") and err.startswith("sagactl: error: saga nope' OR '1'='1 not found in ")


# -- resolve and abort ---------------------------------------------------------------------------


def test_resolve_records_who_and_why_then_compensation_continues(cli: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_stuck(cli, monkeypatch)
    code, out, err = invoke(
        "resolve", "c-1", "--step", "charge", "--reason", "refunded in the PSP console", "-o", "json"
    )
    assert code == 1, err  # failed: fully compensated now
    data = json.loads(out)
    assert data["state"] == "failed"
    assert [s["status"] for s in data["steps"]] == ["compensated", "compensated", "failed"]
    resolved = [t for t in data["transitions"] if t["detail"].get("action") == "resolve"]
    assert [(t["step_name"], t["old_state"], t["new_state"]) for t in resolved] == [
        ("charge", "compensating", "compensated")
    ]
    assert resolved[0]["detail"] == {
        "action": "resolve",
        "by": "alice",
        "reason": "refunded in the PSP console",
        "owner": this_process(resolved[0]["detail"]["owner"]),  # the driver that wrote it
    }
    assert "saga c-1 failed" in err
    assert invoke("list", "--stuck", "-q") == (0, "", "")


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["c-1", "--step", "nope", "--reason", "x"], 2, "saga c-1 has no step 'nope' (steps: reserve, charge, ship)"),
        (["c-1", "--step", "ship", "--reason", "x"], 2, "there is no compensation waiting to be resolved"),
        (["c-1", "--step", "charge", "--reason", "   "], 2, "--reason must say why"),
        (["c-1", "--step", "charge"], 2, "sagactl: error: missing option '--reason'; see 'sagactl resolve --help'\n"),
        (["c-1", "--reason", "x"], 2, "sagactl: error: missing option '--step'; see 'sagactl resolve --help'\n"),
        (["ghost", "--step", "charge", "--reason", "x"], 2, "saga ghost not found"),
    ],
)
@pytest.mark.slow
def test_resolve_mistakes_exit_2(
    cli: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], code: int, message: str
) -> None:
    run_stuck(cli, monkeypatch)
    result = invoke("resolve", *args)
    assert result[0] == code and result[1] == "" and message in result[2]
    assert invoke("list", "--stuck", "-q") == (0, "c-1\n", "")  # untouched, lease released
    assert invoke("resume", "c-1", "-q")[0] == 3  # and drivable again


@pytest.mark.slow
def test_resolve_refuses_a_step_out_of_reverse_order_unless_told(cli: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """charge's refund is the compensation waiting; reserve's comes after it. Resolving
    reserve first is refused (exit 2, nothing written) unless --out-of-order says the operator
    means it, which the transition records; its compensation is then never sent."""
    run_stuck(cli, monkeypatch)
    code, out, err = invoke("resolve", "c-1", "--step", "reserve", "--reason", "released by hand")
    assert (code, out) == (2, "")
    assert err == (
        "sagactl: error: step 'reserve' of saga c-1 is not the compensation waiting: 'charge' is (compensations"
        " run in reverse order); resolve --step charge first, or add --out-of-order if 'reserve' was undone by"
        " hand ahead of its turn\n"
    )
    code, out, err = invoke(
        "resolve", "c-1", "--step", "reserve", "--reason", "released by hand", "--out-of-order", "-o", "json"
    )
    assert code == 3, err  # charge's refund still fails: the saga waits there again
    data = json.loads(out)
    assert [s["status"] for s in data["steps"]] == ["compensated", "compensating", "failed"]
    [resolved] = [t for t in data["transitions"] if t["detail"].get("action") == "resolve"]
    assert resolved["step_name"] == "reserve"
    assert resolved["detail"] == {
        "action": "resolve",
        "by": "alice",
        "reason": "released by hand",
        "out_of_order": True,
        "waiting": "charge",
        "owner": this_process(resolved["detail"]["owner"]),
    }
    code, out, err = invoke("resolve", "c-1", "--step", "charge", "--reason", "refunded by hand", "-o", "json")
    assert code == 1, err
    data = json.loads(out)
    assert data["state"] == "failed"
    assert not any(t["step_name"] == "reserve" and t["new_state"] == "compensating" for t in data["transitions"])


def test_abort_stops_forward_progress_and_compensates(cli: Path) -> None:
    code, out, _ = invoke("run", str(cli), "--input", INPUT, "--detach", "-q")
    saga_id = out.strip()
    code, out, err = invoke("abort", saga_id, "--reason", "customer cancelled", "-o", "json")
    assert code == 1, err
    data = json.loads(out)
    assert data["state"] == "failed" and [s["status"] for s in data["steps"]] == ["pending"] * 3
    abort = [t for t in data["transitions"] if t["detail"].get("action") == "abort"]
    assert [(t["old_state"], t["new_state"], t["detail"]) for t in abort] == [
        (
            "started",
            "compensating",
            {
                "action": "abort",
                "by": "alice",
                "reason": "customer cancelled",
                "owner": this_process(abort[0]["detail"]["owner"]),
            },
        )
    ]
    code, out, err = invoke("abort", saga_id, "--reason", "again")
    assert (code, out) == (2, "") and "already failed; nothing to abort" in err
    assert invoke("abort", saga_id)[0] == 2


def test_abort_of_a_stuck_compensation_records_the_note(cli: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_stuck(cli, monkeypatch)
    code, out, _ = invoke("abort", "c-1", "--reason", "ops: retry now", "-o", "json", "-q")
    assert (code, out) == (3, "c-1\n")  # the refund still fails: still compensating
    history = json.loads(invoke("show", "c-1", "-o", "json")[1])["transitions"]
    notes = [t for t in history if t["detail"].get("action") == "abort"]
    assert [(t["old_state"], t["new_state"]) for t in notes] == [("compensating", "compensating")]
    assert notes[0]["detail"]["by"] == "alice"


# -- resume --stuck -------------------------------------------------------------------------------


@pytest.mark.slow
def test_resume_stuck_resumes_each_with_a_summary(cli: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_stuck(cli, monkeypatch, "c-1")
    run_stuck(cli, monkeypatch, "c-2")
    code, out, err = invoke("resume", "--stuck", "-q")  # two sagas, no terminal: --yes needed
    assert (code, out) == (2, "")
    assert err.startswith("sagactl: error: this would resume 2 sagas as job-") and err.endswith(
        ": pass --yes to go ahead; see the plan first with --dry-run\n"
    )
    code, out, err = invoke("resume", "--stuck", "--yes", "-q")
    assert (code, out) == (3, "c-1\nc-2\n")
    lines = err.splitlines()
    assert [line.split(" is compensating at charge: ")[0] for line in lines[:2]] == [
        "sagactl: saga c-1",
        "sagactl: saga c-2",
    ]
    first_job = lines[2].split()[1]
    assert len(lines) == 3 and first_job.startswith("job-")
    who = f"alice@{socket.gethostname()}"
    assert lines[2].startswith(f"sagactl: {first_job} ({who}): resumed 2 of 2 sagas: 2 compensating in ")
    monkeypatch.delenv("FAIL_COMPENSATION")
    code, out, err = invoke("resume", "--stuck", "--yes", "-o", "json")
    assert code == 1
    assert [d["state"] for d in json.loads(out)] == ["failed", "failed"]
    # the first job went through its plan: the same command is a new job
    assert f"-2 (alice@{socket.gethostname()}): resumed 2 of 2 sagas: 2 failed in " in err.splitlines()[-1]
    assert err.splitlines()[-1].startswith(f"sagactl: {first_job}-2 ")
    assert invoke("resume", "--stuck", "-o", "json") == (0, "[]\n", "sagactl: no stuck sagas to resume\n")


def test_resume_stuck_skips_a_saga_another_process_drives(
    cli: Path, monkeypatch: pytest.MonkeyPatch, store_dsn: str
) -> None:
    run_stuck(cli, monkeypatch, "c-1")
    store = open_store(store_dsn)
    try:
        assert store.acquire_lease("c-1", "elsewhere:1:abcd", until=at(10**8), now=at(0)) is None
    finally:
        store.close()
    code, out, err = invoke("resume", "--stuck", "-q")
    assert (code, out) == (3, "")
    lines = err.splitlines()
    assert lines[0].startswith("sagactl: error: saga c-1 is being driven by elsewhere:1:abcd")
    assert "resumed 0 of 1 saga: none resumed; failed 1" in lines[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["c-1", "--stuck"], "pass saga IDs (or -) or selectors (--stuck, --state,"),
        (["c-1", "--older-than", "5m"], "pass saga IDs (or -) or selectors (--stuck, --state,"),
        ([], "name at least one SAGA_ID (or - for IDs on stdin), or select sagas with --stuck"),
        (["--stuck", "--older-than", "soon"], "invalid duration 'soon'"),
        (["--group", "cd7ce307"], "--group KEY picks a failure group among the sagas the other selectors pick"),
        (["--stuck", "--rate", "0"], "--rate must be above 0"),
        (["--stuck", "--max", "0"], "--max must be 1 to 1000000000"),
        (["--stuck", "--job", "a b"], "--job takes a job ID"),
    ],
)
@pytest.mark.slow
def test_resume_option_mistakes(cli: Path, args: list[str], message: str) -> None:
    code, out, err = invoke("resume", *args)
    assert (code, out) == (2, "") and message in err and err.count("\n") == 1


# -- rows another writer left in a state sagactl does not know --------------------------------------


def set_column(dsn: str, column: str, value: str, *saga_ids: str) -> None:
    """What another writer (or an operator's hand fix) does: plain SQL on saga_log."""
    statement = f"UPDATE saga_log SET {column} = ? WHERE saga_id = ?"
    if dsn.startswith("sqlite:///"):
        with sqlite3.connect(dsn.removeprefix("sqlite:///")) as conn:
            conn.executemany(statement, [(value, i) for i in saga_ids])
    else:
        with psycopg.connect(dsn, autocommit=True) as conn, conn.cursor() as cur:
            cur.executemany(statement.replace("?", "%s"), [(value, i) for i in saga_ids])


def set_state(dsn: str, state: str, *saga_ids: str) -> None:
    set_column(dsn, "state", state, *saga_ids)


@pytest.mark.slow
def test_rows_in_unknown_states_are_skipped_with_one_warning_each(cli: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_stuck(cli, monkeypatch, "c-1")
    monkeypatch.delenv("FAIL_COMPENSATION")
    for saga_id in ("p-1", "p-2", "u-1", "ok-1"):
        assert runner.invoke(app, ["run", str(cli), "--input", INPUT, "--saga-id", saga_id, "-q"]).exit_code == 0
    dsn = os.environ["SAGACTL_DSN"]
    set_state(dsn, "paused", "p-1", "p-2")
    set_state(dsn, "COMPLETED", "u-1")
    store = open_store(dsn, create=False)
    where = store.info.location
    store.close()
    paused = (
        "sagactl: warning: skipping sagas in state 'paused', which this sagactl does not know (first: saga p-1"
        f" in {where}); fix the rows (states are stored lowercase) or upgrade sagactl\n"
    )
    upper = paused.replace("'paused'", "'COMPLETED'").replace("saga p-1", "saga u-1")
    assert invoke("list", "-q") == (0, "c-1\nok-1\n", paused + upper)
    assert invoke("list", "--stuck", "-q", "--exit-code") == (3, "c-1\n", paused + upper)
    code, out, err = invoke("stats", "-o", "json")
    counted = (  # stats reads the counters first: they name the type and how many
        "sagactl: warning: skipping sagas in state '{}', which this sagactl does not know (first: {} of type"
        f" FastOrder in {where}); fix the rows (states are stored lowercase) or upgrade sagactl"
    )
    assert (code, err.splitlines()) == (0, [counted.format("COMPLETED", 1), counted.format("paused", 2)])
    totals = json.loads(out)["totals"]
    assert (totals["completed"], totals["compensating"], totals["active"]) == (1, 1, 1)
    for command in (["show", "p-1"], ["resume", "p-1"], ["abort", "u-1", "--reason", "x"]):
        saga_id = command[1]
        state = "paused" if saga_id == "p-1" else "COMPLETED"
        code, out, err = invoke(*command)
        assert (code, out) == (4, "")
        assert err == (
            f"sagactl: error: saga {saga_id} in {where} cannot be read: its state '{state}' is not one this sagactl"
            " knows (started, pending, compensating, completed, failed); fix the row (states are stored lowercase)"
            " or upgrade sagactl\n"
        )
    set_column(dsn, "steps", '[{"status": "pending"}]', "ok-1")  # a row of the wrong shape
    broken = "sagactl: warning: skipping saga ok-1: its row does not decode: no 'name' field\n"
    assert invoke("list", "-q") == (0, "c-1\n", paused + upper + broken)
    code, out, err = invoke("show", "ok-1")
    assert (code, out) == (4, "")
    assert err == (
        f"sagactl: error: saga ok-1 in {where} cannot be read: its row does not decode: no 'name' field;"
        " fix the row or upgrade sagactl\n"
    )
    set_state(dsn, "completed", "u-1")  # the hand fix: readable again, untouched by the attempts above
    shown = json.loads(invoke("show", "u-1", "-o", "json")[1])
    assert (shown["state"], [s["status"] for s in shown["steps"]]) == ("completed", ["completed"] * 3)


# -- saga IDs ---------------------------------------------------------------------------------------

# (ID, how messages show it, what is wrong with it); an empty ID and one that is not UTF-8 are
# refused before anything else, whatever the command
BAD_IDS = [
    (" c-1", " c-1", "starts or ends with whitespace"),
    ("c-1\t", "c-1\\t", "contains the control or invisible character U+0009"),
    ("c-\x1b[31m1", "c-\\x1b[31m1", "contains the control or invisible character U+001B"),
    ("c\u202e1", "c\\u202e1", "contains the control or invisible character U+202E"),
    ("x" * 129, "x" * 40 + "…", "is 129 characters long, over the 128 of an SQS FIFO message group ID"),
]
NO_STORE_HOLDS = [
    ("", "saga ID is empty; pass the ID as 'sagactl list' shows it"),
    ("c-\udcff", "saga ID 'c-\\udcff' is not valid UTF-8"),
]
LOOKUPS = [["show"], ["resume"], ["abort", "--reason", "x"], ["resolve", "--step", "charge", "--reason", "x"]]
RUN = ["run", "@SAGA", "--input", INPUT, "--saga-id"]


def location(dsn: str) -> str:
    store = open_store(dsn, create=False)
    try:
        return store.info.location
    finally:
        store.close()


@pytest.mark.parametrize(("saga_id", "shown", "problem"), BAD_IDS, ids=[f"bad-{n}" for n in range(len(BAD_IDS))])
@pytest.mark.slow
def test_a_new_saga_id_is_checked_and_a_bad_one_that_finds_nothing_says_why(
    cli: Path, saga_id: str, shown: str, problem: str
) -> None:
    code, out, err = invoke("run", str(cli), "--input", INPUT, "--saga-id", saga_id)
    assert (code, out, err) == (2, "", f"sagactl: error: saga ID '{shown}' {problem}\n")
    where = location(os.environ["SAGACTL_DSN"])
    for command in LOOKUPS:
        code, out, err = invoke(*command, saga_id)
        assert (code, out) == (2, "")
        # the store was asked (another writer may use any ID); finding nothing, the error says why
        # (one line: whitespace in the ID collapses, control characters are escaped)
        assert err == (
            f"sagactl: error: saga {escaped(' '.join(saga_id.split()))} not found in {where} (the ID {problem});"
            " check the ID with 'sagactl list' and the store with --dsn\n"
        )
    assert invoke("list", "-q") == (0, "", "")  # nothing recorded


@pytest.mark.parametrize(("saga_id", "message"), NO_STORE_HOLDS, ids=["empty", "not-utf8"])
@pytest.mark.parametrize("command", [RUN, *LOOKUPS], ids=["run", "show", "resume", "abort", "resolve"])
@pytest.mark.slow
def test_an_id_no_store_can_hold_is_refused_by_every_command(
    cli: Path, command: list[str], saga_id: str, message: str
) -> None:
    args = [str(cli) if arg == "@SAGA" else arg for arg in command]
    assert invoke(*args, saga_id) == (2, "", f"sagactl: error: {message}\n")
    assert invoke("list", "-q") == (0, "", "")


def test_a_saga_another_writer_recorded_under_an_odd_id_can_be_shown_and_aborted(cli: Path) -> None:
    assert invoke("run", str(cli), "--input", INPUT, "--saga-id", "odd", "--detach")[0] == 0
    set_column(os.environ["SAGACTL_DSN"], "saga_id", "odd ", "odd")  # trailing space: not sagactl's
    shown = invoke("show", "odd ", "-o", "json")
    assert shown[0] == 0 and json.loads(shown[1])["saga_id"] == "odd "
    code, out, err = invoke("abort", "odd ", "--reason", "imported by hand", "-q")
    assert (code, out) == (1, "odd \n"), err


def test_the_longest_allowed_saga_id_runs_and_shows(cli: Path) -> None:
    longest = "é" * 64 + "x" * 64  # 128 characters (192 bytes)
    code, out, err = invoke("run", str(cli), "--input", INPUT, "--saga-id", longest, "-q")
    assert (code, out, err) == (0, f"{longest}\n", "")
    assert json.loads(invoke("show", longest, "-o", "json")[1])["saga_id"] == longest
    assert invoke("list", "-q") == (0, f"{longest}\n", "")


# -- shapes that hold ------------------------------------------------------------------------------


@pytest.mark.slow
def test_resume_prints_an_array_even_of_one_saga(cli: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_stuck(cli, monkeypatch, "c-1")
    run_stuck(cli, monkeypatch, "c-2")
    monkeypatch.delenv("FAIL_COMPENSATION")
    code, out, err = invoke("resume", "c-2", "-o", "json")  # one ID
    assert code == 1, err
    shown = json.loads(invoke("show", "c-2", "-o", "json")[1])
    assert out == json.dumps([shown], indent=2, ensure_ascii=False) + "\n"
    code, out, err = invoke("resume", "--stuck", "-o", "json")  # one stuck saga
    assert code == 1, err
    shown = json.loads(invoke("show", "c-1", "-o", "json")[1])
    assert out == json.dumps([shown], indent=2, ensure_ascii=False) + "\n"
    assert ": resumed 1 of 1 saga: 1 failed in " in err.splitlines()[-1]


@pytest.mark.parametrize(("fmt", "delimiter"), [("csv", ","), ("tsv", "\t")])
def test_csv_and_tsv_carry_the_saga_id_and_every_value_whole(store_dsn: str, fmt: str, delimiter: str) -> None:
    error = ('a 500-character error, with "quotes",\ta tab and\na newline; ' * 10)[:500]
    result = {"note": error, "n": 1.5, "ok": True}
    store = open_store(store_dsn)
    try:
        record = saga("long-1", state=SagaState.COMPENSATING, step=1, updated=0, deadline=1, error=error)
        record.steps[0].result = result
        add(store, record)
    finally:
        store.close()

    def table(*args: str) -> list[dict[str, str]]:
        code, out, err = invoke(*args, "--dsn", store_dsn, "-o", fmt)
        assert (code, err) == (0, "")
        header, *rows = csv.reader(io.StringIO(out), delimiter=delimiter)
        return [dict(zip(header, row, strict=True)) for row in rows]

    steps = table("show", "long-1")
    assert [(s["saga_id"], s["name"]) for s in steps] == [("long-1", n) for n in ("reserve", "charge", "notify")]
    assert steps[1]["compensation_error"] == error and len(error) == 500
    assert json.loads(steps[0]["result"]) == result
    assert (steps[1]["attempts"], steps[1]["compensation_attempts"]) == ("1", "4")  # not reformatted ("1 +4c")
    [row] = table("list", "--stuck")
    assert (row["saga_id"], row["last_error"]) == ("long-1", f"charge: {error}")
    assert float(row["stuck_for_seconds"]) > 0


# -- a mapped table through a config context (PostgreSQL) -------------------------------------------


@pytest.fixture
def legacy(pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS legacy")
        conn.execute("DROP TABLE IF EXISTS legacy.sagas")
        conn.execute(
            "CREATE TABLE legacy.sagas (id text PRIMARY KEY, kind text, status text, step_no int,"
            " modified_at timestamptz, created_at timestamptz)"
        )
        conn.execute(
            "INSERT INTO legacy.sagas VALUES ('L-1', 'Order', 'COMPENSATING', 2, %s, %s),"
            " ('L-2', 'Order', 'COMPLETED', NULL, %s, %s), ('L-3', 'Order', 'PENDING', 0, now(), now())",
            [at(0), at(0), at(0), at(0)],
        )
    for name in ("SAGACTL_DSN", "SAGACTL_CONFIG", "SAGACTL_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    open_store(f"sqlite:///{tmp_path}/own.db").close()
    config = tmp_path / "sagactl.yaml"
    config.write_text(
        f"""store:
  dsn: sqlite:///{tmp_path}/own.db
contexts:
  legacy:
    store:
      dsn: {pg_dsn}
      table: legacy.sagas
      columns: {{saga_id: id, saga_type: kind, state: status, current_step: step_no,
                updated_at: modified_at, created_at: created_at}}
      states: {{started: STARTED, pending: PENDING, compensating: COMPENSATING,
               completed: COMPLETED, failed: FAILED}}
"""
    )
    yield config
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        assert conn.execute("SELECT count(*) FROM legacy.sagas").fetchone() == (3,)


def test_mapped_table_through_a_context(legacy: Path) -> None:
    code, out, err = invoke("list", "--stuck", "--context", "legacy", "-o", "json")
    assert (code, err) == (0, "")
    [row] = json.loads(out)
    assert (row["saga_id"], row["state"], row["current_step"], row["current_step_name"]) == (
        "L-1",
        "compensating",
        2,
        None,
    )
    assert (row["lease_owner"], row["lease_expires_at"]) == (None, None)  # a mapped table has no lease
    rows = list(csv.DictReader(io.StringIO(invoke("list", "--context", "legacy", "-o", "csv")[1])))
    assert ["lease_owner", *(r["lease_owner"] for r in rows)] == [
        "lease_owner",
        "",
        "",
        "",
    ]
    assert invoke("list", "--context", "legacy", "-q") == (0, "L-1\nL-2\nL-3\n", "")
    assert invoke("list", "--stuck", "--context", "legacy", "-q", "--exit-code") == (3, "L-1\n", "")
    shown = invoke("show", "L-1", "--context", "legacy", "-o", "json")
    assert shown[0] == 0 and json.loads(shown[1])["state"] == "compensating"
    assert [json.loads(shown[1])[k] for k in ("lease_owner", "lease_expires_at", "wake_at")] == [None] * 3
    prom = invoke("stats", "--context", "legacy", "-o", "prometheus")[1]
    assert 'sagactl_sagas{saga_type="Order",state="completed"} 1.0' in prom
    assert invoke("list", "-o", "json") == (0, "[]\n", "")  # the default context: the own log


@pytest.fixture
def mixed_case(pg_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """legacy.mixed: states spelled in three cases, one the mapping does not name (ARCHIVED);
    the mapping itself written in yet other cases."""
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA IF NOT EXISTS legacy")
        conn.execute("DROP TABLE IF EXISTS legacy.mixed")
        conn.execute("CREATE TABLE legacy.mixed (id text PRIMARY KEY, kind text, status text, modified_at timestamptz)")
        conn.execute(
            "INSERT INTO legacy.mixed VALUES ('M-1', 'Order', 'Compensating', now() - interval '1 hour'),"
            " ('M-2', 'Order', 'COMPLETED', now()), ('M-3', 'Order', 'completed', now()),"
            " ('M-4', 'Order', 'ARCHIVED', now()), ('M-5', 'Order', 'archived', now())"
        )
    (tmp_path / "sagactl.yaml").write_text(
        f"""contexts:
  mixed:
    store:
      dsn: {pg_dsn}
      table: legacy.mixed
      columns: {{saga_id: id, saga_type: kind, state: status, updated_at: modified_at}}
      states: {{Started: started, PENDING: pending, compensating: COMPENSATING, Completed: Completed,
               failed: FAILED}}
"""
    )
    for name in ("SAGACTL_DSN", "SAGACTL_CONFIG", "SAGACTL_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield tmp_path / "sagactl.yaml"


def test_mapped_states_match_in_any_case_and_unmapped_ones_are_named(mixed_case: Path) -> None:
    code, out, err = invoke("list", "--context", "mixed", "-o", "json")
    assert (code, err) == (0, "")
    assert [(r["saga_id"], r["state"]) for r in json.loads(out)] == [
        ("M-1", "compensating"),
        ("M-2", "completed"),
        ("M-3", "completed"),
    ]
    assert invoke("list", "--stuck", "--context", "mixed", "-q") == (0, "M-1\n", "")
    code, out, err = invoke("stats", "--context", "mixed", "-o", "json")
    assert code == 0
    assert json.loads(out)["totals"]["completed"] == 2 and json.loads(out)["totals"]["compensating"] == 1
    assert err == (
        "sagactl: warning: mapped table legacy.mixed: rows in states store.states does not map are not counted"
        " ('ARCHIVED': 2)\n"
    )
    code, out, err = invoke("show", "M-4", "--context", "mixed")
    assert (code, out) == (2, "")
    assert err == (
        "sagactl: error: saga M-4 in mapped table legacy.mixed is in state 'ARCHIVED', which store.states does"
        " not map (started: started, pending: pending, compensating: compensating, completed: completed,"
        " failed: failed); add that value under store.states in the config file\n"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["resume", "L-1"],
        ["resume", "--stuck"],
        ["abort", "L-1", "--reason", "x"],
        ["resolve", "L-1", "--step", "s", "--reason", "x"],
        ["db", "init"],
    ],
)
def test_writing_commands_refuse_a_mapped_table(legacy: Path, args: list[str]) -> None:
    code, out, err = invoke(*args, "--context", "legacy")
    assert (code, out) == (2, "")
    assert "read-only mapped table legacy.sagas" in err and err.count("\n") == 1


# -- start-up ---------------------------------------------------------------------------------------


def test_list_json_imports_no_heavy_module(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGACTL_")}
    log = tmp_path / ".sagactl" / "saga_log.db"
    open_store(f"sqlite:///{log}").close()
    before = log.read_bytes()
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sagactl", "list", "-o", "json"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0 and completed.stdout == "[]\n"
    modules = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in completed.stderr.splitlines()}
    heavy = {"psycopg", "boto3", "botocore", "httpx", "urllib3", "tabulate", "rich", "yaml", "jsonschema"}
    assert modules & heavy == set()
    assert log.read_bytes() == before  # a read-only command changes nothing


def test_sample_config_and_its_mapped_example(pg_dsn: str, tmp_path: Path) -> None:
    """sample-configs/sagactl.yaml parses; its commented mapped-table example, uncommented,
    is a valid mapping."""
    from sagactl.config import resolve_settings
    from sagactl.store.mapping import resolve

    sample = ROOT / "sample-configs" / "sagactl.yaml"
    assert resolve_settings(config=str(sample), env={}).dsn.startswith("postgresql://")
    assert resolve_settings(config=str(sample), context="local", env={}).dsn == "sqlite:///.sagactl/saga_log.db"
    text = sample.read_text().replace("  # legacy:", "  legacy:").replace("\n  #   ", "\n    ")
    uncommented = tmp_path / "sagactl.yaml"
    uncommented.write_text(text)
    settings = resolve_settings(config=str(uncommented), context="legacy", env={})
    assert settings.mapping is not None and settings.mapping.table == "orders.saga_instances"
    assert settings.mapping.states["compensating"] == "COMPENSATING"
    assert resolve(settings.mapping).fields["updated_at"].column == "modified_at"  # every key is known
