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
from tests.support.processes import sagactl

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


@pytest.mark.parametrize(
    "content",
    [b"store: [unclosed\n", b"store:\n  dsn: \xff\xfe\n", b"store:\n  dsn: \xed\xa0\x80\n", b"a: \x00\n", b"1: a\n"],
    ids=["unclosed", "not-utf8", "surrogate-bytes", "nul", "int-key"],
)
def test_broken_config_is_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(UsageError) as info:
        resolve_settings(config=str(path), env={})
    line = info.value.one_line()
    assert "\n" not in line
    assert line.startswith(f"{path}: ")


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


# -- nothing mistyped falls back silently (issue 8 item 2) --------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("contxts: {}\n", "unknown key 'contxts' at the top level; did you mean 'contexts'? allowed there: store,"
         " aws, tracing, contexts, current_context"),
        ("store: {dns: sqlite:///x.db}\n", "unknown key 'dns' in store; did you mean 'dsn'? allowed there: dsn,"
         " table, preset, columns, states, state_case, stuck_states"),
        ("aws: {regoin: eu-west-1}\n", "unknown key 'regoin' in aws; did you mean 'region'? allowed there:"
         " region, profile, endpoint_url, dlqs"),
        ("contexts: {staging: {stor: {dsn: 'sqlite:///s.db'}}}\n", "unknown key 'stor' in contexts.staging;"
         " did you mean 'store'? allowed there: store, aws, tracing"),
        ("contexts: {staging: {store: {dsn: 'sqlite:///s.db', tabel: t}}}\n", "unknown key 'tabel' in"
         " contexts.staging.store; did you mean 'table'? allowed there: dsn, table, preset, columns, states,"
         " state_case, stuck_states"),
        ("contexts: {staging: {aws: {profil: p}}}\n", "unknown key 'profil' in contexts.staging.aws; did you mean"
         " 'profile'? allowed there: region, profile, endpoint_url, dlqs"),
        ("contexts: {staging: {dsn: 'sqlite:///s.db'}}\n", "unknown key 'dsn' in contexts.staging; allowed there:"
         " store, aws, tracing"),
        ("contexts: {staging: sqlite:///s.db}\n", "'contexts.staging' must be a mapping, not str"),
        ("store: {dsn: ''}\n", "'store.dsn' is empty; give it a text value, or remove the key"),
        ("contexts: {staging: {store: {dsn: }}}\n", "'contexts.staging.store.dsn' is empty; give it a text value,"
         " or remove the key"),
        ("aws: {region: 5}\n", "'aws.region' is a int; give it a text value, or remove the key"),
        ("current_context: ''\ncontexts: {a: {}}\n", "'current_context' must name a context; remove it to use no"
         " context"),
        ("store: {columns: {saga_id: id}}\n", "store.columns and store.states describe a mapped table: they need"
         " store.table or store.preset"),
        ("store: {preset: dbs}\n", "'store.preset': unknown preset 'dbs'; did you mean 'dbos'? known presets: dbos,"
         " eventuate"),
        ("store: {table: t, columns: [id]}\n", "'store.columns' must be a mapping, not list"),
        ("contexts: {x: {store: {preset: 5}}}\n", "'contexts.x.store.preset' is a int; give it a text value, or"
         " remove the key"),
    ],
)  # fmt: skip
def test_config_mistakes_name_the_key_and_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sagactl.yaml"
    path.write_text(text)
    with pytest.raises(UsageError) as caught:
        resolve_settings(config=str(path), context="staging" if "staging" in text else None, env={})
    assert caught.value.one_line() == f"{path}: {message}"


def test_a_context_with_nothing_in_it_is_fine_if_it_exists(config_file: Path) -> None:
    config_file.write_text(CONFIG + "  bare:\n  empty: {}\n")
    for name in ("bare", "empty"):
        settings = resolve_settings(config=str(config_file), context=name, env={})
        assert (settings.dsn, settings.context, settings.aws.region) == (
            "postgresql://ops@db.internal/orders",
            name,
            "eu-west-1",
        )
    with pytest.raises(UsageError, match=r"context 'bar' not found .* \(known: bare, empty, legacy, staging\)"):
        resolve_settings(config=str(config_file), context="bar", env={})


