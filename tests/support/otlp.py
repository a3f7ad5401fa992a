"""OTLP trace receivers on 127.0.0.1, started by the test: what a collector (Jaeger, Tempo, the
OpenTelemetry Collector) would receive, decoded with the opentelemetry-proto classes.

    with otlp_http() as collector:        # OTLP/HTTP, protobuf: POST /v1/traces
        env = collector.env                # OTEL_EXPORTER_OTLP_ENDPOINT, _PROTOCOL for sagactl
        ...
        spans = collector.wait_for(lambda spans: len(spans) >= 3)

``otlp_grpc()`` is the same over gRPC (the TraceService the SDK's gRPC exporter calls).
"""

from __future__ import annotations

import contextlib
import gzip
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as SpanProto

KINDS = {v: k.removeprefix("SPAN_KIND_").lower() for k, v in SpanProto.SpanKind.items()}


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, which) if which else None


def _attributes(pairs: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in pairs if isinstance(kv, KeyValue)}


@dataclass(frozen=True)
class Link:
    trace_id: str
    span_id: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as a collector got it (IDs in lowercase hex, "" for no parent)."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: str
    attributes: dict[str, Any]
    events: list[tuple[str, dict[str, Any]]]
    links: list[Link]
    status: int  # 0 unset, 1 ok, 2 error
    status_message: str
    resource: dict[str, Any]
    start_ns: int
    end_ns: int

    @property
    def context(self) -> str:
        """The W3C traceparent naming this span, without its flags (a participant's parent)."""
        return f"00-{self.trace_id}-{self.span_id}"


def parent_in(traceparent: str) -> str:
    """A traceparent a participant got, without its flags (sampled, random: the SDK's say)."""
    return traceparent.rsplit("-", 1)[0]


def decode(payload: bytes) -> list[ReceivedSpan]:
    """The spans of one ExportTraceServiceRequest."""
    request = trace_service_pb2.ExportTraceServiceRequest.FromString(payload)
    found = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope in resource_spans.scope_spans:
            for span in scope.spans:
                found.append(
                    ReceivedSpan(
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_id=span.parent_span_id.hex(),
                        kind=KINDS.get(span.kind, str(span.kind)),
                        attributes=_attributes(span.attributes),
                        events=[(e.name, _attributes(e.attributes)) for e in span.events],
                        links=[
                            Link(lk.trace_id.hex(), lk.span_id.hex(), _attributes(lk.attributes)) for lk in span.links
                        ],
                        status=int(span.status.code),
                        status_message=span.status.message,
                        resource=resource,
                        start_ns=int(span.start_time_unix_nano),
                        end_ns=int(span.end_time_unix_nano),
                    )
                )
    return found


@dataclass
class Collector:
    """Spans received so far, by whichever protocol; ``env`` points sagactl at it."""

    protocol: str
    endpoint: str
    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def env(self) -> dict[str, str]:
        return {
            "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint,
            "OTEL_EXPORTER_OTLP_PROTOCOL": self.protocol,
            "OTEL_BSP_SCHEDULE_DELAY": "200",  # a worker's batches go out soon (a run flushes at exit anyway)
        }

    def add(self, payload: bytes) -> None:
        spans = decode(payload)
        with self.lock:
            self.spans.extend(spans)
            self.requests += 1

    def received(self) -> list[ReceivedSpan]:
        with self.lock:
            return list(self.spans)

    def wait_for(self, done: Callable[[list[ReceivedSpan]], bool], timeout: float = 30.0) -> list[ReceivedSpan]:
        """The spans once ``done(spans)`` holds; AssertionError naming what came after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.received()
            if done(spans):
                return spans
            if time.monotonic() > deadline:
                names = sorted(s.name for s in spans)
                raise AssertionError(f"the collector did not get the spans expected within {timeout}s: {names}")
            time.sleep(0.05)

    def named(self, name: str) -> list[ReceivedSpan]:
        return [s for s in self.received() if s.name == name]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        payload = gzip.decompress(raw) if encoding == "gzip" else zlib.decompress(raw) if encoding == "deflate" else raw
        if self.path != "/v1/traces":
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.server.collector.add(payload)
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    collector: Collector


@contextlib.contextmanager
def otlp_http() -> Iterator[Collector]:
    """An OTLP/HTTP (protobuf) receiver on a free loopback port."""
    server = _HttpServer(("127.0.0.1", 0), _Handler)
    server.collector = Collector("http/protobuf", f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.collector
    finally:
        server.shutdown()
        server.server_close()


class _TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, collector: Collector) -> None:
        self.collector = collector

    def Export(self, request: Any, context: Any) -> Any:
        self.collector.add(request.SerializeToString())
        return trace_service_pb2.ExportTraceServiceResponse()


@contextlib.contextmanager
def otlp_grpc() -> Iterator[Collector]:
    """An OTLP/gRPC receiver (TraceService) on a free loopback port."""
    import grpc

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    port = server.add_insecure_port("127.0.0.1:0")
    collector = Collector("grpc", f"http://127.0.0.1:{port}")
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(_TraceService(collector), server)
    server.start()
    try:
        yield collector
    finally:
        server.stop(grace=None)


@contextlib.contextmanager
def collector(protocol: str) -> Iterator[Collector]:
    """A receiver of ``protocol`` ("http/protobuf" or "grpc")."""
    with otlp_http() if protocol == "http/protobuf" else otlp_grpc() as found:
        yield found
