//! Microsoft Sentinel incidents: an ARM resource with its fields under `properties` and its
//! entities in a top-level `Entities[]`.
//!
//! Entities are typed by a sibling `Type` field and some indicators are assembled from two
//! fields (`Name` + `UPNSuffix`, `HostName` + `DnsDomain`), which a dot path can't express, so
//! all of Sentinel's indicators come from this module's first pass.

use serde_json::{Map, Value};

use super::fields::{loose_severity, loose_time, text, texts};
use super::path::lookup;
use super::{InvalidPayload, Normalized, RuleRef, mitre};
use crate::alert::IndicatorType;
use crate::indicator::{Indicator, clean};

pub(super) fn normalize(payload: &Value) -> Result<Normalized, InvalidPayload> {
    let title = text(payload, "properties.title")
        .ok_or_else(|| InvalidPayload::new("properties.title", "is required"))?;
    let tags = texts(payload, "properties.labels.labelName");
    Ok(Normalized {
        title: title.to_owned(),
        description: text(payload, "properties.description").map(str::to_owned),
        severity: loose_severity(payload, &["properties.severity"]),
        occurred_at: loose_time(
            payload,
            &["properties.firstActivityTimeUtc", "properties.createdTimeUtc"],
        ),
        rule: rule(payload, title, &tags),
        tags,
        candidates: entities(payload).flat_map(entity_indicators).collect(),
    })
}

/// The analytic rule behind the incident. Incidents carry only the rule's resource id, so the
/// incident title, which Sentinel takes from the rule's display name, is the readable name.
fn rule(payload: &Value, title: &str, tags: &[String]) -> Option<RuleRef> {
    let resource_id = text(payload, "properties.relatedAnalyticRuleIds.0")?;
    let rule_id = resource_id.trim_end_matches('/').rsplit('/').next()?;
    if rule_id.is_empty() {
        return None;
    }
    let mitre = mitre::collect(
        payload,
        &[
            "properties.additionalData.tactics",
            "properties.additionalData.techniques",
            "properties.additionalData.subTechniques",
        ],
        tags,
    );
    Some(RuleRef::new(rule_id, title, None, mitre))
}

fn entities(payload: &Value) -> impl Iterator<Item = &Map<String, Value>> {
    let listed = first_non_empty(payload, &["Entities", "entities", "properties.Entities"]);
    listed.into_iter().filter_map(Value::as_object)
}

/// The values at the first of `paths` that has any: exports differ in the capitalization and
/// place of the entity list, and only one of them is ever present.
fn first_non_empty<'a>(payload: &'a Value, paths: &[&str]) -> Vec<&'a Value> {
    paths
        .iter()
        .map(|path| lookup(payload, path))
        .find(|found| !found.is_empty())
        .unwrap_or_default()
}

/// The indicators one entity stands for, by its `Type`.
fn entity_indicators(entity: &Map<String, Value>) -> Vec<Indicator> {
    let Some(kind) = field(entity, "Type") else {
        return Vec::new();
    };
    let found = match kind.to_ascii_lowercase().as_str() {
        "ip" => clean_field(entity, "Address", IndicatorType::Ip),
        "account" => account(entity).and_then(|name| clean(IndicatorType::Account, &name)),
        "host" => host_name(entity).and_then(|name| clean(IndicatorType::Domain, &name)),
        "dns" => clean_field(entity, "DomainName", IndicatorType::Domain),
        "url" => clean_field(entity, "Url", IndicatorType::Url),
        "filehash" => file_hash(entity),
        "mailbox" => clean_field(entity, "MailboxPrimaryAddress", IndicatorType::Email),
        "mailmessage" => {
            return ["Sender", "P1Sender", "P2Sender", "Recipient"]
                .into_iter()
                .filter_map(|name| clean_field(entity, name, IndicatorType::Email))
                .collect();
        }
        _ => None,
    };
    found.into_iter().collect()
}

