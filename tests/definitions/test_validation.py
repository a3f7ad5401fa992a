"""Definitions: the broken-definition corpus (message and position), durations, building."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.definitions import model as definition
from sagactl.definitions import validation
from sagactl.definitions.model import parse_duration
from sagactl.definitions.validation import check_file, check_text, load
from sagactl.errors import DefinitionError, UsageError
from tests.support.hostile import BILLION_LAUGHS, DEEP, DEEP_BLOCK, MANY_ALIASES, SELF_ALIAS
from tests.support.samples import shipped

CORPUS = Path(__file__).parents[1] / "corpus" / "broken"
SAMPLES = Path(__file__).parents[2] / "sample-configs"  # its shipped files: shipped()
EXPECT = re.compile(r"^# expect: (\d+):(\d+): (.+)$")


def _expectation(path: Path) -> tuple[int, int, str]:
    match = EXPECT.match(path.read_text().splitlines()[0])
    assert match, f"{path.name} has no '# expect: LINE:COL: message' first line"
    return int(match.group(1)), int(match.group(2)), match.group(3)


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.yaml")), ids=lambda p: p.stem)
def test_broken_definition_is_reported_at_its_line(path: Path) -> None:
    line, column, message = _expectation(path)
    report = check_file(path)
    found = [str(p) for p in report.errors]
    assert f"{path}:{line}:{column}: " in "\n".join(found) and any(
        p.startswith(f"{path}:{line}:{column}: ") and message in p for p in found
    ), f"expected {line}:{column}: {message!r}, got {found}"
    with pytest.raises(DefinitionError):
        load(path)


def test_corpus_is_large_enough() -> None:
    assert len(list(CORPUS.glob("*.yaml"))) >= 25


# Every sample saga file and the sagas it defines; the config examples: sagactl.yaml, and
# sagactl-presets.yaml (other frameworks' tables: tests/test_config.py reads each context).
SAMPLE_SAGAS = {"order.yaml": ["OrderFulfillment"], "order-sqs.yaml": ["OrderFulfillmentSqs"]}
SAMPLE_CONFIGS = ("sagactl.yaml", "sagactl-presets.yaml")


def test_every_sample_yaml_is_a_known_saga_file_or_a_config_example() -> None:
    """Every file sample-configs/ ships; a user's own YAML beside them is theirs, not checked."""
    assert sorted(p.name for p in shipped()) == sorted([*SAMPLE_SAGAS, *SAMPLE_CONFIGS])


def test_a_users_own_file_in_sample_configs_changes_no_test() -> None:
    mine = SAMPLES / f"my-order-{uuid.uuid4().hex[:8]}.yaml"  # as a user tries a new version out
    assert not mine.exists()
    mine.write_text("not: a saga\n")
    try:
        assert mine not in shipped() and len(shipped()) == len(SAMPLE_SAGAS) + len(SAMPLE_CONFIGS)
    finally:
        mine.unlink()


@pytest.mark.parametrize(("name", "sagas"), sorted(SAMPLE_SAGAS.items()))
def test_sample_definitions_are_valid(name: str, sagas: list[str]) -> None:
    report = check_file(SAMPLES / name)
    assert report.errors == [], report.errors
    assert [d.name for d in report.definitions] == sagas


def test_sample_config_example_is_a_valid_config() -> None:
    from sagactl.config import resolve_settings

    path = SAMPLES / "sagactl.yaml"
    default = resolve_settings(config=str(path), env={})
    assert (default.dsn, default.context, default.mapping) == (
        "postgresql://sagactl@db.internal:5432/orders?connect_timeout=5",
        None,
        None,
    )
    staging = resolve_settings(config=str(path), context="staging", env={})
    assert staging.dsn == "postgresql://sagactl@db.staging.internal:5432/orders"
    local = resolve_settings(config=str(path), context="local", env={})
    assert local.dsn == "sqlite:///.sagactl/saga_log.db"


def test_samples_declare_the_schema_for_editors() -> None:
    for path in shipped():
        if path.name not in SAMPLE_CONFIGS:
            assert path.read_text().startswith("# yaml-language-server: $schema="), path


