"""resume ID --definition on SQLite and PostgreSQL against real HTTP participants: an unfinished
saga moves to a new version of its definition when the steps it has done keep their names and
order (and then runs the new steps), and is refused with the differences otherwise."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.definitions.validation import check_text
from sagactl.engine.migration import differences, digest, moved_steps
from sagactl.models import SagaState, StepStatus, Transition
from sagactl.store import open_store
from tests.support.participants import Participants
from tests.support.sagas import saga

runner = CliRunner()

V1 = """\
saga: Order
endpoints:
  shop: {type: http, url: "${env.SHOP_URL}"}
defaults:
  timeout: 5s
  retry: {max_attempts: 1, initial_backoff: 1ms, max_backoff: 1ms}
steps:
  - name: reserve
    endpoint: shop
    action: {path: /reserve}
    compensation: {path: /release}
  - name: charge
    endpoint: shop
    action: {path: /charge}
    compensation: {path: /refund}
  - name: notify
    endpoint: shop
    action: {path: /notify}
"""
NOTIFY = """  - name: notify
    endpoint: shop
    action: {path: /notify}
"""
# v2: charge moved to another path with a longer timeout, a new step before notify and one after
V2 = V1.replace("action: {path: /charge}", "timeout: 30s\n    action: {path: /v2/charge}").replace(
    NOTIFY, "  - name: invoice\n    endpoint: shop\n    action: {path: /invoice}\n" + NOTIFY
) + "  - name: audit\n    endpoint: shop\n    action: {path: /audit}\n"


def definition(text: str, tmp_path: Path) -> Any:
    report = check_text(text, "order.yaml", str(tmp_path))
    assert not report.errors, report.problems
    return report.definitions[0]


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_dsn: str, participants: Participants) -> str:
    """A saga in flight under V1: reserve completed, charge executing (its driver died)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAGACTL_DSN", store_dsn)
    monkeypatch.setenv("SHOP_URL", participants.url)
    monkeypatch.setenv("USER", "alice")
    record = saga("m-1", step=1, definition=definition(V1, tmp_path).snapshot())
    assert [(s.name, s.status) for s in record.steps] == [
        ("reserve", StepStatus.COMPLETED), ("charge", StepStatus.EXECUTING), ("notify", StepStatus.PENDING)
    ]
    store = open_store(store_dsn)
    try:
        store.create(record, [Transition("m-1", None, None, "started", record.created_at)])
    finally:
        store.close()
    return store_dsn


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def stored(dsn: str, saga_id: str = "m-1") -> Any:
    store = open_store(dsn)
    try:
        found = store.get(saga_id)
        assert found is not None
        found.transitions = store.transitions(saga_id)
        return found
    finally:
        store.close()


