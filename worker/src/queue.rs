//! The worker loop: claim due jobs in batches, run them concurrently, finish them under their
//! fencing token, and keep the queue healthy (lease renewal, rescue of expired leases, pruning).
//!
//! Wake-ups come from LISTEN on [`domain::notify::JOB_QUEUED`]; a poll tick is the fallback for
//! notifications lost while the listener reconnects. A running job holds no database lock: it
//! holds a lease that a heartbeat renews every third of its length. If the worker dies, the
//! lease runs out, any worker's maintenance tick requeues the job, and the dead worker's token
//! no longer matches, so a late completion from it is refused.
//!
//! Jobs whose handler did not complete them in its own transaction are completed in batches by
//! one completer task: a commit per batch rather than per job is what lets a worker drain
//! thousands of small jobs a second.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::job::{ClaimedJob, retry_delay};
use domain::store::job::{self as job_store, Failure, FinishError};
use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::postgres::PgListener;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tracing::field::Empty;
use uuid::Uuid;

/// How a worker behaves. [`WorkerConfig::default`] suits production.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Names this worker in `job.claimed_by`, for people reading the queue.
    pub worker_id: String,
    /// Jobs run at the same time. Enrichment is mostly waiting on providers, so this is well
    /// above the core count.
    pub concurrency: usize,
    /// How long a claim lasts without renewal. Short enough that a dead worker's jobs resume
    /// quickly, long enough that a stalled database round trip does not expire a live lease.
    pub lease: Duration,
    /// Fallback wake-up for when a notification is missed.
    pub poll_interval: Duration,
    /// How often to rescue expired leases and prune finished jobs.
    pub maintenance_interval: Duration,
    /// How long succeeded jobs stay visible before they are pruned.
    pub succeeded_retention: Duration,
    /// How long dead jobs stay visible (and retryable) before they are pruned.
    pub dead_retention: Duration,
    /// On shutdown, how long running jobs may take to finish before their claims are released.
    pub shutdown_grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            worker_id: format!("worker-{}", Uuid::new_v4().simple()),
            concurrency: 64,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(5),
            maintenance_interval: Duration::from_secs(10),
            succeeded_retention: Duration::from_secs(15 * 60),
            dead_retention: Duration::from_secs(30 * 24 * 3600),
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// How a job run ended badly. The queue decides on backoff and attempt limits; a handler only
/// says whether trying again can help.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// A transient failure (database hiccup, provider timeout): retry with backoff.
    #[error("{0}")]
    Retry(String),
    /// A transient failure whose handler knows when to try again (a delivery's schedule).
    #[error("{0}")]
    RetryAfter(String, Duration),
    /// A permanent failure (malformed payload, data gone): move the job to `dead`.
    #[error("{0}")]
    GiveUp(String),
    /// This worker's lease was taken over; its work must be discarded.
    #[error("the job's lease was lost to another worker")]
    Fenced,
}

impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> Self {
        JobError::Retry(format!("database error: {error}"))
    }
}

impl From<FinishError> for JobError {
    fn from(error: FinishError) -> Self {
        match error {
            FinishError::Fenced { .. } => JobError::Fenced,
            FinishError::Db(db) => JobError::from(db),
        }
    }
}

/// What a handler gets: the pool, the claimed job, and a way to complete the job inside the
/// handler's own transaction.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub db: PgPool,
    pub job: ClaimedJob,
    completed: Arc<AtomicBool>,
}

impl JobContext {
    /// Decodes the job's payload; a payload that does not decode can never succeed.
    pub fn payload<T: serde::de::DeserializeOwned>(&self) -> Result<T, JobError> {
        serde_json::from_value(self.job.payload.clone()).map_err(|error| {
            JobError::GiveUp(format!("malformed {} payload: {error}", self.job.kind))
        })
    }

    /// Completes the job in `tx`, so the stage's writes and the completion commit together.
    /// Fails with [`JobError::Fenced`] if another worker has taken the job over, in which case
    /// the caller must not commit.
    pub async fn complete_in(&self, tx: &mut PgConnection) -> Result<(), JobError> {
        job_store::complete(tx, self.job.job_id, self.job.lease_token).await?;
        self.completed.store(true, Ordering::Release);
        Ok(())
    }

