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
    store::indicator::upsert_and_link(&mut *db, job.alert_id, &job.indicators).await?;
    let details = serde_json::json!({ "indicator_count": job.indicators.len() });
    let finished = store::alert::finish_enrichment(
        &mut *db,
        job.alert_id,
        job.detection_rule.as_ref(),
        EnrichmentStatus::Enriched,
        &details,
    )
    .await?;
    if !finished {
        return Err(EnrichError::AlertGone(job.alert_id));
    }
    Ok(())
}
