"""Limits, rates and ages given on the command line: NaN, infinities, overflow, negatives and
out-of-range values are one `sagactl: error:` line and exit 2, refused before any store or
SQS is contacted (the SQS endpoint below is a closed port, the DSN a file never created);
an empty `--saga-id -` is "no IDs given"."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.cli.options import read_ids

runner = CliRunner()
HUGE = "9" * 30
HUGE_DURATION = "9" * 400 + "s"  # a float overflow: inf seconds
RATE = "--rate must be above 0 and at most 1e+06 messages per second"


@pytest.fixture
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed_port: int) -> Path:
    """No saga log on disk, an SQS endpoint nobody answers on: anything contacted would fail
    with exit 4, not 2."""
    for name in ("SAGACTL_CONFIG", "SAGACTL_CONTEXT", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAGACTL_DSN", f"sqlite:///{tmp_path / 'never.db'}")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "y")
    return tmp_path


CASES = [
    (["list", "--limit", "-1"], "--limit must be 0 (no limit) to 1000000000, got -1"),
    (["list", "--limit", HUGE], f"--limit must be 0 (no limit) to 1000000000, got {HUGE}"),
    (["list", "--older-than", "1e400s"], "--older-than: invalid duration '1e400s'; use a number with ms"),
    (["list", "--older-than", HUGE_DURATION], f"--older-than: invalid duration '{'9' * 40}': too large"),
    (["list", "--older-than", f"{HUGE}d"], f"--older-than must be at most 3650d (10 years), got '{HUGE}d'"),
    (["list", "--older-than", "-5m"], "--older-than: invalid duration '-5m'"),
    (["list", "--stuck", "--older-than", "0s"], "--older-than must be positive, got '0s'"),
    (["resume", "--stuck", "--older-than", f"{HUGE}d"], "--older-than must be at most 3650d (10 years)"),
    (["dlq", "list", "q", "--limit", "0"], "--limit must be 1 to 1000000000, not 0"),
    (["dlq", "list", "q", "--limit", HUGE], f"--limit must be 1 to 1000000000, not {HUGE}"),
    (["dlq", "list", "q", "--wait-time", "-1"], "--wait-time must be 0..20 seconds, not -1"),
    (["dlq", "list", "q", "--visibility-timeout", "0"], "--visibility-timeout must be 1..43200 seconds, not 0"),
    (["dlq", "list", "q", "--visibility-timeout", HUGE], f"--visibility-timeout must be 1..43200 seconds, not {HUGE}"),
    (["redrive", "--dlq", "q", "--rate", "nan"], f"{RATE}, not nan"),
    (["redrive", "--dlq", "q", "--rate", "inf"], f"{RATE}, not inf"),
    (["redrive", "--dlq", "q", "--rate", "1e400"], RATE),
    (["redrive", "--dlq", "q", "--rate", "-1"], f"{RATE}, not -1"),
    (["redrive", "--dlq", "q", "--rate", "0"], f"{RATE}, not 0"),
    (["redrive", "--dlq", "q", "--native", "--rate", "nan"], "--rate with --native must be a whole number 1..500"),
    (["redrive", "--dlq", "q", "--native", "--rate", "inf"], "--rate with --native must be a whole number 1..500"),
    (["redrive", "--dlq", "q", "--max", "-1"], "--max must be 1 to 1000000000, not -1"),
    (["redrive", "--dlq", "q", "--max", HUGE], f"--max must be 1 to 1000000000, not {HUGE}"),
    (["redrive", "--dlq", "q", "--max-redrives", "-1"], "--max-redrives must be 0 (no limit) to 1000000000, not -1"),
    (["redrive", "--dlq", "q", "--max-redrives", HUGE], "--max-redrives must be 0 (no limit) to 1000000000"),
    (["redrive", "--dlq", "q", "--concurrency", "0"], "--concurrency must be 1..32, not 0"),
    (["redrive", "--dlq", "q", "--concurrency", HUGE], f"--concurrency must be 1..32, not {HUGE}"),
    (["redrive", "--dlq", "q", "--wait-time", "21"], "--wait-time must be 0..20 seconds, not 21"),
    (["redrive", "--dlq", "q", "--visibility-timeout", "-5"], "--visibility-timeout must be 1..43200 seconds, not -5"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "message"), CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_number_is_one_line_exit_2(isolated: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.startswith(f"sagactl: error: {message}")
    assert result.stderr.count("\n") == 1
    assert not (isolated / "never.db").exists()


@pytest.mark.parametrize(
    "args", [["dlq", "list", "q", "--saga-id", "-"], ["redrive", "--dlq", "q", "--saga-id", "-", "--dry-run"]]
)
def test_saga_id_dash_with_nothing_on_stdin_is_no_ids_given(isolated: Path, args: list[str]) -> None:
    """`sagactl list --stuck -q | sagactl redrive … --saga-id -` when nothing is stuck: say so
    (exit 2), instead of listing "no messages" or moving nothing without a word."""
    result = runner.invoke(app, args, input="  \n# nothing stuck\n")
    assert result.exit_code == 2, result.stderr
    assert result.stderr == (
        "sagactl: error: no IDs given: --saga-id named no saga (nothing on stdin for '-'); pipe saga IDs in"
        " (e.g. 'sagactl list --stuck -q | …') or drop --saga-id\n"
    )


def test_read_ids_keeps_an_empty_stdin_empty() -> None:
    import io

    assert read_ids(["-"], io.StringIO("")) == frozenset()
    assert read_ids(None) is None
