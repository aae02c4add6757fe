//! The job kinds the pipeline runs, each a thin call into a `domain` stage.

use domain::enrich::{self, EnrichError};
use domain::job::{self, EnrichAlert};

use crate::queue::{Handlers, JobContext, JobError};

/// Every job kind of the alert pipeline.
pub fn pipeline() -> Handlers {
    Handlers::new().register(job::ENRICH_ALERT, enrich_alert)
}

/// Runs the enrichment stage and completes the job in the stage's own transaction.
async fn enrich_alert(ctx: JobContext) -> Result<(), JobError> {
    let payload: EnrichAlert = ctx.payload()?;
    let mut tx = ctx.db.begin().await?;
    enrich::record(&mut tx, &payload).await.map_err(|error| match error {
        EnrichError::AlertGone(_) => JobError::GiveUp(error.to_string()),
        EnrichError::Db(db) => JobError::from(db),
    })?;
    ctx.complete_in(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}