def test_every_problem_in_a_file_is_reported() -> None:
    text = """saga: Many
endpoints:
  e: {type: exec, command: ["true"]}
steps:
  - {name: a, endpoint: nope, action: {}}
  - {name: a, endpoint: e, action: {}}
"""
    report = check_text(text, "many.yaml", ".")
    messages = [str(p) for p in report.errors]
    assert messages == [
        "many.yaml:5:25: step 'a': unknown endpoint 'nope' (known: e)",
        "many.yaml:6:12: duplicate step name 'a' (first defined as step 1)",
    ]


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (BILLION_LAUGHS, "5:4", "YAML: more than 20000 values once aliases are expanded"),
        (SELF_ALIAS, "1:11", "YAML: alias *x refers to a node that contains it"),
        (DEEP, "1:71", "YAML: nested more than 64 levels deep"),
        (DEEP_BLOCK, "64:64", "YAML: nested more than 64 levels deep"),
        (MANY_ALIASES, "2:405", "YAML: more than 100 aliases (*name) in one file"),
    ],
    ids=["billion-laughs", "self-alias", "deep", "deep-block", "many-aliases"],
)
def test_hostile_yaml_is_refused_in_milliseconds(text: str, where: str, message: str) -> None:
    started = time.process_time()
    report = check_text(text, "bomb.yaml", ".")
    assert time.process_time() - started < 0.1
    assert [str(p) for p in report.errors] == [f"bomb.yaml:{where}: {message}"]


@pytest.mark.parametrize("command", ["validate", "run"])
def test_billion_laughs_exits_2_through_the_cli(command: str, tmp_path: Path) -> None:
    path = tmp_path / "laughs.yaml"
    path.write_text(BILLION_LAUGHS)
    started = time.monotonic()
    dsn = ["--dsn", f"sqlite:///{tmp_path / 'log.db'}"] if command == "run" else []
    result = CliRunner().invoke(app, [command, str(path), *dsn])
    assert time.monotonic() - started < 2
    assert result.exit_code == 2, result.stderr
    prefix = "sagactl: error: " if command == "run" else ""  # validate lists problems; run fails on them
    assert result.stderr == f"{prefix}{path}:5:4: YAML: more than 20000 values once aliases are expanded\n"
    assert not (tmp_path / "log.db").exists()


def test_aliases_within_the_limits_still_work() -> None:
    text = """saga: Anchored
endpoints: {e: {type: exec, command: ["true"]}}
defaults:
  retry: &patient {max_attempts: 5, initial_backoff: 1s, max_backoff: 1m}
  compensation_retry: *patient
steps:
  - {name: a, endpoint: e, action: &call {args: [go]}, compensation: *call}
  - {name: b, endpoint: e, action: *call}
"""
    report = check_text(text, "anchored.yaml", ".")
    assert report.errors == []
    built = report.definitions[0]
    assert built.steps[1].compensation_retry.max_attempts == 5 and built.steps[1].action == {"args": ["go"]}


