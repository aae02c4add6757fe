//! Elastic Security alerts: Kibana alert documents in ECS, sent with flat dotted keys
//! (`"kibana.alert.rule.name"`) or as nested objects, which [`super::path::lookup`] reads
//! alike.
//!
//! Elastic's indicators all sit at plain ECS paths, so they come from the system mappings
//! (pass 2) and this module contributes no candidates of its own.

use serde_json::Value;

use super::fields::{first_text, loose_severity, loose_time, text, texts};
use super::{InvalidPayload, Normalized, RuleRef, mitre};
use crate::alert::Severity;

pub(super) fn normalize(payload: &Value) -> Result<Normalized, InvalidPayload> {
    let title = first_text(payload, &["kibana.alert.rule.name", "kibana.alert.reason"])
        .ok_or_else(|| InvalidPayload::new("kibana.alert.rule.name", "is required"))?;
    let tags = texts(payload, "kibana.alert.rule.tags");
    Ok(Normalized {
        title: title.to_owned(),
        description: first_text(payload, &["kibana.alert.reason", "kibana.alert.rule.description"])
            .map(str::to_owned),
        // The alert's own severity can be raised by severity overrides; the rule's default is
        // only a fallback for exports that drop it.
        severity: loose_severity(payload, &["kibana.alert.severity", "kibana.alert.rule.severity"]),
        occurred_at: loose_time(payload, &["kibana.alert.start", "@timestamp"]),
        rule: rule(payload, &tags),
        tags,
        candidates: Vec::new(),
    })
}

