//! The one duration syntax of every thinkbank setting: "250ms", "30s", "5m", "1h", or a bare
//! number of seconds (so settings that always took plain seconds keep their meaning).
//!
//! A leaf: it depends on nothing in thinkbank, so both services' configs and any capability
//! may use it without tying modules together.

use std::time::Duration;

/// Parses "250ms", "30s", "5m", "1h" or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("invalid duration '{text}': expected e.g. 30s, 5m, 250ms"))?;
    let too_long = || format!("invalid duration '{text}': too long");
    match unit {
        "" | "s" => Ok(Duration::from_secs(value)),
        "ms" => Ok(Duration::from_millis(value)),
        "m" => value
            .checked_mul(60)
            .map(Duration::from_secs)
            .ok_or_else(too_long),
        "h" => value
            .checked_mul(3600)
            .map(Duration::from_secs)
            .ok_or_else(too_long),
        other => Err(format!(
            "invalid duration unit '{other}' in '{text}': use ms, s, m or h"
        )),
    }
}

/// [`parse_duration`] for settings stored as whole seconds (the gateway's `*_SECS`): "5m" is
/// 300, "300" stays 300, and a value that is not a whole number of seconds is refused rather
/// than rounded.
pub fn parse_whole_seconds(text: &str) -> Result<u64, String> {
    let duration = parse_duration(text)?;
    if duration.subsec_nanos() != 0 {
        return Err(format!(
            "invalid duration '{}': this setting counts whole seconds",
            text.trim()
        ));
    }
    Ok(duration.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_accept_common_units_and_reject_others() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("-5s").is_err());
        assert!(parse_duration(&format!("{}h", u64::MAX)).is_err());
    }

    #[test]
    fn whole_seconds_take_plain_integers_and_units_but_not_fractions() {
        assert_eq!(parse_whole_seconds("900"), Ok(900));
        assert_eq!(parse_whole_seconds("15m"), Ok(900));
        assert_eq!(parse_whole_seconds("2000ms"), Ok(2));
        let error = parse_whole_seconds("1500ms").unwrap_err();
        assert!(error.contains("whole seconds"), "{error}");
        assert!(parse_whole_seconds("ten").is_err());
    }
}
