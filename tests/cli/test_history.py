"""rerun through the CLI on SQLite and PostgreSQL, against real HTTP participants: a failed saga
run again as a new saga with fresh idempotency keys, linked both ways; refusals; patched input
and a new definition; --detach."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.store import open_store
from tests.support.participants import Participants, refuse

runner = CliRunner()

SAGA_YAML = """\
saga: Order
endpoints:
  shop: {type: http, url: "${env.SHOP_URL}"}
defaults:
  timeout: 5s
  retry: {max_attempts: 1, initial_backoff: 1ms, max_backoff: 1ms}
  compensation_retry: {max_attempts: 1, initial_backoff: 1ms, max_backoff: 1ms}
steps:
  - name: reserve
    endpoint: shop
    action: {path: /reserve, body: {order_id: "${input.order_id}", zip: "${input.address.zip}"}}
    compensation: {path: /release, body: {order_id: "${input.order_id}"}}
  - name: charge
    endpoint: shop
    action: {path: /charge, body: {order_id: "${input.order_id}"}}
    compensation: {path: /refund}
  - name: ship
    endpoint: shop
    action: {path: /ship}
"""
INPUT = {"order_id": "o-1", "address": {"zip": "10115", "street": "Main"}, "coupon": "X"}


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, store_dsn: str, participants: Participants) -> Path:
    """The saga file, SAGACTL_DSN on an empty log of each kind, USER=alice."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAGACTL_DSN", store_dsn)
    monkeypatch.setenv("SHOP_URL", participants.url)
    monkeypatch.setenv("USER", "alice")
    path = tmp_path / "order.yaml"
    path.write_text(SAGA_YAML)
    return path


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def failed_saga(shop: Path, participants: Participants, saga_id: str = "f-1") -> str:
    """A saga whose charge the participant refused: failed, reserve compensated."""
    participants.script("charge", "action", refuse(422, "card declined"))
    code, _, err = invoke("run", str(shop), "--input", json.dumps(INPUT), "--saga-id", saga_id, "-q")
    assert code == 1, err
    return saga_id


def show(saga_id: str) -> dict:  # type: ignore[type-arg]
    code, out, err = invoke("show", saga_id, "-o", "json")
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def count_sagas(dsn: str) -> int:
    store = open_store(dsn)
    try:
        return sum(c.count for c in store.counts())
    finally:
        store.close()


def test_a_failed_saga_reruns_as_a_new_saga_with_fresh_keys_linked_both_ways(
    shop: Path, participants: Participants
) -> None:
    failed = failed_saga(shop, participants)
    old_keys = set(participants.keys())
    participants.clear()  # the participant is fixed: charge succeeds now
    code, out, err = invoke("rerun", failed, "-o", "json")
    assert code == 0, err
    [new] = json.loads(out)
    assert new["state"] == "completed" and new["saga_id"] != failed
    assert new["rerun_of"] == failed and new["rerun_as"] is None
    assert new["data"] == INPUT  # the original input
    keys = participants.keys()
    assert keys == [f"{new['saga_id']}:{step}:action" for step in ("reserve", "charge", "ship")]
    assert not set(keys) & old_keys and all(k and k.startswith(f"{failed}:") for k in old_keys)
    assert participants.calls_for("reserve")[0].body == {"order_id": "o-1", "zip": "10115"}
    started = new["transitions"][0]
    assert started["new_state"] == "started" and started["detail"]["rerun_of"] == failed
    assert started["detail"]["by"] == "alice"
    original = show(failed)
    assert original["state"] == "failed" and original["rerun_as"] == new["saga_id"] and original["rerun_of"] is None
    note = original["transitions"][-1]
    assert (note["old_state"], note["new_state"]) == ("failed", "failed")
    assert note["detail"] == {"action": "rerun", "rerun_as": new["saga_id"], "by": "alice"}
    assert show(new["saga_id"])["rerun_of"] == failed
    code, out, _ = invoke("show", failed)
    assert code == 0 and "rerun as:" in out and new["saga_id"] in out
    code, out, _ = invoke("show", new["saga_id"])
    assert code == 0 and "rerun of:" in out and failed in out


