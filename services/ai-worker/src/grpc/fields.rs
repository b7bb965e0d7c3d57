//! Wire fields that need parsing before they mean anything: UUIDs carried as strings and the
//! keyset page tokens of the listing RPCs. Each error names the field.

use uuid::Uuid;

use crate::{
    app::Cursor,
    error::{WorkerError, parse_uuid},
};

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z in microseconds since the epoch.
const MIN_TOKEN_MICROS: i64 = -62_135_596_800_000_000;
const MAX_TOKEN_MICROS: i64 = 253_402_300_799_999_999;

/// An optional UUID field: blank is `None`.
pub fn optional_uuid(field: &str, value: &str) -> Result<Option<Uuid>, WorkerError> {
    if value.trim().is_empty() {
        Ok(None)
    } else {
        parse_uuid(field, value).map(Some)
    }
}

pub fn uuids(field: &str, values: &[String]) -> Result<Vec<Uuid>, WorkerError> {
    values.iter().map(|v| parse_uuid(field, v)).collect()
}

/// A keyset page token: the sort time and id of the last row returned. `parse_page_token`
/// reads it back.
pub fn page_token(cursor: Option<Cursor>) -> String {
    cursor
        .map(|(time, id)| format!("{}.{id}", time.timestamp_micros()))
        .unwrap_or_default()
}

pub fn parse_page_token(token: &str) -> Result<Option<Cursor>, WorkerError> {
    if token.is_empty() {
        return Ok(None);
    }
    let invalid =
        || WorkerError::InvalidArgument("page_token is not a token this server issued".into());
    let (micros, id) = token.split_once('.').ok_or_else(invalid)?;
    let micros: i64 = micros.parse().map_err(|_| invalid())?;
    // Rows are stamped by the database clock: a time outside years 1-9999 was never issued,
    // and PostgreSQL would refuse most of them (an internal error instead of this one).
    if !(MIN_TOKEN_MICROS..=MAX_TOKEN_MICROS).contains(&micros) {
        return Err(invalid());
    }
    let time = chrono::DateTime::from_timestamp_micros(micros).ok_or_else(invalid)?;
    let id = Uuid::parse_str(id).map_err(|_| invalid())?;
    Ok(Some((time, id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_with_times_the_database_cannot_hold_are_invalid_arguments() {
        let id = Uuid::nil();
        let now = chrono::Utc::now();
        let issued = page_token(Some((now, id)));
        assert_eq!(
            parse_page_token(&issued).unwrap(),
            Some((
                chrono::DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap(),
                id
            ))
        );
        // Both used to pass and make PostgreSQL fail the query: an internal error.
        for micros in [-210_866_803_200_000_001_i64, i64::MAX, MAX_TOKEN_MICROS + 1] {
            let error = parse_page_token(&format!("{micros}.{id}")).unwrap_err();
            assert!(
                matches!(error, WorkerError::InvalidArgument(_)),
                "{micros}: {error}"
            );
        }
        assert!(parse_page_token(&format!("{MIN_TOKEN_MICROS}.{id}")).is_ok());
    }
}
