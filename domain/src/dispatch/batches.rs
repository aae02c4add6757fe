//! Reads deliveries and records their attempts in batches. Each delivery job waits for its own
//! answer (its attempt is committed before the job completes), but concurrent jobs share one
//! statement: at thousands of deliveries a second, two statements per delivery were most of the
//! database's work.

use std::collections::HashMap;

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::store::delivery::{self as delivery_store, Outgoing, RecordedAttempt};

/// The most deliveries one statement reads or records.
const MAX_BATCH: usize = 128;

type Reply<T> = oneshot::Sender<Result<T, sqlx::Error>>;
type Queue<T, R> = mpsc::UnboundedSender<(T, Reply<R>)>;

/// A handle on the reading and recording tasks, which end when every handle is dropped.
#[derive(Debug, Clone)]
pub(super) struct DeliveryBatches {
    records: Queue<RecordedAttempt, ()>,
    reads: Queue<Uuid, Option<Outgoing>>,
}

/// The batching tasks stopped, because the pool was closed.
#[derive(Debug, thiserror::Error)]
#[error("the delivery batching tasks have stopped")]
struct BatchesStopped;

impl DeliveryBatches {
    pub(super) fn spawn(db: PgPool) -> DeliveryBatches {
        let (records, waiting) = mpsc::unbounded_channel();
        let (reads, asked) = mpsc::unbounded_channel();
        tokio::spawn(record_batches(db.clone(), waiting));
        tokio::spawn(read_batches(db, asked));
        DeliveryBatches { records, reads }
    }

    /// What delivering `delivery_id` needs; `None` when the delivery no longer exists.
    pub(super) async fn outgoing(
        &self,
        delivery_id: Uuid,
    ) -> Result<Option<Outgoing>, sqlx::Error> {
        ask(&self.reads, delivery_id).await
    }

    /// Records one attempt and returns once it is committed.
    pub(super) async fn record(&self, attempt: RecordedAttempt) -> Result<(), sqlx::Error> {
        ask(&self.records, attempt).await
    }
}

/// Hands `item` to a batching task and waits for its answer.
async fn ask<T, R>(queue: &Queue<T, R>, item: T) -> Result<R, sqlx::Error> {
    let stopped = || sqlx::Error::Io(std::io::Error::other(BatchesStopped));
    let (reply, answered) = oneshot::channel();
    queue.send((item, reply)).map_err(|_| stopped())?;
    answered.await.map_err(|_| stopped())?
}

/// Takes whatever attempts are waiting (up to [`MAX_BATCH`]) and records them in one
/// statement. If the database refuses the batch, each attempt is recorded alone, so one bad
/// attempt fails alone.
async fn record_batches(
    db: PgPool,
    mut waiting: mpsc::UnboundedReceiver<(RecordedAttempt, Reply<()>)>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (attempts, replies): (Vec<RecordedAttempt>, Vec<Reply<()>>) = batch.drain(..).unzip();
        if delivery_store::record_attempts(&db, &attempts).await.is_ok() {
            for reply in replies {
                let _ = reply.send(Ok(()));
            }
            continue;
        }
        for (attempt, reply) in attempts.into_iter().zip(replies) {
            let recorded = delivery_store::record_attempts(&db, std::slice::from_ref(&attempt));
            let _ = reply.send(recorded.await);
        }
    }
}

/// Takes whatever reads are waiting (up to [`MAX_BATCH`]) and answers them with one query.
async fn read_batches(
    db: PgPool,
    mut asked: mpsc::UnboundedReceiver<(Uuid, Reply<Option<Outgoing>>)>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while asked.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let ids: Vec<Uuid> = batch.iter().map(|(id, _)| *id).collect();
        match delivery_store::outgoing(&db, &ids).await {
            Ok(rows) => {
                let found: HashMap<Uuid, Outgoing> =
                    rows.into_iter().map(|row| (row.delivery_id, row)).collect();
                for (id, reply) in batch.drain(..) {
                    // The same delivery asked twice in a batch gets its row twice.
                    let _ = reply.send(Ok(found.get(&id).cloned()));
                }
            }
            Err(error) => {
                let message = error.to_string();
                for (_, reply) in batch.drain(..) {
                    let _ =
                        reply.send(Err(sqlx::Error::Io(std::io::Error::other(message.clone()))));
                }
            }
        }
    }
}
