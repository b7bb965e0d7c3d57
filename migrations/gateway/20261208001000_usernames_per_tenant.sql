-- Usernames are unique per tenant instead of across all tenants: with one global namespace,
-- creating or registering a user told the caller whether another tenant had that name.
--
-- Sign-in without naming a tenant keeps working for the accounts that can be found without
-- one: the default tenant's users and every account that exists now (their names were
-- globally unique until this migration, so they stay unambiguous; `legacy_global_name`
-- marks them). Other accounts sign in with `tenant` (the tenant's name or id).
ALTER TABLE gateway.users ADD COLUMN legacy_global_name boolean NOT NULL DEFAULT false;
UPDATE gateway.users SET legacy_global_name = true;

ALTER TABLE gateway.users DROP CONSTRAINT users_username_key;
CREATE UNIQUE INDEX users_tenant_username ON gateway.users (tenant_id, username);

-- The accounts that sign in without a tenant must not share a name.
CREATE UNIQUE INDEX users_unqualified_username ON gateway.users (username)
    WHERE legacy_global_name OR tenant_id = '00000000-0000-0000-0000-000000000001';
