//! Generic webhooks: alertgraph's own format for senders without a dedicated source, with
//! `title`, `severity`, `occurred_at`, `tags`, `description`, `rule_id`/`rule_name` and an
//! explicit `indicators: [{type, value}]` list.
//!
//! Unlike the SIEM sources, the sender writes this shape for alertgraph, so it is validated
//! strictly: a documented field that is present but wrong is an error naming that field,
//! rather than something silently dropped. Explicit indicators are this source's first pass;
//! its common top-level fields (`src_ip`, `url`, …) are read by the system mappings.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::fields::{parse_time, scalar_text};
use super::{InvalidPayload, Normalized, RuleRef, mitre};
use crate::alert::{IndicatorType, Severity};
use crate::indicator::{Indicator, clean};

pub(super) fn normalize(payload: &Value) -> Result<Normalized, InvalidPayload> {
    let title = optional_text(payload, "title")?.ok_or_else(|| {
        InvalidPayload::new("title", "is required and must be a non-empty string")
    })?;
    let tags = tags(payload)?;
    Ok(Normalized {
        title: title.to_owned(),
        description: optional_text(payload, "description")?.map(str::to_owned),
        severity: severity(payload)?,
        occurred_at: occurred_at(payload)?,
        rule: rule(payload, &tags)?,
        tags,
        candidates: explicit_indicators(payload)?,
    })
}

/// A top-level field that must be a string when present. Null and blank count as absent.
fn optional_text<'a>(payload: &'a Value, field: &str) -> Result<Option<&'a str>, InvalidPayload> {
    match payload.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.trim()).filter(|text| !text.is_empty())),
        Some(_) => Err(InvalidPayload::new(field, "must be a string")),
    }
}

/// The severity, spelled as any of [`Severity::parse_loose`]'s spellings. A spelling it
/// doesn't know is an error here: the sender can fix it, and guessing would misroute alerts.
fn severity(payload: &Value) -> Result<Severity, InvalidPayload> {
    let Some(value) = payload.get("severity").filter(|value| !value.is_null()) else {
        return Ok(Severity::Pending);
    };
    scalar_text(value).and_then(|text| Severity::parse_loose(&text)).ok_or_else(|| {
        let known: Vec<&str> = Severity::ALL.iter().map(|severity| severity.as_str()).collect();
        let problem = format!("{value} is not a severity; use one of {}", known.join(", "));
        InvalidPayload::new("severity", problem)
    })
}

fn occurred_at(payload: &Value) -> Result<Option<DateTime<Utc>>, InvalidPayload> {
    let Some(value) = payload.get("occurred_at").filter(|value| !value.is_null()) else {
        return Ok(None);
    };
    parse_time(value).map(Some).ok_or_else(|| {
        InvalidPayload::new(
            "occurred_at",
            format!("{value} is not an RFC 3339 time or a Unix epoch"),
        )
    })
}

/// The tags, in the sender's order without repeats.
fn tags(payload: &Value) -> Result<Vec<String>, InvalidPayload> {
    let not_strings = || InvalidPayload::new("tags", "must be an array of strings");
    let items = match payload.get("tags") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(items)) => items,
        Some(_) => return Err(not_strings()),
    };
    let mut tags: Vec<String> = Vec::new();
    for item in items {
        let tag = item.as_str().ok_or_else(not_strings)?.trim();
        if !tag.is_empty() && !tags.iter().any(|seen| seen == tag) {
            tags.push(tag.to_owned());
        }
    }
    Ok(tags)
}

/// The rule named by `rule_id`, which may be a string or a number; `rule_name` makes it
/// readable when the sender gives one.
fn rule(payload: &Value, tags: &[String]) -> Result<Option<RuleRef>, InvalidPayload> {
    let rule_id = match payload.get("rule_id") {
        None | Some(Value::Null) => return Ok(None),
        Some(value) => scalar_text(value).filter(|id| !id.trim().is_empty()).ok_or_else(|| {
            InvalidPayload::new("rule_id", "must be a non-empty string or number")
        })?,
    };
    let rule_id = rule_id.trim();
    let name = optional_text(payload, "rule_name")?.unwrap_or(rule_id);
    let mitre = mitre::collect(payload, &[], tags);
    Ok(Some(RuleRef::new(rule_id, name, None, mitre)))
}

