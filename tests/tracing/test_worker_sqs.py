"""A worker sending over SQS does not wait for the answer: the attempt's span ends when the
command is sent (outcome ``sent``), and applying the answer that comes on the reply queue is a
span of its own in the saga's trace, linked to the attempt it answers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.otlp import otlp_http, parent_in
from tests.support.sqs import Sqs
from tests.transports.test_sqs import Participant, completed


@pytest.mark.slow
def test_a_reply_applied_by_a_worker_is_linked_to_its_attempt(
    sqs: Sqs, aws_env: dict[str, str], tmp_path: Path
) -> None:
    commands, replies = sqs.queue("commands"), sqs.queue("replies")
    (tmp_path / "pay.yaml").write_text(
        f"saga: Pay\nendpoints:\n  payment: {{type: sqs, queue: {commands.name}, reply_queue: {replies.name}}}\n"
        "steps:\n  - name: charge\n    endpoint: payment\n"
        "    action: {command: PaymentService.Charge, body: {amount: 3}}\n"
    )
    dsn = f"sqlite:///{tmp_path}/log.db"
    with otlp_http() as otlp, Participant(sqs, commands, completed) as participant:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGACTL_", "OTEL_", "TRACE"))}
        env.update({**aws_env, **otlp.env, "SAGACTL_DSN": dsn})
        argv = [sys.executable, "-m", "sagactl"]
        recorded = subprocess.run(
            [*argv, "run", "pay.yaml", "--detach", "-o", "json"], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert recorded.returncode == 0, recorded.stderr
        trace_id = json.loads(recorded.stdout)["trace_id"]
        worker = subprocess.Popen(
            [*argv, "worker", "--poll", "100ms"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            spans = otlp.wait_for(lambda s: any(x.name == "charge action reply" for x in s), timeout=60)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
            for stream in (worker.stdout, worker.stderr):
                if stream is not None:
                    stream.close()
    [sent] = [s for s in spans if s.name == "charge action"]
    [reply] = [s for s in spans if s.name == "charge action reply"]
    assert (sent.kind, sent.attributes["sagactl.outcome"]) == ("producer", "sent")
    assert (reply.kind, reply.attributes["sagactl.outcome"]) == ("consumer", "succeeded")
    assert {sent.trace_id, reply.trace_id} == {trace_id} and reply.parent_id == sent.parent_id
    assert [(lk.span_id, lk.attributes) for lk in reply.links] == [(sent.span_id, {"sagactl.link": "answers"})]
    [command] = participant.seen
    assert parent_in(command["MessageAttributes"]["traceparent"]["StringValue"]) == sent.context
