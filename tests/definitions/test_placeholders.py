"""Placeholder resolution: typing, stringification, env defaults, escapes, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagactl.definitions.placeholders import Context, MissingValueError, PlaceholderError, parse, references, resolve

CTX = Context(
    saga_id="s-1",
    input={"order_id": "o-9", "items": [{"sku": "A", "qty": 2}], "amount": 12.5, "n": None},
    results={"charge": {"payment_id": "p-1", "lines": [10, 20]}},
    env={"API": "http://127.0.0.1:8080", "EMPTY": ""},
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("${input.items}", [{"sku": "A", "qty": 2}]),
        ("${input.amount}", 12.5),
        ("${input.n}", None),
        ("${input}", CTX.input),
        ("${saga_id}", "s-1"),
        ("${steps.charge.result}", {"payment_id": "p-1", "lines": [10, 20]}),
        ("${steps.charge.result.lines.1}", 20),
        ("${steps.charge.result.lines[0]}", 10),
        ("${steps.charge.result.missing}", None),
        ("${steps.other.result.x}", None),
        ("${input.items.0.sku}", "A"),
        ("${env.API}", "http://127.0.0.1:8080"),
        ("${env.NOPE:-fallback}", "fallback"),
        ("${env.NOPE:-}", ""),
        ("${env.EMPTY:-x}", ""),
        ("order ${input.order_id} of ${input.amount}", "order o-9 of 12.5"),
        ("items=${input.items}", 'items=[{"sku":"A","qty":2}]'),
        ("null=${input.n}", "null=null"),
        ("${env.API}/orders/${input.order_id}", "http://127.0.0.1:8080/orders/o-9"),
        ("literal $${input.order_id}", "literal ${input.order_id}"),
        ("no placeholders", "no placeholders"),
        (42, 42),
    ],
)
def test_resolve(value: Any, expected: Any) -> None:
    assert resolve(value, CTX) == expected


def test_resolve_walks_structures() -> None:
    body = {"id": "${input.order_id}", "lines": ["${input.items}", "x-${saga_id}"], "n": 1}
    assert resolve(body, CTX) == {"id": "o-9", "lines": [[{"sku": "A", "qty": 2}], "x-s-1"], "n": 1}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("${input.customer}", "input has no 'customer'"),
        ("${input.items.5}", "input has no 'items.5'"),
        ("${env.NOT_SET_ANYWHERE}", "environment variable NOT_SET_ANYWHERE is not set"),
    ],
)
def test_missing_values_raise(value: str, message: str) -> None:
    with pytest.raises(MissingValueError, match=message):
        resolve(value, CTX)


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("inputs.x", "unknown root 'inputs'"),
        ("steps.a", "use ${steps.STEP_NAME.result}"),
        ("steps.a.results.x", "use ${steps.STEP_NAME.result}"),
        ("env.", "env needs a variable name"),
        ("env.1BAD", "env needs a variable name"),
        ("input..x", "empty path segment"),
        ("", "unknown root ''"),
    ],
)
def test_parse_rejects(expr: str, message: str) -> None:
    with pytest.raises(PlaceholderError, match=message.replace("$", r"\$").replace("{", r"\{")):
        parse(expr)


def test_references_report_location_and_offset() -> None:
    found = list(references({"a": ["x ${input.a}", {"b": "${steps.s.result}"}]}))
    assert found == [(("a", 0), "input.a", 2), (("a", 1, "b"), "steps.s.result", 0)]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text("abc", min_size=1, max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)


@given(json_values)
def test_whole_placeholder_keeps_any_json_type(value: Any) -> None:
    ctx = Context(saga_id="s", input={"v": value})
    assert resolve("${input.v}", ctx) == value


@given(json_values)
def test_embedded_placeholder_is_stringified(value: Any) -> None:
    ctx = Context(saga_id="s", input={"v": value})
    expected = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    assert resolve("<${input.v}>", ctx) == f"<{expected}>"


@given(st.text(alphabet=st.characters(blacklist_characters="$"), max_size=30))
def test_text_without_placeholders_is_unchanged(text: str) -> None:
    assert resolve(text, CTX) == text


@given(st.text(alphabet="a${}.", max_size=12))
def test_substituted_values_are_never_reinterpreted(value: str) -> None:
    ctx = Context(saga_id="s", input={"v": value})
    assert resolve("[${input.v}]", ctx) == f"[{value}]"
    assert resolve("$${input.v}", ctx) == "${input.v}"
