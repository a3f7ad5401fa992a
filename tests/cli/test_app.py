"""The command line: exit codes, stdout/stderr separation, formats, help, completions.

Most tests use typer's CliRunner; the end-to-end ones run the installed ``sagactl`` in a
subprocess on the sample saga (real exec participants), as a runbook would.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sagactl.cli import app, completion_script
from sagactl.store import open_store
from sagactl.views.output import cell

ROOT = Path(__file__).parent.parent.parent
SAMPLE = ROOT / "sample-configs" / "order.yaml"
SAMPLE_INPUT = ROOT / "sample-configs" / "order-input.json"
runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """An isolated saga log and participant state; no failure switches."""
    for name in ("FAIL_STEP", "FAIL_STEP_MODE", "FAIL_COMPENSATION", "SAGACTL_DSN", "SAGACTL_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    values = {"SAGACTL_DSN": f"sqlite:///{tmp_path / 'log.db'}", "SAMPLE_STATE_DIR": str(tmp_path / "state")}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    open_store(values["SAGACTL_DSN"]).close()  # read-only commands refuse a missing log
    return values


def run_sample(*extra: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sagactl", "run", str(SAMPLE), "--input", f"@{SAMPLE_INPUT}", *extra],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
    )


# -- help and completions -------------------------------------------------------------------


def _commands(group: object, prefix: str = "") -> list[tuple[str, object]]:
    from typer.main import get_command

    click_group = get_command(app) if group is None else group
    found = []
    for name, command in getattr(click_group, "commands", {}).items():
        found.append((f"{prefix}{name}", command))
        found += _commands(command, f"{prefix}{name} ")
    return found


def test_every_command_and_option_has_help() -> None:
    missing = []
    for name, command in _commands(None):
        if not (getattr(command, "help", None) or getattr(command, "short_help", None)):
            missing.append(name)
        for param in getattr(command, "params", []):
            if not getattr(param, "help", None) and param.name != "help":
                missing.append(f"{name} {param.name}")
    assert missing == []


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_current(shell: str) -> None:
    shipped = (ROOT / "completions" / f"sagactl.{shell}").read_text()
    assert shipped == completion_script(shell) + "\n", (
        f"completions/sagactl.{shell} is stale: run 'sagactl completion {shell} > completions/sagactl.{shell}'"
    )
    result = runner.invoke(app, ["completion", shell])
    assert result.exit_code == 0
    assert result.stdout == shipped


def test_completion_answers_the_shell(env: dict[str, str]) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "sagactl"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "_SAGACTL_COMPLETE": "complete_bash",
            "COMP_WORDS": "sagactl sch",
            "COMP_CWORD": "1",
        },
        timeout=30,
    )
    assert completed.stdout.split() == ["schema"]


def test_schema_prints_the_shipped_json_schema() -> None:
    from sagactl.definitions.validation import schema

    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == schema()


def test_no_arguments_shows_help_on_stderr_exit_2() -> None:
    """No command is a usage error: help goes to stderr (stdout stays clean for pipes), exit 2."""
    result = runner.invoke(app, [])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("Usage: sagactl [OPTIONS] COMMAND [ARGS]...")
    assert "validate" in result.stderr
    asked = runner.invoke(app, ["--help"])  # asked for: stdout, exit 0
    assert (asked.exit_code, asked.stderr) == (0, "")
    assert asked.stdout.startswith("Usage: sagactl [OPTIONS] COMMAND [ARGS]...")


def test_version_is_cheap_and_exact() -> None:
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sagactl", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (completed.returncode, completed.stdout) == (0, "sagactl 0.1.0\n")
    modules = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in completed.stderr.splitlines()}
    assert "typer" not in modules and "rich" not in modules  # answered before the command line loads
    listed = runner.invoke(app, ["--version"])  # and through the app, where --help lists it
    assert (listed.exit_code, listed.stdout, listed.stderr) == (0, "sagactl 0.1.0\n", "")
    assert "--version" in runner.invoke(app, ["--help"]).stdout


def test_a_usage_error_from_the_real_entry_point_is_one_line_exit_2(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "sagactl", "list", "--bogus"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (completed.returncode, completed.stdout) == (2, "")
    assert completed.stderr.startswith("sagactl: error: no such option: --bogus")
    assert completed.stderr.endswith("; see 'sagactl list --help'\n") and completed.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["nosuch"], "no such command 'nosuch'; see 'sagactl --help'"),
        (["show"], "missing argument 'saga_ids'; see 'sagactl show --help'"),
        (["run", "x.yaml", "--saga-id"], "option '--saga-id' requires an argument; see 'sagactl --help'"),
        (
            ["list", "--limit", "x"],
            "invalid value for '--limit': 'x' is not a valid int; see 'sagactl list --help'",
        ),
        (["db", "init", "--frobnicate"], "no such option: --frobnicate; see 'sagactl db init --help'"),
        (["dlq", "list"], "missing argument 'queue'; see 'sagactl dlq list --help'"),
        (
            ["show", "x", "-o", "yaml"],
            "invalid value for '-o' / '--output': 'yaml' is not one of 'table', 'json', 'jsonl', 'csv', 'tsv',"
            " 'markdown'; see 'sagactl show --help'",
        ),
    ],
)
def test_usage_errors_are_one_line_exit_2(env: dict[str, str], args: list[str], line: str) -> None:
    result = runner.invoke(app, args)
    assert (result.exit_code, result.stdout, result.stderr) == (2, "", f"sagactl: error: {line}\n")


def _output_choices() -> dict[str, list[str]]:
    found = {}
    for name, command in _commands(None):
        for param in getattr(command, "params", []):
            if param.name == "output":
                found[name] = list(param.type.choices)
    return found


def test_prometheus_is_offered_by_stats_only() -> None:
    """Every format a command's -o offers works for it (the next test); prometheus only on stats."""
    choices = _output_choices()
    assert choices.pop("stats") == ["table", "json", "jsonl", "csv", "tsv", "markdown", "prometheus"]
    assert choices.pop("graph") == ["mermaid", "dot"]  # a drawing, not data
    assert choices.pop("config view") == ["yaml", "json"]  # the config file, as YAML or JSON
    assert choices.pop("list") == ["table", "wide", "json", "jsonl", "csv", "tsv", "markdown"]
    assert choices and all(c == ["table", "json", "jsonl", "csv", "tsv", "markdown"] for c in choices.values())
    assert "prometheus" in runner.invoke(app, ["stats", "--help"]).stdout
    for name in choices:
        assert "prometheus" not in runner.invoke(app, [*name.split(), "--help"]).stdout, name
        refused = runner.invoke(app, [*name.split(), "-o", "prometheus"])
        assert refused.exit_code == 2 and refused.stderr.startswith("sagactl: error: ")
        assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr


def test_every_command_that_prints_takes_o_and_q_as_the_readme_says() -> None:
    choices = _output_choices()
    quiet = {name for name, command in _commands(None) for p in getattr(command, "params", []) if p.name == "quiet"}
    printing = {"validate", "run", "resume", "show", "list", "stats", "resolve", "abort", "rerun"}
    printing |= {"dlq list", "redrive"}
    assert printing | {"db init"} <= set(choices)
    assert quiet == printing - {"stats"}  # stats prints no saga IDs


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl", "csv", "tsv", "markdown"])
@pytest.mark.slow
def test_every_advertised_format_works(env: dict[str, str], fmt: str) -> None:
    """Each command over the saga log in each format it offers: exit 0, something on stdout."""
    base = ["run", str(SAMPLE), "--input", f"@{SAMPLE_INPUT}"]
    assert runner.invoke(app, [*base, "--saga-id", "f-1", "-q"]).exit_code == 0
    assert runner.invoke(app, [*base, "--saga-id", "f-2", "--detach", "-q"]).exit_code == 0
    for args in (
        ["show", "f-1"],
        ["list"],
        ["list", "--stuck", "--older-than", "1ms"],
        ["stats"],
        ["validate", str(SAMPLE)],
        ["db", "init"],
        ["resume", "f-2"],
        ["run", *base[1:], "--detach"],
    ):
        result = runner.invoke(app, [*args, "-o", fmt])
        assert result.exit_code == 0, (args, result.stderr)
        assert "Traceback" not in result.stderr
        assert result.stdout or (fmt == "table" and args[:2] == ["db", "init"]), args  # db init says so on stderr
    assert runner.invoke(app, ["stats", "-o", "prometheus"]).stdout.startswith("# HELP sagactl_sagas ")