def test_schema_and_semantic_problems_are_reported_together_once(tmp_path: Path) -> None:
    """One `validate` run reports every problem of a half-valid file, schema and semantic
    alike, in file order, none twice (a key no transport takes is reported once, as unknown)."""
    path = tmp_path / "many.yaml"
    path.write_text(
        """saga: Many
endpoints:
  e: {type: exec, command: ["true"]}
  h: {type: http, url: "http://x", bogus: 1}
defaults:
  timeout: 5x
steps:
  - {name: a, endpoint: nope, action: {body: {id: "${input.}"}}}
  - {name: a, endpoint: e, action: {path: /x, foo: 1}, retry: {max_attempts: 0}}
  - {name: c, endpoint: h, action: {body: "${steps.d.result}"}, timeout: 31d}
  - {name: d, endpoint: e}
"""
    )
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"{path}:4:36: unknown key 'bogus' in endpoints.h (expected one of: headers, type, url)",
        f"{path}:6:12: defaults.timeout: invalid duration '5x' (use ms, s, m, h or d, e.g. 30s, 2m, 1h30m)",
        f"{path}:8:25: step 'a': unknown endpoint 'nope' (known: e, h)",
        f"{path}:8:52: '${{input.}}': nothing after 'input.' (write ${{input}} or name a field)",
        f"{path}:9:12: duplicate step name 'a' (first defined as step 1)",
        f"{path}:9:37: step 'a' action: key 'path' does not apply to exec endpoint 'e' (expected: args, body)",
        f"{path}:9:47: unknown key 'foo' in steps.1.action (expected one of: args, body, command, headers, method,"
        " path)",
        f"{path}:9:78: steps.1.retry.max_attempts: 0 is less than the minimum of 1",
        f"{path}:10:44: step 'c' action: '${{steps.d.result}}' refers to a later step (only earlier steps'"
        " results exist yet)",
        f"{path}:10:74: steps.2.timeout: duration '31d' is longer than 30d, the most sagactl accepts",
        f"{path}:11:5: steps.3: missing required key 'action'",
    ]


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("${input.}", "'${input.}': nothing after 'input.' (write ${input} or name a field)"),
        ("${steps.}", "'${steps.}': nothing after 'steps.' (write ${steps.STEP_NAME.result} or name a field)"),
        ("${saga_id.x}", "'${saga_id.x}': saga_id is a string without fields (write ${saga_id})"),
    ],
)
def test_nothing_after_the_dot_is_an_error_with_its_position(expr: str, message: str) -> None:
    text = f"""saga: Dot
endpoints: {{e: {{type: exec, command: ["true"]}}}}
steps:
  - {{name: a, endpoint: e, action: {{body: "id=" }}}}
  - {{name: b, endpoint: e, action: {{body: "x {expr}"}}}}
"""
    assert [str(p) for p in check_text(text, "dot.yaml", ".").errors] == [f"dot.yaml:5:46: {message}"]


KEYS = ["saga", "endpoints", "steps", "defaults", "name", "endpoint", "action", "compensation", "type", "url",
        "command", "args", "body", "path", "headers", "timeout", "retry", "max_attempts", "e", "a"]  # fmt: skip
LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.text(max_size=6),
    st.sampled_from(["http", "exec", "sqs", "e", "a", "30s", "31d", "${input.}", "${input.x}", "${steps.a.result}"]),
)
HALF_VALID = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), HALF_VALID, max_size=5))
def test_any_half_valid_document_is_reported_never_a_crash(doc: dict[str, Any]) -> None:
    import yaml

    report = check_text(yaml.safe_dump(doc), "fuzz.yaml", ".")
    assert len(set(report.problems)) == len(report.problems)
    assert bool(report.errors) or len(report.definitions) == 1


def test_compensation_using_its_own_result_is_a_warning_not_an_error() -> None:
    text = """saga: Warn
endpoints: {e: {type: http, url: "http://127.0.0.1:9"}}
steps:
  - name: reserve
    endpoint: e
    action: {}
    compensation: {body: {id: "${steps.reserve.result.id}"}}
"""
    report = check_text(text, "warn.yaml", ".")
    assert report.errors == []
    assert [str(p) for p in report.warnings] == [
        "warn.yaml:7:32: warning: step 'reserve' compensation uses its own result, which is null"
        " when the step's outcome is unknown (timeout); address the work by input or by the"
        " idempotency key"
    ]
    assert report.definitions[0].steps[0].compensation == {"body": {"id": "${steps.reserve.result.id}"}}


def test_several_sagas_in_one_file(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(
        """saga: One
endpoints: {e: {type: exec, command: ["true"]}}
steps: [{name: a, endpoint: e, action: {}}]
---
saga: Two
endpoints: {e: {type: exec, command: ["true"]}}
steps: [{name: b, endpoint: e, action: {}}]
"""
    )
    assert [d.name for d in check_file(path).definitions] == ["One", "Two"]
    with pytest.raises(UsageError, match="several sagas"):
        load(path)
    assert load(path, "Two").steps[0].name == "b"
    with pytest.raises(UsageError, match="no saga named 'Three'"):
        load(path, "Three")


def test_defaults_and_overrides_are_built() -> None:
    text = """saga: Built
endpoints: {e: {type: exec, command: ["true"]}}
defaults:
  timeout: 10s
  compensation_timeout: 1m
  retry: {max_attempts: 5, initial_backoff: 100ms}
steps:
  - {name: a, endpoint: e, action: {}}
  - name: b
    endpoint: e
    timeout: 1h30m
    retry: {max_attempts: 1}
    compensation_retry: {max_backoff: 2s}
    action: {}
    compensation: {args: [undo]}
"""
    built = check_text(text, "b.yaml", "/base").definitions[0]
    a, b = built.steps
    assert (a.timeout, a.compensation_timeout) == (10.0, 60.0)
    assert a.retry == definition.RetryPolicy(5, 0.1, 30.0)
    assert a.compensation_retry == definition.RetryPolicy(8, 1.0, 300.0)  # built-in: 8 attempts, 1s .. 5m
    assert a.compensation is None
    assert (b.timeout, b.retry.max_attempts, b.retry.initial_backoff) == (5400.0, 1, 0.1)
    assert b.compensation_retry.max_backoff == 2.0
    assert built.snapshot() == {"document": built.raw, "base_dir": "/base"}
    assert definition.from_snapshot(built.snapshot()) == built


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30.0), ("2m", 120.0), ("1h30m", 5400.0), ("1d", 86400.0), ("1.5s", 1.5)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "5", "5 s", "s", "1x", "m5", "-1s", "1h 30m", "1e400s", "nan", "infs", "9" * 400 + "s"]
)
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(UsageError, match="invalid duration"):
        parse_duration(text)


