//! Search filters: which chunks a query may return. Both legs apply the same `FilterSet`, so a
//! hit of one leg is always admissible in the other. Every user value reaches SQL as a bind
//! parameter; only fixed SQL fragments and table aliases are pushed as text.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder, types::Json};
use uuid::Uuid;

use crate::error::{Result, WorkerError};

/// Most metadata conditions one request may carry.
pub const MAX_METADATA_CONDITIONS: usize = 32;
/// Most elements of an `in` list.
pub const MAX_IN_VALUES: usize = 100;
const MAX_KEY_LEN: usize = 256;

/// Comparison of a metadata condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataOp {
    Eq,
    Ne,
    In,
    Gt,
    Lt,
}

/// A validated condition on one top-level key of `assets.metadata`.
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataCondition {
    key: String,
    op: MetadataOp,
    value: Value,
}

impl MetadataCondition {
    /// Checks the condition; `field` names it in errors (e.g. `metadata[2]`).
    pub fn new(field: &str, key: &str, op: MetadataOp, value: Option<Value>) -> Result<Self> {
        let invalid = |why: String| WorkerError::InvalidArgument(format!("{field}: {why}"));
        if key.is_empty() {
            return Err(invalid("key must not be empty".into()));
        }
        if key.len() > MAX_KEY_LEN {
            return Err(invalid(format!("key is longer than {MAX_KEY_LEN} bytes")));
        }
        let value = value.ok_or_else(|| invalid("value is required".into()))?;
        let max = thinkbank_proto::json::MAX_DEPTH;
        if thinkbank_proto::json::depth(&value) > max {
            return Err(invalid(format!("value is nested deeper than {max} levels")));
        }
        match (op, &value) {
            (MetadataOp::In, Value::Array(items)) if items.is_empty() => {
                return Err(invalid("'in' needs a non-empty list".into()));
            }
            (MetadataOp::In, Value::Array(items)) if items.len() > MAX_IN_VALUES => {
                return Err(invalid(format!(
                    "'in' takes at most {MAX_IN_VALUES} values"
                )));
            }
            (MetadataOp::In, Value::Array(_)) => {}
            (MetadataOp::In, _) => return Err(invalid("'in' needs a list value".into())),
            (MetadataOp::Gt | MetadataOp::Lt, Value::Number(_) | Value::String(_)) => {}
            (MetadataOp::Gt | MetadataOp::Lt, _) => {
                return Err(invalid("'gt' and 'lt' need a number or a string".into()));
            }
            (MetadataOp::Eq | MetadataOp::Ne, _) => {}
        }
        Ok(Self {
            key: key.to_owned(),
            op,
            value,
        })
    }

    fn push(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        qb.push(" AND ");
        match self.op {
            MetadataOp::Eq => {
                qb.push("(a.metadata -> ").push_bind(self.key.clone());
                qb.push(") = ").push_bind(Json(self.value.clone()));
            }
            MetadataOp::Ne => {
                qb.push("(a.metadata -> ").push_bind(self.key.clone());
                qb.push(") IS DISTINCT FROM ")
                    .push_bind(Json(self.value.clone()));
            }
            MetadataOp::In => {
                qb.push("(a.metadata -> ").push_bind(self.key.clone());
                qb.push(") IN (SELECT jsonb_array_elements(")
                    .push_bind(Json(self.value.clone()))
                    .push("))");
            }
            MetadataOp::Gt | MetadataOp::Lt => {
                // jsonb orders across types (string < number < …): compare like with like only.
                let kind = if self.value.is_number() {
                    "number"
                } else {
                    "string"
                };
                qb.push("jsonb_typeof(a.metadata -> ")
                    .push_bind(self.key.clone());
                qb.push(") = ").push_bind(kind);
                qb.push(" AND (a.metadata -> ").push_bind(self.key.clone());
                qb.push(if self.op == MetadataOp::Gt {
                    ") > "
                } else {
                    ") < "
                })
                .push_bind(Json(self.value.clone()));
            }
        }
    }
}