    /// Tells the queue the handler has completed the job itself, fenced by the job's
    /// `lease_token`, in a transaction that committed (one shared with other jobs' writes).
    pub fn completed_elsewhere(&self) {
        self.completed.store(true, Ordering::Release);
    }
}

type Handler = Arc<dyn Fn(JobContext) -> BoxFuture<'static, Result<(), JobError>> + Send + Sync>;

/// The handler for each job kind.
#[derive(Clone, Default)]
pub struct Handlers {
    by_kind: HashMap<String, Handler>,
}

impl std::fmt::Debug for Handlers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.by_kind.keys()).finish()
    }
}

impl Handlers {
    pub fn new() -> Self {
        Handlers::default()
    }

    /// Adds the handler for `kind`. A handler that returns `Ok` without completing the job
    /// itself has it completed by the queue.
    pub fn register<F, Fut>(mut self, kind: &str, handler: F) -> Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), JobError>> + Send + 'static,
    {
        self.by_kind.insert(kind.to_owned(), Arc::new(move |ctx| handler(ctx).boxed()));
        self
    }
}

/// Jobs this worker holds, by id, with their fencing tokens: what the heartbeat renews and what
/// shutdown releases.
type Held = Arc<Mutex<HashMap<i64, Uuid>>>;

fn held_snapshot(held: &Held) -> Vec<(i64, Uuid)> {
    held.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .map(|(&id, &t)| (id, t))
        .collect()
}

/// Runs the worker until `shutdown` resolves, then lets running jobs finish for
/// `shutdown_grace` and releases the claims of those that did not.
pub async fn run(
    db: PgPool,
    cfg: WorkerConfig,
    handlers: Handlers,
    shutdown: impl Future<Output = ()>,
) -> Result<(), sqlx::Error> {
    let wake = Arc::new(Notify::new());
    let mut listener = PgListener::connect_with(&db).await?;
    listener.listen(domain::notify::JOB_QUEUED).await?;
    let listening = tokio::spawn(forward_wakeups(listener, wake.clone()));
    let held: Held = Arc::default();
    let heartbeat = tokio::spawn(renew_leases(db.clone(), held.clone(), cfg.lease));
    let handlers = Arc::new(handlers);
    let (completions, completed) = mpsc::unbounded_channel();
    let completer = tokio::spawn(complete_in_batches(db.clone(), completed, held.clone()));
    tracing::info!(worker.id = %cfg.worker_id, concurrency = cfg.concurrency, "worker started");

    // Claim only when a quarter of the slots are free (or all are): claiming one job per freed
    // slot would cost a query per job.
    let claim_threshold = (cfg.concurrency / 4).max(1);
    let mut running = JoinSet::new();
    let mut poll = tokio::time::interval(cfg.poll_interval);
    let mut maintenance = tokio::time::interval(cfg.maintenance_interval);
    tokio::pin!(shutdown);
    loop {
        let free = cfg.concurrency.saturating_sub(running.len());
        let mut claimed_all_asked = false;
        if free >= claim_threshold || running.is_empty() {
            match job_store::claim(&db, free as i64, cfg.lease, &cfg.worker_id).await {
                Ok(jobs) => {
                    claimed_all_asked = jobs.len() == free;
                    for job in jobs {
                        start(&mut running, &db, &handlers, &held, &completions, job);
                    }
                }
                Err(error) => tracing::warn!(error = %error, "claiming jobs failed"),
            }
        }
        // A full batch means more jobs are probably due: claim again once slots free up.
        let saturated = claimed_all_asked || free < claim_threshold;
        tokio::select! {
            () = &mut shutdown => break,
            () = wake.notified(), if !saturated => {}
            _ = poll.tick(), if !saturated => {}
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = maintenance.tick() => maintain(&db, &cfg).await,
        }
    }

    tracing::info!(running = running.len(), "worker stopping");
    let drained = tokio::time::timeout(cfg.shutdown_grace, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        running.abort_all();
        while running.join_next().await.is_some() {}
    }
    // With every sender gone the completer flushes its last batch and ends; what is still held
    // after that never finished, and goes back to the queue.
    drop(completions);
    let _ = completer.await;
    let unfinished = held_snapshot(&held);
    if !unfinished.is_empty() {
        match job_store::release(&db, &unfinished).await {
            Ok(released) => tracing::info!(released, "released unfinished jobs"),
            Err(error) => {
                tracing::warn!(error = %error, "releasing jobs failed; their leases will expire")
            }
        }
    }
    heartbeat.abort();
    listening.abort();
    Ok(())
}

