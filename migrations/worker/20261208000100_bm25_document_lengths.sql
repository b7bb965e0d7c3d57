-- Document-level BM25 for the keyword leg (search/keyword.rs).
--
-- A chunk is scored on its own words, but whether its document as a whole is about the query
-- is evidence too: a section that mentions "shadowing" eight times over three chunks is about
-- shadowing more than a short passage elsewhere that mentions it three times. The keyword leg
-- blends each chunk's BM25 with its document's BM25 (term frequencies summed over the
-- document's matching chunks, normalised by the document's length). That needs, per document,
-- its length, and per collection, the number of documents: kept exact here by the same
-- statement-level triggers that keep the chunk statistics (20261207000001).
--
-- No foreign key to worker.assets: an asset's deletion cascades to its chunks, and the chunk
-- trigger must still find the document row to subtract from (a cascade on this table could
-- run first). The trigger removes a document's row when its last chunk goes.

ALTER TABLE worker.keyword_stats ADD COLUMN documents bigint NOT NULL DEFAULT 0;

CREATE TABLE worker.keyword_documents (
    asset_id      uuid PRIMARY KEY,
    collection_id uuid NOT NULL REFERENCES worker.collections (id) ON DELETE CASCADE,
    tenant_id     uuid NOT NULL,
    chunks        bigint NOT NULL,
    -- Sum of its chunks' keyword_length: the document length BM25 normalises by.
    length        bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX keyword_documents_collection ON worker.keyword_documents (collection_id);

INSERT INTO worker.keyword_documents (asset_id, collection_id, tenant_id, chunks, length)
SELECT asset_id, collection_id, tenant_id, count(*), sum(keyword_length)
FROM worker.chunks GROUP BY asset_id, collection_id, tenant_id;

UPDATE worker.keyword_stats s SET documents = d.n
FROM (SELECT collection_id, count(*) AS n FROM worker.keyword_documents GROUP BY collection_id) d
WHERE d.collection_id = s.collection_id;

-- The chunk-statistics functions grow the document part; everything else is unchanged. The
-- stats row is still touched first, so writers of one collection serialise on it.
CREATE OR REPLACE FUNCTION worker.keyword_stats_added() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, worker AS $$
BEGIN
    INSERT INTO worker.keyword_stats AS s (collection_id, tenant_id, chunks, total_length)
    SELECT collection_id, tenant_id, count(*), sum(keyword_length)
    FROM added GROUP BY collection_id, tenant_id ORDER BY collection_id
    ON CONFLICT (collection_id) DO UPDATE
        SET chunks = s.chunks + EXCLUDED.chunks,
            total_length = s.total_length + EXCLUDED.total_length;
    INSERT INTO worker.keyword_terms AS t (collection_id, lexeme, tenant_id, chunks)
    SELECT a.collection_id, l.lexeme, a.tenant_id, count(*)
    FROM added a, unnest(tsvector_to_array(a.tsv)) AS l(lexeme)
    GROUP BY a.collection_id, l.lexeme, a.tenant_id ORDER BY 1, 2
    ON CONFLICT (collection_id, lexeme) DO UPDATE SET chunks = t.chunks + EXCLUDED.chunks;
    WITH upserted AS (
        INSERT INTO worker.keyword_documents AS d (asset_id, collection_id, tenant_id, chunks, length)
        SELECT asset_id, collection_id, tenant_id, count(*), sum(keyword_length)
        FROM added GROUP BY asset_id, collection_id, tenant_id ORDER BY asset_id
        ON CONFLICT (asset_id) DO UPDATE
            SET chunks = d.chunks + EXCLUDED.chunks, length = d.length + EXCLUDED.length
        -- xmax is 0 on a row this statement inserted, not on one it updated.
        RETURNING collection_id, (xmax = 0) AS fresh
    )
    UPDATE worker.keyword_stats s SET documents = s.documents + n.fresh
    FROM (SELECT collection_id, count(*) FILTER (WHERE fresh) AS fresh
          FROM upserted GROUP BY collection_id) n
    WHERE s.collection_id = n.collection_id AND n.fresh > 0;
    RETURN NULL;
END;
$$;

CREATE OR REPLACE FUNCTION worker.keyword_stats_removed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, worker AS $$
BEGIN
    -- A collection being deleted has lost its rows already (cascade): nothing to update then.
    UPDATE worker.keyword_stats s
    SET chunks = s.chunks - r.n, total_length = s.total_length - r.len
    FROM (SELECT collection_id, count(*) AS n, sum(keyword_length) AS len
          FROM removed GROUP BY collection_id ORDER BY collection_id) r
    WHERE s.collection_id = r.collection_id;
    UPDATE worker.keyword_terms t SET chunks = t.chunks - r.n
    FROM (SELECT rm.collection_id, l.lexeme, count(*) AS n
          FROM removed rm, unnest(tsvector_to_array(rm.tsv)) AS l(lexeme)
          GROUP BY rm.collection_id, l.lexeme) r
    WHERE t.collection_id = r.collection_id AND t.lexeme = r.lexeme;
    -- A term no chunk holds any more goes (its update above and this delete are separate
    -- statements: one statement cannot both update and delete a row).
    DELETE FROM worker.keyword_terms t
    USING (SELECT DISTINCT rm.collection_id, l.lexeme
           FROM removed rm, unnest(tsvector_to_array(rm.tsv)) AS l(lexeme)) r
    WHERE t.collection_id = r.collection_id AND t.lexeme = r.lexeme AND t.chunks <= 0;
    UPDATE worker.keyword_documents d
    SET chunks = d.chunks - r.n, length = d.length - r.len
    FROM (SELECT asset_id, count(*) AS n, sum(keyword_length) AS len
          FROM removed GROUP BY asset_id ORDER BY asset_id) r
    WHERE d.asset_id = r.asset_id;
    WITH gone AS (
        DELETE FROM worker.keyword_documents d
        USING (SELECT DISTINCT asset_id FROM removed) r
        WHERE d.asset_id = r.asset_id AND d.chunks <= 0
        RETURNING d.collection_id
    )
    UPDATE worker.keyword_stats s SET documents = s.documents - g.n
    FROM (SELECT collection_id, count(*) AS n FROM gone GROUP BY collection_id) g
    WHERE s.collection_id = g.collection_id;
    RETURN NULL;
END;
$$;

GRANT SELECT ON worker.keyword_documents TO thinkbank_tenant;
ALTER TABLE worker.keyword_documents ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON worker.keyword_documents TO thinkbank_tenant
    USING (tenant_id = worker.current_tenant() AND worker.collection_allowed(collection_id));
