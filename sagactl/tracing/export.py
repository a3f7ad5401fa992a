"""Where spans go: OTLP over http/protobuf or gRPC (opentelemetry-exporter-otlp), or the
console (stderr: stdout is the command's output), through one batch processor.

Guarantees:
- a collector that cannot be reached never changes what a command does or its exit code;
  it costs one ``sagactl: warning:`` line per run of failures (the exporter's own log lines
  are kept out of the terminal), naming the endpoint and the reason;
- the flush at exit waits at most its timeout (one second for a command): spans still
  unsent then are dropped with that warning, and the process exits.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from sagactl.masking import mask_secrets
from sagactl.tracing.settings import TracingSettings

log = logging.getLogger("sagactl.tracing")


_CAUSES = (  # what OpenTelemetry's exporters log, as a reason an operator reads at a glance
    ("refused", "connection refused"),
    ("timed out", "timed out"),
    ("timeout", "timed out"),
    ("unavailable", "unavailable"),
    ("name or service not known", "unknown host"),
    ("deadline_exceeded", "timed out"),
)


def cause(message: str) -> str:
    """A short reason for an export failure OpenTelemetry logged (its own words, cut, when
    none of the usual causes is named)."""
    lowered = message.lower()
    for needle, reason in _CAUSES:
        if needle in lowered:
            return reason
    return " ".join(message.split())[:120]


class _LastWords(logging.Handler):
    """Keeps why OpenTelemetry's exporters last failed (their log lines), instead of letting
    them reach the terminal; "shutdown in progress" is how a failure ends, never its cause."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.last: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a message that cannot be formatted says nothing useful
            return
        if record.levelno >= logging.WARNING and "shutdown" not in message.lower():
            self.last = cause(message)


def _quiet_opentelemetry() -> _LastWords:
    """OpenTelemetry's own log lines (retries, failures) go to a handler that keeps the last
    one for our warning; they never reach the terminal on their own."""
    handler = _LastWords()
    logger = logging.getLogger("opentelemetry")
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    return handler


class Watched(SpanExporter):
    """An exporter that counts what it sent and what it could not, and warns once per run of
    failures (a worker's collector down for an hour is one warning, and one more after it
    came back and went down again)."""

    def __init__(self, inner: SpanExporter, where: str, words: _LastWords) -> None:
        self.inner = inner
        self.where = where
        self.words = words
        self.sent = 0
        self.lost = 0
        self.failing = False
        self.lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter bug must not reach the batch thread's log
            self.words.last = cause(f"{type(exc).__name__}: {exc}")
            result = SpanExportResult.FAILURE
        with self.lock:
            if result is SpanExportResult.SUCCESS:
                self.sent += len(spans)
                self.failing = False
                return result
            self.lost += len(spans)
            first, self.failing = not self.failing, True
        if first:
            self.warn(f"{len(spans)} spans could not be sent")
        return result

    def warn(self, what: str) -> None:
        why = f" ({self.words.last})" if self.words.last else ""
        log.warning("tracing: %s to %s%s; sagas are not affected", what, mask_secrets(self.where), mask_secrets(why))

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.inner.force_flush(timeout_millis))


def _exporter(settings: TracingSettings, name: str) -> SpanExporter:
    """One exporter as ``settings`` say (the OTLP ones read the rest of OTEL_EXPORTER_OTLP_*)."""
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter(out=sys.stderr)
    headers: Any = settings.headers or None
    if settings.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=settings.endpoint, headers=headers)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter(endpoint=settings.endpoint, headers=headers)


class Export:
    """The batch processors of one process, on ``provider``; ``close`` flushes them, bounded."""

    def __init__(self, provider: TracerProvider, settings: TracingSettings) -> None:
        self.provider = provider
        words = _quiet_opentelemetry()
        self.watched: list[Watched] = []
        for name in settings.exporters:
            where = "the console" if name == "console" else f"{settings.endpoint} ({settings.protocol})"
            watched = Watched(_exporter(settings, name), where, words)
            self.watched.append(watched)
            provider.add_span_processor(BatchSpanProcessor(watched))
        self.closed = False

    def close(self, timeout: float) -> None:
        """Send what is buffered and stop, within ``timeout`` seconds; then warn (once) if
        spans were left unsent. Never raises."""
        if self.closed:
            return
        self.closed = True
        done = threading.Event()

        def finish() -> None:
            try:
                self.provider.shutdown()
            except Exception:  # nothing a command could do about it; the warning below says it
                log.debug("tracing: shutting down failed", exc_info=True)
            finally:
                done.set()

        threading.Thread(target=finish, name="sagactl-tracing-flush", daemon=True).start()
        if done.wait(timeout):
            return
        for watched in self.watched:
            try:
                watched.inner.shutdown()  # stops the exporter's retries; the thread ends with the process
            except Exception:
                log.debug("tracing: stopping the exporter failed", exc_info=True)
            with watched.lock:  # an export failing after this says nothing more: one warning
                warned, watched.failing = watched.failing, True
            if not warned:
                watched.warn(f"spans could not all be sent within {timeout:g}s")
