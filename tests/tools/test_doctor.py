"""`doctor` against real dependencies: a reachable and an unreachable database (SQLite,
PostgreSQL, a read-only role), SQS on moto and on a port where nothing listens, http and exec
endpoints, sagas in flight on another version of a definition; secrets masked; nothing left
behind."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.ops.doctor import DoctorRequest, doctor
from sagactl.store import open_store
from sagactl.tools.doctor import definition_changes
from tests.support.participants import Participants
from tests.support.sqs import Sqs

ROOT = Path(__file__).parents[2]
SAMPLE = ROOT / "sample-configs" / "order.yaml"
INPUT = ROOT / "sample-configs" / "order-input.json"
SAMPLE_SQS = ROOT / "sample-configs" / "order-sqs.yaml"
runner = CliRunner()


def checked(request: DoctorRequest, env: dict[str, str] | None = None) -> tuple[dict[str, tuple[str, str]], int]:
    """Each check's (status, detail) by name, and the exit code."""
    report = doctor(request, env={**os.environ, **(env or {})})
    return {c.name: (c.status.value, c.detail) for c in report.checks.items}, int(report.checks.exit_code)


def statuses(request: DoctorRequest, env: dict[str, str] | None = None) -> dict[str, tuple[str, str]]:
    return checked(request, env)[0]


def exit_code(request: DoctorRequest, env: dict[str, str] | None = None) -> int:
    return checked(request, env)[1]


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No sagactl or AWS settings from the environment; a working directory without sagactl.yaml."""
    for name in ("SAGACTL_DSN", "SAGACTL_CONFIG", "SAGACTL_CONTEXT", "AWS_PROFILE", "AWS_REGION",
                 "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def sqlite_log(clean: Path) -> str:
    dsn = f"sqlite:///{clean / 'logs' / 'saga_log.db'}"
    open_store(dsn).close()
    return dsn


@pytest.fixture
def queues(sqs: Sqs) -> dict[str, str]:
    """The sample SQS saga's queues on moto, named by the variables order-sqs.yaml reads."""
    names = {
        "INVENTORY_QUEUE": sqs.queue("inventory").name,
        "PAYMENT_QUEUE": sqs.queue("payment").name,
        "SHIPPING_QUEUE": sqs.queue("shipping").name,
        "ORDER_REPLY_QUEUE": sqs.queue("replies").name,
    }
    return names


# -- all well --------------------------------------------------------------------------------


def test_all_well_on_sqlite_and_moto(sqlite_log: str, aws_env: dict[str, str], queues: dict[str, str]) -> None:
    request = DoctorRequest(files=(str(SAMPLE), str(SAMPLE_SQS)), dsn=sqlite_log)
    found, code = checked(request, queues)
    assert found["config"][0] == "ok" and "no context" in found["config"][1]
    assert found["store"] == ("ok", f"{sqlite_log} (from --dsn / SAGACTL_DSN) is reachable")
    assert found["schema"] == ("ok", "version 10")
    assert found["writable"][0] == "ok"
    assert found["aws region"] == ("ok", "us-east-1")
    assert found["credentials"] == ("ok", "found by botocore's 'env' provider")  # the method, never the key
    assert found["sqs"][0] == "ok"
    assert found["endpoint OrderFulfillmentSqs.payment"] == (
        "ok",
        f"sqs: {queues['PAYMENT_QUEUE']}, replies {queues['ORDER_REPLY_QUEUE']}",
    )
    assert found["endpoint OrderFulfillment.shipping"][0] == "ok"
    assert found["in flight OrderFulfillmentSqs"] == ("ok", "none")
    assert code == 0
    assert not any(aws_env["AWS_SECRET_ACCESS_KEY"] in detail for _, detail in found.values())


def test_nothing_is_left_behind_in_a_sqlite_log(sqlite_log: str) -> None:
    directory = Path(sqlite_log.removeprefix("sqlite:///")).parent
    before = {p.name: p.read_bytes() for p in directory.iterdir()}
    assert exit_code(DoctorRequest(dsn=sqlite_log)) == 0
    assert {p.name: p.read_bytes() for p in directory.iterdir()} == before