def test_a_saga_moves_to_a_definition_with_new_later_steps_and_runs_them(
    shop: str, participants: Participants, tmp_path: Path
) -> None:
    (tmp_path / "order-v2.yaml").write_text(V2)
    before = stored(shop).definition
    code, out, err = invoke("resume", "m-1", "--definition", "order-v2.yaml", "-o", "json")
    assert code == 0, err
    [done] = json.loads(out)
    assert done["state"] == "completed"
    assert [s["name"] for s in done["steps"]] == ["reserve", "charge", "invoice", "notify", "audit"]
    assert [(c.path, c.key) for c in participants.calls] == [  # reserve was done: not sent again
        ("/v2/charge", "m-1:charge:action"),
        ("/invoice", "m-1:invoice:action"),
        ("/notify", "m-1:notify:action"),
        ("/audit", "m-1:audit:action"),
    ]
    after = stored(shop)
    assert after.definition == definition(V2, tmp_path).snapshot() and after.definition != before
    [moved] = [t for t in after.transitions if t.detail.get("action") == "migrate"]
    assert (moved.old_state, moved.new_state) == ("pending", "pending")
    assert moved.detail == {
        "action": "migrate",
        "by": "alice",
        "from": digest(before),
        "to": digest(after.definition),
        "file": "order-v2.yaml",
    }
    assert moved.detail["from"].startswith("sha256:") and moved.detail["from"] != moved.detail["to"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("name: reserve", "name: reserve_stock"),
            "step 1 'reserve' (completed) is not in the new definition (renamed or removed; step 1 is 'reserve_stock')",
        ),
        (
            ("name: charge", "name: charge_card"),
            "step 2 'charge' (executing) is not in the new definition (renamed or removed; step 2 is 'charge_card')",
        ),
    ],
)
@pytest.mark.slow
def test_a_saga_whose_done_steps_are_renamed_is_refused_and_left_as_it_was(
    shop: str, participants: Participants, tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    (tmp_path / "order-v2.yaml").write_text(V2.replace(*change))
    before = stored(shop)
    code, out, err = invoke("resume", "m-1", "--definition", "order-v2.yaml")
    assert (code, out) == (2, ""), err
    assert err.startswith("sagactl: error: cannot move saga m-1 to order-v2.yaml: ") and message in err
    assert "the steps a saga has done must keep their names and order" in err and err.count("\n") == 1
    after = stored(shop)
    assert after.definition == before.definition and len(after.transitions) == len(before.transitions)
    assert after.lease_owner is None and participants.calls == []
    assert invoke("resume", "m-1", "-q")[0] == 0  # still resumable under its own snapshot


def test_differences_name_reordered_and_removed_steps(tmp_path: Path) -> None:
    record = saga("d-1", state=SagaState.COMPENSATING, step=2, definition={})
    reordered = definition(V1.replace("name: reserve", "name: tmp").replace("name: charge", "name: reserve")
                           .replace("name: tmp", "name: charge"), tmp_path)  # fmt: skip
    assert differences(record, reordered) == [
        "step 1 'reserve' (completed) is step 2 in the new definition (reordered)",
        "step 2 'charge' (completed) is step 1 in the new definition (reordered)",
    ]
    short = definition(V1.replace(NOTIFY, ""), tmp_path)
    assert differences(record, short) == [
        "step 3 'notify' (compensating) is not in the new definition (removed; it has 2 steps)"
    ]
    fresh = saga("d-2", step=0, definition={})
    fresh.steps[0].status = StepStatus.PENDING
    assert differences(fresh, short) == [] and [s.name for s in moved_steps(fresh, short)] == ["reserve", "charge"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["done-1", "--definition", "order-v2.yaml"], "saga done-1 is already completed; nothing to migrate"),
        (["m-1", "--definition", "other.yaml"], "other.yaml defines no saga of type 'Order' (it defines Other)"),
        (["m-1", "--definition", "missing.yaml"], "missing.yaml:1:1: file not found"),
        (["--stuck", "--definition", "order-v2.yaml"], "--definition applies to SAGA_IDs, not --stuck"),
    ],
)
@pytest.mark.slow
def test_resume_definition_mistakes_exit_2(shop: str, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "order-v2.yaml").write_text(V2)
    (tmp_path / "other.yaml").write_text(V1.replace("saga: Order", "saga: Other"))
    store = open_store(shop)
    try:
        done = saga("done-1", state=SagaState.COMPLETED, step=None, definition=definition(V1, tmp_path).snapshot())
        store.create(done, [])
    finally:
        store.close()
    code, out, err = invoke("resume", *args)
    assert (code, out) == (2, ""), err
    assert message in err


def test_the_same_definition_again_records_no_migration(shop: str, participants: Participants, tmp_path: Path) -> None:
    (tmp_path / "order.yaml").write_text(V1)
    code, out, err = invoke("resume", "m-1", "--definition", "order.yaml", "-o", "json")
    assert code == 0, err
    assert json.loads(out)[0]["state"] == "completed"
    assert not [t for t in stored(shop).transitions if t.detail.get("action") == "migrate"]
    assert [c.path for c in participants.calls] == ["/charge", "/notify"]
