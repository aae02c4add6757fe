//! Helpers for the normalizer tests: loading the shared alert fixtures and spelling expected
//! indicators.
//!
//! The fixtures live in `shared/fixtures/alerts/` beside the repository, reached relative to
//! the crate so the tests run the same from any checkout that has `shared/` next to it.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{FieldMapping, Normalized, extract, normalize};
use crate::alert::{IndicatorType, Source};
use crate::indicator::Indicator;

pub(super) fn fixture(name: &str) -> Value {
    let path = format!("{}/../../shared/fixtures/alerts/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("{path}: {error}"));
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// Loads and normalizes a fixture, then extracts its indicators with the system mappings.
pub(super) fn normalized_fixture(source: Source, name: &str) -> (Normalized, Vec<Indicator>) {
    let payload = fixture(name);
    let normalized = normalize(source, &payload).unwrap_or_else(|error| panic!("{name}: {error}"));
    let indicators = extract(source, &payload, &normalized, &FieldMapping::system());
    (normalized, indicators)
}

pub(super) fn indicator(kind: IndicatorType, value: &str) -> Indicator {
    Indicator { kind, value: value.to_owned() }
}

/// The expected indicators in the order `extract` returns them.
pub(super) fn sorted(expected: &[(IndicatorType, &str)]) -> Vec<Indicator> {
    let mut indicators: Vec<Indicator> =
        expected.iter().map(|&(kind, value)| indicator(kind, value)).collect();
    indicators.sort();
    indicators
}

pub(super) fn utc(text: &str) -> Option<DateTime<Utc>> {
    let time = DateTime::parse_from_rfc3339(text).unwrap_or_else(|error| panic!("{text}: {error}"));
    Some(time.with_timezone(&Utc))
}