def test_a_missing_default_log_is_a_warning_the_first_run_fixes(clean: Path) -> None:
    found, code = checked(DoctorRequest())
    assert found["store"][0] == "warn" and "does not exist yet" in found["store"][1]
    assert found["writable"][0] == "ok"
    assert code == 0
    assert not (clean / ".sagactl").exists()


# -- databases ---------------------------------------------------------------------------------


def test_an_unreachable_database_is_exit_4_its_password_masked(clean: Path, closed_port: int) -> None:
    dsn = f"postgresql://ops:hunter2secret@127.0.0.1:{closed_port}/orders?connect_timeout=2"
    report = doctor(DoctorRequest(dsn=dsn), env=dict(os.environ))
    found = {c.name: (c.status.value, c.detail) for c in report.checks.items}
    assert found["store"][0] == "fail" and "hunter2secret" not in found["store"][1]
    assert "postgresql://ops:***@127.0.0.1" in found["store"][1]
    assert int(report.checks.exit_code) == 4
    result = runner.invoke(app, ["doctor", "--dsn", dsn, "-o", "json"])
    assert result.exit_code == 4 and "hunter2secret" not in result.stdout + result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is False and data["exit_code"] == 4


@pytest.fixture
def pg_log(pg_admin_dsn: str) -> Iterator[str]:
    from tests.support.postgres import fresh_database

    with fresh_database(pg_admin_dsn, "sagactl_doctor") as dsn:
        open_store(dsn).close()
        yield dsn


def test_a_reachable_postgres_log_is_writable_and_stays_untouched(clean: Path, pg_log: str) -> None:
    with psycopg.connect(pg_log, autocommit=True) as conn:
        conn.execute("SELECT nextval('saga_transitions_id_seq')")  # a sequence that has been used
        before = conn.execute("SELECT last_value FROM saga_transitions_id_seq").fetchone()
    found = statuses(DoctorRequest(dsn=pg_log))
    assert [found[n][0] for n in ("store", "schema", "writable")] == ["ok", "ok", "ok"]
    with psycopg.connect(pg_log, autocommit=True) as conn:
        assert conn.execute("SELECT last_value FROM saga_transitions_id_seq").fetchone() == before
        assert conn.execute("SELECT count(*) FROM saga_log").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM saga_transitions").fetchone() == (0,)


def test_a_role_that_may_only_read_is_not_writable(clean: Path, pg_log: str) -> None:
    role = f"sagactl_reader_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_log, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        for table in ("saga_log", "saga_transitions", "saga_counts", "sagactl_schema_migrations"):
            conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(sql.Identifier(table), sql.Identifier(role)))
    try:
        info = psycopg.conninfo.conninfo_to_dict(pg_log)
        reader = f"postgresql://{role}@{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}/{info['dbname']}"
        found, code = checked(DoctorRequest(dsn=reader))
        assert found["store"][0] == "ok"
        assert found["writable"][0] == "fail" and "permission denied" in found["writable"][1]
        assert code == 4
    finally:
        with psycopg.connect(pg_log, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


# -- SQS and endpoints ---------------------------------------------------------------------------


def test_unreachable_sqs_is_exit_4(sqlite_log: str, aws_env: dict[str, str], closed_port: int) -> None:
    request = DoctorRequest(files=(str(SAMPLE_SQS),), dsn=sqlite_log, endpoint_url=f"http://127.0.0.1:{closed_port}")
    found, code = checked(request)
    assert found["sqs"][0] == "fail" and f"127.0.0.1:{closed_port}" in found["sqs"][1]
    assert found["endpoint OrderFulfillmentSqs.payment"][0] == "skip"
    assert code == 4


def test_a_missing_queue_and_a_closed_http_port_fail(
    sqlite_log: str, aws_env: dict[str, str], queues: dict[str, str], closed_port: int, participants: Participants
) -> None:
    definition = Path(sqlite_log.removeprefix("sqlite:///")).parent / "mixed.yaml"
    definition.write_text(
        f"""
saga: Mixed
endpoints:
  up: {{type: http, url: "{participants.url}"}}
  down: {{type: http, url: "http://127.0.0.1:{closed_port}/x"}}
  gone: {{type: sqs, queue: no-such-queue-{uuid.uuid4().hex[:6]}, reply_queue: {queues["ORDER_REPLY_QUEUE"]}}}
  nothing: {{type: exec, command: [no-such-program-{uuid.uuid4().hex[:6]}]}}
  unset: {{type: http, url: "${{env.SAGACTL_DOCTOR_UNSET_URL}}"}}
steps:
  - {{name: a, endpoint: up, action: {{path: /a}}}}
  - {{name: b, endpoint: down, action: {{path: /b}}}}
  - {{name: c, endpoint: gone, action: {{command: C}}}}
  - {{name: d, endpoint: nothing, action: {{args: [d]}}}}
  - {{name: e, endpoint: unset, action: {{path: /e}}}}
"""
    )
    found, code = checked(DoctorRequest(files=(str(definition),), dsn=sqlite_log))
    assert found["endpoint Mixed.up"][0] == "ok"
    assert found["endpoint Mixed.down"][0] == "fail" and "Connection refused" in found["endpoint Mixed.down"][1]
    assert found["endpoint Mixed.gone"][0] == "fail" and "does not exist" in found["endpoint Mixed.gone"][1]
    assert found["endpoint Mixed.nothing"][0] == "fail" and "not found on PATH" in found["endpoint Mixed.nothing"][1]
    assert found["endpoint Mixed.unset"][0] == "fail" and "SAGACTL_DOCTOR_UNSET_URL" in found["endpoint Mixed.unset"][1]
    assert code == 2  # an unset variable: the setup, not a dependency


# -- definitions ----------------------------------------------------------------------------------


def test_an_invalid_definition_is_exit_2_with_its_problems(sqlite_log: str, clean: Path) -> None:
    bad = clean / "bad.yaml"
    bad.write_text("saga: X\nsteps: []\n")
    result = runner.invoke(app, ["doctor", str(bad), "--dsn", sqlite_log])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"{bad}:2:")
    assert "invalid: 1 problem" in result.stdout


