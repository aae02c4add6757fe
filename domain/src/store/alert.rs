//! The `alert` table: the ingest write (insert or deduplicate, with its job, in one statement)
//! and the reads the API and the pipeline need.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::{PgExecutor, postgres::types::PgInterval};
use uuid::Uuid;

use crate::alert::{AlertStatus, EnrichmentStatus, Malice, Severity, Source};

/// A normalized alert ready to be stored.
#[derive(Debug)]
pub struct NewAlert<'a> {
    pub alert_id: Uuid,
    pub source: Source,
    pub title: &'a str,
    pub description: Option<&'a str>,
    pub severity: Severity,
    pub occurred_at: DateTime<Utc>,
    pub tags: &'a [String],
    pub raw_payload: &'a str,
    pub fingerprint: &'a [u8; 32],
}

/// What the ingest write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub alert_id: Uuid,
    pub duplicate_count: i32,
    pub deduplicated: bool,
}

/// Stores `alert` and its `enrich_alert` job, or, when an alert with the same fingerprint was
/// ingested within `dedup_window`, counts a duplicate on that one instead; returns after the
/// commit.
///
/// One round trip: the `ingest_alert` function (`migrations/…_ingest_function.sql`) runs as its
/// own transaction. It serializes identical alerts with an advisory lock on the fingerprint's
/// first 8 bytes (a collision only makes two unrelated ingests wait for each other), held until
/// commit, so two identical alerts posted at once store one alert and one duplicate.
pub async fn insert_or_deduplicate(
    db: impl PgExecutor<'_>,
    alert: &NewAlert<'_>,
    dedup_window: Duration,
    job_payload: &serde_json::Value,
    actor: &str,
) -> Result<Stored, sqlx::Error> {
    let window = PgInterval { months: 0, days: 0, microseconds: dedup_window.as_micros() as i64 };
    let mut lock_key = [0u8; 8];
    lock_key.copy_from_slice(&alert.fingerprint[..8]);
    let stored = sqlx::query!(
        r#"select alert_id as "alert_id!", duplicate_count as "duplicate_count!",
                  deduplicated as "deduplicated!"
           from ingest_alert($1, $2, $3, $4, $5, $6, $7::text::severity, $8, $9, $10, $11, $12,
                             $13, $14)"#,
        alert.alert_id,
        &alert.fingerprint[..],
        window,
        i64::from_be_bytes(lock_key),
        alert.title,
        alert.description,
        alert.severity.as_str(),
        alert.source.as_str(),
        alert.occurred_at,
        alert.tags,
        alert.raw_payload,
        crate::job::ENRICH_ALERT,
        job_payload,
        actor,
    )
    .fetch_one(db)
    .await?;
    Ok(Stored {
        alert_id: stored.alert_id,
        duplicate_count: stored.duplicate_count,
        deduplicated: stored.deduplicated,
    })
}

/// An alert as stored.
#[derive(Debug, Clone)]
pub struct AlertRow {
    pub alert_id: Uuid,
    pub title: String,
    pub description: Option<String>,
    pub severity: Severity,
    pub source_name: String,
    pub occurred_at: DateTime<Utc>,
    pub tags: Vec<String>,
    pub status: AlertStatus,
    pub close_classification: Option<String>,
    pub raw_payload: serde_json::Value,
    pub duplicate_count: i32,
    pub ingested_at: DateTime<Utc>,
    pub enriched_at: Option<DateTime<Utc>>,
    pub enrichment_status: EnrichmentStatus,
    pub malice: Malice,
    pub malice_override: Option<Malice>,
    pub detection_rule_id: Option<Uuid>,
}

pub async fn get(db: impl PgExecutor<'_>, alert_id: Uuid) -> Result<Option<AlertRow>, sqlx::Error> {
    sqlx::query_as!(
        AlertRow,
        r#"select alert_id, title, description, severity as "severity: Severity", source_name,
                  occurred_at, tags, status as "status: AlertStatus", close_classification,
                  raw_payload::jsonb as "raw_payload!", duplicate_count, ingested_at, enriched_at,
                  enrichment_status as "enrichment_status: EnrichmentStatus",
                  malice as "malice: Malice", malice_override as "malice_override: Malice",
                  detection_rule_id
           from alert where alert_id = $1"#,
        alert_id,
    )
    .fetch_optional(db)
    .await
}

/// The source an alert came from; `None` when the alert does not exist.
pub async fn source_name(
    db: impl PgExecutor<'_>,
    alert_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!("select source_name from alert where alert_id = $1", alert_id)
        .fetch_optional(db)
        .await
}

/// The payload exactly as it was received.
pub async fn raw_payload(
    db: impl PgExecutor<'_>,
    alert_id: Uuid,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar!(
        r#"select raw_payload::text as "raw!" from alert where alert_id = $1"#,
        alert_id
    )
    .fetch_optional(db)
    .await
}

/// Records the outcome of the enrichment stage: the detection rule, the verdict of the alert's
/// worst indicator, and the enrichment status.
pub async fn mark_enriched(
    db: impl PgExecutor<'_>,
    alert_id: Uuid,
    detection_rule_id: Option<Uuid>,
    status: EnrichmentStatus,
) -> Result<(), sqlx::Error> {
    sqlx::query!(
        r#"update alert
           set detection_rule_id = coalesce($2, detection_rule_id),
               enrichment_status = $3::text::enrichment_status,
               enriched_at = now(), updated_at = now(),
               malice = coalesce((select max(i.malice) from alert_indicator ai
                                  join indicator i using (indicator_id)
                                  where ai.alert_id = $1), 'Pending')
           where alert_id = $1"#,
        alert_id,
        detection_rule_id,
        status.as_str(),
    )
    .execute(db)
    .await?;
    Ok(())
}

pub async fn count(db: impl PgExecutor<'_>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar!(r#"select count(*) as "n!" from alert"#).fetch_one(db).await
}
