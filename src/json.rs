//! `google.protobuf.Struct` / `Value` ↔ JSON, the one mapping both services use for asset
//! metadata and metadata filter values. Numbers travel as `f64` (as in protobuf's JSON
//! mapping); non-finite numbers become `null`.

use prost_types::{ListValue, Struct, Value, value::Kind};
use serde_json::{Map, Value as Json};

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
    fn metadata_survives_a_round_trip_through_struct() {
        let json = serde_json::json!({"a": 1.5, "b": [true, null, "x"], "c": {"d": "e"}});
        let Json::Object(map) = &json else {
            unreachable!()
        };
        assert_eq!(struct_to_json(Some(struct_from_json(map))), json);
    }
}
