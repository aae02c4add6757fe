//! `alertgraph up --demo` (SPEC §10): a simulated threat-intelligence provider and sample
//! detection rules, documents and alerts, so that a new installation shows enriched,
//! contextualized alerts within seconds and without any provider account.
//!
//! The provider is an ordinary HTTP provider, stored, enriched with and edited like any other;
//! only its answers are simulated, by the server's `GET /demo/intel` ([`intel`]). Its verdicts
//! are deterministic: a small simulated feed names the sample alerts' indicators, private
//! addresses are internal, and any other value is scored from a hash of its text, so alerts
//! people post themselves get stable, plausible verdicts too.

use serde::Deserialize;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::alert::IndicatorType;
use crate::context::{self, DocumentError, DocumentInput};
use crate::detection_rule::{self, RuleError, RuleInput};
use crate::enrich::is_enrichable;
use crate::indicator::Indicator;
use crate::provider::registry::{self, ProviderUpdate, RegistryError};

/// The simulated provider's name.
pub const PROVIDER_NAME: &str = "demo_intel";

/// Who the activity log says wrote the sample content.
pub const ACTOR: &str = "demo";

/// The sample rules, documents and alerts (alerts in the generic webhook format).
#[derive(Deserialize)]
struct SeedFile {
    rules: Vec<RuleInput>,
    documents: Vec<DocumentInput>,
    alerts: Vec<Value>,
}

fn seed_file() -> SeedFile {
    serde_json::from_str(include_str!("seed.json")).expect("demo/seed.json is valid (tested)")
}

