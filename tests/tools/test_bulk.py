"""Bulk actions (issue 11 point 2; sagactl/tools/bulk.py, ops/bulk.py, cli/bulk.py): resume, abort
and resolve --step over what a selector picks, as one recorded job; --dry-run, --yes, --rate
(measured), --max, an interrupted run re-run without touching a saga twice, list --job; on
SQLite and PostgreSQL, with real exec participants (sh)."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.config import Settings
from sagactl.errors import UsageError
from sagactl.models import SagaState, Transition
from sagactl.ops.bulk import BulkRequest, run_bulk
from sagactl.ops.sagas import RunRequest, list_sagas, run_file
from sagactl.store import open_store
from sagactl.store.sql import summarize
from sagactl.tools.bulk import BulkAction, BulkPlan, BulkReport, Pacer, plan_item
from sagactl.tools.inspect import ListRequest
from sagactl.tools.selectors import Selector
from tests.support.clock import FakeClock
from tests.support.sagas import saga

ROOT = Path(__file__).parents[2]
runner = CliRunner()

OK = "cat >/dev/null; echo '{}'"
REFUND = (  # FAIL_REFUND: refunds are refused; HANG_ON=ID: that saga's refund hangs
    'cat >/dev/null; if [ $SAGA_PHASE = compensation ]; then'
    ' if [ -n "$FAIL_REFUND" ]; then echo "refund of $SAGA_ID refused" >&2; exit 1; fi;'
    ' if [ "$SAGA_ID" = "$HANG_ON" ]; then exec sleep 60; fi; fi; echo "{}"'
)
SAGA_YAML = f"""
saga: Bulk
endpoints:
  svc: {{type: exec, command: [sh, -c, "{OK}"]}}
  pay: {{type: exec, command: [sh, -c, '{REFUND}']}}
  ship: {{type: exec, command: [sh, -c, 'cat >/dev/null; echo "no address for $SAGA_ID" >&2; exit 1']}}
defaults:
  timeout: 20s
  retry: {{max_attempts: 1}}
  compensation_retry: {{max_attempts: 1}}
steps:
  - {{name: reserve, endpoint: svc, action: {{args: [a]}}, compensation: {{args: [c]}}}}
  - {{name: charge, endpoint: pay, action: {{args: [a]}}, compensation: {{args: [c]}}}}
  - {{name: ship, endpoint: ship, action: {{args: [a]}}}}
