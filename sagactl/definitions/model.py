"""Saga definitions: the frozen model a YAML document (or a stored snapshot) becomes.

``validation`` reads and checks YAML files (FILE:LINE:COL messages) and builds these with
``build``; the engine and the saga log see only this model.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from sagactl.errors import UsageError

_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

DEFAULT_TIMEOUT = 30.0
MAX_DURATION = 30 * 86400.0  # 30d: the longest timeout or backoff a definition may ask for


def parse_duration(text: str) -> float:
    """'500ms' -> 0.5, '1h30m' -> 5400.0. Raises UsageError on anything else."""
    stripped = text.strip()
    pos, total = 0, 0.0
    for match in _DURATION_PART.finditer(stripped):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(stripped) or not stripped:
        raise UsageError(
            f"invalid duration '{text}'",
            hint="use a number with ms, s, m, h or d, e.g. 500ms, 30s, 15m, 1h30m",
        )
    if not math.isfinite(total):
        raise UsageError(f"invalid duration '{text[:40]}': too large")
    return total


def duration_option(value: str, option: str) -> float:
    """``value`` given to ``option`` (``--older-than``, ``--interval``...) in seconds; a value
    that is no duration is the UsageError parse_duration raises, naming the option."""
    try:
        return parse_duration(value)
    except UsageError as exc:
        raise UsageError(f"{option}: {exc.message}", hint=exc.hint) from None


# -- the model ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    initial_backoff: float
    max_backoff: float


DEFAULT_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.5, max_backoff=30.0)
DEFAULT_COMPENSATION_RETRY = RetryPolicy(max_attempts=8, initial_backoff=1.0, max_backoff=300.0)


@dataclass(frozen=True, slots=True)
class Endpoint:
    name: str
    type: str
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class StepDef:
    name: str
    endpoint: str
    timeout: float
    compensation_timeout: float
    retry: RetryPolicy
    compensation_retry: RetryPolicy
    action: dict[str, Any]
    compensation: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class SagaDefinition:
    """One saga. ``raw`` is the document as written (placeholders unresolved, so no
    secrets): it is what saga_log stores as the snapshot, with ``base_dir``."""

    name: str
    description: str | None
    endpoints: dict[str, Endpoint]
    steps: tuple[StepDef, ...]
    raw: dict[str, Any]
    base_dir: str

    def snapshot(self) -> dict[str, Any]:
        """What saga_log.definition holds: the document plus where it came from."""
        return {"document": self.raw, "base_dir": self.base_dir}


# -- building ----------------------------------------------------------------------------


def _retry(raw: dict[str, Any] | None, fallback: RetryPolicy) -> RetryPolicy:
    raw = raw or {}
    return RetryPolicy(
        max_attempts=int(raw.get("max_attempts", fallback.max_attempts)),
        initial_backoff=parse_duration(raw["initial_backoff"])
        if "initial_backoff" in raw
        else fallback.initial_backoff,
        max_backoff=parse_duration(raw["max_backoff"]) if "max_backoff" in raw else fallback.max_backoff,
    )


def build(doc: dict[str, Any], base_dir: str) -> SagaDefinition:
    """A SagaDefinition from a document that passed validation (or a stored snapshot)."""
    defaults = doc.get("defaults") or {}
    timeout = parse_duration(defaults["timeout"]) if "timeout" in defaults else DEFAULT_TIMEOUT
    comp_timeout = (
        parse_duration(defaults["compensation_timeout"]) if "compensation_timeout" in defaults else None
    )
    retry = _retry(defaults.get("retry"), DEFAULT_RETRY)
    comp_retry = _retry(defaults.get("compensation_retry"), DEFAULT_COMPENSATION_RETRY)
    steps = []
    for raw in doc["steps"]:
        step_timeout = parse_duration(raw["timeout"]) if "timeout" in raw else timeout
        steps.append(
            StepDef(
                name=raw["name"],
                endpoint=raw["endpoint"],
                timeout=step_timeout,
                compensation_timeout=(
                    parse_duration(raw["compensation_timeout"])
                    if "compensation_timeout" in raw
                    else comp_timeout or step_timeout
                ),
                retry=_retry(raw.get("retry"), retry),
                compensation_retry=_retry(raw.get("compensation_retry"), comp_retry),
                action=dict(raw.get("action") or {}),
                compensation=dict(raw["compensation"]) if raw.get("compensation") is not None else None,
            )
        )
    endpoints = {
        name: Endpoint(name=name, type=str(ep["type"]), config={k: v for k, v in ep.items() if k != "type"})
        for name, ep in (doc.get("endpoints") or {}).items()
    }
    return SagaDefinition(
        name=str(doc["saga"]),
        description=doc.get("description"),
        endpoints=endpoints,
        steps=tuple(steps),
        raw=doc,
        base_dir=base_dir,
    )


def from_snapshot(snapshot: dict[str, Any]) -> SagaDefinition:
    """The definition a saga started with, as stored in saga_log.definition."""
    return build(snapshot["document"], snapshot.get("base_dir") or ".")


def retry_budget(policy: RetryPolicy, timeout: float) -> float:
    """The longest a call can keep trying, in seconds: every attempt running to its timeout,
    plus every backoff at its ceiling (``initial_backoff * 2**(n-1)`` capped at
    ``max_backoff``; the engine's jitter only shortens them)."""
    backoffs = 0.0
    for retry in range(1, policy.max_attempts):
        backoffs += min(policy.max_backoff, policy.initial_backoff * 2.0 ** (retry - 1))
    return policy.max_attempts * timeout + backoffs


def duration(seconds: float) -> str:
    """12.5 -> '12.5s', 5400 -> '1h30m', 0.2 -> '200ms': short, for labels."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}".rstrip("0").rstrip(".") + "s"
    total, parts = round(seconds), []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            parts.append(f"{total // size}{unit}")
            total %= size
    return "".join(parts[:2])
