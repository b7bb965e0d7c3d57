-- Okapi BM25 for the keyword leg (search/keyword.rs).
--
-- BM25 needs, per collection, the number of chunks and their average length (N, avgdl) and,
-- per term, the number of chunks that contain it (df, for IDF). These live in two small
-- tables kept exact by statement-level triggers on worker.chunks, so every path that adds or
-- removes chunks (ingestion, re-processing, replacing a version, deleting an asset or a whole
-- collection through foreign-key cascades) keeps them right without knowing about them.
--
-- A chunk's tsvector now carries its title terms too: the file name (without extension, split
-- on - _ .) and its heading path, with weight A, ahead of the body (weight D). The keyword leg
-- counts an A position more than a body position (BM25F-style field weighting).

CREATE FUNCTION worker.chunk_tsv(cfg regconfig, filename text, headings text[], body text)
RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT setweight(to_tsvector(cfg, concat_ws(' ',
               translate(regexp_replace(filename, '\.[A-Za-z0-9]{1,5}$', ''), '-_.', '   '),
               array_to_string(headings, ' '))), 'A')
        || to_tsvector(cfg, body)
$$;

-- Number of term positions in a tsvector: the chunk length BM25 normalises by.
CREATE FUNCTION worker.tsv_length(v tsvector) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(sum(coalesce(array_length(positions, 1), 1)), 0)::integer FROM unnest(v)
$$;

UPDATE worker.chunks c
SET tsv = worker.chunk_tsv(col.text_search_config, a.filename, c.headings, c.text)
FROM worker.assets a, worker.collections col
WHERE a.id = c.asset_id AND col.id = c.collection_id;

ALTER TABLE worker.chunks
    ADD COLUMN keyword_length integer GENERATED ALWAYS AS (worker.tsv_length(tsv)) STORED;

CREATE TABLE worker.keyword_stats (
    collection_id uuid PRIMARY KEY REFERENCES worker.collections (id) ON DELETE CASCADE,
    tenant_id     uuid NOT NULL,
    chunks        bigint NOT NULL,
    total_length  bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE worker.keyword_terms (
    collection_id uuid NOT NULL REFERENCES worker.collections (id) ON DELETE CASCADE,
    lexeme        text NOT NULL,
    tenant_id     uuid NOT NULL,
    -- Chunks of the collection whose tsvector holds the lexeme (document frequency).
    chunks        bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (collection_id, lexeme)
);

INSERT INTO worker.keyword_stats (collection_id, tenant_id, chunks, total_length)
SELECT collection_id, tenant_id, count(*), sum(keyword_length)
FROM worker.chunks GROUP BY collection_id, tenant_id;

INSERT INTO worker.keyword_terms (collection_id, lexeme, tenant_id, chunks)
SELECT c.collection_id, l.lexeme, c.tenant_id, count(*)
FROM worker.chunks c, unnest(tsvector_to_array(c.tsv)) AS l(lexeme)
GROUP BY c.collection_id, l.lexeme, c.tenant_id;

-- Writers of one collection serialise on its keyword_stats row (always touched first), so the
-- term rows they touch next can never deadlock. SECURITY DEFINER: chunks are also deleted by
-- tenant-role transactions (asset deletion), which may not write statistics directly.
CREATE FUNCTION worker.keyword_stats_added() RETURNS trigger
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
    RETURN NULL;
END;
$$;

CREATE FUNCTION worker.keyword_stats_removed() RETURNS trigger
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
    RETURN NULL;
END;
$$;

CREATE TRIGGER chunks_keyword_stats_insert AFTER INSERT ON worker.chunks
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION worker.keyword_stats_added();
CREATE TRIGGER chunks_keyword_stats_delete AFTER DELETE ON worker.chunks
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION worker.keyword_stats_removed();
-- An UPDATE is a removal of the old rows and an addition of the new ones.
CREATE TRIGGER chunks_keyword_stats_update_old AFTER UPDATE ON worker.chunks
    REFERENCING OLD TABLE AS removed
    FOR EACH STATEMENT EXECUTE FUNCTION worker.keyword_stats_removed();
CREATE TRIGGER chunks_keyword_stats_update_new AFTER UPDATE ON worker.chunks
    REFERENCING NEW TABLE AS added
    FOR EACH STATEMENT EXECUTE FUNCTION worker.keyword_stats_added();

-- Statistics are tenant data (they reveal which words a collection holds): the same policy as
-- the chunks they summarise.
GRANT SELECT ON worker.keyword_stats, worker.keyword_terms TO thinkbank_tenant;
ALTER TABLE worker.keyword_stats ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON worker.keyword_stats TO thinkbank_tenant
    USING (tenant_id = worker.current_tenant() AND worker.collection_allowed(collection_id));
ALTER TABLE worker.keyword_terms ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON worker.keyword_terms TO thinkbank_tenant
    USING (tenant_id = worker.current_tenant() AND worker.collection_allowed(collection_id));

-- OR of many tsqueries (the keyword leg's "any term" candidates): `||` as an aggregate.
CREATE AGGREGATE worker.tsquery_any(tsquery) (SFUNC = pg_catalog.tsquery_or, STYPE = tsquery);
