"""Real HTTP saga participants on 127.0.0.1 for engine and transport tests.

One ``ThreadingHTTPServer`` (HTTP/1.1 keep-alive, TCP_NODELAY and one write per response,
so no call stalls on Nagle + delayed ACK) records every call it receives, in arrival order,
and answers as scripted per (step, phase):

    participants.script("charge", "action", transient(503), transient(503))  # then the default
    participants.script("ship", "action", refuse(422))
    participants.script("charge", "compensation", *[transient()] * 5, then=ok({"refunded": True}))

Unscripted calls succeed with ``{"step": step, "phase": phase, "n": n}`` (n counts that
step's calls of that phase). Step and phase come from the ``X-Saga-Step`` header and the
``Idempotency-Key`` suffix (``{saga_id}:{step}:{action|compensation}``).

Fixtures: ``participants`` (a fresh server per test), ``closed_port`` (a port that
refuses connections: bound, never listening) and ``blackhole_port`` (a port where a connect
times out: its accept queue is full and never drained, so the kernel drops further SYNs).
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

_REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    408: "Request Timeout",
    409: "Conflict",
    410: "Gone",
    422: "Unprocessable Entity",
    425: "Too Early",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


@dataclass(frozen=True, slots=True)
class Call:
    """One request as the participant received it."""

    method: str
    path: str
    step: str | None
    phase: str | None
    key: str | None
    saga_id: str | None
    headers: dict[str, str]
    body: Any
    client_port: int = 0

    @property
    def what(self) -> tuple[str | None, str | None]:
        return self.step, self.phase


# -- behaviours ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Respond:
    """Answer with ``status`` and a JSON ``body`` (None: empty body; bytes: sent as is)."""

    status: int = 200
    body: Any = None
    retry_after: str | None = None
    delay: float = 0.0  # seconds to wait before answering (past the client's timeout: a read timeout)


@dataclass(frozen=True, slots=True)
class Reset:
    """Read the whole request, then reset the connection (RST) without answering."""


@dataclass(slots=True)
class Gate:
    """Hold the call until released; ``arrived`` is set when the request is in."""

    then: Respond | Reset = field(default_factory=lambda: Respond(200, None))
    arrived: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        self.released.set()


Behaviour = Respond | Reset | Gate


def answer(status: int, body: Any = None, retry_after: str | float | None = None) -> Respond:
    """Any status with an optional JSON body (e.g. 404/410 for an already-undone compensation)."""
    return Respond(status, body, None if retry_after is None else str(retry_after))


def ok(result: Any = None, status: int = 200) -> Respond:
    return Respond(status, result)


def refuse(status: int = 422, error: str = "refused") -> Respond:
    return Respond(status, {"error": error})


def transient(status: int = 503, retry_after: str | float | None = None) -> Respond:
    return Respond(status, {"error": "try again"}, None if retry_after is None else str(retry_after))


def slow(seconds: float, result: Any = None) -> Respond:
    """Answer only after ``seconds``: past a shorter client timeout this is a read timeout."""
    return Respond(200, result, delay=seconds)


def reset() -> Reset:
    return Reset()


def gate(then: Respond | Reset | None = None) -> Gate:
    return Gate(then=then or Respond(200, None))


# -- the server -----------------------------------------------------------------------------


class Participants:
    """The scripted participant server; see the module docstring."""

    def __init__(self, decide: Callable[[Call], Behaviour] | None = None) -> None:
        self.decide = decide  # answers every call instead of the scripts (a participant with a mind of its own)
        self.calls: list[Call] = []
        self._scripts: dict[tuple[str, str], list[Behaviour]] = {}
        self._defaults: dict[tuple[str, str], Behaviour] = {}
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.participants = self
        self.port: int = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    # -- scripting ------------------------------------------------------------------------

    def script(self, step: str, phase: str = "action", *behaviours: Behaviour, then: Behaviour | None = None) -> None:
        """Answer the next calls of (step, phase) with ``behaviours`` in order, then ``then``
        (default: success) for every later call. Replaces an earlier script."""
        with self._lock:
            self._scripts[(step, phase)] = list(behaviours)
            if then is None:
                self._defaults.pop((step, phase), None)
            else:
                self._defaults[(step, phase)] = then

    def _next(self, step: str, phase: str) -> tuple[Behaviour, int]:
        with self._lock:
            n = self._counts.get((step, phase), 0) + 1
            self._counts[(step, phase)] = n
            queue = self._scripts.get((step, phase))
            if queue:
                return queue.pop(0), n
            default = self._defaults.get((step, phase))
            return (default if default is not None else Respond(200, {"step": step, "phase": phase, "n": n})), n

    def _record(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    # -- reading the record ---------------------------------------------------------------

    def sequence(self) -> list[tuple[str | None, str | None]]:
        """(step, phase) of every call, in arrival order."""
        with self._lock:
            return [c.what for c in self.calls]

    def keys(self) -> list[str | None]:
        with self._lock:
            return [c.key for c in self.calls]

    def calls_for(self, step: str, phase: str = "action") -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.what == (step, phase)]

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()
            self._counts.clear()

    def close(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    participants: Participants

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that time out or are killed leave broken pipes behind: expected here.
        return None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # TCP_NODELAY on the accepted socket
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _any(self) -> None:
        participants = self.server.participants
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        key = self.headers.get("Idempotency-Key")
        phase = key.rsplit(":", 1)[-1] if key and ":" in key else self.headers.get("X-Saga-Phase")
        step = self.headers.get("X-Saga-Step")
        call = Call(
            method=self.command,
            path=self.path,
            step=step,
            phase=phase,
            key=key,
            saga_id=self.headers.get("X-Saga-Id"),
            headers={k: v for k, v in self.headers.items()},
            body=body,
            client_port=int(self.client_address[1]),
        )
        participants._record(call)
        if participants.decide is not None:
            behaviour = participants.decide(call)
        else:
            behaviour, _ = participants._next(step or "", phase or "")
        if isinstance(behaviour, Gate):
            behaviour.arrived.set()
            while not behaviour.released.wait(0.05):
                if participants.stopping.is_set():
                    break
            behaviour = behaviour.then
        if isinstance(behaviour, Reset):
            self._reset()
            return
        if behaviour.delay and participants.stopping.wait(behaviour.delay):
            self._reset()
            return
        self._answer(behaviour)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET = _any

    def _answer(self, behaviour: Respond) -> None:
        raw = isinstance(behaviour.body, bytes)
        payload = b"" if behaviour.body is None else behaviour.body if raw else json.dumps(behaviour.body).encode()
        lines = [f"HTTP/1.1 {behaviour.status} {_REASONS.get(behaviour.status, 'Status')}"]
        if payload:
            lines.append(f"Content-Type: {'text/plain' if raw else 'application/json'}")
        lines.append(f"Content-Length: {len(payload)}")
        if behaviour.retry_after is not None:
            lines.append(f"Retry-After: {behaviour.retry_after}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        with contextlib.suppress(OSError):
            self.wfile.write(head + payload)  # one write: no Nagle / delayed-ACK stall

    def _reset(self) -> None:
        """Abort the connection: SO_LINGER 0 makes close() send RST instead of FIN."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def participants() -> Iterator[Participants]:
    """A scripted HTTP participant server on 127.0.0.1, recording every call."""
    server = Participants()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A local port where connections are refused (bound, not listening, so not reusable)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


@pytest.fixture
def blackhole_port() -> Iterator[int]:
    """A local port where a connect times out, as behind a firewall
    that drops packets: listening with a backlog of 0, never accepting, its accept queue
    filled until one more connect hangs. Nothing is ever delivered there."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = int(listener.getsockname()[1])
    fillers: list[socket.socket] = []
    try:
        for _ in range(16):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.settimeout(0.2)
            fillers.append(filler)
            try:
                filler.connect(("127.0.0.1", port))
            except TimeoutError:
                break  # the queue is full: every later SYN is dropped
        else:
            pytest.fail("could not fill the accept queue of a listening socket")
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