@pytest.mark.parametrize("fmt", ["table", "csv", "tsv", "markdown"])
def test_run_detach_prints_only_the_saga_id(env: dict[str, str], fmt: str) -> None:
    result = runner.invoke(
        app, ["run", str(SAMPLE), "--input", f"@{SAMPLE_INPUT}", "--detach", "--saga-id", "d-1", "-o", fmt]
    )
    assert (result.exit_code, result.stdout) == (0, "d-1\n")
    assert result.stderr == "sagactl: saga d-1 recorded (started); a worker drives it, or 'sagactl resume d-1'\n"


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_run_detach_in_json_prints_the_saga(env: dict[str, str], fmt: str) -> None:
    result = runner.invoke(
        app, ["run", str(SAMPLE), "--input", f"@{SAMPLE_INPUT}", "--detach", "--saga-id", "d-2", "-o", fmt]
    )
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert (data["saga_id"], data["state"]) == ("d-2", "started")
    assert data == json.loads(runner.invoke(app, ["show", "d-2", "-o", "json"]).stdout)


def test_show_quiet_and_db_init_json(env: dict[str, str], tmp_path: Path) -> None:
    assert (
        runner.invoke(app, ["run", str(SAMPLE), "--input", f"@{SAMPLE_INPUT}", "--saga-id", "s-1", "-q"]).exit_code == 0
    )
    shown = runner.invoke(app, ["show", "s-1", "-q"])
    assert (shown.exit_code, shown.stdout, shown.stderr) == (0, "s-1\n", "")
    init = runner.invoke(app, ["db", "init", "-o", "json"])
    assert (init.exit_code, init.stderr) == (0, "")
    assert json.loads(init.stdout) == {"store": str(tmp_path / "log.db"), "schema_version": 10}


# -- validate ----------------------------------------------------------------------------------


def test_validate_ok_and_broken(env: dict[str, str]) -> None:
    ok = runner.invoke(app, ["validate", str(SAMPLE)])
    assert (ok.exit_code, ok.stderr) == (0, "")
    assert "OrderFulfillment" in ok.stdout
    broken = ROOT / "tests" / "corpus" / "broken" / "unknown_endpoint.yaml"
    bad = runner.invoke(app, ["validate", str(SAMPLE), str(broken)])
    assert bad.exit_code == 2
    assert bad.stderr == f"{broken}:7:15: step 'charge': unknown endpoint 'payments' (known: payment)\n"


def test_validate_json(env: dict[str, str]) -> None:
    broken = ROOT / "tests" / "corpus" / "broken" / "bad_duration.yaml"
    result = runner.invoke(app, ["validate", str(broken), "-o", "json"])
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["valid"] is False
    assert data["problems"][0]["line"] == 7
    assert data["problems"][0]["file"] == str(broken)


# -- run / show / resume -----------------------------------------------------------------------


def test_run_sample_completes_and_show_reads_it(env: dict[str, str]) -> None:
    result = runner.invoke(
        app, ["run", str(SAMPLE), "--input", f"@{SAMPLE_INPUT}", "-o", "json", "--saga-id", "o-1"]
    )
    assert result.exit_code == 0, result.stderr
    assert result.stderr == ""
    data = json.loads(result.stdout)
    assert data["state"] == "completed"
    assert [s["status"] for s in data["steps"]] == ["completed"] * 4
    assert data["steps"][2]["result"] == {"shipment_id": "shp-ord-1001", "payment_id": "pay-ord-1001"}
    assert set(data) >= {"saga_id", "saga_type", "state", "current_step", "data", "steps", "transitions"}
    assert set(data["steps"][0]) >= {
        "name",
        "status",
        "attempts",
        "result",
        "error",
        "started_at",
        "finished_at",
    }
    assert data["created_at"].endswith("Z")

    shown = runner.invoke(app, ["show", "o-1", "-o", "json"])
    assert shown.exit_code == 0
    assert json.loads(shown.stdout) == data

    plain = runner.invoke(app, ["show", "o-1"])
    assert plain.exit_code == 0
    assert "\x1b[" not in plain.stdout and "│" not in plain.stdout
    assert "reserve_inventory" in plain.stdout and "completed" in plain.stdout


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "tsv", "markdown"])
def test_show_formats(env: dict[str, str], fmt: str) -> None:
    assert (
        runner.invoke(
            app, ["run", str(SAMPLE), "--input", f"@{SAMPLE_INPUT}", "--saga-id", "o-2", "-q"]
        ).exit_code
        == 0
    )
    result = runner.invoke(app, ["show", "o-2", "-o", fmt])
    assert result.exit_code == 0
    if fmt == "jsonl":
        assert len(result.stdout.splitlines()) == 1
        assert json.loads(result.stdout)["saga_id"] == "o-2"
    elif fmt in ("csv", "tsv"):
        rows = list(csv.reader(io.StringIO(result.stdout), delimiter="," if fmt == "csv" else "\t"))
        assert rows[0] == [
            "saga_id",
            "name",
            "status",
            "attempts",
            "result",
            "error",
            "started_at",
            "finished_at",
            "outcome",
            "compensation_attempts",
            "compensated_at",
            "compensation_error",
            "waiting",
        ]
        assert [r[:3] for r in rows[1:]] == [
            ["o-2", "reserve_inventory", "completed"],
            ["o-2", "charge_payment", "completed"],
            ["o-2", "create_shipment", "completed"],
            ["o-2", "send_confirmation", "completed"],
        ]
        shown = json.loads(runner.invoke(app, ["show", "o-2", "-o", "json"]).stdout)
        assert rows[1:] == [[cell(v) for v in {"saga_id": "o-2", **step}.values()] for step in shown["steps"]]
    else:
        assert "| reserve_inventory" in result.stdout


