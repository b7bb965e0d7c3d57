-- Conversations belong to the principal that started them (issue 22): the gateway names it in
-- the `x-thinkbank-principal` call metadata (`user:<uuid>`, `key:<uuid>`,
-- `external:<tenant>:<subject>`), and only that principal lists, reads, renames, deletes or
-- continues it. Admins of the whole tenant may also list, read and delete (not continue or
-- rename) every conversation of their tenant.
--
-- Rows stored before this migration keep `owner` NULL: nobody can tell who started them, so
-- they are visible only to admins of the whole tenant (and to trusted internal callers that
-- name no principal), and nobody can continue them as someone else's history.
ALTER TABLE worker.conversations ADD COLUMN owner text;

-- A principal's own conversations, most recent first (the listing's access path).
CREATE INDEX conversations_by_owner_recent
    ON worker.conversations (tenant_id, owner, updated_at DESC, id DESC);
