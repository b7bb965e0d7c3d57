//! Shadow retrieval: a second retrieval profile (other fusion weights, another embedding
//! model, one leg only, …) that runs for a sampled share of live VectorSearch queries, off the
//! request path, and is compared with the primary result: overlap@k, rank correlation and the
//! ranking-time delta go to metrics and a structured log line.
//!
//! The primary response never waits for, or depends on, the shadow: the comparison starts
//! after the primary result exists, runs in its own task, and is dropped rather than queued
//! when the previous ones are still running. Operators use it to judge a change to ranking or
//! to the embedding model on real traffic before switching.

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use serde::Deserialize;
use sqlx::PgPool;
use tokio::sync::Semaphore;
use tracing::Instrument as _;
use uuid::Uuid;

use super::{Mode, Outcome, Query, QueryVectors, RankOptions, Recall, fusion};
use crate::{embed::Registry, tenancy::Tenant};

/// A shadow search that takes longer than this is abandoned (and counted as an error).
const SHADOW_TIMEOUT: Duration = Duration::from_secs(30);
/// Sampling works in millionths so a rate accumulates exactly.
const PPM: u64 = 1_000_000;

/// The shadow profile, from `THINKBANK_SEARCH_SHADOW` (JSON). Unset fields keep the primary
/// query's value, so `{"name": "vector-only", "mode": "vector"}` changes the mode alone.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShadowProfile {
    /// Label of the comparison in metrics and logs.
    pub name: String,
    /// Share of live searches also run with this profile, 0.0–1.0.
    #[serde(default = "default_sample_rate")]
    pub sample_rate: f64,
    /// Shadow searches running at once; a sampled search beyond this is skipped.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    pub mode: Option<ModeName>,
    pub rrf_k: Option<f64>,
    pub vector_weight: Option<f64>,
    pub keyword_weight: Option<f64>,
    /// Search with this embedding model's vectors (e.g. the target of a running collection
    /// migration) instead of each collection's own model.
    pub model: Option<String>,
    pub recall: Option<RecallName>,
    pub ef_search: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModeName {
    Vector,
    Keyword,
    Hybrid,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecallName {
    Fast,
    Balanced,
    High,
}

fn default_sample_rate() -> f64 {
    0.05
}

fn default_max_in_flight() -> usize {
    1
}

/// Parses and validates a profile (the clap value parser of `THINKBANK_SEARCH_SHADOW`).
pub fn parse_profile(json: &str) -> Result<ShadowProfile, String> {
    let profile: ShadowProfile = serde_json::from_str(json)
        .map_err(|e| format!("invalid shadow profile JSON ({e}); example: {EXAMPLE}"))?;
    if profile.name.trim().is_empty() || profile.name.len() > 64 {
        return Err("shadow profile: name must be 1-64 characters".into());
    }
    if !(0.0..=1.0).contains(&profile.sample_rate) {
        return Err(format!(
            "shadow profile: sample_rate must be between 0 and 1, got {}",
            profile.sample_rate
        ));
    }
    if profile.max_in_flight == 0 {
        return Err("shadow profile: max_in_flight must be at least 1".into());
    }
    let max_weight = f64::from(fusion::MAX_WEIGHT);
    for (field, weight) in [
        ("vector_weight", profile.vector_weight),
        ("keyword_weight", profile.keyword_weight),
    ] {
        if weight.is_some_and(|w| !(0.0..=max_weight).contains(&w)) {
            return Err(format!(
                "shadow profile: {field} must be between 0 and {max_weight}"
            ));
        }
    }
    if profile
        .rrf_k
        .is_some_and(|k| !(1.0..=f64::from(fusion::MAX_RRF_K)).contains(&k))
    {
        return Err(format!(
            "shadow profile: rrf_k must be between 1 and {}",
            fusion::MAX_RRF_K
        ));
    }
    if profile
        .ef_search
        .is_some_and(|ef| ef == 0 || ef > super::vector::MAX_EF_SEARCH)
    {
        return Err(format!(
            "shadow profile: ef_search must be between 1 and {}",
            super::vector::MAX_EF_SEARCH
        ));
    }
    Ok(profile)
}

const EXAMPLE: &str = r#"{"name": "vector-only", "mode": "vector", "sample_rate": 0.05}"#;

/// The running shadow profile of one worker. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Shadow {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    profile: ShadowProfile,
    rate_ppm: u64,
    /// Accumulated sampling credit in millionths; a query is sampled each time it crosses a
    /// whole unit, so a rate of 0.1 samples exactly every tenth query.
    credit: AtomicU64,
    permits: Arc<Semaphore>,
    pool: PgPool,
    models: Registry,
    /// The server's keyword ranking, so a profile differs only in what it overrides.
    bm25: super::Bm25,
}

