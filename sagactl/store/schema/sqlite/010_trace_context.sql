-- sagactl saga_log schema v10 (SQLite): the saga's trace context. With tracing on, a saga is one
-- OpenTelemetry trace; the W3C traceparent and tracestate of its root span are stored with it
-- (written once, when it is recorded), so whichever process drives it later (a worker, a resume
-- after a crash) continues the same trace. NULL: recorded with tracing off. Additive: older
-- readers keep working. (v9 is another change's; this one depends on nothing after v8.)
ALTER TABLE saga_log ADD COLUMN traceparent TEXT;
ALTER TABLE saga_log ADD COLUMN tracestate TEXT;
