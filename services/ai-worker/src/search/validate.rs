//! The limits of one search, checked for every caller (the gRPC adapter, the chat retriever,
//! an MCP tool…) before any work: each error names the field, in the request's own terms.

use super::{MAX_TOP_K, Query, fusion, vector};
use crate::error::{Result, WorkerError};

fn invalid(message: String) -> WorkerError {
    WorkerError::InvalidArgument(message)
}

/// `value` as the 32-bit float it arrived as on the wire, so a message quotes the caller's
/// number rather than its widened binary expansion (display only: the value came in as an f32).
fn as_sent(value: f64) -> f32 {
    value as f32
}

impl Query {
    /// Refuses a query outside the limits a search accepts.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_TOP_K).contains(&self.top_k) {
            return Err(invalid(format!(
                "top_k must be between 1 and {MAX_TOP_K}, got {}",
                self.top_k
            )));
        }
        if !self.min_score.is_finite() || self.min_score < 0.0 {
            return Err(invalid(format!(
                "min_score must be a finite number >= 0, got {}",
                as_sent(self.min_score)
            )));
        }
        if let Some(n) = self.ef_search
            && !(1..=vector::MAX_EF_SEARCH).contains(&n)
        {
            return Err(invalid(format!(
                "ef_search must be between 1 and {}, got {n}",
                vector::MAX_EF_SEARCH
            )));
        }
        if self.filters.media_types.iter().any(|m| m.trim().is_empty()) {
            return Err(invalid("media_types must not contain empty values".into()));
        }
        self.validate_fusion()
    }

    fn validate_fusion(&self) -> Result<()> {
        let f = &self.fusion;
        if !(1.0..=f64::from(fusion::MAX_RRF_K)).contains(&f.rrf_k) {
            return Err(invalid(format!(
                "fusion.rrf_k must be between 1 and {}, got {}",
                fusion::MAX_RRF_K,
                f.rrf_k
            )));
        }
        for (field, weight) in [
            ("fusion.vector_weight", f.vector_weight),
            ("fusion.keyword_weight", f.keyword_weight),
        ] {
            if !weight.is_finite() || !(0.0..=f64::from(fusion::MAX_WEIGHT)).contains(&weight) {
                return Err(invalid(format!(
                    "{field} must be between 0 and {}, got {}",
                    fusion::MAX_WEIGHT,
                    as_sent(weight)
                )));
            }
        }
        if f.vector_weight == 0.0 && f.keyword_weight == 0.0 {
            return Err(invalid("fusion weights must not both be 0".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::search::{FilterSet, Fusion, GroupBy, Mode, Recall};

    fn query() -> Query {
        Query {
            text: "borrowing".into(),
            mode: Mode::Hybrid,
            filters: FilterSet::default(),
            top_k: 10,
            offset: 0,
            min_score: 0.0,
            fusion: Fusion {
                rrf_k: 60.0,
                vector_weight: 1.0,
                keyword_weight: 1.0,
            },
            recall: Recall::Balanced,
            ef_search: None,
            explain: false,
            model_override: None,
            group_by: GroupBy::Chunk,
            rerank: None,
        }
    }

    fn refusal(change: impl FnOnce(&mut Query)) -> String {
        let mut q = query();
        change(&mut q);
        match q.validate() {
            Err(WorkerError::InvalidArgument(message)) => message,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn a_query_within_every_limit_is_accepted() {
        assert!(query().validate().is_ok());
    }

    #[test]
    fn each_limit_is_refused_naming_its_field_and_the_value_sent() {
        assert_eq!(
            refusal(|q| q.top_k = 101),
            "top_k must be between 1 and 100, got 101"
        );
        assert_eq!(
            refusal(|q| q.top_k = 0),
            "top_k must be between 1 and 100, got 0"
        );
        assert_eq!(
            refusal(|q| q.min_score = f64::from(-0.1f32)),
            "min_score must be a finite number >= 0, got -0.1"
        );
        assert!(refusal(|q| q.min_score = f64::NAN).starts_with("min_score"));
        assert!(refusal(|q| q.ef_search = Some(0)).starts_with("ef_search must be between 1"));
        assert!(refusal(|q| q.filters.media_types = vec![" ".into()]).starts_with("media_types"));
        assert!(refusal(|q| q.fusion.rrf_k = 1001.0).starts_with("fusion.rrf_k"));
        assert_eq!(
            refusal(|q| q.fusion.keyword_weight = f64::from(10.5f32)),
            "fusion.keyword_weight must be between 0 and 10, got 10.5"
        );
        assert_eq!(
            refusal(|q| {
                q.fusion.vector_weight = 0.0;
                q.fusion.keyword_weight = 0.0;
            }),
            "fusion weights must not both be 0"
        );
    }
}
