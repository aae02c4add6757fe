//! The MCP server (SPEC §7): tools generated from GraphQL operation files ([`catalog`]) and
//! resources for alerts, indicators, context documents and detection rules, served over
//! streamable HTTP at `/mcp` (bearer API key, checked before rmcp sees the request) and over
//! stdio by `alertgraph mcp-stdio`.
//!
//! A tool call runs its operation in-process against the GraphQL schema as the caller, so
//! scopes, validation and errors are exactly GraphQL's; a GraphQL error becomes a tool error
//! carrying its code.

pub mod catalog;

use std::sync::Arc;

use async_graphql::Variables;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use domain::api_key::Principal;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    ReadResourceRequestParams, ReadResourceResponse, ReadResourceResult, Resource,
    ResourceContents, ResourceTemplate, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::graphql::AlertgraphSchema;
use crate::state::AppState;
pub use catalog::{Catalog, CatalogError, CatalogErrors, OperationFile};

const INSTRUCTIONS: &str = "alertgraph holds security alerts from SIEMs, normalized and \
enriched: each alert links to its indicators (IPs, domains, hashes, URLs, emails, accounts) \
with every threat-intelligence provider's findings and a malice verdict, to its detection rule \
and to runbooks. Start with search_alerts, read one with get_alert, pivot on an indicator with \
get_indicator or get_related_alerts, then record what you concluded with add_finding, \
update_alert_status and set_alert_malice.";

/// Who is calling.
#[derive(Clone)]
enum Caller {
    /// Streamable HTTP: the principal [`authenticate`] put on each request.
    Http,
    /// stdio: one key for the whole session, checked on every call so a revoked key stops.
    Key(Arc<str>),
}

/// The MCP server over one schema and catalog.
#[derive(Clone)]
pub struct McpServer {
    state: AppState,
    schema: AlertgraphSchema,
    catalog: Arc<Catalog>,
    caller: Caller,
}

impl McpServer {
    /// A server for stdio, acting with `key`.
    pub fn with_key(state: AppState, schema: AlertgraphSchema, key: &str) -> McpServer {
        let catalog = state.catalog.clone();
        McpServer { state, schema, catalog, caller: Caller::Key(Arc::from(key)) }
    }

    async fn principal(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<Principal, ErrorData> {
        match &self.caller {
            Caller::Http => context
                .extensions
                .get::<axum::http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<Principal>())
                .cloned()
                .ok_or_else(|| ErrorData::invalid_request("an API key is required", None)),
            Caller::Key(key) => self.state.authenticate(key).await.map_err(|error| {
                ErrorData::invalid_request(format!("ALERTGRAPH_API_KEY: {error}"), None)
            }),
        }
    }

    async fn execute(
        &self,
        principal: Principal,
        document: &str,
        operation_name: Option<&str>,
        variables: Variables,
    ) -> async_graphql::Response {
        let mut request = async_graphql::Request::new(document).variables(variables);
        if let Some(name) = operation_name {
            request = request.operation_name(name);
        }
        crate::graphql::execute_as(&self.schema, &self.state, principal, request).await
    }
}

/// The service mounted at `/mcp`: stateless streamable HTTP, so any server replica can answer
/// any request.
pub(crate) fn service(
    state: AppState,
    schema: AlertgraphSchema,
) -> StreamableHttpService<McpServer, LocalSessionManager> {
    let allowed_hosts = state.cfg.mcp_allowed_hosts.clone();
    let server = McpServer { catalog: state.catalog.clone(), state, schema, caller: Caller::Http };
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None);
    config = if allowed_hosts.is_empty() {
        config.disable_allowed_hosts()
    } else {
        config.with_allowed_hosts(allowed_hosts)
    };
    StreamableHttpService::new(move || Ok(server.clone()), Default::default(), config)
}

