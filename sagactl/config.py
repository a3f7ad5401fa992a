"""Settings resolution (flag > env > sagactl.yaml > default), contexts, and secret masking.

Flags and their environment variables are resolved by the CLI (Typer ``envvar=``); this
module adds the config file and the defaults, and knows how to keep secrets out of text.
"""

from __future__ import annotations

import os
import re
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

    try:
        loaded = yaml.safe_load(path.read_text("utf-8"))
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
    """Merge flags (already env-resolved by the CLI) over the config file over defaults."""
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
            region=region or aws.get("region"),
            profile=profile or aws.get("profile"),
            endpoint_url=endpoint_url or env.get("AWS_ENDPOINT_URL_SQS") or aws.get("endpoint_url"),
        ),
        config_path=path,
        context=chosen,
    )


# -- secrets --------------------------------------------------------------------------------

_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)(?P<secret>[^@\s]+)@")
_KV_PASSWORD = re.compile(
    r"(?P<head>\b(?:password|passwd|pwd|token|secret|api[_-]?key)\s*[=:]\s*)(?P<secret>'[^']*'|\"[^\"]*\"|[^\s,;&]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<head>\b(?:Bearer|Basic|Token)\s+)(?P<secret>[A-Za-z0-9._~+/=-]{4,})")
_SECRET_ENV_NAME = re.compile(r"(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_KEY|CREDENTIAL|AUTH)", re.I)
MASK = "***"


def secret_values(env: Mapping[str, str] | None = None) -> list[str]:
    """Values of environment variables whose names say they are secrets."""
    env = os.environ if env is None else env
    values = {v for k, v in env.items() if _SECRET_ENV_NAME.search(k) and len(v) >= 4}
    return sorted(values, key=len, reverse=True)


def mask_secrets(text: str, env: Mapping[str, str] | None = None) -> str:
    """``text`` with DSN/URL passwords, bearer tokens and secret env values replaced by ***."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{MASK}@", text)
    text = _KV_PASSWORD.sub(lambda m: f"{m['head']}{MASK}", text)
    text = _BEARER.sub(lambda m: f"{m['head']}{MASK}", text)
    for value in secret_values(env):
        text = text.replace(value, MASK)
    return text


def mask_value(value: Any, env: Mapping[str, str] | None = None) -> Any:
    """Mask secrets in every string inside a JSON-like value."""
    if isinstance(value, str):
        return mask_secrets(value, env)
    if isinstance(value, list):
        return [mask_value(v, env) for v in value]
    if isinstance(value, dict):
        return {k: mask_value(v, env) for k, v in value.items()}
    return value
