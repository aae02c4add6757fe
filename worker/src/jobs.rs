//! The job kinds the pipeline runs, each a thin call into a `domain` stage.

use std::sync::{Arc, OnceLock};

use domain::dispatch::deliver::Delivered;
use domain::dispatch::{Deliverer, Dispatcher};
use domain::enrich::{self, EnrichError, Enricher, Finisher};
use domain::job::{self, DeliverWebhook, EnrichAlert};

use crate::queue::{Handlers, JobContext, JobError};

/// Every job kind of the alert pipeline.
pub fn pipeline(
    enricher: Arc<Enricher>,
    dispatcher: Arc<Dispatcher>,
    deliverer: Arc<Deliverer>,
) -> Handlers {
    // The finisher writes on the worker's pool, which the first job brings.
    let finisher: Arc<OnceLock<Finisher>> = Arc::default();
    Handlers::new()
        .register(job::ENRICH_ALERT, move |ctx| {
            let finisher =
                finisher.get_or_init(|| Finisher::spawn(&ctx.db, dispatcher.clone())).clone();
            enrich_alert(ctx, enricher.clone(), finisher)
        })
        .register(job::DELIVER_WEBHOOK, move |ctx| deliver_webhook(ctx, deliverer.clone()))
}

/// Runs the enrichment stage, contextualizes and dispatches, and completes the job in the
/// stage's final transaction.
async fn enrich_alert(
    ctx: JobContext,
    enricher: Arc<Enricher>,
    finisher: Finisher,
) -> Result<(), JobError> {
    let payload: EnrichAlert = ctx.payload()?;
    let lease = (ctx.job.job_id, ctx.job.lease_token);
    match enrich::enrich_alert(&ctx.db, &enricher, &finisher, &payload, lease).await {
        Ok(()) => {
            ctx.completed_elsewhere();
            Ok(())
        }
        Err(EnrichError::AlertGone(id)) => {
            Err(JobError::GiveUp(EnrichError::AlertGone(id).to_string()))
        }
        Err(EnrichError::Fenced) => Err(JobError::Fenced),
        Err(EnrichError::Db(db)) => Err(JobError::from(db)),
    }
}

/// Makes one attempt at a delivery; the delivery's own schedule decides when to retry.
async fn deliver_webhook(ctx: JobContext, deliverer: Arc<Deliverer>) -> Result<(), JobError> {
    let payload: DeliverWebhook = ctx.payload()?;
    match deliverer.deliver(&ctx.db, payload.delivery_id).await? {
        Delivered::Delivered | Delivered::Skipped | Delivered::Failed(_) => Ok(()),
        Delivered::Retry { after, error } => Err(JobError::RetryAfter(error, after)),
    }
}
