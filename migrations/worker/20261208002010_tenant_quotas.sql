-- Per-tenant quotas (issue 22, item 8): what a tenant may hold, enforced by the worker
-- (services/ai-worker/src/ingest/quota.rs).
--
-- Per-tenant quotas set by the operator (`PUT /api/v1/tenants/{id}/quotas`). A NULL column
-- takes the worker's default (`THINKBANK_QUOTA_MAX_*`); 0 means no limit.
CREATE TABLE worker.tenant_quotas (
    tenant_id  uuid PRIMARY KEY REFERENCES worker.tenants (id) ON DELETE CASCADE,
    max_assets bigint CHECK (max_assets >= 0),
    max_bytes  bigint CHECK (max_bytes >= 0),
    max_chunks bigint CHECK (max_chunks >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT ON worker.tenant_quotas TO thinkbank_tenant;
ALTER TABLE worker.tenant_quotas ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON worker.tenant_quotas TO thinkbank_tenant
    USING (tenant_id = worker.current_tenant());

-- What the current transaction's tenant holds, over all its collections. Row-level security
-- would show a collection-limited caller only its own collections, and a quota is the
-- tenant's, so this runs as the tables' owner; it reports only on `current_tenant()`.
CREATE FUNCTION worker.tenant_usage(OUT assets bigint, OUT bytes bigint, OUT chunks bigint)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
    SELECT count(*), coalesce(sum(size_bytes), 0)::bigint, coalesce(sum(chunk_count), 0)::bigint
    FROM worker.assets WHERE tenant_id = worker.current_tenant()
$$;
REVOKE ALL ON FUNCTION worker.tenant_usage() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION worker.tenant_usage() TO thinkbank_tenant;
