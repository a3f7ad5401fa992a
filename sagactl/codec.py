"""The one JSON encoder: compact for the wire and the saga log, indented for people.
UTF-8 as is (no \\u escapes), keys in the order they were built. A leaf module."""

from __future__ import annotations

import json
from typing import Any


def compact_json(value: Any, *, ascii_only: bool = False) -> str:
    """``value`` as compact JSON: what participants, queues and the saga log receive.
    ``ascii_only``: non-ASCII characters as \\u escapes (JSON inside a placeholder's string)."""
    return json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":"))


def to_json(value: Any, *, indent: int | None = 2) -> str:
    """``value`` as JSON for output; anything not JSON-native is written as its str()."""
    if indent is None:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)