/// Answers 401 without a valid key; otherwise puts the caller on the request for the tools.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let verified = match crate::http::bearer(request.headers()) {
        Ok(key) => state.authenticate(key).await,
        Err(error) => Err(error),
    };
    match verified {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// Serves MCP on stdin and stdout until the client closes them.
pub async fn serve_stdio(server: McpServer) -> Result<(), std::io::Error> {
    use rmcp::ServiceExt;
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|error| std::io::Error::other(error.to_string()))?;
    running.waiting().await.map_err(std::io::Error::other)?;
    Ok(())
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().enable_resources().build())
            .with_server_info(Implementation::new("alertgraph", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.catalog.tools().cloned().collect()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let principal = self.principal(&context).await?;
        let Some(tool) = self.catalog.get(&request.name) else {
            return Err(ErrorData::invalid_params(
                format!("no tool named {:?}; tools/list shows them", request.name),
                None,
            ));
        };
        let arguments = request.arguments.unwrap_or_default();
        let unknown: Vec<&str> = arguments
            .keys()
            .map(String::as_str)
            .filter(|name| !tool.variables.iter().any(|variable| variable == name))
            .collect();
        if !unknown.is_empty() {
            let message = format!(
                "unknown argument(s) {}; {} takes {}",
                unknown.join(", "),
                tool.tool.name,
                if tool.variables.is_empty() { "none".into() } else { tool.variables.join(", ") }
            );
            let error = json!({"message": message, "code": "INVALID_PAYLOAD"});
            return Ok(tool_error(vec![error], Value::Null).into());
        }
        let variables = Variables::from_json(Value::Object(arguments));
        let response =
            self.execute(principal, &tool.document, Some(&tool.operation_name), variables).await;
        if response.errors.is_empty() {
            // The text an agent reads keeps the fields in the response's order, which is the
            // operation's except that async-graphql puts a field that finishes late after its
            // siblings (async-graphql#612); a JSON object value would sort them by name.
            let text = ordered_json(&response.data);
            let mut result =
                CallToolResult::structured(response.data.into_json().unwrap_or(Value::Null));
            result.content = vec![ContentBlock::text(text)];
            return Ok(result.into());
        }
        let data = response.data.into_json().unwrap_or(Value::Null);
        let errors = response
            .errors
            .into_iter()
            .map(|error| {
                serde_json::to_value(&error).unwrap_or_else(|_| json!({"message": error.message}))
            })
            .map(|mut error| {
                let code =
                    error["extensions"]["code"].as_str().unwrap_or("INVALID_PAYLOAD").to_owned();
                error["code"] = Value::String(code);
                error
            })
            .collect();
        Ok(tool_error(errors, data).into())
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        let templates = RESOURCES
            .iter()
            .filter(|kind| self.catalog.by_operation(kind.operation).is_some())
            .map(|kind| {
                ResourceTemplate::new(kind.template, kind.name)
                    .with_title(kind.title)
                    .with_description(kind.description)
                    .with_mime_type("application/json")
            })
            .collect();
        Ok(ListResourceTemplatesResult::with_all_items(templates))
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let principal = self.principal(&context).await?;
        let response = self.execute(principal, RECENT_ALERTS, None, Variables::default()).await;
        // A key that may not read alerts sees no resources, not an error.
        let data = response.data.into_json().unwrap_or(Value::Null);
        let resources = data["alerts"]["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|alert| {
                let id = alert["id"].as_str()?;
                let title = alert["title"].as_str().unwrap_or(id);
                Some(
                    Resource::new(format!("alertgraph://alerts/{id}"), format!("alert-{id}"))
                        .with_title(title)
                        .with_description(format!(
                            "{} alert, {}, {}",
                            alert["severity"].as_str().unwrap_or("?"),
                            alert["status"].as_str().unwrap_or("?"),
                            alert["ingestedAt"].as_str().unwrap_or("?"),
                        ))
                        .with_mime_type("application/json"),
                )
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let principal = self.principal(&context).await?;
        let (kind, variables) = parse_resource_uri(&request.uri)?;
        let Some(tool) = self.catalog.by_operation(kind.operation) else {
            return Err(ErrorData::resource_not_found(
                format!("{} resources are not served here", kind.name),
                None,
            ));
        };
        let response = self
            .execute(
                principal,
                &tool.document,
                Some(&tool.operation_name),
                Variables::from_json(variables),
            )
            .await;
        if let Some(error) = response.errors.first() {
            let code = error
                .extensions
                .as_ref()
                .and_then(|extensions| extensions.get("code"))
                .map(|code| code.to_string().trim_matches('"').to_owned())
                .unwrap_or_default();
            let message = format!("{code}: {}", error.message);
            return Err(if code == "NOT_FOUND" {
                ErrorData::resource_not_found(message, None)
            } else {
                ErrorData::invalid_params(message, None)
            });
        }
        let found = match &response.data {
            async_graphql::Value::Object(root) => root.values().next(),
            _ => None,
        };
        let Some(found) = found.filter(|found| **found != async_graphql::Value::Null) else {
            return Err(ErrorData::resource_not_found(format!("nothing at {}", request.uri), None));
        };
        let contents = ResourceContents::text(ordered_json(found), request.uri.clone())
            .with_mime_type("application/json");
        Ok(ReadResourceResult::new(vec![contents]).into())
    }
}

/// `value` as compact JSON, its objects' fields in the response's order.
fn ordered_json(value: &async_graphql::Value) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}

