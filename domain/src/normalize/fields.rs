//! Typed reads of payload fields shared by the source normalizers: text, tag lists, severities
//! and timestamps.
//!
//! These readers are lenient on purpose. SIEM payloads drift between versions and exports, so
//! a field of an unexpected type reads as absent here; only the generic source, whose shape
//! its sender controls, turns such fields into errors, and it checks them itself.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::path::lookup;
use crate::alert::Severity;

/// The text of a string or number value. Splunk sends every field as a string, but other
/// senders write epoch times, ids and severities as numbers, and both mean the same text.
pub(super) fn scalar_text(value: &Value) -> Option<Cow<'_, str>> {
    match value {
        Value::String(text) => Some(Cow::Borrowed(text)),
        Value::Number(number) => Some(Cow::Owned(number.to_string())),
        _ => None,
    }
}

/// The first non-blank string at `path`, trimmed.
pub(super) fn text<'a>(payload: &'a Value, path: &str) -> Option<&'a str> {
    lookup(payload, path)
        .into_iter()
        .filter_map(Value::as_str)
        .map(str::trim)
        .find(|text| !text.is_empty())
}

/// The first non-blank string among `paths`, tried in order.
pub(super) fn first_text<'a>(payload: &'a Value, paths: &[&str]) -> Option<&'a str> {
    paths.iter().find_map(|path| text(payload, path))
}

/// Every non-blank string at `path`, trimmed, in payload order and without repeats.
pub(super) fn texts(payload: &Value, path: &str) -> Vec<String> {
    let mut texts: Vec<String> = Vec::new();
    for text in lookup(payload, path).into_iter().filter_map(Value::as_str).map(str::trim) {
        if !text.is_empty() && !texts.iter().any(|seen| seen == text) {
            texts.push(text.to_owned());
        }
    }
    texts
}

/// The first severity among `paths` that reads as one. SIEM vocabularies grow, so an
/// unrecognized spelling falls through to the next field and finally to `Pending` rather than
/// rejecting the alert.
pub(super) fn loose_severity(payload: &Value, paths: &[&str]) -> Severity {
    paths
        .iter()
        .flat_map(|path| lookup(payload, path))
        .filter_map(scalar_text)
        .find_map(|text| Severity::parse_loose(&text))
        .unwrap_or(Severity::Pending)
}

/// The first time among `paths` that parses, so a garbled first choice falls back to the next.
pub(super) fn loose_time(payload: &Value, paths: &[&str]) -> Option<DateTime<Utc>> {
    paths.iter().flat_map(|path| lookup(payload, path)).find_map(parse_time)
}

/// Reads an RFC 3339 string or an epoch (a number or a numeric string, with or without a
/// fraction).
pub(super) fn parse_time(value: &Value) -> Option<DateTime<Utc>> {
    if let Some(text) = value.as_str()
        && let Ok(time) = DateTime::parse_from_rfc3339(text.trim())
    {
        return Some(time.with_timezone(&Utc));
    }
    parse_epoch(&scalar_text(value)?)
}

/// Epochs at or beyond this many seconds (the year 5138) are read as milliseconds: webhook
/// senders written in JavaScript send `Date.now()`, and no alert is dated that far ahead.
const MILLISECOND_EPOCH_FLOOR: i64 = 100_000_000_000;

/// Parses `1705312200`, `1705312200.0` or `1772422153.000` exactly, without going through a
/// float, so fractions keep their digits.
fn parse_epoch(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    // A negative epoch would date an alert before 1970: that is a broken clock, not a time.
    if whole < 0 {
        return None;
    }
    let mut nanos_text: String = fraction.chars().take(9).collect();
    while nanos_text.len() < 9 {
        nanos_text.push('0');
    }
    let nanos: u32 = nanos_text.parse().ok()?;
    let (seconds, nanos) = if whole >= MILLISECOND_EPOCH_FLOOR {
        let millis_as_nanos = u32::try_from(whole % 1000).ok()? * 1_000_000;
        (whole / 1000, millis_as_nanos + nanos / 1000)
    } else {
        (whole, nanos)
    };
    DateTime::from_timestamp(seconds, nanos)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn time(text: &str) -> Option<DateTime<Utc>> {
        DateTime::parse_from_rfc3339(text).ok().map(|time| time.with_timezone(&Utc))
    }

    #[test]
    fn times_parse_from_rfc3339_and_epochs() {
        assert_eq!(parse_time(&json!("2026-03-02T08:14:27Z")), time("2026-03-02T08:14:27Z"));
        assert_eq!(parse_time(&json!("2026-03-02T09:14:27+01:00")), time("2026-03-02T08:14:27Z"));
        assert_eq!(parse_time(&json!("1705312200.0")), time("2024-01-15T09:50:00Z"));
        assert_eq!(parse_time(&json!(1709305200)), time("2024-03-01T15:00:00Z"));
        assert_eq!(parse_time(&json!(1772422153.25)), time("2026-03-02T03:29:13.25Z"));
        assert_eq!(parse_time(&json!(1709305200123_i64)), time("2024-03-01T15:00:00.123Z"));
    }

    #[test]
    fn text_that_is_no_time_parses_as_none() {
        for value in [
            json!("yesterday"),
            json!("12:00"),
            json!(true),
            json!("1.2.3"),
            json!(""),
            json!("-5"),
        ] {
            assert_eq!(parse_time(&value), None, "{value}");
        }
    }

    #[test]
    fn severity_falls_through_unknown_spellings() {
        let result = json!({"urgency": "bogus", "severity": "medium"});
        assert_eq!(loose_severity(&result, &["urgency", "severity"]), Severity::Medium);
        assert_eq!(loose_severity(&result, &["urgency"]), Severity::Pending);
    }
}
