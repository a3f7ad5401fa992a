"""Settings resolution (flag > env > sagactl.yaml > default) and contexts.

Flags and their environment variables are resolved by the CLI (Typer ``envvar=``); this
module adds the config file and the defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagactl.errors import UsageError

DEFAULT_DSN = "sqlite:///.sagactl/saga_log.db"
CONFIG_NAMES = ("sagactl.yaml", "sagactl.yml")


@dataclass(frozen=True, slots=True)
class TableMapping:
    """A read-only view of another orchestrator's saga table (``store.table`` in config)."""

    table: str
    columns: dict[str, str] = field(default_factory=dict)
    states: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AwsSettings:
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a command needs to reach its dependencies."""

    dsn: str = DEFAULT_DSN
    mapping: TableMapping | None = None
    aws: AwsSettings = AwsSettings()
    config_path: Path | None = None
    context: str | None = None


def find_config(explicit: str | None, env: Mapping[str, str]) -> Path | None:
    """The config file: --config / SAGACTL_CONFIG, else ./sagactl.yaml, else the user's one."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise UsageError(f"config file {path} not found", hint="check --config / SAGACTL_CONFIG")
        return path
    for name in CONFIG_NAMES:
        if Path(name).is_file():
            return Path(name)
    base = Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    user = base / "sagactl" / "config.yaml"
    return user if user.is_file() else None


def _load_yaml(path: Path) -> dict[str, Any]:
    import yaml  # only when a config file exists: keeps start-up fast

    from sagactl.yamlsafe import load

    try:
        loaded = load(path.read_text("utf-8"))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        what = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        raise UsageError(f"{path}: cannot read config: {what}{where}") from exc
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"{path}: cannot read config: {' '.join(str(exc).split())}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UsageError(f"{path}: config must be a mapping with store:, aws: or contexts:")
    return loaded


def _section(doc: Mapping[str, Any], key: str, path: Path) -> dict[str, Any]:
    value = doc.get(key) or {}
    if not isinstance(value, dict):
        raise UsageError(f"{path}: '{key}' must be a mapping")
    return value


def resolve_settings(
    *,
    dsn: str | None = None,
    config: str | None = None,
    context: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Flags over the environment over the config file (and its context) over defaults.

    AWS: region from AWS_REGION / AWS_DEFAULT_REGION, profile from AWS_PROFILE, the SQS endpoint
    from AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL, then ``aws:`` in the file; what is still
    unset is left to boto3's own chain (the profile's region, AWS's endpoint).
    """
    env = os.environ if env is None else env
    path = find_config(config, env)
    doc: dict[str, Any] = _load_yaml(path) if path else {}
    store = dict(_section(doc, "store", path)) if path else {}
    aws = dict(_section(doc, "aws", path)) if path else {}
    chosen = context or doc.get("current_context")
    if chosen:
        contexts = _section(doc, "contexts", path) if path else {}
        if chosen not in contexts:
            known = ", ".join(sorted(contexts)) or "none defined"
            where = str(path) if path else "no config file"
            raise UsageError(f"context '{chosen}' not found in {where} (known: {known})")
        ctx = contexts[chosen] or {}
        store.update(ctx.get("store") or {})
        aws.update(ctx.get("aws") or {})
    mapping = None
    if store.get("table"):
        mapping = TableMapping(
            table=str(store["table"]),
            columns={str(k): str(v) for k, v in (store.get("columns") or {}).items()},
            states={str(k): str(v) for k, v in (store.get("states") or {}).items()},
        )
    return Settings(
        dsn=dsn or store.get("dsn") or DEFAULT_DSN,
        mapping=mapping,
        aws=AwsSettings(
            region=region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or aws.get("region"),
            profile=profile or env.get("AWS_PROFILE") or aws.get("profile"),
            endpoint_url=endpoint_url
            or env.get("AWS_ENDPOINT_URL_SQS")
            or env.get("AWS_ENDPOINT_URL")
            or aws.get("endpoint_url"),
        ),
        config_path=path,
        context=chosen,
    )
