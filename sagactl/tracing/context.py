"""W3C trace context as text (https://www.w3.org/TR/trace-context/): a ``traceparent`` checked,
and the environment carrier (TRACEPARENT, TRACESTATE: the OpenTelemetry convention for
passing context to a process). Nothing of OpenTelemetry is imported here."""

from __future__ import annotations

import re
from collections.abc import Mapping

from sagactl.errors import UsageError

# version-trace_id-parent_id-flags; a later version may append fields after a dash
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[^\s]*)?")
ENV_NAMES = {"traceparent": "TRACEPARENT", "tracestate": "TRACESTATE"}


def valid_traceparent(value: str) -> bool:
    """Whether ``value`` is a traceparent a receiver must accept: known shape, version not
    ff, version 00 with nothing after the flags, trace and parent IDs not all zeros."""
    found = _TRACEPARENT.fullmatch(value.strip())
    if found is None:
        return False
    version, trace_id, parent_id, _, rest = found.groups()
    if version == "ff" or (version == "00" and rest):
        return False
    return trace_id != "0" * 32 and parent_id != "0" * 16


def check_traceparent(value: str, option: str = "--traceparent") -> str:
    """``value`` if it is a valid traceparent, else UsageError (exit 2) saying the shape."""
    if not valid_traceparent(value):
        raise UsageError(
            f"{option} '{value[:80]}' is not a W3C traceparent",
            hint="pass 00-<32 hex trace ID>-<16 hex span ID>-<2 hex flags>, e.g."
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
    return value.strip()


def env_carrier(env: Mapping[str, str]) -> dict[str, str]:
    """The trace context a caller passed in the environment, as W3C header names."""
    return {header: env[name] for header, name in ENV_NAMES.items() if env.get(name)}
