//! The GraphQL API (SPEC §6): `POST /graphql` and `GET /graphql?query=…` execute, `GET /graphql`
//! without a query serves GraphiQL. Every request carries `Authorization: Bearer cai_…`; each
//! field checks its scope. Errors carry `extensions.code` with the REST codes
//! (`UNAUTHORIZED`, `FORBIDDEN`, `INVALID_PAYLOAD`, `NOT_FOUND`, `CONFLICT`, `INTERNAL`) and never
//! an internal cause, which is logged instead.

mod admin;
mod loaders;
mod mutation;
mod parsed;
mod plain;
pub(crate) mod query;
pub mod results;
mod subscription;
mod types;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::http::GraphiQLSource;
use async_graphql::{Data, Error, ErrorExtensions, ID, Schema};
use async_graphql_axum::{GraphQLProtocol, GraphQLResponse, GraphQLWebSocket};
use axum::Extension;
use axum::extract::WebSocketUpgrade;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use domain::api_key::{AuthError, Principal, Scope};
pub use parsed::ParsedQueries;
use uuid::Uuid;

use crate::state::AppState;
pub use subscription::Subscription;

/// The query root: the graph, and administration.
#[derive(async_graphql::MergedObject, Default)]
pub struct Query(query::CoreQuery, admin::AdminQuery);

/// The mutation root: triage and content, and administration.
#[derive(async_graphql::MergedObject, Default)]
pub struct Mutation(mutation::CoreMutation, admin::AdminMutation);

pub type AlertgraphSchema = Schema<Query, Mutation, Subscription>;

/// Deepest query accepted: an alert's related alerts' indicators' enrichments is 6 levels.
const MAX_DEPTH: usize = 12;
/// Most fields one query may select (lists count once per field).
const MAX_COMPLEXITY: usize = 1000;

/// The schema over `state`. It has no extensions: with none, async-graphql resolves each field
/// directly, where any extension would put every field of every answer through its hooks.
pub fn schema(state: AppState) -> AlertgraphSchema {
    Schema::build(Query::default(), Mutation::default(), Subscription)
        .data(state)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

/// Checks an executable document against the schema without running it: syntax, types, fields,
/// arguments, variables, depth and complexity, as a request would be checked. Returns each
/// problem with its line and column; none means the document is valid.
pub async fn validate(document: &str, operation_name: Option<&str>) -> Vec<String> {
    static VALIDATOR: std::sync::LazyLock<AlertgraphSchema> = std::sync::LazyLock::new(|| {
        Schema::build(Query::default(), Mutation::default(), Subscription)
            .extension(ValidateOnly)
            .limit_depth(MAX_DEPTH)
            .limit_complexity(MAX_COMPLEXITY)
            .finish()
    });
    let mut request = async_graphql::Request::new(document);
    if let Some(name) = operation_name {
        request = request.operation_name(name);
    }
    VALIDATOR
        .execute(request)
        .await
        .errors
        .into_iter()
        .map(|error| match error.locations.first() {
            Some(at) => format!("line {}, column {}: {}", at.line, at.column, error.message),
            None => error.message,
        })
        .collect()
}

/// Stops a request once it has been validated: nothing is resolved.
struct ValidateOnly;

impl async_graphql::extensions::ExtensionFactory for ValidateOnly {
    fn create(&self) -> std::sync::Arc<dyn async_graphql::extensions::Extension> {
        std::sync::Arc::new(ValidateOnly)
    }
}

#[async_graphql::async_trait::async_trait]
impl async_graphql::extensions::Extension for ValidateOnly {
    async fn execute(
        &self,
        _ctx: &async_graphql::extensions::ExtensionContext<'_>,
        _operation_name: Option<&str>,
        _next: async_graphql::extensions::NextExecute<'_>,
    ) -> async_graphql::Response {
        async_graphql::Response::new(async_graphql::Value::Null)
    }
}

/// The schema in SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    Schema::build(Query::default(), Mutation::default(), Subscription).finish().sdl()
}

/// `POST /graphql`. The body is read under the server's size limit and time limit, as ingest
/// reads it; one that is too large or not a GraphQL request is answered as GraphQL errors are,
/// with a code.
pub(crate) async fn post(
    State(state): State<AppState>,
    Extension(schema): Extension<AlertgraphSchema>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    match read_request(&state, &headers, body).await {
        Ok(request) => execute(&schema, state, &headers, request).await,
        Err((status, error)) => {
            let response = async_graphql::Response::from_errors(vec![whole_request(error)]);
            (status, GraphQLResponse::from(response)).into_response()
        }
    }
}

