-- The audit chain is keyed (HMAC-SHA-256 with THINKBANK_AUDIT_KEY, kept outside the
-- database). Entries already stored were linked with plain SHA-256: they keep `keyed = false`
-- and are accepted only before the first keyed entry, which links to them. The gateway appends
-- a keyed `audit.keyed` entry when it starts with a key and the chain ends unkeyed.
-- (A fast default: no row is rewritten, so the append-only trigger is not involved.)
ALTER TABLE gateway.audit_log ADD COLUMN keyed boolean NOT NULL DEFAULT false;
