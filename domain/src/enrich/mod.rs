//! The enrichment stage, run by the `enrich_alert` job.
//!
//! It upserts and links the alert's indicators, looks up the enrichable ones with every
//! configured provider ([`run`]), then records the detection rule the alert names (created on
//! first sight, with its readable name and MITRE ids), the alert's verdict (its worst
//! indicator's) and its enrichment status, attaches its context documents and creates its
//! deliveries ([`crate::dispatch`]), and completes the job in that same transaction.

use sqlx::PgPool;

mod enrichable;
pub mod run;

pub use enrichable::is_enrichable;
pub use run::{EnrichOptions, Enricher};

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

/// Runs the stage and returns the transaction holding its final writes, uncommitted: the
/// caller completes its job in it (fenced by the job's lease) and commits, so the alert's status
/// and the job's completion commit together or not at all.
#[tracing::instrument(skip_all, fields(alert.id = %job.alert_id))]
pub async fn enrich_alert(
    db: &PgPool,
    enricher: &Enricher,
    dispatcher: &crate::dispatch::Dispatcher,
    job: &EnrichAlert,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, EnrichError> {
    let linked = enricher.link(job.alert_id, &job.indicators).await?;
    let summary = enricher.enrich(db, &linked).await?;
    let status = if summary.succeeded.is_empty() && !summary.failed.is_empty() {
        EnrichmentStatus::Failed
    } else {
        EnrichmentStatus::Enriched
    };
    let details = serde_json::json!({
        "indicator_count": job.indicators.len(),
        "succeeded": summary.succeeded,
        "failed": summary.failed,
        "cached": summary.cached,
    });
    let mut tx = db.begin().await?;
    let finished = store::alert::finish_enrichment(
        &mut *tx,
        job.alert_id,
        job.detection_rule.as_ref(),
        status,
        &details,
    )
    .await?;
    if !finished {
        return Err(EnrichError::AlertGone(job.alert_id));
    }
    dispatcher
        .contextualize_and_dispatch(
            &mut tx,
            job.alert_id,
            job.notify_agents,
            &summary.succeeded,
            &summary.failed,
        )
        .await?;
    Ok(tx)
}

/// Why an on-demand lookup was refused.
#[derive(Debug, thiserror::Error)]
pub enum EnrichIndicatorError {
    #[error("{0:?} is not a valid {1}")]
    InvalidValue(String, crate::alert::IndicatorType),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Enriches one (type, value) now, through the same cache as alert enrichment: the indicator is
/// created if it is new, every configured provider without a fresh result is asked, and the
/// indicator's stored results are returned. (GraphQL's `enrichIndicator` calls this.)
pub async fn enrich_indicator(
    db: &PgPool,
    enricher: &Enricher,
    kind: crate::alert::IndicatorType,
    value: &str,
) -> Result<Vec<store::enrichment::ResultRow>, EnrichIndicatorError> {
    let indicator = crate::indicator::clean(kind, value)
        .ok_or_else(|| EnrichIndicatorError::InvalidValue(value.to_owned(), kind))?;
    let indicator_id = store::indicator::upsert(db, &indicator).await?;
    enricher.enrich(db, &[(indicator_id, indicator)]).await?;
    Ok(store::enrichment::for_indicator(db, indicator_id).await?)
}
