//! Normalize: the ingest stage that turns one source's raw webhook body into alertgraph's
//! alert fields, its detection rule and its indicators (SPEC §2).
//!
//! It runs synchronously inside `POST /v1/ingest/{source}`, before anything is stored, so it
//! is pure: no I/O, and every rejection is an [`InvalidPayload`] naming the field the client
//! has to fix. Each source has its own module for its shape; indicators come from three
//! passes ([`extract`]) and feed the deduplication [`fingerprint`].

mod elastic;
mod fields;
mod generic;
mod mapping;
mod mitre;
pub mod path;
mod sentinel;
mod splunk;
#[cfg(test)]
mod testing;

use std::cell::OnceCell;
use std::collections::BTreeSet;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub use mapping::{FieldMapping, MappingTarget, SYSTEM_MAPPINGS};

use crate::alert::{Severity, Source};
use crate::indicator::{Indicator, clean};
use fields::scalar_text;
use mitre::MitreIds;
use path::lookup;

/// An alert's fields as read from its source payload.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalized {
    pub title: String,
    pub description: Option<String>,
    pub severity: Severity,
    pub occurred_at: Option<DateTime<Utc>>,
    pub tags: Vec<String>,
    pub rule: Option<RuleRef>,
    /// Indicators from the source's structural mapping (pass 1), already cleaned.
    pub candidates: Vec<Indicator>,
}

/// The detection rule an alert names. `name` is the most readable name the payload offers,
/// because rules are shown to analysts and agents by name (SPEC §2).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RuleRef {
    pub source_rule_id: String,
    pub name: String,
    pub severity: Option<Severity>,
    pub mitre_tactics: Vec<String>,
    pub mitre_techniques: Vec<String>,
    pub mitre_subtechniques: Vec<String>,
}

impl RuleRef {
    fn new(source_rule_id: &str, name: &str, severity: Option<Severity>, mitre: MitreIds) -> Self {
        RuleRef {
            source_rule_id: source_rule_id.to_owned(),
            name: name.to_owned(),
            severity,
            mitre_tactics: mitre.tactics,
            mitre_techniques: mitre.techniques,
            mitre_subtechniques: mitre.subtechniques,
        }
    }
}

/// A payload that can't become an alert. `field` is the dot path as the client wrote it, so
/// the 422 response can point at it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidPayload {
    pub field: String,
    pub problem: String,
}

impl InvalidPayload {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        InvalidPayload { field: field.into(), problem: problem.into() }
    }
}

/// Reads `payload` in `source`'s format.
///
/// # Errors
///
/// [`InvalidPayload`] when the body is not a JSON object or lacks a title, and for a generic
/// payload also when a documented field has the wrong type or an explicit indicator is not
/// valid.
pub fn normalize(source: Source, payload: &Value) -> Result<Normalized, InvalidPayload> {
    if !payload.is_object() {
        return Err(InvalidPayload::new("$", "the body must be a JSON object"));
    }
    match source {
        Source::Sentinel => sentinel::normalize(payload),
        Source::Elastic => elastic::normalize(payload),
        Source::Splunk => splunk::normalize(payload),
        Source::Generic => generic::normalize(payload),
    }
}

/// The normalized alert as the JSON object that [`MappingTarget::Normalized`] paths read.
pub fn normalized_view(source: Source, normalized: &Normalized) -> Value {
    json!({
        "title": normalized.title,
        "description": normalized.description,
        "severity": normalized.severity.as_str(),
        "source_name": source.as_str(),
        "occurred_at": normalized
            .occurred_at
            .map(|time| time.to_rfc3339_opts(SecondsFormat::AutoSi, true)),
        "tags": normalized.tags,
    })
}

/// Runs the three extraction passes of SPEC §2 and returns their union, deduplicated by
/// `(type, value)` and sorted: the source's structural candidates, then every mapping that
/// applies to `source` (callers pass the system mappings first, then the user's).
///
/// Values that don't clean as their mapping's type are dropped silently: a mapping is a hint
/// about where indicators usually are, and one odd alert must not fail ingest.
pub fn extract(
    source: Source,
    payload: &Value,
    normalized: &Normalized,
    mappings: &[FieldMapping],
) -> Vec<Indicator> {
    let mut found: BTreeSet<Indicator> = normalized.candidates.iter().cloned().collect();
    // Built on first use: most deployments only map raw fields.
    let view = OnceCell::new();
    let applicable =
        mappings.iter().filter(|mapping| mapping.source.is_none_or(|only| only == source));
    for mapping in applicable {
        let root = match mapping.target {
            MappingTarget::Raw => payload,
            MappingTarget::Normalized => view.get_or_init(|| normalized_view(source, normalized)),
        };
        let texts = lookup(root, &mapping.path).into_iter().filter_map(scalar_text);
        found.extend(texts.filter_map(|text| clean(mapping.indicator_type, &text)));
    }
    found.into_iter().collect()
}

