//! The job queue's guarantees: crash recovery with fencing, retries with backoff, dead letters,
//! lease renewal, graceful release on shutdown, and pruning.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use domain::store::job::{self as job_store, FinishError};
use sqlx::PgPool;
use tokio::sync::watch;
use worker::{Handlers, JobError, WorkerConfig};

use crate::helpers::{fixture, json_with_status, run_worker, spawn_app};
use crate::ingest_concurrency::wait_until;

async fn state_of(db: &PgPool, job_id: i64) -> (String, i32) {
    sqlx::query_as("select state, attempt from job where job_id = $1")
        .bind(job_id)
        .fetch_one(db)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_job_abandoned_by_a_dead_worker_is_retried_and_the_zombie_is_fenced_out(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    json_with_status(app.ingest("sentinel", fixture("sentinel_alert.json")).await, 202).await;

    // A worker claims the job and dies: its lease (zero here, so no test waits) runs out.
    let zombie = job_store::claim(&db, 1, Duration::ZERO, "zombie").await.unwrap().remove(0);
    assert_eq!(zombie.attempt, 1);

    assert_eq!(run_worker(&db).await, 1, "another worker rescues and runs the job");
    assert_eq!(state_of(&db, zombie.job_id).await, ("succeeded".to_owned(), 2));

    // The zombie wakes up and tries to finish: its token is stale.
    let mut conn = db.acquire().await.unwrap();
    let late = job_store::complete(&mut conn, zombie.job_id, zombie.lease_token).await;
    assert!(matches!(late, Err(FinishError::Fenced { .. })), "{late:?}");
    let enriched: i64 =
        sqlx::query_scalar("select count(*) from activity where event_type = 'alert.enriched'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(enriched, 1, "the alert was enriched exactly once");
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_failing_job_is_retried_with_backoff_and_then_dead_lettered(db: PgPool) {
    let job_id =
        job_store::enqueue(&db, "flaky", &serde_json::json!({}), Duration::ZERO).await.unwrap();
    sqlx::query("update job set max_attempts = 2 where job_id = $1")
        .bind(job_id)
        .execute(&db)
        .await
        .unwrap();
    let handlers = Handlers::new()
        .register("flaky", |_ctx| async { Err(JobError::Retry("provider timed out".into())) });

    assert_eq!(worker::run_until_idle(&db, &handlers, "w").await.unwrap(), 1);
    let (state, attempt, last_error, delay): (String, i32, Option<String>, f64) = sqlx::query_as(
        "select state, attempt, last_error, extract(epoch from run_at - now())::float8 from job where job_id = $1",
    )
    .bind(job_id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!((state.as_str(), attempt), ("queued", 1));
    assert_eq!(last_error.as_deref(), Some("provider timed out"));
    assert!(delay > 0.0 && delay <= 1.0, "the first retry waits up to a second: {delay}");

    // Make the retry due now; the second failure exhausts the attempts.
    sqlx::query("update job set run_at = now() where job_id = $1")
        .bind(job_id)
        .execute(&db)
        .await
        .unwrap();
    worker::run_until_idle(&db, &handlers, "w").await.unwrap();
    assert_eq!(state_of(&db, job_id).await, ("dead".to_owned(), 2));

    // A dead job can be retried by hand.
    assert!(job_store::retry_dead(&mut db.acquire().await.unwrap(), job_id).await.unwrap());
    assert_eq!(state_of(&db, job_id).await, ("queued".to_owned(), 0));
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_permanent_failure_or_an_unknown_kind_goes_straight_to_dead(db: PgPool) {
    let bad = job_store::enqueue(
        &db,
        "enrich_alert",
        &serde_json::json!({"nonsense": true}),
        Duration::ZERO,
    )
    .await
    .unwrap();
    let unknown = job_store::enqueue(&db, "no_such_kind", &serde_json::json!({}), Duration::ZERO)
        .await
        .unwrap();
    run_worker(&db).await;
    assert_eq!(state_of(&db, bad).await.0, "dead");
    assert_eq!(state_of(&db, unknown).await.0, "dead");
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_long_job_keeps_its_lease_and_runs_once(db: PgPool) {
    let job_id =
        job_store::enqueue(&db, "slow", &serde_json::json!({}), Duration::ZERO).await.unwrap();
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let handlers = Handlers::new().register("slow", move |_ctx| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(900)).await;
            Ok(())
        }
    });
    // The lease is a third of the job's run time; maintenance runs often enough to rescue
    // it if the heartbeat failed to renew it.
    let cfg = WorkerConfig {
        lease: Duration::from_millis(300),
        maintenance_interval: Duration::from_millis(50),
        ..Default::default()
    };
    let (stop, mut stopped) = watch::channel(false);
    let running = tokio::spawn(worker::run(db.clone(), cfg, handlers, async move {
        let _ = stopped.wait_for(|&stop| stop).await;
    }));
    wait_until(&db, "select count(*) = 1 from job where state = 'succeeded'").await;
    stop.send(true).unwrap();
    running.await.unwrap().unwrap();
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(state_of(&db, job_id).await, ("succeeded".to_owned(), 1));
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn shutdown_releases_jobs_that_do_not_finish_in_the_grace_period(db: PgPool) {
    let job_id =
        job_store::enqueue(&db, "stuck", &serde_json::json!({}), Duration::ZERO).await.unwrap();
    let handlers =
        Handlers::new().register("stuck", |_ctx| std::future::pending::<Result<(), JobError>>());
    let cfg = WorkerConfig { shutdown_grace: Duration::from_millis(100), ..Default::default() };
    let (stop, mut stopped) = watch::channel(false);
    let running = tokio::spawn(worker::run(db.clone(), cfg, handlers, async move {
        let _ = stopped.wait_for(|&stop| stop).await;
    }));
    wait_until(&db, "select count(*) = 1 from job where state = 'running'").await;
    stop.send(true).unwrap();
    running.await.unwrap().unwrap();
    assert_eq!(
        state_of(&db, job_id).await,
        ("queued".to_owned(), 0),
        "released without using an attempt"
    );
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn finished_jobs_are_pruned_after_their_retention(db: PgPool) {
    let old =
        job_store::enqueue(&db, "noop", &serde_json::json!({}), Duration::ZERO).await.unwrap();
    let fresh =
        job_store::enqueue(&db, "noop", &serde_json::json!({}), Duration::ZERO).await.unwrap();
    let handlers = Handlers::new().register("noop", |_ctx| async { Ok(()) });
    worker::run_until_idle(&db, &handlers, "w").await.unwrap();
    sqlx::query("update job set finished_at = now() - interval '2 hours' where job_id = $1")
        .bind(old)
        .execute(&db)
        .await
        .unwrap();

    let pruned =
        job_store::prune(&db, Duration::from_secs(3600), Duration::from_secs(86400)).await.unwrap();
    assert_eq!(pruned, 1);
    let left: Vec<i64> = sqlx::query_scalar("select job_id from job").fetch_all(&db).await.unwrap();
    assert_eq!(left, vec![fresh]);
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn enriching_an_alert_deleted_after_ingest_is_a_permanent_failure(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let receipt =
        json_with_status(app.ingest("sentinel", fixture("sentinel_alert.json")).await, 202).await;
    sqlx::query("delete from alert where alert_id = $1::text::uuid")
        .bind(receipt["alert_id"].as_str().unwrap())
        .execute(&db)
        .await
        .unwrap();

    run_worker(&db).await;

    let (state, last_error): (String, Option<String>) =
        sqlx::query_as("select state, last_error from job").fetch_one(&db).await.unwrap();
    assert_eq!(state, "dead");
    assert!(last_error.unwrap_or_default().contains("does not exist"));
}
