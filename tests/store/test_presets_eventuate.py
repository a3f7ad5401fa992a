"""``preset: eventuate``: Eventuate Tram Sagas' ``eventuate.saga_instance``, created from its
published PostgreSQL DDL (eventuate-tram-sagas, flyway V1000__tram-saga-schema.sql) with rows as
SagaInstanceRepositoryJdbc writes them: state_name the orchestrator's JSON state, three nullable
booleans, the key (saga_type, saga_id), no time."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.config import Settings, TableMapping
from sagactl.models import utcnow
from sagactl.ops.sagas import watch_sagas
from sagactl.tools.inspect import ListRequest
from tests.support.clock import StopsAfter
from tests.support.postgres import fresh_database

runner = CliRunner()

# eventuate-tram-sagas: the saga_instance table of its PostgreSQL schema (with the end_state,
# compensating and failed columns of today's releases), in the eventuate schema
DDL = """
CREATE SCHEMA eventuate;
CREATE TABLE eventuate.saga_instance_participants (
  saga_type VARCHAR(255) NOT NULL,
  saga_id VARCHAR(100) NOT NULL,
  destination VARCHAR(100) NOT NULL,
  resource VARCHAR(100) NOT NULL,
  PRIMARY KEY(saga_type, saga_id, destination, resource)
);
CREATE TABLE eventuate.saga_instance(
  saga_type VARCHAR(255) NOT NULL,
  saga_id VARCHAR(100) NOT NULL,
  state_name VARCHAR(100) NOT NULL,
  last_request_id VARCHAR(100),
  end_state BOOLEAN,
  compensating BOOLEAN,
  failed BOOLEAN,
  saga_data_type VARCHAR(1000) NOT NULL,
  saga_data_json VARCHAR(1000) NOT NULL,
  PRIMARY KEY(saga_type, saga_id)
);
"""
CREATE = "io.eventuate.examples.tram.sagas.ordersandcustomers.orders.sagas.createorder.CreateOrderSaga"
CANCEL = "io.eventuate.examples.tram.sagas.ordersandcustomers.orders.sagas.cancelorder.CancelOrderSaga"
DATA_TYPE = "io.eventuate.examples.tram.sagas.ordersandcustomers.orders.sagas.createorder.CreateOrderSagaData"


def state(step: int, compensating: bool = False, end: bool = False, failed: bool = False) -> str:
    """state_name as the simple DSL's SagaExecutionStateJsonSerde writes it (Jackson)."""
    return json.dumps(
        {"currentlyExecuting": step, "compensating": compensating, "endState": end, "failed": failed},
        separators=(",", ":"),
    )


# (saga_type, saga_id, state_name, end_state, compensating, failed): what each ends up as
ROWS: list[tuple[str, str, str, bool | None, bool | None, bool | None]] = [
    (CREATE, "0000018c4e8f3d2a-0242ac1200050001", state(1), False, False, False),  # running
    (CREATE, "0000018c4e8f3d2a-0242ac1200050002", state(0, compensating=True), False, True, False),  # compensating
    (CREATE, "0000018c4e8f3d2a-0242ac1200050003", state(2, end=True), True, False, False),  # completed
    (CREATE, "0000018c4e8f3d2a-0242ac1200050004", state(-1, True, True), True, True, False),  # compensated: failed
    (CREATE, "0000018c4e8f3d2a-0242ac1200050005", state(1, end=True, failed=True), True, False, True),  # failed
    (CREATE, "0000018c4e8f3d2a-0242ac1200050006", "????", False, False, False),  # being created
    (CANCEL, "0000018c4e8f3d2a-0242ac1200050001", state(0), None, None, None),  # written before the booleans
]
EXPECT = {
    f"{CREATE}/0000018c4e8f3d2a-0242ac1200050001": ("pending", 1),
    f"{CREATE}/0000018c4e8f3d2a-0242ac1200050002": ("compensating", 0),
    f"{CREATE}/0000018c4e8f3d2a-0242ac1200050003": ("completed", 2),
    f"{CREATE}/0000018c4e8f3d2a-0242ac1200050004": ("failed", -1),
    f"{CREATE}/0000018c4e8f3d2a-0242ac1200050005": ("failed", 1),
    f"{CREATE}/0000018c4e8f3d2a-0242ac1200050006": ("pending", None),
    f"{CANCEL}/0000018c4e8f3d2a-0242ac1200050001": ("pending", 0),
}
COMPENSATING = f"{CREATE}/0000018c4e8f3d2a-0242ac1200050002"


def create(dsn: str, ddl: str = DDL, rows: list[Any] | None = None) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(ddl)
        for saga_type, saga_id, name, end, compensating, failed in ROWS if rows is None else rows:
            conn.execute(
                "INSERT INTO eventuate.saga_instance (saga_type, saga_id, state_name, last_request_id, end_state,"
                " compensating, failed, saga_data_type, saga_data_json) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (saga_type, saga_id, name, "req-1", end, compensating, failed, DATA_TYPE, '{"orderId":1}'),
            )


@pytest.fixture(scope="module")
def eventuate(pg_admin_dsn: str) -> Iterator[str]:
    with fresh_database(pg_admin_dsn, "sagactl_eventuate") as dsn:
        create(dsn)
        yield dsn


