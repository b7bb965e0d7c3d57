//! `google.protobuf.Struct` / `Value` ↔ JSON, the one mapping both services use for asset
//! metadata and metadata filter values. Numbers travel as `f64` (as in protobuf's JSON
//! mapping); non-finite numbers become `null`.

use prost_types::{ListValue, Struct, Value, value::Kind};
use serde_json::{Map, Value as Json};

/// Deepest nesting of arrays and objects accepted in asset metadata and metadata filter values.
/// Protobuf decoding stops at 100 nested messages and a JSON level costs two or three of them
/// in a `Value`; past this a request fails with a named 400 instead of a decoding error.
pub const MAX_DEPTH: usize = 16;

/// Nesting depth of `value`: how many arrays and objects enclose its deepest scalar (0 for a
/// scalar or an empty container, 1 for `[1]` or `{"a": 1}`). Iterative, so any depth serde
/// accepted can be measured.
pub fn depth(value: &Json) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(value, 0usize)];
    while let Some((value, level)) = pending.pop() {
        deepest = deepest.max(level);
        match value {
            Json::Array(items) => pending.extend(items.iter().map(|v| (v, level + 1))),
            Json::Object(map) => pending.extend(map.values().map(|v| (v, level + 1))),
            _ => {}
        }
    }
    deepest
}

/// JSON value → protobuf `Value`.
pub fn value_from_json(value: &Json) -> Value {
    let kind = match value {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(value_from_json).collect(),
        }),
        Json::Object(map) => Kind::StructValue(struct_from_json(map)),
    };
    Value { kind: Some(kind) }
}

/// JSON object → protobuf `Struct`.
pub fn struct_from_json(map: &Map<String, Json>) -> Struct {
    Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), value_from_json(v)))
            .collect(),
    }
}

/// Protobuf `Value` → JSON.
pub fn value_to_json(value: Value) -> Json {
    match value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => Json::Bool(b),
        Some(Kind::NumberValue(n)) => {
            serde_json::Number::from_f64(n).map_or(Json::Null, Json::Number)
        }
        Some(Kind::StringValue(s)) => Json::String(s),
        Some(Kind::ListValue(list)) => {
            Json::Array(list.values.into_iter().map(value_to_json).collect())
        }
        Some(Kind::StructValue(s)) => struct_to_json(Some(s)),
    }
}

/// Protobuf `Struct` → JSON object (an absent struct is `{}`).
pub fn struct_to_json(value: Option<Struct>) -> Json {
    Json::Object(
        value
            .map(|s| s.fields)
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, value_to_json(v)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_nested_arrays_and_objects() {
        assert_eq!(depth(&serde_json::json!("x")), 0);
        assert_eq!(depth(&serde_json::json!([1, {"a": [2]}])), 3);
        assert_eq!(depth(&serde_json::json!({"a": 1})), 1);
        // Nothing nested inside: as deep as a scalar.
        assert_eq!(depth(&serde_json::json!({})), 0);
    }

    #[test]
    fn metadata_survives_a_round_trip_through_struct() {
        let json = serde_json::json!({"a": 1.5, "b": [true, null, "x"], "c": {"d": "e"}});
        let Json::Object(map) = &json else {
            unreachable!()
        };
        assert_eq!(struct_to_json(Some(struct_from_json(map))), json);
    }
}
