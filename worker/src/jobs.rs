//! The job kinds the pipeline runs, each a thin call into a `domain` stage.

use std::sync::Arc;

use domain::dispatch::deliver::Delivered;
use domain::dispatch::{Deliverer, Dispatcher};
use domain::enrich::{self, EnrichError, Enricher};
use domain::job::{self, DeliverWebhook, EnrichAlert};

use crate::queue::{Handlers, JobContext, JobError};

/// Every job kind of the alert pipeline.
pub fn pipeline(
    enricher: Arc<Enricher>,
    dispatcher: Arc<Dispatcher>,
    deliverer: Arc<Deliverer>,
) -> Handlers {
    Handlers::new()
        .register(job::ENRICH_ALERT, move |ctx| {
            enrich_alert(ctx, enricher.clone(), dispatcher.clone())
        })
        .register(job::DELIVER_WEBHOOK, move |ctx| deliver_webhook(ctx, deliverer.clone()))
}

/// Runs the enrichment stage, contextualizes and dispatches, and completes the job in the
/// stage's final transaction.
async fn enrich_alert(
    ctx: JobContext,
    enricher: Arc<Enricher>,
    dispatcher: Arc<Dispatcher>,
) -> Result<(), JobError> {
    let payload: EnrichAlert = ctx.payload()?;
    let mut tx =
        enrich::enrich_alert(&ctx.db, &enricher, &dispatcher, &payload).await.map_err(|error| {
            match error {
                EnrichError::AlertGone(_) => JobError::GiveUp(error.to_string()),
                EnrichError::Db(db) => JobError::from(db),
            }
        })?;
    ctx.complete_in(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Makes one attempt at a delivery; the delivery's own schedule decides when to retry.
async fn deliver_webhook(ctx: JobContext, deliverer: Arc<Deliverer>) -> Result<(), JobError> {
    let payload: DeliverWebhook = ctx.payload()?;
    match deliverer.deliver(&ctx.db, payload.delivery_id).await? {
        Delivered::Delivered | Delivered::Skipped | Delivered::Failed(_) => Ok(()),
        Delivered::Retry { after, error } => Err(JobError::RetryAfter(error, after)),
    }
}