/// What one comparison found.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub overlap: f64,
    pub rank_correlation: Option<f64>,
    pub primary_ms: f64,
    pub shadow_ms: f64,
}

impl Shadow {
    /// Checks the profile against the configured models; an unknown model is a start-up error.
    pub fn new(
        profile: ShadowProfile,
        pool: PgPool,
        models: Registry,
        bm25: super::Bm25,
    ) -> Result<Self, String> {
        if let Some(model) = &profile.model {
            models.get(model).map_err(|_| {
                format!(
                    "shadow profile '{}' names embedding model '{model}', which is not \
                     configured (THINKBANK_EMBEDDING_MODELS has: {})",
                    profile.name,
                    models.names().join(", ")
                )
            })?;
        }
        // Rates are at most 1.0, so the product fits and rounds to the nearest millionth.
        let rate_ppm = (profile.sample_rate * PPM as f64).round() as u64;
        Ok(Self {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(profile.max_in_flight)),
                profile,
                rate_ppm,
                credit: AtomicU64::new(0),
                pool,
                models,
                bm25,
            }),
        })
    }

    pub fn profile(&self) -> &ShadowProfile {
        &self.inner.profile
    }

    /// Called with each live search's primary result. When the query is sampled and a slot is
    /// free, the shadow search starts in a task of its own; this returns at once either way.
    pub fn observe(&self, tenant: &Tenant, query: &Query, primary: &Outcome) {
        let inner = &self.inner;
        if !self.sampled() {
            return;
        }
        let Ok(permit) = inner.permits.clone().try_acquire_owned() else {
            crate::telemetry::METRICS.shadow_outcome(&inner.profile.name, "skipped_busy");
            return;
        };
        let shadow_query = shadow_query(&inner.profile, query);
        let primary_ids: Vec<Uuid> = primary.hits.iter().map(|h| h.chunk_id).collect();
        // The primary's ranking time: the shadow does not highlight snippets either. (A first
        // vector page is highlighted inside the vector statement, whose cost, a fraction of a
        // millisecond, stays in the primary's time.)
        let primary_ms = (primary.timings.total_ms - primary.timings.snippet_ms).max(0.0);
        let known = primary.vectors.clone();
        let tenant = tenant.clone();
        let this = self.clone();
        let span =
            tracing::info_span!(parent: None, "search.shadow", profile = %inner.profile.name);
        span.follows_from(tracing::Span::current());
        tokio::spawn(
            async move {
                let _permit = permit;
                this.compare(tenant, shadow_query, known, primary_ids, primary_ms)
                    .await;
            }
            .instrument(span),
        );
    }

    fn sampled(&self) -> bool {
        let inner = &self.inner;
        if inner.rate_ppm == 0 {
            return false;
        }
        let before = inner.credit.fetch_add(inner.rate_ppm, Ordering::Relaxed);
        (before + inner.rate_ppm) / PPM > before / PPM
    }

    /// Ranks `query` with the profile, keeping out of live searches' way: it reuses the
    /// primary's query vectors where the profile searches the same model's vectors (no forward
    /// pass to hold up the next live query's embedding), and runs hybrid's legs one after the
    /// other (one database backend busy at a time, leaving the other cores to live work). Its
    /// latency is reported as if it were primary: legs at once, vectors embedded.
    async fn compare(
        &self,
        tenant: Tenant,
        query: Query,
        known: QueryVectors,
        primary: Vec<Uuid>,
        primary_ms: f64,
    ) {
        let inner = &self.inner;
        let name = &inner.profile.name;
        let options = RankOptions {
            known: &known,
            highlight: false,
            one_leg_at_a_time: true,
            // A profile compares retrieval; the reranker would cost a paid call per shadow.
            reranker: None,
            bm25: inner.bm25,
        };
        let ranked = tokio::time::timeout(
            SHADOW_TIMEOUT,
            super::rank(&inner.pool, &inner.models, &tenant, &query, options),
        )
        .await;
        let shadow = match ranked {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => {
                crate::telemetry::METRICS.shadow_outcome(name, "error");
                tracing::warn!(target: "thinkbank::shadow", profile = %name, %error, "shadow search failed");
                return;
            }
            Err(_) => {
                crate::telemetry::METRICS.shadow_outcome(name, "error");
                tracing::warn!(target: "thinkbank::shadow", profile = %name, timeout_s = SHADOW_TIMEOUT.as_secs(), "shadow search timed out");
                return;
            }
        };
        // As if the profile were primary: a reused vector would have been embedded too.
        let reused_ms: f64 = shadow
            .vectors
            .iter()
            .filter(|v| known.iter().any(|k| k.model == v.model))
            .map(|v| v.embed_ms)
            .sum();
        let shadow_ms = shadow.timings.total_ms + reused_ms;
        let shadow_ids: Vec<Uuid> = shadow.hits.iter().map(|h| h.chunk_id).collect();
        let comparison = Comparison {
            overlap: overlap(&primary, &shadow_ids),
            rank_correlation: kendall_tau_b(&primary, &shadow_ids),
            primary_ms,
            shadow_ms,
        };
        crate::telemetry::METRICS.shadow_compared(
            name,
            comparison.overlap,
            comparison.rank_correlation,
            (comparison.shadow_ms - comparison.primary_ms) / 1000.0,
        );
        tracing::info!(
            target: "thinkbank::shadow",
            profile = %name,
            tenant = %tenant.id,
            k = query.top_k,
            primary_hits = primary.len(),
            shadow_hits = shadow_ids.len(),
            overlap_at_k = comparison.overlap,
            rank_correlation = comparison.rank_correlation,
            primary_ms = comparison.primary_ms,
            shadow_ms = comparison.shadow_ms,
            latency_delta_ms = comparison.shadow_ms - comparison.primary_ms,
            "shadow search compared"
        );
    }
}

