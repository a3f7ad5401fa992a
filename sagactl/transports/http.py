"""http transport (urllib3): JSON over POST/PUT/PATCH/DELETE, classified per DESIGN section 5.

2xx: success, JSON body = result. 408, 425, 429, 5xx, connection errors and timeouts:
transient. Other 4xx (and 3xx: redirects are never followed): definitive. For a compensation,
404 and 410 mean already undone. Connect errors (refused, DNS, connect or TLS handshake
timeout, certificate refused, proxy unreachable) never delivered the request: the connection
is made apart from the request, so nothing of it was written. Read timeouts, resets after
sending, undecodable answers and 5xx leave the outcome unknown.

A transport belongs to one thread (a worker's driver thread, or a run) and keeps one
connection alive between its calls (closed after an error, a cut answer, or 5 s idle). The
whole answer must arrive within the call's timeout: each read waits only for what is left of
it. An answer body is read up to MAX_BODY bytes (decoded), never whole beyond that. The
*_PROXY / NO_PROXY variables are honoured; TLS is verified against SSL_CERT_FILE /
SSL_CERT_DIR when set, else certifi's bundle.
"""

from __future__ import annotations

import base64
import email.utils
import functools
import json
import os
import re
import ssl
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from http.client import HTTPException, InvalidURL
from typing import Any
from urllib.parse import unquote

from urllib3.connection import HTTPConnection, HTTPSConnection, ProxyConfig
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationParseError,
    NameResolutionError,
    NewConnectionError,
    ReadTimeoutError,
)
from urllib3.response import HTTPResponse
from urllib3.util import Url, parse_url

from sagactl import __version__
from sagactl.codec import compact_json
from sagactl.models import Phase
from sagactl.transports.base import Reply, Request, Status

TRANSIENT_CODES = frozenset({408, 425, 429})
UNDONE_CODES = frozenset({404, 410})
MAX_BODY = 16 * 1024 * 1024  # bytes of an answer read (as decoded): codec.MAX_TEXT, what the log keeps
KEEP_IDLE = 5.0  # seconds an idle connection is kept (servers close theirs: node.js after 5 s)
_CHUNK = 64 * 1024
DEFAULT_HEADERS = {
    "User-Agent": f"sagactl/{__version__}",
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",
}
# A request target parse_url would leave as it is (RFC 3986 characters, upper-case escapes, no
# dot segment, no fragment): sent without parsing the URL again.
_PLAIN_TARGET = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?]|%[0-9A-F]{2})*")