/// Every restriction a search request can carry; all of them must hold.
#[derive(Debug, Clone, Default)]
pub struct FilterSet {
    pub collection_ids: Vec<Uuid>,
    pub asset_ids: Vec<Uuid>,
    pub media_types: Vec<String>,
    /// Inclusive.
    pub created_after: Option<DateTime<Utc>>,
    /// Exclusive.
    pub created_before: Option<DateTime<Utc>>,
    pub metadata: Vec<MetadataCondition>,
}

impl FilterSet {
    pub fn is_empty(&self) -> bool {
        self.collection_ids.is_empty()
            && self.asset_ids.is_empty()
            && self.media_types.is_empty()
            && self.created_after.is_none()
            && self.created_before.is_none()
            && self.metadata.is_empty()
    }

    /// Rejects combinations that can never match, naming them.
    pub fn validate(&self) -> Result<()> {
        if let (Some(after), Some(before)) = (self.created_after, self.created_before)
            && after >= before
        {
            return Err(WorkerError::InvalidArgument(
                "created_after must be earlier than created_before".into(),
            ));
        }
        if self.metadata.len() > MAX_METADATA_CONDITIONS {
            return Err(WorkerError::InvalidArgument(format!(
                "at most {MAX_METADATA_CONDITIONS} metadata conditions are allowed"
            )));
        }
        Ok(())
    }

    /// Appends ` AND …` conditions. `scope` is the alias of the table carrying
    /// `collection_id`/`asset_id` in the query; `a` must alias `worker.assets`.
    pub fn push(&self, qb: &mut QueryBuilder<'_, Postgres>, scope: &'static str) {
        if !self.collection_ids.is_empty() {
            qb.push(format_args!(" AND {scope}.collection_id = ANY("))
                .push_bind(self.collection_ids.clone())
                .push(")");
        }
        if !self.asset_ids.is_empty() {
            qb.push(format_args!(" AND {scope}.asset_id = ANY("))
                .push_bind(self.asset_ids.clone())
                .push(")");
        }
        if !self.media_types.is_empty() {
            qb.push(" AND a.media_type = ANY(")
                .push_bind(self.media_types.clone())
                .push(")");
        }
        if let Some(after) = self.created_after {
            qb.push(" AND a.created_at >= ").push_bind(after);
        }
        if let Some(before) = self.created_before {
            qb.push(" AND a.created_at < ").push_bind(before);
        }
        for condition in &self.metadata {
            condition.push(qb);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn malformed_metadata_conditions_are_rejected_with_their_position() {
        let err = |key: &str, op, value| {
            MetadataCondition::new("metadata[1]", key, op, value)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err("", MetadataOp::Eq, Some(json!(1))),
            "metadata[1]: key must not be empty"
        );
        assert!(err("k", MetadataOp::Eq, None).contains("value is required"));
        assert!(err("k", MetadataOp::In, Some(json!(1))).contains("list"));
        assert!(err("k", MetadataOp::In, Some(json!([]))).contains("non-empty"));
        assert!(err("k", MetadataOp::Gt, Some(json!(true))).contains("number or a string"));
        assert!(MetadataCondition::new("m", "k", MetadataOp::Lt, Some(json!("2024"))).is_ok());
    }

    #[test]
    fn user_values_become_bind_parameters() {
        let filters = FilterSet {
            media_types: vec!["text/plain'; --".into()],
            metadata: vec![
                MetadataCondition::new("m", "x') OR true --", MetadataOp::Gt, Some(json!(3)))
                    .unwrap(),
            ],
            ..FilterSet::default()
        };
        let mut qb = QueryBuilder::<Postgres>::new("SELECT 1 FROM t a WHERE true");
        filters.push(&mut qb, "c");
        let sql = qb.sql();
        assert!(!sql.contains("--"), "{sql}");
        assert!(sql.contains("a.media_type = ANY($1)"), "{sql}");
        assert!(sql.contains("jsonb_typeof(a.metadata -> $2) = $3"), "{sql}");
    }

    #[test]
    fn an_empty_created_range_is_rejected() {
        let now = Utc::now();
        let filters = FilterSet {
            created_after: Some(now),
            created_before: Some(now),
            ..FilterSet::default()
        };
        assert!(filters.validate().is_err());
    }
}
