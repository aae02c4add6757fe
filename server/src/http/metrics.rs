//! `GET /metrics`: the process's counters and latencies (`domain::metrics`) with the queue's
//! depth and the age of its oldest due job read from the database, in the OpenMetrics text
//! format Prometheus scrapes. Like `/health` and `/ready` it needs no key: it names no alert,
//! indicator or secret.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use sqlx::PgPool;

use crate::state::AppState;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a scrape waits for the database before it answers without the queue (Prometheus
/// gives up on a scrape after 10 s by default).
const DATABASE_WAIT: Duration = Duration::from_secs(3);

/// `GET /metrics` on the API server.
pub(super) async fn get(State(state): State<AppState>) -> Response {
    scrape(&state.db).await
}

/// The answer to a scrape: every metric of this process and of the queue it shares.
pub async fn scrape(db: &PgPool) -> Response {
    let mut registry = Registry::with_prefix("alertgraph");
    domain::metrics::global().register(&mut registry);
    let reachable = Gauge::<i64>::default();
    match tokio::time::timeout(DATABASE_WAIT, domain::store::job::stats(db)).await {
        Err(_) => tracing::warn!("metrics could not read the queue in time"),
        Ok(Ok(queue)) => {
            reachable.set(1);
            let jobs = Family::<Vec<(&str, &str)>, Gauge>::default();
            for (state, count) in
                [("queued", queue.queued), ("running", queue.running), ("dead", queue.dead)]
            {
                jobs.get_or_create(&vec![("state", state)]).set(count);
            }
            registry.register(
                "queue_jobs",
                "Jobs in the queue by state (every replica reads the same table)",
                jobs,
            );
            let oldest = Gauge::<f64, AtomicU64>::default();
            oldest.set(queue.oldest_due_seconds);
            registry.register_with_unit(
                "queue_oldest_due_age",
                "How long the oldest queued job has been due (0 when none is)",
                Unit::Seconds,
                oldest,
            );
        }
        Ok(Err(error)) => tracing::warn!(error = %error, "metrics could not read the queue"),
    }
    registry.register("database_up", "Whether the database answered this scrape", reachable);
    let mut text = String::new();
    match encode(&mut text, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::error!(error = %error, "metrics could not be encoded");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
