-- The W3C traceparent of the span that queued the work, so its trace continues when a worker
-- (maybe in another process, maybe much later) delivers a document or an event.
ALTER TABLE outbound_messages ADD COLUMN trace_context text;
ALTER TABLE events ADD COLUMN trace_context text;