/// The rule by its Kibana saved-object id, named by its rule name when the document has one.
fn rule(payload: &Value, tags: &[String]) -> Option<RuleRef> {
    let rule_id = text(payload, "kibana.alert.rule.uuid")?;
    let name = text(payload, "kibana.alert.rule.name").unwrap_or(rule_id);
    let severity = text(payload, "kibana.alert.rule.severity").and_then(Severity::parse_loose);
    let mitre = mitre::collect(
        payload,
        &[
            "threat.tactic.id",
            "threat.technique.id",
            "threat.technique.subtechnique.id",
            "kibana.alert.rule.threat.tactic.id",
            "kibana.alert.rule.threat.technique.id",
            "kibana.alert.rule.threat.technique.subtechnique.id",
        ],
        tags,
    );
    Some(RuleRef::new(rule_id, name, severity, mitre))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{normalized_fixture, sorted, utc};
    use super::*;
    use crate::alert::{IndicatorType::*, Source};

    #[test]
    fn malware_hash_alert_normalizes_as_documented() {
        let (alert, indicators) =
            normalized_fixture(Source::Elastic, "02_elastic_malware_hash.json");
        assert_eq!(alert.title, "Known Malware Hash Detected on Endpoint");
        assert_eq!(alert.severity, Severity::Critical);
        assert_eq!(alert.occurred_at, utc("2026-03-01T16:42:18Z"));
        assert_eq!(alert.tags, ["Malware", "Emotet", "Endpoint", "T1204.002", "Execution"]);
        assert!(
            alert.description.is_some_and(|text| text.starts_with("Known malware hash detected"))
        );
        let rule = alert.rule.expect("the alert names a rule");
        assert_eq!(rule.source_rule_id, "d8e5f6a7-b9c0-4d1e-a2f3-456789abcdef");
        assert_eq!(rule.name, "Known Malware Hash Detected on Endpoint");
        assert_eq!(rule.severity, Some(Severity::Critical));
        assert_eq!(rule.mitre_tactics, ["TA0002"]);
        assert_eq!(rule.mitre_techniques, ["T1204"]);
        assert_eq!(rule.mitre_subtechniques, ["T1204.002"]);
        assert_eq!(
            indicators,
            sorted(&[
                (Ip, "198.51.100.42"),
                (Ip, "10.0.15.201"),
                (Ip, "fe80::1a2b:3c4d:5e6f:7890"),
                (HashSha256, "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2"),
                (HashMd5, "d41d8cd98f00b204e9800998ecf8427e"),
                (HashSha1, "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
                (Email, "admin@acmeinc.com"),
                (Account, "admin"),
            ])
        );
    }

    #[test]
    fn encoded_powershell_alert_normalizes_as_documented() {
        let (alert, indicators) =
            normalized_fixture(Source::Elastic, "05_elastic_suspicious_powershell.json");
        assert_eq!(alert.title, "Suspicious PowerShell Execution with Encoded Command");
        assert_eq!(alert.severity, Severity::High);
        assert_eq!(alert.occurred_at, utc("2026-03-01T22:14:37Z"));
        assert_eq!(
            alert.tags,
            [
                "PowerShell",
                "EncodedCommand",
                "LivingOffTheLand",
                "T1059.001",
                "T1027",
                "DefenseEvasion",
                "Execution"
            ]
        );
        let rule = alert.rule.expect("the alert names a rule");
        assert_eq!(rule.source_rule_id, "a9b0c1d2-e3f4-5678-9abc-def012345678");
        assert_eq!(rule.name, "Suspicious PowerShell Execution with Encoded Command");
        assert_eq!(rule.mitre_tactics, ["TA0002", "TA0005"]);
        assert_eq!(rule.mitre_techniques, ["T1027", "T1059"]);
        assert_eq!(rule.mitre_subtechniques, ["T1059.001"]);
        assert_eq!(
            indicators,
            sorted(&[
                (Ip, "10.0.1.10"),
                (Ip, "198.51.100.99"),
                (Domain, "c2-relay.darkops.net"),
                (Url, "https://c2-relay.darkops.net/stager.ps1"),
                (HashSha256, "de96a6e69944335375dc1ac238336066889d9ffc7d73628ef4fe1b1b160ab32c"),
                (Account, "SYSTEM"),
            ])
        );
    }

    #[test]
    fn short_elastic_fixture_normalizes_as_documented() {
        let (alert, indicators) = normalized_fixture(Source::Elastic, "elastic_alert.json");
        assert_eq!(alert.title, "Suspicious PowerShell Execution");
        assert_eq!(alert.severity, Severity::High);
        assert_eq!(alert.occurred_at, utc("2024-01-15T10:29:50Z"));
        assert_eq!(alert.tags, ["PowerShell", "Endpoint", "T1059.001"]);
        let rule = alert.rule.expect("the alert names a rule");
        assert_eq!(rule.source_rule_id, "rule-uuid-elastic-abc");
        assert_eq!(rule.name, "Suspicious PowerShell Execution");
        assert_eq!(rule.mitre_subtechniques, ["T1059.001"]);
        assert_eq!(
            indicators,
            sorted(&[
                (Ip, "10.0.0.55"),
                (Ip, "185.220.101.32"),
                (Domain, "evil.example.com"),
                (Domain, "c2-server.evil.com"),
                (Url, "https://evil.example.com/payload/stage2.ps1"),
                (HashSha256, "a1b2c3d4e5f6789012345678901234567890abcdef1234567890abcdef123456"),
                (HashMd5, "d41d8cd98f00b204e9800998ecf8427e"),
                (Email, "jdoe@corp.com"),
                (Account, "jdoe"),
            ])
        );
    }

    #[test]
    fn nested_dns_tunnel_alert_normalizes_like_flat_ones() {
        let (alert, indicators) =
            normalized_fixture(Source::Elastic, "elastic_nested_dns_tunnel.json");
        assert_eq!(alert.title, "Potential DNS Tunneling via High-Entropy Subdomains");
        assert_eq!(alert.severity, Severity::High);
        assert_eq!(alert.occurred_at, utc("2026-03-02T03:41:09.512Z"));
        assert_eq!(
            alert.tags,
            [
                "Domain: Endpoint",
                "Tactic: Command and Control",
                "Tactic: Exfiltration",
                "Data Source: Elastic Defend",
                "Use Case: Threat Detection",
                "T1071.004",
                "T1048",
            ]
        );
        let rule = alert.rule.expect("the alert names a rule");
        assert_eq!(rule.source_rule_id, "c3d9e5f1-7a2b-4c8d-9e0f-a1b2c3d4e5f6");
        assert_eq!(rule.name, "Potential DNS Tunneling via High-Entropy Subdomains");
        assert_eq!(rule.severity, Some(Severity::High));
        assert_eq!(rule.mitre_tactics, ["TA0011"]);
        assert_eq!(rule.mitre_techniques, ["T1048", "T1071"]);
        assert_eq!(rule.mitre_subtechniques, ["T1071.004"]);
        assert_eq!(
            indicators,
            sorted(&[
                (Ip, "10.20.30.44"),
                (Ip, "fe80::8d1:2c3f:fe4a:5b6c"),
                (Ip, "198.51.100.53"),
                (Domain, "mzxw6ytboi2dsnrtgq3tmmjvgaytamzxgq.s0421.t.exfil-tunnel.example.org"),
                (HashMd5, "f42fd149140017c7cb2d47edb0c1304e"),
                (HashSha1, "b5d43232f4fbd76808b6cee4442f0bd4ba14a4d6"),
                (HashSha256, "56366bedca0b6a5add77a59f4194c58362ddccad9b96e55dc17d523b4ab24ca6"),
                (Email, "l.okafor@example.com"),
                (Account, "l.okafor"),
            ])
        );
    }

    #[test]
    fn reason_stands_in_for_a_missing_rule_name() {
        let alert = normalize(&json!({
            "kibana.alert.reason": "process event created high alert",
            "@timestamp": "2026-03-01T16:42:18Z"
        }))
        .expect("alert normalizes");
        assert_eq!(alert.title, "process event created high alert");
        assert_eq!(alert.occurred_at, utc("2026-03-01T16:42:18Z"));
        assert_eq!(alert.severity, Severity::Pending);
        assert_eq!(alert.rule, None);
    }

    #[test]
    fn missing_title_names_the_rule_name_field() {
        let error = normalize(&json!({"kibana.alert.severity": "high"})).err();
        assert_eq!(error.map(|error| error.field), Some("kibana.alert.rule.name".to_owned()));
    }
}
