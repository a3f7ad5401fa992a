"""SQLite specifics: an older schema is read as it is and upgraded by writers; a new log is
private (0700 directory, 0600 files); read-only commands open the file read-only and refuse
what is not a saga log (exit 4); a read-only copy can be inspected; a read-only or full disk
under a writing command is one line, exit 4, and the saga resumes later."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.models import SagaState
from sagactl.store import open_store
from sagactl.store.base import SagaQuery
from sagactl.store.sqlite import SqliteStore
from tests.store.test_contract import make_saga
from tests.support.processes import sagactl
from tests.support.sagas import add, saga

runner = CliRunner()

# The schema version db init reaches: the last migration, schema/*/006_reruns.sql (after 005). A new
# migration bumps it here on purpose.
SCHEMA_VERSION = 10


def test_an_older_schema_is_read_as_is_and_upgraded_by_writers(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    SqliteStore(path).close()
    writer = SqliteStore(path)
    writer.create(make_saga("old"), [])
    writer.close()
    with sqlite3.connect(path) as conn:  # back to v1: what versions 2 to 8 added is gone
        for index in ("saga_log_created", "saga_log_wake", "saga_log_lease"):
            conn.execute(f"DROP INDEX {index}")
        for column in ("wake_at", "rerun_of", "rerun_as"):
            conn.execute(f"ALTER TABLE saga_log DROP COLUMN {column}")
        conn.execute("PRAGMA user_version = 1")
    reader = SqliteStore(path, create=False)
    try:
        assert reader.schema_version() == 1
        assert [s.saga_id for s in reader.list_sagas(SagaQuery(limit=5))] == ["old"]
        old = reader.get("old")
        assert old is not None and old.wake_at is None and old.rerun_of is None and old.rerun_as is None
    finally:
        reader.close()
    writer = SqliteStore(path)
    try:
        assert writer.schema_version() == SCHEMA_VERSION
    finally:
        writer.close()
    with sqlite3.connect(path) as conn:
        found = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND name LIKE 'saga_log_%'")
        names = {row[0] for row in found}
        columns = {row[1] for row in conn.execute("PRAGMA table_info(saga_log)")}
    assert {"saga_log_created", "saga_log_wake", "saga_log_lease"} <= names
    assert {"wake_at", "rerun_of", "rerun_as"} <= columns


def test_a_new_log_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """The log holds inputs, results and errors: its directory is created 0700, the file, its
    -wal and its -shm 0600, even under umask 0; directories that exist are left alone."""
    path = tmp_path / "state" / ".sagactl" / "saga_log.db"
    old = os.umask(0)
    try:
        store = SqliteStore(path)
        try:
            store.init_schema()  # a write: the -wal and -shm files exist while it is open
            modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.parent.iterdir()}
        finally:
            store.close()
    finally:
        os.umask(old)
    assert modes == {"saga_log.db": 0o600, "saga_log.db-wal": 0o600, "saga_log.db-shm": 0o600}
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "state").stat().st_mode) == 0o700


UNDER_UMASK_0 = "import os, sys; os.umask(0); from sagactl.cli import main; sys.argv[0] = 'sagactl'; main()"


@pytest.mark.slow
def test_run_creates_the_default_log_private(tmp_path: Path) -> None:
    """End to end: `sagactl run` in a fresh directory under umask 0 leaves ./.sagactl 0700 and
    ./.sagactl/saga_log.db 0600."""
    (tmp_path / "saga.yaml").write_text(
        "saga: Tiny\nendpoints:\n  e: {type: exec, command: ['true']}\n"
        "steps:\n  - {name: one, endpoint: e, action: {}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGACTL_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])  # this checkout's sagactl
    done = subprocess.run(
        [sys.executable, "-c", UNDER_UMASK_0, "run", "saga.yaml", "-q"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((tmp_path / ".sagactl").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / ".sagactl" / "saga_log.db").stat().st_mode) == 0o600


# -- read-only commands never create or alter a file (issue 8 item 2) --------------------------

READ_COMMANDS = [["list", "--stuck", "--exit-code"], ["show", "s-1"], ["stats"]]
NOT_A_LOG = (
    "check --dsn / SAGACTL_DSN / the config file, or create the log with 'sagactl db init'"
    " (or any command that writes)"
)
ANOTHER_FILE = "check --dsn / SAGACTL_DSN / the config file: this file is not a saga log"

SAGA_YAML = """
saga: Small
endpoints:
  svc: {type: exec, command: [python3, "@PARTICIPANT@"]}
defaults:
  timeout: 20s
  retry: {max_attempts: 1}
  compensation_retry: {max_attempts: 1}
