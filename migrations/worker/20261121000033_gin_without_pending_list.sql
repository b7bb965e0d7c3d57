-- The keyword leg's GIN index takes new chunks straight into its tree. With GIN's default
-- fast update, up to gin_pending_list_limit (4 MB) of fresh entries wait in an unsorted
-- pending list that every `@@` search scans in full until (auto)vacuum merges it: measured on
-- 100k chunks (make bench-search), keyword searches took 9-12 ms instead of 3-4 ms depending
-- on how full the list happened to be. Ingestion's time is the embedding's, so search latency
-- that does not depend on the last vacuum is worth the costlier insert.
ALTER INDEX worker.chunks_tsv_idx SET (fastupdate = off);
SELECT gin_clean_pending_list('worker.chunks_tsv_idx'::regclass);
