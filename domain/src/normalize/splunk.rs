//! Splunk saved-search webhooks (Enterprise Security notables included):
//! `{"search_name", "sid", "result": {…}}`, with every value of `result` sent as a string.
//!
//! Most indicators are plain `result.*` fields read by the system mappings. This module adds
//! the one rule a path can't express: `src` and `dest`, which hold an address or a host name,
//! count only when `src_ip` and `dest_ip` give no address.

use serde_json::Value;

use super::fields::{first_text, loose_severity, loose_time, text};
use super::{InvalidPayload, Normalized, RuleRef, mitre};
use crate::alert::IndicatorType;
use crate::indicator::{Indicator, classify_host, clean};

pub(super) fn normalize(payload: &Value) -> Result<Normalized, InvalidPayload> {
    let result = payload
        .get("result")
        .filter(|result| result.is_object())
        .ok_or_else(|| InvalidPayload::new("result", "must be an object"))?;
    let search_name = first_text(payload, &["search_name", "result.search_name"]);
    let title = first_text(result, &["rule_name", "signature"])
        .or(search_name)
        .ok_or_else(|| InvalidPayload::new("result.rule_name", "is required"))?;
    Ok(Normalized {
        title: title.to_owned(),
        description: description(result, title),
        // ES sets `urgency` from the notable's severity and the asset's priority, so it is the
        // level analysts triage by; `severity` alone ignores what was hit.
        severity: loose_severity(result, &["urgency", "severity"]),
        occurred_at: loose_time(result, &["_time"]),
        tags: Vec::new(),
        rule: search_name.map(|search_name| rule(result, search_name)),
        candidates: host_fallbacks(result),
    })
}

/// The rule's own description, else the signature unless it already is the title.
fn description(result: &Value, title: &str) -> Option<String> {
    let signature = text(result, "signature").filter(|signature| *signature != title);
    text(result, "rule_description").or(signature).map(str::to_owned)
}

/// The saved search is the rule: its name is the id Splunk knows it by. ES appends " - Rule"
/// to correlation search names, so `rule_name`, when present, is the readable name.
fn rule(result: &Value, search_name: &str) -> RuleRef {
    let name = text(result, "rule_name").unwrap_or(search_name);
    let mitre = mitre::collect(
        result,
        &[
            "mitre_attack_tactic",
            "mitre_attack_technique",
            "mitre_technique_id",
            "mitre_attack_id",
            "annotations.mitre_attack",
        ],
        &[],
    );
    RuleRef::new(search_name, name, None, mitre)
}