steps:
  - {name: first, endpoint: svc, action: {args: [a]}, compensation: {args: [c]}}
  - {name: big, endpoint: svc, action: {args: [a]}, compensation: {args: [c]}}
"""
# Answers {"ok": STEP}; the action of step 'big' answers with BIG characters of text.
PARTICIPANT = """
import json, os, sys
sys.stdin.read()
size = int(os.environ.get("BIG", "10"))
big = os.environ["SAGA_STEP"] == "big" and os.environ["SAGA_PHASE"] == "action"
print(json.dumps({"blob": "x" * size} if big else {"ok": os.environ["SAGA_STEP"]}))
"""


@pytest.fixture
def saga_file(tmp_path: Path) -> Path:
    participant = tmp_path / "participant.py"
    participant.write_text(PARTICIPANT)
    path = tmp_path / "small.yaml"
    path.write_text(SAGA_YAML.replace("@PARTICIPANT@", str(participant)))
    return path


def files_in(directory: Path) -> dict[str, str]:
    """Name -> sha256 of every file under ``directory``."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_a_typo_in_the_log_path_is_exit_4_never_nothing_stuck(tmp_path: Path) -> None:
    done = sagactl("list", "--stuck", "--exit-code", "--dsn", "sqlite:///typo/x.db", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (4, "")
    assert done.stderr == f"sagactl: error: saga log typo/x.db does not exist; {NOT_A_LOG}\n"
    assert list(tmp_path.iterdir()) == []  # no directory, no file


# redrive --only-open reads the saga log before it touches SQS (nothing listens on port 1)
ONLY_OPEN = ["redrive", "--dlq", "q", "--only-open", "--endpoint-url", "http://127.0.0.1:1", "--region", "us-east-1"]


@pytest.mark.parametrize("command", [*READ_COMMANDS, ONLY_OPEN], ids=["list", "show", "stats", "redrive-only-open"])
def test_read_commands_on_a_missing_log_exit_4_and_create_nothing(tmp_path: Path, command: list[str]) -> None:
    missing = tmp_path / "nowhere" / "log.db"
    result = runner.invoke(app, [*command, "--dsn", f"sqlite:///{missing}"])
    assert (result.exit_code, result.stdout) == (4, "")
    assert result.stderr == f"sagactl: error: saga log {missing} does not exist; {NOT_A_LOG}\n"
    assert list(tmp_path.iterdir()) == []


def test_the_default_log_missing_in_this_directory_is_exit_4(tmp_path: Path) -> None:
    done = sagactl("list", "-o", "json", cwd=tmp_path, env={"XDG_CONFIG_HOME": str(tmp_path / "none")})
    assert (done.returncode, done.stdout) == (4, "")
    assert done.stderr == f"sagactl: error: saga log .sagactl/saga_log.db does not exist; {NOT_A_LOG}\n"
    assert list(tmp_path.iterdir()) == []


def _sqlite_app_db(path: Path) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        conn.execute("INSERT INTO users (name) VALUES ('ann')")


@pytest.mark.parametrize(
    ("make", "message", "hint"),
    [
        (lambda p: p.write_text("not a database\n" * 200), "is not a SQLite database", ANOTHER_FILE),
        (lambda p: p.write_bytes(b""), "has no saga_log schema", NOT_A_LOG),
        (_sqlite_app_db, "has no saga_log schema (it holds users)", ANOTHER_FILE),
        (lambda p: p.mkdir(), "is a directory, not a file", NOT_A_LOG),
    ],
    ids=["text-file", "empty-file", "another-apps-sqlite", "directory"],
)
@pytest.mark.parametrize("command", READ_COMMANDS, ids=["list", "show", "stats"])
@pytest.mark.slow
def test_read_commands_refuse_a_file_that_is_not_a_saga_log_and_leave_it_alone(
    tmp_path: Path, command: list[str], make: Any, message: str, hint: str
) -> None:
    path = tmp_path / "x.db"
    make(path)
    before = files_in(tmp_path)
    result = runner.invoke(app, [*command, "--dsn", f"sqlite:///{path}"])
    assert (result.exit_code, result.stdout) == (4, "")
    assert result.stderr == f"sagactl: error: saga log {path} {message}; {hint}\n"
    assert files_in(tmp_path) == before  # no schema, no WAL switch, no journal left behind


def test_read_commands_change_nothing_in_a_saga_log(tmp_path: Path, saga_file: Path) -> None:
    log = tmp_path / "log" / "saga_log.db"
    dsn = f"sqlite:///{log}"
    assert runner.invoke(app, ["run", str(saga_file), "--saga-id", "s-1", "-q", "--dsn", dsn]).exit_code == 0
    with sqlite3.connect(log) as conn:
        conn.execute("PRAGMA journal_mode=DELETE")  # a rollback-journal log stays one
    before = files_in(log.parent)
    for command in READ_COMMANDS:
        result = runner.invoke(app, [*command, "--dsn", dsn])
        assert result.exit_code == 0, result.stderr
    assert files_in(log.parent) == before
    with sqlite3.connect(log) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)


