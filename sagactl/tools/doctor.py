"""`sagactl doctor`: what sagactl resolved and whether it works, as a list of checks.

Each check has a name (``config``, ``store``, ``schema``, ``writable``, ``aws region``,
``credentials``, ``sqs``, ``definition FILE``, ``endpoint NAME``, ``in flight TYPE``), a status
and one line of detail with its secrets masked. The exit code: 0 when nothing failed (warnings
and skipped checks included), 2 when a definition file (or the config) is invalid, else 4.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from sagactl.errors import ExitCode
from sagactl.masking import mask_secrets


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"  # works, but look: e.g. sagas running on an older definition
    FAIL = "fail"  # does not work: exit 4 (a dependency) or 2 (a definition, the config)
    SKIP = "skip"  # not checked, and why


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    detail: str
    usage: bool = False  # a failure of the user's input (definition, config): exit 2, not 4

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.name, "status": self.status.value, "detail": self.detail}


@dataclass(slots=True)
class Checks:
    """The checks in the order they ran."""

    items: list[Check] = field(default_factory=list)

    def add(self, name: str, status: Status, detail: str, *, usage: bool = False) -> Check:
        check = Check(name, status, mask_secrets(detail), usage)
        self.items.append(check)
        return check

    @property
    def exit_code(self) -> ExitCode:
        failed = [c for c in self.items if c.status is Status.FAIL]
        if any(c.usage for c in failed):
            return ExitCode.USAGE
        return ExitCode.UNAVAILABLE if failed else ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.exit_code is ExitCode.OK,
            "exit_code": int(self.exit_code),
            "checks": [c.to_dict() for c in self.items],
        }


def _plain(value: Any) -> Any:
    """``value`` as JSON would give it back (YAML may hold tuples, dates are refused earlier)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _steps(doc: Mapping[str, Any]) -> dict[str, Any]:
    steps = doc.get("steps")
    return {str(s.get("name")): s for s in steps if isinstance(s, dict)} if isinstance(steps, list) else {}


def definition_changes(stored: Mapping[str, Any], given: Mapping[str, Any]) -> list[str]:
    """What differs between a saga's stored definition document and the file's, in a few words
    each: steps added, removed, reordered or changed (and which of their keys), and the other
    top-level keys that changed. Empty when they are the same."""
    old, new = _plain(stored), _plain(given)
    if old == new:
        return []
    changes: list[str] = []
    old_steps, new_steps = _steps(old), _steps(new)
    added = [n for n in new_steps if n not in old_steps]
    removed = [n for n in old_steps if n not in new_steps]
    if added:
        changes.append(f"steps added: {', '.join(added)}")
    if removed:
        changes.append(f"steps removed: {', '.join(removed)}")
    common_old = [n for n in old_steps if n in new_steps]
    common_new = [n for n in new_steps if n in old_steps]
    if common_old != common_new:
        changes.append("steps reordered")
    for name in common_new:
        keys = sorted(
            key
            for key in set(old_steps[name]) | set(new_steps[name])
            if old_steps[name].get(key) != new_steps[name].get(key)
        )
        if keys:
            changes.append(f"step {name}: {', '.join(keys)} changed")
    for key in sorted((set(old) | set(new)) - {"steps"}):
        if old.get(key) != new.get(key):
            changes.append(f"{key} changed")
    return changes or ["changed"]
