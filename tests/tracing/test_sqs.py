"""Trace context to SQS participants (issue 21, point 3): W3C ``traceparent``/``tracestate``
as message attributes of the command (moto), within SQS's 10 attributes; and a redrive keeps
them, and AWSTraceHeader, on the messages it moves (point 5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3

from sagactl.dlq.outcomes import RedriveRequest
from sagactl.dlq.redrive import redrive
from sagactl.transports.sqs import MAX_ATTRIBUTES, with_trace
from tests.support.otlp import otlp_http, parent_in
from tests.support.processes import sagactl
from tests.support.sqs import Sqs, SqsProxy
from tests.transports.test_sqs import Participant, completed

CALLER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", "tracestate": "vendor=abc"}


def strings(**values: str) -> dict[str, Any]:
    return {name: {"DataType": "String", "StringValue": value} for name, value in values.items()}


def test_the_command_carries_the_attempts_context(sqs: Sqs, aws_env: dict[str, str], tmp_path: Path) -> None:
    commands, replies = sqs.queue("commands"), sqs.queue("replies")
    (tmp_path / "pay.yaml").write_text(
        f"saga: Pay\nendpoints:\n  payment: {{type: sqs, queue: {commands.name}, reply_queue: {replies.name}}}\n"
        "steps:\n  - name: charge\n    endpoint: payment\n"
        "    action: {command: PaymentService.Charge, body: {amount: 3}}\n"
    )
    with otlp_http() as otlp, Participant(sqs, commands, completed) as participant:
        env = {**aws_env, **otlp.env, "SAGACTL_DSN": f"sqlite:///{tmp_path}/log.db", "TRACEPARENT": CALLER,
               "TRACESTATE": "vendor=abc"}  # fmt: skip
        done = sagactl("run", "pay.yaml", "-o", "json", cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        spans = otlp.wait_for(lambda s: any(x.name == "charge action" for x in s))
    [charge] = [s for s in spans if s.name == "charge action"]
    assert (charge.kind, charge.attributes["sagactl.transport"]) == ("producer", "sqs")
    [command] = participant.seen
    attributes = {k: v["StringValue"] for k, v in command["MessageAttributes"].items()}
    assert parent_in(attributes["traceparent"]) == charge.context
    assert attributes["tracestate"] == "vendor=abc"
    assert len(attributes) == 8  # sagactl's six, and the trace context


def test_within_the_10_attribute_limit_the_commands_own_attributes_go_first() -> None:
    six = strings(saga_id="s", step_name="a", command="C", idempotency_key="k", reply_to="u", phase="action")
    assert list(with_trace(dict(six), TRACE)) == [*six, "traceparent", "tracestate"]
    nine = {**six, **strings(x1="1", x2="2", x3="3")}
    assert list(with_trace(dict(nine), TRACE)) == [*nine, "traceparent"]  # no room for tracestate
    ten = {**nine, **strings(x4="4")}
    assert with_trace(dict(ten), TRACE) == ten  # none left: the command goes, without trace context
    assert len(ten) == MAX_ATTRIBUTES
    given = {**six, **strings(traceparent="00-11111111111111111111111111111111-2222222222222222-01")}
    assert with_trace(dict(given), TRACE)["traceparent"] == given["traceparent"]  # never overwritten
    assert with_trace(dict(six), {}) == six  # tracing off: nothing added


def test_redrive_keeps_trace_context_and_aws_trace_header_byte_for_byte(
    sqs: Sqs, sqs_proxy: SqsProxy, aws_env: dict[str, str]
) -> None:
    """The moved message has the DLQ message's attributes as they were, trace context among
    them; AWSTraceHeader (a system attribute) goes in the send, as the proxy in front of moto
    sees it (moto's SendMessageBatch drops system attributes, so it is checked on the wire)."""
    dlq, source = sqs.dlq_pair()
    header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    attributes = {
        **strings(saga_id="s-1", step_name="charge", **TRACE),
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff trace"},
    }
    sqs.client.send_message(
        QueueUrl=dlq.url,
        MessageBody=json.dumps({"saga_id": "s-1"}),
        MessageAttributes=attributes,
        MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": header}},
    )
    client = boto3.client("sqs", endpoint_url=sqs_proxy.url, region_name=aws_env["AWS_REGION"])
    result = redrive(client, RedriveRequest(dlq=dlq.url))
    assert (result.moved, result.failed) == (1, 0)
    [moved] = sqs.receive_all(source)
    kept = {k: v for k, v in moved["MessageAttributes"].items() if k != "sagactl_redrive_count"}
    assert {k: {f: v[f] for f in ("DataType", "StringValue", "BinaryValue") if f in v} for k, v in kept.items()} == (
        attributes
    )
    [(_, batch)] = [r for r in sqs_proxy.requests if r[0] == "SendMessageBatch"]
    [entry] = batch["Entries"]
    assert entry["MessageSystemAttributes"] == {"AWSTraceHeader": {"DataType": "String", "StringValue": header}}
    assert {k: v.get("StringValue") for k, v in entry["MessageAttributes"].items()}.items() >= TRACE.items()
