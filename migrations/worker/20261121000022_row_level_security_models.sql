-- Row-level security for the tables of embedding-model migrations and the vector cache, like
-- every other tenant-owned table (see …_row_level_security.sql).

GRANT SELECT, INSERT, UPDATE, DELETE ON worker.collection_migrations, worker.embedding_cache
TO thinkbank_tenant;

ALTER TABLE worker.collection_migrations ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON worker.collection_migrations TO thinkbank_tenant
    USING (tenant_id = worker.current_tenant() AND worker.collection_allowed(collection_id))
    WITH CHECK (tenant_id = worker.current_tenant() AND worker.collection_allowed(collection_id));

ALTER TABLE worker.embedding_cache ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON worker.embedding_cache TO thinkbank_tenant
    USING (tenant_id = worker.current_tenant())
    WITH CHECK (tenant_id = worker.current_tenant());
