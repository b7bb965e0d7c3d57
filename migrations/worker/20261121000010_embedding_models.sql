-- Several embedding models per installation: model migrations of collections and a
-- content-hash cache of vectors.

-- A collection's move to another embedding model. At most one runs per collection; workers
-- claim a running migration with FOR UPDATE SKIP LOCKED under a lease (like ingest_jobs), so
-- an interrupted migration is picked up again by any replica.
CREATE TABLE worker.collection_migrations (
    id            uuid PRIMARY KEY,
    tenant_id     uuid NOT NULL,
    collection_id uuid NOT NULL REFERENCES worker.collections (id) ON DELETE CASCADE,
    source_model  text NOT NULL,
    target_model  text NOT NULL,
    status        text NOT NULL
        CHECK (status IN ('running', 'completed', 'cancelled', 'failed')),
    error         text,
    leased_by     text,
    leased_until  timestamptz,
    run_after     timestamptz NOT NULL DEFAULT now(),
    attempts      integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    finished_at   timestamptz
);
CREATE UNIQUE INDEX collection_migrations_one_running_idx
    ON worker.collection_migrations (collection_id) WHERE status = 'running';
CREATE INDEX collection_migrations_collection_idx
    ON worker.collection_migrations (tenant_id, collection_id, created_at DESC);

-- Migration progress and its scan for chunks still missing a vector read by collection/model.
CREATE INDEX embeddings_collection_model_idx ON worker.embeddings (collection_id, model);

-- Vectors by content: identical text is embedded once per tenant and model.
CREATE TABLE worker.embedding_cache (
    tenant_id   uuid NOT NULL,
    model       text NOT NULL,
    text_sha256 bytea NOT NULL,
    embedding   vector NOT NULL,
    token_count integer NOT NULL,
    truncated   boolean NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, model, text_sha256)
);
