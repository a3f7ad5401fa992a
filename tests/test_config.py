"""Settings precedence (flag > env > sagactl.yaml > default), contexts; hostile config YAML."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.config import TableMapping, resolve_settings
from sagactl.errors import UsageError
from tests.support.hostile import BILLION_LAUGHS, DEEP, SELF_ALIAS

CONFIG = """
store:
  dsn: postgresql://ops@db.internal/orders
aws:
  region: eu-west-1
contexts:
  staging:
    store: {dsn: "sqlite:///staging.db"}
    aws: {endpoint_url: "http://127.0.0.1:4566"}
  legacy:
    store:
      table: orders.saga_instances
      columns: {saga_id: id, state: status}
      states: {completed: COMPLETED}
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "sagactl.yaml"
    path.write_text(CONFIG)
    return path


def test_default_without_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = resolve_settings(env={"XDG_CONFIG_HOME": str(tmp_path / "none")})
    assert settings.dsn == "sqlite:///.sagactl/saga_log.db"  # DESIGN 4: ./.sagactl/saga_log.db
    assert settings.config_path is None


def test_config_file_then_flag(config_file: Path) -> None:
    assert resolve_settings(config=str(config_file), env={}).dsn == "postgresql://ops@db.internal/orders"
    flagged = resolve_settings(config=str(config_file), dsn="sqlite:///x.db", env={})
    assert flagged.dsn == "sqlite:///x.db"
    assert flagged.aws.region == "eu-west-1"


def test_config_found_in_working_directory(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(config_file.parent)
    assert resolve_settings(env={}).config_path == Path("sagactl.yaml")


def test_context_overlays_top_level(config_file: Path) -> None:
    staging = resolve_settings(config=str(config_file), context="staging", env={})
    assert staging.dsn == "sqlite:///staging.db"
    assert staging.aws.region == "eu-west-1"
    assert staging.aws.endpoint_url == "http://127.0.0.1:4566"
    legacy = resolve_settings(config=str(config_file), context="legacy", env={})
    assert legacy.mapping == TableMapping(
        table="orders.saga_instances",
        columns={"saga_id": "id", "state": "status"},
        states={"completed": "COMPLETED"},
    )
    assert legacy.dsn == "postgresql://ops@db.internal/orders"  # the top-level store, overlaid


def test_env_endpoint_beats_config(config_file: Path) -> None:
    settings = resolve_settings(
        config=str(config_file), context="staging", env={"AWS_ENDPOINT_URL_SQS": "http://127.0.0.1:1"}
    )
    assert settings.aws.endpoint_url == "http://127.0.0.1:1"


def test_unknown_context_names_the_known_ones(config_file: Path) -> None:
    with pytest.raises(UsageError, match=r"context 'prod' not found .* \(known: legacy, staging\)"):
        resolve_settings(config=str(config_file), context="prod", env={})


def test_missing_config_file() -> None:
    with pytest.raises(UsageError, match=r"config file /nonexistent\.yaml not found"):
        resolve_settings(config="/nonexistent.yaml", env={})


def test_broken_config_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("store: [unclosed\n")
    with pytest.raises(UsageError) as info:
        resolve_settings(config=str(path), env={})
    line = info.value.one_line()
    assert "\n" not in line
    assert line.startswith(f"{path}: cannot read config: ")


@pytest.mark.parametrize("text", [BILLION_LAUGHS, SELF_ALIAS, DEEP], ids=["billion-laughs", "self-alias", "deep"])
def test_hostile_config_is_refused_in_milliseconds(text: str, tmp_path: Path) -> None:
    path = tmp_path / "sagactl.yaml"
    path.write_text(text)
    started = time.process_time()
    with pytest.raises(UsageError) as info:
        resolve_settings(config=str(path), env={})
    assert time.process_time() - started < 0.1
    assert info.value.one_line().startswith(f"{path}: cannot read config: ")


def test_billion_laughs_config_exits_2_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "sagactl.yaml"
    path.write_text(BILLION_LAUGHS)
    result = CliRunner().invoke(app, ["list", "--config", str(path)])
    assert result.exit_code == 2
    assert result.stderr == (
        f"sagactl: error: {path}: cannot read config: more than 20000 values once aliases are expanded"
        " at line 5 column 4\n"
    )
