//! Ingest: the synchronous part of the pipeline, run inside `POST /v1/ingest/{source}`.
//!
//! [`accept`] verifies the source's signature, parses and normalizes the payload, extracts
//! indicators (three passes, see [`crate::normalize::extract`]) and fingerprints the alert. The
//! [`AlertWriter`] then stores it with its raw payload and its `enrich_alert` job in one
//! transaction, or counts it as a duplicate of a recent identical alert, and wakes the workers.
//! `accept` returns only after that commit, so an `Accepted` alert is durable. Indicators and
//! the detection rule are written by the job's first step rather than here: that keeps the
//! ingest write small.

use std::time::Duration;

use chrono::Utc;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::alert::Source;
use crate::job::EnrichAlert;
use crate::normalize::{self, FieldMapping, InvalidPayload};
use crate::secret::Secret;
use crate::store::alert::NewAlert;

mod writer;

pub use writer::AlertWriter;

/// The default deduplication window (SPEC §2).
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Settings ingest needs, read once from the environment by the binary.
#[derive(Debug, Clone)]
pub struct IngestSettings {
    /// Alerts with the same fingerprint inside this window are counted, not stored again.
    /// Zero turns deduplication off.
    pub dedup_window: Duration,
    pub secrets: WebhookSecrets,
}

impl Default for IngestSettings {
    fn default() -> Self {
        IngestSettings { dedup_window: DEFAULT_DEDUP_WINDOW, secrets: WebhookSecrets::default() }
    }
}

/// Per-source webhook secrets. A source without one accepts unsigned payloads.
#[derive(Debug, Clone, Default)]
pub struct WebhookSecrets {
    pub sentinel: Option<Secret>,
    pub elastic: Option<Secret>,
    pub splunk: Option<Secret>,
}

impl WebhookSecrets {
    fn for_source(&self, source: Source) -> Option<&Secret> {
        match source {
            Source::Sentinel => self.sentinel.as_ref(),
            Source::Elastic => self.elastic.as_ref(),
            Source::Splunk => self.splunk.as_ref(),
            Source::Generic => None,
        }
    }
}

/// One payload as it arrived.
#[derive(Debug, Clone, Copy)]
pub struct Submission<'a> {
    pub source: Source,
    pub body: &'a [u8],
    /// The source's signature header, if the request had one.
    pub signature: Option<&'a str>,
    /// Who sent it (the API key's name), for the activity log.
    pub actor: &'a str,
}

/// Why a payload was refused. Nothing is stored for a refused payload.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The source has a webhook secret and the signature is missing or wrong.
    #[error("the {0} signature is missing or does not match the payload")]
    InvalidSignature(Source),
    /// The body is not JSON.
    #[error("the body is not valid JSON: {0}")]
    InvalidJson(#[source] serde_json::Error),
    /// The body is JSON but lacks a required field or has one of the wrong shape.
    #[error("the payload is not a valid {alert_source} alert: {cause}")]
    InvalidPayload { alert_source: Source, cause: InvalidPayload },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The result of an accepted payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    pub alert_id: Uuid,
    /// True when the payload was counted as a duplicate of `alert_id`.
    pub deduplicated: bool,
    pub duplicate_count: i32,
}

/// Accepts one payload; see the module documentation for the steps.
#[tracing::instrument(skip_all, fields(source.name = %submission.source), err(level = "debug"))]
pub async fn accept(
    writer: &AlertWriter,
    settings: &IngestSettings,
    mappings: &[FieldMapping],
    submission: Submission<'_>,
) -> Result<Accepted, IngestError> {
    let source = submission.source;
    verify_signature(settings.secrets.for_source(source), submission)?;
    let mut payload: serde_json::Value =
        serde_json::from_slice(submission.body).map_err(IngestError::InvalidJson)?;
    if contains(submission.body, br"\u0000") {
        replace_nul_characters(&mut payload);
    }
    // from_slice has already checked the body is UTF-8.
    let raw_payload = std::str::from_utf8(submission.body)
        .map_err(|_| IngestError::InvalidPayload { alert_source: source, cause: not_utf8() })?;
    let normalized = normalize::normalize(source, &payload)
        .map_err(|cause| IngestError::InvalidPayload { alert_source: source, cause })?;
    let indicators = normalize::extract(source, &payload, &normalized, mappings);
    let rule_id = normalized.rule.as_ref().map(|rule| rule.source_rule_id.as_str());
    let fingerprint = normalize::fingerprint(source, &normalized.title, rule_id, &indicators);

    let alert_id = Uuid::now_v7();
    let job = EnrichAlert {
        alert_id,
        indicators,
        detection_rule: normalized.rule,
        notify_agents: true,
        fresh_after: None,
    };
    let job_payload = serde_json::to_value(job).expect("job payloads serialize");
    let alert = NewAlert {
        alert_id,
        source,
        title: normalized.title,
        description: normalized.description,
        severity: normalized.severity,
        occurred_at: normalized.occurred_at.unwrap_or_else(Utc::now),
        tags: normalized.tags,
        raw_payload: raw_payload.to_owned(),
        fingerprint,
        job_payload,
        actor: submission.actor.to_owned(),
    };
    let stored = writer.write(alert).await?;
    Ok(Accepted {
        alert_id: stored.alert_id,
        deduplicated: stored.deduplicated,
        duplicate_count: stored.duplicate_count,
    })
}

/// PostgreSQL text cannot hold U+0000, which JSON can escape. Fields read from the payload get
/// U+FFFD in its place; the raw payload keeps the escape as it was sent.
fn replace_nul_characters(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::String(text) if text.contains('\0') => {
            *text = text.replace('\0', "\u{FFFD}");
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(replace_nul_characters),
        serde_json::Value::Object(fields) => {
            let keys_with_nul: Vec<String> =
                fields.keys().filter(|key| key.contains('\0')).cloned().collect();
            for key in keys_with_nul {
                if let Some(field) = fields.remove(&key) {
                    fields.insert(key.replace('\0', "\u{FFFD}"), field);
                }
            }
            fields.values_mut().for_each(replace_nul_characters);
        }
        _ => {}
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

fn not_utf8() -> InvalidPayload {
    InvalidPayload { field: "$".into(), problem: "the body must be UTF-8 text".into() }
}

/// Sentinel and Elastic sign the body with HMAC-SHA256 (hex, optionally prefixed `sha256=`);
/// Splunk sends the shared secret itself as a token. Both are compared in constant time.
fn verify_signature(
    secret: Option<&Secret>,
    submission: Submission<'_>,
) -> Result<(), IngestError> {
    let Some(secret) = secret else {
        return Ok(());
    };
    let source = submission.source;
    let presented =
        submission.signature.map(str::trim).ok_or(IngestError::InvalidSignature(source))?;
    let valid = match source {
        Source::Splunk => bool::from(presented.as_bytes().ct_eq(secret.expose().as_bytes())),
        Source::Sentinel | Source::Elastic | Source::Generic => {
            let hex_digest = presented.strip_prefix("sha256=").unwrap_or(presented);
            let Ok(expected) = hex::decode(hex_digest) else {
                return Err(IngestError::InvalidSignature(source));
            };
            let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
                .expect("HMAC takes keys of any length");
            mac.update(submission.body);
            mac.verify_slice(&expected).is_ok()
        }
    };
    if valid { Ok(()) } else { Err(IngestError::InvalidSignature(source)) }
}
