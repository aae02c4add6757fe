//! The job kinds the pipeline runs, each a thin call into a `domain` stage.

use std::sync::Arc;

use domain::enrich::{self, EnrichError, Enricher};
use domain::job::{self, EnrichAlert};

use crate::queue::{Handlers, JobContext, JobError};

/// Every job kind of the alert pipeline.
pub fn pipeline(enricher: Arc<Enricher>) -> Handlers {
    Handlers::new().register(job::ENRICH_ALERT, move |ctx| enrich_alert(ctx, enricher.clone()))
}

/// Runs the enrichment stage and completes the job in the stage's final transaction.
async fn enrich_alert(ctx: JobContext, enricher: Arc<Enricher>) -> Result<(), JobError> {
    let payload: EnrichAlert = ctx.payload()?;
    let mut tx =
        enrich::enrich_alert(&ctx.db, &enricher, &payload).await.map_err(|error| match error {
            EnrichError::AlertGone(_) => JobError::GiveUp(error.to_string()),
            EnrichError::Db(db) => JobError::from(db),
        })?;
    ctx.complete_in(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}
