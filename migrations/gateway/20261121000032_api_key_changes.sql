-- Gateways cache authenticated API keys (services/gateway/src/auth/key_cache.rs) and must
-- forget one the moment it stops being valid as it was: every change that matters to
-- authentication NOTIFYs them, whoever makes it (the API, the CLI, an operator's SQL).
-- NOTIFY is transactional: gateways hear of a change when it commits.
CREATE FUNCTION gateway.api_key_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('thinkbank_api_keys', '*');
    ELSE
        PERFORM pg_notify('thinkbank_api_keys', OLD.prefix);
    END IF;
    RETURN NULL;
END
$$;

-- `last_used_at` changes on use; it does not make a cached key wrong.
CREATE TRIGGER api_key_updated AFTER UPDATE ON gateway.api_keys
    FOR EACH ROW
    WHEN (OLD.revoked_at IS DISTINCT FROM NEW.revoked_at
          OR OLD.role IS DISTINCT FROM NEW.role
          OR OLD.collection_ids IS DISTINCT FROM NEW.collection_ids
          OR OLD.key_hash IS DISTINCT FROM NEW.key_hash
          OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id
          OR OLD.prefix IS DISTINCT FROM NEW.prefix
          OR OLD.name IS DISTINCT FROM NEW.name)
    EXECUTE FUNCTION gateway.api_key_changed();

CREATE TRIGGER api_key_deleted AFTER DELETE ON gateway.api_keys
    FOR EACH ROW EXECUTE FUNCTION gateway.api_key_changed();

CREATE TRIGGER api_keys_truncated AFTER TRUNCATE ON gateway.api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION gateway.api_key_changed();
