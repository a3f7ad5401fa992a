"""sample-configs/deploy: the systemd unit and the Kubernetes Deployment parse, run a worker
with options the CLI accepts, and give it longer to stop than its --grace (docs/workers.md)."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from typer.core import TyperGroup
from typer.main import get_command

from sagactl.cli import app
from sagactl.definitions.model import parse_duration

DEPLOY = Path(__file__).parent.parent / "sample-configs" / "deploy"


def worker_options(argv: list[str]) -> dict[str, Any]:
    """``sagactl worker ARGS`` parsed by the real command (nothing run): its option values."""
    assert argv[0].endswith("sagactl") and argv[1] == "worker", argv
    group = get_command(app)
    assert isinstance(group, TyperGroup)
    command = group.commands["worker"]
    with command.make_context("worker", argv[2:]) as ctx:
        return dict(ctx.params)


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(DEPLOY / "sagactl-worker.service")
    return parser


def test_systemd_unit_restarts_on_failure_and_outlasts_the_grace_period() -> None:
    service = unit()["Service"]
    options = worker_options(shlex.split(service["ExecStart"]))
    assert (options["grace"], options["metrics_port"], options["concurrency"]) == ("30s", 9464, 8)
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    assert parse_duration(service["TimeoutStopSec"]) > parse_duration(options["grace"])
    assert service["EnvironmentFile"] == "/etc/sagactl/worker.env"
    assert service["User"] not in ("", "root") and service["Group"] == service["User"]
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing to say (the ExecStart binary swapped for one that
    exists here: it checks that the command is executable)."""
    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze (Debian package systemd, on every machine of this project) is missing"
    text = (DEPLOY / "sagactl-worker.service").read_text()
    copy = tmp_path / "sagactl-worker.service"
    copy.write_text(text.replace("ExecStart=/usr/local/bin/sagactl", f"ExecStart={Path(sys.executable).resolve()}"))
    found = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False)
    assert (found.returncode, found.stdout, found.stderr) == (0, "", "")


def test_kubernetes_deployment() -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "sagactl-worker.yaml").read_text()))
    assert len(docs) == 1
    deployment = docs[0]
    assert (deployment["apiVersion"], deployment["kind"]) == ("apps/v1", "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    pod = spec["template"]
    assert spec["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    [container] = pod["spec"]["containers"]
    options = worker_options(container["command"] + container["args"])
    port = options["metrics_port"]
    assert pod["spec"]["terminationGracePeriodSeconds"] > parse_duration(options["grace"])
    assert container["envFrom"] == [{"secretRef": {"name": "sagactl-worker"}}]
    assert container["ports"] == [{"name": "metrics", "containerPort": port}]
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert pod["metadata"]["annotations"] == {
        "prometheus.io/scrape": "true",
        "prometheus.io/port": str(port),
        "prometheus.io/path": "/metrics",
    }
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