/// Reads `src` and `dest` as hosts where the matching `_ip` field gives no address. When both
/// exist they name the same endpoint, and the address is the more precise of the two.
fn host_fallbacks(result: &Value) -> Vec<Indicator> {
    [("src_ip", "src"), ("dest_ip", "dest")]
        .into_iter()
        .filter(|(ip_field, _)| {
            text(result, ip_field).and_then(|ip| clean(IndicatorType::Ip, ip)).is_none()
        })
        .filter_map(|(_, host_field)| classify_host(text(result, host_field)?))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{indicator, normalized_fixture, sorted, utc};
    use super::*;
    use crate::alert::{IndicatorType::*, Severity, Source};

    #[test]
    fn anomalous_transfer_notable_normalizes_as_documented() {
        let (alert, indicators) =
            normalized_fixture(Source::Splunk, "03_splunk_anomalous_data_transfer.json");
        assert_eq!(alert.title, "Anomalous Outbound Data Transfer");
        assert_eq!(alert.severity, Severity::High);
        assert_eq!(alert.occurred_at, utc("2024-03-01T15:00:00Z"));
        assert!(alert.tags.is_empty());
        assert_eq!(alert.description.as_deref(), Some("Data Exfiltration - Anomalous Volume"));
        let rule = alert.rule.expect("the webhook names a saved search");
        assert_eq!(rule.source_rule_id, "Anomalous Outbound Data Transfer Detected");
        assert_eq!(rule.name, "Anomalous Outbound Data Transfer");
        assert_eq!(rule.mitre_tactics, ["TA0010"]);
        assert_eq!(rule.mitre_techniques, ["T1048"]);
        assert_eq!(rule.mitre_subtechniques, ["T1048.001"]);
        assert_eq!(
            indicators,
            sorted(&[
                (Ip, "10.0.8.55"),
                (Ip, "45.33.32.156"),
                (Url, "https://suspicious-cloud-sync.com/api/v2/upload"),
                (Domain, "suspicious-cloud-sync.com"),
                (Account, "svc_backup"),
            ])
        );
    }

    #[test]
    fn brute_force_notable_normalizes_as_documented() {
        let (alert, indicators) = normalized_fixture(Source::Splunk, "splunk_alert.json");
        assert_eq!(alert.title, "Brute Force Login Attempt");
        assert_eq!(alert.severity, Severity::High);
        assert_eq!(alert.occurred_at, utc("2024-01-15T09:50:00Z"));
        assert!(alert.tags.is_empty());
        assert_eq!(
            alert.description.as_deref(),
            Some("More than 10 failed logins from a single IP in 5 minutes")
        );
        let rule = alert.rule.expect("the webhook names a saved search");
        assert_eq!(rule.source_rule_id, "Brute Force Login Attempt");
        assert_eq!(rule.name, "Brute Force Login Attempt");
        assert_eq!(rule.mitre_techniques, ["T1110"]);
        assert_eq!(rule.mitre_subtechniques, ["T1110.001"]);
        assert_eq!(
            indicators,
            sorted(&[
                (Ip, "10.0.0.99"),
                (Ip, "192.168.1.10"),
                (Account, "admin"),
                (Domain, "corp.example.com"),
                // 63 hex digits: a truncated digest, kept under the type its field declares.
                (HashSha256, "b94f6f125c79e3a5ffaa826f584c10d52ada669e6762051b826b55776d05a8a"),
            ])
        );
    }

    #[test]
    fn defanged_splunk_alert_yields_refanged_indicators() {
        let (alert, indicators) = normalized_fixture(Source::Splunk, "splunk_defanged_iocs.json");
        assert_eq!(alert.title, "Threat - Defanged IOC Match in Web Proxy Logs");
        assert_eq!(alert.severity, Severity::Critical);
        assert_eq!(alert.occurred_at, utc("2026-03-02T03:29:13Z"));
        assert!(alert.tags.is_empty());
        let rule = alert.rule.expect("the webhook names a saved search");
        assert_eq!(rule.source_rule_id, "Threat - Defanged IOC Match in Web Proxy Logs - Rule");
        assert_eq!(rule.name, "Threat - Defanged IOC Match in Web Proxy Logs");
        assert_eq!(rule.mitre_techniques, ["T1105"]);
        assert_eq!(
            indicators,
            sorted(&[
                (Ip, "10.50.3.17"),
                (Ip, "203.0.113.7"),
                (Url, "http://evil.example.com/payload"),
                (Domain, "evil.example.com"),
                (Account, r"CORP\d.kowalski"),
                (HashMd5, "4fc0adcb33aa2e2d61453e236691e8ae"),
            ])
        );
    }

    #[test]
    fn src_and_dest_count_only_without_their_ip_fields() {
        let notable = json!({"search_name": "s", "result": {
            "rule_name": "r",
            "src": "evil[.]example[.]com",
            "dest_ip": "unknown",
            "dest": "192.0.2.10"
        }});
        let alert = normalize(&notable).expect("notable normalizes");
        assert_eq!(
            alert.candidates,
            [indicator(Domain, "evil.example.com"), indicator(Ip, "192.0.2.10")]
        );
    }

    #[test]
    fn signature_and_search_name_stand_in_for_a_missing_rule_name() {
        let by_signature = json!({"search_name": "Search", "result": {"signature": "Sig"}});
        let alert = normalize(&by_signature).expect("notable normalizes");
        assert_eq!(alert.title, "Sig");
        assert_eq!(alert.description, None);
        assert_eq!(alert.rule.map(|rule| rule.name), Some("Search".to_owned()));

        let by_search = json!({"search_name": "Search", "result": {"_time": 1709305200.5}});
        let alert = normalize(&by_search).expect("notable normalizes");
        assert_eq!(alert.title, "Search");
        assert_eq!(alert.occurred_at, utc("2024-03-01T15:00:00.5Z"));
    }

    #[test]
    fn result_must_be_an_object_and_a_title_is_required() {
        let no_result = normalize(&json!({"search_name": "s", "result": "text"})).err();
        assert_eq!(no_result.map(|error| error.field), Some("result".to_owned()));
        let no_title = normalize(&json!({"result": {"src_ip": "10.0.0.1"}})).err();
        assert_eq!(no_title.map(|error| error.field), Some("result.rule_name".to_owned()));
    }

    #[test]
    fn unparseable_time_is_left_unknown() {
        let notable =
            json!({"search_name": "s", "result": {"_time": "Mar 01 2026", "urgency": "odd"}});
        let alert = normalize(&notable).expect("notable normalizes");
        assert_eq!(alert.occurred_at, None);
        assert_eq!(alert.severity, Severity::Pending);
    }
}
