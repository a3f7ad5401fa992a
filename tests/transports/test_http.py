"""http transport: classification of every answer class against a real local server (DESIGN 5)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sagactl.cli import app
from sagactl.models import Phase
from sagactl.transports.base import Request, Status
from sagactl.transports.http import HttpTransport
from tests.support.participants import Participants, Respond, answer, ok, reset, slow, transient


def request(phase: Phase = Phase.ACTION, timeout: float = 5.0, **spec: Any) -> Request:
    return Request(
        saga_id="s-1",
        step_name="charge",
        phase=phase,
        idempotency_key=f"s-1:charge:{phase.value}",
        spec={"method": "POST", "path": "/charges", **spec},
        body={"amount": 12.5, "items": [1, 2], "note": "café"},
        timeout=timeout,
    )


@pytest.fixture
def transport(participants: Participants) -> Iterator[HttpTransport]:
    http = HttpTransport("payment", {"url": participants.url + "/pay/", "headers": {"Authorization": "Bearer t"}})
    try:
        yield http
    finally:
        http.close()


def test_request_shape_headers_and_body(transport: HttpTransport, participants: Participants) -> None:
    reply = transport.call(request(method="put", path="charges/7", headers={"X-Trace": 42}))

    assert reply.status is Status.OK
    (call,) = participants.calls
    assert (call.method, call.path) == ("PUT", "/pay/charges/7")
    assert call.body == {"amount": 12.5, "items": [1, 2], "note": "café"}
    assert call.headers["Idempotency-Key"] == "s-1:charge:action"
    assert call.headers["X-Saga-Id"] == "s-1"
    assert call.headers["X-Saga-Step"] == "charge"
    assert call.headers["Content-Type"] == "application/json"
    assert call.headers["Authorization"] == "Bearer t"
    assert call.headers["X-Trace"] == "42"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_methods(method: str, transport: HttpTransport, participants: Participants) -> None:
    assert transport.call(request(method=method)).status is Status.OK
    assert participants.calls[0].method == method


@pytest.mark.parametrize(
    ("behaviour", "result"),
    [
        (ok({"payment_id": "p-1"}), {"payment_id": "p-1"}),
        (ok([1, "two"], status=201), [1, "two"]),
        (answer(202, "queued"), "queued"),
        (answer(204), None),
        (Respond(200, b"plain text, not JSON"), "plain text, not JSON"),
    ],
)
def test_2xx_is_success_with_the_json_body_as_result(
    behaviour: Respond, result: Any, transport: HttpTransport, participants: Participants
) -> None:
    participants.script("charge", "action", behaviour)
    reply = transport.call(request())
    assert (reply.status, reply.result, reply.error, reply.delivered) == (Status.OK, result, None, True)


@pytest.mark.parametrize("code", [404, 410])
def test_404_410_mean_already_undone_for_a_compensation(
    code: int, transport: HttpTransport, participants: Participants
) -> None:
    participants.script("charge", "compensation", answer(code, {"error": "gone"}))
    reply = transport.call(request(Phase.COMPENSATION))
    assert (reply.status, reply.already_undone) == (Status.OK, True)


@pytest.mark.parametrize("code", [404, 410])
def test_404_410_are_definitive_for_an_action(code: int, transport: HttpTransport, participants: Participants) -> None:
    participants.script("charge", "action", answer(code, {"error": "no such route"}))
    reply = transport.call(request())
    assert (reply.status, reply.delivered, reply.already_undone) == (Status.REFUSED, True, False)
    assert reply.error == f'POST {participants.url}/pay/charges: HTTP {code}: {{"error": "no such route"}}'


@pytest.mark.parametrize("code", [408, 425, 429, 500, 502, 503, 504, 599])
@pytest.mark.parametrize("phase", [Phase.ACTION, Phase.COMPENSATION])
def test_408_425_429_and_5xx_are_transient_and_delivered(
    code: int, phase: Phase, transport: HttpTransport, participants: Participants
) -> None:
    participants.script("charge", phase.value, answer(code, {"error": "busy"}))
    reply = transport.call(request(phase))
    assert (reply.status, reply.delivered, reply.retry_after) == (Status.TRANSIENT, True, None)
    assert f"HTTP {code}" in (reply.error or "")


@pytest.mark.parametrize("code", [400, 401, 403, 405, 409, 412, 422, 451])
@pytest.mark.parametrize("phase", [Phase.ACTION, Phase.COMPENSATION])
def test_other_4xx_are_definitive(
    code: int, phase: Phase, transport: HttpTransport, participants: Participants
) -> None:
    participants.script("charge", phase.value, answer(code))
    reply = transport.call(request(phase))
    assert (reply.status, reply.delivered) == (Status.REFUSED, True)
    assert reply.error == f"POST {participants.url}/pay/charges: HTTP {code}"


def test_retry_after_seconds(transport: HttpTransport, participants: Participants) -> None:
    participants.script("charge", "action", transient(429, retry_after=7))
    assert transport.call(request()).retry_after == 7.0


def test_retry_after_http_date(transport: HttpTransport, participants: Participants) -> None:
    later = datetime.now(UTC) + timedelta(seconds=120)
    participants.script("charge", "action", transient(503, retry_after=format_datetime(later, usegmt=True)))
    retry_after = transport.call(request()).retry_after
    assert retry_after is not None and 115 <= retry_after <= 120


@pytest.mark.parametrize(
    ("value", "expected"),
    [("soon", None), ("-5", 0.0), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
    ids=["garbage-ignored", "negative-zero", "past-date-zero"],
)
def test_retry_after_garbage_is_ignored_and_the_past_is_zero(
    value: str, expected: float | None, transport: HttpTransport, participants: Participants
) -> None:
    participants.script("charge", "action", transient(503, retry_after=value))
    reply = transport.call(request())
    assert (reply.status, reply.retry_after) == (Status.TRANSIENT, expected)


def test_connection_refused_was_never_delivered(closed_port: int) -> None:
    http = HttpTransport("down", {"url": f"http://127.0.0.1:{closed_port}"})
    try:
        reply = http.call(request())
    finally:
        http.close()
    assert (reply.status, reply.delivered) == (Status.TRANSIENT, False)
    assert "cannot connect" in (reply.error or "")


def test_connect_timeout_was_never_delivered(blackhole_port: int) -> None:
    """The connection was never established: the participant cannot have acted."""
    url = f"http://127.0.0.1:{blackhole_port}"
    http = HttpTransport("firewalled", {"url": url})
    try:
        reply = http.call(request(timeout=0.3))
    finally:
        http.close()
    assert (reply.status, reply.delivered, reply.result) == (Status.TRANSIENT, False, None)
    assert (reply.error or "").startswith(f"POST {url}/charges: cannot connect: ")


def test_dns_failure_was_never_delivered() -> None:
    http = HttpTransport("nowhere", {"url": "http://nonexistent.invalid"})
    try:
        reply = http.call(request())
    finally:
        http.close()
    assert (reply.status, reply.delivered, reply.result) == (Status.TRANSIENT, False, None)
    assert (reply.error or "").startswith("POST http://nonexistent.invalid/charges: cannot connect: ")


def test_read_timeout_is_transient_with_unknown_outcome(transport: HttpTransport, participants: Participants) -> None:
    participants.script("charge", "action", slow(3.0))
    reply = transport.call(request(timeout=0.2))
    assert (reply.status, reply.delivered) == (Status.TRANSIENT, True)
    assert reply.error == f"POST {participants.url}/pay/charges: no answer within 0.2s"
    assert len(participants.calls) == 1  # it did arrive


def test_reset_after_sending_is_transient_with_unknown_outcome(
    transport: HttpTransport, participants: Participants
) -> None:
    participants.script("charge", "action", reset())
    reply = transport.call(request())
    assert (reply.status, reply.delivered) == (Status.TRANSIENT, True)
    assert len(participants.calls) == 1
    assert transport.call(request()).status is Status.OK  # the client recovers on a new connection


def test_unsupported_scheme_is_refused_without_delivery() -> None:
    http = HttpTransport("odd", {"url": "ftp://127.0.0.1/x"})
    try:
        reply = http.call(request())
    finally:
        http.close()
    assert (reply.status, reply.delivered) == (Status.REFUSED, False)


def test_unencodable_header_is_refused_without_delivery(transport: HttpTransport, participants: Participants) -> None:
    reply = transport.call(request(headers={"X-Note": "€ not latin-1"}))
    assert (reply.status, reply.delivered) == (Status.REFUSED, False)
    assert participants.calls == []


def test_keep_alive_one_connection_for_many_calls(transport: HttpTransport, participants: Participants) -> None:
    for _ in range(5):
        assert transport.call(request()).status is Status.OK
    assert len({c.client_port for c in participants.calls}) == 1


class _Raw:
    """A one-handler HTTP server on 127.0.0.1 for answers the participant server does not script."""

    def __init__(self, handle: Any) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                try:
                    handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up waiting: expected here

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_gzip_answer_is_decoded_once() -> None:
    import gzip
    import json

    def handle(h: Any) -> None:
        body = gzip.compress(json.dumps({"id": "é"}).encode())
        h.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    server = _Raw(handle)
    http = HttpTransport("gz", {"url": server.url})
    try:
        reply = http.call(request())
    finally:
        http.close()
        server.close()
    assert (reply.status, reply.result) == (Status.OK, {"id": "é"})


def test_a_trickled_answer_is_bounded_by_the_step_timeout() -> None:
    """Each read arrives well within the timeout, the whole answer does not: outcome unknown.
    The body would take ~8 s to trickle in; the call gives up soon after its 0.4 s."""
    import time

    body = b'{"slow": "' + b"x" * 88 + b'"}'

    def handle(h: Any) -> None:
        h.wfile.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n" + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )
        h.wfile.flush()
        for byte in body:
            time.sleep(0.08)
            h.wfile.write(bytes([byte]))
            h.wfile.flush()

    server = _Raw(handle)
    http = HttpTransport("slow", {"url": server.url})
    try:
        started = time.monotonic()
        reply = http.call(request(timeout=0.4))
        took = time.monotonic() - started
    finally:
        http.close()
        server.close()
    assert reply.status is Status.TRANSIENT and reply.delivered
    assert reply.error is not None and "no complete answer within 0.4s" in reply.error
    assert took < 4.0  # 10x the timeout on a loaded machine, still half the trickle's 8 s


# -- placeholders in the path -----------------------------------------------------------------

ROUTED_YAML = """\
saga: Routed
endpoints:
  api: {{type: http, url: "{url}/api"}}
