//! Reads deliveries and records their attempts in batches. Each delivery job waits for its own
//! answer (its attempt is committed before the job completes), but concurrent jobs share one
//! statement: at thousands of deliveries a second, two statements per delivery were most of the
//! database's work.

use std::collections::HashMap;

use sqlx::PgPool;
use uuid::Uuid;

use crate::batch::Batcher;
use crate::store::delivery::{self as delivery_store, Outgoing, RecordedAttempt};

/// The most deliveries one statement reads or records, and how many such statements of a kind
/// run at once.
const MAX_BATCH: usize = 128;
const PARALLEL_BATCHES: usize = 2;

/// A handle on the reading and recording tasks, which end when every handle is dropped.
#[derive(Debug, Clone)]
pub(super) struct DeliveryBatches {
    records: Batcher<RecordedAttempt, Result<(), sqlx::Error>>,
    reads: Batcher<Uuid, Option<Outgoing>>,
}

impl DeliveryBatches {
    pub(super) fn spawn(db: PgPool) -> DeliveryBatches {
        let records = Batcher::spawn(PARALLEL_BATCHES, MAX_BATCH, {
            let db = db.clone();
            move |attempts| record_batch(db.clone(), attempts)
        });
        let reads =
            Batcher::spawn(PARALLEL_BATCHES, MAX_BATCH, move |ids| read_batch(db.clone(), ids));
        DeliveryBatches { records, reads }
    }

    /// What delivering `delivery_id` needs; `None` when the delivery no longer exists.
    pub(super) async fn outgoing(
        &self,
        delivery_id: Uuid,
    ) -> Result<Option<Outgoing>, sqlx::Error> {
        self.reads.ask(delivery_id).await
    }

    /// Records one attempt and returns once it is committed.
    pub(super) async fn record(&self, attempt: RecordedAttempt) -> Result<(), sqlx::Error> {
        self.records.ask(attempt).await?
    }
}

/// Records attempts in one statement. If the database refuses the batch, each attempt is
/// recorded alone, so one bad attempt fails alone.
async fn record_batch(
    db: PgPool,
    attempts: Vec<RecordedAttempt>,
) -> Result<Vec<Result<(), sqlx::Error>>, sqlx::Error> {
    if delivery_store::record_attempts(&db, &attempts).await.is_ok() {
        return Ok(attempts.iter().map(|_| Ok(())).collect());
    }
    let mut recorded = Vec::with_capacity(attempts.len());
    for attempt in &attempts {
        recorded.push(delivery_store::record_attempts(&db, std::slice::from_ref(attempt)).await);
    }
    Ok(recorded)
}

/// Reads deliveries with one query; the same delivery asked twice gets its row twice.
async fn read_batch(db: PgPool, ids: Vec<Uuid>) -> Result<Vec<Option<Outgoing>>, sqlx::Error> {
    let rows = delivery_store::outgoing(&db, &ids).await?;
    let found: HashMap<Uuid, Outgoing> =
        rows.into_iter().map(|row| (row.delivery_id, row)).collect();
    Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
}