def test_run_quiet_prints_only_the_id(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["run", str(SAMPLE), "--input", f"@{SAMPLE_INPUT}", "-q", "--saga-id", "q-1"])
    assert (result.exit_code, result.stdout, result.stderr) == (0, "q-1\n", "")


def test_run_failure_compensates_in_reverse_exit_1(env: dict[str, str]) -> None:
    completed = run_sample("-o", "json", FAIL_STEP="create_shipment")
    assert completed.returncode == 1
    data = json.loads(completed.stdout)
    assert data["state"] == "failed"
    assert [s["status"] for s in data["steps"]] == ["compensated", "compensated", "failed", "pending"]
    order = [t["step_name"] for t in data["transitions"] if t["new_state"] == "compensated"]
    assert order == ["charge_payment", "reserve_inventory"]
    assert completed.stderr.startswith(f"sagactl: saga {data['saga_id']} failed at create_shipment: ")
    assert "compensated charge_payment, reserve_inventory" in completed.stderr
    assert "Traceback" not in completed.stderr


@pytest.mark.slow
def test_failed_compensation_exit_3_then_resume(env: dict[str, str]) -> None:
    stuck = run_sample(
        "-o", "json", "--saga-id", "c-1", FAIL_STEP="create_shipment", FAIL_COMPENSATION="charge_payment"
    )
    assert stuck.returncode == 3
    data = json.loads(stuck.stdout)
    assert data["state"] == "compensating"
    assert [s["status"] for s in data["steps"]][:3] == ["completed", "compensating", "failed"]
    assert "fix the participant, then 'sagactl resume c-1'" in stuck.stderr

    resumed = runner.invoke(app, ["resume", "c-1", "-o", "json"])
    assert resumed.exit_code == 1, resumed.stderr
    [after] = json.loads(resumed.stdout)
    assert after["state"] == "failed"
    assert [s["status"] for s in after["steps"]][:3] == ["compensated", "compensated", "failed"]

    again = runner.invoke(app, ["resume", "c-1"])
    assert again.exit_code == 1
    assert "already failed" in again.stderr


def test_run_input_dash_reads_the_saga_input_from_stdin(env: dict[str, str]) -> None:
    piped = {**json.loads(SAMPLE_INPUT.read_text()), "note": "piped in: café ✓", "gift": None, "tags": [1, 2.5]}
    text = json.dumps(piped, indent=2, ensure_ascii=False) + "\n"  # several lines, as `jq .` prints it

    result = runner.invoke(app, ["run", str(SAMPLE), "--input", "-", "-o", "json", "--saga-id", "stdin-1"], input=text)

    assert (result.exit_code, result.stderr) == (0, ""), result.stderr
    data = json.loads(result.stdout)
    assert (data["saga_id"], data["state"]) == ("stdin-1", "completed")
    assert data["data"] == piped
    shown = runner.invoke(app, ["show", "stdin-1", "-o", "json"])
    assert json.loads(shown.stdout)["data"] == piped