fn start(
    running: &mut JoinSet<()>,
    db: &PgPool,
    handlers: &Arc<Handlers>,
    held: &Held,
    completions: &Completions,
    job: ClaimedJob,
) {
    held.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .insert(job.job_id, job.lease_token);
    let (db, handlers, held, completions) =
        (db.clone(), handlers.clone(), held.clone(), completions.clone());
    running.spawn(async move {
        let job_id = job.job_id;
        // A job left for the completer stays held (its lease renewed) until the batch commits.
        if !execute(&db, &handlers, Completion::Batched(&completions), job).await {
            held.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).remove(&job_id);
        }
    });
}

/// Jobs whose run succeeded and that wait for the completer: (id, lease token).
type Completions = mpsc::UnboundedSender<(i64, Uuid)>;

/// How `execute` completes a job whose handler did not.
#[derive(Clone, Copy)]
enum Completion<'a> {
    /// Hand it to the completer task.
    Batched(&'a Completions),
    /// Complete it at once (tests and tools, which run without a completer).
    Immediate,
}

/// Completes jobs in batches: waits for one, takes whatever else is waiting (up to 1,000), and
/// completes them in one statement. Ends when the channel closes, after the last flush.
async fn complete_in_batches(
    db: PgPool,
    mut completed: mpsc::UnboundedReceiver<(i64, Uuid)>,
    held: Held,
) {
    let mut batch = Vec::new();
    while completed.recv_many(&mut batch, 1000).await > 0 {
        match job_store::complete_many(&db, &batch).await {
            Ok(done) if done.len() < batch.len() => {
                let fenced = batch.len() - done.len();
                tracing::warn!(
                    fenced,
                    "jobs were taken over by another worker after their lease expired; results discarded"
                );
            }
            Ok(_) => {}
            // Their leases will expire and they will run again: at least once, never lost.
            Err(error) => {
                tracing::warn!(error = %error, jobs = batch.len(), "completing jobs failed")
            }
        }
        let mut held = held.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for (job_id, _) in batch.drain(..) {
            held.remove(&job_id);
        }
    }
}

/// Runs one claimed job and records its outcome. Never fails: every outcome is written to the
/// job row (or, when fenced, deliberately not). Returns whether the job was handed to the
/// completer, which then owns recording it.
#[tracing::instrument(skip_all, fields(job.id = job.job_id, job.kind = %job.kind, job.attempt = job.attempt, outcome = Empty))]
async fn execute(
    db: &PgPool,
    handlers: &Handlers,
    completion: Completion<'_>,
    job: ClaimedJob,
) -> bool {
    let span = tracing::Span::current();
    let started = Instant::now();
    let metrics = domain::metrics::global();
    let completed = Arc::new(AtomicBool::new(false));
    let result = match handlers.by_kind.get(&job.kind) {
        Some(handler) => {
            let ctx = JobContext { db: db.clone(), job: job.clone(), completed: completed.clone() };
            // A panicking handler must not leave its job running forever under a live heartbeat.
            match AssertUnwindSafe(handler(ctx)).catch_unwind().await {
                Ok(result) => result,
                Err(_) => Err(JobError::Retry("the job handler panicked".into())),
            }
        }
        None => Err(JobError::GiveUp(format!("no handler for job kind {:?}", job.kind))),
    };
    let ran = started.elapsed();
    let outcome = match (result, completion) {
        (Ok(()), _) if completed.load(Ordering::Acquire) => Ok("succeeded"),
        (Ok(()), Completion::Batched(completions)) => {
            if completions.send((job.job_id, job.lease_token)).is_ok() {
                span.record("outcome", "succeeded");
                metrics.job(&job.kind, "succeeded", ran);
                return true;
            }
            complete(db, &job).await.map(|()| "succeeded")
        }
        (Ok(()), Completion::Immediate) => complete(db, &job).await.map(|()| "succeeded"),
        (Err(JobError::Fenced), _) => Err(JobError::Fenced),
        (Err(JobError::Retry(message)), _) => {
            let delay = retry_delay(job.attempt);
            record_failure(db, &job, Failure::Retry { delay }, &message).await
        }
        (Err(JobError::RetryAfter(message, delay)), _) => {
            record_failure(db, &job, Failure::Retry { delay }, &message).await
        }
        (Err(JobError::GiveUp(message)), _) => {
            record_failure(db, &job, Failure::GiveUp, &message).await
        }
    };
    let recorded = match &outcome {
        Ok(outcome) => outcome,
        Err(JobError::Fenced) => "fenced",
        Err(_) => "unrecorded",
    };
    metrics.job(&job.kind, recorded, ran);
    match outcome {
        Ok(outcome) => {
            span.record("outcome", outcome);
            tracing::debug!("job finished");
        }
        Err(JobError::Fenced) => {
            span.record("outcome", "fenced");
            tracing::warn!(
                "job was taken over by another worker after its lease expired; result discarded"
            );
        }
        Err(error) => {
            span.record("outcome", "unrecorded");
            tracing::warn!(error = %error, "could not record the job's outcome; its lease will expire and it will run again");
        }
    }
    false
}

