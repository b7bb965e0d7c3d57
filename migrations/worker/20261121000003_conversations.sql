-- Persisted conversations: every ChatStream answer is stored with the question, the sources
-- it was given, its citations and how it ended (a cancelled or failed answer keeps the part
-- the caller saw).

CREATE TABLE worker.conversations (
    id         uuid PRIMARY KEY,
    tenant_id  uuid NOT NULL REFERENCES worker.tenants (id) ON DELETE CASCADE,
    title      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX conversations_by_tenant_recent
    ON worker.conversations (tenant_id, updated_at DESC, id DESC);

CREATE TABLE worker.conversation_messages (
    -- UUIDv7: ordering by id is ordering by time.
    id              uuid PRIMARY KEY,
    conversation_id uuid NOT NULL REFERENCES worker.conversations (id) ON DELETE CASCADE,
    tenant_id       uuid NOT NULL REFERENCES worker.tenants (id) ON DELETE CASCADE,
    role            text NOT NULL CHECK (role IN ('user', 'assistant')),
    content         text NOT NULL,
    -- Assistant messages: the numbered sources, the citations and how the answer ended.
    sources         jsonb NOT NULL DEFAULT '[]'::jsonb,
    citations       jsonb NOT NULL DEFAULT '[]'::jsonb,
    finish_reason   text CHECK (finish_reason IN ('stop', 'length', 'cancelled', 'error')),
    answer_mode     text CHECK (answer_mode IN ('extractive', 'generative')),
    model           text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX conversation_messages_in_order
    ON worker.conversation_messages (conversation_id, id);