def test_sagas_in_flight_on_another_version_of_the_definition(sqlite_log: str, clean: Path) -> None:
    shutil.copytree(SAMPLE.parent / "participants", clean / "participants")
    original = clean / "order.yaml"
    original.write_text(SAMPLE.read_text())
    for n in range(3):
        started = runner.invoke(
            app, ["run", str(original), "--detach", "--dsn", sqlite_log, "--saga-id", f"d-{n}", "-i", f"@{INPUT}"]
        )
        assert started.exit_code == 0, started.stderr
    assert statuses(DoctorRequest(files=(str(original),), dsn=sqlite_log))["in flight OrderFulfillment"] == (
        "ok",
        "3 sagas in flight, all on this definition",
    )
    deployed = clean / "order-v2.yaml"
    deployed.write_text(SAMPLE.read_text().replace("    timeout: 20s\n", "    timeout: 45s\n"))
    found, code = checked(DoctorRequest(files=(str(deployed),), dsn=sqlite_log))
    status, detail = found["in flight OrderFulfillment"]
    assert status == "warn"
    assert detail.startswith("3 of 3 sagas in flight (e.g. d-0) run a stored definition that differs")
    assert "step charge_payment: timeout changed" in detail
    assert code == 0  # a warning: they finish on their stored definition


def test_definition_changes_say_what_changed() -> None:
    old: dict[str, Any] = {"saga": "S", "steps": [{"name": "a", "timeout": "1s"}, {"name": "b"}], "defaults": {}}
    new: dict[str, Any] = {"saga": "S", "steps": [{"name": "b"}, {"name": "a", "timeout": "2s"}, {"name": "c"}]}
    assert definition_changes(old, old) == []
    assert definition_changes(old, new) == [
        "steps added: c",
        "steps reordered",
        "step a: timeout changed",
        "defaults changed",
    ]


# -- config and contexts ----------------------------------------------------------------------------


def test_an_unknown_context_is_exit_2(sqlite_log: str, clean: Path) -> None:
    (clean / "sagactl.yaml").write_text(f"store: {{dsn: '{sqlite_log}'}}\ncontexts: {{prod: {{}}}}\n")
    result = runner.invoke(app, ["doctor", "--context", "nope"])
    assert result.exit_code == 2
    assert "config" in result.stdout and "context 'nope' not found" in result.stdout
    ok = runner.invoke(app, ["doctor", "--context", "prod"])
    assert ok.exit_code == 0, ok.stdout
    assert "sagactl.yaml; context prod" in ok.stdout
