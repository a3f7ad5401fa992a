"""Settings resolution (flag > env > sagactl.yaml > default) and contexts.

Flags and their environment variables are resolved by the CLI (Typer ``envvar=``); this
module adds the config file and the defaults.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from sagactl.errors import UsageError

DEFAULT_DSN = "sqlite:///.sagactl/saga_log.db"
CONFIG_NAMES = ("sagactl.yaml", "sagactl.yml")


@dataclass(frozen=True)  # no slots: created on every command's start, half the cost
class Flags:
    """The store and AWS options a command was given (None: not given; the environment, then
    sagactl.yaml, then the defaults decide). The command line's options and doctor's request
    both are these."""

    dsn: str | None = None
    config: str | None = None
    context: str | None = None
    preset: str | None = None
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None

    def given(self) -> dict[str, str | None]:
        """The flags by name, as Flags (and what extends it) and resolve_settings take them."""
        return {name: getattr(self, name) for name in FLAG_NAMES}

    def settings(self, env: Mapping[str, str] | None = None) -> Settings:
        """The resolved settings: flag > env > sagactl.yaml > default."""
        return resolve_settings(**self.given(), env=env)


FLAG_NAMES = tuple(f.name for f in fields(Flags))


# The frameworks whose tables sagactl reads with ``preset:`` / ``--preset`` (their mappings:
# sagactl/store/presets/).
PRESET_NAMES = ("dbos", "eventuate")


@dataclass(frozen=True, slots=True)
class TableMapping:
    """A read-only view of another orchestrator's saga table: ``store.table`` in config (with
    ``columns``, ``states``...), or a ``preset`` that fills those keys (any key written beside
    it overrides the preset's). Values are kept as written (a column may be a mapping with
    ``column``, ``unit``, ``path``; a state a list of values or boolean conditions):
    sagactl/store/mapping.py reads and checks them when the table is opened."""

    table: str | None = None
    columns: dict[str, Any] = field(default_factory=dict)
    states: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None
    state_case: str | None = None
    stuck_states: list[Any] | None = None

    def describe(self) -> str:
        """The table for a message: ``legacy.sagas``, ``x.workflow_status (preset dbos)``, or
        ``(preset dbos)`` when the preset names the table (per dialect: known once opened)."""
        if self.preset is None:
            return str(self.table)
        return f"{self.table} (preset {self.preset})" if self.table else f"(preset {self.preset})"


@dataclass(frozen=True, slots=True)
class AwsSettings:
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    dlqs: tuple[str, ...] = ()  # aws.dlqs: the dead-letter queues a worker's /metrics watches


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a command needs to reach its dependencies."""

    dsn: str = DEFAULT_DSN
    mapping: TableMapping | None = None
    aws: AwsSettings = AwsSettings()
    config_path: Path | None = None
    context: str | None = None
    tracing: Mapping[str, Any] | None = None  # sagactl.yaml's tracing: block (sagactl.tracing.settings reads it)


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
    except (OSError, UnicodeError, yaml.YAMLError) as exc:  # UnicodeError: a file not in UTF-8
        raise UsageError(f"{path}: cannot read config: {' '.join(str(exc).split())}") from exc
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UsageError(f"{path}: config must be a mapping with store:, aws: or contexts:")
    return loaded


# The keys sagactl.yaml may hold, per section. Anything else is a typo that would otherwise
# fall back to a default without a word: an error naming the key, the file and these.
TOP_KEYS = ("store", "aws", "tracing", "contexts", "current_context")
STORE_KEYS = ("dsn", "table", "preset", "columns", "states", "state_case", "stuck_states")
AWS_KEYS = ("region", "profile", "endpoint_url", "dlqs")
CONTEXT_KEYS = ("store", "aws", "tracing")
TRACING_KEYS = (
    "exporter",
    "endpoint",
    "protocol",
    "headers",
    "service_name",
    "resource_attributes",
    "sampler",
    "sampler_arg",
)
_STRINGS = {"dsn", "table", "preset", "state_case", "region", "profile", "endpoint_url"}
_LISTS = {"dlqs"}
_MAPPINGS = {"columns", "states"}
_TABLE_KEYS = ("table", "preset", "columns", "states", "state_case", "stuck_states")


