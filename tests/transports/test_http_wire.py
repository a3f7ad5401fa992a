"""http transport on the wire, what test_http.py does not pin: TLS verification, redirects
refused, the headers as sent, userinfo credentials, connections kept and replaced, proxies
from the environment, the capped answer, and which failures never delivered the request."""

from __future__ import annotations

import base64
import gzip
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st
from urllib3.util import parse_url

from sagactl.transports import http as http_transport
from sagactl.transports.base import Request, Status
from sagactl.transports.http import MAX_BODY, HttpTransport
from tests.support.participants import Participants
from tests.support.rawhttp import ForwardProxy, RawServer, reply
from tests.transports.test_http import request

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def called(url: str, req: Request | None = None, **config: Any) -> Any:
    http = HttpTransport("wire", {"url": url, **config})
    try:
        return http.call(req or request())
    finally:
        http.close()


@pytest.fixture(autouse=True)
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No proxy or CA bundle from the machine's environment; a fresh TLS context per test."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
    http_transport._tls_context.cache_clear()
    yield
    http_transport._tls_context.cache_clear()


# -- TLS -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def authority() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def https_server(authority: trustme.CA) -> Iterator[RawServer]:
    """An HTTPS participant whose certificate names localhost only."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(context)
    server = RawServer(lambda h: reply(h, 200, b'{"tls": true}'), tls=context)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def trusted(authority: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))


def test_an_unknown_certificate_is_refused_before_anything_is_sent(https_server: RawServer) -> None:
    reply_ = called(f"https://localhost:{https_server.port}")
    assert (reply_.status, reply_.delivered) == (Status.TRANSIENT, False)
    assert "cannot connect: TLS:" in (reply_.error or "") and "CERTIFICATE_VERIFY_FAILED" in (reply_.error or "")
    assert https_server.seen == []


@pytest.mark.usefixtures("trusted")
def test_a_certificate_from_the_configured_bundle_is_accepted(https_server: RawServer) -> None:
    reply_ = called(f"https://localhost:{https_server.port}")
    assert (reply_.status, reply_.result) == (Status.OK, {"tls": True})
    assert [s.target for s in https_server.seen] == ["/charges"]


@pytest.mark.usefixtures("trusted")
def test_a_certificate_for_another_host_is_refused(https_server: RawServer) -> None:
    reply_ = called(f"https://127.0.0.1:{https_server.port}")  # the certificate names localhost only
    assert (reply_.status, reply_.delivered) == (Status.TRANSIENT, False)
    assert "cannot connect: TLS:" in (reply_.error or "")
    assert https_server.seen == []


def test_a_tls_handshake_that_never_comes_is_a_connect_timeout() -> None:
    """A server that accepts the connection but never answers the handshake: nothing was
    sent, and the step's timeout bounds the wait."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    try:
        started = time.monotonic()
        reply_ = called(f"https://localhost:{listener.getsockname()[1]}", request(timeout=0.3))
        took = time.monotonic() - started
    finally:
        for sock in accepted:
            sock.close()
        listener.close()
    assert (reply_.status, reply_.delivered) == (Status.TRANSIENT, False)
    assert "cannot connect: no connection within" in (reply_.error or "")
    assert took < 3.0


# -- what is sent ----------------------------------------------------------------------------


def test_headers_are_merged_without_regard_to_case() -> None:
    """Endpoint headers, then the step's, then the saga headers: one value per name."""
    server = RawServer(lambda h: reply(h, 200))
    try:
        endpoint = {"content-type": "text/plain", "x-tenant": "a", "User-Agent": "shop-client/2", "X-Count": 3}
        reply_ = called(server.url, request(headers={"X-TENANT": "b"}), headers=endpoint)
    finally:
        server.close()
    assert reply_.status is Status.OK
    (seen,) = server.seen
    assert seen.all("Content-Type") == ["application/json"]
    assert seen.all("X-Tenant") == ["b"]
    assert seen.all("User-Agent") == ["shop-client/2"]
    assert seen.all("X-Count") == ["3"]
    assert seen.all("Idempotency-Key") == ["s-1:charge:action"]
    assert seen.all("X-Saga-Phase") == ["action"]
    assert seen.all("Host") == [f"127.0.0.1:{server.port}"]


