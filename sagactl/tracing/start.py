"""``open_tracing``: the Tracing a command gets, NOOP unless the settings turn tracing on (and
the ``otel`` extra is installed); only then is OpenTelemetry imported."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sagactl.tracing import NOOP, Tracing, log


def open_tracing(
    config: Mapping[str, Any] | None,
    env: Mapping[str, str],
    *,
    traceparent: str | None = None,
    where: str = "sagactl.yaml",
) -> Tracing:
    """Tracing as the environment and ``config`` (sagactl.yaml's ``tracing:`` block, read from
    ``where``) ask for it: NOOP unless they turn it on. ``traceparent``: the parent of the
    sagas recorded (``run --traceparent``), over the environment's TRACEPARENT. Turned on
    without the ``otel`` extra: one warning, and NOOP (UsageError only for a wrong block)."""
    from sagactl.tracing.settings import resolve

    chosen = resolve(config, env, where=where)
    if chosen is None:
        if traceparent is not None:
            log.warning("--traceparent has no effect: tracing is off (set OTEL_EXPORTER_OTLP_ENDPOINT, see docs)")
        return NOOP
    try:
        from sagactl.tracing.otel import OtelTracing
    except ImportError as exc:
        log.warning(
            "tracing is asked for (%s) but OpenTelemetry is not installed (%s): pip install 'sagactl[otel]';"
            " running without tracing",
            chosen.why,
            exc.name or exc,
        )
        return NOOP
    return OtelTracing(chosen, env, traceparent=traceparent)
