"""`config contexts`, `config use-context`, `config view`: the sample sagactl.yaml listed with
the context in effect marked, switched in place (only the one line changes, permissions
kept), unknown names refused with the known ones, passwords masked."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sagactl.cli import app

ROOT = Path(__file__).parents[2]
runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The sample sagactl.yaml (staging's DSN given a password) in an empty working directory."""
    for name in ("SAGACTL_CONFIG", "SAGACTL_CONTEXT", "SAGACTL_DSN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "sagactl.yaml"
    text = (ROOT / "sample-configs" / "sagactl.yaml").read_text()
    path.write_text(text.replace("postgresql://sagactl@db.staging", "postgresql://sagactl:hunter2secret@db.staging"))
    path.chmod(0o640)
    return path


def test_contexts_lists_each_with_the_one_in_effect_marked(config: Path) -> None:
    listed = runner.invoke(app, ["config", "contexts", "-o", "json"])
    assert listed.exit_code == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert data["config"] == "sagactl.yaml" and data["current_context"] is None
    assert [(c["name"], c["current"]) for c in data["contexts"]] == [("staging", False), ("local", False)]
    assert data["contexts"][0]["dsn"] == "postgresql://sagactl:***@db.staging.internal:5432/orders"
    chosen = runner.invoke(app, ["config", "contexts", "--context", "local"])
    assert chosen.exit_code == 0 and "hunter2secret" not in chosen.stdout
    marked = [line for line in chosen.stdout.splitlines() if line.startswith("*")]
    assert len(marked) == 1 and "local" in marked[0]


def test_use_context_changes_one_line_and_nothing_else(config: Path) -> None:
    before = config.read_text()
    switched = runner.invoke(app, ["config", "use-context", "staging"])
    assert (switched.exit_code, switched.stdout) == (0, "")
    assert switched.stderr == "sagactl: switched to context 'staging' (sagactl.yaml)\n"
    after = config.read_text()
    head, tail = before.split("contexts:\n", 1)
    assert after == f"{head}current_context: staging\ncontexts:\n{tail}"
    assert stat.S_IMODE(config.stat().st_mode) == 0o640
    again = runner.invoke(app, ["config", "use-context", "local"])  # now the line is replaced
    assert again.exit_code == 0
    assert config.read_text() == after.replace("\ncurrent_context: staging\n", "\ncurrent_context: local\n")
    data = json.loads(runner.invoke(app, ["config", "contexts", "-o", "json"]).stdout)
    assert data["current_context"] == "local"
    # every command now reads the local context's store
    doctor = runner.invoke(app, ["doctor", "-o", "json"])
    store = next(c for c in json.loads(doctor.stdout)["checks"] if c["check"] == "store")
    assert "sqlite:///.sagactl/saga_log.db" in store["detail"]


def test_an_unknown_context_is_exit_2_listing_the_known_ones(config: Path) -> None:
    before = config.read_text()
    refused = runner.invoke(app, ["config", "use-context", "prod"])
    assert (refused.exit_code, refused.stdout) == (2, "")
    assert refused.stderr == "sagactl: error: context 'prod' not found in sagactl.yaml (known: local, staging)\n"
    assert config.read_text() == before


def test_use_context_without_a_config_file_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAGACTL_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)
    refused = runner.invoke(app, ["config", "use-context", "x"])
    assert refused.exit_code == 2 and "no config file" in refused.stderr


def test_a_file_without_contexts_line_gets_it_at_the_end(config: Path) -> None:
    config.write_text("store: {dsn: 'sqlite:///a.db'}\ncontexts: {a: {}, b: {}}")
    assert runner.invoke(app, ["config", "use-context", "b"]).exit_code == 0
    assert config.read_text() == "store: {dsn: 'sqlite:///a.db'}\ncurrent_context: b\ncontexts: {a: {}, b: {}}"


def test_a_file_it_cannot_edit_by_one_line_is_left_alone(config: Path) -> None:
    config.write_text("{store: {dsn: 'sqlite:///a.db'}, contexts: {a: {}}}\n")
    refused = runner.invoke(app, ["config", "use-context", "a"])
    assert refused.exit_code == 2 and "add 'current_context: a' to it by hand" in refused.stderr
    assert config.read_text() == "{store: {dsn: 'sqlite:///a.db'}, contexts: {a: {}}}\n"
    assert [p.name for p in config.parent.iterdir() if p.name.startswith(".sagactl")] == []


def test_view_masks_every_password(config: Path) -> None:
    shown = runner.invoke(app, ["config", "view"])
    assert shown.exit_code == 0 and shown.stderr == "# sagactl.yaml\n"
    assert "hunter2secret" not in shown.stdout
    assert "dsn: postgresql://sagactl:***@db.staging.internal:5432/orders" in shown.stdout
    data = json.loads(runner.invoke(app, ["config", "view", "-o", "json"]).stdout)
    assert data["contexts"]["local"] == {"store": {"dsn": "sqlite:///.sagactl/saga_log.db"}}