def test_durations_are_at_most_30_days(tmp_path: Path) -> None:
    """Every timeout and backoff of a definition is checked against 30d, overflow included;
    `validate` and `run` refuse the file (exit 2) with each position."""
    path = tmp_path / "long.yaml"
    path.write_text(
        f"""saga: Durations
endpoints: {{e: {{type: exec, command: ["true"]}}}}
defaults:
  timeout: 31d
  retry: {{max_attempts: 2, initial_backoff: 0s, max_backoff: 40d}}
steps:
  - {{name: a, endpoint: e, timeout: {"9" * 400}s, action: {{}}}}
  - {{name: b, endpoint: e, compensation_timeout: 720h1ms, action: {{}}, compensation: {{}}}}
  - {{name: c, endpoint: e, timeout: 30d, compensation_retry: {{initial_backoff: 29d23h59m}}, action: {{}}}}
"""
    )
    longer = "is longer than 30d, the most sagactl accepts"
    expected = [
        f"{path}:4:12: defaults.timeout: duration '31d' {longer}",
        f"{path}:5:62: defaults.retry.max_backoff: duration '40d' {longer}",
        f"{path}:7:37: steps.0.timeout: duration '{'9' * 40}' {longer}",
        f"{path}:8:50: steps.1.compensation_timeout: duration '720h1ms' {longer}",
    ]
    assert [str(p) for p in check_file(path).errors] == expected
    result = CliRunner().invoke(app, ["run", str(path), "--dsn", f"sqlite:///{tmp_path / 'log.db'}"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"sagactl: error: {line}" for line in expected]
    assert not (tmp_path / "log.db").exists()


def test_missing_file_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    report = check_file(tmp_path / "nope.yaml")
    assert [str(p) for p in report.errors] == [f"{tmp_path / 'nope.yaml'}:1:1: file not found"]


def test_schema_is_valid_json_schema() -> None:
    from jsonschema import Draft202012Validator

    Draft202012Validator.check_schema(validation.schema())


def test_a_definition_that_passed_the_schema_is_not_checked_by_jsonschema_again(tmp_path: Path) -> None:
    """`run` pays for jsonschema (~100 ms of imports) once per definition text and sagactl
    version; an edited file is checked afresh, and a cached pass never hides a new error."""
    good = tmp_path / "good.yaml"
    good.write_text(
        "saga: A\nendpoints: {e: {type: exec, command: [/bin/true]}}\n"
        "steps: [{name: s, endpoint: e, action: {args: [x]}}]\n"
    )
    probe = (
        "import sys\n"
        "from sagactl.definitions.validation import check_file\n"
        "report = check_file(sys.argv[1])\n"
        "print(len(report.errors), 'jsonschema' in sys.modules)\n"
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}

    def check(path: Path) -> str:
        done = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert check(good) == "0 True"  # first time: validated, and remembered
    assert check(good) == "0 False"  # same text: the schema pass is remembered
    good.write_text(good.read_text().replace("name: s,", "name: s, timeout: forever,"))
    assert check(good) == "1 True"  # edited: checked again, the error found
    assert check(good) == "1 True"  # an invalid document is never remembered
