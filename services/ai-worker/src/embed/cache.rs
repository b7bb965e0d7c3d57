//! The content-hash cache: vectors in `worker.embedding_cache` keyed by (tenant, model,
//! sha256 of the text), so identical chunks — a re-uploaded document, boilerplate shared by
//! many pages, a migration resumed after a crash — are never embedded twice. Duplicates inside
//! one call are embedded once as well.

use std::collections::HashMap;

use pgvector::Vector;
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;
use uuid::Uuid;

use super::{EmbeddedText, Embedder};
use crate::error::{Result, WorkerError};

/// What one cached call did, for logs and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Texts answered from the cache or from an identical text in the same call.
    pub reused: usize,
    /// Texts the model embedded.
    pub embedded: usize,
}

/// Embeds `texts` with `embedder`, reading and filling the cache.
pub async fn embed_cached(
    pool: &PgPool,
    tenant_id: Uuid,
    embedder: &Embedder,
    texts: &[String],
) -> Result<(Vec<EmbeddedText>, CacheStats)> {
    let model = embedder.info().name.as_str();
    let hashes: Vec<Vec<u8>> = texts
        .iter()
        .map(|t| Sha256::digest(t.as_bytes()).to_vec())
        .collect();
    let rows: Vec<(Vec<u8>, Vector, i32, bool)> = sqlx::query_as(
        "SELECT text_sha256, embedding, token_count, truncated FROM worker.embedding_cache \
         WHERE tenant_id = $1 AND model = $2 AND text_sha256 = ANY($3)",
    )
    .bind(tenant_id)
    .bind(model)
    .bind(&hashes)
    .fetch_all(pool)
    .await?;
    let mut known: HashMap<Vec<u8>, EmbeddedText> = rows
        .into_iter()
        .filter(|(_, v, _, _)| v.as_slice().len() == embedder.info().dimensions)
        .map(|(hash, vector, tokens, truncated)| {
            let embedded = EmbeddedText {
                vector: vector.to_vec(),
                token_count: usize::try_from(tokens).unwrap_or(0),
                truncated,
            };
            (hash, embedded)
        })
        .collect();

    // Each distinct missing text once, in first-seen order.
    let mut missing: Vec<usize> = Vec::new();
    let mut queued: HashMap<&[u8], ()> = HashMap::new();
    for (i, hash) in hashes.iter().enumerate() {
        if !known.contains_key(hash) && queued.insert(hash.as_slice(), ()).is_none() {
            missing.push(i);
        }
    }
    let stats = CacheStats {
        reused: texts.len() - missing.len(),
        embedded: missing.len(),
    };
    if !missing.is_empty() {
        let fresh = embedder
            .embed(missing.iter().map(|&i| texts[i].clone()).collect())
            .await
            .map_err(WorkerError::from)?;
        store(pool, tenant_id, model, &missing, &hashes, &fresh).await?;
        for (&i, embedded) in missing.iter().zip(fresh) {
            known.insert(hashes[i].clone(), embedded);
        }
    }
    let out = hashes
        .iter()
        .map(|hash| {
            known
                .get(hash)
                .cloned()
                .ok_or_else(|| WorkerError::Embedding("embedding missing for an input".into()))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((out, stats))
}

async fn store(
    pool: &PgPool,
    tenant_id: Uuid,
    model: &str,
    missing: &[usize],
    hashes: &[Vec<u8>],
    fresh: &[EmbeddedText],
) -> Result<()> {
    let keys: Vec<&[u8]> = missing.iter().map(|&i| hashes[i].as_slice()).collect();
    let vectors: Vec<Vector> = fresh
        .iter()
        .map(|e| Vector::from(e.vector.clone()))
        .collect();
    let tokens: Vec<i32> = fresh
        .iter()
        .map(|e| i32::try_from(e.token_count).unwrap_or(i32::MAX))
        .collect();
    let truncated: Vec<bool> = fresh.iter().map(|e| e.truncated).collect();
    sqlx::query(
        "INSERT INTO worker.embedding_cache (tenant_id, model, text_sha256, embedding, \
             token_count, truncated) \
         SELECT $1, $2, u.hash, u.embedding, u.tokens, u.truncated \
         FROM UNNEST($3::bytea[], $4::vector[], $5::int[], $6::bool[]) \
             AS u(hash, embedding, tokens, truncated) \
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant_id)
    .bind(model)
    .bind(&keys)
    .bind(vectors)
    .bind(&tokens)
    .bind(&truncated)
    .execute(pool)
    .await?;
    Ok(())
}
