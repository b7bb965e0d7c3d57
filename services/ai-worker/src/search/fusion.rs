//! Weighted reciprocal-rank fusion (Cormack et al., 2009) of the vector and keyword legs.
//! A chunk's fused score is `Σ weight_leg / (k + rank_leg)` over the legs that returned it
//! (rank from 1); only ranks matter, so the legs' incomparable score scales never mix.

use std::collections::HashMap;

use uuid::Uuid;

use super::{Explain, Hit};

/// Fusion parameters; `Default` gives the documented defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fusion {
    pub rrf_k: f64,
    pub vector_weight: f64,
    pub keyword_weight: f64,
}

pub const DEFAULT_RRF_K: u32 = 60;
pub const MAX_RRF_K: u32 = 1000;
pub const MAX_WEIGHT: f32 = 10.0;

impl Default for Fusion {
    fn default() -> Self {
        Self {
            rrf_k: f64::from(DEFAULT_RRF_K),
            vector_weight: 1.0,
            keyword_weight: 1.0,
        }
    }
}

/// Fuses two ranked lists (best first) into one, best first; sets `score` to the fused score
/// and fills `explain` with both legs' ranks, raw scores and contributions.
pub fn fuse(vector: Vec<Hit>, keyword: Vec<Hit>, fusion: &Fusion) -> Vec<Hit> {
    let mut fused: HashMap<Uuid, Hit> = HashMap::with_capacity(vector.len() + keyword.len());
    for (i, mut hit) in vector.into_iter().enumerate() {
        let rank = i + 1;
        let contribution = fusion.vector_weight / (fusion.rrf_k + rank as f64);
        hit.explain = Some(Explain {
            vector_rank: Some(rank),
            vector_distance: Some(1.0 - hit.score),
            vector_contribution: contribution,
            ..Explain::default()
        });
        hit.score = contribution;
        fused.insert(hit.chunk_id, hit);
    }
    for (i, mut hit) in keyword.into_iter().enumerate() {
        let rank = i + 1;
        let contribution = fusion.keyword_weight / (fusion.rrf_k + rank as f64);
        let keyword_score = hit.score;
        let coverage = hit.keyword_coverage;
        let entry = fused.entry(hit.chunk_id).or_insert_with(|| {
            hit.score = 0.0;
            hit.explain = Some(Explain::default());
            hit
        });
        entry.score += contribution;
        entry.keyword_coverage = coverage;
        let explain = entry.explain.get_or_insert_with(Explain::default);
        explain.keyword_rank = Some(rank);
        explain.keyword_score = Some(keyword_score);
        explain.keyword_contribution = contribution;
    }
    let mut hits: Vec<Hit> = fused.into_values().collect();
    hits.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| best_rank(a).cmp(&best_rank(b)))
            .then_with(|| a.chunk_id.cmp(&b.chunk_id))
    });
    hits
}

fn best_rank(hit: &Hit) -> usize {
    hit.explain.as_ref().map_or(usize::MAX, |e| {
        e.vector_rank
            .unwrap_or(usize::MAX)
            .min(e.keyword_rank.unwrap_or(usize::MAX))
    })
}

/// Explains a single-leg ranking: ranks and raw scores, no fusion contributions.
pub fn explain_single(hits: &mut [Hit], vector_leg: bool) {
    for (i, hit) in hits.iter_mut().enumerate() {
        let rank = Some(i + 1);
        hit.explain = Some(if vector_leg {
            Explain {
                vector_rank: rank,
                vector_distance: Some(1.0 - hit.score),
                ..Explain::default()
            }
        } else {
            Explain {
                keyword_rank: rank,
                keyword_score: Some(hit.score),
                ..Explain::default()
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(id: u128, score: f64) -> Hit {
        Hit {
            chunk_id: Uuid::from_u128(id),
            asset_id: Uuid::nil(),
            collection_id: Uuid::nil(),
            filename: String::new(),
            media_type: String::new(),
            text: String::new(),
            score,
            chunk_index: 0,
            char_start: 0,
            char_end: 0,
            headings: Vec::new(),
            page: None,
            snippet: None,
            keyword_coverage: None,
            explain: None,
        }
    }

    fn ids(hits: &[Hit]) -> Vec<u128> {
        hits.iter().map(|h| h.chunk_id.as_u128()).collect()
    }

    #[test]
    fn a_chunk_found_by_both_legs_outranks_single_leg_winners() {
        let vector = vec![hit(1, 0.9), hit(2, 0.8), hit(3, 0.7)];
        let keyword = vec![hit(4, 5.0), hit(2, 3.0)];
        let fused = fuse(vector, keyword, &Fusion::default());
        assert_eq!(ids(&fused), vec![2, 1, 4, 3]);
        let explain = fused[0].explain.clone().unwrap();
        assert_eq!(explain.vector_rank, Some(2));
        assert_eq!(explain.keyword_rank, Some(2));
        assert_eq!(explain.keyword_score, Some(3.0));
        assert!((explain.vector_distance.unwrap() - 0.2).abs() < 1e-9);
        let expected = 1.0 / 62.0 + 1.0 / 62.0;
        assert!((fused[0].score - expected).abs() < 1e-12);
        assert!(
            (explain.vector_contribution + explain.keyword_contribution - fused[0].score).abs()
                < 1e-12
        );
    }

    #[test]
    fn weights_shift_the_balance_between_legs() {
        let keyword_heavy = Fusion {
            keyword_weight: 3.0,
            ..Fusion::default()
        };
        let fused = fuse(vec![hit(1, 0.9)], vec![hit(2, 1.0)], &keyword_heavy);
        assert_eq!(ids(&fused), vec![2, 1]);
        let vector_only = Fusion {
            keyword_weight: 0.0,
            ..Fusion::default()
        };
        let fused = fuse(vec![hit(1, 0.9)], vec![hit(2, 1.0)], &vector_only);
        assert_eq!(ids(&fused), vec![1, 2]);
    }

    #[test]
    fn ties_break_by_best_rank_then_id() {
        let fused = fuse(vec![hit(7, 0.9)], vec![hit(3, 1.0)], &Fusion::default());
        assert_eq!(ids(&fused), vec![3, 7]);
    }
}
