"""dlq list (peek): nothing consumed, everything visible again at the end; fields from
attributes or the JSON body; filters and grouping; SQS move tasks (redrive --native,
--status, --cancel).

moto (server mode on 127.0.0.1) is the SQS endpoint. moto does not implement
StartMessageMoveTask, ListMessageMoveTasks or CancelMessageMoveTask: the core functions meet
them through botocore's Stubber, and the command line meets them over HTTP through the fault
proxy, which answers them itself and really moves the messages on moto (tests.support.sqs).
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import Stubber
from typer.testing import CliRunner

from sagactl.aws import sqs_client
from sagactl.cli import app
from sagactl.cli.options import read_ids as read_saga_ids
from sagactl.config import AwsSettings
from sagactl.dlq.messages import GroupBy, MessageFilter, group_messages, parse_message
from sagactl.dlq.peek import PeekRequest, peek
from sagactl.dlq.tasks import cancel_move_task, list_move_tasks, start_move_task
from sagactl.errors import NotFoundError, UsageError
from tests.support.sqs import Queue, Sqs, SqsProxy, receive_waits, without_long_polls

runner = CliRunner()


def saga_attributes(saga_id: str, step: str, command: str = "PaymentService.RefundPayment") -> dict[str, Any]:
    return {
        "saga_id": {"DataType": "String", "StringValue": saga_id},
        "step_name": {"DataType": "String", "StringValue": step},
        "command": {"DataType": "String", "StringValue": command},
    }


def fill(sqs: Sqs, queue: Queue, count: int, *, sagas: int = 5) -> list[str]:
    """``count`` compensation messages spread over ``sagas`` sagas and two steps."""
    bodies = [
        json.dumps({"saga_id": f"saga-{i % sagas}", "step_name": "charge" if i % 2 else "reserve", "n": i})
        for i in range(count)
    ]
    sqs.send(queue, bodies, attributes=lambda i: saga_attributes(f"saga-{i % sagas}", "charge" if i % 2 else "reserve"))
    return bodies


def peek_queue(queue: Queue, **options: Any) -> Any:
    client = sqs_client(AwsSettings())
    from sagactl.aws import resolve_queue

    return peek(client, resolve_queue(client, queue.url), PeekRequest(queue=queue.url, wait=0, **options))


@pytest.mark.slow
def test_peek_consumes_nothing_and_leaves_every_message_visible(sqs: Sqs) -> None:
    queue = sqs.queue("peek")
    bodies = fill(sqs, queue, 25)
    result = peek_queue(queue)
    assert sorted(m.body for m in result.messages) == sorted(bodies)
    assert result.scanned == 25 and not result.truncated and result.unseen == 0
    assert {m.receive_count for m in result.messages} == {1}
    assert sqs.counts(queue) == (25, 0)  # all visible again at once, none in flight
    again = peek_queue(queue)
    assert {m.receive_count for m in again.messages} == {2}  # each listing is one receive
    assert sqs.counts(queue) == (25, 0)


def test_an_arn_in_another_region_lists_that_queue_or_refuses(sqs: Sqs, sqs_elsewhere: Sqs) -> None:
    """`dlq list arn:aws:sqs:eu-west-1:…` with region us-east-1 refuses (exit 2, one line)
    instead of listing the us-east-1 queue of the same name; with --region eu-west-1 it lists
    the eu-west-1 messages."""
    here = sqs.queue("peek-twin")
    there = sqs_elsewhere.queue(name=here.name)
    fill(sqs, here, 4)
    bodies = fill(sqs_elsewhere, there, 2)
    refused = runner.invoke(app, ["dlq", "list", there.arn, "--wait-time", "0", "-o", "json"])
    assert refused.exit_code == 2 and refused.stdout == ""
    assert refused.stderr == (
        f"sagactl: error: queue {there.arn} is in region eu-west-1, but SQS is reached in region us-east-1;"
        " pass --region eu-west-1 (or set the endpoint's region) to use that queue\n"
    )
    listed = runner.invoke(app, ["dlq", "list", there.arn, "--region", "eu-west-1", "--wait-time", "0", "-o", "json"])
    assert listed.exit_code == 0, listed.stderr
    assert sorted(m["body"] for m in json.loads(listed.stdout)) == sorted(bodies)
    assert sqs.counts(here) == (4, 0)


def test_fields_come_from_attributes_else_from_the_json_body(sqs: Sqs) -> None:
    queue = sqs.queue("fields")
    sqs.send(
        queue,
        [
            json.dumps({"saga_id": "from-body", "step_name": "ship", "command": "Ship.Cancel", "error": {"code": 7}}),
            json.dumps({"saga_id": "body-loses"}),
            "not json at all",
        ],
        attributes=lambda i: saga_attributes("from-attr", "pay") if i == 1 else {},
    )
    by_body = {m.body: m for m in peek_queue(queue).messages}
    first = by_body[
        json.dumps({"saga_id": "from-body", "step_name": "ship", "command": "Ship.Cancel", "error": {"code": 7}})
    ]
    assert (first.saga_id, first.step_name, first.command, first.error) == (
        "from-body",
        "ship",
        "Ship.Cancel",
        '{"code":7}',
    )
    second = by_body[json.dumps({"saga_id": "body-loses"})]
    assert (second.saga_id, second.step_name) == ("from-attr", "pay")
    third = by_body["not json at all"]
    assert (third.saga_id, third.step_name, third.command) == (None, None, None)


@pytest.mark.slow
def test_filters_and_limit(sqs: Sqs) -> None:
    queue = sqs.queue("filter")
    fill(sqs, queue, 20, sagas=4)
    only = peek_queue(queue, filter=MessageFilter(frozenset({"saga-1", "saga-2"}), None))
    assert {m.saga_id for m in only.messages} == {"saga-1", "saga-2"} and len(only.messages) == 10
    steps = peek_queue(queue, filter=MessageFilter(None, "charge"))
    assert {m.step_name for m in steps.messages} == {"charge"} and len(steps.messages) == 10
    limited = peek_queue(queue, limit=3)
    assert len(limited.messages) == 3 and limited.truncated
    assert sqs.counts(queue) == (20, 0)


def test_group_by_saga_step_and_error(sqs: Sqs) -> None:
    queue = sqs.queue("group")
    fill(sqs, queue, 12, sagas=3)
    result = peek_queue(queue)
    by_saga = group_messages(result.messages, GroupBy.SAGA)
    assert [(g.key, len(g.messages)) for g in by_saga] == [("saga-0", 4), ("saga-1", 4), ("saga-2", 4)]
    assert by_saga[0].to_dict()["step_names"] == ["charge", "reserve"]
    by_step = group_messages(result.messages, GroupBy.STEP)
    assert sorted((g.key, len(g.messages)) for g in by_step) == [("charge", 6), ("reserve", 6)]
    by_error = group_messages(result.messages, GroupBy.ERROR)
    assert [(g.key, len(g.messages)) for g in by_error] == [(None, 12)]


@pytest.mark.slow
def test_fifo_peek_shows_group_heads_and_releases_them(sqs: Sqs) -> None:
    queue = sqs.queue("peekf", fifo=True)
    bodies = [f"g{i // 4}-m{i % 4}" for i in range(12)]
    sqs.send(queue, bodies, group=lambda i: f"g{i // 4}")
    result = peek_queue(queue)
    # one receive hands out up to 10; the rest of a group in flight waits behind it
    assert result.scanned == 10 and result.unseen == 2
    assert [m.body for m in result.messages] == bodies[:10]
    assert {m.group_id for m in result.messages} == {"g0", "g1", "g2"}
    assert sqs.counts(queue) == (12, 0)
    assert [m["Body"] for m in sqs.take_all(queue)] == bodies  # order untouched


def test_interrupted_listing_still_releases(sqs: Sqs, monkeypatch: pytest.MonkeyPatch) -> None:
    import sagactl.dlq.peek as dlq

    queue = sqs.queue("intr")
    fill(sqs, queue, 15)
    real = dlq.receive
    calls = []

    def receive_then_interrupt(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(dlq, "receive", receive_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        peek_queue(queue)
    assert sqs.counts(queue) == (15, 0)


def test_read_saga_ids_from_values_and_stdin() -> None:
    assert read_saga_ids(None) is None
    assert read_saga_ids(["a", "b"]) == {"a", "b"}
    assert read_saga_ids(["-", "c"], io.StringIO("a\n b  # comment\n\n")) == {"a", "b", "c"}
    assert read_saga_ids(["-"], io.StringIO("")) == frozenset()  # nothing piped: "no IDs given" (tests/cli)


def test_parse_message_keeps_binary_attributes() -> None:
    message = parse_message(
        {
            "MessageId": "m",
            "ReceiptHandle": "r",
            "Body": "x",
            "Attributes": {"SentTimestamp": "1700000000000", "ApproximateReceiveCount": "3"},
            "MessageAttributes": {"blob": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}},
        }
    )
    assert message.receive_count == 3
    assert message.to_dict()["attributes"]["blob"] == {
        "data_type": "Binary",
        "binary_value_base64": base64.b64encode(b"\x00\xff").decode(),
    }
    assert message.to_dict()["sent_at"] == "2023-11-14T22:13:20.000000Z"


# -- the command ------------------------------------------------------------------------------


@pytest.mark.slow
def test_dlq_list_json_contract(sqs: Sqs) -> None:
    queue = sqs.queue("cli")
    long_body = json.dumps({"saga_id": "saga-x", "step_name": "charge", "pad": "x" * 300})
    sqs.send(queue, [long_body], attributes=lambda i: saga_attributes("saga-x", "charge"))
    result = runner.invoke(app, ["dlq", "list", queue.name, "-o", "json", "--wait-time", "0"])
    assert result.exit_code == 0, result.stderr
    items = json.loads(result.stdout)
    assert len(items) == 1
    item = items[0]
    for key in ("message_id", "saga_id", "step_name", "receive_count", "sent_at", "body"):
        assert key in item
    assert item["body"] == long_body  # whole in json
    assert (item["saga_id"], item["step_name"], item["command"]) == ("saga-x", "charge", "PaymentService.RefundPayment")
    assert item["receive_count"] == 1 and item["sent_at"].endswith("Z")
    table = runner.invoke(app, ["dlq", "list", queue.url, "--wait-time", "0"])
    assert table.exit_code == 0
    assert "saga-x" in table.stdout and long_body not in table.stdout and "…" in table.stdout  # truncated
    quiet = runner.invoke(app, ["dlq", "list", queue.name, "-q", "--wait-time", "0"])
    assert (quiet.exit_code, quiet.stdout) == (0, "saga-x\n")
    assert sqs.counts(queue) == (1, 0)


@pytest.mark.parametrize(("fmt", "delimiter"), [("csv", ","), ("tsv", "\t")])
@pytest.mark.slow
def test_dlq_list_csv_and_tsv_carry_whole_bodies_and_the_saga_id(sqs: Sqs, fmt: str, delimiter: str) -> None:
    queue = sqs.queue("csv")
    body = ('{"note": "a 500-character body, with \\"quotes\\",\ta tab and\na newline"} ' * 10)[:500]
    sqs.send(queue, [body], attributes=lambda i: saga_attributes("saga-x", "charge"))
    result = runner.invoke(app, ["dlq", "list", queue.name, "-o", fmt, "--wait-time", "0"])
    assert (result.exit_code, result.stderr) == (0, "")
    header, row = csv.reader(io.StringIO(result.stdout), delimiter=delimiter)
    assert header[:4] == ["message_id", "saga_id", "step_name", "command"] and header[-1] == "body"
    message = dict(zip(header, row, strict=True))
    assert (message["saga_id"], message["body"], len(body)) == ("saga-x", body, 500)
    assert json.loads(message["attributes"])["saga_id"] == {"data_type": "String", "string_value": "saga-x"}
    grouped = runner.invoke(app, ["dlq", "list", queue.name, "--group-by", "saga", "-o", fmt, "--wait-time", "0"])
    header, row = csv.reader(io.StringIO(grouped.stdout), delimiter=delimiter)
    assert dict(zip(header, row, strict=True))["saga_id"] == "saga-x"


def test_dlq_list_group_by_and_filters_on_the_command_line(sqs: Sqs) -> None:
    queue = sqs.queue("cligrp")
    fill(sqs, queue, 10, sagas=2)
    grouped = runner.invoke(app, ["dlq", "list", queue.name, "--group-by", "saga", "-o", "json", "--wait-time", "0"])
    assert grouped.exit_code == 0, grouped.stderr
    assert [(g["saga_id"], g["count"]) for g in json.loads(grouped.stdout)] == [("saga-0", 5), ("saga-1", 5)]
    filtered = runner.invoke(
        app,
        ["dlq", "list", queue.name, "--saga-id", "saga-1", "--step", "charge", "-o", "json", "--wait-time", "0"],
    )
    assert filtered.exit_code == 0, filtered.stderr
    found = json.loads(filtered.stdout)
    assert {(m["saga_id"], m["step_name"]) for m in found} == {("saga-1", "charge")}
    assert sorted(json.loads(m["body"])["n"] for m in found) == [1, 3, 5, 7, 9]  # every one of them
    empty = runner.invoke(app, ["dlq", "list", queue.name, "--saga-id", "nope", "-o", "json", "--wait-time", "0"])
    assert (empty.exit_code, empty.stdout, empty.stderr) == (0, "[]\n", "")


def test_dlq_list_waits_for_a_long_poll_before_concluding(sqs: Sqs) -> None:
    queue = sqs.queue("wait")
    fill(sqs, queue, 3)
    result = runner.invoke(app, ["dlq", "list", queue.name, "-o", "json", "--wait-time", "1"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 3


WAITS = [(["--wait-time", "0"], 0), (["--wait-time", "3"], 3), ([], 1)]


@pytest.mark.parametrize(("flags", "wait"), WAITS, ids=["0", "3", "default"])
@pytest.mark.slow
def test_dlq_list_long_polls_as_long_as_it_is_told(sqs: Sqs, sqs_proxy: SqsProxy, flags: list[str], wait: int) -> None:
    """The receive that concludes the queue is drained waits --wait-time seconds (default 1);
    0 means no long poll at all. (The proxy records the wait and lets moto answer at once.)"""
    queue = sqs.queue("waits")
    fill(sqs, queue, 12)
    sqs_proxy.handler = without_long_polls
    result = runner.invoke(app, ["dlq", "list", queue.name, "-o", "json", "--endpoint-url", sqs_proxy.url, *flags])
    assert result.exit_code == 0, result.stderr
    assert len(json.loads(result.stdout)) == 12
    waits = receive_waits(sqs_proxy)
    assert waits[-1] == wait and set(waits) <= {0, wait}


# -- SQS move tasks: Stubber (moto does not implement these calls) ---------------------------

DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/orders-dlq"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:orders-dlq"
SRC_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/orders"
SRC_ARN = "arn:aws:sqs:us-east-1:123456789012:orders"


def stubbed() -> tuple[Any, Stubber]:
    # a loopback endpoint nothing listens on: the Stubber answers before anything is sent
    client = sqs_client(AwsSettings(region="us-east-1", endpoint_url="http://127.0.0.1:9"), env={})
    return client, Stubber(client)


def expect_queue(stub: Stubber, name: str, url: str, arn: str, depth: int = 0) -> None:
    stub.add_response("get_queue_url", {"QueueUrl": url}, {"QueueName": name})
    stub.add_response(
        "get_queue_attributes",
        {"Attributes": {"QueueArn": arn, "ApproximateNumberOfMessages": str(depth)}},
        {"QueueUrl": url, "AttributeNames": ["All"]},
    )


def test_native_starts_a_move_task_with_the_rate_cap() -> None:
    client, stub = stubbed()
    expect_queue(stub, "orders-dlq", DLQ_URL, DLQ_ARN, depth=42)
    expect_queue(stub, "orders", SRC_URL, SRC_ARN)
    stub.add_response(
        "start_message_move_task",
        {"TaskHandle": "handle-1"},
        {"SourceArn": DLQ_ARN, "DestinationArn": SRC_ARN, "MaxNumberOfMessagesPerSecond": 50},
    )
    with stub:
        task = start_move_task(client, "orders-dlq", "orders", 50)
    stub.assert_no_pending_responses()
    assert task.to_dict() | {} == {
        "task_handle": "handle-1",
        "status": "RUNNING",
        "source_arn": DLQ_ARN,
        "destination_arn": SRC_ARN,
        "max_messages_per_second": 50,
        "approximate_messages_moved": None,
        "approximate_messages_to_move": 42,
        "failure_reason": None,
        "started_at": None,
    }


def test_native_without_to_lets_sqs_use_each_message_source() -> None:
    client, stub = stubbed()
    expect_queue(stub, "orders-dlq", DLQ_URL, DLQ_ARN)
    stub.add_response("start_message_move_task", {"TaskHandle": "h"}, {"SourceArn": DLQ_ARN})
    with stub:
        assert start_move_task(client, "orders-dlq", None, None).destination_arn is None


def test_native_rate_must_be_a_whole_number_sqs_accepts() -> None:
    client, _ = stubbed()
    for rate in (0.5, 501, 2.5):
        with pytest.raises(UsageError, match="--rate with --native"):
            start_move_task(client, "orders-dlq", None, rate)


def test_status_lists_move_tasks() -> None:
    client, stub = stubbed()
    expect_queue(stub, "orders-dlq", DLQ_URL, DLQ_ARN)
    stub.add_response(
        "list_message_move_tasks",
        {
            "Results": [
                {
                    "TaskHandle": "h2",
                    "Status": "RUNNING",
                    "SourceArn": DLQ_ARN,
                    "MaxNumberOfMessagesPerSecond": 10,
                    "ApproximateNumberOfMessagesMoved": 5,
                    "ApproximateNumberOfMessagesToMove": 20,
                    "StartedTimestamp": 1700000000000,
                },
                {"Status": "COMPLETED", "SourceArn": DLQ_ARN, "ApproximateNumberOfMessagesMoved": 9},
            ]
        },
        {"SourceArn": DLQ_ARN, "MaxResults": 10},
    )
    with stub:
        tasks = list_move_tasks(client, "orders-dlq")
    assert [(t.task_handle, t.status, t.moved) for t in tasks] == [("h2", "RUNNING", 5), (None, "COMPLETED", 9)]
    assert tasks[0].to_dict()["started_at"] == "2023-11-14T22:13:20.000000Z"


def test_cancel_move_task_and_unknown_handle() -> None:
    client, stub = stubbed()
    stub.add_response("cancel_message_move_task", {"ApproximateNumberOfMessagesMoved": 12}, {"TaskHandle": "h"})
    stub.add_client_error(
        "cancel_message_move_task",
        service_error_code="ResourceNotFoundException",
        service_message="no such task",
        http_status_code=404,
        expected_params={"TaskHandle": "gone"},
    )
    with stub:
        assert cancel_move_task(client, "h").moved == 12
        with pytest.raises(NotFoundError, match="no running move task with handle gone"):
            cancel_move_task(client, "gone")


def test_native_refuses_filters_and_needs_one_mode(aws_env: dict[str, str]) -> None:
    result = runner.invoke(app, ["redrive", "--dlq", "q", "--native", "--saga-id", "s", "--dry-run"])
    assert result.exit_code == 2
    assert "cannot take --saga-id, --dry-run" in result.stderr
    neither = runner.invoke(app, ["redrive"])
    assert (
        neither.exit_code == 2 and "pass one of --dlq QUEUE, --status QUEUE or --cancel TASK_HANDLE" in neither.stderr
    )
    both = runner.invoke(app, ["redrive", "--dlq", "q", "--status", "q"])
    assert both.exit_code == 2 and "got --dlq and --status" in both.stderr


# -- SQS move tasks over HTTP: the command line against the proxy's emulation on moto ---------


def dead_letter(sqs: Sqs, source: Queue, bodies: list[str]) -> None:
    """Send ``bodies`` to ``source`` and receive them past its maxReceiveCount (5) without
    deleting, like a consumer that keeps failing: moto moves them to the dead-letter queue."""
    sqs.send(source, bodies, attributes=lambda i: saga_attributes(f"saga-{i}", "charge"))
    for _ in range(10):
        sqs.client.receive_message(QueueUrl=source.url, MaxNumberOfMessages=10, VisibilityTimeout=0)
        if sqs.counts(source) == (0, 0):
            return
    raise AssertionError(f"moto did not dead-letter the messages of {source.name}")


def redrive_cli(proxy: SqsProxy, *args: str) -> tuple[int, Any, str]:
    """``sagactl redrive ARGS -o json`` against the proxy: exit code, parsed stdout, stderr."""
    result = runner.invoke(app, ["redrive", *args, "--endpoint-url", proxy.url, "-o", "json"])
    return result.exit_code, json.loads(result.stdout) if result.stdout.strip() else None, result.stderr


def settled_task(proxy: SqsProxy, queue: Queue, timeout: float = 10) -> dict[str, Any]:
    """The newest move task of ``queue`` (``redrive --status``) once it is no longer running."""
    deadline = time.monotonic() + timeout
    while True:
        code, tasks, stderr = redrive_cli(proxy, "--status", queue.name)
        assert code == 0 and tasks, stderr
        if tasks[0]["status"] not in ("RUNNING", "CANCELLING") or time.monotonic() > deadline:
            return dict(tasks[0])
        time.sleep(0.1)


def not_running(handle: str) -> str:
    return f"sagactl: error: no running move task with handle {handle}; see 'sagactl redrive --status QUEUE'\n"


@pytest.mark.slow
def test_native_moves_every_dead_lettered_message_back_to_its_source(sqs: Sqs, sqs_proxy: SqsProxy) -> None:
    dlq, source = sqs.dlq_pair()
    bodies = [json.dumps({"saga_id": f"saga-{i}", "n": i}) for i in range(8)]
    dead_letter(sqs, source, bodies)
    assert sqs.counts(dlq) == (8, 0)
    code, task, stderr = redrive_cli(sqs_proxy, "--native", "--dlq", dlq.name)
    assert code == 0, stderr
    assert task["native"] is True and task["status"] == "RUNNING" and task["task_handle"]
    assert (task["source_arn"], task["destination_arn"], task["approximate_messages_to_move"]) == (dlq.arn, None, 8)
    assert sqs_proxy.calls.count("StartMessageMoveTask") == 1
    done = settled_task(sqs_proxy, dlq)
    started = datetime.fromisoformat(done.pop("started_at").replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - started).total_seconds()) < 60
    assert done == {
        "task_handle": None,  # SQS hands the handle out only while the task runs
        "status": "COMPLETED",
        "source_arn": dlq.arn,
        "destination_arn": None,
        "max_messages_per_second": None,
        "approximate_messages_moved": 8,
        "approximate_messages_to_move": 8,
        "failure_reason": None,
    }
    assert sqs.counts(dlq) == (0, 0)
    moved = sqs.receive_all(source)
    assert sorted(m["Body"] for m in moved) == sorted(bodies)
    assert {m["MessageAttributes"]["saga_id"]["StringValue"] for m in moved} == {f"saga-{i}" for i in range(8)}


@pytest.mark.slow
def test_native_to_another_queue_with_a_rate_and_its_status(sqs: Sqs, sqs_proxy: SqsProxy) -> None:
    dlq, source = sqs.dlq_pair()
    elsewhere = sqs.queue("elsewhere")
    fill(sqs, dlq, 6)
    code, task, stderr = redrive_cli(sqs_proxy, "--native", "--dlq", dlq.name, "--to", elsewhere.name, "--rate", "25")
    assert code == 0, stderr
    assert (task["destination_arn"], task["max_messages_per_second"]) == (elsewhere.arn, 25)
    done = settled_task(sqs_proxy, dlq)
    assert (done["status"], done["destination_arn"], done["max_messages_per_second"]) == (
        "COMPLETED",
        elsewhere.arn,
        25,
    )
    assert (done["approximate_messages_moved"], done["approximate_messages_to_move"]) == (6, 6)
    assert sqs.counts(dlq) == (0, 0) and sqs.counts(elsewhere) == (6, 0) and sqs.counts(source) == (0, 0)
    # a second run: --status lists both, newest first
    fill(sqs, dlq, 2)
    assert redrive_cli(sqs_proxy, "--native", "--dlq", dlq.name, "--to", elsewhere.name)[0] == 0
    settled_task(sqs_proxy, dlq)
    code, tasks, _ = redrive_cli(sqs_proxy, "--status", dlq.name)
    assert code == 0
    assert [(t["status"], t["approximate_messages_moved"], t["max_messages_per_second"]) for t in tasks] == [
        ("COMPLETED", 2, None),
        ("COMPLETED", 6, 25),
    ]


@pytest.mark.slow
def test_cancel_a_running_move_task(sqs: Sqs, sqs_proxy: SqsProxy) -> None:
    dlq, source = sqs.dlq_pair()
    fill(sqs, dlq, 10)
    started = runner.invoke(
        app, ["redrive", "--native", "--dlq", dlq.name, "--rate", "1", "-q", "--endpoint-url", sqs_proxy.url]
    )
    assert started.exit_code == 0, started.stderr
    handle = started.stdout.strip()
    code, running, _ = redrive_cli(sqs_proxy, "--status", dlq.name)
    assert code == 0 and (running[0]["task_handle"], running[0]["status"]) == (handle, "RUNNING")
    code, again, stderr = redrive_cli(sqs_proxy, "--native", "--dlq", dlq.name)  # one task per queue at a time
    assert code == 2 and again is None
    assert stderr.startswith("sagactl: error: SQS rejected StartMessageMoveTask on ")
    assert "There is already a task running" in stderr and stderr.count("\n") == 1
    code, cancelled, stderr = redrive_cli(sqs_proxy, "--cancel", handle)
    assert code == 0, stderr
    assert (cancelled["task_handle"], cancelled["status"]) == (handle, "CANCELLING")
    assert cancelled["approximate_messages_moved"] < 10
    done = settled_task(sqs_proxy, dlq)
    assert done["status"] == "CANCELLED" and done["task_handle"] is None
    moved = done["approximate_messages_moved"]
    assert moved < 10
    assert sqs.counts(dlq) == (10 - moved, 0) and sqs.counts(source) == (moved, 0)  # the rest stays, visible
    code, _, stderr = redrive_cli(sqs_proxy, "--cancel", handle)  # no longer running
    assert code == 2 and stderr == not_running(handle)


def test_cancel_an_unknown_or_malformed_task_handle(sqs: Sqs, sqs_proxy: SqsProxy) -> None:
    dlq, _ = sqs.dlq_pair()
    unknown = base64.b64encode(json.dumps({"taskId": "no-such-task", "sourceArn": dlq.arn}).encode()).decode()
    code, out, stderr = redrive_cli(sqs_proxy, "--cancel", unknown)
    assert (code, out, stderr) == (2, None, not_running(unknown))
    code, out, stderr = redrive_cli(sqs_proxy, "--cancel", "not-a-task-handle")
    assert code == 2 and out is None
    assert stderr.startswith("sagactl: error: SQS rejected CancelMessageMoveTask on the move task: InvalidParameter")
    assert stderr.count("\n") == 1


def test_native_on_a_queue_that_is_no_dead_letter_queue(sqs: Sqs, sqs_proxy: SqsProxy) -> None:
    plain = sqs.queue("plain")
    fill(sqs, plain, 2)
    code, out, stderr = redrive_cli(sqs_proxy, "--native", "--dlq", plain.name)
    assert code == 2 and out is None
    assert stderr == (
        f"sagactl: error: SQS rejected StartMessageMoveTask on '{plain.name}': InvalidParameterValue:"
        " Source queue must be configured as a Dead Letter Queue.\n"
    )
    assert sqs.counts(plain) == (2, 0)


@pytest.mark.parametrize(
    "flags",
    [
        ["--saga-id", "saga-1"],
        ["--step", "charge"],
        ["--only-open"],
        ["--max", "3"],
        ["--max-redrives", "2"],
        ["--poison-queue", "poison"],
        ["--dry-run"],
    ],
    ids=lambda flags: flags[0],
)
@pytest.mark.slow
def test_native_with_a_filter_or_cap_is_a_usage_error_and_moves_nothing(
    sqs: Sqs, sqs_proxy: SqsProxy, flags: list[str]
) -> None:
    dlq, source = sqs.dlq_pair()
    fill(sqs, dlq, 4)
    code, out, stderr = redrive_cli(sqs_proxy, "--native", "--dlq", dlq.name, *flags)
    assert code == 2 and out is None
    assert stderr == (
        f"sagactl: error: --native moves every message server-side and cannot take {flags[0]};"
        " drop --native to filter, cap or dry-run the redrive\n"
    )
    assert "StartMessageMoveTask" not in sqs_proxy.calls
    assert sqs.counts(dlq) == (4, 0) and sqs.counts(source) == (0, 0)


@pytest.mark.slow
def test_native_status_and_cancel_from_a_shell(sqs: Sqs, sqs_proxy: SqsProxy, aws_env: dict[str, str]) -> None:
    """The runbook, with the installed command: start a move, watch it, stop it."""
    dlq, source = sqs.dlq_pair()
    fill(sqs, dlq, 40)  # 40 s at --rate 1: the task is still running however slow the next commands start
    env = {**os.environ, **aws_env, "AWS_ENDPOINT_URL_SQS": sqs_proxy.url}

    def sagactl(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "sagactl", "redrive", *args]
        return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)

    started = sagactl("--native", "--dlq", dlq.name, "--rate", "1", "-q")
    assert started.returncode == 0, started.stderr
    handle = started.stdout.strip()
    status = sagactl("--status", dlq.name, "-q")  # -q: the handles of the tasks still running
    assert status.returncode == 0 and status.stdout == f"{handle}\n"
    cancelled = sagactl("--cancel", handle, "-o", "json")
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "CANCELLING"
    done = settled_task(sqs_proxy, dlq)
    assert done["status"] == "CANCELLED"
    assert sum(sqs.counts(dlq)) + sum(sqs.counts(source)) == 40
