//! What `alertgraph up --demo` adds to the server (see `domain::demo`): the simulated provider's
//! `GET /demo/intel?type=…&value=…`, and the sample alerts, ingested as any generic webhook's.

use axum::Json;
use axum::extract::Query;
use domain::alert::{IndicatorType, Source};
use domain::ingest::{IngestError, Submission};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;
use crate::state::Signature;

#[derive(Debug, Deserialize)]
pub(crate) struct IntelQuery {
    #[serde(rename = "type")]
    kind: Option<String>,
    value: Option<String>,
}

/// The simulated intelligence for one indicator. It needs no key: it is served only in demo
/// mode and holds nothing but deterministic made-up data.
pub(crate) async fn intel(Query(query): Query<IntelQuery>) -> Result<Json<Value>, ApiError> {
    let kind = query.kind.as_deref().unwrap_or_default();
    let kind = kind.parse::<IndicatorType>().map_err(|_| {
        let known: Vec<&str> = IndicatorType::ALL.iter().map(|kind| kind.as_str()).collect();
        let problem = format!("{kind:?} is not an indicator type; use one of {}", known.join(", "));
        ApiError::InvalidParameter { field: "type", problem }
    })?;
    let value = query.value.as_deref().map(str::trim).filter(|value| !value.is_empty());
    let value = value.ok_or_else(|| ApiError::InvalidParameter {
        field: "value",
        problem: "is required and must not be empty".to_owned(),
    })?;
    Ok(Json(domain::demo::intel(kind, value)))
}

/// Ingests the sample alerts, as the generic webhook would, and returns their ids.
pub async fn ingest_sample_alerts(state: &AppState) -> Result<Vec<Uuid>, IngestError> {
    let mut ids = Vec::new();
    for alert in domain::demo::sample_alerts() {
        let body = serde_json::to_vec(&alert).expect("JSON values serialize");
        let submission = Submission {
            source: Source::Generic,
            body: &body,
            signature: None,
            actor: domain::demo::ACTOR,
        };
        let accepted = state.ingest(submission, Signature::NotExpected).await?;
        ids.push(accepted.alert_id);
    }
    Ok(ids)
}
