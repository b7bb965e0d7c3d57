-- One tenant must not monopolise ingestion (issue 22, item 8): the queue is no longer one
-- global FIFO. A claim picks the tenant with the fewest jobs running, then the one served
-- longest ago, then that tenant's oldest due job (services/ai-worker/src/ingest/queue.rs).
-- `ingest_turns` remembers when each tenant was last served (upserted by every claim).
CREATE TABLE worker.ingest_turns (
    tenant_id      uuid PRIMARY KEY REFERENCES worker.tenants (id) ON DELETE CASCADE,
    last_served_at timestamptz NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- A tenant's due jobs, oldest first, and its running (leased) jobs.
CREATE INDEX ingest_jobs_tenant_due_idx ON worker.ingest_jobs (tenant_id, run_after);

-- Counting a tenant's running jobs reads only leased rows.
CREATE INDEX ingest_jobs_leased_idx ON worker.ingest_jobs (tenant_id) WHERE leased_by IS NOT NULL;