async fn complete(db: &PgPool, job: &ClaimedJob) -> Result<(), JobError> {
    let mut conn = db.acquire().await?;
    job_store::complete(&mut conn, job.job_id, job.lease_token).await?;
    Ok(())
}

async fn record_failure(
    db: &PgPool,
    job: &ClaimedJob,
    failure: Failure,
    message: &str,
) -> Result<&'static str, JobError> {
    let state = job_store::fail(db, job, failure, message).await?;
    let outcome = match state {
        job_store::JobState::Dead => "dead",
        _ => "retry_scheduled",
    };
    tracing::warn!(error = %message, outcome, "job failed");
    Ok(outcome)
}

/// Turns notifications into wake-ups until the pool closes.
async fn forward_wakeups(mut listener: PgListener, wake: Arc<Notify>) {
    loop {
        match listener.recv().await {
            Ok(_) => wake.notify_one(),
            Err(sqlx::Error::PoolClosed) => return,
            Err(error) => {
                tracing::warn!(error = %error, "job listener lost its connection; polling until it is back");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Renews the leases of held jobs every third of the lease.
async fn renew_leases(db: PgPool, held: Held, lease: Duration) {
    let mut tick = tokio::time::interval(lease / 3);
    loop {
        tick.tick().await;
        let jobs = held_snapshot(&held);
        if jobs.is_empty() {
            continue;
        }
        if let Err(error) = job_store::renew_leases(&db, &jobs, lease).await {
            if db.is_closed() {
                return;
            }
            tracing::warn!(error = %error, "renewing leases failed");
        }
    }
}

async fn maintain(db: &PgPool, cfg: &WorkerConfig) {
    match job_store::rescue_expired(db).await {
        Ok(0) => {}
        Ok(rescued) => tracing::warn!(rescued, "requeued jobs whose lease expired"),
        Err(error) => tracing::warn!(error = %error, "rescuing expired jobs failed"),
    }
    match job_store::prune(db, cfg.succeeded_retention, cfg.dead_retention).await {
        Ok(0) => {}
        Ok(pruned) => tracing::debug!(pruned, "pruned finished jobs"),
        Err(error) => tracing::warn!(error = %error, "pruning finished jobs failed"),
    }
}

/// Claims and runs due jobs (rescuing expired leases first) until none are left, then returns
/// how many ran. For tests and tools: no listener, no sleeping.
pub async fn run_until_idle(
    db: &PgPool,
    handlers: &Handlers,
    worker_id: &str,
) -> Result<usize, sqlx::Error> {
    let lease = WorkerConfig::default().lease;
    let mut ran = 0;
    loop {
        job_store::rescue_expired(db).await?;
        let jobs = job_store::claim(db, 16, lease, worker_id).await?;
        if jobs.is_empty() {
            return Ok(ran);
        }
        ran += jobs.len();
        let runs = jobs.into_iter().map(|job| execute(db, handlers, Completion::Immediate, job));
        futures::future::join_all(runs).await;
    }
}