def test_userinfo_is_sent_as_basic_credentials(participants: Participants) -> None:
    url = participants.url.replace("http://", "http://sh%40op:p%3Ass@")
    assert called(url).status is Status.OK
    expected = "Basic " + base64.b64encode(b"sh@op:p:ss").decode()
    assert participants.calls[0].headers["Authorization"] == expected


def test_an_authorization_header_configured_wins_over_userinfo(participants: Participants) -> None:
    url = participants.url.replace("http://", "http://shop:pass@")
    assert called(url, headers={"Authorization": "Bearer t"}).status is Status.OK
    assert participants.calls[0].headers["Authorization"] == "Bearer t"


def test_a_line_break_in_a_header_is_refused_without_delivery(participants: Participants) -> None:
    reply_ = called(participants.url, request(headers={"X-Note": "a\r\nX-Injected: 1"}))
    assert (reply_.status, reply_.delivered) == (Status.REFUSED, False)
    assert participants.calls == []


def test_a_path_with_spaces_is_percent_encoded(participants: Participants) -> None:
    assert called(participants.url, request(path="/orders/a b/ü")).status is Status.OK
    assert participants.calls[0].path == "/orders/a%20b/%C3%BC"


# -- answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed(code: int) -> None:
    server = RawServer(lambda h: reply(h, code, b"moved", "Location: /elsewhere"))
    try:
        reply_ = called(server.url)
    finally:
        server.close()
    assert (reply_.status, reply_.delivered) == (Status.REFUSED, True)
    assert reply_.error == f"POST {server.url}/charges: HTTP {code}: moved"
    assert [s.target for s in server.seen] == ["/charges"]


