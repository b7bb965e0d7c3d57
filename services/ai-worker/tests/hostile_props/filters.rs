//! Metadata filters as the worker builds them into SQL: generated keys (empty, huge, quotes,
//! NULs, SQL), operators and JSON values (deep, wide, odd numbers and strings). A condition is
//! accepted (never nested deeper than the contract's limit) or refused with a reason naming
//! its position; an accepted set renders SQL whose text does not depend on the values (they
//! travel as bind parameters) and grows by a bounded amount per condition, so no filter can
//! inject SQL or make the statement unbounded.

use proptest::prelude::*;
use serde_json::Value;
use sqlx::{Postgres, QueryBuilder};
use thinkbank_ai_worker::search::{FilterSet, MetadataCondition, MetadataOp, filters};

use super::super::config;

/// JSON of every shape, up to 24 levels deep or 200 elements wide.
pub fn hostile_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,30}".prop_map(Value::from),
        Just(Value::from("'; DROP TABLE worker.assets; --")),
        Just(Value::from("\u{0}\u{202e}")),
    ];
    prop_oneof![
        leaf.clone().prop_recursive(24, 160, 6, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::hash_map("\\PC{0,8}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        }),
        prop::collection::vec(leaf, 0..200).prop_map(Value::Array),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,20}",
        Just(String::new()),
        (250usize..300).prop_map(|n| "k".repeat(n)),
        Just("a') OR 1=1 --".to_owned()),
        Just("\u{0}".to_owned()),
    ]
}

fn op() -> impl Strategy<Value = MetadataOp> {
    prop::sample::select(vec![
        MetadataOp::Eq,
        MetadataOp::Ne,
        MetadataOp::In,
        MetadataOp::Gt,
        MetadataOp::Lt,
    ])
}

/// The SQL text of `filters` appended to a fixed prefix, and its number of bind parameters.
fn render(filters: &FilterSet) -> (String, usize) {
    let mut qb: QueryBuilder<'_, Postgres> = QueryBuilder::new(
        "SELECT 1 FROM worker.chunks c JOIN worker.assets a ON a.id = c.asset_id WHERE true",
    );
    filters.push(&mut qb, "c");
    let sql = qb.sql().to_owned();
    let binds = sql.matches('$').count();
    (sql, binds)
}

proptest! {
    #![proptest_config(config(48))]

    #[test]
    fn metadata_filters_are_refused_with_their_position_or_render_bounded_bound_sql(
        conditions in prop::collection::vec((key(), op(), prop::option::of(hostile_json())), 0..36),
    ) {
        let mut accepted = Vec::new();
        for (i, (key, op, value)) in conditions.into_iter().enumerate() {
            let field = format!("metadata[{i}]");
            match MetadataCondition::new(&field, &key, op, value.clone()) {
                Ok(condition) => {
                    let depth = value.as_ref().map_or(0, thinkbank_proto::json::depth);
                    prop_assert!(depth <= thinkbank_proto::json::MAX_DEPTH, "accepted a value {depth} deep");
                    accepted.push((condition, key, value));
                }
                Err(error) => prop_assert!(error.to_string().starts_with(&format!("{field}: ")), "{error}"),
            }
        }
        let count = accepted.len();
        let set = FilterSet { metadata: accepted.iter().map(|(c, _, _)| c.clone()).collect(), ..FilterSet::default() };
        if let Err(error) = set.validate() {
            prop_assert!(count > filters::MAX_METADATA_CONDITIONS, "{error}");
            prop_assert!(error.to_string().contains("metadata conditions"), "{error}");
            return Ok(());
        }
        let (sql, binds) = render(&set);
        // At most four parameters and a fixed amount of text per condition.
        prop_assert!(binds <= 4 * count, "{binds} binds for {count} conditions");
        prop_assert!(sql.len() <= 200 + 160 * count, "{} bytes of SQL for {count} conditions", sql.len());
        for (_, key, value) in &accepted {
            if key.chars().count() >= 8 {
                prop_assert!(!sql.contains(key.as_str()), "key {key:?} reached the SQL text");
            }
            if let Some(Value::String(s)) = value && s.chars().count() >= 8 {
                prop_assert!(!sql.contains(s.as_str()), "value {s:?} reached the SQL text");
            }
        }
    }
}
