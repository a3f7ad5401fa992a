"""sagactl.definitions.schemacache: a document's digest never crashes on YAML's non-string keys and never
lets two different documents share a "passed the schema" marker."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sagactl.definitions.schemacache import keyed, valid_marker


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


def test_keys_of_any_type_are_digested_apart(cache: Path) -> None:
    docs = [{1: "a"}, {"1": "a"}, {None: "a"}, {"null": "a"}, {True: "a"}, {"true": "a"}, {1.5: "a"}, {"a": 1}]
    markers = [valid_marker(doc, "{}") for doc in docs]
    assert all(m is not None and m.parent == cache / "sagactl" / "valid" for m in markers)
    assert len(set(markers)) == len(docs)


def test_the_same_document_in_another_order_has_the_same_marker() -> None:
    assert valid_marker({"b": 1, "a": [{"y": 2, "x": date(2026, 1, 1)}]}, "{}") == valid_marker(
        {"a": [{"x": date(2026, 1, 1), "y": 2}], "b": 1}, "{}"
    )
    assert valid_marker({"a": 1}, "{}") != valid_marker({"a": 1}, '{"type": "object"}')


KEYS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=5))
DOCS = st.recursive(
    st.one_of(st.none(), st.integers(), st.text(max_size=5)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)),
    max_leaves=10,
)


@given(DOCS)
def test_any_document_yaml_can_make_has_a_marker(doc: object) -> None:
    keyed(doc)  # sorting mixed keys raised TypeError before
    assert valid_marker(doc, "{}") is not None


def test_a_definition_with_non_string_keys_is_two_problems_not_a_traceback(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from sagactl.cli import app

    for text in ("saga: X\n1: a\nsteps: []\n", "saga: X\n? \nsteps: []\n"):
        path = tmp_path / "odd.yaml"
        path.write_text(text)
        result = CliRunner().invoke(app, ["validate", str(path)])
        assert result.exit_code == 2, result.output
        assert "unknown key" in result.stderr and "Traceback" not in result.output + result.stderr
