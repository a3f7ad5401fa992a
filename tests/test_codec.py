"""codec.storable: what the saga log can hold, the same rule for SQLite and PostgreSQL, and why
each refusal is there (PostgreSQL or Python would fail on it later, mid-saga)."""

from __future__ import annotations

import json
import time
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from sagactl.codec import MAX_DEPTH, compact_json, merge_patch, storable, storable_text, unreadable


def timed(fn: Any, value: Any) -> float:
    """CPU seconds of this thread for ``fn(value)``: wall time on a loaded machine measures the
    neighbours (this comparison failed at a load average of 35 with wall time)."""
    started = time.thread_time()
    fn(value)
    return time.thread_time() - started


def short(value: Any) -> str:
    """A test ID for any value (pytest's own would print a 4300-digit int, which Python refuses)."""
    return type(value).__name__ if not isinstance(value, str) else value[:30]


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -(10**4299),  # 4300 digits: Python still writes it
        1.5e308,
        "",
        "é ✓ \u2028 \x01 tab\t",
        {"": [], "a": {"b": [1, 2.5, None, False]}},
        {1: "int keys are written as strings", None: "so is null"},
        nested(MAX_DEPTH),  # MAX_DEPTH containers in all
        "x" * 1_000_000,
    ],
    ids=short,
)
def test_storable_values(value: Any) -> None:
    assert storable(value) is None


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("a\x00", "a NUL character (\\u0000), which PostgreSQL cannot store, at value"),
        ({"a\x00": 1}, "a NUL character (\\u0000), which PostgreSQL cannot store, in a key at value"),
        ([float("nan")], "NaN, which JSON cannot hold, at value[0]"),
        ({"x": [1, {"y": float("-inf")}]}, "-Infinity, which JSON cannot hold, at value.x[1].y"),
        ("\ud800", "text that is not valid Unicode (a lone surrogate U+D800) at value"),
        (10**4300, "a number with more than 4300 digits at value"),
        (nested(MAX_DEPTH + 1), f"nesting deeper than {MAX_DEPTH} levels at value.k.k.k.k.k….k"),
        ({(1, 2): 3}, "a key of type tuple, which JSON cannot hold, at value"),
        ({"when": object()}, "a value of type object, which JSON cannot hold, at value.when"),
        (["x" * (9 * 1024 * 1024)] * 2, "more than 16 MiB of text in value"),
    ],
    ids=short,
)
def test_unstorable_values_name_the_problem_and_where(value: Any, problem: str) -> None:
    assert storable(value) == problem


@pytest.mark.slow
def test_storable_costs_about_one_encoding_and_no_depth_breaks_it() -> None:
    deep: Any = []
    for _ in range(200_000):
        deep = [deep]
    assert storable(deep) == f"nesting deeper than {MAX_DEPTH} levels at value[0][0][0][0][0]…[0]"
    result = {"items": [{"sku": f"S-{i}", "qty": i, "price": 1.25, "tags": ["a", "b"]} for i in range(20_000)]}
    runs = [(timed(storable, result), timed(compact_json, result)) for _ in range(3)]  # in turn
    checked, encoded = min(r[0] for r in runs), min(r[1] for r in runs)
    assert checked < 3 * encoded  # 1.2 MB of JSON: 39 ms checked, 37 ms encoded here


@pytest.mark.parametrize(
    "value",
    [{"a": "x\x00y"}, {"a": float("nan")}, {"a": float("inf")}],
    ids=["nul", "nan", "inf"],
)
def test_what_storable_refuses_postgresql_refuses(pg_dsn: str, value: Any) -> None:
    """The rule is not invented: each of these would fail the jsonb write mid-saga."""
    assert storable(value) is not None
    with psycopg.connect(pg_dsn, autocommit=True) as conn, pytest.raises(psycopg.DataError):
        conn.execute("SELECT %s::jsonb", [Jsonb(value, dumps=compact_json)])


def test_what_storable_refuses_python_cannot_write() -> None:
    with pytest.raises(UnicodeEncodeError):
        compact_json({"a": "\udc80"}).encode("utf-8")
    with pytest.raises(ValueError, match="4300 digits"):
        compact_json(10**4300)
    with pytest.raises(RecursionError):
        compact_json(nested(5000))


def test_storable_text_keeps_error_messages_storable() -> None:
    assert storable_text("bad\x00byte \udcff ok é") == "bad\\u0000byte \\udcff ok é"
    assert storable(storable_text("bad\x00byte \udcff")) is None
    assert storable_text("plain") == "plain"


def test_unreadable_names_what_python_could_not_parse() -> None:
    for text, expected in (
        ("[" * 100_000 + "]" * 100_000, f"nesting deeper than {MAX_DEPTH} levels"),
        ("9" * 4301, "a number with more than 4300 digits"),
    ):
        with pytest.raises((RecursionError, ValueError)) as caught:
            json.loads(text)
        assert unreadable(caught.value) == expected
    assert unreadable(ValueError("something else")) is None
    assert unreadable(json.JSONDecodeError("Expecting value", "x", 0)) is None


# RFC 7386 appendix A: (target, patch, result)
MERGE_PATCH_CASES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), MERGE_PATCH_CASES)
def test_merge_patch_follows_rfc_7386(target: Any, patch: Any, result: Any) -> None:
    before = json.dumps(target)
    assert merge_patch(target, patch) == result
    assert json.dumps(target) == before  # the target is not changed
