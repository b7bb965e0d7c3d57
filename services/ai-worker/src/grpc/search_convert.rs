//! VectorSearch messages to and from the search domain: the wire's shape (enum values, ids,
//! timestamps, page tokens, proto3's 0-means-default) into a `Query`, and the response with
//! explain and timings. The limits of a search are the search's own (`Query::validate`).

use thinkbank_proto::v1 as pb;

use super::{convert, fields::uuids};
use crate::{
    error::{Result, WorkerError},
    search::{self, Fusion, GroupBy, MetadataCondition, MetadataOp, Mode, Outcome, Query, Recall},
};

/// Prefix of the page tokens this server issues; the rest is the offset.
const PAGE_TOKEN_PREFIX: &str = "o";

fn invalid(message: String) -> WorkerError {
    WorkerError::InvalidArgument(message)
}

fn mode(value: i32) -> Result<Mode> {
    match pb::SearchMode::try_from(value) {
        Ok(pb::SearchMode::Unspecified | pb::SearchMode::Hybrid) => Ok(Mode::Hybrid),
        Ok(pb::SearchMode::Vector) => Ok(Mode::Vector),
        Ok(pb::SearchMode::Keyword) => Ok(Mode::Keyword),
        Err(_) => Err(invalid(format!("mode: unknown search mode {value}"))),
    }
}

/// A mode field where UNSPECIFIED means "the server's default" (`None`).
pub fn optional_mode(field: &str, value: i32) -> Result<Option<Mode>> {
    match pb::SearchMode::try_from(value) {
        Ok(pb::SearchMode::Unspecified) => Ok(None),
        Ok(pb::SearchMode::Hybrid) => Ok(Some(Mode::Hybrid)),
        Ok(pb::SearchMode::Vector) => Ok(Some(Mode::Vector)),
        Ok(pb::SearchMode::Keyword) => Ok(Some(Mode::Keyword)),
        Err(_) => Err(invalid(format!("{field}: unknown search mode {value}"))),
    }
}

fn group_by(value: i32) -> Result<GroupBy> {
    match pb::SearchGroupBy::try_from(value) {
        Ok(pb::SearchGroupBy::Unspecified | pb::SearchGroupBy::Chunk) => Ok(GroupBy::Chunk),
        Ok(pb::SearchGroupBy::Asset) => Ok(GroupBy::Asset),
        Err(_) => Err(invalid(format!("group_by: unknown grouping {value}"))),
    }
}

pub fn mode_to_pb(mode: Mode) -> pb::SearchMode {
    match mode {
        Mode::Vector => pb::SearchMode::Vector,
        Mode::Keyword => pb::SearchMode::Keyword,
        Mode::Hybrid => pb::SearchMode::Hybrid,
    }
}

fn recall(value: i32) -> Result<Recall> {
    match pb::Recall::try_from(value) {
        Ok(pb::Recall::Unspecified | pb::Recall::Balanced) => Ok(Recall::Balanced),
        Ok(pb::Recall::Fast) => Ok(Recall::Fast),
        Ok(pb::Recall::High) => Ok(Recall::High),
        Err(_) => Err(invalid(format!("recall: unknown recall level {value}"))),
    }
}

/// Unset options take the defaults (rrf_k 60, weights 1).
fn fusion(options: Option<pb::FusionOptions>) -> Fusion {
    let options = options.unwrap_or_default();
    let rrf_k = match options.rrf_k {
        0 => search::fusion::DEFAULT_RRF_K,
        k => k,
    };
    Fusion {
        rrf_k: f64::from(rrf_k),
        vector_weight: options.vector_weight.map_or(1.0, f64::from),
        keyword_weight: options.keyword_weight.map_or(1.0, f64::from),
    }
}

fn timestamp(
    field: &str,
    value: Option<prost_types::Timestamp>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
    value
        .map(|ts| {
            u32::try_from(ts.nanos)
                .ok()
                .and_then(|nanos| chrono::DateTime::from_timestamp(ts.seconds, nanos))
                .ok_or_else(|| invalid(format!("{field} is not a valid timestamp")))
        })
        .transpose()
}