@pytest.mark.parametrize(
    ("flags", "env", "message"),
    [
        ({"context": ""}, {}, "--context is empty; give it a value, or leave out --context and SAGACTL_CONTEXT"),
        ({"context": "  "}, {}, "--context is empty; give it a value, or leave out --context and SAGACTL_CONTEXT"),
        ({}, {"SAGACTL_CONTEXT": ""}, "SAGACTL_CONTEXT is set but empty; give it a value, or unset SAGACTL_CONTEXT"),
        ({"config": ""}, {}, "--config is empty; give it a value, or leave out --config and SAGACTL_CONFIG"),
        ({}, {"SAGACTL_CONFIG": " "}, "SAGACTL_CONFIG is set but empty; give it a value, or unset SAGACTL_CONFIG"),
        ({"dsn": ""}, {}, "--dsn is empty; give it a value, or leave out --dsn and SAGACTL_DSN"),
        ({}, {"SAGACTL_DSN": ""}, "SAGACTL_DSN is set but empty; give it a value, or unset SAGACTL_DSN"),
    ],
)
def test_an_empty_setting_is_an_error_not_the_default(
    config_file: Path, flags: dict[str, str], env: dict[str, str], message: str
) -> None:
    given = {} if "SAGACTL_CONFIG" in env else {"config": str(config_file)}
    given.update(flags)
    with pytest.raises(UsageError) as caught:
        resolve_settings(**given, env=env)
    assert caught.value.one_line() == message


def test_a_flag_wins_over_an_empty_variable(config_file: Path) -> None:
    env = {"SAGACTL_CONTEXT": "", "SAGACTL_DSN": ""}
    settings = resolve_settings(config=str(config_file), context="staging", dsn="sqlite:///x.db", env=env)
    assert (settings.context, settings.dsn) == ("staging", "sqlite:///x.db")


@pytest.mark.slow
def test_config_mistakes_end_to_end_exit_2_one_line(tmp_path: Path) -> None:
    (tmp_path / "sagactl.yaml").write_text("store:\n  dsn: sqlite:///own.db\ncontexts:\n  prod:\n    stor: {}\n")
    typo = sagactl("list", "--stuck", "--exit-code", cwd=tmp_path)
    assert (typo.returncode, typo.stdout) == (2, "")
    assert typo.stderr == (
        "sagactl: error: sagactl.yaml: unknown key 'stor' in contexts.prod; did you mean 'store'? allowed there:"
        " store, aws, tracing\n"
    )
    (tmp_path / "sagactl.yaml").write_text("store:\n  dsn: sqlite:///own.db\ncontexts:\n  prod: {}\n")
    empty = sagactl("list", "--stuck", "--exit-code", cwd=tmp_path, env={"SAGACTL_CONTEXT": ""})
    assert (empty.returncode, empty.stdout, empty.stderr) == (
        2,
        "",
        "sagactl: error: SAGACTL_CONTEXT is set but empty; give it a value, or unset SAGACTL_CONTEXT\n",
    )
    flag = sagactl("list", "--context", "", cwd=tmp_path)
    assert (flag.returncode, flag.stderr) == (
        2,
        "sagactl: error: --context is empty; give it a value, or leave out --context and SAGACTL_CONTEXT\n",
    )
    assert list(p.name for p in tmp_path.iterdir()) == ["sagactl.yaml"]  # nothing opened, nothing created


def test_the_sample_preset_config_resolves_every_context() -> None:
    """sample-configs/sagactl-presets.yaml: each context is a mapping sagactl can read (every key
    known, over its preset's block on either dialect), and none is a sagactl log."""
    import yaml

    from sagactl.store.mapping import resolve
    from sagactl.store.presets import preset_named

    path = Path(__file__).resolve().parent.parent / "sample-configs" / "sagactl-presets.yaml"
    contexts = yaml.safe_load(path.read_text())["contexts"]
    assert set(contexts) == {
        "dbos",
        "dbos-custom-schema",
        "dbos-sqlite",
        "eventuate",
        "masstransit",
        "wolverine",
        "jobs",
    }
    for name in contexts:
        settings = resolve_settings(config=str(path), context=name, env={})
        assert settings.mapping is not None, name
        dialect = "sqlite" if settings.dsn.startswith("sqlite") else "postgres"
        preset = preset_named(settings.mapping.preset).block(dialect, None) if settings.mapping.preset else None
        mapping = resolve(settings.mapping, preset)
        assert mapping.table_name, name
    custom = resolve(
        resolve_settings(config=str(path), context="dbos-custom-schema", env={}).mapping or TableMapping(),
        preset_named("dbos").block("postgres", None),
    )
    assert custom.table == ("orders_sys", "workflow_status") and custom.fields["updated_at"].unit == "ms"
