"""What turns tracing on (sagactl/tracing/settings.py): the standard OTEL_* environment over
sagactl.yaml's ``tracing:`` block, and a traceparent checked as W3C says."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagactl.config import resolve_settings
from sagactl.errors import UsageError
from sagactl.tracing.context import check_traceparent, env_carrier, valid_traceparent
from sagactl.tracing.settings import resolve
from tests.support.processes import sagactl
from tests.tracing.conftest import Caught

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_nothing_set_is_off() -> None:
    assert resolve(None, {}) is None
    assert resolve({}, {"TRACEPARENT": CALLER, "OTEL_SERVICE_NAME": "x"}) is None  # no exporter asked for


def test_an_endpoint_turns_it_on_over_http_protobuf_by_default() -> None:
    chosen = resolve(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"})
    assert chosen is not None
    assert (chosen.exporters, chosen.protocol, chosen.endpoint) == (
        ("otlp",),
        "http/protobuf",
        "http://collector:4318/v1/traces",
    )
    assert chosen.why == "OTEL_EXPORTER_OTLP_ENDPOINT"
    assert chosen.resource == {"service.name": "sagactl"}


def test_grpc_takes_the_endpoint_as_it_is_and_the_traces_endpoint_wins() -> None:
    grpc = resolve(None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert grpc is not None and (grpc.protocol, grpc.endpoint) == ("grpc", "http://c:4317")
    both = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:9/x"}
    chosen = resolve(None, both)
    assert chosen is not None and chosen.endpoint == "http://t:9/x"
    traces_protocol = {
        **both,
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    }
    chosen = resolve(None, traces_protocol)
    assert chosen is not None and chosen.protocol == "grpc"


@pytest.mark.parametrize(
    "env",
    [
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_TRACES_EXPORTER": "none"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_SDK_DISABLED": "true"},
        {"OTEL_TRACES_EXPORTER": "NONE"},
    ],
)
def test_the_standard_switches_turn_it_off(env: dict[str, str]) -> None:
    assert resolve({"endpoint": "http://file:4318"}, env) is None


def test_the_console_exporter_needs_no_endpoint() -> None:
    chosen = resolve(None, {"OTEL_TRACES_EXPORTER": "console"})
    assert chosen is not None and chosen.exporters == ("console",)
    chosen = resolve(None, {"OTEL_TRACES_EXPORTER": "otlp,console"})
    assert chosen is not None and chosen.exporters == ("otlp", "console")


def test_the_file_block_turns_it_on_and_the_environment_wins() -> None:
    block = {
        "endpoint": "http://file:4317",
        "protocol": "grpc",
        "service_name": "orders-sagas",
        "resource_attributes": {"deployment.environment": "prod"},
        "sampler": "parentbased_traceidratio",
        "sampler_arg": 0.25,
        "headers": {"authorization": "Bearer abc"},
    }
    chosen = resolve(block, {})
    assert chosen is not None
    why = "tracing.endpoint in sagactl.yaml"
    assert (chosen.protocol, chosen.endpoint, chosen.why) == ("grpc", "http://file:4317", why)
    assert chosen.resource == {"deployment.environment": "prod", "service.name": "orders-sagas"}
    assert (chosen.sampler, chosen.sampler_arg, chosen.headers) == (
        "parentbased_traceidratio",
        0.25,
        {"authorization": "Bearer abc"},
    )
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_TRACES_SAMPLER": "always_on",
    }
    over = resolve(block, env)
    assert over is not None
    assert (over.protocol, over.endpoint, over.sampler) == ("http/protobuf", "http://env:4318/v1/traces", None)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"protocol": "http/json", "endpoint": "http://c"}, "'tracing.protocol' is 'http/json'"),
        ({"exporter": "zipkin"}, "'tracing.exporter' is 'zipkin'"),
        ({"endpoint": ""}, "'tracing.endpoint' must be a text value"),
        ({"endpoint": "http://c", "sampler": "sometimes"}, "'tracing.sampler' is 'sometimes'"),
        ({"endpoint": "http://c", "sampler": "traceidratio", "sampler_arg": "half"}, "must be a number"),
        ({"endpoint": "http://c", "headers": ["a"]}, "'tracing.headers' must be a mapping"),
    ],
)
def test_a_wrong_block_is_a_usage_error(block: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        resolve(block, {})


def test_a_wrong_environment_value_is_warned_about_and_ignored(tracing_log: Caught) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
    chosen = resolve(None, env)
    assert chosen is not None and chosen.protocol == "http/protobuf"
    assert tracing_log.warnings == [
        "OTEL_EXPORTER_OTLP_PROTOCOL=http/json is not supported (use one of: http/protobuf, grpc); ignored"
    ]


def test_sagactl_yaml_takes_a_tracing_block_at_the_top_and_per_context(tmp_path: Path) -> None:
    config = tmp_path / "sagactl.yaml"
    config.write_text(
        "tracing: {endpoint: 'http://top:4318', service_name: top}\n"
        "contexts:\n  prod:\n    tracing: {endpoint: 'http://prod:4318'}\n"
    )
    top = resolve_settings(config=str(config), env={})
    assert top.tracing == {"endpoint": "http://top:4318", "service_name": "top"}
    prod = resolve_settings(config=str(config), context="prod", env={})
    assert prod.tracing == {"endpoint": "http://prod:4318", "service_name": "top"}
    config.write_text("tracing: {endpiont: 'http://x'}\n")
    with pytest.raises(UsageError, match="unknown key 'endpiont' in tracing") as raised:
        resolve_settings(config=str(config), env={})
    assert raised.value.hint is not None and raised.value.hint.startswith("did you mean 'endpoint'?")


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        (CALLER, True),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", True),  # not sampled: still valid
        ("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later", True),  # a later version may add fields
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", False),
        ("ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", False),
        ("00-00000000000000000000000000000000-00f067aa0ba902b7-01", False),
        ("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", False),
        ("00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01", False),
        ("not a traceparent", False),
        ("", False),
    ],
)
def test_a_traceparent_is_checked_as_w3c_says(value: str, valid: bool) -> None:
    assert valid_traceparent(value) is valid
    if not valid:
        with pytest.raises(UsageError, match="is not a W3C traceparent"):
            check_traceparent(value)


def test_the_environment_carrier() -> None:
    assert env_carrier({"TRACEPARENT": CALLER, "TRACESTATE": "a=1", "PATH": "/bin"}) == {
        "traceparent": CALLER,
        "tracestate": "a=1",
    }
    assert env_carrier({"TRACESTATE": ""}) == {}


def test_run_with_a_bad_traceparent_is_exit_2_one_line(tmp_path: Path) -> None:
    (tmp_path / "one.yaml").write_text(
        "saga: One\nendpoints:\n  local: {type: exec, command: [/bin/true]}\n"
        "steps:\n  - name: only\n    endpoint: local\n    action: {args: []}\n"
    )
    done = sagactl("run", "one.yaml", "--traceparent", "00-abc", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "sagactl: error: --traceparent '00-abc' is not a W3C traceparent; pass 00-<32 hex trace ID>-<16 hex span"
        " ID>-<2 hex flags>, e.g. 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n"
    )
    assert not (tmp_path / ".sagactl").exists()  # refused before the log was opened
