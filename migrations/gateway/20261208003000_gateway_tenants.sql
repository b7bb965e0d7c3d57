-- The gateway's own record of the tenants, so it reads only its own schema: sign-in by tenant
-- name, listing tenants and the foreign keys of keys and users no longer touch worker.tenants.
-- The worker keeps its own tenant rows (created through the Tenants.CreateTenant RPC); both
-- use the same ids.
CREATE TABLE gateway.tenants (
    id         uuid PRIMARY KEY,
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Every tenant created before this migration was written straight into worker.tenants by the
-- gateway; this is the last time the gateway reads that table.
INSERT INTO gateway.tenants (id, name, created_at)
SELECT id, name, created_at FROM worker.tenants;

-- The tenant every installation has (thinkbank_proto::contract::DEFAULT_TENANT_ID).
INSERT INTO gateway.tenants (id, name)
VALUES ('00000000-0000-0000-0000-000000000001', 'default')
ON CONFLICT DO NOTHING;

ALTER TABLE gateway.api_keys
    DROP CONSTRAINT api_keys_tenant_id_fkey,
    ADD CONSTRAINT api_keys_tenant_id_fkey
        FOREIGN KEY (tenant_id) REFERENCES gateway.tenants (id) ON DELETE CASCADE;
ALTER TABLE gateway.users
    DROP CONSTRAINT users_tenant_id_fkey,
    ADD CONSTRAINT users_tenant_id_fkey
        FOREIGN KEY (tenant_id) REFERENCES gateway.tenants (id) ON DELETE CASCADE;