def _huge(h: BaseHTTPRequestHandler, written: list[int]) -> None:
    """Declares a gigabyte and writes until the client stops reading."""
    h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1073741824\r\n\r\n[")
    block = b"0," * (512 * 1024)
    while True:
        h.wfile.write(block)
        written[0] += len(block)


def test_a_huge_answer_is_never_read_whole() -> None:
    written = [0]
    server = RawServer(lambda h: _huge(h, written))
    try:
        started = time.monotonic()
        reply_ = called(server.url, request(timeout=30.0))
        took = time.monotonic() - started
        time.sleep(0.2)  # the server's last write fails once the client has closed
    finally:
        server.close()
    assert reply_.status is Status.OK and isinstance(reply_.result, str)
    assert reply_.result.startswith(f"POST {server.url}/charges: answer cut: 1073741824 bytes, over the 16 MiB read;")
    assert "(it began: [0,0,0," in reply_.result
    assert written[0] < 3 * MAX_BODY  # what the kernel's buffers held beyond the cap, not a gigabyte
    assert took < 20.0


def test_a_compressed_answer_is_capped_as_decoded() -> None:
    """A small gzip body that inflates to 64 MiB is read up to the cap, never inflated whole."""
    bomb = gzip.compress(b" " * (64 * 1024 * 1024), compresslevel=1)
    server = RawServer(lambda h: reply(h, 200, bomb, "Content-Encoding: gzip", "Content-Type: application/json"))
    try:
        reply_ = called(server.url)
    finally:
        server.close()
    assert reply_.status is Status.OK
    assert f"answer cut: {len(bomb)} bytes, over the 16 MiB read" in reply_.result


def test_a_huge_error_answer_keeps_its_status_and_a_snippet() -> None:
    server = RawServer(lambda h: reply(h, 503, b"overloaded " * (2 * MAX_BODY // 11)))
    try:
        reply_ = called(server.url)
    finally:
        server.close()
    assert (reply_.status, reply_.delivered) == (Status.TRANSIENT, True)
    assert (reply_.error or "").startswith(f"POST {server.url}/charges: HTTP 503: overloaded overloaded")
    assert len(reply_.error or "") < 300


def test_a_reset_in_the_middle_of_the_body_leaves_the_outcome_unknown() -> None:
    def cut(h: BaseHTTPRequestHandler) -> None:
        h.wfile.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"half": ')
        h.wfile.flush()
        h.close_connection = True
        h.connection.shutdown(socket.SHUT_RDWR)

    server = RawServer(cut)
    try:
        reply_ = called(server.url)
    finally:
        server.close()
    assert (reply_.status, reply_.delivered, reply_.timed_out) == (Status.TRANSIENT, True, False)


# -- connections -----------------------------------------------------------------------------


def test_a_connection_the_server_closes_is_replaced() -> None:
    """Connection: close, then a server that drops an idle connection silently: each next call
    goes out once, on a new connection."""
    answers = iter(["close", "drop", "keep", "keep"])

    def handle(h: BaseHTTPRequestHandler) -> None:
        how = next(answers)
        reply(h, 200, b"{}", *(["Connection: close"] if how == "close" else []))
        h.close_connection = how != "keep"

    server = RawServer(handle)
    http = HttpTransport("closing", {"url": server.url})
    try:
        for _ in range(4):
            assert http.call(request()).status is Status.OK
            time.sleep(0.05)  # the server's FIN arrives
    finally:
        http.close()
        server.close()
    ports = [s.client_port for s in server.seen]
    assert len(ports) == 4 and ports[0] != ports[1] != ports[2] == ports[3]


def test_an_idle_connection_is_not_kept_past_keep_idle(
    participants: Participants, monkeypatch: pytest.MonkeyPatch
) -> None:
    http = HttpTransport("idle", {"url": participants.url})
    try:
        assert http.call(request()).status is Status.OK
        monkeypatch.setattr(http_transport, "KEEP_IDLE", 0.0)
        assert http.call(request()).status is Status.OK
    finally:
        http.close()
    assert len({c.client_port for c in participants.calls}) == 2


# -- proxies ---------------------------------------------------------------------------------


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    server = ForwardProxy()
    try:
        yield server
    finally:
        server.close()


def test_an_http_proxy_from_the_environment_forwards(
    participants: Participants, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://me:secret@"))
    reply_ = called(participants.url)
    assert reply_.status is Status.OK
    (seen,) = proxy.seen
    assert (seen.method, seen.target) == ("POST", f"{participants.url}/charges")
    assert seen.all("Proxy-Authorization") == ["Basic " + base64.b64encode(b"me:secret").decode()]
    assert participants.calls[0].headers["Idempotency-Key"] == "s-1:charge:action"
    assert "Proxy-Authorization" not in participants.calls[0].headers


def test_no_proxy_bypasses_the_proxy(
    participants: Participants, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert called(participants.url).status is Status.OK
    assert proxy.seen == [] and len(participants.calls) == 1


@pytest.mark.usefixtures("trusted")
def test_https_goes_through_a_proxy_tunnel(
    https_server: RawServer, proxy: ForwardProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    reply_ = called(f"https://localhost:{https_server.port}")
    assert (reply_.status, reply_.result) == (Status.OK, {"tls": True})
    assert [(s.method, s.target) for s in proxy.seen] == [("CONNECT", f"localhost:{https_server.port}")]


def test_an_unreachable_proxy_never_delivered(
    participants: Participants, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port}")
    reply_ = called(participants.url)
    assert (reply_.status, reply_.delivered) == (Status.TRANSIENT, False)
    assert "cannot connect" in (reply_.error or "")
    assert participants.calls == []


def test_an_unsupported_proxy_scheme_is_refused(participants: Participants, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALL_PROXY", "socks5://127.0.0.1:1080")
    reply_ = called(participants.url)
    assert (reply_.status, reply_.delivered) == (Status.REFUSED, False)
    assert "unsupported proxy scheme 'socks5'" in (reply_.error or "")


# -- the request target ----------------------------------------------------------------------

TARGET_CHARS = st.sampled_from([*"az09-._~!$&'()*+,;=:@/?%#[] é\\", "%2F", "%2f", "/./", "/../", "%C3%A9"])
BASES = st.sampled_from(["", "/api", "/a b", "/v1/", "/x?k=1", "/./y"])


@given(base=BASES, path=st.lists(TARGET_CHARS, max_size=12).map("".join))
def test_the_request_target_is_what_parsing_the_url_gives(base: str, path: str) -> None:
    """Paths sent without parsing the URL again are sent exactly as parsing would send them."""
    http = HttpTransport("target", {"url": "http://user:pw@127.0.0.1:9" + base})
    url = http.url + (path if not path or path.startswith("/") else "/" + path)
    route = http._route
    assert route is not None
    assert http._target(url, path, route) == parse_url(url).request_uri
