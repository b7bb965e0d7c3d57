-- The gateway's identity store: API keys, users, refresh tokens and the audit chain.
-- The gateway owns this schema; the worker never reads it.

CREATE SCHEMA IF NOT EXISTS gateway;

-- API keys are shown once at creation. Only a SHA-256 of the whole key is kept (keys carry 190
-- bits of randomness, so a slow hash adds nothing); `prefix` is the public part used to find
-- the row without scanning.
CREATE TABLE gateway.api_keys (
    id             uuid PRIMARY KEY,
    tenant_id      uuid NOT NULL REFERENCES worker.tenants (id) ON DELETE CASCADE,
    name           text NOT NULL,
    prefix         text NOT NULL UNIQUE,
    key_hash       bytea NOT NULL,
    role           text NOT NULL CHECK (role IN ('admin', 'editor', 'reader')),
    -- NULL: every collection of the tenant; otherwise only these.
    collection_ids uuid[],
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz,
    revoked_at     timestamptz
);
CREATE INDEX api_keys_tenant_idx ON gateway.api_keys (tenant_id, created_at DESC);

-- Users sign in with a password (argon2id, PHC string) and receive short-lived JWTs.
CREATE TABLE gateway.users (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL REFERENCES worker.tenants (id) ON DELETE CASCADE,
    username      text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'editor', 'reader')),
    created_at    timestamptz NOT NULL DEFAULT now(),
    disabled_at   timestamptz
);

-- Refresh tokens rotate: each use revokes the presented token and issues a new one.
CREATE TABLE gateway.refresh_tokens (
    id          uuid PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES gateway.users (id) ON DELETE CASCADE,
    token_hash  bytea NOT NULL UNIQUE,
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Append-only, hash-chained audit log. `entry_hash` = SHA-256(prev_hash || canonical entry);
-- the canonical form is computed by the gateway from the stored columns, and `details` is
-- stored as the exact text that was hashed (jsonb would reorder keys).
CREATE TABLE gateway.audit_log (
    seq        bigint PRIMARY KEY,
    at_micros  bigint NOT NULL,
    tenant_id  uuid NOT NULL,
    actor      text NOT NULL,
    action     text NOT NULL,
    target     text NOT NULL,
    details    text NOT NULL,
    prev_hash  bytea NOT NULL,
    entry_hash bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant_idx ON gateway.audit_log (tenant_id, seq DESC);

-- Rows are never changed or removed through normal SQL; tampering therefore needs a superuser
-- disabling this trigger, and the hash chain still exposes it.
CREATE FUNCTION gateway.audit_log_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'gateway.audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only
    BEFORE UPDATE OR DELETE ON gateway.audit_log
    FOR EACH ROW EXECUTE FUNCTION gateway.audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate
    BEFORE TRUNCATE ON gateway.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION gateway.audit_log_is_append_only();
