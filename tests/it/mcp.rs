//! The MCP server: tools generated from `operations/`, driven by the official Python SDK over
//! streamable HTTP and over stdio, plus raw JSON-RPC for authentication, scopes, operation
//! files added at run time, and a tool list that must match its committed snapshot.

use std::path::{Path, PathBuf};

use domain::api_key::Scope;
use serde_json::{Value, json};
use sqlx::PgPool;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{TestApp, create_key, fixture, spawn_app, spawn_app_with, test_key};

/// A public IP no fixture holds, enriched on demand through a mocked VirusTotal.
const FRESH_IP: &str = "45.155.205.233";

/// Runs tests/mcp/client.py with `config` and returns what it printed.
async fn python_client(config: Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp/client.py");
    let output = tokio::process::Command::new(crate::helpers::python())
        .arg(script)
        .arg(config.to_string())
        .output()
        .await
        .expect("running the Python MCP client");
    assert!(
        output.status.success(),
        "the Python MCP client failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!("client output is not JSON ({error}): {}", String::from_utf8_lossy(&output.stdout))
    })
}

/// The app with the Sentinel and Elastic fixtures ingested and VirusTotal (with stored
/// credentials) answering for [`FRESH_IP`] from a local mock.
async fn seeded(db: &PgPool) -> (TestApp, MockServer) {
    let app = spawn_app(db.clone()).await;
    for (source, file) in [
        ("sentinel", "01_sentinel_brute_force_tor.json"),
        ("elastic", "02_elastic_malware_hash.json"),
    ] {
        let response = app.ingest(source, fixture(file)).await;
        assert_eq!(response.status(), 202);
    }
    crate::helpers::run_worker(db).await;
    let mock = MockServer::start().await;
    let update = domain::provider::registry::ProviderUpdate {
        base_url: Some(Some(format!("{}/api/v3", mock.uri()))),
        ..Default::default()
    };
    domain::provider::registry::update(db, "virustotal", &update, "tests").await.unwrap();
    let fields = std::collections::BTreeMap::from([("api_key".to_owned(), "vt-mcp".to_owned())]);
    domain::provider::registry::set_credentials(db, &test_key(), "virustotal", &fields, "tests")
        .await
        .unwrap();
    let body = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/providers/responses/virustotal.ip_malicious.json"
    ))
    .unwrap();
    Mock::given(method("GET"))
        .and(path(format!("/api/v3/ip_addresses/{FRESH_IP}")))
        .and(header("x-apikey", "vt-mcp"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "application/json"))
        .mount(&mock)
        .await;
    // The server's enricher picks the new settings up from NOTIFY; give it a moment.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    (app, mock)
}