/// The explicit `indicators` list, each entry checked so the sender learns which one is wrong
/// and why.
fn explicit_indicators(payload: &Value) -> Result<Vec<Indicator>, InvalidPayload> {
    let entries = match payload.get("indicators") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(entries)) => entries,
        Some(_) => {
            return Err(InvalidPayload::new(
                "indicators",
                "must be an array of {type, value} objects",
            ));
        }
    };
    entries
        .iter()
        .enumerate()
        .map(|(index, entry)| {
            let field = format!("indicators[{index}]");
            let entry = entry.as_object().ok_or_else(|| {
                InvalidPayload::new(&field, "must be an object with type and value")
            })?;
            explicit_indicator(&field, entry)
        })
        .collect()
}

fn explicit_indicator(
    field: &str,
    entry: &Map<String, Value>,
) -> Result<Indicator, InvalidPayload> {
    let type_field = format!("{field}.type");
    let value_field = format!("{field}.value");
    let kind_text = entry
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| InvalidPayload::new(&type_field, "is required and must be a string"))?;
    let kind = IndicatorType::from_str(kind_text).map_err(|unknown| {
        let known: Vec<&str> = IndicatorType::ALL.iter().map(|kind| kind.as_str()).collect();
        InvalidPayload::new(&type_field, format!("{unknown}; use one of {}", known.join(", ")))
    })?;
    let value = entry
        .get("value")
        .and_then(Value::as_str)
        .ok_or_else(|| InvalidPayload::new(&value_field, "is required and must be a string"))?;
    clean(kind, value).ok_or_else(|| {
        InvalidPayload::new(&value_field, format!("{value:?} is not a valid {kind}"))
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{normalized_fixture, sorted, utc};
    use super::*;
    use crate::alert::{IndicatorType::*, Source};

    fn error_for(payload: Value) -> Option<(String, String)> {
        normalize(&payload).err().map(|error| (error.field, error.problem))
    }

    fn error_field(payload: Value) -> Option<String> {
        error_for(payload).map(|(field, _)| field)
    }

    #[test]
    fn phishing_report_normalizes_as_documented() {
        let (alert, indicators) =
            normalized_fixture(Source::Generic, "generic_phishing_email.json");
        let phishing_url = concat!(
            "https://payroll-portal.example.net/sso/login",
            "?session=7f3a9c2e&user=j.martinez%40contoso.com"
        );
        assert_eq!(
            alert.title,
            "User-reported phishing: fake payroll portal harvesting credentials"
        );
        assert_eq!(alert.severity, Severity::High);
        assert_eq!(alert.occurred_at, utc("2026-03-02T08:14:27Z"));
        assert_eq!(alert.tags, ["phishing", "credential-harvesting", "user-reported", "T1566.002"]);
        assert!(
            alert
                .description
                .is_some_and(|text| text.starts_with("j.martinez@contoso.com reported"))
        );
        assert_eq!(alert.candidates.len(), 7);
        let rule = alert.rule.expect("the payload names a rule");
        assert_eq!(rule.source_rule_id, "phish-report-link-clicked");
        assert_eq!(rule.name, "Phish Report - Link Clicked Before Report");
        assert_eq!(rule.mitre_techniques, ["T1566"]);
        assert_eq!(rule.mitre_subtechniques, ["T1566.002"]);
        assert_eq!(
            indicators,
            sorted(&[
                (Email, "payroll-team@payroll-portal.example.net"),
                (Email, "hr.payroll.desk@mail.example.org"),
                (Domain, "payroll-portal.example.net"),
                (Url, phishing_url),
                (Ip, "203.0.113.45"),
                (HashSha1, "3395856ce81f2b7382dee72602f798b642f14140"),
                (HashMd5, "44d88612fea8a8f36de82e1278abb02f"),
                (HashSha256, "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"),
                (Account, "j.martinez@contoso.com"),
            ])
        );
    }

    #[test]
    fn minimal_payload_needs_only_a_title() {
        let alert = normalize(&json!({"title": "  Beacon  "})).expect("payload normalizes");
        assert_eq!(alert.title, "Beacon");
        assert_eq!(alert.severity, Severity::Pending);
        assert_eq!(alert.occurred_at, None);
        assert!(alert.tags.is_empty() && alert.candidates.is_empty() && alert.rule.is_none());
    }

    #[test]
    fn title_must_be_a_non_empty_string() {
        assert_eq!(error_field(json!({})), Some("title".into()));
        assert_eq!(error_field(json!({"title": "  "})), Some("title".into()));
        assert_eq!(error_field(json!({"title": 7})), Some("title".into()));
    }

    #[test]
    fn unknown_severity_is_rejected() {
        let (field, problem) =
            error_for(json!({"title": "t", "severity": "urgent"})).expect("rejected");
        assert_eq!(field, "severity");
        assert!(problem.contains("\"urgent\""), "{problem}");
        let numeric = normalize(&json!({"title": "t", "severity": 4})).expect("payload normalizes");
        assert_eq!(numeric.severity, Severity::Critical);
    }

    #[test]
    fn occurred_at_must_be_a_time_when_present() {
        assert_eq!(
            error_field(json!({"title": "t", "occurred_at": "last tuesday"})),
            Some("occurred_at".into())
        );
        assert_eq!(
            error_field(json!({"title": "t", "occurred_at": {}})),
            Some("occurred_at".into())
        );
        let epoch =
            normalize(&json!({"title": "t", "occurred_at": 1772421267})).expect("normalizes");
        assert_eq!(epoch.occurred_at, utc("2026-03-02T03:14:27Z"));
    }

    #[test]
    fn tags_must_be_an_array_of_strings() {
        assert_eq!(error_field(json!({"title": "t", "tags": "phishing"})), Some("tags".into()));
        assert_eq!(error_field(json!({"title": "t", "tags": ["ok", 1]})), Some("tags".into()));
    }

    #[test]
    fn wrongly_typed_text_fields_are_named() {
        assert_eq!(
            error_field(json!({"title": "t", "description": ["x"]})),
            Some("description".into())
        );
        assert_eq!(error_field(json!({"title": "t", "rule_id": {}})), Some("rule_id".into()));
        assert_eq!(
            error_field(json!({"title": "t", "rule_id": "r", "rule_name": 3})),
            Some("rule_name".into())
        );
    }

    #[test]
    fn rule_id_names_the_rule_when_no_rule_name_is_given() {
        let alert = normalize(&json!({"title": "t", "rule_id": 4021})).expect("payload normalizes");
        let rule = alert.rule.expect("the payload names a rule");
        assert_eq!((rule.source_rule_id.as_str(), rule.name.as_str()), ("4021", "4021"));
    }

    #[test]
    fn explicit_indicator_errors_name_the_entry_and_say_why() {
        let payload = |indicators: Value| json!({"title": "t", "indicators": indicators});
        let cases = [
            (json!("10.0.0.1"), "indicators", "array"),
            (json!(["10.0.0.1"]), "indicators[0]", "object"),
            (json!([{"value": "10.0.0.1"}]), "indicators[0].type", "required"),
            (
                json!([{"type": "ip", "value": "10.0.0.1"}, {"type": "ipv4", "value": "x"}]),
                "indicators[1].type",
                "hash_sha256",
            ),
            (json!([{"type": "ip"}]), "indicators[0].value", "required"),
            (json!([{"type": "ip", "value": 10}]), "indicators[0].value", "string"),
            (
                json!([{"type": "domain", "value": "a.b"}, {"type": "ip", "value": "1.2.3"}]),
                "indicators[1].value",
                "not a valid ip",
            ),
        ];
        for (indicators, field, reason) in cases {
            let (found_field, problem) = error_for(payload(indicators)).expect("rejected");
            assert_eq!(found_field, field);
            assert!(problem.contains(reason), "{field}: {problem}");
        }
    }
}
