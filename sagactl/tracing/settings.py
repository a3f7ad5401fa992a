"""What turns tracing on, and where spans go: the standard OpenTelemetry environment over
sagactl.yaml's ``tracing:`` block (flag > env > file > default, as every setting). Reads text
only: nothing of OpenTelemetry is imported here.

On when any of these is set (and neither OTEL_SDK_DISABLED=true nor an exporter ``none``):
OTEL_TRACES_EXPORTER (otlp, console), OTEL_EXPORTER_OTLP_ENDPOINT,
OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, or in the file ``tracing.exporter`` / ``tracing.endpoint``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sagactl.errors import UsageError

log = logging.getLogger("sagactl.tracing")

EXPORTERS = ("otlp", "console")
PROTOCOLS = ("http/protobuf", "grpc")
SAMPLERS = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
DEFAULT_ENDPOINTS = {"http/protobuf": "http://localhost:4318", "grpc": "http://localhost:4317"}
TRACES_PATH = "/v1/traces"  # OTLP/HTTP: appended to a base endpoint (OTEL_EXPORTER_OTLP_ENDPOINT)


@dataclass(frozen=True, slots=True)
class TracingSettings:
    """Tracing on: where spans go and what they say about this process.

    ``endpoint``: the URL the exporter sends to (OTLP/HTTP: the whole ``…/v1/traces`` URL);
    ``headers``: from the file (the exporter reads OTEL_EXPORTER_OTLP_*HEADERS itself, which
    win); ``sampler``/``sampler_arg``: from the file when OTEL_TRACES_SAMPLER is not set (the
    SDK reads that itself); ``resource``: service.name and the file's resource attributes,
    which OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES override; ``why``: what turned it on.
    """

    exporters: tuple[str, ...]
    protocol: str
    endpoint: str
    why: str
    headers: dict[str, str] = field(default_factory=dict)
    sampler: str | None = None
    sampler_arg: float | None = None
    resource: dict[str, str] = field(default_factory=dict)


def _text(config: Mapping[str, Any], key: str, where: str) -> str | None:
    value = config.get(key)
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool) or not str(value).strip():
        raise UsageError(f"{where}: 'tracing.{key}' must be a text value", hint="give it a value, or remove the key")
    return str(value).strip()


def _strings(config: Mapping[str, Any], key: str, where: str) -> dict[str, str]:
    value = config.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(v, str | int | float) for v in value.values()):
        raise UsageError(f"{where}: 'tracing.{key}' must be a mapping of names to text values")
    return {str(k): str(v) for k, v in value.items()}


def _one_of(value: str, allowed: tuple[str, ...], name: str, where: str, *, file: bool) -> str | None:
    """``value`` lowered if allowed; else UsageError for the file, a warning and None for the
    environment (a wrong variable must not stop a saga)."""
    lowered = value.lower()
    if lowered in allowed:
        return lowered
    if file:
        raise UsageError(f"{where}: 'tracing.{name}' is '{value}'", hint=f"use one of: {', '.join(allowed)}")
    log.warning("%s=%s is not supported (use one of: %s); ignored", name, value, ", ".join(allowed))
    return None


def _exporters(env: Mapping[str, str], config: Mapping[str, Any], where: str) -> tuple[tuple[str, ...], str] | None:
    """The exporters asked for and which setting asked, or None when none is; () for ``none``."""
    given = env.get("OTEL_TRACES_EXPORTER", "").strip()
    source, file = "OTEL_TRACES_EXPORTER", False
    if not given:
        given, source, file = _text(config, "exporter", where) or "", f"tracing.exporter in {where}", True
    if not given:
        return None
    names = [part.strip() for part in given.split(",") if part.strip()]
    if "none" in (n.lower() for n in names):
        return (), source
    name = "exporter" if file else source
    chosen = [c for n in names if (c := _one_of(n, EXPORTERS, name, where, file=file))]
    return tuple(dict.fromkeys(chosen)), source


def resolve(
    config: Mapping[str, Any] | None, env: Mapping[str, str], *, where: str = "sagactl.yaml"
) -> TracingSettings | None:
    """Tracing's settings, or None when tracing is off. UsageError for a wrong ``tracing:``
    block (exit 2, as any config error); a wrong OTEL_* value is warned about and ignored."""
    config = config or {}
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    asked = _exporters(env, config, where)
    traces_endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    base_endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    file_endpoint = _text(config, "endpoint", where)
    if asked is not None and not asked[0]:
        return None  # exporter none
    if asked is None:
        if traces_endpoint:
            why = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
        elif base_endpoint:
            why = "OTEL_EXPORTER_OTLP_ENDPOINT"
        elif file_endpoint:
            why = f"tracing.endpoint in {where}"
        else:
            return None
        asked = (("otlp",), why)
    exporters, why = asked
    protocol = None
    for name in ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"):
        if env.get(name, "").strip():
            protocol = protocol or _one_of(env[name].strip(), PROTOCOLS, name, where, file=False)
    if protocol is None and (given := _text(config, "protocol", where)):
        protocol = _one_of(given, PROTOCOLS, "protocol", where, file=True)
    protocol = protocol or "http/protobuf"
    if traces_endpoint:
        endpoint = traces_endpoint
    else:
        base = (base_endpoint or file_endpoint or DEFAULT_ENDPOINTS[protocol]).rstrip("/")
        endpoint = base + TRACES_PATH if protocol == "http/protobuf" else base
    sampler, sampler_arg = None, None
    if not env.get("OTEL_TRACES_SAMPLER", "").strip() and (given := _text(config, "sampler", where)):
        sampler = _one_of(given, SAMPLERS, "sampler", where, file=True)
        arg = _text(config, "sampler_arg", where)
        try:
            sampler_arg = float(arg) if arg is not None else None
        except ValueError:
            raise UsageError(f"{where}: 'tracing.sampler_arg' must be a number from 0 to 1, not '{arg}'") from None
    resource = _strings(config, "resource_attributes", where)
    resource["service.name"] = _text(config, "service_name", where) or resource.get("service.name") or "sagactl"
    return TracingSettings(
        exporters=exporters,
        protocol=protocol,
        endpoint=endpoint,
        why=why,
        headers=_strings(config, "headers", where),
        sampler=sampler,
        sampler_arg=sampler_arg,
        resource=resource,
    )
