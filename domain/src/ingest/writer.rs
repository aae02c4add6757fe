//! The ingest writer: groups concurrent ingests into shared transactions.
//!
//! Each accepted alert is handed to the writer, which answers once the alert's transaction has
//! committed. A few writer tasks take turns at the queue; each takes every alert waiting at that
//! moment (up to [`MAX_BATCH`]) and writes them in one round trip and one commit. There is no
//! timer: an alert arriving at an idle writer is written at once, and under load the alerts that
//! arrive during one commit form the next batch, so one WAL flush serves many alerts.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::notify::JobWaker;
use crate::store::alert::{self as alert_store, NewAlert, Stored};

/// Most alerts written in one transaction: large enough to amortize a commit, small enough to
/// keep each transaction short.
const MAX_BATCH: usize = 32;
/// Transactions in flight at once: one commits while the next is being written.
const WRITERS: usize = 8;

type Reply = oneshot::Sender<Result<Stored, sqlx::Error>>;

/// A handle to the writer tasks; cheap to clone.
#[derive(Debug, Clone)]
pub struct AlertWriter {
    queue: mpsc::UnboundedSender<(NewAlert, Reply)>,
}

/// The writer tasks stopped, because the pool was closed.
#[derive(Debug, thiserror::Error)]
#[error("the alert writer has stopped")]
struct WriterStopped;

impl AlertWriter {
    /// Starts the writer tasks; they end when every handle is dropped.
    pub fn spawn(db: PgPool, waker: Arc<JobWaker>, dedup_window: Duration) -> AlertWriter {
        let (queue, waiting) = mpsc::unbounded_channel();
        let waiting = Arc::new(Mutex::new(waiting));
        for _ in 0..WRITERS {
            tokio::spawn(write_batches(db.clone(), waker.clone(), dedup_window, waiting.clone()));
        }
        AlertWriter { queue }
    }

    /// Writes one alert (or counts it as a duplicate) and returns once that is committed.
    pub async fn write(&self, alert: NewAlert) -> Result<Stored, sqlx::Error> {
        let (reply, written) = oneshot::channel();
        self.queue.send((alert, reply)).map_err(|_| stopped())?;
        written.await.map_err(|_| stopped())?
    }
}

fn stopped() -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::other(WriterStopped))
}

async fn write_batches(
    db: PgPool,
    waker: Arc<JobWaker>,
    dedup_window: Duration,
    waiting: Arc<Mutex<mpsc::UnboundedReceiver<(NewAlert, Reply)>>>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let taken = waiting.lock().await.recv_many(&mut batch, MAX_BATCH).await;
        if taken == 0 {
            return;
        }
        let (alerts, replies): (Vec<NewAlert>, Vec<Reply>) = batch.drain(..).unzip();
        match alert_store::insert_or_deduplicate(&db, &alerts, dedup_window).await {
            Ok(stored) => {
                if stored.iter().any(|s| !s.deduplicated) {
                    waker.wake();
                }
                for (reply, stored) in replies.into_iter().zip(stored) {
                    let _ = reply.send(Ok(stored));
                }
            }
            // Nothing of the batch was stored. Write its alerts one by one, so that one alert
            // the database refuses fails alone and every other gets its own answer.
            Err(_) if alerts.len() > 1 => {
                for (alert, reply) in alerts.into_iter().zip(replies) {
                    let result = alert_store::insert_or_deduplicate(&db, &[alert], dedup_window)
                        .await
                        .map(|mut stored| stored.remove(0));
                    if result.as_ref().is_ok_and(|stored| !stored.deduplicated) {
                        waker.wake();
                    }
                    let _ = reply.send(result);
                }
            }
            Err(error) => {
                if let Some(reply) = replies.into_iter().next() {
                    let _ = reply.send(Err(error));
                }
            }
        }
    }
}
