//! `GET /health` (the process is up) and `GET /ready` (it can reach the database and the
//! queue).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::state::AppState;

pub(super) async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub(super) async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match domain::store::job::stats(&state.db).await {
        Ok(queue) => (
            StatusCode::OK,
            Json(json!({
                "status": "ready",
                "database": "ok",
                "queue": {
                    "queued": queue.queued,
                    "running": queue.running,
                    "dead": queue.dead,
                    "oldest_due_seconds": queue.oldest_due_seconds,
                },
            })),
        ),
        Err(error) => {
            tracing::warn!(error = %error, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": "unreachable" })),
            )
        }
    }
}
