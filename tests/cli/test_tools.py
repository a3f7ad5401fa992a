"""graph, doctor and config from the command line: exit codes, stdout/stderr, formats."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from sagactl.cli import app

ROOT = Path(__file__).parent.parent.parent
SAMPLE = ROOT / "sample-configs" / "order.yaml"
runner = CliRunner()


def test_graph_prints_mermaid_by_default_and_dot_on_request() -> None:
    mermaid = runner.invoke(app, ["graph", str(SAMPLE)])
    assert (mermaid.exit_code, mermaid.stderr) == (0, "")
    assert mermaid.stdout.startswith("flowchart TD\n")
    dot = runner.invoke(app, ["graph", str(SAMPLE), "-o", "dot"])
    assert (dot.exit_code, dot.stderr) == (0, "")
    assert dot.stdout.startswith('digraph "OrderFulfillment" {\n') and dot.stdout.endswith("}\n")


def test_graph_of_an_invalid_file_is_exit_2_with_its_problems(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("saga: X\nsteps: []\n")
    result = runner.invoke(app, ["graph", str(bad)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"sagactl: error: {bad}:2:")


def test_graph_of_a_file_with_several_sagas_needs_saga(tmp_path: Path) -> None:
    two = tmp_path / "two.yaml"
    one = "steps: [{name: a, endpoint: e, action: {args: [a]}}]\nendpoints: {e: {type: exec, command: [python3]}}\n"
    two.write_text(f"saga: First\n{one}---\nsaga: Second\n{one}")
    refused = runner.invoke(app, ["graph", str(two)])
    assert refused.exit_code == 2 and "holds several sagas (First, Second)" in refused.stderr
    picked = runner.invoke(app, ["graph", str(two), "--saga", "Second", "-o", "dot"])
    assert picked.exit_code == 0 and picked.stdout.startswith('digraph "Second"')
