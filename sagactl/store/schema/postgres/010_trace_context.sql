-- sagactl saga_log schema v10 (PostgreSQL): the saga's trace context. With tracing on, a saga is
-- one OpenTelemetry trace; the W3C traceparent and tracestate of its root span are stored with it
-- (written once, when it is recorded), so whichever process drives it later (a worker, a resume
-- after a crash) continues the same trace. NULL: recorded with tracing off. Additive: older
-- readers keep working. (v9 is another change's; this one depends on nothing after v8.)
-- The trace ID is substr(traceparent, 4, 32), for a dashboard that links to the tracing UI.
ALTER TABLE saga_log ADD COLUMN IF NOT EXISTS traceparent text;
ALTER TABLE saga_log ADD COLUMN IF NOT EXISTS tracestate text;
