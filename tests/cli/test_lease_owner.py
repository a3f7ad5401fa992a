"""Who drives a saga now: `list` and `show` give the lease owner (JSON fields lease_owner,
lease_expires_at, and wake_at on show; the DRIVER column; show's driver line), on SQLite and
PostgreSQL. (A mapped table has no lease: tests/cli/test_sagas.py, the legacy context.)"""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.models import SagaState, Transition, iso, utcnow
from sagactl.store import open_store
from tests.support.sagas import add, at, saga

runner = CliRunner()
LATER = (utcnow() + timedelta(hours=1)).replace(microsecond=0)


@pytest.fixture
def sagas(store_dsn: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """held: a live lease; lapsed: a lease that ran out (its driver died); due: released, a
    worker takes it up; waiting: compensating with nothing due; done: completed."""
    monkeypatch.setenv("SAGACTL_DSN", store_dsn)
    for name in ("SAGACTL_CONFIG", "SAGACTL_CONTEXT"):
        monkeypatch.delenv(name, raising=False)
    held = saga("held", created=1)
    held.lease_owner, held.lease_expires_at = "host-a:41:beef", LATER
    lapsed = saga("lapsed", created=2)
    lapsed.lease_owner, lapsed.lease_expires_at = "host-b:42:dead", at(60)
    due = saga("due", created=3)
    due.wake_at = at(5)
    waiting = saga("waiting", state=SagaState.COMPENSATING, step=1, created=4, deadline=4, error="HTTP 503")
    done = saga("done", state=SagaState.COMPLETED, step=None, created=5)
    store = open_store(store_dsn)
    try:
        add(store, held, lapsed, due, waiting, done)
    finally:
        store.close()


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert (result.exit_code, result.stderr) == (0, ""), result.stderr
    return result.stdout


def test_list_json_gives_the_lease_owner_and_its_expiry(sagas: None) -> None:
    rows = {row["saga_id"]: row for row in json.loads(invoke("list", "-o", "json"))}
    assert {saga_id: (r["lease_owner"], r["lease_expires_at"]) for saga_id, r in rows.items()} == {
        "held": ("host-a:41:beef", iso(LATER)),
        "lapsed": ("host-b:42:dead", "2026-11-26T08:01:00.000000Z"),
        "due": (None, None),
        "waiting": (None, None),
        "done": (None, None),
    }
    assert list(rows["held"])[-2:] == ["lease_owner", "lease_expires_at"]  # added after the old fields


def test_list_table_has_a_driver_column(sagas: None) -> None:
    rows = list(csv.DictReader(io.StringIO(invoke("list", "-o", "csv"))))  # csv: the JSON fields, whole
    assert {r["saga_id"]: r["lease_owner"] for r in rows} == {
        "held": "host-a:41:beef",
        "lapsed": "host-b:42:dead",
        "due": "",
        "waiting": "",
        "done": "",
    }
    lines = invoke("list").splitlines()  # the plain table (not a terminal)
    assert "host-a:41:beef" in next(line for line in lines if line.startswith("held "))
    assert lines[0].split() == ["SAGA", "TYPE", "STATE", "STEP", "UPDATED", "STUCK", "FOR", "DRIVER", "LAST", "ERROR"]
    assert "host-b:42:dead (lapsed)" in next(line for line in lines if line.startswith("lapsed "))


def test_show_json_gives_lease_and_wake_at(sagas: None) -> None:
    def fields(saga_id: str) -> tuple[str | None, str | None, str | None]:
        doc = json.loads(invoke("show", saga_id, "-o", "json"))
        return doc["lease_owner"], doc["lease_expires_at"], doc["wake_at"]

    assert fields("held") == ("host-a:41:beef", iso(LATER), None)
    assert fields("due") == (None, None, "2026-11-26T08:00:05.000000Z")
    assert fields("done") == (None, None, None)


def test_show_says_who_drives_the_saga(sagas: None) -> None:
    expected = {
        "held": f"host-a:41:beef (lease until {iso(LATER)})",
        "lapsed": "host-b:42:dead (lease expired 2026-11-26T08:01:00.000000Z: a worker takes it over)",
        "due": "none; due for a worker since 2026-11-26T08:00:05.000000Z",
        "waiting": "none; nothing is due until a reply comes or an operator acts",
        "done": "none",
    }
    for saga_id, line in expected.items():
        details = invoke("show", saga_id).splitlines()
        assert [d.split(":", 1)[1].strip() for d in details if d.startswith("driver:")] == [line], saga_id
        assert details[4].startswith("driver:")  # after the current step, before the times


def test_every_transition_names_its_writer_shown_where_the_driver_changes(store_dsn: str, sagas: None) -> None:
    """A takeover: the JSON history gives the owner of every transition; the table shows it only
    on the rows where another driver took over."""
    store = open_store(store_dsn)
    try:
        taken = saga("taken", created=6)
        writes = [
            ("a", None, None, "started"),
            ("a", None, "started", "pending"),
            ("a", "reserve", "pending", "executing"),
        ]
        writes += [("b", "reserve", "executing", "completed"), ("b", "charge", "pending", "executing")]
        store.create(
            taken,
            [
                Transition("taken", step, old, new, at(n), {"owner": f"host-{o}:1:cafe"})
                for n, (o, step, old, new) in enumerate(writes)
            ],
        )
    finally:
        store.close()
    history = json.loads(invoke("show", "taken", "-o", "json"))["transitions"]
    assert [t["detail"]["owner"] for t in history] == ["host-a:1:cafe"] * 3 + ["host-b:1:cafe"] * 2
    table = invoke("show", "taken").split("TRANSITIONS", 1)[1]
    assert [line.count('"owner":"host-') for line in table.splitlines() if "->" in line] == [1, 0, 0, 1, 0]
