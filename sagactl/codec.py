"""The one JSON encoder: compact for the wire and the saga log, indented for people.
UTF-8 as is (no \\u escapes), keys in the order they were built. A leaf module.

``storable`` decides what the saga log can hold, the same on SQLite and PostgreSQL: a value
one store accepts and the other rejects would make a saga that runs on one wedge on the other.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 100  # nesting levels; real payloads use a handful, Python's encoder gives up near 1000
MAX_TEXT = 16 * 1024 * 1024  # characters of text in one value: the saga log is not a blob store
MAX_DIGITS = 4300  # Python's own limit for turning an int into text (sys.int_info.str_digits_check_threshold)
_INT_LIMIT = 10**MAX_DIGITS


def compact_json(value: Any, *, ascii_only: bool = False) -> str:
    """``value`` as compact JSON: what participants, queues and the saga log receive.
    ``ascii_only``: non-ASCII characters as \\u escapes (JSON inside a placeholder's string)."""
    return json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":"))


def to_json(value: Any, *, indent: int | None = 2) -> str:
    """``value`` as JSON for output; anything not JSON-native is written as its str()."""
    if indent is None:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "a NUL character (\\u0000), which PostgreSQL cannot store,"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"text that is not valid Unicode (a lone surrogate U+{ord(text[exc.start]):04X})"
    return None


def _where(path: tuple[Any, ...]) -> str:
    """``path`` (a linked list of (parent, key) pairs) as ``root.key[0].key``, long ones cut."""
    parts: list[str] = []
    node: tuple[Any, ...] | None = path
    while node is not None:
        node, key = node
        parts.append(str(key) if node is None else f"[{key}]" if isinstance(key, int) else f".{key}")
    parts.reverse()
    return "".join(parts) if len(parts) <= 8 else "".join(parts[:6]) + "…" + parts[-1]


def _scalar_problem(item: Any) -> str | None:
    if isinstance(item, str):
        return _text_problem(item)
    if item is None or isinstance(item, bool):
        return None
    if isinstance(item, int):
        return f"a number with more than {MAX_DIGITS} digits" if abs(item) >= _INT_LIMIT else None
    if isinstance(item, float):
        if math.isfinite(item):
            return None
        name = "NaN" if math.isnan(item) else "Infinity" if item > 0 else "-Infinity"
        return f"{name}, which JSON cannot hold,"
    return f"a value of type {type(item).__name__}, which JSON cannot hold,"


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _plain(value: Any, depth: int) -> int:
    """The characters of text in ``value`` when everything in it is plainly storable, else -1
    (then ``storable`` looks closer). The fast path: recursion bounded by MAX_DEPTH."""
    kind = type(value)
    if kind is str:
        return len(value) if "\x00" not in value and (value.isascii() or _utf8(value)) else -1
    if kind is dict:
        if depth >= MAX_DEPTH:
            return -1
        total = 0
        for key, child in value.items():
            if type(key) is not str or "\x00" in key or not (key.isascii() or _utf8(key)):
                return -1
            size = _plain(child, depth + 1)
            if size < 0:
                return -1
            total += len(key) + size
        return total
    if kind is list:
        if depth >= MAX_DEPTH:
            return -1
        total = 0
        for child in value:
            size = _plain(child, depth + 1)
            if size < 0:
                return -1
            total += size
        return total
    if kind is int:
        return 0 if -_INT_LIMIT < value < _INT_LIMIT else -1
    if kind is float:
        return 0 if math.isfinite(value) else -1
    return 0 if value is None or kind is bool else -1


def storable(value: Any, root: str = "value") -> str | None:
    """None when the saga log can hold ``value`` (as JSON, on SQLite and PostgreSQL alike), else
    what is wrong and where, e.g. ``NaN, which JSON cannot hold, at result.total``.

    Refused: NaN and infinities, a NUL character or a lone surrogate in any string or key,
    integers of more than MAX_DIGITS digits, nesting deeper than MAX_DEPTH levels, more than
    MAX_TEXT characters of text, anything that is not a JSON type. No depth can make the check
    itself fail: its fast path stops at MAX_DEPTH, the walk that finds what and where is flat.
    """
    if 0 <= _plain(value, 0) <= MAX_TEXT:
        return None
    text = 0
    pending: list[tuple[Any, tuple[Any, ...], int]] = [(value, (None, root), 0)]
    while pending:
        item, path, depth = pending.pop()
        if isinstance(item, list | tuple | dict):
            if depth >= MAX_DEPTH:
                return f"nesting deeper than {MAX_DEPTH} levels at {_where(path)}"
            if not isinstance(item, dict):
                pending.extend((child, (path, index), depth + 1) for index, child in enumerate(item))
                continue
            for key, child in item.items():
                if isinstance(key, str):
                    problem = _text_problem(key)
                    text += len(key)
                elif key is None or isinstance(key, int | float):
                    problem = None  # JSON writes these keys as strings
                else:
                    return f"a key of type {type(key).__name__}, which JSON cannot hold, at {_where(path)}"
                if problem:
                    return f"{problem} in a key at {_where(path)}"
                pending.append((child, (path, key), depth + 1))
            continue
        problem = _scalar_problem(item)
        if problem:
            return f"{problem} at {_where(path)}"
        if isinstance(item, str):
            text += len(item)
        if text > MAX_TEXT:
            return f"more than {MAX_TEXT // (1024 * 1024)} MiB of text in {root}"
    return None


def unreadable(exc: BaseException) -> str | None:
    """Why well-formed JSON text could not be read (Python's parser gives up on nesting deeper
    than about 1000 levels and on integers of more than MAX_DIGITS digits), or None when
    ``exc`` is not one of those."""
    if isinstance(exc, RecursionError):
        return f"nesting deeper than {MAX_DEPTH} levels"
    if isinstance(exc, ValueError) and "integer string conversion" in str(exc):
        return f"a number with more than {MAX_DIGITS} digits"
    return None


def escaped(text: str) -> str:
    """Foreign text (a saga ID, a state another writer stored) for a one-line message: control,
    invisible and unencodable characters written as escapes, everything else as it is."""
    if text.isprintable() and text.isascii():
        return text
    return "".join(
        c if c.isprintable() and _utf8(c) else c.encode("unicode_escape", "backslashreplace").decode("ascii")
        for c in text
    )


def storable_text(text: str) -> str:
    """``text`` (an error message from a participant) as the saga log can hold it on every store:
    NUL characters and lone surrogates written as visible escapes."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with the JSON merge ``patch`` applied (RFC 7386): an object patch sets its
    members, a null member removes one, objects merge recursively; any other patch replaces the
    target whole. Neither argument is changed. (Eight lines of the RFC's own pseudocode: not
    worth a dependency.)"""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for name, value in patch.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = merge_patch(merged.get(name), value)
    return merged
