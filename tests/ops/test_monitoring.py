"""Monitoring that ships (docs/monitoring.md): the saga log's metrics from `stats -o prometheus`
and a worker's /metrics, the alert rules checked and unit-tested by promtool, and the dashboard;
at the end a real Prometheus scraping a real worker raises the stuck and DLQ alerts on a
broken log and none on a healthy one."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from sagactl.config import resolve_settings
from sagactl.ops.monitoring import RUNBOOK_BASE, LogCollector, alert_rules, dashboard
from tests.support.sqs import Queue, Sqs

ROOT = Path(__file__).parents[2]
SAMPLES = ROOT / "sample-configs"
MONITORING = SAMPLES / "monitoring"
DOCS = ROOT / "docs" / "monitoring.md"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
NEEDS = "the Debian package prometheus (promtool and the server): apt-get install prometheus (.ci/run does)"


def rules() -> list[dict[str, Any]]:
    return list(yaml.safe_load(alert_rules())["groups"][0]["rules"])


def sagactl(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("SAGACTL_")}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "sagactl", *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=120
    )


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text exposition, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


# -- the shipped rules and dashboard ----------------------------------------------------------


def test_tools_are_installed() -> None:
    assert PROMTOOL and PROMETHEUS, NEEDS


def test_the_rules_pass_promtool_check_and_every_unit_test(tmp_path: Path) -> None:
    assert PROMTOOL, NEEDS
    (tmp_path / "sagactl-rules.yml").write_text(alert_rules())
    shutil.copy(MONITORING / "sagactl-rules.test.yml", tmp_path)
    checked = subprocess.run([PROMTOOL, "check", "rules", "sagactl-rules.yml"], cwd=tmp_path, capture_output=True)
    assert checked.returncode == 0 and b"SUCCESS: 11 rules found" in checked.stdout, checked.stdout + checked.stderr
    tested = subprocess.run([PROMTOOL, "test", "rules", "sagactl-rules.test.yml"], cwd=tmp_path, capture_output=True)
    assert tested.returncode == 0, tested.stdout.decode() + tested.stderr.decode()


def test_every_alert_has_for_severity_summary_and_a_runbook_section() -> None:
    headings = {
        re.sub(r"[^a-z0-9_-]", "", line[4:].strip().lower())
        for line in DOCS.read_text().splitlines()
        if line.startswith("### ")
    }
    for rule in rules():
        name = rule["alert"]
        assert rule["for"], name
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert "{{ $labels." in rule["annotations"]["summary"] or name == "SagactlNoWorkerUp", name
        url = rule["annotations"]["runbook_url"]
        assert url == f"{RUNBOOK_BASE}#{name.lower()}", url
        assert name.lower() in headings, f"docs/monitoring.md has no runbook section for {name}"


def test_every_alert_fires_in_a_unit_test_and_none_on_the_healthy_log() -> None:
    tests = yaml.safe_load((MONITORING / "sagactl-rules.test.yml").read_text())["tests"]
    fired = {t["alertname"] for case in tests for t in case["alert_rule_test"] if t["exp_alerts"]}
    silent = {t["alertname"] for t in tests[-1]["alert_rule_test"] if not t["exp_alerts"]}
    names = {rule["alert"] for rule in rules()}
    assert fired == names and silent == names


def test_the_samples_are_what_the_command_prints(tmp_path: Path) -> None:
    printed = sagactl("monitoring", "rules", cwd=tmp_path)
    assert printed.returncode == 0 and printed.stdout == alert_rules() == (MONITORING / "sagactl-rules.yml").read_text()
    board = sagactl("monitoring", "dashboard", cwd=tmp_path)
    assert board.returncode == 0 and board.stdout == dashboard() == (MONITORING / "sagactl-dashboard.json").read_text()


def test_runbook_links_follow_where_the_docs_are_served(tmp_path: Path) -> None:
    printed = sagactl(
        "monitoring", "rules", "--runbook-base", "https://docs.example.com/sagactl/monitoring", cwd=tmp_path
    )
    urls = [r["annotations"]["runbook_url"] for r in yaml.safe_load(printed.stdout)["groups"][0]["rules"]]
    assert urls and all(u.startswith("https://docs.example.com/sagactl/monitoring/#sagactl") for u in urls), urls


def test_the_sample_prometheus_config_loads_the_rules() -> None:
    assert PROMTOOL, NEEDS
    checked = subprocess.run([PROMTOOL, "check", "config", "prometheus.yml"], cwd=MONITORING, capture_output=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_dashboard_is_ready_for_provisioning() -> None:
    board = json.loads(dashboard())
    assert board["uid"] == "sagactl-overview" and board["templating"]["list"][0]["type"] == "datasource"
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]


# -- the log's metrics ----------------------------------------------------------------------


FAILING = {"FAIL_STEP": "create_shipment", "FAIL_COMPENSATION": "charge_payment"}


def broken_log(tmp_path: Path, runs: int = 1) -> dict[str, str]:
    """A SQLite saga log in ``tmp_path`` with ``runs`` OrderFulfillment sagas whose
    create_shipment failed and whose charge_payment refund keeps failing (retries exhausted:
    compensating, waiting for an operator). Returns the environment that reaches it."""
    env = {"SAGACTL_DSN": f"sqlite:///{tmp_path / 'log.db'}"}
    for n in range(runs):
        order = json.dumps({"order_id": f"o-{n}", "items": [], "amount": 10, "address": "x", "customer_id": "c"})
        ran = sagactl("run", str(SAMPLES / "order.yaml"), "--input", order, cwd=tmp_path, env={**env, **FAILING})
        assert ran.returncode == 3, ran.stderr
    return env


def test_stats_prometheus_exports_the_log_the_budgets_and_the_waiting_sagas(tmp_path: Path) -> None:
    env = broken_log(tmp_path, runs=2)
    printed = sagactl("stats", "-o", "prometheus", cwd=tmp_path, env=env)
    assert printed.returncode == 0, printed.stderr
    found = samples(printed.stdout)
    t = "OrderFulfillment"
    assert value(found, "sagactl_sagas", saga_type=t, state="compensating") == 2
    assert value(found, "sagactl_sagas_stuck", saga_type=t, state="compensating") == 2
    assert value(found, "sagactl_compensations_exhausted", saga_type=t) == 2
    # the sample's budget: 4 actions (timeouts 10s, 20s, 10s, 10s; 3 attempts, backoffs 0.2+0.4 s)
    # and 3 compensations (10s, 20s, 10s; 4 attempts, backoffs 0.2+0.4+0.8 s)
    actions = 3 * (10 + 20 + 10 + 10) + 4 * 0.6
    compensations = 4 * (10 + 20 + 10) + 3 * 1.4
    assert value(found, "sagactl_saga_budget_seconds", saga_type=t) == pytest.approx(actions + compensations)
    assert value(found, "sagactl_step_timeout_seconds", saga_type=t, step="charge_payment", phase="action") == 20
    assert value(found, "sagactl_step_timeout_seconds", saga_type=t, step="send_confirmation", phase="action") == 10
    assert (
        value(found, "sagactl_step_timeout_seconds", saga_type=t, step="send_confirmation", phase="compensation")
        is None
    )
    assert not [name for name, _ in found if name.startswith("sagactl_dlq")]  # none configured


def test_a_healthy_log_waits_for_no_operator(tmp_path: Path) -> None:
    env = {"SAGACTL_DSN": f"sqlite:///{tmp_path / 'log.db'}"}
    ran = sagactl(
        "run", str(SAMPLES / "order.yaml"), "--input", f"@{SAMPLES / 'order-input.json'}", cwd=tmp_path, env=env
    )
    assert ran.returncode == 0, ran.stderr
    found = samples(sagactl("stats", "-o", "prometheus", cwd=tmp_path, env=env).stdout)
    assert value(found, "sagactl_sagas", saga_type="OrderFulfillment", state="completed") == 1
    assert value(found, "sagactl_compensations_exhausted", saga_type="OrderFulfillment") == 0
    assert value(found, "sagactl_saga_budget_seconds", saga_type="OrderFulfillment") is None  # none active


def config_with_dlqs(tmp_path: Path, *queues: str) -> None:
    (tmp_path / "sagactl.yaml").write_text(yaml.safe_dump({"aws": {"dlqs": list(queues)}}))


def test_dead_letter_queues_named_in_the_config_are_measured_never_consumed(
    tmp_path: Path, sqs: Sqs, aws_env: dict[str, str]
) -> None:
    full, empty = sqs.queue("dlq"), sqs.queue("dlq")
    sqs.send(full, [json.dumps({"saga_id": f"s-{n}"}) for n in range(3)])
    config_with_dlqs(tmp_path, full.name, empty.url, "no-such-dlq")
    env = {**aws_env, "SAGACTL_DSN": f"sqlite:///{tmp_path / 'log.db'}"}
    assert sagactl("db", "init", cwd=tmp_path, env=env).returncode == 0
    time.sleep(1.1)  # the messages are a second old at least
    printed = sagactl("stats", "-o", "prometheus", cwd=tmp_path, env=env)
    assert printed.returncode == 0, printed.stderr
    found = samples(printed.stdout)
    assert value(found, "sagactl_dlq_up", queue=full.name) == 1
    assert value(found, "sagactl_dlq_messages", queue=full.name) == 3
    assert value(found, "sagactl_dlq_oldest_message_age_seconds", queue=full.name) >= 1  # type: ignore[operator]
    assert value(found, "sagactl_dlq_messages", queue=empty.name) == 0
    assert value(found, "sagactl_dlq_oldest_message_age_seconds", queue=empty.name) == 0
    assert value(found, "sagactl_dlq_up", queue="no-such-dlq") == 0
    assert value(found, "sagactl_dlq_messages", queue="no-such-dlq") is None
    visible = sqs.client.get_queue_attributes(QueueUrl=full.url, AttributeNames=["ApproximateNumberOfMessages"])
    assert visible["Attributes"]["ApproximateNumberOfMessages"] == "3"  # sampled, still there and visible


def test_a_dlqs_setting_that_is_not_a_list_of_names_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "sagactl.yaml").write_text("aws:\n  dlqs: payment-dlq\n")
    printed = sagactl("stats", "-o", "prometheus", cwd=tmp_path, env={"SAGACTL_DSN": f"sqlite:///{tmp_path / 'l.db'}"})
    assert printed.returncode == 2
    assert printed.stderr.startswith("sagactl: error: ") and "'aws.dlqs' must be a list" in printed.stderr
    assert len(printed.stderr.splitlines()) == 1


class CountingCollector(LogCollector):
    """The collector, counting how often it reads the log; ``gate`` holds a computation."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.computed = 0
        self.gate: threading.Event | None = None

    def _compute(self) -> list[Any]:
        self.computed += 1
        if self.gate is not None:
            assert self.gate.wait(10)
        return super()._compute()


