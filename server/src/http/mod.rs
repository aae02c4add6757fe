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

use crate::error::log_internal_errors;
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
        .layer::<_, std::convert::Infallible>(DefaultBodyLimit::max(state.cfg.max_body_bytes))
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