/// A non-blank string field of an entity. Entity field names are PascalCase in incident
/// exports but camelCase in some API versions, so the name matches without regard to case.
fn field<'a>(entity: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    let value = entity.get(name).or_else(|| {
        entity.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value)
    })?;
    value.as_str().map(str::trim).filter(|text| !text.is_empty())
}

fn clean_field(entity: &Map<String, Value>, name: &str, kind: IndicatorType) -> Option<Indicator> {
    clean(kind, field(entity, name)?)
}

/// The account as a UPN when the entity has the parts of one, since that is how Entra ID and
/// the identity providers that enrich it look users up; otherwise the bare name.
fn account(entity: &Map<String, Value>) -> Option<String> {
    let name = field(entity, "Name");
    if let (Some(name), Some(suffix)) = (name, field(entity, "UPNSuffix")) {
        return Some(format!("{name}@{suffix}"));
    }
    field(entity, "UserPrincipalName").or(name).map(str::to_owned)
}

/// The host's DNS name: `HostName.DnsDomain`, or `HostName` alone when it is already
/// qualified (a bare NetBIOS name is then refused by the domain check).
fn host_name(entity: &Map<String, Value>) -> Option<String> {
    let host = field(entity, "HostName")?;
    Some(match field(entity, "DnsDomain") {
        Some(domain) => format!("{host}.{domain}"),
        None => host.to_owned(),
    })
}