def _snippet(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: delta-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _text(body: bytes, content_type: str | None) -> str:
    """The body as text: the Content-Type's charset, else UTF-8 (undecodable bytes replaced)."""
    charset = "utf-8"
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            charset = value.strip().strip('"')
    try:
        return body.decode(charset, "replace")
    except LookupError:
        return body.decode("utf-8", "replace")


def _result(body: bytes, content_type: str | None) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _text(body, content_type)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The verifying context, built once per process (loading a CA bundle costs ~45 ms):
    SSL_CERT_FILE or SSL_CERT_DIR when set, else certifi's bundle."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _proxy_for(target: Url) -> Url | None:
    """The proxy the *_PROXY variables name for ``target`` (None: direct, or NO_PROXY)."""
    proxies = urllib.request.getproxies_environment()
    if not proxies or urllib.request.proxy_bypass(target.host or ""):
        return None
    found = proxies.get(target.scheme or "http") or proxies.get("all")
    if not found:
        return None
    return parse_url(found if "://" in found else "http://" + found)


def _plain(path: str) -> bool:
    return _PLAIN_TARGET.fullmatch(path) is not None and "/." not in path


def _basic(userinfo: str) -> str:
    user, _, password = userinfo.partition(":")
    return "Basic " + base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()


def _layer(headers: dict[str, str], names: dict[str, str], more: dict[Any, Any]) -> None:
    """Set ``more`` over ``headers``, names compared without case (the later one wins);
    ``names``: each lower-case name in ``headers`` as it is written there."""
    for name, value in more.items():
        name = str(name)
        low = name.lower()
        old = names.get(low)
        if old is not None:
            del headers[old]
        headers[name] = str(value)
        names[low] = name


@dataclass(frozen=True, slots=True)
class _Route:
    """Where an endpoint's requests go: a connection's host and port (the proxy's when there is
    one), whether it speaks TLS, the tunnel through a proxy, the request target's form."""

    scheme: str
    host: str
    port: int
    proxy: Url | None
    proxy_headers: dict[str, str]

    @classmethod
    def of(cls, url: str) -> _Route:
        parsed = parse_url(url)
        if parsed.scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {parsed.scheme!r} (http or https)")
        if not parsed.host:
            raise ValueError("no host")
        proxy = _proxy_for(parsed)
        if proxy is not None and proxy.scheme not in ("http", "https"):
            raise ValueError(f"unsupported proxy scheme {proxy.scheme!r} in the *_PROXY variables")
        proxy_headers = {"Proxy-Authorization": _basic(proxy.auth)} if proxy is not None and proxy.auth else {}
        host = parsed.host.strip("[]")
        return cls(parsed.scheme, host, parsed.port or (443 if parsed.scheme == "https" else 80), proxy, proxy_headers)

    @property
    def forwarded(self) -> bool:
        """An http URL through a proxy: the proxy gets the absolute URL (no tunnel)."""
        return self.proxy is not None and self.scheme == "http"

    def connection(self) -> HTTPConnection:
        proxy = self.proxy
        if proxy is None:
            if self.scheme == "https":
                return HTTPSConnection(self.host, self.port, ssl_context=_tls_context())
            return HTTPConnection(self.host, self.port)
        proxy_host, proxy_port = (proxy.host or "").strip("[]"), proxy.port or (443 if proxy.scheme == "https" else 80)
        if self.forwarded:
            if proxy.scheme == "https":
                return HTTPSConnection(proxy_host, proxy_port, ssl_context=_tls_context())
            return HTTPConnection(proxy_host, proxy_port)
        config = ProxyConfig(_tls_context(), False, None, None)
        tunnel = HTTPSConnection(proxy_host, proxy_port, ssl_context=_tls_context(), proxy=proxy, proxy_config=config)
        tunnel.set_tunnel(self.host, self.port, headers=self.proxy_headers, scheme=proxy.scheme or "http")
        return tunnel


class HttpTransport:
    """One endpoint: a keep-alive connection to ``url`` with the endpoint's headers."""

    def __init__(self, name: str, config: dict[str, Any]) -> None:
        self.name = name
        self.url = str(config["url"]).rstrip("/")
        self.headers = dict(config.get("headers") or {})
        self._conn: HTTPConnection | None = None
        self._idle_since = 0.0
        self._route: _Route | None = None
        self._problem = ""
        try:
            self._route = _Route.of(self.url)
        except (LocationParseError, ValueError) as exc:
            self._problem = str(exc)
        # Userinfo in the URL is sent as Basic credentials, unless the endpoint configures its
        # own Authorization header (an explicit header wins).
        self._base: dict[str, str] = {}
        self._names: dict[str, str] = {}
        _layer(self._base, self._names, DEFAULT_HEADERS)
        parsed = None if self._problem else parse_url(self.url)
        if parsed is not None and parsed.auth is not None:
            _layer(self._base, self._names, {"Authorization": _basic(parsed.auth)})
        if self._route is not None and self._route.forwarded:
            _layer(self._base, self._names, self._route.proxy_headers)
        _layer(self._base, self._names, self.headers)
        # The endpoint's own path, when requests to it need no parsing (see _target).
        route, base = self._route, (parsed.path or "") if parsed is not None else ""
        direct = route is not None and not route.forwarded
        plain = direct and parsed is not None and not parsed.query and not parsed.fragment
        self._base_path = base if plain else None

    def call(self, request: Request) -> Reply:
        spec = request.spec
        method = str(spec.get("method", "POST")).upper()
        path = str(spec.get("path", ""))
        url = self.url + (path if not path or path.startswith("/") else "/" + path)
        where = f"{method} {url}"
        route = self._route
        if route is None:
            # A configuration error: nothing was sent and no retry can help.
            return Reply(Status.REFUSED, error=f"{where}: invalid URL: {self._problem}", delivered=False)
        headers, names = dict(self._base), dict(self._names)
        _layer(headers, names, spec.get("headers") or {})
        _layer(
            headers,
            names,
            {
                "Idempotency-Key": request.idempotency_key,
                "X-Saga-Id": request.saga_id,
                "X-Saga-Step": request.step_name,
                "X-Saga-Phase": request.phase.value,
                "Content-Type": "application/json",
            },
        )
        if request.trace:  # the attempt's span is the participant's parent, whatever a header says
            _layer(headers, names, dict(request.trace))
        try:
            sent_to = self._target(url, path, route)
        except LocationParseError as exc:
            return Reply(Status.REFUSED, error=f"{where}: invalid URL: {exc}", delivered=False)
        content = compact_json(request.body).encode()
        deadline = time.monotonic() + request.timeout
        try:
            conn = self._connected(route, deadline)
        except _NotConnected as exc:
            return Reply(Status.TRANSIENT, error=f"{where}: cannot connect: {exc}", delivered=False)
        done = False
        try:
            status, response, body, cut = _exchange(conn, method, sent_to, content, headers, deadline)
            done = not cut and conn.sock is not None
        except _Unsendable as exc:
            # The request itself cannot be written (a header value that is not latin-1, a
            # line break in a header): refused before any byte went out.
            return Reply(Status.REFUSED, error=f"{where}: cannot send request: {exc}", delivered=False)
        except _NoAnswer as exc:
            what = "no complete answer" if exc.began else "no answer"
            return Reply(Status.TRANSIENT, error=f"{where}: {what} within {request.timeout:g}s", timed_out=True)
        except (OSError, HTTPException, HTTPError) as exc:
            # Reset after sending, server closed mid-response, undecodable body: the
            # participant may have acted, so the outcome is unknown.
            return Reply(Status.TRANSIENT, error=f"{where}: {type(exc).__name__}: {exc}")
        finally:
            if done:
                self._idle_since = time.monotonic()
            else:
                self.close()
        return _classify(request, where, status, response, body, cut)

    def _target(self, url: str, path: str, route: _Route) -> str:
        """The request line's target: the path and query (percent-encoded where they need it, dot
        segments resolved); through a proxy without a tunnel, the whole URL less userinfo and
        fragment."""
        if self._base_path is not None:
            joined = self._base_path + (path if not path or path.startswith("/") else "/" + path)
            if _plain(joined):
                return joined or "/"
        target = parse_url(url)
        return target._replace(auth=None, fragment=None).url if route.forwarded else target.request_uri

    def _connected(self, route: _Route, deadline: float) -> HTTPConnection:
        """The kept connection if the server has not closed it, else a new one (the connect,
        TLS handshake and proxy tunnel done here, apart from the request)."""
        conn = self._conn
        if conn is not None:
            if conn.sock is not None and time.monotonic() - self._idle_since < KEEP_IDLE and conn.is_connected:
                return conn
            self.close()
        conn = route.connection()
        conn.timeout = max(deadline - time.monotonic(), 0.001)
        try:
            conn.connect()
        except (OSError, HTTPError, ssl.CertificateError) as exc:
            conn.close()
            raise _NotConnected(_why(exc, conn.timeout)) from exc
        self._conn = conn
        return conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _exchange(
    conn: HTTPConnection, method: str, target: str, content: bytes, headers: dict[str, str], deadline: float
) -> tuple[int, HTTPResponse, bytes, bool]:
    """Send one request on ``conn`` and read its answer by ``deadline``: (status, response,
    body, cut). Raises _Unsendable (nothing written), _NoAnswer, or what the wire raised."""
    sock = conn.sock  # kept: a response with Connection: close detaches it from conn
    assert sock is not None
    conn.timeout = max(deadline - time.monotonic(), 0.001)
    try:
        conn.request(method, target, body=content, headers=headers, preload_content=False)
    except (UnicodeEncodeError, ValueError, InvalidURL) as exc:
        raise _Unsendable(exc) from exc  # raised while the request line and headers are formed
    conn.timeout = max(deadline - time.monotonic(), 0.001)
    try:
        response = conn.getresponse()
    except TimeoutError as exc:
        raise _NoAnswer(began=False) from exc
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _NoAnswer(began=True)
            if sock.fileno() != -1:  # -1: the answer is complete and its socket closed (Connection: close)
                sock.settimeout(left)
            chunk = response.read1(_CHUNK)
            if not chunk:
                return response.status, response, b"".join(chunks), False
            size += len(chunk)
            if size > MAX_BODY:
                chunks.append(chunk[: len(chunk) - (size - MAX_BODY)])
                return response.status, response, b"".join(chunks), True
            chunks.append(chunk)
    except ReadTimeoutError as exc:
        raise _NoAnswer(began=True) from exc


def _classify(request: Request, where: str, code: int, response: HTTPResponse, body: bytes, cut: bool) -> Reply:
    content_type = response.headers.get("Content-Type")
    if 200 <= code < 300 or (request.phase is Phase.COMPENSATION and code in UNDONE_CODES):
        if cut:
            began = " ".join(_text(body[:200], content_type).split())[:100]
            length = response.headers.get("Content-Length")
            size = f"{length} bytes" if length else "no length given"
            result: Any = (
                f"{where}: answer cut: {size}, over the {MAX_BODY // (1024 * 1024)} MiB read;"
                f" not kept as the result (it began: {began})"
            )
        else:
            result = _result(body, content_type)
        return Reply(Status.OK, result=result, already_undone=not 200 <= code < 300)
    error = f"{where}: HTTP {code}: {_snippet(_text(body[:4096], content_type))}".rstrip(": ")
    if code in TRANSIENT_CODES or code >= 500:
        return Reply(Status.TRANSIENT, error=error, retry_after=_retry_after(response.headers.get("Retry-After")))
    return Reply(Status.REFUSED, error=error)


def _why(exc: BaseException, timeout: float) -> str:
    """A connect error in one line, without urllib3's connection repr."""
    if isinstance(exc, NameResolutionError):
        return f"cannot resolve the host ({exc.__cause__})"
    if isinstance(exc, NewConnectionError):
        return str(exc.__cause__ or exc)
    if isinstance(exc, ConnectTimeoutError | TimeoutError):
        return f"no connection within {timeout:g}s"
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return f"TLS: {exc}"
    return f"{type(exc).__name__}: {exc}"


class _NotConnected(Exception):
    """No connection (nothing was sent)."""


class _Unsendable(Exception):
    """The request cannot be written (nothing was sent)."""


class _NoAnswer(Exception):
    """No (complete) answer within the step's timeout (outcome unknown)."""

    def __init__(self, began: bool) -> None:
        super().__init__()
        self.began = began