def test_a_rerun_of_a_saga_that_did_not_end_failed_is_refused(
    shop: Path, participants: Participants, store_dsn: str
) -> None:
    code, out, err = invoke("run", str(shop), "--input", json.dumps(INPUT), "--saga-id", "ok-1", "-q")
    assert code == 0, err
    code, out, err = invoke("run", str(shop), "--input", json.dumps(INPUT), "--saga-id", "wip-1", "--detach")
    assert code == 0, err
    failed = failed_saga(shop, participants)
    code, out, err = invoke("rerun", failed, "-q")
    assert code == 0, err
    rerun_id = out.strip()
    before = count_sagas(store_dsn)
    for saga_id, why in (
        ("ok-1", "saga ok-1 is completed: only a saga that ended failed can be rerun"),
        ("wip-1", "saga wip-1 is started: only a saga that ended failed can be rerun"),
        (failed, f"saga {failed} was already rerun as {rerun_id}"),
        ("nope", "saga nope not found"),
    ):
        code, out, err = invoke("rerun", saga_id)
        assert (code, out) == (2, ""), err
        assert err.startswith(f"sagactl: error: {why}") and err.count("\n") == 1
    assert count_sagas(store_dsn) == before  # nothing was recorded
    # several: the one that can be rerun is, each refusal is one line, the worst exit code wins
    participants.clear()
    second = failed_saga(shop, participants, "f-2")
    participants.clear()
    code, out, err = invoke("rerun", "ok-1", second, "-q")
    assert code == 2 and len(out.split()) == 1
    assert "saga ok-1 is completed" in err and show(second)["rerun_as"] == out.strip()


def test_a_rerun_with_a_patched_input_and_a_new_definition(
    shop: Path, participants: Participants, tmp_path: Path
) -> None:
    failed = failed_saga(shop, participants)
    participants.clear()
    fixed = tmp_path / "order-v2.yaml"
    fixed.write_text(SAGA_YAML.replace("path: /charge,", "path: /v2/charge,"))
    patch = '{"address": {"zip": "20095"}, "coupon": null}'
    code, out, err = invoke("rerun", failed, "--definition", str(fixed), "--input-patch", patch, "-o", "json")
    assert code == 0, err
    [new] = json.loads(out)
    assert new["data"] == {"order_id": "o-1", "address": {"zip": "20095", "street": "Main"}}
    assert participants.calls_for("reserve")[0].body == {"order_id": "o-1", "zip": "20095"}
    assert participants.calls_for("charge")[0].path == "/v2/charge"
    assert show(failed)["data"] == INPUT  # the failed saga keeps its own input


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--definition", "other.yaml"], "other.yaml defines no saga of type 'Order' (it defines Other)"),
        (["--definition", "broken.yaml"], "broken.yaml:"),
        (["--input-patch", "{nope"], "input from --input-patch is not valid JSON"),
        (["--input-patch", '{"address": null}'], "step 'reserve': input has no 'address.zip'"),
    ],
)
def test_rerun_mistakes_exit_2_and_record_nothing(
    shop: Path, participants: Participants, tmp_path: Path, store_dsn: str, args: list[str], message: str
) -> None:
    failed = failed_saga(shop, participants)
    (tmp_path / "other.yaml").write_text(SAGA_YAML.replace("saga: Order", "saga: Other"))
    (tmp_path / "broken.yaml").write_text("saga: Order\nsteps: 3\n")
    before = count_sagas(store_dsn)
    code, out, err = invoke("rerun", failed, *args)
    assert (code, out) == (2, ""), err
    assert message in err
    assert count_sagas(store_dsn) == before and show(failed)["rerun_as"] is None


