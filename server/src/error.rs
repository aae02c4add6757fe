//! The one REST error type. Every failure becomes `{"error": {"code", "message", "details"}}`
//! with a status and a stable machine-readable code (SPEC §2). Internal causes are logged once
//! by [`log_internal_errors`] and never sent to the client.

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::api_key::{AuthError, Scope, retry_after_seconds};
use domain::ingest::IngestError;
use serde_json::{Value, json};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    Unauthorized(String),
    #[error("this API key lacks the {0} scope")]
    MissingScope(Scope),
    #[error("this API key may not ingest into source {0}")]
    SourceNotAllowed(String),
    #[error("unknown source {0:?}; expected one of sentinel, elastic, splunk, generic")]
    UnknownSource(String),
    #[error("the request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("the request body could not be read: {0}")]
    UnreadableBody(String),
    #[error("the request body did not arrive within {seconds} seconds")]
    BodyTimeout { seconds: f64 },
    /// Worded as the domain words it.
    #[error("{}", AuthError::RateLimited { limit: *limit, retry_after: *retry_after })]
    RateLimited { limit: i32, retry_after: std::time::Duration },
    #[error("no such route: {0}")]
    UnknownRoute(String),
    #[error("{0} is not allowed on this route")]
    MethodNotAllowed(String),
    /// A query parameter is missing or wrong.
    #[error("{field}: {problem}")]
    InvalidParameter { field: &'static str, problem: String },
    #[error(transparent)]
    Ingest(IngestError),
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// The cause of an internal error, attached to the response for [`log_internal_errors`].
#[derive(Debug, Clone)]
struct InternalCause(String);

impl ApiError {
    /// The machine-readable code the error is answered with (`INVALID_PAYLOAD`, …).
    pub(crate) fn code(&self) -> &'static str {
        self.status_code_details().1
    }

    /// The HTTP status the error is answered with.
    pub(crate) fn status(&self) -> StatusCode {
        self.status_code_details().0
    }

    fn status_code_details(&self) -> (StatusCode, &'static str, Value) {
        match self {
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "UNAUTHORIZED", json!({})),
            ApiError::MissingScope(scope) => {
                (StatusCode::FORBIDDEN, "FORBIDDEN", json!({ "required_scope": scope.as_str() }))
            }
            ApiError::SourceNotAllowed(source) => {
                (StatusCode::FORBIDDEN, "SOURCE_NOT_ALLOWED", json!({ "source": source }))
            }
            ApiError::UnknownSource(source) => (
                StatusCode::NOT_FOUND,
                "UNKNOWN_SOURCE",
                json!({ "source": source, "known_sources": ["sentinel", "elastic", "splunk", "generic"] }),
            ),
            ApiError::PayloadTooLarge { limit } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                json!({ "limit_bytes": limit }),
            ),
            ApiError::UnreadableBody(_) => (StatusCode::BAD_REQUEST, "BAD_REQUEST", json!({})),
            ApiError::BodyTimeout { seconds } => (
                StatusCode::REQUEST_TIMEOUT,
                "REQUEST_TIMEOUT",
                json!({ "timeout_seconds": seconds }),
            ),
            ApiError::RateLimited { limit, retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "RATE_LIMITED",
                json!({
                    "limit_per_minute": limit,
                    "retry_after_seconds": retry_after_seconds(*retry_after),
                }),
            ),
            ApiError::UnknownRoute(path) => {
                (StatusCode::NOT_FOUND, "NOT_FOUND", json!({ "path": path }))
            }
            ApiError::MethodNotAllowed(method) => {
                (StatusCode::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED", json!({ "method": method }))
            }
            ApiError::InvalidParameter { field, problem } => (
                StatusCode::BAD_REQUEST,
                "INVALID_PAYLOAD",
                json!({ "field": field, "problem": problem }),
            ),
            ApiError::Ingest(IngestError::InvalidSignature(source)) => (
                StatusCode::UNAUTHORIZED,
                "INVALID_SIGNATURE",
                json!({ "source": source.as_str() }),
            ),
            ApiError::Ingest(IngestError::InvalidJson(error)) => (
                StatusCode::BAD_REQUEST,
                "INVALID_JSON",
                json!({ "line": error.line(), "column": error.column() }),
            ),
            ApiError::Ingest(IngestError::InvalidPayload { alert_source: source, cause }) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "INVALID_PAYLOAD",
                json!({ "source": source.as_str(), "field": cause.field, "problem": cause.problem }),
            ),
            ApiError::Ingest(IngestError::Db(_)) | ApiError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL", json!({}))
            }
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(error: IngestError) -> Self {
        match error {
            IngestError::Db(db) => ApiError::Internal(Box::new(db)),
            other => ApiError::Ingest(other),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Db(db) => ApiError::Internal(Box::new(db)),
            AuthError::RateLimited { limit, retry_after } => {
                ApiError::RateLimited { limit, retry_after }
            }
            other => ApiError::Unauthorized(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        ApiError::Internal(Box::new(error))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, details) = self.status_code_details();
        let message = self.to_string();
        let body = json!({ "error": { "code": code, "message": message, "details": details } });
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED && code == "UNAUTHORIZED" {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::RateLimited { retry_after, .. } = &self {
            let seconds = retry_after_seconds(*retry_after);
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        let cause = match &self {
            ApiError::Internal(cause) => Some(cause.to_string()),
            ApiError::Ingest(IngestError::Db(cause)) => Some(cause.to_string()),
            _ => None,
        };
        if let Some(cause) = cause {
            response.extensions_mut().insert(InternalCause(cause));
        }
        response
    }
}

/// Logs the cause of every 500 once, inside the request's span.
pub async fn log_internal_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    if let Some(InternalCause(cause)) = response.extensions().get::<InternalCause>() {
        tracing::error!(error = %cause, "request failed");
    }
    response
}