def _section(doc: Mapping[str, Any], key: str, where: str, path: Path) -> dict[str, Any]:
    """``doc[key]`` as a mapping (empty when absent or null)."""
    value = doc.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UsageError(f"{path}: '{where}{key}' must be a mapping, not {type(value).__name__}")
    return value


def _check_keys(section: Mapping[str, Any], allowed: tuple[str, ...], where: str, path: Path) -> None:
    """UsageError naming the first key of ``section`` not in ``allowed``; string settings checked."""
    import difflib

    for key, value in section.items():
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            guess = f"did you mean '{close[0]}'? " if close else ""
            place = f"in {where.rstrip('.')}" if where else "at the top level"
            raise UsageError(
                f"{path}: unknown key '{key}' {place}",
                hint=f"{guess}allowed there: {', '.join(allowed)}",
            )
        if key in _STRINGS and not (isinstance(value, str) and value.strip()):
            what = "empty" if value is None or isinstance(value, str) else f"a {type(value).__name__}"
            raise UsageError(f"{path}: '{where}{key}' is {what}", hint="give it a text value, or remove the key")
        if key in _LISTS and not (
            isinstance(value, list) and all(isinstance(item, str) and item.strip() for item in value)
        ):
            raise UsageError(
                f"{path}: '{where}{key}' must be a list of queue names, URLs or ARNs",
                hint="e.g. dlqs: [payment-dlq, shipping-dlq]",
            )
        if key in _MAPPINGS and value is not None and not isinstance(value, dict):
            raise UsageError(f"{path}: '{where}{key}' must be a mapping, not {type(value).__name__}")
        if key == "preset":
            _check_preset(value, f"{path}: '{where}{key}'")


def _check_preset(name: str, where: str) -> None:
    """UsageError unless ``name`` is a preset sagactl knows."""
    if name not in PRESET_NAMES:
        import difflib

        close = difflib.get_close_matches(name, PRESET_NAMES, n=1)
        guess = f"did you mean '{close[0]}'? " if close else ""
        raise UsageError(f"{where}: unknown preset '{name}'", hint=f"{guess}known presets: {', '.join(PRESET_NAMES)}")


def _mapping(store: Mapping[str, Any], preset: str | None, path: Path | None) -> TableMapping | None:
    """The foreign table ``store:`` (or ``--preset``) describes, or None for a sagactl log.
    ``--preset`` (``preset`` here) reads the framework's tables as the preset maps them: the
    table keys of the config file apply only to the preset written there."""
    if preset is not None and preset != store.get("preset"):
        _check_preset(preset, "--preset")
        return TableMapping(preset=preset)
    if not (store.get("table") or store.get("preset")):
        if store.get("columns") or store.get("states") or store.get("state_case") or store.get("stuck_states"):
            raise UsageError(
                f"{path}: store.columns and store.states describe a mapped table: they need store.table"
                " or store.preset"
            )
        return None
    stuck = store.get("stuck_states")
    return TableMapping(
        table=str(store["table"]) if store.get("table") else None,
        columns={str(k): v for k, v in (store.get("columns") or {}).items()},
        states={str(k): v for k, v in (store.get("states") or {}).items()},
        preset=store.get("preset"),
        state_case=store.get("state_case"),
        stuck_states=None if stuck is None else list(stuck) if isinstance(stuck, list) else [stuck],
    )


def _given(flag: str | None, name: str, variable: str, env: Mapping[str, str]) -> str | None:
    """A store-locating setting from its flag or environment variable; an empty or blank one is
    an error, never "not set" (a runbook's unset variable must not switch to the default log)."""
    if flag is not None and not flag.strip():
        raise UsageError(f"{name} is empty", hint=f"give it a value, or leave out {name} and {variable}")
    if flag is None and variable in env and not env[variable].strip():
        raise UsageError(f"{variable} is set but empty", hint=f"give it a value, or unset {variable}")
    return flag