/// The deduplication key of an alert: SHA-256 over its source, title, rule id and the set of
/// its indicators.
///
/// Every part is length-prefixed and the missing rule id has its own marker, so no two
/// different alerts encode to the same bytes. The indicators are sorted and deduplicated here,
/// so callers may pass them in any order.
pub fn fingerprint(
    source: Source,
    title: &str,
    rule_id: Option<&str>,
    indicators: &[Indicator],
) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let mut write = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    };
    write(source.as_str().as_bytes());
    write(title.as_bytes());
    match rule_id {
        Some(rule_id) => {
            write(b"rule");
            write(rule_id.as_bytes());
        }
        None => write(b"no rule"),
    }
    let entries: BTreeSet<String> = indicators.iter().map(Indicator::to_string).collect();
    write(&(entries.len() as u64).to_be_bytes());
    for entry in &entries {
        write(entry.as_bytes());
    }
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::testing::{fixture, indicator};
    use super::*;
    use crate::alert::IndicatorType;

    #[test]
    fn a_body_that_is_not_an_object_is_rejected_at_the_root() {
        for source in Source::ALL {
            let error = normalize(source, &json!([1, 2])).err();
            assert_eq!(error.map(|error| error.field), Some("$".to_owned()), "{source}");
        }
    }

    #[test]
    fn invalid_payload_message_names_the_field() {
        let error = InvalidPayload::new("properties.title", "is required");
        assert_eq!(error.to_string(), "properties.title: is required");
    }

    #[test]
    fn user_mapping_reads_the_defanged_splunk_dest_as_a_domain() {
        let payload = fixture("splunk_defanged_iocs.json");
        let normalized = normalize(Source::Splunk, &payload).expect("fixture normalizes");
        let dest = FieldMapping {
            source: Some(Source::Splunk),
            target: MappingTarget::Raw,
            path: "result.dest".into(),
            indicator_type: IndicatorType::Domain,
        };
        let indicators = extract(Source::Splunk, &payload, &normalized, &[dest]);
        assert!(indicators.contains(&indicator(IndicatorType::Domain, "evil.example.com")));
        // Without the system mappings, the domain can only have come from the user mapping.
        assert!(!indicators.iter().any(|found| found.kind == IndicatorType::Url));
    }

    #[test]
    fn user_mapping_values_merge_with_system_ones_after_refanging() {
        let payload = fixture("splunk_defanged_iocs.json");
        let normalized = normalize(Source::Splunk, &payload).expect("fixture normalizes");
        let mut mappings = FieldMapping::system();
        mappings.push(FieldMapping {
            source: None,
            target: MappingTarget::Raw,
            path: "result.threat_match_value".into(),
            indicator_type: IndicatorType::Url,
        });
        let indicators = extract(Source::Splunk, &payload, &normalized, &mappings);
        let urls: Vec<&str> = indicators
            .iter()
            .filter(|found| found.kind == IndicatorType::Url)
            .map(|found| found.value.as_str())
            .collect();
        assert_eq!(urls, ["http://evil.example.com/payload"]);
    }

    #[test]
    fn normalized_mapping_reads_the_normalized_alert_not_the_payload() {
        let payload = json!({
            "title": "Beacon to evil.example.org",
            "tags": ["EVIL.example.org", "beaconing"],
            "src_ip": "203.0.113.9"
        });
        let normalized = normalize(Source::Generic, &payload).expect("payload normalizes");
        let on_view = |path: &str, indicator_type| FieldMapping {
            source: Some(Source::Generic),
            target: MappingTarget::Normalized,
            path: path.into(),
            indicator_type,
        };
        let mappings =
            [on_view("tags", IndicatorType::Domain), on_view("src_ip", IndicatorType::Ip)];
        assert_eq!(
            extract(Source::Generic, &payload, &normalized, &mappings),
            [indicator(IndicatorType::Domain, "evil.example.org")]
        );
    }

    #[test]
    fn mappings_for_other_sources_are_skipped() {
        let payload = json!({"title": "t", "src_ip": "203.0.113.9"});
        let normalized = normalize(Source::Generic, &payload).expect("payload normalizes");
        let mapping = FieldMapping {
            source: Some(Source::Splunk),
            target: MappingTarget::Raw,
            path: "src_ip".into(),
            indicator_type: IndicatorType::Ip,
        };
        assert!(extract(Source::Generic, &payload, &normalized, &[mapping]).is_empty());
    }

    #[test]
    fn normalized_view_has_the_documented_fields() {
        let payload = fixture("generic_phishing_email.json");
        let normalized = normalize(Source::Generic, &payload).expect("fixture normalizes");
        let view = normalized_view(Source::Generic, &normalized);
        assert_eq!(view["severity"], "High");
        assert_eq!(view["source_name"], "generic");
        assert_eq!(view["occurred_at"], "2026-03-02T08:14:27Z");
        assert_eq!(view["tags"][3], "T1566.002");
        assert_eq!(view["title"], normalized.title.as_str());
        assert!(view["description"].is_string());
    }

    #[test]
    fn fingerprint_ignores_indicator_order_and_repeats() {
        let ip = indicator(IndicatorType::Ip, "10.0.0.1");
        let domain = indicator(IndicatorType::Domain, "evil.example.com");
        let once = fingerprint(Source::Splunk, "t", Some("r"), &[ip.clone(), domain.clone()]);
        let shuffled =
            fingerprint(Source::Splunk, "t", Some("r"), &[domain.clone(), ip.clone(), ip]);
        assert_eq!(once, shuffled);
        assert_eq!(hex::encode(once).len(), 64);
    }

    #[test]
    fn fingerprint_separates_every_part() {
        let ip = [indicator(IndicatorType::Ip, "10.0.0.1")];
        let base = fingerprint(Source::Splunk, "title", Some("rule"), &ip);
        let variants = [
            fingerprint(Source::Elastic, "title", Some("rule"), &ip),
            fingerprint(Source::Splunk, "titler", Some("ule"), &ip),
            fingerprint(Source::Splunk, "title", None, &ip),
            fingerprint(Source::Splunk, "title", Some(""), &ip),
            fingerprint(Source::Splunk, "title", Some("rule"), &[]),
            fingerprint(
                Source::Splunk,
                "title",
                Some("rule"),
                &[indicator(IndicatorType::Domain, "10.0.0.1")],
            ),
        ];
        for variant in variants {
            assert_ne!(base, variant);
        }
        assert_ne!(
            fingerprint(Source::Splunk, "title", None, &[]),
            fingerprint(Source::Splunk, "title", Some(""), &[])
        );
    }
}