async fn read_request(
    state: &AppState,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<async_graphql::Request, (StatusCode, Error)> {
    let (limit, timeout) = (state.cfg.max_body_bytes, state.cfg.body_read_timeout);
    let bytes = crate::http::read_limited(headers, body, limit, timeout)
        .await
        .map_err(|error| (error.status(), coded(&error.to_string(), error.code())))?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok());
    let options = async_graphql::http::MultipartOptions::default();
    async_graphql::http::receive_body(content_type, bytes.as_ref(), options).await.map_err(
        |error| {
            let message = format!("the body is not a GraphQL request: {error}");
            (StatusCode::BAD_REQUEST, coded(&message, "BAD_REQUEST"))
        },
    )
}

/// `GET /graphql`: GraphiQL, or a query in the URL (what urql sends for queries).
pub(crate) async fn get(
    State(state): State<AppState>,
    Extension(schema): Extension<AlertgraphSchema>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Html(
            GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql/ws")
                .finish(),
        )
        .into_response();
    };
    match async_graphql::http::parse_query_string(&query) {
        Ok(request) => execute(&schema, state, &headers, request).await,
        Err(error) => {
            let error = coded(
                &format!("the query string is not a GraphQL request: {error}"),
                "BAD_REQUEST",
            );
            let response = async_graphql::Response::from_errors(vec![whole_request(error)]);
            (StatusCode::BAD_REQUEST, GraphQLResponse::from(response)).into_response()
        }
    }
}

/// `GET /graphql/ws`: subscriptions over graphql-transport-ws (and the legacy
/// graphql-ws protocol). The API key comes in `connection_init`'s payload as
/// `{"Authorization": "Bearer cai_…"}`; a connection without a valid one is closed.
pub(crate) async fn websocket(
    State(state): State<AppState>,
    Extension(schema): Extension<AlertgraphSchema>,
    protocol: GraphQLProtocol,
    upgrade: WebSocketUpgrade,
) -> Response {
    upgrade.protocols(ALL_WEBSOCKET_PROTOCOLS).on_upgrade(move |socket| {
        let executor = RateLimitedSocket { schema, state: state.clone() };
        GraphQLWebSocket::new(socket, executor, protocol)
            .on_connection_init(move |payload| async move {
                let presented = payload
                    .get("Authorization")
                    .or_else(|| payload.get("authorization"))
                    .and_then(|value| value.as_str())
                    .map(|value| {
                        value.trim_start_matches("Bearer ").trim_start_matches("bearer ").trim()
                    })
                    .unwrap_or_default()
                    .to_owned();
                let principal =
                    state.authenticate(&presented).await.map_err(|error| refusal(&error).1)?;
                let mut data = Data::default();
                data.insert(WebSocketCaller(principal.clone()));
                data.insert(principal);
                data.insert(loaders::new_loaders(&state));
                Ok(data)
            })
            .serve()
    })
}

async fn execute(
    schema: &AlertgraphSchema,
    state: AppState,
    headers: &HeaderMap,
    request: async_graphql::Request,
) -> Response {
    let principal = match authenticate(&state, headers).await {
        Ok(principal) => principal,
        Err(error) => {
            let (status, refused) = refusal(&error);
            let mut response = async_graphql::Response::from_errors(vec![whole_request(refused)]);
            if let AuthError::RateLimited { retry_after, .. } = error {
                let seconds = domain::api_key::retry_after_seconds(retry_after);
                response.http_headers.insert(header::RETRY_AFTER, seconds.into());
            }
            return (status, GraphQLResponse::from(response)).into_response();
        }
    };
    GraphQLResponse::from(execute_as(schema, &state, principal, request).await).into_response()
}

/// Runs `request` as `principal`, with fresh per-request loaders (HTTP and MCP alike).
pub(crate) async fn execute_as(
    schema: &AlertgraphSchema,
    state: &AppState,
    principal: Principal,
    request: async_graphql::Request,
) -> async_graphql::Response {
    let loaders = loaders::new_loaders(state);
    let request = state.parsed.prepare(request);
    let mut response = schema.execute(request.data(principal).data(loaders)).await;
    let whole_request_failed = response.data == async_graphql::Value::Null;
    for error in &mut response.errors {
        if error.extensions.as_ref().is_none_or(|extensions| extensions.get("code").is_none()) {
            let code = uncoded(error, whole_request_failed);
            error.extensions.get_or_insert_with(Default::default).set("code", code);
        }
    }
    response
}