/// What every real-client session must have seen (tests/mcp/client.py's `session`).
fn check_session(out: &Value, db_alerts: usize) {
    let tools = out["tools"].as_array().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    for required in [
        "search_alerts",
        "get_alert",
        "get_indicator",
        "search_indicators",
        "enrich_indicator",
        "update_alert_status",
        "set_alert_malice",
        "set_indicator_malice",
        "add_finding",
        "search_detection_rules",
        "list_context_documents",
        "get_related_alerts",
    ] {
        assert!(names.contains(&required), "{required} missing from {names:?}");
    }
    let tool = |name: &str| tools.iter().find(|t| t["name"] == name).unwrap();
    assert_eq!(tool("get_alert")["read_only"], true);
    assert_eq!(tool("add_finding")["destructive"], true);
    assert_eq!(tool("get_alert")["input_schema"]["required"], json!(["id"]));

    let search = &out["search_alerts"];
    assert_eq!(search["is_error"], false, "{search}");
    let alerts = &search["structured"]["alerts"];
    assert_eq!(alerts["totalCount"], 1, "one sentinel alert of {db_alerts}: {alerts}");
    assert_eq!(alerts["nodes"][0]["source"], "sentinel");
    // The text content is the same data as compact JSON, its fields in the operation's order.
    let text = search["text"].as_str().unwrap();
    assert_eq!(serde_json::from_str::<Value>(text).unwrap(), search["structured"]);
    let node = text.split(r#""nodes":[{"#).nth(1).unwrap_or_default();
    assert!(node.starts_with(r#""id":""#) && node.contains(r#"","title":""#), "{text}");

    let alert = &out["get_alert"]["structured"]["alert"];
    assert_eq!(out["get_alert"]["is_error"], false, "{}", out["get_alert"]);
    let values: Vec<&str> = alert["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["value"].as_str().unwrap())
        .collect();
    assert!(values.contains(&"185.220.101.34"), "{values:?}");
    assert!(alert["detectionRule"]["name"].is_string(), "{alert}");

    let enriched = &out["enrich_indicator"];
    assert_eq!(enriched["is_error"], false, "{enriched}");
    let indicator = &enriched["structured"]["enrichIndicator"];
    assert_eq!(indicator["value"], FRESH_IP);
    assert_eq!(indicator["malice"], "MALICIOUS", "{indicator}");
    let vt = indicator["enrichments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["provider"] == "virustotal")
        .unwrap_or_else(|| panic!("no VirusTotal result: {indicator}"));
    assert_eq!(vt["success"], true);
    assert!(vt["extracted"].as_object().is_some_and(|e| !e.is_empty()), "{vt}");
    // Raw provider answers only on request.
    assert!(vt.get("raw").is_none(), "{vt}");
    let looked_up = &out["get_indicator_raw"]["structured"]["indicator"];
    assert_eq!(looked_up["alertCount"], 0);
    assert!(looked_up["enrichments"][0]["raw"].is_object(), "{looked_up}");

    let finding = &out["add_finding"];
    assert_eq!(finding["is_error"], false, "{finding}");
    assert_eq!(finding["structured"]["addFinding"]["agentName"], "python-sdk");
    assert_eq!(finding["structured"]["addFinding"]["confidence"], 0.9);

    let unknown = &out["unknown_argument"];
    assert_eq!(unknown["is_error"], true);
    assert!(unknown["text"].as_str().unwrap().contains("bogus"), "{unknown}");

    let templates: Vec<&str> =
        out["resource_templates"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
    for template in [
        "alertgraph://alerts/{id}",
        "alertgraph://indicators/{type}/{value}",
        "alertgraph://context-documents/{id}",
        "alertgraph://detection-rules/{id}",
    ] {
        assert!(templates.contains(&template), "{templates:?}");
    }
    assert_eq!(out["alert_resource"]["id"], alert["id"]);
    assert_eq!(out["alert_resource"]["findings"][0]["agentName"], "python-sdk");
    assert_eq!(out["indicator_resource"]["value"], FRESH_IP);
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn the_python_sdk_works_over_streamable_http(db: PgPool) {
    let (app, _mock) = seeded(&db).await;
    let read_only =
        create_key(&db, "reader", &[Scope::AlertsRead, Scope::EnrichmentsRead], None).await;
    let out = python_client(json!({
        "mode": "http",
        "url": app.url("/mcp"),
        "key": app.admin_key,
        "read_only_key": read_only,
        "indicator": {"type": "IP", "value": FRESH_IP},
    }))
    .await;
    check_session(&out, 2);

    let forbidden = &out["forbidden"];
    assert_eq!(forbidden["is_error"], true, "{forbidden}");
    let text = forbidden["text"].as_str().unwrap();
    assert!(text.starts_with("FORBIDDEN:") && text.contains("alerts:write"), "{text}");
    assert_eq!(forbidden["structured"]["errors"][0]["code"], "FORBIDDEN");
    let findings: i64 =
        sqlx::query_scalar("select count(*) from finding").fetch_one(&db).await.unwrap();
    assert_eq!(findings, 1, "the refused call stored nothing");
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn the_python_sdk_works_over_stdio(db: PgPool) {
    let (_app, _mock) = seeded(&db).await;
    let scopes = [Scope::AlertsRead, Scope::AlertsWrite, Scope::EnrichmentsRead];
    let key = create_key(&db, "desktop", &scopes, None).await;
    let out = python_client(json!({
        "mode": "stdio",
        "command": env!("CARGO_BIN_EXE_alertgraph"),
        "args": ["mcp-stdio"],
        "env": {
            "DATABASE_URL": crate::cli::url_of(&db),
            "ALERTGRAPH_API_KEY": key,
            "ALERTGRAPH_SECRET_KEY": test_key().to_base64(),
            "ALERTGRAPH_OUTBOUND_ALLOW": "127.0.0.0/8",
            "ALERTGRAPH_DB_POOL_SIZE": "4",
            "RUST_LOG": "warn",
        },
        "indicator": {"type": "IP", "value": FRESH_IP},
    }))
    .await;
    check_session(&out, 2);
}

/// One JSON-RPC request to `/mcp`, answered as JSON (the server runs stateless).
async fn rpc(app: &TestApp, key: Option<&str>, method: &str, params: Value) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url("/mcp"))
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.expect("posting to /mcp")
}

async fn call_tool(app: &TestApp, key: &str, name: &str, arguments: Value) -> Value {
    let response =
        rpc(app, Some(key), "tools/call", json!({"name": name, "arguments": arguments})).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["result"].clone()
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn no_key_gets_401_and_a_missing_scope_is_a_tool_error(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    for key in [None, Some("cai_not_a_real_key")] {
        let response = rpc(&app, key, "tools/list", json!({})).await;
        assert_eq!(response.status(), 401, "{key:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    }

    let agent = create_key(&db, "reader", &[Scope::AlertsRead], None).await;
    let result = call_tool(
        &app,
        &agent,
        "add_finding",
        json!({"alertId": "00000000-0000-0000-0000-000000000000", "agentName": "a", "summary": "s"}),
    )
    .await;
    assert_eq!(result["isError"], true, "{result}");
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("FORBIDDEN") && text.contains("alerts:write"), "{text}");

    let result = call_tool(&app, &agent, "get_alert", json!({})).await;
    assert_eq!(result["isError"], true, "a missing required argument: {result}");
    assert!(result["content"][0]["text"].as_str().unwrap().contains("id"), "{result}");

    let missing = call_tool(&app, &agent, "get_alert", json!({"id": "not-an-id"})).await;
    assert_eq!(missing["isError"], true);
    assert_eq!(missing["structuredContent"]["errors"][0]["code"], "INVALID_PAYLOAD", "{missing}");
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn an_operation_file_added_at_run_time_becomes_a_tool(db: PgPool) {
    let dir = tempdir("extra-operations");
    std::fs::write(
        dir.join("CountOpenAlerts.graphql"),
        "# Count the open alerts of one severity and above.\n\
         query CountOpenAlerts($minSeverity: Severity = HIGH) {\n\
           alerts(filter: { status: [OPEN], minSeverity: $minSeverity }) { ...Total }\n\
         }\n\
         fragment Total on AlertConnection { totalCount }\n",
    )
    .unwrap();
    let cfg = server::ServerConfig {
        secret_key: Some(test_key()),
        operations_dir: Some(dir.clone()),
        ..Default::default()
    };
    let app = spawn_app_with(db.clone(), cfg).await;
    let response = app.ingest("sentinel", fixture("01_sentinel_brute_force_tor.json")).await;
    assert_eq!(response.status(), 202);

    let listed: Value =
        rpc(&app, Some(&app.admin_key), "tools/list", json!({})).await.json().await.unwrap();
    let tool = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "count_open_alerts")
        .unwrap_or_else(|| panic!("no count_open_alerts in {listed}"))
        .clone();
    assert_eq!(tool["description"], "Count the open alerts of one severity and above.");
    let severity = &tool["inputSchema"]["properties"]["minSeverity"];
    assert_eq!(severity["default"], "HIGH");
    assert!(severity["enum"].as_array().unwrap().contains(&json!("CRITICAL")), "{severity}");
    assert_eq!(tool["annotations"]["readOnlyHint"], true);

    let result =
        call_tool(&app, &app.admin_key, "count_open_alerts", json!({"minSeverity": "LOW"})).await;
    assert_eq!(result["structuredContent"], json!({"alerts": {"totalCount": 1}}), "{result}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn an_invalid_operation_file_is_refused_naming_the_file() {
    let cases = [
        (
            "Broken.graphql",
            "# Broken.\nquery Broken { alerts { totalCount }\n",
            "not a GraphQL document",
        ),
        (
            "UnknownField.graphql",
            "# Asks for a field that does not exist.\nquery UnknownField { alerts { noSuchField } }\n",
            "noSuchField",
        ),
        (
            "BadArgument.graphql",
            "# Passes an argument of the wrong type.\nquery BadArgument($first: String) { alerts(first: $first) { totalCount } }\n",
            "$first is declared String but argument first of alerts takes Int!",
        ),
        (
            "BadField.graphql",
            "# Passes a nullable id where one is required.\nquery BadField($id: ID) { alerts(filter: { indicatorId: $id }) { totalCount } alert(id: $id) { id } }\n",
            "$id is declared ID but argument id of alert takes ID!",
        ),
        (
            "UnknownArgument.graphql",
            "# Misspells an argument.\nquery UnknownArgument { alerts(firstt: 3) { totalCount } }\n",
            "firstt",
        ),
        ("Undescribed.graphql", "query Undescribed { alerts { totalCount } }\n", "no description"),
        ("Anonymous.graphql", "# No name.\n{ alerts { totalCount } }\n", "no name"),
    ];
    for (file, text, problem) in cases {
        let dir = tempdir(file);
        std::fs::write(dir.join(file), text).unwrap();
        let error = server::mcp::Catalog::load(Some(&dir)).await.expect_err(file);
        let message = error.to_string();
        assert!(message.contains(file) && message.contains(problem), "{file}: {message}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// Every operation in `operations/` is valid against the schema (building the catalog
/// validates each one), and the generated tools are those committed in
/// `tests/snapshots/mcp_tools.json`. After an intended change, regenerate the snapshot with
/// `UPDATE_SNAPSHOTS=1 cargo test --test it mcp_tools`.
#[tokio::test]
async fn mcp_tools_match_the_committed_snapshot() {
    let catalog = server::mcp::Catalog::load(None).await.unwrap_or_else(|error| panic!("{error}"));
    let generated =
        serde_json::to_string_pretty(&server::mcp::catalog::snapshot(&catalog)).unwrap() + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/snapshots/mcp_tools.json");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == generated,
        "the MCP tools changed; if that is intended, run `UPDATE_SNAPSHOTS=1 cargo test --test it mcp_tools` and commit tests/snapshots/mcp_tools.json"
    );
}

fn tempdir(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
