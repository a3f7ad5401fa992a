"""http transport (httpx): JSON over POST/PUT/PATCH/DELETE, classified per DESIGN section 5.

2xx: success, JSON body = result. 408, 425, 429, 5xx, connection errors and timeouts:
transient. Other 4xx: definitive. For a compensation, 404 and 410 mean already undone.
Connect errors never delivered the request; read timeouts, resets after sending and 5xx
leave the outcome unknown.
"""

from __future__ import annotations

import email.utils
import functools
import json
import os
import ssl
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from sagactl.codec import compact_json
from sagactl.models import Phase
from sagactl.transports.base import Reply, Request, Status

TRANSIENT_CODES = frozenset({408, 425, 429})
UNDONE_CODES = frozenset({404, 410})
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


def _snippet(response: httpx.Response, limit: int = 200) -> str:
    text = " ".join(response.text.split())
    return text if len(text) <= limit else text[:limit] + "…"


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds: delta-seconds or an HTTP-date (RFC 9110 10.2.3)."""
    value = response.headers.get("Retry-After")
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


def _result(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """httpx's default verifying context, built once per process: loading the CA bundle
    costs ~45 ms, which every client paid again (per endpoint, per saga driven)."""
    return httpx.create_ssl_context()


def _needs_tls(url: str) -> bool:
    """True when a client for ``url`` may speak TLS: an https URL, or an https proxy
    (httpx honours the *_PROXY variables)."""
    if url.lower().startswith("https:"):
        return True
    return any(
        value.lower().startswith("https:")
        for name, value in os.environ.items()
        if name.lower() in ("http_proxy", "all_proxy")
    )


class HttpTransport:
    """One endpoint: a keep-alive client to ``url`` with the endpoint's headers."""

    def __init__(self, name: str, config: dict[str, Any]) -> None:
        self.name = name
        self.url = str(config["url"]).rstrip("/")
        self.headers = dict(config.get("headers") or {})
        # A plain-http endpoint never handshakes, so it needs no CA bundle (verify=False
        # only skips loading one; there is no certificate to check).
        verify: ssl.SSLContext | bool = _tls_context() if _needs_tls(self.url) else False
        self._client = httpx.Client(headers=self.headers, follow_redirects=False, verify=verify)

    def call(self, request: Request) -> Reply:
        spec = request.spec
        method = str(spec.get("method", "POST")).upper()
        path = str(spec.get("path", ""))
        url = self.url + (path if not path or path.startswith("/") else "/" + path)
        headers = {
            **{str(k): str(v) for k, v in (spec.get("headers") or {}).items()},
            "Idempotency-Key": request.idempotency_key,
            "X-Saga-Id": request.saga_id,
            "X-Saga-Step": request.step_name,
            "X-Saga-Phase": request.phase.value,
            "Content-Type": "application/json",
        }
        if request.trace:  # the attempt's span is the participant's parent, whatever a header says
            headers = {k: v for k, v in headers.items() if k.lower() not in request.trace} | dict(request.trace)
        content = compact_json(request.body).encode()
        where = f"{method} {url}"
        try:
            response = self._exchange(method, url, content, headers, request.timeout)
        except _AnswerTooSlow:
            return Reply(
                Status.TRANSIENT, error=f"{where}: no complete answer within {request.timeout:g}s", timed_out=True
            )
        except _NOT_SENT as exc:
            return Reply(Status.TRANSIENT, error=f"{where}: cannot connect: {exc}", delivered=False)
        except httpx.TimeoutException:
            return Reply(Status.TRANSIENT, error=f"{where}: no answer within {request.timeout:g}s", timed_out=True)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            # A configuration error: nothing was sent and no retry can help.
            return Reply(Status.REFUSED, error=f"{where}: invalid URL: {exc}", delivered=False)
        except (httpx.LocalProtocolError, UnicodeEncodeError) as exc:
            # The request itself cannot be written (e.g. a header value that is not
            # latin-1): refused before any byte went out.
            return Reply(Status.REFUSED, error=f"{where}: cannot send request: {exc}", delivered=False)
        except (httpx.TransportError, httpx.DecodingError) as exc:
            # Reset after sending, server closed mid-response, undecodable body: the
            # participant may have acted, so the outcome is unknown.
            return Reply(Status.TRANSIENT, error=f"{where}: {type(exc).__name__}: {exc}")
        code = response.status_code
        if 200 <= code < 300:
            return Reply(Status.OK, result=_result(response))
        if request.phase is Phase.COMPENSATION and code in UNDONE_CODES:
            return Reply(Status.OK, result=_result(response), already_undone=True)
        error = f"{where}: HTTP {code}: {_snippet(response)}".rstrip(": ")
        if code in TRANSIENT_CODES or code >= 500:
            return Reply(Status.TRANSIENT, error=error, retry_after=_retry_after(response))
        return Reply(Status.REFUSED, error=error)

    def _exchange(
        self, method: str, url: str, content: bytes, headers: dict[str, str], timeout: float
    ) -> httpx.Response:
        """One request whose whole answer must arrive within ``timeout``.

        httpx's timeouts bound each connect, write and read separately, so a participant that
        trickles its body would outlast the step's timeout; the body is read here against one
        deadline for the whole call.
        """
        deadline = time.monotonic() + timeout
        with self._client.stream(
            method, url, content=content, headers=headers, timeout=httpx.Timeout(timeout)
        ) as streamed:
            chunks = []
            for chunk in streamed.iter_bytes():
                chunks.append(chunk)
                if time.monotonic() > deadline:
                    raise _AnswerTooSlow
            if time.monotonic() > deadline:
                raise _AnswerTooSlow
            # iter_bytes already undid any Content-Encoding: the copy must not decode again.
            kept = [(k, v) for k, v in streamed.headers.items() if k.lower() != "content-encoding"]
            return httpx.Response(
                streamed.status_code, headers=kept, content=b"".join(chunks), request=streamed.request
            )

    def close(self) -> None:
        self._client.close()


class _AnswerTooSlow(Exception):
    """The answer did not complete within the step's timeout (outcome unknown)."""