defaults:
  retry: {{max_attempts: 1}}
steps:
  - name: fetch
    endpoint: api
    action: {{method: POST, path: "/orders/${{input.id}}/items?note=${{input.note}}&page=2"}}
  - name: climb
    endpoint: api
    action: {{method: POST, path: "/orders/${{input.dot}}/x?d=${{input.dot}}"}}
"""


@pytest.mark.parametrize(
    ("inputs", "paths"),
    [
        (
            {"id": "../../admin?all=true#", "note": "a&b=c#d /e", "dot": ".."},
            [
                "/api/orders/..%2F..%2Fadmin%3Fall%3Dtrue%23/items?note=a%26b%3Dc%23d%20%2Fe&page=2",
                "/api/orders/%2E%2E/x?d=..",
            ],
        ),
        (
            {"id": 42, "note": "café", "dot": "."},
            ["/api/orders/42/items?note=caf%C3%A9&page=2", "/api/orders/%2E/x?d=."],
        ),
    ],
    ids=["traversal", "plain"],
)
def test_substituted_values_never_change_the_route(
    inputs: dict[str, Any], paths: list[str], participants: Participants, tmp_path: Path
) -> None:
    """End to end (`sagactl run`): each value is percent-encoded as one path segment or one
    query value; the template's own / ? & = stay. The participant records the raw request
    target it received."""
    path = tmp_path / "routed.yaml"
    path.write_text(ROUTED_YAML.format(url=participants.url))
    result = CliRunner().invoke(
        app, ["run", str(path), "--input", json.dumps(inputs), "--dsn", f"sqlite:///{tmp_path / 'log.db'}", "-q"]
    )
    assert result.exit_code == 0, result.stderr
    assert [call.path for call in participants.calls] == paths