/// The sample alerts, as generic webhook payloads (`POST /v1/ingest/generic`).
pub fn sample_alerts() -> Vec<Value> {
    seed_file().alerts
}

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the demo provider: {0}")]
    Provider(#[from] RegistryError),
    #[error("a demo detection rule: {0}")]
    Rule(#[from] RuleError),
    #[error("a demo context document: {0}")]
    Document(#[from] DocumentError),
}

/// Seeds the demo provider, rules and documents, once: returns `true` when it did (a first
/// `up --demo` on this database), `false` when the provider was there already, in which case
/// only its base URL is pointed at `base_url` (the server's address may have changed).
pub async fn seed(db: &PgPool, base_url: &str) -> Result<bool, DemoError> {
    match registry::find(db, PROVIDER_NAME).await {
        Ok(current) => {
            if current.spec.base_url.as_deref() != Some(base_url) {
                let update = ProviderUpdate {
                    base_url: Some(Some(base_url.to_owned())),
                    ..Default::default()
                };
                registry::update(db, PROVIDER_NAME, &update, ACTOR).await?;
            }
            Ok(false)
        }
        Err(RegistryError::NotFound(_)) => {
            let (provider, extractions) = provider_definition(base_url);
            match registry::import(db, &provider, Some(&extractions), ACTOR).await {
                Ok(_) => {}
                // Another `up --demo` on this database seeded it first.
                Err(RegistryError::Duplicate(_)) => return Ok(false),
                Err(error) => return Err(error.into()),
            }
            let seed = seed_file();
            for rule in &seed.rules {
                match detection_rule::create(db, rule, ACTOR).await {
                    Ok(_) | Err(RuleError::Duplicate(..)) => {}
                    Err(error) => return Err(error.into()),
                }
            }
            for document in &seed.documents {
                context::create(db, document, ACTOR).await?;
            }
            Ok(true)
        }
        Err(error) => Err(error.into()),
    }
}

/// The provider, in the importable format, and its field extractions: it answers for every
/// indicator type.
pub fn provider_definition(base_url: &str) -> (Value, Value) {
    let types: Vec<&str> = IndicatorType::ALL.iter().map(|kind| kind.as_str()).collect();
    let provider = json!({
        "provider_name": PROVIDER_NAME,
        "display_name": "Demo intelligence (simulated)",
        "description": "Simulated threat intelligence served by alertgraph itself for `up --demo`: \
            deterministic scores, not real data. Delete it, and add real providers, when you are done.",
        "supported_indicator_types": types,
        "auth_type": "none",
        "base_url": base_url,
        "http_config": {"steps": [{
            "name": "lookup",
            "method": "GET",
            "url": "{{base_url}}/demo/intel",
            "query": {"type": "{{indicator.type}}", "value": "{{indicator.value}}"},
            "headers": {"Accept": "application/json"},
            "timeout_seconds": 10,
            "expected_status": [200]
        }]},
        "malice_rules": {
            "rules": [
                {"field": "score", "operator": ">=", "value": 80, "verdict": "Malicious"},
                {"field": "score", "operator": ">=", "value": 50, "verdict": "Suspicious"}
            ],
            "default_verdict": "Benign",
            "not_found_verdict": "Pending"
        },
        "default_cache_ttl_seconds": 3600
    });
    let fields = [
        ("score", "score", "int", "Simulated maliciousness score, 0 to 100"),
        ("verdict", "verdict", "string", "harmless, suspicious or malicious"),
        ("categories", "categories", "list", "What the simulated feed says the value is"),
        ("reports", "reports", "int", "Simulated reports of the value"),
        ("country", "country", "string", "Simulated country (network indicators)"),
        ("asn", "asn", "string", "Simulated autonomous system (network indicators)"),
    ];
    let extractions: Vec<Value> = IndicatorType::ALL
        .iter()
        .flat_map(|kind| {
            fields.iter().map(move |(path, key, value_type, description)| {
                json!({
                    "provider_name": PROVIDER_NAME,
                    "indicator_type": kind.as_str(),
                    "source_path": path,
                    "target_key": key,
                    "value_type": value_type,
                    "description": description
                })
            })
        })
        .collect();
    (provider, Value::Array(extractions))
}

/// The simulated feed: the sample alerts' indicators, with their score and categories.
const FEED: &[(&str, u8, &[&str])] = &[
    ("203.0.113.66", 96, &["c2", "cobalt-strike"]),
    ("update-check.example.net", 91, &["c2", "dga"]),
    ("http://login-microsoft.example.org/owa/auth.php", 94, &["phishing", "credential-theft"]),
    ("login-microsoft.example.org", 88, &["phishing"]),
    ("44d88612fea8a8f36de82e1278abb02f", 100, &["malware", "test-file"]),
    ("198.51.100.23", 72, &["scanner", "brute-force"]),
    ("198.51.100.24", 64, &["scanner"]),
    ("payroll-notice@example.org", 83, &["phishing-sender"]),
    ("cdn.example.com", 3, &["cdn"]),
];

const COUNTRIES: [&str; 8] = ["NL", "US", "DE", "RU", "CN", "BR", "SG", "FR"];

/// What the simulated provider answers for `value` of type `kind`.
pub fn intel(kind: IndicatorType, value: &str) -> Value {
    let key = value.trim().to_lowercase();
    let hash = fnv1a(&key);
    let (score, categories): (u8, Vec<&str>) = match FEED.iter().find(|(known, ..)| *known == key) {
        Some((_, score, categories)) => (*score, categories.to_vec()),
        // What alertgraph never sends to a provider: private addresses, internal names.
        None if !is_enrichable(&Indicator { kind, value: key.clone() }) => (0, vec!["internal"]),
        None => scored(hash),
    };
    let verdict = match score {
        80.. => "malicious",
        50.. => "suspicious",
        _ => "harmless",
    };
    let mut answer = json!({
        "indicator": {"type": kind.as_str(), "value": value},
        "score": score,
        "verdict": verdict,
        "categories": categories,
        "reports": u64::from(score) * 3 + hash % 7,
        "simulated": true,
        "notice": "alertgraph demo intelligence: simulated, not real threat data"
    });
    if matches!(kind, IndicatorType::Ip | IndicatorType::Domain | IndicatorType::Url)
        && !categories.contains(&"internal")
    {
        answer["country"] = json!(COUNTRIES[(hash % COUNTRIES.len() as u64) as usize]);
        answer["asn"] = json!(format!("AS{}", 64_496 + hash % 16));
    }
    answer
}

/// A score for a value the feed does not name: three in four harmless, the rest suspicious or
/// malicious.
fn scored(hash: u64) -> (u8, Vec<&'static str>) {
    let band = (hash % 100) as u8;
    let step = ((hash >> 8) % 10) as u8;
    match band {
        0..75 => (step * 4, Vec::new()),
        75..90 => (50 + step * 3, vec!["suspicious-activity"]),
        _ => (80 + step * 2, vec!["malware"]),
    }
}

/// FNV-1a: a stable hash, the same on every machine and release.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::{FieldExtraction, ProviderSpec, validate_extractions};

    #[test]
    fn the_provider_and_its_extractions_are_valid() {
        let (provider, extractions) = provider_definition("http://127.0.0.1:8000");
        let spec = ProviderSpec::from_json(&provider).expect("the provider is valid");
        let extractions =
            FieldExtraction::list_from_json(&extractions, &spec).expect("extractions parse");
        validate_extractions(&spec, &extractions).expect("extractions are valid");
    }

    #[test]
    fn the_seed_is_valid_and_its_alerts_normalize() {
        let seed = seed_file();
        for rule in &seed.rules {
            rule.validate().expect("a demo rule is valid");
        }
        for document in &seed.documents {
            document.validate().expect("a demo document is valid");
        }
        for alert in &seed.alerts {
            crate::normalize::normalize(crate::alert::Source::Generic, alert)
                .expect("a demo alert normalizes");
        }
    }

    #[test]
    fn verdicts_are_stable_and_follow_the_feed() {
        assert_eq!(intel(IndicatorType::Ip, "203.0.113.66")["verdict"], "malicious");
        assert_eq!(intel(IndicatorType::Ip, "198.51.100.23")["verdict"], "suspicious");
        assert_eq!(intel(IndicatorType::Ip, "10.1.2.3")["categories"], json!(["internal"]));
        assert_eq!(intel(IndicatorType::Domain, "CDN.example.com ")["score"], 3);
        let unknown = intel(IndicatorType::Domain, "some-unlisted.example");
        assert_eq!(unknown, intel(IndicatorType::Domain, "some-unlisted.example"));
        assert!(unknown["score"].as_u64().is_some_and(|score| score <= 100));
    }
}