@pytest.fixture(autouse=True)
def no_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SAGACTL_DSN", "SAGACTL_CONFIG", "SAGACTL_CONTEXT", "SAGACTL_PRESET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def invoke(dsn: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--preset", "eventuate", "--dsn", dsn])
    return result.exit_code, result.stdout, result.stderr


def test_states_derive_from_the_booleans_and_the_step_from_state_name(eventuate: str) -> None:
    code, out, err = invoke(eventuate, "list", "-o", "json")
    assert (code, err) == (0, "")
    rows = {r["saga_id"]: r for r in json.loads(out)}
    assert {i: (r["state"], r["current_step"]) for i, r in rows.items()} == EXPECT
    compensating = rows[COMPENSATING]
    assert compensating["source_state"] == "failed=false end_state=false compensating=true"
    assert compensating["saga_type"] == CREATE and compensating["updated_at"] is None
    assert rows[f"{CANCEL}/0000018c4e8f3d2a-0242ac1200050001"]["source_state"] == (
        "failed=null end_state=null compensating=null"
    )
    code, wide, _ = invoke(eventuate, "list", "--state", "failed", "-o", "wide")
    assert code == 0 and "end_state=true compensating=true" in wide


def test_stuck_lists_the_compensating_ones_and_says_once_there_is_no_time(eventuate: str) -> None:
    code, out, err = invoke(eventuate, "list", "--stuck", "-q", "--exit-code")
    assert (code, out) == (3, COMPENSATING + "\n")
    assert err == (
        "sagactl: warning: saga_instance has no time to judge age by (store.columns.updated_at): --stuck"
        " lists every compensating saga, however long it has been compensating\n"
    ).replace("saga_instance", "eventuate.saga_instance")
    code, _, err = invoke(eventuate, "list", "--stuck", "--older-than", "1h")
    assert code == 2 and err.count("\n") == 1 and "--older-than:" in err and "has no time to judge age by" in err
    code, out, err = invoke(eventuate, "stats", "-o", "json")
    totals = json.loads(out)["totals"]
    assert code == 0 and err.count("warning") == 1
    assert (totals["pending"], totals["compensating"], totals["completed"], totals["failed"], totals["stuck"]) == (
        3,
        1,
        1,
        2,
        1,
    )


class Records(logging.Handler):
    """The records logged where it is attached (a CLI test may have stopped sagactl's loggers
    from propagating to pytest's capture)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_watch_warns_once_however_many_frames(eventuate: str) -> None:
    frames: list[list[str]] = []
    records = Records()
    logger = logging.getLogger("sagactl.store")
    logger.addHandler(records)
    settings = Settings(dsn=eventuate, mapping=TableMapping(preset="eventuate"))
    try:
        with pytest.raises(KeyboardInterrupt):
            watch_sagas(
                settings,
                ListRequest(stuck=True),
                lambda r: frames.append([s.saga.saga_id for s in r.sagas]),
                interval=1,
                clock=StopsAfter(3, utcnow() + timedelta(days=1)),
            )
    finally:
        logger.removeHandler(records)
    assert frames == [[COMPENSATING]] * 3
    assert len([m for m in records.messages if "no time to judge age by" in m]) == 1


def test_the_composite_key_is_one_id_that_show_takes_back(eventuate: str) -> None:
    code, out, err = invoke(eventuate, "show", COMPENSATING, "-o", "json")
    assert (code, err) == (0, "")
    shown = json.loads(out)
    assert (shown["saga_id"], shown["state"], shown["current_step"]) == (COMPENSATING, "compensating", 0)
    code, out, _ = invoke(eventuate, "show", f"{CANCEL}/00", "-q")  # a unique prefix
    assert (code, out) == (0, f"{CANCEL}/0000018c4e8f3d2a-0242ac1200050001\n")
    code, out, _ = invoke(eventuate, "show", CANCEL[:-8], "-q")  # of the type alone
    assert (code, out) == (0, f"{CANCEL}/0000018c4e8f3d2a-0242ac1200050001\n")
    code, _, err = invoke(eventuate, "show", CREATE)  # the type alone: six sagas
    assert code == 2 and "is ambiguous: it matches 6 sagas" in err
    code, _, err = invoke(eventuate, "show", "0000018c4e8f3d2a-0242ac1200050002")  # the ID without its type
    assert code == 2 and "not found" in err
    code, out, _ = invoke(eventuate, "list", "--saga-id", COMPENSATING, "--saga-id", f"{CANCEL}/0000", "-q")
    assert sorted(out.split()) == sorted([COMPENSATING, f"{CANCEL}/0000018c4e8f3d2a-0242ac1200050001"])


def test_an_older_table_without_the_booleans_is_named(pg_admin_dsn: str) -> None:
    old = DDL.replace("  end_state BOOLEAN,\n  compensating BOOLEAN,\n  failed BOOLEAN,\n", "")
    with fresh_database(pg_admin_dsn, "sagactl_eventuate_old") as dsn:
        create(dsn, old, rows=[])
        code, out, err = invoke(dsn, "list")
    assert (code, out) == (4, "") and err.count("\n") == 1
    assert "the table has no column 'end_state', which the eventuate preset reads" in err


def test_a_boolean_kept_as_text_is_named(pg_admin_dsn: str) -> None:
    retyped = DDL.replace("  compensating BOOLEAN,", "  compensating VARCHAR(5),")
    with fresh_database(pg_admin_dsn, "sagactl_eventuate_typed") as dsn:
        create(dsn, retyped, rows=[])
        code, _, err = invoke(dsn, "list")
    assert code == 4 and err.count("\n") == 1
    assert "holds 'compensating' as character varying(5), not boolean or integer" in err
