//! The PostgreSQL NOTIFY channels alertgraph uses, and [`JobWaker`]. Payloads are wake-ups,
//! never data: a listener that hears one re-reads the database, so a missed or coalesced
//! notification loses nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::Notify;

/// A job was enqueued (sent by the `job_notify` trigger in the enqueuing transaction).
pub const JOB_QUEUED: &str = "alertgraph_job_queued";
/// Configuration that processes cache (indicator mappings, providers, field extractions)
/// changed; sent by statement triggers on those tables.
pub const CONFIG_CHANGED: &str = "alertgraph_config_changed";
/// An API key was created, revoked or changed (the `api_key_notify` trigger); caches of
/// verified keys must be dropped.
pub const API_KEY_CHANGED: &str = "alertgraph_api_key_changed";
/// An alert was enriched or changed (the `alert_event_notify` trigger); the payload is an
/// [`AlertEvent`]. Feeds GraphQL subscriptions on every server.
pub const ALERT_EVENTS: &str = "alertgraph_alert_events";

/// What happened to an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertEventKind {
    /// Its enrichment run finished (its context and deliveries committed with it).
    Enriched,
    /// Its status, severity, tags, verdict, rule or duplicate count changed.
    Updated,
}

/// The payload of an [`ALERT_EVENTS`] notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub struct AlertEvent {
    pub kind: AlertEventKind,
    pub alert_id: uuid::Uuid,
}

/// How long the waker gathers commits before it sends one wake-up for all of them.
const COALESCE: Duration = Duration::from_millis(1);

/// Wakes workers for jobs whose transactions deferred their NOTIFY (ingest does, see
/// `migrations/…_ingest_function.sql`). Call [`JobWaker::wake`] after the commit: a rolled-back
/// ingest never wakes anyone, and a burst of commits costs one NOTIFY per millisecond or so
/// instead of one each.
#[derive(Debug)]
pub struct JobWaker {
    pending: AtomicBool,
    signal: Notify,
}

impl JobWaker {
    /// Starts the task that sends the wake-ups; it ends when the pool closes.
    pub fn spawn(db: PgPool) -> Arc<JobWaker> {
        let waker = Arc::new(JobWaker { pending: AtomicBool::new(false), signal: Notify::new() });
        tokio::spawn(send_wakeups(db, waker.clone()));
        waker
    }

    /// Asks for a wake-up soon. Cheap: one atomic swap, and a signal only for the first call of
    /// a burst.
    pub fn wake(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.signal.notify_one();
        }
    }
}

async fn send_wakeups(db: PgPool, waker: Arc<JobWaker>) {
    loop {
        waker.signal.notified().await;
        tokio::time::sleep(COALESCE).await;
        waker.pending.store(false, Ordering::Release);
        let sent = sqlx::query("select pg_notify($1, '')").bind(JOB_QUEUED).execute(&db).await;
        match sent {
            Ok(_) => {}
            Err(sqlx::Error::PoolClosed) => return,
            // The workers' poll tick picks the jobs up anyway.
            Err(error) => tracing::warn!(error = %error, "sending a job wake-up failed"),
        }
    }
}