def names(families: Iterator[Any]) -> set[str]:
    return {f.name for f in families}


def test_a_worker_reads_the_log_once_per_scrape_interval(tmp_path: Path) -> None:
    env = broken_log(tmp_path)
    now = [100.0]
    collector = CountingCollector(resolve_settings(dsn=env["SAGACTL_DSN"], env={}), ttl=15, clock=lambda: now[0])
    try:
        assert "sagactl_compensations_exhausted" in names(collector.collect())
        now[0] += 14.9
        collector.collect()
        assert collector.computed == 1
        now[0] += 0.2
        assert "sagactl_log_up" in names(collector.collect())
        assert collector.computed == 2
    finally:
        collector.close()


def test_a_scrape_never_waits_for_another_one(tmp_path: Path) -> None:
    env = broken_log(tmp_path)
    now = [100.0]
    collector = CountingCollector(resolve_settings(dsn=env["SAGACTL_DSN"], env={}), ttl=15, clock=lambda: now[0])
    try:
        first = names(collector.collect())
        now[0] += 60
        collector.gate = threading.Event()
        slow = threading.Thread(target=collector.collect)
        slow.start()
        while collector.computed < 2:
            time.sleep(0.01)
        started = time.monotonic()
        assert names(collector.collect()) == first  # the last result, at once
        assert time.monotonic() - started < 1 and collector.computed == 2
        collector.gate.set()
        slow.join(10)
    finally:
        collector.close()