def _load_config(path: Path) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The file's top level, store:, aws: and contexts:, every key checked."""
    doc = _load_yaml(path)
    _check_keys(doc, TOP_KEYS, "", path)
    store, aws = _section(doc, "store", "", path), _section(doc, "aws", "", path)
    contexts = _section(doc, "contexts", "", path)
    _check_keys(store, STORE_KEYS, "store.", path)
    _check_keys(aws, AWS_KEYS, "aws.", path)
    _check_keys(_section(doc, "tracing", "", path), TRACING_KEYS, "tracing.", path)
    for name, ctx in contexts.items():
        if ctx is None:
            continue  # a context that only names itself: the top-level settings
        if not isinstance(ctx, dict):
            raise UsageError(f"{path}: 'contexts.{name}' must be a mapping, not {type(ctx).__name__}")
        _check_keys(ctx, CONTEXT_KEYS, f"contexts.{name}.", path)
        _check_keys(_section(ctx, "store", f"contexts.{name}.", path), STORE_KEYS, f"contexts.{name}.store.", path)
        _check_keys(_section(ctx, "aws", f"contexts.{name}.", path), AWS_KEYS, f"contexts.{name}.aws.", path)
        _check_keys(
            _section(ctx, "tracing", f"contexts.{name}.", path), TRACING_KEYS, f"contexts.{name}.tracing.", path
        )
    current = doc.get("current_context")
    if current is not None and (not isinstance(current, str) or not current.strip()):
        raise UsageError(f"{path}: 'current_context' must name a context", hint="remove it to use no context")
    return doc, store, aws, contexts


def resolve_settings(
    *,
    dsn: str | None = None,
    config: str | None = None,
    context: str | None = None,
    preset: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    endpoint_url: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Flags over the environment over the config file (and its context) over defaults.

    AWS: region from AWS_REGION / AWS_DEFAULT_REGION, profile from AWS_PROFILE, the SQS endpoint
    from AWS_ENDPOINT_URL_SQS / AWS_ENDPOINT_URL, then ``aws:`` in the file; what is still
    unset is left to boto3's own chain (the profile's region, AWS's endpoint).

    Nothing mistyped falls back silently: an unknown key anywhere in the file, an unknown
    context, or an empty --dsn / --config / --context (or SAGACTL_DSN, SAGACTL_CONFIG,
    SAGACTL_CONTEXT set but empty) is UsageError.
    """
    env = os.environ if env is None else env
    dsn = _given(dsn, "--dsn", "SAGACTL_DSN", env)
    config = _given(config, "--config", "SAGACTL_CONFIG", env)
    context = _given(context, "--context", "SAGACTL_CONTEXT", env)
    # read here, not only by the options that take it: a command without --preset (one that
    # writes) must see SAGACTL_PRESET too, and refuse the foreign table it names
    preset = _given(preset, "--preset", "SAGACTL_PRESET", env) or env.get("SAGACTL_PRESET") or None
    path = find_config(config, env)
    doc: dict[str, Any] = {}
    store: dict[str, Any] = {}
    aws: dict[str, Any] = {}
    contexts: dict[str, Any] = {}
    tracing: dict[str, Any] = {}
    if path:
        doc, top_store, top_aws, contexts = _load_config(path)
        store, aws, tracing = dict(top_store), dict(top_aws), dict(doc.get("tracing") or {})
    chosen = context or doc.get("current_context")
    if chosen:
        if chosen not in contexts:
            if path is None:
                raise UsageError(
                    f"context '{chosen}' not found: there is no config file to define it"
                    " (looked for ./sagactl.yaml and ~/.config/sagactl/config.yaml)",
                    hint="pass --config FILE, or unset --context / SAGACTL_CONTEXT",
                )
            known = ", ".join(sorted(contexts)) or "none defined"
            raise UsageError(f"context '{chosen}' not found in {path} (known: {known})")
        ctx = contexts[chosen] or {}
        ctx_store = ctx.get("store") or {}
        if any(key in ctx_store for key in _TABLE_KEYS):  # a context's table is described whole there
            store = {k: v for k, v in store.items() if k not in _TABLE_KEYS}
        store.update(ctx_store)
        aws.update(ctx.get("aws") or {})
        tracing.update(ctx.get("tracing") or {})
    return Settings(
        dsn=dsn or store.get("dsn") or DEFAULT_DSN,
        mapping=_mapping(store, preset, path),
        aws=AwsSettings(
            region=region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or aws.get("region"),
            profile=profile or env.get("AWS_PROFILE") or aws.get("profile"),
            endpoint_url=endpoint_url
            or env.get("AWS_ENDPOINT_URL_SQS")
            or env.get("AWS_ENDPOINT_URL")
            or aws.get("endpoint_url"),
            dlqs=tuple(str(q).strip() for q in aws.get("dlqs") or ()),
        ),
        config_path=path,
        context=chosen,
        tracing=tracing or None,
    )