def test_a_detached_rerun_is_only_recorded_and_resume_drives_it(shop: Path, participants: Participants) -> None:
    failed = failed_saga(shop, participants)
    participants.clear()
    code, out, err = invoke("rerun", failed, "--detach")
    assert code == 0, err
    new_id = out.strip()
    assert participants.keys() == []
    recorded = show(new_id)
    assert recorded["state"] == "started" and recorded["rerun_of"] == failed and recorded["lease_owner"] is None
    assert show(failed)["rerun_as"] == new_id
    code, out, err = invoke("resume", new_id, "-o", "json")
    assert code == 0, err
    assert json.loads(out)[0]["state"] == "completed"


# -- prune ------------------------------------------------------------------------------------


def test_prune_through_the_cli_archives_then_deletes_and_stats_stays_exact(
    shop: Path, participants: Participants, tmp_path: Path
) -> None:
    failed_saga(shop, participants)
    participants.clear()
    code, _, err = invoke("run", str(shop), "--input", json.dumps(INPUT), "--saga-id", "ok-1", "-q")
    assert code == 0, err
    code, _, err = invoke("run", str(shop), "--input", json.dumps(INPUT), "--saga-id", "wip-1", "--detach")
    assert code == 0, err
    code, out, err = invoke("prune", "--older-than", "1ms", "--dry-run", "-o", "json")
    assert code == 0 and json.loads(out)["matched"] == 2 and "nothing deleted" in err
    archive = tmp_path / "pruned.jsonl"
    code, out, err = invoke("prune", "--older-than", "1ms", "--archive", str(archive), "-o", "json")
    assert code == 0, err
    done = json.loads(out)
    assert (done["pruned"], done["archived"], done["dry_run"]) == (2, 2, False)
    assert {c["state"]: c["count"] for c in done["counts"]} == {"completed": 1, "failed": 1}
    assert err == f"sagactl: pruned 2 finished sagas in 2 batches, archived 2 to {archive} first\n"
    assert sorted(json.loads(line)["saga_id"] for line in archive.read_text().splitlines()) == ["f-1", "ok-1"]
    code, out, _ = invoke("stats", "-o", "json")
    assert code == 0 and json.loads(out)["totals"] == {
        **json.loads(out)["totals"], "completed": 0, "failed": 0, "started": 1
    }
    assert invoke("show", "wip-1", "-q")[0] == 0 and invoke("show", "f-1")[0] == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--older-than", "30d", "--state", "compensating"], "--state compensating: active sagas are never pruned"),
        (["--older-than", "30d", "--state", "done"], "--state: unknown state 'done'"),
        (["--older-than", "0s"], "--older-than must be positive"),
        (["--older-than", "30d", "--dry-run", "--archive", "a.jsonl"], "--dry-run archives nothing"),
        (["--older-than", "30d", "--batch", "0"], "--batch must be 1 to 10000"),
        ([], "missing option '--older-than'"),
    ],
)
def test_prune_mistakes_exit_2(shop: Path, args: list[str], message: str) -> None:
    code, out, err = invoke("prune", *args)
    assert (code, out) == (2, ""), err
    assert err.startswith("sagactl: error: ") and message in err and err.count("\n") == 1


def test_prune_on_a_terminal_says_how_far_it_got(tmp_path: Path) -> None:
    """Batch after batch on a big log: a progress line on stderr (a terminal's only)."""
    import sys

    from sagactl.models import SagaState
    from sagactl.store import open_store
    from tests.support.pty import run_on_pty, strip_escapes
    from tests.support.sagas import add, saga

    dsn = f"sqlite:///{tmp_path}/log.db"
    store = open_store(dsn)
    try:
        add(store, *(saga(f"done-{n}", state=SagaState.COMPLETED, step=None) for n in range(3)))
    finally:
        store.close()
    code, tty, _, _ = run_on_pty(
        [sys.executable, "-m", "sagactl", "prune", "--older-than", "1ms", "--batch", "2", "--dsn", dsn],
        tty={"stderr"},
        cwd=tmp_path,
    )
    assert code == 0
    shown = strip_escapes(tty)
    assert "sagactl: pruned 3 sagas in 2 batches" in shown  # the bar's last frame
    assert "pruned 3 finished sagas in 2 batches" in shown  # the summary line