fn metadata_op(field: &str, value: i32) -> Result<MetadataOp> {
    match pb::MetadataOperator::try_from(value) {
        Ok(pb::MetadataOperator::Eq) => Ok(MetadataOp::Eq),
        Ok(pb::MetadataOperator::Ne) => Ok(MetadataOp::Ne),
        Ok(pb::MetadataOperator::In) => Ok(MetadataOp::In),
        Ok(pb::MetadataOperator::Gt) => Ok(MetadataOp::Gt),
        Ok(pb::MetadataOperator::Lt) => Ok(MetadataOp::Lt),
        Ok(pb::MetadataOperator::Unspecified) => Err(invalid(format!(
            "{field}: op is required (eq, ne, in, gt or lt)"
        ))),
        Err(_) => Err(invalid(format!("{field}: unknown operator {value}"))),
    }
}

fn metadata(conditions: Vec<pb::MetadataCondition>) -> Result<Vec<MetadataCondition>> {
    conditions
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let field = format!("metadata[{i}]");
            let op = metadata_op(&field, c.op)?;
            let value = c.value.map(thinkbank_proto::json::value_to_json);
            MetadataCondition::new(&field, &c.key, op, value)
        })
        .collect()
}

fn page_offset(token: &str) -> Result<usize> {
    if token.is_empty() {
        return Ok(0);
    }
    token
        .strip_prefix(PAGE_TOKEN_PREFIX)
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|&n| n < search::MAX_DEPTH)
        .ok_or_else(|| invalid("page_token is not a token this server issued".into()))
}

/// Converts a request into a `Query` (0 or unset: the default); `Worker::search` checks its
/// limits.
pub fn query(message: pb::VectorSearchRequest) -> Result<Query> {
    let top_k = match message.top_k {
        0 => search::DEFAULT_TOP_K,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    let ef_search = (message.ef_search != 0).then_some(message.ef_search);
    let filters = search::FilterSet {
        collection_ids: uuids("collection_ids", &message.collection_ids)?,
        asset_ids: uuids("asset_ids", &message.asset_ids)?,
        media_types: message.media_types,
        created_after: timestamp("created_after", message.created_after)?,
        created_before: timestamp("created_before", message.created_before)?,
        metadata: metadata(message.metadata)?,
    };
    Ok(Query {
        mode: mode(message.mode)?,
        text: message.query,
        filters,
        top_k,
        offset: page_offset(&message.page_token)?,
        min_score: f64::from(message.min_score),
        fusion: fusion(message.fusion),
        recall: recall(message.recall)?,
        ef_search,
        explain: message.explain,
        model_override: None,
        group_by: group_by(message.group_by)?,
        rerank: message.rerank,
    })
}

pub fn response(outcome: Outcome, mode: Mode) -> pb::VectorSearchResponse {
    let t = &outcome.timings;
    pb::VectorSearchResponse {
        hits: outcome.hits.iter().map(convert::hit).collect(),
        model: outcome.model.unwrap_or_default(),
        timings: Some(pb::SearchTimings {
            embed_ms: t.embed_ms,
            query_ms: (t.total_ms - t.embed_ms).max(0.0),
            total_ms: t.total_ms,
            vector_ms: t.vector_ms,
            keyword_ms: t.keyword_ms,
            fusion_ms: t.fusion_ms,
            snippet_ms: t.snippet_ms,
            rerank_ms: t.rerank_ms,
        }),
        next_page_token: outcome
            .next_offset
            .map(|n| format!("{PAGE_TOKEN_PREFIX}{n}"))
            .unwrap_or_default(),
        mode: mode_to_pb(mode) as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_foreign_tokens_are_rejected() {
        assert_eq!(page_offset("").unwrap(), 0);
        assert_eq!(page_offset("o20").unwrap(), 20);
        assert!(page_offset("20").is_err());
        assert!(page_offset("o5000").is_err());
    }

    #[test]
    fn unspecified_mode_is_hybrid_and_unknown_values_are_named() {
        assert_eq!(mode(0).unwrap(), Mode::Hybrid);
        assert!(mode(9).unwrap_err().to_string().contains("mode"));
        assert!(
            metadata_op("metadata[0]", 42)
                .unwrap_err()
                .to_string()
                .contains("unknown operator 42")
        );
    }
}
