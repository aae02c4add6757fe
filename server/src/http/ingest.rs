//! `POST /v1/ingest/{source}`: authenticate, read the body under the size limit, hand it to
//! `domain::ingest::accept`, answer 202 once the alert is committed.

use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use domain::alert::Source;
use domain::api_key::Scope;
use domain::ingest::Submission;
use serde::Serialize;
use uuid::Uuid;

use super::auth::Caller;
use crate::error::ApiError;
use crate::state::{AppState, Signature};

/// The receipt for an accepted payload (SPEC §2).
#[derive(Debug, Serialize)]
pub(super) struct IngestReceipt {
    alert_id: Uuid,
    status: &'static str,
    duplicate_count: i32,
}

/// Answers one authenticated ingest request and counts it in the metrics, by source (`unknown`
/// for a name that is none, so that callers cannot mint label values) and outcome.
pub(super) async fn ingest(
    State(state): State<AppState>,
    Path(source): Path<String>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<IngestReceipt>), ApiError> {
    let started = Instant::now();
    let source = source.parse::<Source>().map_err(|_| source);
    let label = source.as_ref().map_or("unknown", |source| source.as_str());
    let answered = accept(&state, source, &caller, &headers, body).await;
    match &answered {
        Ok((_, Json(receipt))) => {
            domain::metrics::global().ingest(label, receipt.status, Some(started.elapsed()))
        }
        Err(error) => domain::metrics::global().ingest(label, error.code(), None),
    }
    answered
}

/// `source` is the path's source, or the name that is none.
async fn accept(
    state: &AppState,
    source: Result<Source, String>,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<IngestReceipt>), ApiError> {
    caller.require(Scope::AlertsWrite)?;
    let source = source.map_err(ApiError::UnknownSource)?;
    if !caller.0.may_ingest_into(source) {
        return Err(ApiError::SourceNotAllowed(source.to_string()));
    }
    let body =
        super::read_limited(headers, body, state.cfg.max_body_bytes, state.cfg.body_read_timeout)
            .await?;
    let signature = signature_header(source).and_then(|name| headers.get(name)?.to_str().ok());
    let submission = Submission { source, body: &body, signature, actor: &caller.0.name };
    let accepted = state.ingest(submission, Signature::Checked).await?;
    let receipt = IngestReceipt {
        alert_id: accepted.alert_id,
        status: if accepted.deduplicated { "deduplicated" } else { "queued" },
        duplicate_count: accepted.duplicate_count,
    };
    Ok((StatusCode::ACCEPTED, Json(receipt)))
}

/// The header each source signs its webhooks with.
fn signature_header(source: Source) -> Option<&'static str> {
    match source {
        Source::Sentinel => Some("x-sentinel-signature"),
        Source::Elastic => Some("x-elastic-signature"),
        Source::Splunk => Some("x-splunk-webhook-secret"),
        Source::Generic => None,
    }
}
