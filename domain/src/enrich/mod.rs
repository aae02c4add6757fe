//! The enrichment stage, run by the `enrich_alert` job.
//!
//! It upserts and links the alert's indicators, looks up the enrichable ones with every
//! configured provider ([`run`]), then records the detection rule the alert names (created on
//! first sight, with its readable name and MITRE ids), the alert's verdict (its worst
//! indicator's) and its enrichment status, attaches its context documents and creates its
//! deliveries ([`crate::dispatch`]), and completes the job in that same transaction, which it
//! shares with other alerts finishing at the same time ([`Finisher`]).

use std::sync::Arc;

use sqlx::PgPool;
use uuid::Uuid;

mod enrichable;
pub mod run;

pub use enrichable::is_enrichable;
pub use run::{EnrichOptions, Enricher};

use crate::alert::EnrichmentStatus;
use crate::batch::Batcher;
use crate::dispatch::Dispatcher;
use crate::job::EnrichAlert;
use crate::store;

/// Why the stage could not run.
#[derive(Debug, thiserror::Error)]
pub enum EnrichError {
    /// The job names an alert that no longer exists (deleted after ingest). Not retryable.
    #[error("alert {0} does not exist")]
    AlertGone(Uuid),
    /// Another worker holds the job now (this one's lease ran out): nothing was written.
    #[error("the job's lease was lost to another worker")]
    Fenced,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Runs the stage for the job `lease` holds (its id and fencing token) and completes the job in
/// the transaction of its final writes, which [`Finisher`] shares with other alerts': the
/// alert's status and the job's completion commit together or not at all.
#[tracing::instrument(skip_all, fields(alert.id = %job.alert_id))]
pub async fn enrich_alert(
    db: &PgPool,
    enricher: &Enricher,
    finisher: &Finisher,
    job: &EnrichAlert,
    lease: (i64, Uuid),
) -> Result<(), EnrichError> {
    let linked = enricher.link(job.alert_id, &job.indicators).await?;
    let summary = enricher.enrich(db, &linked, job.fresh_after).await?;
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
    let finish = Finish { job: job.clone(), status, details, summary, lease };
    match finisher.batches.ask(finish).await?? {
        Finished::Done => Ok(()),
        Finished::AlertGone => Err(EnrichError::AlertGone(job.alert_id)),
        Finished::Fenced => Err(EnrichError::Fenced),
    }
}

/// The most alerts whose final writes share one transaction, and how many such transactions
/// run at once (each writes its alerts one statement after another).
const MAX_FINISH_BATCH: usize = 32;
const PARALLEL_FINISHES: usize = 4;

/// Writes the stage's outcome for many alerts in one transaction: each alert's verdict, status
/// and detection rule, its context documents and deliveries ([`Dispatcher`]), and its job's
/// completion. A commit per batch, not per alert: at hundreds of alerts a second, the begin,
/// completion and commit of each alert were most of its round trips. If the batch fails, or
/// one of its jobs was fenced, each alert is retried in a transaction of its own, so one
/// alert's failure is its own.
#[derive(Debug, Clone)]
pub struct Finisher {
    batches: Batcher<Finish, Result<Finished, sqlx::Error>>,
}

/// One alert's final writes.
#[derive(Debug)]
struct Finish {
    job: EnrichAlert,
    status: EnrichmentStatus,
    details: serde_json::Value,
    summary: run::RunSummary,
    lease: (i64, Uuid),
}

/// What became of one alert's final writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Finished {
    Done,
    AlertGone,
    Fenced,
}

impl Finisher {
    /// Starts the task that writes batches on `db`; it ends when every handle is dropped.
    pub fn spawn(db: &PgPool, dispatcher: Arc<Dispatcher>) -> Finisher {
        let db = db.clone();
        let batches = Batcher::spawn(PARALLEL_FINISHES, MAX_FINISH_BATCH, move |batch| {
            finish_batch(db.clone(), dispatcher.clone(), batch)
        });
        Finisher { batches }
    }
}

async fn finish_batch(
    db: PgPool,
    dispatcher: Arc<Dispatcher>,
    batch: Vec<Finish>,
) -> Result<Vec<Result<Finished, sqlx::Error>>, sqlx::Error> {
    // Every batch upserts (and so locks) rules in one order, so two batches naming the same
    // rules cannot deadlock each other.
    let mut batch: Vec<(usize, Finish)> = batch.into_iter().enumerate().collect();
    batch.sort_by_cached_key(|(_, f)| {
        (f.job.detection_rule.as_ref().map(|r| r.source_rule_id.clone()), f.job.alert_id)
    });
    let (asked, batch): (Vec<usize>, Vec<Finish>) = batch.into_iter().unzip();

    let outcomes: Vec<Result<Finished, sqlx::Error>> =
        match finish_together(&db, &dispatcher, &batch).await {
            Ok(Some(outcomes)) => outcomes.into_iter().map(Ok).collect(),
            // A job of the batch was fenced, or a write failed: each alert alone.
            Ok(None) | Err(_) => {
                let mut outcomes = Vec::with_capacity(batch.len());
                for finish in &batch {
                    let alone = finish_together(&db, &dispatcher, std::slice::from_ref(finish));
                    outcomes.push(alone.await.map(|outcome| match outcome {
                        Some(mut one) => one.remove(0),
                        None => Finished::Fenced,
                    }));
                }
                outcomes
            }
        };
    // Back to the order the alerts were asked in.
    let mut answers: Vec<(usize, Result<Finished, sqlx::Error>)> =
        asked.into_iter().zip(outcomes).collect();
    answers.sort_by_key(|(at, _)| *at);
    Ok(answers.into_iter().map(|(_, outcome)| outcome).collect())
}

/// Writes `batch` in one transaction; `None`, with nothing written, when one of its jobs was
/// fenced.
async fn finish_together(
    db: &PgPool,
    dispatcher: &Dispatcher,
    batch: &[Finish],
) -> Result<Option<Vec<Finished>>, sqlx::Error> {
    let mut tx = db.begin().await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    let mut jobs = Vec::with_capacity(batch.len());
    for finish in batch {
        let job = &finish.job;
        let facts = store::alert::finish_enrichment(
            &mut *tx,
            job.alert_id,
            job.detection_rule.as_ref(),
            finish.status,
            &finish.details,
        )
        .await?;
        let Some(facts) = facts else {
            outcomes.push(Finished::AlertGone);
            continue;
        };
        dispatcher
            .contextualize_and_dispatch(
                &mut tx,
                job.alert_id,
                &facts,
                job.notify_agents,
                &finish.summary.succeeded,
                &finish.summary.failed,
            )
            .await?;
        jobs.push(finish.lease);
        outcomes.push(Finished::Done);
    }
    let completed = store::job::complete_many(&mut *tx, &jobs).await?;
    if completed.len() < jobs.len() {
        tx.rollback().await?;
        return Ok(None);
    }
    tx.commit().await?;
    Ok(Some(outcomes))
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
    enricher.enrich(db, &[(indicator_id, indicator)], None).await?;
    Ok(store::enrichment::for_indicator(db, indicator_id).await?)
}