/// The primary query with the profile's overrides. A score threshold only means something
/// on the primary mode's scale, so it is dropped when the mode changes.
fn shadow_query(profile: &ShadowProfile, primary: &Query) -> Query {
    let mut query = primary.clone();
    query.explain = false;
    if let Some(mode) = profile.mode {
        let mode = match mode {
            ModeName::Vector => Mode::Vector,
            ModeName::Keyword => Mode::Keyword,
            ModeName::Hybrid => Mode::Hybrid,
        };
        if mode != query.mode {
            query.min_score = 0.0;
        }
        query.mode = mode;
    }
    if let Some(k) = profile.rrf_k {
        query.fusion.rrf_k = k;
    }
    if let Some(w) = profile.vector_weight {
        query.fusion.vector_weight = w;
    }
    if let Some(w) = profile.keyword_weight {
        query.fusion.keyword_weight = w;
    }
    if let Some(recall) = profile.recall {
        query.recall = match recall {
            RecallName::Fast => Recall::Fast,
            RecallName::Balanced => Recall::Balanced,
            RecallName::High => Recall::High,
        };
    }
    if let Some(ef) = profile.ef_search {
        query.ef_search = Some(ef);
    }
    if profile.model.is_some() {
        query.model_override.clone_from(&profile.model);
    }
    query
}

/// Share of the primary page the shadow also returned. Two empty pages agree completely.
pub fn overlap(primary: &[Uuid], shadow: &[Uuid]) -> f64 {
    let size = primary.len().max(shadow.len());
    if size == 0 {
        return 1.0;
    }
    let shared = primary.iter().filter(|id| shadow.contains(id)).count();
    shared as f64 / size as f64
}

