"""Failure groups (``list --group-by step,error``): sagas folded by state, type, current step
and a normalised error signature, each group named by a short key that is the same on every
run and every machine (``--group KEY`` selects it again in list and the bulk commands).

The signature masks what differs between sagas that failed for the same reason: UUIDs,
timestamps, long hex strings (hashes, 0x… values) and numbers (``card 4242 declined after
3 retries`` and ``card 17 declined after 5 retries`` are one group). A minus sign and the
words around a value are kept. Linear: no pattern here can backtrack.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from itertools import combinations
from typing import Any

from sagactl.errors import UsageError
from sagactl.models import SagaSummary, iso

MAX_SIGNATURE = 200  # characters of a signature (the example keeps the whole error)
KEY_LENGTH = 8  # hex characters of a group key

_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?)?(?:Z|[+-]\d{2}:?\d{2}(?![\d:]))?"
    r"|\b\d{2}:\d{2}:\d{2}(?:[.,]\d+)?"
)
_HEX_PREFIXED = re.compile(r"\b0[xX][0-9a-fA-F]+")
# a hex token: 8 or more hex digits standing alone, with a digit and a letter among them
_HEX_TOKEN = re.compile(r"(?<![0-9A-Za-z])[0-9a-fA-F]{8,}(?![0-9A-Za-z])")
_NUMBER = re.compile(r"\d+(?:\.\d+)*")
_SPACE = re.compile(r"\s+")


def _hex_token(match: re.Match[str]) -> str:
    text = match.group()
    has_digit = any(c.isdigit() for c in text)
    has_letter = any(not c.isdigit() for c in text)
    return "<hex>" if has_digit and has_letter else text


def signature(error: str | None) -> str:
    """``error`` with its varying parts masked (``<uuid>``, ``<time>``, ``<hex>``, ``<n>``),
    whitespace collapsed, at most MAX_SIGNATURE characters; "" for no error."""
    if not error:
        return ""
    text = _UUID.sub("<uuid>", error)
    text = _TIMESTAMP.sub("<time>", text)
    text = _HEX_PREFIXED.sub("<hex>", text)
    text = _HEX_TOKEN.sub(_hex_token, text)
    text = _NUMBER.sub("<n>", text)
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= MAX_SIGNATURE else text[: MAX_SIGNATURE - 1] + "…"


class GroupBy(StrEnum):
    """What ``--group-by`` folds sagas by."""

    STATE = "state"
    TYPE = "type"
    STEP = "step"
    ERROR = "error"


FIELD_NAMES = {GroupBy.STATE: "state", GroupBy.TYPE: "saga_type", GroupBy.STEP: "step", GroupBy.ERROR: "error"}


def parse_group_by(values: Iterable[str]) -> tuple[GroupBy, ...]:
    """``--group-by step,error`` (commas or repeated), in the canonical order state, type,
    step, error whatever the order given (the key does not depend on it)."""
    wanted: set[GroupBy] = set()
    for value in values:
        for part in value.split(","):
            name = part.strip().lower()
            if not name:
                continue
            try:
                wanted.add(GroupBy(name))
            except ValueError:
                known = ", ".join(g.value for g in GroupBy)
                raise UsageError(f"--group-by: unknown field '{part.strip()[:40]}' (known: {known})") from None
    if not wanted:
        raise UsageError("--group-by needs at least one of state, type, step, error")
    return tuple(g for g in GroupBy if g in wanted)


def fields_of(saga: SagaSummary, by: Sequence[GroupBy]) -> dict[str, str | None]:
    """The group fields of ``saga`` (JSON names: state, saga_type, step, error)."""
    values: dict[GroupBy, str | None] = {
        GroupBy.STATE: saga.state.value,
        GroupBy.TYPE: saga.saga_type,
        GroupBy.STEP: saga.current_step_name,
        GroupBy.ERROR: signature(saga.last_error) or None,
    }
    return {FIELD_NAMES[g]: values[g] for g in by}


def group_key(fields: dict[str, str | None]) -> str:
    """KEY_LENGTH hex characters of a SHA-256 over the field names and values: the same key
    for the same group on every run, and different for a grouping by other fields."""
    text = "\x1f".join(f"{name}={'' if value is None else value}" for name, value in sorted(fields.items()))
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:KEY_LENGTH]


_ALL_GROUPINGS = [by for size in range(1, len(GroupBy) + 1) for by in combinations(tuple(GroupBy), size)]


def keys_of(saga: SagaSummary) -> set[str]:
    """The key of every group ``saga`` falls in, whatever the fields grouped by: how
    ``--group KEY`` finds it without being told which ``--group-by`` listed the key."""
    return {group_key(fields_of(saga, by)) for by in _ALL_GROUPINGS}


def check_key(key: str) -> str:
    """``--group KEY``: the key as ``list --group-by`` prints it (hex, any case)."""
    text = key.strip().lower()
    if len(text) != KEY_LENGTH or any(c not in "0123456789abcdef" for c in text):
        raise UsageError(
            f"--group takes a group key of {KEY_LENGTH} hex characters, got '{key[:40]}'",
            hint="see the GROUP column of 'sagactl list --stuck --group-by step,error'",
        )
    return text


@dataclass(slots=True)
class FailureGroup:
    """Sagas that share the group fields: how many, the least and most recently updated (when
    they stopped, for stuck sagas), one example, and every saga's ID (oldest first)."""

    key: str
    fields: dict[str, str | None]
    count: int = 0
    oldest: datetime | None = None
    newest: datetime | None = None
    example: SagaSummary | None = None
    saga_ids: list[str] = field(default_factory=list)

    def add(self, saga: SagaSummary) -> None:
        self.count += 1
        self.saga_ids.append(saga.saga_id)
        when = saga.updated_at
        if when is not None and (self.oldest is None or when < self.oldest):
            self.oldest = when
            self.example = saga
        if when is not None and (self.newest is None or when > self.newest):
            self.newest = when
        if self.example is None:
            self.example = saga

    def to_dict(self) -> dict[str, Any]:
        example = self.example
        return {
            "key": self.key,
            **self.fields,
            "count": self.count,
            "oldest_updated_at": iso(self.oldest),
            "newest_updated_at": iso(self.newest),
            "example_saga_id": example.saga_id if example else None,
            "example_error": example.last_error if example else None,
            "saga_ids": self.saga_ids,
        }


def fold(sagas: Iterable[SagaSummary], by: Sequence[GroupBy]) -> list[FailureGroup]:
    """``sagas`` folded into groups by ``by``: the largest group first, then the one that
    started failing first; each group's saga IDs in the order given."""
    groups: dict[str, FailureGroup] = {}
    for saga in sagas:
        fields = fields_of(saga, by)
        key = group_key(fields)
        group = groups.get(key)
        if group is None:
            group = groups[key] = FailureGroup(key=key, fields=fields)
        group.add(saga)
    return sorted(groups.values(), key=lambda g: (-g.count, iso(g.oldest) or "", g.key))
