"""`graph`: the sample saga drawn exactly (snapshots: the Mermaid block of docs/language.md and a DOT file),
the edges the engine follows, retry budgets, and labels from a hostile file escaped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sagactl.definitions import validation
from sagactl.definitions.model import RetryPolicy
from sagactl.views import graph

ROOT = Path(__file__).parents[2]
SAMPLE = ROOT / "sample-configs" / "order.yaml"


def _docs_mermaid() -> str:
    text = (ROOT / "docs" / "language.md").read_text("utf-8")
    match = re.search(r"`sagactl graph sample-configs/order.yaml`.*?```mermaid\n(.*?)```", text, re.S)
    assert match, "docs/language.md lost the Mermaid block of the sample saga"
    return match.group(1)


def test_the_docs_embed_the_mermaid_diagram_graph_prints() -> None:
    assert graph.render(validation.load(SAMPLE)) == _docs_mermaid()


def test_dot_snapshot() -> None:
    shipped = (ROOT / "tests" / "snapshots" / "graph_order.dot").read_text("utf-8")
    assert graph.render(validation.load(SAMPLE), "dot") == shipped


def test_retry_budget_is_every_attempt_to_its_timeout_plus_every_backoff_ceiling() -> None:
    policy = RetryPolicy(max_attempts=4, initial_backoff=0.2, max_backoff=0.5)
    assert graph.retry_budget(policy, 10.0) == pytest.approx(40 + 0.2 + 0.4 + 0.5)
    assert graph.retry_budget(RetryPolicy(1, 5.0, 5.0), 3.0) == 3.0


DEFINITION = """\
saga: Mixed
steps:
  - {name: a, endpoint: e, action: {args: [a]}, compensation: {args: [undo-a]}}
  - {name: b, endpoint: e, action: {args: [b]}}
  - {name: c, endpoint: e, action: {args: [c]}, compensation: {args: [undo-c]}}
endpoints:
  e: {type: exec, command: [python3]}
"""


def test_edges_follow_the_engine(tmp_path: Path) -> None:
    """Refused: the nearest earlier compensation; unknown outcome: its own first; a step
    without compensation is skipped in the chain; exhausted compensations stay compensating."""
    path = tmp_path / "mixed.yaml"
    path.write_text(DEFINITION)
    built = graph.build_graph(validation.load(path))
    edges = {(e.source, e.target, e.label) for e in built.edges}
    assert {
        ("s0", "failed", "refused"),
        ("s0", "c0", "outcome unknown"),
        ("s1", "c0", "fails"),
        ("s2", "c0", "refused"),
        ("s2", "c2", "outcome unknown"),
        ("c2", "c0", "undone"),
        ("c0", "failed", "undone"),
        ("c2", "stuck", "retries exhausted"),
        ("s2", "completed", ""),
    } <= edges
    assert not any(e.source == "c1" or e.target == "c1" for e in built.edges)


HOSTILE = """\
saga: Hostile
description: "ends \\" ]) ; click s0 call evil() \\n%% <script>x</script> #quot; \\e[31m red \\\\N \\u202e"
endpoints:
  web: {type: http, url: "http://ops:hunter2secret@example.test/a\\"b<c>#d|e`f"}
  run: {type: exec, command: ["sh\\"]; x [label=\\"y", "\\\\G"]}
steps:
  - name: s
    endpoint: web
    action: {method: POST, path: "/x\\"\\n-->evil"}
    compensation: {method: DELETE, path: "/x|y"}
  - name: t
    endpoint: run
    action: {args: ["\\u001b]0;title\\u0007", "}"]}
"""


@pytest.fixture
def hostile(tmp_path: Path) -> graph.SagaDefinition:
    path = tmp_path / "hostile.yaml"
    path.write_text(HOSTILE)
    return validation.load(path)


def test_mermaid_escapes_foreign_labels(hostile: graph.SagaDefinition) -> None:
    text = graph.render(hostile, "mermaid")
    assert "hunter2secret" not in text and "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    shapes = r'(\(\["|\["|\[/")(?P<label>[^"]*)("\]\)|"\]|"/\])'
    for line in text.splitlines()[1:]:
        assert "\n" not in line
        if line.startswith("  %%"):
            assert "<" not in line and '"' not in line
            continue
        assert re.fullmatch(
            rf"  (start|completed|failed|stuck|[sc]\d+){shapes}"  # a node, its whole label quoted
            r"|  [a-z0-9]+ (-->|-\.->)(\|[a-z ]+\|)? [a-z0-9]+"  # an edge: sagactl's own words
            r"|  classDef .*|  class [a-z0-9,]+ [a-z]+",
            line,
        ), line
        label = re.search(shapes, line)
        if label:
            assert not set(label.group("label").replace("<br/>", "")) & set('"<>`|'), line


def test_dot_escapes_foreign_labels(hostile: graph.SagaDefinition) -> None:
    text = graph.render(hostile, "dot")
    assert "hunter2secret" not in text and "\x1b" not in text and "\u202e" not in text
    string = r'"(?:[^"\\]|\\.)*"'  # a DOT string: every quote inside escaped
    for line in text.splitlines()[1:-1]:
        assert re.fullmatch(
            rf"  (rankdir=TB|node \[fontname={string}\]|label={string});"
            rf"|  [a-z0-9]+ \[label={string}, (shape=\w+|[a-z]+=({string}|\w+))(, [a-z]+=({string}|\w+))*\];"
            rf"|  [a-z0-9]+ -> [a-z0-9]+( \[label={string}(, style=dashed)?\]| \[style=dashed\])?;",
            line,
        ), line
    # \N, \G in a DOT label would print the node's or graph's name: kept literal (\\N)
    assert "\\\\N" in text and "\\\\G" in text