"""


@pytest.fixture
def env(store_dsn: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAGACTL_DSN", store_dsn)
    monkeypatch.setenv("USER", "alice")
    for name in ("SAGACTL_CONFIG", "SAGACTL_CONTEXT", "FAIL_REFUND", "HANG_ON"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "bulk.yaml").write_text(SAGA_YAML)
    return Settings(dsn=store_dsn)


def stuck(settings: Settings, monkeypatch: pytest.MonkeyPatch, *saga_ids: str) -> None:
    """Sagas whose ship step is refused and whose refund keeps failing: compensating at charge."""
    monkeypatch.setenv("FAIL_REFUND", "1")
    for saga_id in saga_ids:
        result = run_file(settings, RunRequest(file="bulk.yaml", saga_id=saga_id))
        assert result.saga.state is SagaState.COMPENSATING
    monkeypatch.delenv("FAIL_REFUND")


def history(settings: Settings, saga_id: str) -> list[Transition]:
    store = open_store(settings.dsn)
    try:
        return store.transitions(saga_id)
    finally:
        store.close()


def yes(plan: BulkPlan) -> bool:
    return True


def bulk(
    settings: Settings,
    action: BulkAction = BulkAction.RESUME,
    *,
    confirm: Callable[[BulkPlan], bool] = yes,
    progress: Any = None,
    clock: Any = None,
    **options: Any,
) -> BulkReport:
    """A bulk run (of every stuck saga unless told otherwise) as alice."""
    selector = Selector(request=ListRequest(stuck=True, older_than="1ms"))
    return run_bulk(
        settings,
        BulkRequest(action=action, selector=selector, **options),
        confirm=confirm,
        progress=progress,
        user="alice",
        clock=clock,
    )


WHO = f"alice@{socket.gethostname()}"


# -- the plan ----------------------------------------------------------------------------------


def test_plans_say_what_will_happen_to_each_saga() -> None:
    compensating = saga("c", state=SagaState.COMPENSATING, step=1)
    pending = saga("p", step=2)
    done = saga("d", state=SagaState.FAILED, step=None)
    c, p, d = (summarize(s) for s in (compensating, pending, done))
    assert plan_item(BulkAction.RESUME, c).will == "retry the compensation at charge"
    assert plan_item(BulkAction.RESUME, p).will == "continue at notify"
    assert plan_item(BulkAction.RESUME, d).skip == "already failed"
    assert plan_item(BulkAction.RESUME, c, done_before=True).skip == "done by this job before"
    assert plan_item(BulkAction.ABORT, p).will == "stop at notify, compensate what it did"
    assert plan_item(BulkAction.ABORT, c).will == "record the abort, retry the compensation at charge"
    assert plan_item(BulkAction.RESOLVE, c, step="charge").will == (
        "mark charge's compensation done by hand, compensate the earlier steps"
    )
    waiting = "the compensation waiting is charge's, not reserve's"
    assert plan_item(BulkAction.RESOLVE, c, step="reserve").skip == waiting
    assert plan_item(BulkAction.RESOLVE, c, step="reserve", out_of_order=True).will is not None
    assert plan_item(BulkAction.RESOLVE, p, step="charge").skip == "pending, not compensating: nothing to resolve"


@pytest.mark.slow
def test_a_dry_run_prints_the_plan_and_changes_nothing(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    stuck(env, monkeypatch, "s-1", "s-2")
    before = {i: len(history(env, i)) for i in ("s-1", "s-2")}
    result = runner.invoke(app, ["resume", "--stuck", "--older-than", "1ms", "--dry-run", "-o", "json"])
    assert result.exit_code == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["dry_run"] is True and plan["action"] == "resume" and plan["selector"] == "--stuck --older-than 1ms"
    assert plan["job"].startswith("job-") and plan["started_by"] == WHO and plan["continuing"] is False
    assert [(s["saga_id"], s["state"], s["plan"]) for s in plan["sagas"]] == [
        ("s-1", "compensating", "retry the compensation at charge"),
        ("s-2", "compensating", "retry the compensation at charge"),
    ]
    assert result.stderr == f"sagactl: dry run: {plan['job']} would resume 2 of 2 sagas; nothing was changed\n"
    assert {i: len(history(env, i)) for i in ("s-1", "s-2")} == before
    store = open_store(env.dsn)
    try:
        assert store.job(plan["job"]) is None  # no job recorded either
    finally:
        store.close()
    table = runner.invoke(app, ["resume", "--stuck", "--older-than", "1ms", "--dry-run"])
    assert "retry the compensation at charge" in table.stdout and f"job:      {plan['job']}" in table.stdout
    ids = runner.invoke(app, ["resume", "--stuck", "--older-than", "1ms", "--dry-run", "-q"])
    assert ids.stdout == "s-1\ns-2\n"


# -- the job -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_transition_a_job_writes_names_it_who_why_and_the_selector(
    env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    stuck(env, monkeypatch, "s-1", "s-2", "s-3")
    before = {i: len(history(env, i)) for i in ("s-1", "s-2", "s-3")}
    report = bulk(env, reason="payment-svc fixed, OPS-7")
    assert [r.saga.state for r in report.results] == [SagaState.FAILED] * 3 and report.finished
    job = report.plan.job.job_id
    for saga_id, count in before.items():
        written = history(env, saga_id)[count:]
        assert len(written) >= 4  # the note, both compensations, failed
        for t in written:
            assert {k: t.detail[k] for k in ("job", "by", "reason", "selector")} == {
                "job": job,
                "by": WHO,
                "reason": "payment-svc fixed, OPS-7",
                "selector": "--stuck --older-than 1ms",
            }
        assert written[0].detail["action"] == "resume"
    listed = list_sagas(env, ListRequest(job=job))
    assert [row.saga.saga_id for row in listed.sagas] == ["s-1", "s-2", "s-3"]
    store = open_store(env.dsn)
    try:
        record = store.job(job)
        assert record is not None and record.finished_at is not None and record.started_by == WHO
        assert record.selector == {"action": "resume", "options": {}, "stuck": True, "older_than": "1ms"}
    finally:
        store.close()
    code = runner.invoke(app, ["list", "--job", job, "-q"])
    assert code.stdout == "s-1\ns-2\ns-3\n"


def resume_notes(settings: Settings, ids: list[str], job: str) -> Counter[str]:
    return Counter(
        t.saga_id
        for i in ids
        for t in history(settings, i)
        if t.detail.get("action") == "resume" and t.detail.get("job") == job
    )


@pytest.mark.slow
def test_an_interrupted_bulk_resume_rerun_completes_without_touching_a_saga_twice(
    env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = [f"s-{n}" for n in range(1, 6)]
    stuck(env, monkeypatch, *ids)
    monkeypatch.setenv("FAIL_REFUND", "1")  # the refunds keep failing: every saga stays stuck
    seen: list[str] = []

    def interrupt_after_two(item: Any, result: Any, error: Any) -> None:
        seen.append(item.saga_id)
        if len(seen) == 2:
            raise KeyboardInterrupt

    first = bulk(env, progress=interrupt_after_two)
    assert first.stopped is not None and not first.finished
    assert [r.saga.saga_id for r in first.results] == ["s-1", "s-2"]
    job = first.plan.job.job_id
    # the same command again: the same job, which skips the two it did (still stuck as they are)
    second = bulk(env)
    assert (second.plan.job.job_id, second.plan.continuing) == (job, True)
    skipped = {i.saga_id: i.skip for i in second.plan.items if i.skip}
    assert skipped == {"s-1": "done by this job before", "s-2": "done by this job before"}
    assert [r.saga.saga_id for r in second.results] == ["s-3", "s-4", "s-5"] and second.finished
    assert resume_notes(env, ids, job) == Counter(ids)  # each saga resumed once by the job
    # the job went through its plan: the same command now is a new job, which acts again
    third = bulk(env)
    assert third.plan.job.job_id == f"{job}-2" and len(third.results) == 5


@pytest.mark.slow
def test_a_bulk_resume_interrupted_mid_saga_is_rerun_without_touching_a_saga_twice(
    env: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """SIGINT to a real bulk resume while the third saga's refund is in flight. (By --state:
    the interrupted saga's deadline has not passed, so --stuck would not pick it again.)"""
    ids = [f"s-{n}" for n in range(1, 6)]
    stuck(env, monkeypatch, *ids)
    command = [sys.executable, "-m", "sagactl", "resume", "--state", "compensating", "--yes", "-q"]
    child_env = {**os.environ, "PYTHONPATH": str(ROOT), "HANG_ON": "s-3"}
    child = subprocess.Popen(command, env=child_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not any(t.detail.get("action") == "resume" for t in history(env, "s-3")):
            assert time.monotonic() < deadline and child.poll() is None, child.communicate()
            time.sleep(0.05)
        time.sleep(0.3)  # the refund of s-3 is being sent now
        child.send_signal(signal.SIGINT)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 130, err
    job = next(t.detail["job"] for t in history(env, "s-1") if "job" in t.detail)
    assert "interrupted" in err and f"sagactl: {job} (" in err
    # the same command again, without the hang: it goes on with s-4 and s-5 only
    rerun = subprocess.run(command, env={**child_env, "HANG_ON": ""}, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 1, rerun.stderr
    assert rerun.stdout == "s-4\ns-5\n"
    assert "resumed 2 of 3 sagas: 2 failed; 1 done by this job before" in rerun.stderr
    assert resume_notes(env, ids, job) == Counter(ids)
    refunds = Counter(
        t.saga_id
        for i in ids
        for t in history(env, i)
        if t.step_name == "charge" and t.new_state == "compensating" and t.detail.get("job") == job
    )
    assert refunds == Counter(ids)  # one refund attempt per saga by the job, s-3's the interrupted one


def test_max_bounds_a_run_and_the_next_run_goes_on(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    stuck(env, monkeypatch, "s-1", "s-2", "s-3")
    monkeypatch.setenv("FAIL_REFUND", "1")  # the retries keep failing: still stuck afterwards
    first = bulk(env, max_sagas=2)
    assert [r.saga.saga_id for r in first.results] == ["s-1", "s-2"] and not first.finished
    assert [i.saga_id for i in first.plan.later] == ["s-3"]
    second = bulk(env, max_sagas=2)
    assert [r.saga.saga_id for r in second.results] == ["s-3"] and second.finished
    assert second.plan.job.job_id == first.plan.job.job_id


def test_more_than_one_saga_needs_confirmation(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    stuck(env, monkeypatch, "s-1", "s-2")
    before = len(history(env, "s-1"))
    declined = bulk(env, confirm=lambda plan: False)
    assert declined.declined and declined.results == []
    assert len(history(env, "s-1")) == before
    result = runner.invoke(app, ["resume", "--stuck", "--older-than", "1ms"])
    assert result.exit_code == 2 and "pass --yes to go ahead" in result.stderr
    # IDs typed on the command line need none: the operator named each saga
    result = runner.invoke(app, ["resume", "s-1", "s-2", "-q"])
    assert (result.exit_code, result.stdout) == (1, "s-1\ns-2\n"), result.stderr
    assert result.stderr.splitlines()[-1].startswith("sagactl: job-")


# -- the pace ------------------------------------------------------------------------------------


def test_pacer_holds_the_rate() -> None:
    clock = FakeClock()
    pacer = Pacer(4.0, clock)
    for _ in range(9):
        pacer.wait()
        clock.advance(0.05)  # each saga takes 50 ms
    assert clock.monotonic() == pytest.approx(8 / 4 + 0.05)  # the 9th started 2 s after the first
    unpaced = Pacer(None, FakeClock())
    for _ in range(5):
        unpaced.wait()
    assert unpaced.clock.sleeps == []  # type: ignore[attr-defined]


@pytest.mark.slow
def test_rate_is_honoured_and_measured(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    stuck(env, monkeypatch, *(f"s-{n}" for n in range(1, 6)))
    clock = FakeClock()
    done_at: list[float] = []
    report = bulk(env, rate=2.0, clock=clock, progress=lambda item, result, error: done_at.append(clock.monotonic()))
    assert len(report.results) == 5
    # with the injected clock: the sagas started 0.5 s apart, never faster
    assert done_at == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    assert (len(done_at) - 1) / (done_at[-1] - done_at[0]) <= 2.0
    assert report.elapsed == pytest.approx(2.0)
    # on the real clock, end to end: 4 sagas at 10/s take at least 0.3 s
    stuck(env, monkeypatch, *(f"r-{n}" for n in range(1, 5)))
    began = time.monotonic()
    result = runner.invoke(app, ["resume", "r-1", "r-2", "r-3", "r-4", "--rate", "10", "-q"])
    assert (result.exit_code, result.stdout) == (1, "r-1\nr-2\nr-3\nr-4\n"), result.stderr
    assert time.monotonic() - began >= 0.3


# -- abort and resolve -------------------------------------------------------------------------------


@pytest.mark.slow
def test_bulk_abort_of_a_failure_group_and_bulk_resolve(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(3):
        assert runner.invoke(app, ["run", "bulk.yaml", "--saga-id", f"d-{n}", "--detach"]).exit_code == 0
    stuck(env, monkeypatch, "s-1", "s-2")
    groups = json.loads(runner.invoke(app, ["list", "--state", "started", "--group-by", "state", "-o", "json"]).stdout)
    key = groups[0]["key"]
    result = runner.invoke(
        app, ["abort", "--state", "started", "--group", key, "--reason", "customer cancelled", "--yes", "-q"]
    )
    assert (result.exit_code, result.stdout) == (1, "d-0\nd-1\nd-2\n"), result.stderr
    aborted = [t for t in history(env, "d-1") if t.detail.get("action") == "abort"]
    assert aborted and aborted[0].detail["by"] == WHO and aborted[0].detail["reason"] == "customer cancelled"
    assert aborted[0].detail["selector"] == f"--state started --group {key}"
    result = runner.invoke(
        app, ["resolve", "--stuck", "--older-than", "1ms", "--step", "charge", "--reason", "refunded in PSP", "-y"]
    )
    assert result.exit_code == 1, result.stderr
    resolved = [t for t in history(env, "s-2") if t.detail.get("action") == "resolve"]
    assert [(t.step_name, t.new_state) for t in resolved] == [("charge", "compensated")]
    dry_run = ["resolve", "-", "--step", "reserve", "--reason", "x", "--dry-run", "-o", "json"]
    dry = runner.invoke(app, dry_run, input="s-1\n")
    assert json.loads(dry.stdout)["sagas"][0]["skip"] == "already failed"
    with pytest.raises(UsageError, match="abort needs --reason"):
        bulk(env, BulkAction.ABORT)


# -- a terminal: the confirmation prompt and the progress bar ----------------------------------------


QUIET_OR_JSON = {True: ["-q"], False: ["-o", "json"]}


@pytest.mark.parametrize("quiet", [False, True], ids=["json", "-q"])
@pytest.mark.slow
def test_on_a_terminal_it_asks_then_shows_progress(env: Settings, monkeypatch: pytest.MonkeyPatch, quiet: bool) -> None:
    """The bar is on stderr, so -q (IDs on stdout) shows it too; it counts the sagas that
    ended failed (both here: their compensations ran), not errors."""
    stuck(env, monkeypatch, "s-1", "s-2")
    master, slave = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "sagactl", "resume", "--stuck", "--older-than", "1ms", *QUIET_OR_JSON[quiet]],
        stdin=slave,
        stderr=slave,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TERM": "xterm"},
    )
    os.close(slave)
    seen = b""
    answered = False
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        assert ready, seen
        try:
            chunk = os.read(master, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
        if not answered and b"[y/N]" in seen:
            os.write(master, b"y\n")
            answered = True
    out = child.stdout.read() if child.stdout else b""
    assert child.wait(30) == 1
    os.close(master)
    text = seen.decode()
    assert "sagactl: resume 2 sagas as job-" in text and "? [y/N]" in text
    assert "/2" in text  # the progress bar: sagas done of 2
    assert "failed 2" in text and "errors" not in text  # the bar's count of sagas that ended failed
    assert "resumed 2 of 2 sagas: 2 failed" in text
    ids = out.decode().split() if quiet else [d["saga_id"] for d in json.loads(out)]
    assert ids == ["s-1", "s-2"]
