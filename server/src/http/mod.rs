//! The router: REST routes, body limits, tracing with request ids, and error logging.

mod auth;
pub mod demo;
mod health;
mod ingest;
mod metrics;

use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::HeaderName;
use axum::routing::{get, post};
use axum::{Extension, Router};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::error::{ApiError, log_internal_errors};
use crate::state::AppState;

pub use auth::Caller;
pub(crate) use auth::bearer;
pub use metrics::scrape as metrics;

/// `listener` with `TCP_NODELAY` on each accepted connection, as HTTP servers usually set it:
/// a small write (a subscription event, the end of an answer) then leaves at once instead of
/// waiting, under Nagle's algorithm, for the peer to acknowledge the write before it.
pub fn without_delay(
    listener: tokio::net::TcpListener,
) -> impl axum::serve::Listener<Io = tokio::net::TcpStream, Addr = std::net::SocketAddr> {
    use axum::serve::ListenerExt;
    listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on an accepted connection");
        }
    })
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Builds the application's router over `state`.
pub fn app(state: AppState) -> Router {
    let schema = crate::graphql::schema(state.clone());
    let ws_schema = schema.clone();
    let mcp = tower::ServiceBuilder::new()
        .layer(axum::middleware::from_fn_with_state(state.clone(), crate::mcp::authenticate))
        .service(crate::mcp::service(state.clone(), schema.clone()));
    let graphql: axum::routing::MethodRouter<AppState> = get(crate::graphql::get)
        .post(crate::graphql::post)
        .layer::<_, std::convert::Infallible>(Extension(schema));
    let router = Router::new();
    let router =
        if state.cfg.demo { router.route("/demo/intel", get(demo::intel)) } else { router };
    router
        .route("/graphql", graphql)
        .route("/graphql/ws", get(crate::graphql::websocket).layer::<_, std::convert::Infallible>(Extension(ws_schema)))
        .nest_service("/mcp", mcp)
        .route("/v1/ingest/{source}", post(ingest::ingest))
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(metrics::get))
        // What no route answers gets the product's error shape, not an empty body.
        .fallback(|uri: axum::http::Uri| async move { ApiError::UnknownRoute(uri.path().to_owned()) })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            ApiError::MethodNotAllowed(method.to_string())
        })
        // Bodies are read under our own limit in the handlers, which answer 413 in the
        // product's error shape; axum's default 2 MiB limit would answer first otherwise.
        .layer(DefaultBodyLimit::disable())
        .layer(axum::middleware::from_fn(log_internal_errors))
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let route = request
                .extensions()
                .get::<MatchedPath>()
                .map_or(request.uri().path(), MatchedPath::as_str);
            let request_id =
                request.headers().get(&REQUEST_ID).and_then(|id| id.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", method = %request.method(), route, request.id = request_id)
        }))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .with_state(state)
}

/// Reads the whole body, refusing it as soon as it passes `limit`: up front when
/// `Content-Length` says so, otherwise while streaming (chunked bodies).
pub(crate) async fn read_limited(
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    limit: usize,
    timeout: std::time::Duration,
) -> Result<axum::body::Bytes, ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let read = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| ApiError::BodyTimeout { seconds: timeout.as_secs_f64() })?;
    read.map_err(|error| {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&error);
        while let Some(current) = cause {
            if current.is::<http_body_util::LengthLimitError>() {
                return ApiError::PayloadTooLarge { limit };
            }
            cause = current.source();
        }
        ApiError::UnreadableBody(error.to_string())
    })
}