/// A file hash whose `Algorithm` is one alertgraph stores. Other algorithms (`SHA256AC`, the
/// Authenticode digest) have the same lengths but don't identify the file, so they are skipped.
fn file_hash(entity: &Map<String, Value>) -> Option<Indicator> {
    let kind = match field(entity, "Algorithm")?.to_ascii_uppercase().as_str() {
        "MD5" => IndicatorType::HashMd5,
        "SHA1" => IndicatorType::HashSha1,
        "SHA256" => IndicatorType::HashSha256,
        _ => return None,
    };
    clean_field(entity, "Value", kind)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::testing::{indicator, normalized_fixture, sorted, utc};
    use super::*;
    use crate::alert::{IndicatorType::*, Severity, Source};

    #[test]
    fn brute_force_tor_incident_normalizes_as_documented() {
        let (alert, indicators) =
            normalized_fixture(Source::Sentinel, "01_sentinel_brute_force_tor.json");
        assert_eq!(alert.title, "Brute force sign-in attempts from TOR network detected");
        assert_eq!(alert.severity, Severity::High);
        assert_eq!(alert.occurred_at, utc("2026-03-01T14:23:11Z"));
        assert_eq!(alert.tags, ["TOR", "BruteForce", "IdentityThreat"]);
        assert!(alert.description.is_some_and(|text| text.starts_with("Multiple failed sign-in")));
        let rule = alert.rule.expect("the incident names a rule");
        assert_eq!(rule.source_rule_id, "c9a7e4d2-3b1f-4e8a-9c6d-f0123456789a");
        assert_eq!(rule.name, "Brute force sign-in attempts from TOR network detected");
        assert_eq!(rule.mitre_tactics, ["TA0001", "TA0006"]);
        assert_eq!(rule.mitre_techniques, ["T1110"]);
        assert_eq!(rule.mitre_subtechniques, ["T1110.001"]);
        assert_eq!(
            indicators,
            sorted(&[
                (Ip, "185.220.101.34"),
                (Account, "j.martinez@contoso.com"),
                (Domain, "aad-signin-svc.contoso.com"),
            ])
        );
    }

    #[test]
    fn impossible_travel_incident_normalizes_as_documented() {
        let (alert, indicators) =
            normalized_fixture(Source::Sentinel, "04_sentinel_impossible_travel.json");
        assert_eq!(alert.title, "Impossible travel activity detected for user r.chen@contoso.com");
        assert_eq!(alert.severity, Severity::High);
        assert_eq!(alert.occurred_at, utc("2026-03-01T09:15:22Z"));
        assert_eq!(
            alert.tags,
            ["ImpossibleTravel", "IdentityThreat", "HighPrivilege", "GlobalAdmin"]
        );
        let rule = alert.rule.expect("the incident names a rule");
        assert_eq!(rule.source_rule_id, "e7f8a9b0-c1d2-4e3f-a5b6-c7d8e9f01234");
        assert_eq!(rule.name, alert.title);
        assert_eq!(rule.mitre_techniques, ["T1078"]);
        assert_eq!(rule.mitre_subtechniques, ["T1078.004"]);
        assert_eq!(
            indicators,
            sorted(&[
                (Ip, "91.234.56.78"),
                (Ip, "203.0.113.25"),
                (Account, "r.chen@contoso.com"),
                (Domain, "rchen-laptop.contoso.com"),
                (Url, "https://portal.azure.com"),
            ])
        );
    }

    #[test]
    fn short_sentinel_fixture_normalizes_as_documented() {
        let (alert, indicators) = normalized_fixture(Source::Sentinel, "sentinel_alert.json");
        assert_eq!(alert.title, "Suspicious PowerShell Execution on WORKSTATION-01");
        assert_eq!(alert.severity, Severity::High);
        assert_eq!(alert.occurred_at, utc("2024-01-15T10:29:50Z"));
        assert_eq!(alert.tags, ["powershell", "endpoint"]);
        let rule = alert.rule.expect("the incident names a rule");
        assert_eq!(rule.source_rule_id, "rule-uuid-abc123");
        assert_eq!(rule.name, "Suspicious PowerShell Execution on WORKSTATION-01");
        assert_eq!(rule.mitre_tactics, ["TA0002", "TA0005"]);
        assert!(rule.mitre_techniques.is_empty());
        assert_eq!(
            indicators,
            sorted(&[
                (Ip, "10.0.0.55"),
                (Ip, "185.220.101.32"),
                (Account, "jdoe@corp.com"),
                (Domain, "workstation-01.corp.com"),
                (HashSha256, "a1b2c3d4e5f6789012345678901234567890abcdef1234567890abcdef123456"),
                (HashMd5, "d41d8cd98f00b204e9800998ecf8427e"),
            ])
        );
    }

    #[test]
    fn missing_title_is_reported_under_properties() {
        let error = normalize(&json!({"properties": {"severity": "High"}})).err();
        assert_eq!(error.map(|error| error.field), Some("properties.title".to_owned()));
    }

    #[test]
    fn created_time_stands_in_for_a_missing_first_activity() {
        let incident = json!({"properties": {
            "title": "t",
            "firstActivityTimeUtc": "not a time",
            "createdTimeUtc": "2024-01-15T10:35:00Z"
        }});
        let alert = normalize(&incident).expect("incident normalizes");
        assert_eq!(alert.occurred_at, utc("2024-01-15T10:35:00Z"));
        assert_eq!(alert.severity, Severity::Pending);
        assert_eq!(alert.rule, None);
    }

    #[test]
    fn mail_entities_and_bare_account_names_yield_indicators() {
        let incident = json!({
            "properties": {"title": "t"},
            "Entities": [
                {"Type": "mailbox", "MailboxPrimaryAddress": "R.Chen@Contoso.com"},
                {
                    "Type": "mailMessage",
                    "Sender": "bad@evil.example",
                    "Recipient": "r.chen@contoso.com"
                },
                {"type": "account", "name": "svc_backup"},
                {
                    "Type": "account",
                    "Name": "ignored",
                    "UserPrincipalName": "svc@contoso.com",
                    "UPNSuffix": null
                },
                {"Type": "filehash", "Algorithm": "SHA256AC", "Value": "a".repeat(64)},
                {"Type": "host", "HostName": "FILESERVER03"}
            ]
        });
        let alert = normalize(&incident).expect("incident normalizes");
        let mut candidates = alert.candidates;
        candidates.sort();
        assert_eq!(
            candidates,
            [
                indicator(Email, "bad@evil.example"),
                indicator(Email, "r.chen@contoso.com"),
                indicator(Email, "r.chen@contoso.com"),
                indicator(Account, "svc@contoso.com"),
                indicator(Account, "svc_backup"),
            ]
        );
    }
}
