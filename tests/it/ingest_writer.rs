//! The ingest writer groups concurrent alerts into shared transactions; an alert the database
//! refuses must fail alone, and text PostgreSQL cannot store must not fail ingest.

use std::time::Duration;

use domain::alert::{Severity, Source};
use domain::ingest::AlertWriter;
use domain::notify::JobWaker;
use domain::store::alert::NewAlert;
use futures::future::join_all;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{count, json_with_status, spawn_app};

fn new_alert(n: usize, title: &str) -> NewAlert {
    let alert_id = Uuid::now_v7();
    let mut fingerprint = [0u8; 32];
    fingerprint[..8].copy_from_slice(&(n as u64).to_be_bytes());
    NewAlert {
        alert_id,
        source: Source::Generic,
        title: title.to_owned(),
        description: None,
        severity: Severity::Low,
        occurred_at: chrono::Utc::now(),
        tags: vec![format!("batch-{n}")],
        raw_payload: format!("{{\"title\": \"{title}\"}}"),
        fingerprint,
        job_payload: serde_json::json!({ "alert_id": alert_id, "indicators": [], "detection_rule": null }),
        actor: "test".to_owned(),
    }
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn an_alert_the_database_refuses_fails_alone_among_concurrent_alerts(db: PgPool) {
    let writer =
        AlertWriter::spawn(db.clone(), JobWaker::spawn(db.clone()), Duration::from_secs(3600));
    // A blank title passes no normalizer, but breaks `alert_title_not_blank` if it gets here.
    let results = join_all((0..40).map(|n| {
        let title = if n == 17 { "   ".to_owned() } else { format!("Alert {n}") };
        let writer = writer.clone();
        async move { writer.write(new_alert(n, &title)).await }
    }))
    .await;

    let failed: Vec<usize> =
        results.iter().enumerate().filter(|(_, r)| r.is_err()).map(|(n, _)| n).collect();
    assert_eq!(failed, vec![17]);
    assert_eq!(count(&db, "alert").await, 39);
    assert_eq!(count(&db, "job").await, 39);
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_nul_character_in_a_payload_is_stored_as_a_replacement_character(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let payload = r#"{"title": "bad\u0000title", "user": "svc\u0000x", "tags": ["a\u0000"]}"#;
    let receipt = json_with_status(app.ingest("generic", payload).await, 202).await;

    let alert_id: Uuid = receipt["alert_id"].as_str().unwrap().parse().unwrap();
    let alert = domain::store::alert::get(&db, alert_id).await.unwrap().unwrap();
    assert_eq!(alert.title, "bad\u{FFFD}title");
    assert_eq!(alert.tags, ["a\u{FFFD}"]);
    let raw = domain::store::alert::raw_payload(&db, alert_id).await.unwrap().unwrap();
    assert_eq!(raw, payload, "the raw payload keeps the escape as sent");
}