/// Kendall's tau-b between the two rankings, over the hits both returned (ranks are
/// distinct, so no ties): 1.0 same order, -1.0 reversed. `None` below two shared hits.
pub fn kendall_tau_b(primary: &[Uuid], shadow: &[Uuid]) -> Option<f64> {
    let shadow_rank: HashMap<Uuid, usize> =
        shadow.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let ranks: Vec<usize> = primary
        .iter()
        .filter_map(|id| shadow_rank.get(id).copied())
        .collect();
    let n = ranks.len();
    if n < 2 {
        return None;
    }
    let mut concordant = 0i64;
    let mut discordant = 0i64;
    for i in 0..n {
        for j in i + 1..n {
            if ranks[i] < ranks[j] {
                concordant += 1;
            } else {
                discordant += 1;
            }
        }
    }
    let pairs = (n * (n - 1) / 2) as f64;
    Some((concordant - discordant) as f64 / pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: &[u128]) -> Vec<Uuid> {
        n.iter().map(|&i| Uuid::from_u128(i)).collect()
    }

    #[test]
    fn overlap_is_the_shared_share_of_the_larger_page() {
        assert_eq!(overlap(&ids(&[1, 2, 3, 4]), &ids(&[4, 3, 2, 1])), 1.0);
        assert_eq!(overlap(&ids(&[1, 2, 3, 4]), &ids(&[1, 9, 8, 7])), 0.25);
        assert_eq!(overlap(&ids(&[1, 2]), &ids(&[1, 2, 3, 4])), 0.5);
        assert_eq!(overlap(&ids(&[]), &ids(&[])), 1.0);
        assert_eq!(overlap(&ids(&[1]), &ids(&[])), 0.0);
    }

    #[test]
    fn kendall_tau_measures_order_agreement_of_shared_hits() {
        assert_eq!(kendall_tau_b(&ids(&[1, 2, 3]), &ids(&[1, 2, 3])), Some(1.0));
        assert_eq!(
            kendall_tau_b(&ids(&[1, 2, 3]), &ids(&[3, 2, 1])),
            Some(-1.0)
        );
        // One swapped pair of three: (2 concordant - 1 discordant) / 3.
        let tau = kendall_tau_b(&ids(&[1, 2, 3]), &ids(&[2, 1, 3])).unwrap();
        assert!((tau - 1.0 / 3.0).abs() < 1e-12);
        // Hits only one side returned do not count.
        assert_eq!(kendall_tau_b(&ids(&[1, 5, 2]), &ids(&[1, 2, 6])), Some(1.0));
        assert_eq!(kendall_tau_b(&ids(&[1, 2]), &ids(&[1, 3])), None);
    }

    #[test]
    fn profiles_are_validated_with_a_named_problem() {
        let ok = parse_profile(r#"{"name":"kw","keyword_weight":2.0,"sample_rate":0.5}"#).unwrap();
        assert_eq!(ok.keyword_weight, Some(2.0));
        assert_eq!(ok.max_in_flight, 1);
        assert_eq!(
            parse_profile(r#"{"name":"v","mode":"vector"}"#)
                .unwrap()
                .sample_rate,
            0.05
        );
        for (json, problem) in [
            (r#"{"name":"x","sample_rate":1.5}"#, "sample_rate"),
            (r#"{"name":"","mode":"vector"}"#, "name"),
            (r#"{"name":"x","mode":"semantic"}"#, "semantic"),
            (r#"{"name":"x","vector_weight":-1}"#, "vector_weight"),
            (r#"{"name":"x","rrf_k":0}"#, "rrf_k"),
            (r#"{"name":"x","ef_search":5000}"#, "ef_search"),
            (r#"{"name":"x","max_in_flight":0}"#, "max_in_flight"),
            (r#"{"name":"x","weights":1}"#, "weights"),
            ("vector", "example"),
        ] {
            let error = parse_profile(json).unwrap_err();
            assert!(error.contains(problem), "{json}: {error}");
        }
    }

    #[test]
    fn the_shadow_query_overrides_only_what_the_profile_sets() {
        let primary = Query {
            text: "kangaroo".into(),
            mode: Mode::Hybrid,
            filters: super::super::FilterSet::default(),
            top_k: 7,
            offset: 0,
            min_score: 0.01,
            fusion: fusion::Fusion::default(),
            recall: Recall::Balanced,
            ef_search: None,
            explain: true,
            model_override: None,
            group_by: super::super::GroupBy::Chunk,
            rerank: None,
        };
        let profile =
            parse_profile(r#"{"name":"v","mode":"vector","model":"m2","ef_search":80}"#).unwrap();
        let query = shadow_query(&profile, &primary);
        assert_eq!(query.mode, Mode::Vector);
        assert_eq!(
            query.min_score, 0.0,
            "threshold dropped with the mode change"
        );
        assert_eq!(query.model_override.as_deref(), Some("m2"));
        assert_eq!(query.ef_search, Some(80));
        assert!(!query.explain);
        assert_eq!((query.top_k, query.text.as_str()), (7, "kangaroo"));
        let weights = parse_profile(r#"{"name":"w","keyword_weight":3}"#).unwrap();
        let query = shadow_query(&weights, &primary);
        assert_eq!(query.mode, Mode::Hybrid);
        assert_eq!(query.min_score, 0.01);
        assert_eq!(query.fusion.keyword_weight, 3.0);
        assert_eq!(query.fusion.vector_weight, 1.0);
    }
}