def test_an_unreachable_log_is_a_metric_not_a_failed_scrape() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    dsn = f"postgresql://postgres@127.0.0.1:{port}/nowhere?connect_timeout=2"
    collector = LogCollector(resolve_settings(dsn=dsn, env={}))
    families = {f.name: f for f in collector.collect()}
    assert [s.value for s in families["sagactl_log_up"].samples] == [0]
    assert not families["sagactl_sagas"].samples


# -- a real Prometheus scraping a real worker ---------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except OSError:
            found = None
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def api(port: int, path: str, **query: str) -> Any:
    url = f"http://127.0.0.1:{port}/api/v1/{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=10) as answer:
        body = json.loads(answer.read())
    assert body["status"] == "success", body
    return body["data"]


class Stack:
    """A sagactl worker (SQLite log, /metrics) and a Prometheus scraping it every second with
    the shipped rules, every ``for:`` shortened to 1s (a test cannot wait minutes)."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.worker_port, self.port = free_port(), free_port()
        environ = {k: v for k, v in os.environ.items() if not k.startswith("SAGACTL_")} | env
        self.worker = subprocess.Popen(
            [sys.executable, "-m", "sagactl", "worker", "--metrics-port", str(self.worker_port), "--poll", "200ms"],
            cwd=tmp_path,
            env=environ,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        shortened = re.sub(r"^(\s+for: ).*$", r"\g<1>1s", alert_rules(), flags=re.MULTILINE)
        (tmp_path / "rules.yml").write_text(shortened)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yml"],
            "scrape_configs": [
                {"job_name": "sagactl", "static_configs": [{"targets": [f"127.0.0.1:{self.worker_port}"]}]}
            ],
        }
        (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
        assert PROMETHEUS, NEEDS
        self.prometheus = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2).status == 200,
            60,
            "prometheus",
        )

    def alerts(self) -> dict[str, str]:
        return {a["labels"]["alertname"]: a["state"] for a in api(self.port, "alerts")["alerts"]}

    def query(self, expr: str) -> list[Any]:
        return list(api(self.port, "query", query=expr)["result"])

    def close(self) -> None:
        for process in (self.prometheus, self.worker):
            process.terminate()
        for process in (self.prometheus, self.worker):
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()


def record(tmp_path: Path, env: dict[str, str], count: int) -> None:
    for n in range(count):
        order = json.dumps({"order_id": f"o-{n}", "items": [], "amount": 10, "address": "x", "customer_id": "c"})
        ran = sagactl("run", str(SAMPLES / "order.yaml"), "--detach", "--input", order, cwd=tmp_path, env=env)
        assert ran.returncode == 0, ran.stderr


@pytest.mark.slow
def test_prometheus_raises_the_stuck_and_dlq_alerts_and_the_dashboard_has_data(
    tmp_path: Path, sqs: Sqs, aws_env: dict[str, str]
) -> None:
    dlq: Queue = sqs.queue("dlq")
    sqs.send(dlq, ['{"saga_id": "s-1", "step_name": "charge_payment"}', '{"saga_id": "s-2"}'])
    config_with_dlqs(tmp_path, dlq.name)
    env = {**aws_env, **FAILING, "SAGACTL_DSN": f"sqlite:///{tmp_path / 'log.db'}"}
    stack = Stack(tmp_path, env)
    try:
        record(tmp_path, env, 2)
        wanted = {"SagactlCompensationsExhausted", "SagactlSagaStuckCompensating", "SagactlDlqNotEmpty"}
        alerts = wait_for(lambda: (a := stack.alerts()) and wanted <= a.keys() and a, 90, f"the alerts {wanted}")
        assert "SagactlNoWorkerUp" not in alerts and "SagactlLogUnreadable" not in alerts
        firing = wait_for(
            lambda: (a := stack.alerts()) and all(a.get(n) == "firing" for n in wanted) and a, 30, "them firing"
        )
        assert wanted <= firing.keys()
        # the alerts fire at the first exhausted saga; the second may still be retrying its refund
        exhausted = wait_for(
            lambda: [
                (r["metric"]["saga_type"], r["value"][1])
                for r in stack.query("max by (saga_type) (sagactl_compensations_exhausted)")
                if r["value"][1] == "2"
            ],
            60,
            "both sagas to wait for an operator",
        )
        assert exhausted == [("OrderFulfillment", "2")]
        # every panel's query parses and runs; those about what this log holds return data
        board = json.loads(dashboard())
        with_data = {
            "Active sagas by type and state",
            "Stuck sagas",
            "Waiting for an operator",
            "Oldest active saga and its type's budget",
            "Step latency p99 by step and phase",
            "Step outcomes per second",
            "Dead-letter queue depth",
            "Oldest dead-lettered message",
            "Workers up",
            "Saga log readable",
            "Sagas in flight per worker",
            "Claims per second",
        }
        empty = []
        for panel in (p for p in board["panels"] if p["type"] != "row"):
            results = [stack.query(t["expr"]) for t in panel["targets"]]
            if not any(results):
                empty.append(panel["title"])
        assert not with_data & set(empty), f"panels without data: {sorted(with_data & set(empty))}"
    finally:
        stack.close()


@pytest.mark.slow
def test_prometheus_raises_no_alert_on_a_healthy_log(tmp_path: Path, sqs: Sqs, aws_env: dict[str, str]) -> None:
    config_with_dlqs(tmp_path, sqs.queue("dlq").name)
    env = {**aws_env, "SAGACTL_DSN": f"sqlite:///{tmp_path / 'log.db'}"}
    stack = Stack(tmp_path, env)
    try:
        record(tmp_path, env, 3)
        wait_for(
            lambda: stack.query('sagactl_sagas{state="completed"} == 3') and stack.query("sagactl_dlq_messages"),
            90,
            "the worker to complete the sagas and Prometheus to see them",
        )
        time.sleep(5)  # five more evaluations of every rule
        assert stack.alerts() == {}
    finally:
        stack.close()
