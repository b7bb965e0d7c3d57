-- Tenant isolation enforced by PostgreSQL itself.
--
-- Every call the worker serves for a tenant runs in a transaction that switches to the
-- non-login role `thinkbank_tenant` and sets `thinkbank.tenant_id` (and, for keys scoped to
-- some collections, `thinkbank.collection_ids`). The policies below then hide every other
-- tenant's rows and refuse writes into them, even if a query forgot its tenant filter. The
-- ingestion runner and migrations keep the connecting role, which owns the tables and so is
-- not subject to the policies: they are system work, not requests.

DO $$
BEGIN
    CREATE ROLE thinkbank_tenant NOLOGIN;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN NULL;  -- roles are cluster-wide
    WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'cannot create role thinkbank_tenant: ask the database administrator to run '
            '"CREATE ROLE thinkbank_tenant NOLOGIN; GRANT thinkbank_tenant TO %;"', current_user;
END;
$$;

DO $$
BEGIN
    IF NOT pg_has_role(current_user, 'thinkbank_tenant', 'MEMBER') THEN
        EXECUTE format('GRANT thinkbank_tenant TO %I', current_user);
    END IF;
END;
$$;

GRANT USAGE ON SCHEMA worker TO thinkbank_tenant;
GRANT SELECT ON worker.tenants TO thinkbank_tenant;
GRANT SELECT, INSERT, UPDATE, DELETE ON
    worker.collections, worker.assets, worker.ingest_jobs, worker.chunks, worker.embeddings,
    worker.conversations, worker.conversation_messages
TO thinkbank_tenant;

-- The tenant of the current transaction, or NULL (no rows visible) when none was set.
CREATE FUNCTION worker.current_tenant() RETURNS uuid
LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('thinkbank.tenant_id', true), '')::uuid
$$;

-- Whether the current transaction may see collection `c`: always, unless the caller is
-- limited to a list of collections.
CREATE FUNCTION worker.collection_allowed(c uuid) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT coalesce(current_setting('thinkbank.collection_ids', true), '') = ''
        OR c = ANY (string_to_array(current_setting('thinkbank.collection_ids', true), ',')::uuid[])
$$;

ALTER TABLE worker.collections ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON worker.collections TO thinkbank_tenant
    USING (tenant_id = worker.current_tenant() AND worker.collection_allowed(id))
    WITH CHECK (tenant_id = worker.current_tenant() AND worker.collection_allowed(id));

ALTER TABLE worker.assets ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON worker.assets TO thinkbank_tenant
    USING (tenant_id = worker.current_tenant() AND worker.collection_allowed(collection_id))
    WITH CHECK (tenant_id = worker.current_tenant() AND worker.collection_allowed(collection_id));

ALTER TABLE worker.chunks ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON worker.chunks TO thinkbank_tenant
    USING (tenant_id = worker.current_tenant() AND worker.collection_allowed(collection_id))
    WITH CHECK (tenant_id = worker.current_tenant() AND worker.collection_allowed(collection_id));

ALTER TABLE worker.embeddings ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON worker.embeddings TO thinkbank_tenant
    USING (tenant_id = worker.current_tenant() AND worker.collection_allowed(collection_id))
    WITH CHECK (tenant_id = worker.current_tenant() AND worker.collection_allowed(collection_id));

ALTER TABLE worker.ingest_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON worker.ingest_jobs TO thinkbank_tenant
    USING (tenant_id = worker.current_tenant())
    WITH CHECK (tenant_id = worker.current_tenant());

ALTER TABLE worker.conversations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON worker.conversations TO thinkbank_tenant
    USING (tenant_id = worker.current_tenant())
    WITH CHECK (tenant_id = worker.current_tenant());

ALTER TABLE worker.conversation_messages ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON worker.conversation_messages TO thinkbank_tenant
    USING (tenant_id = worker.current_tenant())
    WITH CHECK (tenant_id = worker.current_tenant());

-- Under row-level security PostgreSQL only uses an index for a condition whose operator is
-- LEAKPROOF; `tsvector @@ tsquery` is not marked so, which would turn every keyword search
-- into a scan of the tenant's chunks. The match function raises no data-dependent errors, so
-- marking it is safe; it needs a superuser, and without one keyword search still works, only
-- slower (README, "Tenants and row-level security").
DO $$
BEGIN
    ALTER FUNCTION pg_catalog.ts_match_vq(tsvector, tsquery) LEAKPROOF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE NOTICE 'ts_match_vq left non-leakproof (not a superuser): keyword search under '
        'row-level security will not use the GIN index';
END;
$$;