def test_a_newer_or_damaged_log_is_exit_4_for_readers_and_writers(tmp_path: Path, saga_file: Path) -> None:
    newer, damaged = tmp_path / "newer.db", tmp_path / "damaged.db"
    for path in (newer, damaged):
        store = open_store(f"sqlite:///{path}")
        add(store, *(saga(f"s-{i}") for i in range(30)))
        store.close()
    with sqlite3.connect(newer) as conn:
        conn.execute("PRAGMA user_version = 99")
    with sqlite3.connect(damaged) as conn:  # the schema's own pages (it may overflow page 1)
        schema = {r[0] for r in conn.execute("SELECT pageno FROM dbstat WHERE name = 'sqlite_schema'")}
    data = bytearray(damaged.read_bytes())
    for offset in range(3 * 4096, len(data), 4096):  # every page past the schema overwritten
        if offset // 4096 + 1 not in schema:
            data[offset : offset + 100] = b"\xff" * 100
    damaged.write_bytes(data)
    for args in (["list"], ["run", str(saga_file)]):
        result = runner.invoke(app, [*args, "--dsn", f"sqlite:///{newer}"])
        assert (result.exit_code, result.stdout, result.stderr) == (
            4,
            "",
            f"sagactl: error: saga log {newer} has schema version 99, newer than this sagactl supports"
            f" ({SCHEMA_VERSION}); upgrade sagactl\n",
        )
    for args, doing in ((["list"], "listing sagas"), (["stats"], "reading the saga counters")):
        result = runner.invoke(app, [*args, "--dsn", f"sqlite:///{damaged}"])
        assert (result.exit_code, result.stdout, result.stderr) == (
            4,
            "",
            f"sagactl: error: saga log {damaged}: {doing} failed: database disk image is malformed; the file is"
            " damaged or not a saga log; check --dsn\n",
        )


def _copy_read_only(source: Path, target_dir: Path, names: list[str]) -> Path:
    target_dir.mkdir()
    for name in names:
        shutil.copyfile(source.parent / name, target_dir / name)
        (target_dir / name).chmod(0o444)
    target_dir.chmod(0o555)
    return target_dir / source.name


@pytest.mark.parametrize("kind", ["wal-closed", "wal-open", "rollback"])
@pytest.mark.slow
def test_a_read_only_copy_of_a_log_can_be_inspected(tmp_path: Path, kind: str) -> None:
    """chmod 444 file in a 555 directory (as a user: root's override dropped), WAL or not."""
    log = tmp_path / "live" / "saga_log.db"
    writer = open_store(f"sqlite:///{log}")
    try:
        add(writer, saga("s-1", state=SagaState.COMPENSATING, step=1, error="refund failed"))
        if kind == "wal-open":  # copied while the writer holds it: the saga is in the -wal file
            copy = _copy_read_only(log, tmp_path / "ro", [log.name, f"{log.name}-wal", f"{log.name}-shm"])
    finally:
        writer.close()
    if kind == "rollback":
        with sqlite3.connect(log) as conn:
            conn.execute("PRAGMA journal_mode=DELETE")
    if kind != "wal-open":
        copy = _copy_read_only(log, tmp_path / "ro", [log.name])
    before = files_in(copy.parent)
    dsn = f"sqlite:///{copy}"
    try:
        listed = sagactl("list", "-o", "json", "--dsn", dsn, cwd=tmp_path, as_user=True)
        assert (listed.returncode, listed.stderr) == (0, ""), listed.stderr
        assert [(r["saga_id"], r["state"]) for r in json.loads(listed.stdout)] == [("s-1", "compensating")]
        shown = sagactl("show", "s-1", "-o", "json", "--dsn", dsn, cwd=tmp_path, as_user=True)
        assert shown.returncode == 0 and json.loads(shown.stdout)["last_error"] == "charge: refund failed"
        stats = sagactl("stats", "-o", "json", "--dsn", dsn, cwd=tmp_path, as_user=True)
        assert stats.returncode == 0 and json.loads(stats.stdout)["totals"]["compensating"] == 1
        # a writing command on the same copy: one line, exit 4, nothing changed
        resumed = sagactl("resume", "s-1", "--dsn", dsn, cwd=tmp_path, as_user=True)
        assert (resumed.returncode, resumed.stdout) == (4, "")
        # refused on opening it (WAL switch) or, with the WAL index already there, on taking the lease
        assert resumed.stderr.startswith(
            (f"sagactl: error: cannot open saga log {copy}: ", f"sagactl: error: saga log {copy}: taking the lease")
        )
        assert "attempt to write a readonly database" in resumed.stderr and resumed.stderr.count("\n") == 1
        assert resumed.stderr.endswith("; make the file and its directory writable for this user, or pass --dsn\n")
        assert files_in(copy.parent) == before
    finally:
        copy.parent.chmod(0o755)


