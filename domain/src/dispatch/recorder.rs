//! Records delivery attempts in batches. Each delivery job waits until its attempt is committed
//! (so the job completes only after the attempt is on record), but concurrent jobs share one
//! statement and one commit: at thousands of deliveries a second, a statement per attempt was
//! most of the database's work.

use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::store::delivery::{self as delivery_store, RecordedAttempt};

/// The most attempts one statement records.
const MAX_BATCH: usize = 128;

type Reply = oneshot::Sender<Result<(), sqlx::Error>>;

/// A handle on the recording task, which ends when every handle is dropped.
#[derive(Debug, Clone)]
pub(super) struct AttemptRecorder {
    queue: mpsc::UnboundedSender<(RecordedAttempt, Reply)>,
}

/// The recording task stopped, because the pool was closed.
#[derive(Debug, thiserror::Error)]
#[error("the delivery attempt recorder has stopped")]
struct RecorderStopped;

impl AttemptRecorder {
    pub(super) fn spawn(db: PgPool) -> AttemptRecorder {
        let (queue, waiting) = mpsc::unbounded_channel();
        tokio::spawn(record_batches(db, waiting));
        AttemptRecorder { queue }
    }

    /// Records one attempt and returns once it is committed.
    pub(super) async fn record(&self, attempt: RecordedAttempt) -> Result<(), sqlx::Error> {
        let (reply, recorded) = oneshot::channel();
        self.queue.send((attempt, reply)).map_err(|_| stopped())?;
        recorded.await.map_err(|_| stopped())?
    }
}

fn stopped() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(RecorderStopped))
}

/// Takes whatever attempts are waiting (up to [`MAX_BATCH`]) and records them in one
/// statement. If the database refuses the batch, each attempt is recorded alone, so one bad
/// attempt fails alone.
async fn record_batches(
    db: PgPool,
    mut waiting: mpsc::UnboundedReceiver<(RecordedAttempt, Reply)>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (attempts, replies): (Vec<RecordedAttempt>, Vec<Reply>) = batch.drain(..).unzip();
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
