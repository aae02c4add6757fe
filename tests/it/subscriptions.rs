//! GraphQL subscriptions over a real WebSocket speaking graphql-transport-ws: a filtered
//! `alertEnriched` hears exactly the matching alert, on every server replica, fed by
//! PostgreSQL NOTIFY from a separate worker.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{TestApp, json_with_status, provider_fixture, run_worker, spawn_app};

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A graphql-transport-ws client: connects, authenticates in `connection_init`, subscribes.
async fn subscribe(app: &TestApp, key: &str, query: &str) -> Socket {
    let mut request = format!("ws://{}/graphql/ws", app.address).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.headers()["sec-websocket-protocol"], "graphql-transport-ws");
    let init =
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {key}")}});
    socket.send(Message::text(init.to_string())).await.unwrap();
    let ack = next_message(&mut socket, Duration::from_secs(5)).await.expect("connection_ack");
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    let subscribe = json!({"id": "1", "type": "subscribe", "payload": {"query": query}});
    socket.send(Message::text(subscribe.to_string())).await.unwrap();
    socket
}

/// The next protocol message within `wait`, answering pings; `None` on timeout.
async fn next_message(socket: &mut Socket, wait: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let message = tokio::time::timeout_at(deadline, socket.next()).await.ok()??.ok()?;
        if let Message::Text(text) = message {
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["type"] == "ping" {
                socket.send(Message::text(json!({"type": "pong"}).to_string())).await.unwrap();
                continue;
            }
            return Some(value);
        }
    }
}

const HIGH_ONLY: &str = "subscription { alertEnriched(filter: {minSeverity: HIGH}) {
    alert { id title severity indicators { type value } } } }";

async fn ingest(app: &TestApp, payload: Value) -> String {
    let receipt = json_with_status(app.ingest("generic", payload.to_string()).await, 202).await;
    receipt["alert_id"].as_str().unwrap().to_owned()
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_filtered_subscriber_on_each_server_hears_exactly_the_matching_alert(db: PgPool) {
    let db = crate::helpers::wider(&db);
    // Two server processes on different ports against one database, and one worker.
    let first = spawn_app(db.clone()).await;
    let second = spawn_app(db.clone()).await;
    let mut sockets = vec![
        subscribe(&first, &first.admin_key, HIGH_ONLY).await,
        subscribe(&second, &first.admin_key, HIGH_ONLY).await,
    ];
    // The subscription is registered once the server has answered nothing yet; give the
    // subscribe message a moment to be processed.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let high =
        ingest(&first, json!({"title": "Ransomware", "severity": "high", "src_ip": "203.0.113.7"}))
            .await;
    ingest(&second, json!({"title": "Noise", "severity": "low"})).await;
    run_worker(&db).await;

    for socket in &mut sockets {
        let event = next_message(socket, Duration::from_secs(5)).await.expect("an event");
        assert_eq!(event["type"], "next", "{event}");
        assert_eq!(event["id"], "1");
        let alert = &event["payload"]["data"]["alertEnriched"]["alert"];
        assert_eq!(alert["id"], high.as_str());
        assert_eq!(alert["severity"], "HIGH");
        assert_eq!(alert["indicators"], json!([{"type": "IP", "value": "203.0.113.7"}]));
        assert!(
            next_message(socket, Duration::from_millis(500)).await.is_none(),
            "exactly one event: the Low alert is filtered out"
        );
    }
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn updates_are_pushed_and_a_bad_key_is_turned_away(db: PgPool) {
    let db = crate::helpers::wider(&db);
    let app = spawn_app(db.clone()).await;
    let alert = ingest(&app, json!({"title": "Watch me"})).await;
    run_worker(&db).await;
    let mut socket =
        subscribe(&app, &app.admin_key, "subscription { alertUpdated { alert { id status } } }")
            .await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    app.graphql(
        "mutation($id: ID!) { updateAlert(id: $id, input: {status: TRIAGING}) { status } }",
        json!({"id": alert}),
    )
    .await;
    let event = next_message(&mut socket, Duration::from_secs(5)).await.expect("an update");
    assert_eq!(
        event["payload"]["data"]["alertUpdated"]["alert"],
        json!({"id": alert, "status": "TRIAGING"})
    );

    let mut request = format!("ws://{}/graphql/ws", app.address).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut intruder, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init = json!({"type": "connection_init", "payload": {"Authorization": "Bearer cai_wrong"}});
    intruder.send(Message::text(init.to_string())).await.unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(5), intruder.next()).await.unwrap();
    assert!(
        matches!(refused, Some(Ok(Message::Close(_))) | None | Some(Err(_))),
        "the connection is closed: {refused:?}"
    );
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn an_enriched_event_carries_the_webhook_metadata(db: PgPool) {
    let db = crate::helpers::wider(&db);
    let app = spawn_app(db.clone()).await;
    // Two providers: one answers, the other refuses its key.
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/up/v3/community/203.0.113.9"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(provider_fixture("responses/greynoise.noise_malicious.json")),
        )
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/down/v3/community/203.0.113.9"))
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({"message": "bad key"})))
        .mount(&mock)
        .await;
    for name in ["noise_up", "noise_down"] {
        let mut definition = provider_fixture("greynoise.provider.json");
        definition["provider_name"] = name.into();
        definition["http_config"]["steps"][0]["url"] =
            format!("{}/{}/v3/community/{{{{indicator.value}}}}", mock.uri(), &name[6..]).into();
        let created = app
            .graphql(
                "mutation($d: JSON!) { createEnrichmentProvider(definition: $d, credentials: {api_key: \"k\"}) { hasStoredCredentials } }",
                json!({"d": definition}),
            )
            .await;
        assert_eq!(created["createEnrichmentProvider"]["hasStoredCredentials"], true);
    }
    app.graphql(
        r#"mutation { createContextDocument(input: {title: "Triage guide", content: "Look first.", isGlobal: true}) { id } }"#,
        json!({}),
    )
    .await;

    let mut socket = subscribe(
        &app,
        &app.admin_key,
        "subscription { alertEnriched { alert { id } metadata { generatedAt indicatorCount
            enrichment { succeeded failed enrichedAt } detectionRuleMatched contextDocumentsApplied } } }",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let alert = ingest(&app, json!({"title": "Scan", "src_ip": "203.0.113.9"})).await;
    run_worker(&db).await;

    let event = next_message(&mut socket, Duration::from_secs(5)).await.expect("an event");
    let enriched = &event["payload"]["data"]["alertEnriched"];
    assert_eq!(enriched["alert"]["id"], alert.as_str(), "{event}");
    let metadata = &enriched["metadata"];
    assert_eq!(
        (&metadata["indicatorCount"], &metadata["detectionRuleMatched"]),
        (&json!(1), &json!(false))
    );
    assert_eq!(metadata["contextDocumentsApplied"], 1);
    assert_eq!(metadata["enrichment"]["succeeded"], json!(["noise_up"]), "{event}");
    assert_eq!(metadata["enrichment"]["failed"], json!(["noise_down"]), "{event}");
    assert!(metadata["enrichment"]["enrichedAt"].is_string(), "{event}");
    assert!(metadata["generatedAt"].is_string(), "{event}");
}
