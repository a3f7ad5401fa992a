"""Secrets never reach the screen: the error line, the live run view on a terminal and the
transition log (text and JSON), through ``python -m sagactl`` as a runbook runs it.

Each test puts a secret where that output would carry it, and checks that the value appears
nowhere in what the process wrote, while the masked text (***) shows it did get there.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.support.participants import Participants, answer
from tests.support.pty import run_on_pty, strip_escapes

ROOT = Path(__file__).parent.parent
SECRET = "s3cr3t-value"

# A one-step saga whose participant refuses with the bank's API token in its error text.
PAYOUT_YAML = """\
saga: Payout
endpoints:
  bank: {type: exec, command: [python3, bank.py]}
defaults:
  retry: {max_attempts: 1}
steps:
  - name: transfer
    endpoint: bank
    action: {args: [transfer]}
"""
BANK_PY = """\
import os, sys
sys.stdin.read()
print(f"bank: token {os.environ['BANK_API_TOKEN']} expired", file=sys.stderr)
sys.exit(1)
"""
MASKED_ERROR = "exec python3 bank.py transfer: exit 1: bank: token *** expired"


def sagactl(*args: str) -> list[str]:
    return [sys.executable, "-m", "sagactl", *args]


@pytest.fixture
def payout(tmp_path: Path) -> Path:
    (tmp_path / "bank.py").write_text(BANK_PY)
    path = tmp_path / "payout.yaml"
    path.write_text(PAYOUT_YAML)
    return path


@pytest.fixture
def child_env() -> dict[str, str]:
    cleared = ("SAGACTL_DSN", "SAGACTL_CONFIG", "SAGACTL_CONTEXT")
    env = {k: v for k, v in os.environ.items() if k not in cleared}
    env["BANK_API_TOKEN"] = SECRET
    return env


def run(argv: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=ROOT, env=dict(env), capture_output=True, text=True, timeout=60)


# -- the error funnel --------------------------------------------------------------------------


@pytest.mark.slow
def test_error_line_masks_a_password_in_the_sqs_endpoint(
    aws_env: Mapping[str, str], closed_port: int, child_env: dict[str, str]
) -> None:
    """Nothing below the funnel masks this one: the endpoint URL comes back from botocore."""
    endpoint = f"http://ops:{SECRET}@127.0.0.1:{closed_port}"
    env = {**child_env, **aws_env, "AWS_MAX_ATTEMPTS": "1"}
    done = run(sagactl("dlq", "list", "payment-dlq", "--endpoint-url", endpoint), env)
    assert done.returncode == 4, done.stderr
    assert done.stderr.startswith(f"sagactl: error: cannot reach SQS at http://ops:***@127.0.0.1:{closed_port} ")
    assert len(done.stderr.splitlines()) == 1
    assert SECRET not in done.stdout + done.stderr


@pytest.mark.slow
def test_verbose_traceback_masks_the_endpoint_password(
    aws_env: Mapping[str, str], closed_port: int, child_env: dict[str, str]
) -> None:
    """-v prints the traceback with its causes (botocore's, naming the endpoint URL): masked too."""
    endpoint = f"http://ops:{SECRET}@127.0.0.1:{closed_port}"
    env = {**child_env, **aws_env, "AWS_MAX_ATTEMPTS": "1"}
    done = run(sagactl("dlq", "list", "payment-dlq", "--endpoint-url", endpoint, "-v"), env)
    assert done.returncode == 4, done.stderr
    assert "Traceback (most recent call last)" in done.stderr
    assert "EndpointConnectionError" in done.stderr and f"http://ops:***@127.0.0.1:{closed_port}" in done.stderr
    assert done.stderr.splitlines()[-1].startswith("sagactl: error: cannot reach SQS at http://ops:***@")
    assert SECRET not in done.stdout + done.stderr


def test_error_line_masks_the_password_of_a_postgres_dsn(child_env: dict[str, str]) -> None:
    dsn = f"postgresql://sagactl_no_such_role:{SECRET}@127.0.0.1:5432/postgres"
    done = run(sagactl("list", "--dsn", dsn), child_env)
    assert done.returncode == 4, done.stderr
    assert done.stderr.startswith("sagactl: error: cannot connect to PostgreSQL postgresql://sagactl_no_such_role:***@")
    assert SECRET not in done.stdout + done.stderr


# -- the live run view -------------------------------------------------------------------------


@pytest.mark.slow
def test_live_view_masks_a_participant_error(payout: Path, tmp_path: Path, child_env: dict[str, str]) -> None:
    code, tty, stdout, _ = run_on_pty(
        sagactl("run", str(payout), "--dsn", f"sqlite:///{tmp_path / 'log.db'}", "-o", "json"),
        tty={"stderr"},
        env=child_env,
        cwd=ROOT,
    )
    assert code == 1, tty
    drawn = [line for line in strip_escapes(tty).splitlines() if " │ " in line]
    assert any("✘" in line and "transfer" in line and MASKED_ERROR in line for line in drawn), tty
    assert json.loads(stdout)["steps"][0]["error"] == MASKED_ERROR
    assert SECRET not in tty + stdout


# -- the transition log ------------------------------------------------------------------------


def test_json_log_masks_a_participant_error(payout: Path, tmp_path: Path, child_env: dict[str, str]) -> None:
    done = run(
        sagactl("run", str(payout), "--dsn", f"sqlite:///{tmp_path / 'log.db'}", "-o", "json", "--log-format", "json"),
        child_env,
    )
    assert done.returncode == 1, done.stderr
    *log, summary = done.stderr.splitlines()
    entries = [json.loads(line) for line in log]
    failed = next(e for e in entries if e["step_name"] == "transfer" and e["new_state"] == "failed")
    assert failed["detail"]["error"] == MASKED_ERROR
    assert summary.startswith("sagactl: saga ") and "token *** expired" in summary
    assert SECRET not in done.stdout + done.stderr


def test_text_log_masks_a_participant_error(payout: Path, tmp_path: Path, child_env: dict[str, str]) -> None:
    done = run(sagactl("run", str(payout), "--dsn", f"sqlite:///{tmp_path / 'log.db'}", "-q", "-v"), child_env)
    assert done.returncode == 1, done.stderr
    assert "transfer executing -> failed" in done.stderr
    assert SECRET not in done.stdout + done.stderr


def test_participant_error_is_masked_before_it_is_stored(
    payout: Path, tmp_path: Path, child_env: dict[str, str]
) -> None:
    log = tmp_path / "log.db"
    done = run(sagactl("run", str(payout), "--dsn", f"sqlite:///{log}", "-q"), child_env)
    assert done.returncode == 1, done.stderr
    with sqlite3.connect(log) as conn:
        stored = [row[0] for row in conn.execute("SELECT steps FROM saga_log")]
        stored += [row[0] for row in conn.execute("SELECT detail FROM saga_transitions")]
    assert any("token *** expired" in text for text in stored)
    assert not any(SECRET in text for text in stored)


# -- what the definition resolved is never stored ----------------------------------------------

# Names that do not say "secret": only the definition's use of them (a header, a URL's userinfo,
# an exec argument) makes their values secrets.
RESOLVED = {"BANK_CREDENTIAL": "cred-7Hq2-zz", "SVC_PASS_PHRASE": "phrase-9Kd1", "TRANSFER_PIN": "pin-4471"}
RESOLVED_YAML = """\
saga: Resolved
endpoints:
  api:
    type: http
    url: "http://svc:${{env.SVC_PASS_PHRASE}}@127.0.0.1:{port}"
    headers: {{X-Bank-Credential: "${{env.BANK_CREDENTIAL}}"}}
  bank: {{type: exec, command: [python3, bank.py]}}
defaults:
  retry: {{max_attempts: 1}}
  compensation_retry: {{max_attempts: 1}}
steps:
  - name: reserve
    endpoint: api
    action: {{path: /reserve}}
    compensation: {{path: /release}}
  - name: transfer
    endpoint: bank
    action: {{args: [transfer, "${{env.TRANSFER_PIN}}"]}}
"""
ECHOING_BANK = """\
import sys
sys.stdin.read()
print(f"bank: pin {sys.argv[2]} rejected", file=sys.stderr)
sys.exit(1)
"""


def _stored_text(dsn: str) -> str:
    """Every text column of saga_log and saga_transitions, as the database holds them."""
    if dsn.startswith("sqlite:///"):
        with sqlite3.connect(dsn.removeprefix("sqlite:///")) as conn:
            rows = conn.execute("SELECT data, steps, last_error FROM saga_log").fetchall()
            rows += conn.execute("SELECT detail FROM saga_transitions").fetchall()
    else:
        import psycopg

        with psycopg.connect(dsn) as conn:
            rows = conn.execute("SELECT data::text, steps::text, last_error FROM saga_log").fetchall()
            rows += conn.execute("SELECT detail::text FROM saga_transitions").fetchall()
    return "\n".join(str(value) for row in rows for value in row)


@pytest.mark.slow
def test_values_a_definition_resolved_are_masked_before_they_are_stored(
    tmp_path: Path, child_env: dict[str, str], participants: Participants, store_dsn: str
) -> None:
    """A header from ${env.…}, a URL's userinfo and an exec argument come back in participant
    errors; the saga log holds ***, and `show` from a shell without those variables prints
    no secret (on both stores)."""
    (tmp_path / "bank.py").write_text(ECHOING_BANK)
    path = tmp_path / "resolved.yaml"
    path.write_text(RESOLVED_YAML.format(port=participants.port))
    echoed = f"credential {RESOLVED['BANK_CREDENTIAL']} and phrase {RESOLVED['SVC_PASS_PHRASE']} refused"
    participants.script("reserve", "compensation", answer(409, {"error": echoed}))
    env = {**child_env, **RESOLVED}
    done = run(sagactl("run", str(path), "--dsn", store_dsn, "-o", "json", "--saga-id", "r-1"), env)
    assert done.returncode == 3, done.stderr  # transfer refused, reserve's compensation refused
    sent = participants.calls_for("reserve")[0]
    assert sent.headers["X-Bank-Credential"] == RESOLVED["BANK_CREDENTIAL"]  # it was really used
    stored = _stored_text(store_dsn)
    assert "bank: pin *** rejected" in stored and "credential *** and phrase *** refused" in stored
    shell_without = {k: v for k, v in child_env.items() if k not in RESOLVED}
    shown = run(sagactl("show", "r-1", "--dsn", store_dsn, "-o", "json"), shell_without)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["last_error"] == "reserve compensation: POST http://svc:***@127.0.0.1:" + (
        f"{participants.port}/release: HTTP 409: " + '{"error": "credential *** and phrase *** refused"}'
    )
    for secret in RESOLVED.values():
        assert secret not in stored
        assert secret not in done.stdout + done.stderr + shown.stdout + shown.stderr
