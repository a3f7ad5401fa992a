"""HTTP servers on 127.0.0.1 for what the scripted participants do not answer: a handler
writing raw bytes (optionally over TLS, certificates from trustme) and a forward proxy
(absolute-form requests and CONNECT tunnels) that records what it was asked.
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # clients that give up leave broken pipes and failed handshakes: expected here


@dataclass
class Seen:
    """One request as a raw server or the proxy received it."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    client_port: int

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]


class RawServer:
    """A one-handler HTTP/1.1 server: ``handle(handler)`` writes the answer itself (the request
    body already read). ``tls``: serve HTTPS with that server-side context."""

    def __init__(self, handle: Callable[[BaseHTTPRequestHandler], None], tls: ssl.SSLContext | None = None) -> None:
        seen: list[Seen] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                seen.append(Seen(self.command, self.path, list(self.headers.items()), int(self.client_address[1])))
                try:
                    handle(self)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client stopped reading: expected here

            do_POST = do_PUT = do_PATCH = do_DELETE = do_GET = _any

            def log_message(self, *args: Any) -> None:
                return None

        self.server = _Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = int(self.server.server_address[1])
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def reply(handler: BaseHTTPRequestHandler, status: int, body: bytes = b"{}", *extra: str) -> None:
    """Answer in one write: status, Content-Length, ``extra`` header lines, body."""
    head = [f"HTTP/1.1 {status} Status", f"Content-Length: {len(body)}", *extra]
    handler.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)


@dataclass
class ForwardProxy:
    """An HTTP proxy on 127.0.0.1: forwards absolute-form requests and opens CONNECT tunnels."""

    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def _forward(self) -> None:
                proxy.seen.append(Seen(self.command, self.path, list(self.headers.items()), self.client_address[1]))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                url = urlsplit(self.path)
                hop = {"proxy-authorization", "proxy-connection", "connection", "keep-alive"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in hop}
                upstream = http.client.HTTPConnection(url.hostname or "", url.port or 80, timeout=10)
                try:
                    upstream.request(self.command, url.path + (f"?{url.query}" if url.query else ""), body, headers)
                    answer = upstream.getresponse()
                    data = answer.read()
                finally:
                    upstream.close()
                reply(
                    self,
                    answer.status,
                    data,
                    *(f"{k}: {v}" for k, v in answer.getheaders() if k.lower() != "content-length"),
                )

            do_POST = do_PUT = do_PATCH = do_DELETE = do_GET = _forward

            def do_CONNECT(self) -> None:
                proxy.seen.append(Seen(self.command, self.path, list(self.headers.items()), self.client_address[1]))
                host, _, port = self.path.rpartition(":")
                upstream = socket.create_connection((host, int(port)), timeout=10)
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self.close_connection = True
                ends = [self.connection, upstream]
                with contextlib.suppress(OSError), upstream:
                    while True:
                        ready, _, _ = select.select(ends, [], [], 10)
                        if not ready:
                            return
                        for end in ready:
                            data = end.recv(65536)
                            if not data:
                                return
                            (upstream if end is self.connection else self.connection).sendall(data)

        self.server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
