//! The enrichment stage, the first step of the `enrich_alert` job.
//!
//! Today it records what ingest found: it upserts the alert's indicators and links them, creates
//! the detection rule the alert names (readable name, MITRE ids from the payload), and marks the
//! alert enriched with the verdict of its worst indicator. Provider lookups join this stage in
//! the enrichment engine.

use sqlx::PgConnection;

use crate::alert::EnrichmentStatus;
use crate::job::EnrichAlert;
use crate::store;

/// Why the stage could not run.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    /// The job names an alert that no longer exists (deleted after ingest). Not retryable.
    #[error("alert {0} does not exist")]
    AlertGone(uuid::Uuid),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Runs the stage inside the caller's transaction, which also completes the job, so the
/// stage's writes and the job's completion commit together or not at all.
#[tracing::instrument(skip_all, fields(alert.id = %job.alert_id))]
pub async fn record(db: &mut PgConnection, job: &EnrichAlert) -> Result<(), EnrichError> {
    let source_name = store::alert::source_name(&mut *db, job.alert_id)
        .await?
        .ok_or(EnrichError::AlertGone(job.alert_id))?;
    store::indicator::upsert_and_link(db, job.alert_id, &job.indicators).await?;
    let detection_rule_id = match &job.detection_rule {
        Some(seed) => Some(store::rule::ensure(&mut *db, &source_name, seed).await?),
        None => None,
    };
    store::alert::mark_enriched(
        &mut *db,
        job.alert_id,
        detection_rule_id,
        EnrichmentStatus::Enriched,
    )
    .await?;
    store::activity::record(
        &mut *db,
        Some(job.alert_id),
        "alert.enriched",
        "worker",
        &serde_json::json!({ "indicator_count": job.indicators.len() }),
    )
    .await?;
    Ok(())
}