/// The code of an error async-graphql raised itself (every error of ours carries one): a
/// document that does not parse or validate, or breaks the depth or complexity limit, stops the
/// whole request; an argument it could not read as its type fails one field.
fn uncoded(error: &async_graphql::ServerError, whole_request_failed: bool) -> &'static str {
    if whole_request_failed && error.path.is_empty() {
        "BAD_REQUEST"
    } else if error.message.starts_with("Failed to parse") {
        "INVALID_PAYLOAD"
    } else {
        "INTERNAL"
    }
}

async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Principal, AuthError> {
    state.authenticate(crate::http::bearer(headers)?).await
}

/// How a refused key is answered: the status, and an error with `extensions.code` (with the
/// limit and the seconds to wait when rate limited). A database failure is logged, not shown.
fn refusal(error: &AuthError) -> (StatusCode, Error) {
    match error {
        AuthError::RateLimited { limit, retry_after } => {
            let seconds = domain::api_key::retry_after_seconds(*retry_after);
            let refused = coded(&error.to_string(), "RATE_LIMITED").extend_with(|_, extensions| {
                extensions.set("limitPerMinute", *limit);
                extensions.set("retryAfterSeconds", seconds);
            });
            (StatusCode::TOO_MANY_REQUESTS, refused)
        }
        AuthError::Db(cause) => (StatusCode::INTERNAL_SERVER_ERROR, internal(cause)),
        AuthError::Missing | AuthError::Invalid | AuthError::Expired => {
            (StatusCode::UNAUTHORIZED, coded(&error.to_string(), "UNAUTHORIZED"))
        }
    }
}

/// The key a WebSocket connection authenticated with in `connection_init`.
struct WebSocketCaller(Principal);

/// The schema as a WebSocket connection runs it: each operation sent over the socket is counted
/// against its key's rate limit before it runs, as each HTTP request is counted when it is
/// authenticated, so a connection admitted once may not run queries and mutations past the
/// limit.
#[derive(Clone)]
struct RateLimitedSocket {
    schema: AlertgraphSchema,
    state: AppState,
}

impl async_graphql::Executor for RateLimitedSocket {
    /// Not used by the WebSocket protocols, which run every operation as a stream.
    async fn execute(&self, request: async_graphql::Request) -> async_graphql::Response {
        self.schema.execute(request).await
    }

    fn execute_stream(
        &self,
        request: async_graphql::Request,
        session: Option<std::sync::Arc<Data>>,
    ) -> futures::stream::BoxStream<'static, async_graphql::Response> {
        use futures::StreamExt;
        let (schema, state) = (self.schema.clone(), self.state.clone());
        let session = session.unwrap_or_default();
        let admitted = async move {
            let caller = session
                .get(&std::any::TypeId::of::<WebSocketCaller>())
                .and_then(|data| data.downcast_ref::<WebSocketCaller>());
            if let Some(WebSocketCaller(principal)) = caller
                && let Err(error) = state.limits.admit(&state.db, principal).await
            {
                let refused = whole_request(refusal(&error).1);
                return futures::stream::once(async {
                    async_graphql::Response::from_errors(vec![refused])
                })
                .boxed();
            }
            schema.execute_stream_with_session_data(request, session)
        };
        futures::stream::once(admitted).flatten().boxed()
    }
}

/// An error about the request as a whole (its key, a malformed query string): no location in
/// the document.
fn whole_request(error: Error) -> async_graphql::ServerError {
    let mut whole = async_graphql::ServerError::new(error.message, None);
    whole.extensions = error.extensions;
    whole
}

/// An error with `extensions.code`.
pub(crate) fn coded(message: &str, code: &'static str) -> Error {
    Error::new(message).extend_with(|_, extensions| extensions.set("code", code))
}

/// The caller.
pub(crate) fn principal<'a>(
    ctx: &'a async_graphql::Context<'_>,
) -> async_graphql::Result<&'a Principal> {
    ctx.data::<Principal>().map_err(|_| coded("an API key is required", "UNAUTHORIZED"))
}

