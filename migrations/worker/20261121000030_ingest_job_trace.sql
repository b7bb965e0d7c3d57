-- The W3C trace context and request id of the call that queued a job, so the replica that
-- claims it (or this one after a restart) continues the upload's trace instead of starting
-- a new one. NULL when the caller was not traced.
ALTER TABLE worker.ingest_jobs ADD COLUMN traceparent text, ADD COLUMN request_id text;