def test_run_without_any_store_setting_writes_the_default_log_in_the_cwd(tmp_path: Path) -> None:
    """No --dsn, no SAGACTL_DSN, no config file: the log is ./.sagactl/saga_log.db."""
    cwd = tmp_path / "ops"
    cwd.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGACTL_", "FAIL_"))}
    env.update(XDG_CONFIG_HOME=str(tmp_path / "no-config"), SAMPLE_STATE_DIR=str(tmp_path / "state"), NO_COLOR="1")
    completed = subprocess.run(
        [sys.executable, "-m", "sagactl", "run", str(SAMPLE), "--input", f"@{SAMPLE_INPUT}", "--saga-id", "dflt-1"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr

    log = cwd / ".sagactl" / "saga_log.db"
    assert log.is_file()
    assert sorted(p.name for p in cwd.iterdir()) == [".sagactl"]
    with contextlib.closing(sqlite3.connect(log)) as db:
        assert db.execute("SELECT saga_id, state FROM saga_log").fetchall() == [("dflt-1", "completed")]
    shown = subprocess.run(
        [sys.executable, "-m", "sagactl", "show", "dflt-1", "-o", "json"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["state"] == "completed"


def test_detach_then_resume(env: dict[str, str]) -> None:
    started = runner.invoke(app, ["run", str(SAMPLE), "--input", f"@{SAMPLE_INPUT}", "--detach", "-q"])
    assert started.exit_code == 0
    saga_id = started.stdout.strip()
    show = runner.invoke(app, ["show", saga_id, "-o", "json"])
    assert show.exit_code == 0, show.stderr
    shown = json.loads(show.stdout)
    assert shown["state"] == "started"
    resumed = runner.invoke(app, ["resume", saga_id, "-o", "json"])
    assert resumed.exit_code == 0
    [done] = json.loads(resumed.stdout)  # resume prints an array, also of one
    assert done["state"] == "completed"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input", "{not json"], "input from --input is not valid JSON"),
        (["--input", "@/nonexistent.json"], "cannot read input file /nonexistent.json"),
        (["--input", '{"order_id": "x"}'], "step 'reserve_inventory': input has no 'items'"),
        (["--input", "[1, 2]"], "input must be a JSON object, got an array: step 'reserve_inventory' action reads"),
        (["--input", "5"], "input must be a JSON object, got a number: step 'reserve_inventory' action reads"),
        (["--input", "null"], "input must be a JSON object, got null: "),
        (["--input", '"o-1"'], "input must be a JSON object, got a string: "),
    ],
)
def test_bad_input_is_one_line_exit_2(env: dict[str, str], args: list[str], message: str) -> None:
    result = runner.invoke(app, ["run", str(SAMPLE), *args, "--saga-id", "bad-input"])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"sagactl: error: {message}")
    assert result.stderr.count("\n") == 1
    assert runner.invoke(app, ["show", "bad-input"]).exit_code == 2  # nothing was recorded


def test_a_default_body_needs_an_object_input_and_a_whole_input_does_not(env: dict[str, str], tmp_path: Path) -> None:
    """The default body spreads the input's fields: an array is refused. A definition that
    only passes ${input} whole takes any JSON value."""
    spread = tmp_path / "spread.yaml"
    spread.write_text(
        "saga: Spread\nendpoints:\n  e: {type: exec, command: ['true']}\n"
        "steps:\n  - {name: one, endpoint: e, action: {args: [go]}}\n"
    )
    fresh = tmp_path / "fresh.db"  # the fixture's log exists already (read-only commands need one)
    result = runner.invoke(app, ["run", str(spread), "--input", "[1, 2]", "--dsn", f"sqlite:///{fresh}"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert not fresh.exists()  # refused before the log opened
    assert result.stderr == (
        "sagactl: error: input must be a JSON object, got an array: step 'one' action sends the default body,"
        """ which holds the input's fields; pass --input '{"field": …}'\n"""
    )
    whole = tmp_path / "whole.yaml"
    whole.write_text(
        "saga: Whole\nendpoints:\n  e: {type: exec, command: ['true']}\n"
        "steps:\n  - {name: one, endpoint: e, action: {body: {all: '${input}', first: '${input.0}'}}}\n"
    )
    assert runner.invoke(app, ["run", str(whole), "--input", "[1, 2]", "-q"]).exit_code == 0


def test_duplicate_saga_id_exit_2(env: dict[str, str]) -> None:
    first = runner.invoke(app, ["run", str(SAMPLE), "--input", f"@{SAMPLE_INPUT}", "--saga-id", "dup", "-q"])
    assert first.exit_code == 0
    second = runner.invoke(app, ["run", str(SAMPLE), "--input", f"@{SAMPLE_INPUT}", "--saga-id", "dup", "-q"])
    assert second.exit_code == 2
    assert "saga dup already exists" in second.stderr


def test_show_unknown_exit_2(env: dict[str, str]) -> None:
    result = runner.invoke(app, ["show", "nope"])
    assert result.exit_code == 2
    assert result.stderr.startswith("sagactl: error: saga nope not found in ")


def test_definition_error_lists_problems_exit_2(env: dict[str, str]) -> None:
    broken = ROOT / "tests" / "corpus" / "broken" / "duplicate_step.yaml"
    result = runner.invoke(app, ["run", str(broken)])
    assert result.exit_code == 2
    assert result.stderr == f"sagactl: error: {broken}:7:11: duplicate step name 'charge' (first defined as step 1)\n"


def _unreachable_saga(tmp_path: Path) -> Path:
    path = tmp_path / "unreachable.yaml"
    path.write_text(
        """saga: Unreachable
endpoints:
  api:
    type: http
    url: "http://ops:${env.API_PASSWORD}@127.0.0.1:9"
    headers: {Authorization: "Bearer ${env.API_TOKEN}"}
defaults:
  retry: {max_attempts: 2, initial_backoff: 1ms, max_backoff: 2ms}
steps:
  - {name: first, endpoint: api, action: {path: /x}, compensation: {path: /undo}}
"""
    )
    return path


def test_unreachable_endpoint_exit_4_and_secrets_masked(
    env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_PASSWORD", "hunter2-pw")
    monkeypatch.setenv("API_TOKEN", "tok-abcdef")
    result = runner.invoke(app, ["run", str(_unreachable_saga(tmp_path)), "-o", "json", "--saga-id", "u-1"])
    assert result.exit_code == 4
    data = json.loads(result.stdout)
    assert data["state"] == "failed"
    assert data["steps"][0]["outcome"] == "not_delivered"
    assert data["steps"][0]["attempts"] == 2
    shown = runner.invoke(app, ["show", "u-1"])
    assert shown.exit_code == 0 and "cannot connect" in shown.stdout  # the error is shown, masked
    everything = result.stdout + result.stderr + shown.stdout + shown.stderr
    assert "hunter2-pw" not in everything and "tok-abcdef" not in everything
    assert "***" in data["steps"][0]["error"]
    assert "cannot connect" in result.stderr


def test_traceback_only_with_verbose(env: dict[str, str]) -> None:
    quiet = runner.invoke(app, ["show", "nope"])
    assert quiet.exit_code == 2
    assert "Traceback" not in quiet.stderr
    loud = runner.invoke(app, ["show", "nope", "-v"])
    assert "Traceback" in loud.stderr
    assert loud.exit_code == 2


def test_verbose_logs_each_transition(env: dict[str, str]) -> None:
    result = runner.invoke(
        app, ["run", str(SAMPLE), "--input", f"@{SAMPLE_INPUT}", "--saga-id", "v-1", "-q", "-v"]
    )
    assert result.exit_code == 0
    assert "v-1 reserve_inventory pending -> executing" in result.stderr
    assert "v-1 - pending -> completed" in result.stderr
    logged = runner.invoke(
        app,
        ["run", str(SAMPLE), "--input", f"@{SAMPLE_INPUT}", "--saga-id", "v-2", "-q", "--log-format", "json"],
    )
    assert logged.exit_code == 0
    lines = [json.loads(line) for line in logged.stderr.splitlines()]
    assert {
        "saga_id": "v-2",
        "step_name": "charge_payment",
        "old_state": "pending",
        "new_state": "executing",
    }.items() <= lines[4].items()


def test_readme_quick_start_command_runs(env: dict[str, str]) -> None:
    """The exact command from the README, from the repository root, as a subprocess."""
    completed = subprocess.run(
        ["sagactl", "run", "sample-configs/order.yaml", "--input", "@sample-configs/order-input.json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert "completed" in completed.stdout


def test_exit_codes_are_the_documented_numbers() -> None:
    """Tests elsewhere compare with ExitCode members; this pins the members to the numbers
    DESIGN section 7 and the docs' table (docs/errors.md) promise."""
    from sagactl.errors import ExitCode

    assert {code.name: int(code) for code in ExitCode} == {
        "OK": 0,
        "SAGA_FAILED": 1,
        "USAGE": 2,
        "ATTENTION": 3,
        "UNAVAILABLE": 4,
        "INTERRUPTED": 130,
    }
    section = (ROOT / "docs" / "errors.md").read_text().split("## Exit codes", 1)[1].split("\n\n")[1]  # the table
    assert [row.split("|")[1].strip() for row in section.splitlines()[2:]] == ["0", "1", "2", "3", "4", "130"]


def test_a_command_error_reaches_the_process_exit_code(tmp_path: Path) -> None:
    """Through the real entry point (``python -m sagactl``, not CliRunner): the funnel's exit
    code is the process's, with one line on stderr and nothing on stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGACTL_")}
    log = tmp_path / "log.db"
    open_store(f"sqlite:///{log}").close()
    completed = subprocess.run(
        [sys.executable, "-m", "sagactl", "show", "nope", "--dsn", f"sqlite:///{log}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr == (
        f"sagactl: error: saga nope not found in {log}; check the ID with 'sagactl list' and the store with --dsn\n"
    )


@pytest.mark.slow
def test_resume_several_keeps_going_past_one_that_cannot(env: dict[str, str]) -> None:
    stuck = run_sample("-q", "--saga-id", "m-1", FAIL_STEP="create_shipment", FAIL_COMPENSATION="charge_payment")
    assert stuck.returncode == 3
    result = runner.invoke(app, ["resume", "nope", "m-1", "-o", "json"])
    assert result.exit_code == 2
    [data] = json.loads(result.stdout)
    assert (data["saga_id"], data["state"]) == ("m-1", "failed")
    assert "sagactl: error: saga nope not found in " in result.stderr


@pytest.mark.slow
def test_failed_saga_keeps_why_it_failed_as_last_error(env: dict[str, str]) -> None:
    stuck = run_sample("-q", "--saga-id", "le-1", FAIL_STEP="create_shipment", FAIL_COMPENSATION="charge_payment")
    assert stuck.returncode == 3, stuck.stderr
    result = runner.invoke(app, ["resume", "le-1", "-o", "json"])
    assert result.exit_code == 1, result.stderr
    [resumed] = json.loads(result.stdout)
    assert resumed["state"] == "failed"
    assert resumed["last_error"].startswith("create_shipment: exec python3 participants/shipping.py create: exit 1")


def test_help_imports_no_heavy_module(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sagactl", "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert completed.returncode == 0 and "Usage: sagactl" in completed.stdout
    modules = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in completed.stderr.splitlines()}
    assert modules & {"psycopg", "boto3", "botocore", "httpx", "urllib3", "tabulate", "yaml", "jsonschema"} == set()


def test_a_definition_that_is_not_there_is_one_error_line(tmp_path: Path) -> None:
    """`run nope.yaml`: the problem as every error reads, `sagactl: error: …`, exit 2."""
    missing = tmp_path / "nope.yaml"
    result = runner.invoke(app, ["run", str(missing), "--dsn", f"sqlite:///{tmp_path}/log.db"])
    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == f"sagactl: error: {missing}:1:1: file not found\n"


def test_a_context_without_a_config_file_reads_as_english(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SAGACTL_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    result = runner.invoke(app, ["list", "--context", "prod"])
    assert result.exit_code == 2
    assert result.stderr == (
        "sagactl: error: context 'prod' not found: there is no config file to define it (looked for ./sagactl.yaml"
        " and ~/.config/sagactl/config.yaml); pass --config FILE, or unset --context / SAGACTL_CONTEXT\n"
    )
    assert "in no config file" not in result.stderr


def test_db_init_on_a_terminal_says_which_migration_runs(tmp_path: Path) -> None:
    """A migration can take minutes on a big log (an index, a recount): a terminal is told which."""
    from sagactl.store.migrations import migrations
    from tests.support.pty import run_on_pty, strip_escapes

    latest = migrations("sqlite")[-1]
    code, tty, _, _ = run_on_pty(
        [sys.executable, "-m", "sagactl", "db", "init", "--dsn", f"sqlite:///{tmp_path}/log.db"],
        tty={"stderr"},
        cwd=tmp_path,
    )
    assert code == 0
    shown = strip_escapes(tty)
    assert f"applying schema version {latest.version} ({latest.name})" in shown
    assert f"is at schema version {latest.version}" in shown
