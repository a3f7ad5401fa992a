"""sagactl.yamlsafe: the libyaml loader (speed) and the pure-Python reference (messages) read
every file the same way, within the same limits, and neither crashes on a hostile file."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sagactl import yamlsafe
from sagactl.yamlsafe import BoundedLoader, FastLoader, YamlLimitError, load, parsed
from tests.support.samples import shipped

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = shipped("**/*.yaml")



def test_pyyaml_has_libyaml() -> None:
    """PyPI's PyYAML wheels carry libyaml; without it sagactl still works, ~4x slower to read a
    long definition (the reference loader alone: test_without_libyaml_the_reference_loader_reads)."""
    assert FastLoader is not None


def documents(loader: Any) -> list[Any]:
    out = []
    while loader.check_data():
        out.append(loader.get_data())
    return out


def result_of(read: Callable[[], Any]) -> tuple[str, str]:
    """("ok", repr of what ``read`` returned) or ("error", the message at its mark)."""
    try:
        return "ok", repr(read())
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        return "error", f"{exc.problem} at {mark.line + 1}:{mark.column + 1}" if mark else str(exc.problem)
    except yaml.YAMLError as exc:
        return "error", type(exc).__name__


def outcome(text: str, loader: Any) -> tuple[str, str]:
    """``result_of`` reading every document of ``text`` with ``loader``."""
    return result_of(lambda: documents(loader(text)))


def long_definition(steps: int) -> str:
    lines = ["saga: Long", "endpoints:", '  svc: {type: http, url: "${env.URL}"}', "steps:"]
    for i in range(steps):
        lines += [f"  - name: s{i}", "    endpoint: svc", f"    action: {{path: /s{i}, body: {{n: {i}}}}}"]
    return "\n".join(lines) + "\n"


HOSTILE = {
    "deep-flow": "[" * 200_000,
    "deep-block": "- " * 100_000 + "x",
    "deep-mapping": "a: [" * 1_000 + "x",
    "self-alias": "a: &a [*a]",
    "many-aliases": "a: &a [1]\nb: [" + ", ".join(["*a"] * 200) + "]",
    "laughs": "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(f"{c}: &{c} [{', '.join([f'*{p}'] * 10)}]\n" for p, c in zip("abcdefg", "bcdefgh", strict=True)),
}


@pytest.mark.parametrize("path", SAMPLES, ids=[p.name for p in SAMPLES])
def test_both_loaders_read_every_sample_alike(path: Path) -> None:
    text = path.read_text()
    assert outcome(text, FastLoader) == outcome(text, BoundedLoader) != ("error", "")


@pytest.mark.slow
def test_both_loaders_read_a_long_definition_alike_with_the_same_marks() -> None:
    text = long_definition(300)
    assert outcome(text, FastLoader) == outcome(text, BoundedLoader)
    fast, slow = FastLoader(text), BoundedLoader(text)
    a, b = fast.get_single_node(), slow.get_single_node()
    marks = [(n.start_mark.line, n.start_mark.column) for n in a.value[2][1].value[-1].value[0]]
    assert marks == [(n.start_mark.line, n.start_mark.column) for n in b.value[2][1].value[-1].value[0]]


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_files_are_refused_as_the_reference_refuses_them(name: str) -> None:
    """Through ``parsed`` the message and place are the reference's. libyaml alone refuses too,
    at our limit or at its own (libyaml 0.2.6 stops scanning at 1,000 open brackets)."""
    text = HOSTILE[name]
    expected = outcome(text, BoundedLoader)
    assert expected[0] == "error"
    assert result_of(lambda: parsed(text, documents)) == expected
    assert outcome(text, FastLoader)[0] == "error"
    with pytest.raises(YamlLimitError):
        load(text)


def test_a_deep_file_does_not_crash_the_process() -> None:
    """libyaml's own composer recurses in C: 200,000 open brackets kill the interpreter with
    SIGSEGV. The fast loader composes in Python and stops at MAX_DEPTH."""
    code = (
        "import sys; from sagactl.yamlsafe import load\n"
        "try:\n    load(sys.stdin.read())\nexcept Exception as e:\n    print(type(e).__name__)"
    )
    for text in (HOSTILE["deep-flow"], HOSTILE["deep-block"]):
        done = subprocess.run([sys.executable, "-c", code], input=text, capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout.strip()) == (0, "YamlLimitError")


def test_a_syntax_error_is_reported_as_the_reference_loader_reports_it() -> None:
    text = "a: 1\nb: 'unterminated\n"
    with pytest.raises(yaml.MarkedYAMLError) as fast:
        load(text)
    with pytest.raises(yaml.MarkedYAMLError) as slow:
        yaml.load(text, Loader=BoundedLoader)
    assert str(fast.value) == str(slow.value)  # libyaml's words differ; the reference's are kept


def test_without_libyaml_the_reference_loader_reads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlsafe, "FastLoader", None)
    assert load(long_definition(3))["steps"][2]["name"] == "s2"
    assert parsed("a: [1, 2]", lambda loader: type(loader).__name__) == "BoundedLoader"


YAMLISH = st.text(alphabet=st.sampled_from(list("ab1 -:[]{},&*!#'\"\n\t|>?%@.\\")), max_size=60)


@settings(max_examples=500, deadline=None)
@given(YAMLISH)
@pytest.mark.slow
def test_every_file_the_reference_reads_is_read_to_the_same_data(text: str) -> None:
    """``parsed`` never reads a file differently from the reference loader and never refuses
    one it reads. libyaml reads a few files the reference refuses (">#", "[a|?]"): those it
    keeps. A text with a tab or a "!" is read by the reference alone, errors included."""
    reference = result_of(lambda: documents(BoundedLoader(text)))
    ours = result_of(lambda: parsed(text, documents))
    if reference[0] == "ok" or "\t" in text or "!" in text:
        assert ours == reference
    else:
        assert ours in (reference, ("ok", ours[1]))


@pytest.mark.parametrize("text", ["a: \ud800", "\ud800", "steps: [\udfff]", "a: \x00", "a: \x85\ufffe"])
def test_text_neither_parser_takes_is_a_yaml_error_not_a_crash(text: str) -> None:
    """A lone surrogate (a file read with surrogateescape) makes libyaml's constructor raise
    UnicodeEncodeError: the reference reads it and refuses it as every other bad character."""
    with pytest.raises(yaml.YAMLError):
        load(text)
    assert result_of(lambda: parsed(text, documents)) == outcome(text, BoundedLoader)


ANY_TEXT = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=40)


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_any_text_is_read_as_the_reference_reads_it_or_refused_never_a_crash(text: str) -> None:
    """Any code point (lone surrogates, NUL, C1 controls): a YAMLError or the reference's data,
    never another exception."""
    reference = outcome(text, BoundedLoader)
    ours = result_of(lambda: parsed(text, documents))  # anything but a YAMLError propagates: fails
    assert ours == reference or (reference[0] == "error" and ours[0] == "ok")