/// A tool error: the errors as text an agent reads (`CODE: message`), and as structured
/// content with any partial data.
fn tool_error(errors: Vec<Value>, data: Value) -> CallToolResult {
    let text = errors
        .iter()
        .map(|error| {
            let code = error["code"].as_str().unwrap_or("ERROR");
            let message = error["message"].as_str().unwrap_or("unknown error");
            match error.get("path").and_then(Value::as_array) {
                Some(path) if !path.is_empty() => {
                    let path: Vec<String> = path
                        .iter()
                        .map(|part| part.as_str().map_or_else(|| part.to_string(), str::to_owned))
                        .collect();
                    format!("{code}: {message} (at {})", path.join("."))
                }
                _ => format!("{code}: {message}"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    let mut structured = json!({"errors": errors});
    if !data.is_null() {
        structured["data"] = data;
    }
    result.structured_content = Some(structured);
    result
}

/// A kind of resource and the operation that reads it.
struct ResourceKind {
    template: &'static str,
    name: &'static str,
    title: &'static str,
    description: &'static str,
    operation: &'static str,
}

const RESOURCES: [ResourceKind; 4] = [
    ResourceKind {
        template: "alertgraph://alerts/{id}",
        name: "alert",
        title: "Alert",
        description: "An alert with its full context, as get_alert returns it: indicators with \
                      verdicts and provider findings, detection rule, runbooks, findings.",
        operation: "GetAlert",
    },
    ResourceKind {
        template: "alertgraph://indicators/{type}/{value}",
        name: "indicator",
        title: "Indicator",
        description: "An indicator by type (ip, domain, url, hash_md5, hash_sha1, hash_sha256, \
                      email, account) and URL-encoded value, with its enrichments and alerts.",
        operation: "GetIndicator",
    },
    ResourceKind {
        template: "alertgraph://context-documents/{id}",
        name: "context-document",
        title: "Context document",
        description: "A runbook, IR plan, SOP or other context document, with its content.",
        operation: "GetContextDocument",
    },
    ResourceKind {
        template: "alertgraph://detection-rules/{id}",
        name: "detection-rule",
        title: "Detection rule",
        description: "A detection rule with its MITRE ATT&CK mapping and documentation.",
        operation: "GetDetectionRule",
    },
];

const RECENT_ALERTS: &str =
    "query { alerts(first: 20) { nodes { id title severity status ingestedAt } } }";

/// The resource kind of `uri` and the variables of its operation.
fn parse_resource_uri(uri: &str) -> Result<(&'static ResourceKind, Value), ErrorData> {
    let not_found = || {
        ErrorData::resource_not_found(
            format!(
                "{uri:?} is not an alertgraph resource; resources/templates/list shows the forms"
            ),
            None,
        )
    };
    let path = uri.strip_prefix("alertgraph://").ok_or_else(not_found)?;
    let (collection, rest) = path.split_once('/').ok_or_else(not_found)?;
    let decode = |text: &str| {
        percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .map(|text| text.into_owned())
            .map_err(|_| not_found())
    };
    let kind = |operation: &str| RESOURCES.iter().find(|kind| kind.operation == operation);
    match collection {
        "alerts" | "context-documents" | "detection-rules"
            if !rest.is_empty() && !rest.contains('/') =>
        {
            let operation = match collection {
                "alerts" => "GetAlert",
                "context-documents" => "GetContextDocument",
                _ => "GetDetectionRule",
            };
            Ok((kind(operation).ok_or_else(not_found)?, json!({"id": decode(rest)?})))
        }
        "indicators" => {
            // The value may itself hold slashes (a URL), so it is everything after the type.
            let (indicator_type, value) = rest.split_once('/').ok_or_else(not_found)?;
            let wanted: String =
                indicator_type.chars().filter(|c| *c != '_').collect::<String>().to_uppercase();
            let indicator_type = INDICATOR_TYPES
                .iter()
                .find(|name| name.replace('_', "") == wanted)
                .ok_or_else(|| {
                    ErrorData::resource_not_found(
                        format!(
                            "{indicator_type:?} is not an indicator type; expected ip, domain, url, \
                             hash_md5, hash_sha1, hash_sha256, email or account"
                        ),
                        None,
                    )
                })?;
            let value = decode(value)?;
            if value.is_empty() {
                return Err(not_found());
            }
            Ok((
                kind("GetIndicator").ok_or_else(not_found)?,
                json!({"type": indicator_type, "value": value}),
            ))
        }
        _ => Err(not_found()),
    }
}

/// The GraphQL names of the indicator types.
const INDICATOR_TYPES: [&str; 8] =
    ["IP", "DOMAIN", "URL", "HASH_MD5", "HASH_SHA1", "HASH_SHA256", "EMAIL", "ACCOUNT"];