/// The caller, if it holds `scope` (or `admin`).
pub(crate) fn require<'a>(
    ctx: &'a async_graphql::Context<'_>,
    scope: Scope,
) -> async_graphql::Result<&'a Principal> {
    let principal = principal(ctx)?;
    if principal.has_scope(scope) {
        Ok(principal)
    } else {
        Err(Error::new(format!("this API key lacks the {} scope", scope.as_str())).extend_with(
            |_, extensions| {
                extensions.set("code", "FORBIDDEN");
                extensions.set("requiredScope", scope.as_str());
            },
        ))
    }
}

pub(crate) fn state<'a>(
    ctx: &'a async_graphql::Context<'_>,
) -> async_graphql::Result<&'a AppState> {
    ctx.data::<AppState>()
}

/// The key that seals secrets; agents' secrets cannot be stored without it.
pub(crate) fn secret_key(state: &AppState) -> async_graphql::Result<&domain::secret::SecretKey> {
    state.cfg.secret_key.as_ref().ok_or_else(|| {
        coded(
            "this server has no ALERTGRAPH_SECRET_KEY, so it cannot store secrets",
            "NOT_CONFIGURED",
        )
    })
}

/// A field-level input error.
pub(crate) fn bad_input(field: &str, message: &str) -> Error {
    let problems = vec![serde_json::json!({"field": field, "message": message})];
    invalid(&format!("{field}: {message}"), problems)
}

/// An `INVALID_PAYLOAD` error listing every problem as `{field, message}`.
pub(crate) fn invalid(message: &str, problems: Vec<serde_json::Value>) -> Error {
    Error::new(message).extend_with(move |_, extensions| {
        extensions.set("code", "INVALID_PAYLOAD");
        if let Ok(value) =
            async_graphql::Value::from_json(serde_json::Value::Array(problems.clone()))
        {
            extensions.set("problems", value);
        }
    })
}

pub(crate) fn not_found(what: &str) -> Error {
    coded(&format!("no such {what}"), "NOT_FOUND")
}

/// An unexpected failure: logged with its cause, reported without it.
pub(crate) fn internal(error: impl std::fmt::Display) -> Error {
    tracing::error!(error = %error, "GraphQL request failed");
    coded("internal error", "INTERNAL")
}

pub(crate) fn unexpected(what: &str) -> Error {
    internal(what)
}

pub(crate) fn parse_id(id: &ID, field: &str) -> async_graphql::Result<Uuid> {
    id.parse().map_err(|_| bad_input(field, &format!("{:?} is not an id", id.as_str())))
}

/// Domain errors as GraphQL errors with codes.
pub(crate) trait GraphError {
    fn into_graph(self) -> Error;
}

pub(crate) fn domain_error(error: impl GraphError) -> Error {
    error.into_graph()
}

fn problems(list: &[domain::targeting::RuleProblem]) -> Vec<serde_json::Value> {
    list.iter().map(|p| serde_json::json!({"field": p.field, "message": p.message})).collect()
}

impl GraphError for domain::triage::TriageError {
    fn into_graph(self) -> Error {
        use domain::triage::TriageError as E;
        match self {
            E::Invalid(list) => invalid(&E::Invalid(list.clone()).to_string(), problems(&list)),
            E::AlertNotFound(_) => not_found("alert"),
            E::IndicatorNotFound(_) => not_found("indicator"),
            E::Db(error) => internal(error),
        }
    }
}

impl GraphError for domain::context::DocumentError {
    fn into_graph(self) -> Error {
        use domain::context::DocumentError as E;
        match self {
            E::Invalid(invalid_document) => {
                invalid(&invalid_document.to_string(), problems(&invalid_document.problems))
            }
            E::NotFound(_) => not_found("context document"),
            E::Db(error) => internal(error),
        }
    }
}

impl GraphError for domain::detection_rule::RuleError {
    fn into_graph(self) -> Error {
        use domain::detection_rule::RuleError as E;
        match self {
            E::Invalid(list) => invalid(&E::Invalid(list.clone()).to_string(), problems(&list)),
            error @ E::Duplicate(..) => coded(&error.to_string(), "CONFLICT"),
            E::NotFound(_) => not_found("detection rule"),
            E::Db(error) => internal(error),
        }
    }
}

impl GraphError for domain::agent::AgentError {
    fn into_graph(self) -> Error {
        use domain::agent::AgentError as E;
        match self {
            E::Invalid(list) => invalid(&E::Invalid(list.clone()).to_string(), problems(&list)),
            error @ E::Duplicate(_) => coded(&error.to_string(), "CONFLICT"),
            E::NotFound(_) => not_found("agent"),
            E::Secret(error) => internal(error),
            E::Db(error) => internal(error),
        }
    }
}
