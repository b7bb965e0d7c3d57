//! Loads `make bench-search`'s corpus straight into the worker's tables (default tenant and
//! collection) and builds the model's HNSW index once, as the worker would, but without
//! re-embedding through the ingestion queue.

use std::time::Instant;

use anyhow::Context as _;
use sqlx::PgPool;
use thinkbank_ai_worker::embed::ModelInfo;
use uuid::Uuid;

/// Passages per asset: consecutive passages of the corpus form one asset.
pub const ASSET_CHUNKS: usize = 50;
/// Assets carry `{"shard": i % SHARDS}`, so one shard holds 1 % of the chunks.
pub const SHARDS: usize = 100;
/// Assets inserted per round trip.
const ASSETS_PER_BATCH: usize = 40;
/// The default tenant of a fresh database; its default collection has the same id (see the
/// first migration).
const DEFAULT_TENANT: Uuid = thinkbank_proto::contract::DEFAULT_TENANT_ID;

pub struct Loaded {
    pub load_seconds: f64,
    pub index_seconds: f64,
}

pub async fn load(
    pool: &PgPool,
    model: &ModelInfo,
    passages: &[String],
    vectors: &[Vec<f32>],
) -> anyhow::Result<Loaded> {
    anyhow::ensure!(passages.len() == vectors.len(), "one vector per passage");
    let started = Instant::now();
    let groups: Vec<(usize, &[String])> = passages.chunks(ASSET_CHUNKS).enumerate().collect();
    for (batch_no, batch) in groups.chunks(ASSETS_PER_BATCH).enumerate() {
        let mut tx = pool.begin().await?;
        let (mut asset_ids, mut names, mut metadata, mut counts) = (vec![], vec![], vec![], vec![]);
        let (mut chunk_ids, mut chunk_assets, mut indexes, mut texts) =
            (vec![], vec![], vec![], vec![]);
        let (mut ends, mut words, mut embeddings) = (vec![], vec![], vec![]);
        for &(asset_no, group) in batch {
            let asset_id = Uuid::from_u128(asset_no as u128 + 1);
            asset_ids.push(asset_id);
            names.push(format!("rust-docs-{asset_no:05}.md"));
            metadata.push(serde_json::json!({"shard": asset_no % SHARDS}));
            counts.push(group.len() as i32);
            let mut offset = 0i64;
            for (i, text) in group.iter().enumerate() {
                let global = asset_no * ASSET_CHUNKS + i;
                chunk_ids.push(Uuid::from_u128((1 << 64) + global as u128));
                chunk_assets.push(asset_id);
                indexes.push(i as i32);
                offset += text.len() as i64;
                ends.push(offset);
                words.push(text.split_whitespace().count() as i32);
                texts.push(text.clone());
                embeddings.push(vector_literal(&vectors[global]));
            }
        }
        sqlx::query(
            "INSERT INTO worker.assets (id, tenant_id, collection_id, filename, media_type, \
             size_bytes, sha256, object_key, metadata, status, stage, progress, chunk_count, \
             embedding_model) \
             SELECT id, $1, $1, name, 'text/markdown', 1, id::text, 'bench/' || id, meta, \
             'ready', 'ready', 1, n, $2 \
             FROM unnest($3::uuid[], $4::text[], $5::jsonb[], $6::int[]) AS t(id, name, meta, n)",
        )
        .bind(DEFAULT_TENANT)
        .bind(&model.name)
        .bind(&asset_ids)
        .bind(&names)
        .bind(&metadata)
        .bind(&counts)
        .execute(&mut *tx)
        .await
        .context("inserting assets")?;
        sqlx::query(
            "INSERT INTO worker.chunks (id, tenant_id, collection_id, asset_id, chunk_index, \
             text, char_start, char_end, token_count, tsv) \
             SELECT id, $1, $1, asset, idx, body, stop - length(body), stop, words, \
             to_tsvector('english', body) \
             FROM unnest($2::uuid[], $3::uuid[], $4::int[], $5::text[], $6::bigint[], $7::int[]) \
             AS t(id, asset, idx, body, stop, words)",
        )
        .bind(DEFAULT_TENANT)
        .bind(&chunk_ids)
        .bind(&chunk_assets)
        .bind(&indexes)
        .bind(&texts)
        .bind(&ends)
        .bind(&words)
        .execute(&mut *tx)
        .await
        .context("inserting chunks")?;
        sqlx::query(
            "INSERT INTO worker.embeddings (chunk_id, model, tenant_id, collection_id, \
             asset_id, embedding) \
             SELECT id, $2, $1, $1, asset, v::vector \
             FROM unnest($3::uuid[], $4::uuid[], $5::text[]) AS t(id, asset, v)",
        )
        .bind(DEFAULT_TENANT)
        .bind(&model.name)
        .bind(&chunk_ids)
        .bind(&chunk_assets)
        .bind(&embeddings)
        .execute(&mut *tx)
        .await
        .context("inserting embeddings")?;
        tx.commit().await?;
        if batch_no % 10 == 0 {
            println!(
                "loaded {} of {} chunks",
                ((batch_no + 1) * ASSETS_PER_BATCH * ASSET_CHUNKS).min(passages.len()),
                passages.len()
            );
        }
    }
    sqlx::query("ANALYZE").execute(pool).await?;
    let load_seconds = started.elapsed().as_secs_f64();

    // The index of one model over 100k 384-d vectors needs more than the default 64 MB of
    // maintenance memory to be built in memory (much faster).
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(pool)
        .await?;
    sqlx::query(&format!(
        "ALTER DATABASE \"{database}\" SET maintenance_work_mem = '1GB'"
    ))
    .execute(pool)
    .await?;
    // The setting applies to new sessions: build the index on a fresh connection.
    let started = Instant::now();
    let fresh = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with((*pool.connect_options()).clone())
        .await?;
    thinkbank_ai_worker::db::ensure_vector_index(&fresh, model)
        .await
        .context("building the HNSW index")?;
    fresh.close().await;
    Ok(Loaded {
        load_seconds,
        index_seconds: started.elapsed().as_secs_f64(),
    })
}

/// pgvector's text form, `[x,y,…]`.
fn vector_literal(vector: &[f32]) -> String {
    let parts: Vec<String> = vector.iter().map(f32::to_string).collect();
    format!("[{}]", parts.join(","))
}