def test_a_read_only_copy_missing_its_shm_says_what_to_copy(tmp_path: Path) -> None:
    log = tmp_path / "live" / "saga_log.db"
    writer = open_store(f"sqlite:///{log}")
    try:
        add(writer, saga("s-1"))
        copy = _copy_read_only(log, tmp_path / "ro", [log.name, f"{log.name}-wal"])  # no -shm
    finally:
        writer.close()
    try:
        listed = sagactl("list", "--dsn", f"sqlite:///{copy}", cwd=tmp_path, as_user=True)
        assert (listed.returncode, listed.stdout) == (4, "")
        assert listed.stderr == (
            f"sagactl: error: cannot read saga log {copy}: its write-ahead log saga_log.db-wal holds changes"
            " that SQLite can only read with saga_log.db-shm beside it, in a directory this user cannot write;"
            " copy saga_log.db with its -wal and -shm files, or read it where you can write\n"
        )
    finally:
        copy.parent.chmod(0o755)


# -- writing fails: read-only file, full disk (issue 8 item 15) ----------------------------------


@pytest.mark.slow
def test_a_writing_command_on_a_read_only_log_is_exit_4(tmp_path: Path, saga_file: Path) -> None:
    log = tmp_path / "ro" / "saga_log.db"
    open_store(f"sqlite:///{log}").close()
    log.chmod(0o444)
    log.parent.chmod(0o555)
    try:
        for args in (["run", str(saga_file), "-q"], ["db", "init"]):
            done = sagactl(*args, "--dsn", f"sqlite:///{log}", cwd=tmp_path, as_user=True)
            assert (done.returncode, done.stdout) == (4, ""), done.stderr
            assert done.stderr.startswith(f"sagactl: error: cannot open saga log {log}: attempt to write a readonly")
            assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        listed = sagactl("list", "-q", "--dsn", f"sqlite:///{log}", cwd=tmp_path, as_user=True)
        assert (listed.returncode, listed.stdout, listed.stderr) == (0, "", "")
    finally:
        log.parent.chmod(0o755)


@pytest.mark.slow
def test_a_full_disk_mid_saga_is_exit_4_and_the_saga_resumes_later(tmp_path: Path, saga_file: Path) -> None:
    """The big step's result does not fit (RLIMIT_FSIZE stands in for a full disk): one line,
    exit 4, the last commit intact; `resume` on a disk with room completes the saga."""
    log = tmp_path / "log" / "saga_log.db"
    dsn = f"sqlite:///{log}"
    open_store(dsn).close()
    room = log.stat().st_size + 150_000  # the WAL holds the start and the first step (~70 kB), not 200 kB more
    env = {"BIG": "200000"}
    full = sagactl("run", str(saga_file), "--saga-id", "b-1", "-q", "--dsn", dsn, cwd=tmp_path, env=env,
                   max_file_bytes=room)  # fmt: skip
    assert (full.returncode, full.stdout) == (4, "")
    assert full.stderr.startswith(f"sagactl: error: saga log {log}: writing to it failed: ")
    assert full.stderr.endswith(
        "; free space on that disk (or lift the file size limit) and check the disk;"
        " then 'sagactl resume b-1' continues the saga from its last committed state\n"
    )
    assert full.stderr.count("\n") == 1
    stored = json.loads(sagactl("show", "b-1", "-o", "json", "--dsn", dsn, cwd=tmp_path).stdout)
    assert stored["state"] == "pending"
    assert [(s["name"], s["status"]) for s in stored["steps"]] == [("first", "completed"), ("big", "executing")]
    resumed = sagactl("resume", "b-1", "-q", "--dsn", dsn, cwd=tmp_path, env=env)
    assert (resumed.returncode, resumed.stdout, resumed.stderr) == (0, "b-1\n", "")
    reader = open_store(dsn, create=False)
    try:
        done = reader.get("b-1")
    finally:
        reader.close()
    assert done is not None and done.state is SagaState.COMPLETED and done.lease_owner is None
    big = done.steps[1]
    assert (big.status.value, big.attempts, len(big.result["blob"])) == ("completed", 2, 200_000)


# -- rows another writer left in a state sagactl does not know (issue 8 item 15) ------------------
