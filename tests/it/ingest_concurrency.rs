//! Ingest under concurrency: identical alerts collapse into one, distinct alerts each get one
//! job, and two workers together run every job exactly once.

use std::time::Duration;

use futures::future::join_all;
use sqlx::PgPool;
use tokio::sync::watch;

use crate::helpers::{count, enricher, fixture, json_with_status, spawn_app};

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn fifty_identical_alerts_posted_at_once_store_one_alert_with_49_duplicates(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let payload = fixture("01_sentinel_brute_force_tor.json");

    let receipts = join_all((0..50).map(|_| async {
        json_with_status(app.ingest("sentinel", payload.clone()).await, 202).await
    }))
    .await;

    assert_eq!(count(&db, "alert").await, 1);
    assert_eq!(count(&db, "job").await, 1);
    let alert_id = receipts[0]["alert_id"].clone();
    assert!(receipts.iter().all(|receipt| receipt["alert_id"] == alert_id));
    let queued = receipts.iter().filter(|receipt| receipt["status"] == "queued").count();
    assert_eq!(queued, 1);
    let duplicate_count: i32 =
        sqlx::query_scalar("select duplicate_count from alert").fetch_one(&db).await.unwrap();
    assert_eq!(duplicate_count, 49);
    let highest_reported = receipts.iter().filter_map(|r| r["duplicate_count"].as_i64()).max();
    assert_eq!(highest_reported, Some(49));
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn two_hundred_distinct_alerts_are_each_processed_once_by_two_workers(db: PgPool) {
    let db = crate::helpers::wider(&db);
    let app = spawn_app(db.clone()).await;
    let receipts = join_all((0..200).map(|n| {
        let app = &app;
        async move {
            let payload = serde_json::json!({
                "title": format!("Distinct alert {n}"),
                "severity": "medium",
                "src_ip": format!("198.51.100.{}", n % 250),
            });
            json_with_status(app.ingest("generic", payload.to_string()).await, 202).await
        }
    }))
    .await;
    assert!(receipts.iter().all(|receipt| receipt["status"] == "queued"));
    assert_eq!(count(&db, "alert").await, 200);
    assert_eq!(count(&db, "job").await, 200);

    // Two worker loops, woken by NOTIFY, racing for the same queue.
    let (stop, stopped) = watch::channel(false);
    let enricher = enricher(&db, &[]).await;
    let pipeline = crate::helpers::pipeline(&db, enricher).await;
    let workers: Vec<_> = ["worker-a", "worker-b"]
        .into_iter()
        .map(|name| {
            let cfg = worker::WorkerConfig {
                worker_id: name.into(),
                concurrency: 8,
                ..Default::default()
            };
            let mut stopped = stopped.clone();
            let pipeline = pipeline.clone();
            tokio::spawn(worker::run(db.clone(), cfg, pipeline, async move {
                let _ = stopped.wait_for(|&stop| stop).await;
            }))
        })
        .collect();
    wait_until(&db, "select count(*) = 200 from job where state = 'succeeded'").await;
    stop.send(true).unwrap();
    for handle in workers {
        handle.await.unwrap().unwrap();
    }

    let runs_per_job: Vec<i32> =
        sqlx::query_scalar("select attempt from job").fetch_all(&db).await.unwrap();
    assert!(runs_per_job.iter().all(|&attempt| attempt == 1), "a job was claimed twice");
    let enriched_per_alert: Vec<i64> = sqlx::query_scalar(
        "select count(activity_id) from alert left join activity
           on activity.alert_id = alert.alert_id and event_type = 'alert.enriched'
         group by alert.alert_id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(enriched_per_alert.len(), 200);
    assert!(enriched_per_alert.iter().all(|&runs| runs == 1), "an alert was enriched twice");
    let pending: i64 =
        sqlx::query_scalar("select count(*) from alert where enrichment_status <> 'Enriched'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(pending, 0);
}

/// Polls a boolean query until it is true, for at most 30 seconds.
pub(crate) async fn wait_until(db: &PgPool, condition: &'static str) {
    for _ in 0..600 {
        let done: bool = sqlx::query_scalar(condition).fetch_one(db).await.unwrap();
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {condition}");
}
