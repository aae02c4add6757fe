//! Per-key rate limits (SPEC §8): a key's budget a minute holds for every server replica
//! together, and whatever a limited key asks for past it is refused with 429 `RATE_LIMITED`
//! and `Retry-After`, over REST, GraphQL and MCP alike, with nothing of it stored.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::helpers::{count, json_with_status, spawn_app};

/// Waits out the current minute when little of it is left: a budget is per minute, and a test
/// whose requests straddle two minutes would get two budgets.
async fn away_from_a_minute_boundary(db: &PgPool) {
    let left: f64 = sqlx::query_scalar(
        "select extract(epoch from date_trunc('minute', now()) + interval '1 minute' - now())::float8",
    )
    .fetch_one(db)
    .await
    .unwrap();
    if left < 20.0 {
        tokio::time::sleep(Duration::from_secs_f64(left + 0.2)).await;
    }
}

/// Checks a refusal's status, code and `Retry-After`, and returns the body.
async fn refused(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "Retry-After: {retry_after}");
    let body: Value = response.json().await.unwrap();
    let code = body["error"]["code"].as_str().or(body["errors"][0]["extensions"]["code"].as_str());
    assert_eq!(code, Some("RATE_LIMITED"), "{body}");
    body
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_key_past_its_budget_is_refused_by_every_replica_over_every_interface(db: PgPool) {
    let (first, second) = (spawn_app(db.clone()).await, spawn_app(db.clone()).await);
    let (status, body) = first
        .graphql_as(
            &first.admin_key.clone(),
            r#"mutation { createApiKey(input: {name: "flood", scopes: ["alerts:write"], rateLimitPerMinute: 0}) { key } }"#,
            json!({}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["errors"][0]["extensions"]["problems"][0]["field"], "rateLimitPerMinute");
    let created = first
        .graphql(
            r#"mutation { createApiKey(input: {name: "siem", scopes: ["alerts:write"], rateLimitPerMinute: 4}) { key apiKey { rateLimitPerMinute } } }"#,
            json!({}),
        )
        .await;
    assert_eq!(created["createApiKey"]["apiKey"]["rateLimitPerMinute"], 4);
    let key = created["createApiKey"]["key"].as_str().unwrap().to_owned();

    away_from_a_minute_boundary(&db).await;
    let alert = |n: u32| json!({"title": format!("Alert {n}"), "severity": "low"}).to_string();
    for (n, app) in [&first, &second, &first, &second].into_iter().enumerate() {
        let receipt = app.ingest_with_key("generic", alert(n as u32), &key).await;
        json_with_status(receipt, 202).await;
    }
    // The fifth request of the minute, on either replica.
    let body = refused(first.ingest_with_key("generic", alert(5), &key).await).await;
    assert_eq!(body["error"]["details"]["limit_per_minute"], 4);
    refused(second.ingest_with_key("generic", alert(6), &key).await).await;
    assert_eq!(count(&db, "alert").await, 4, "a refused alert was stored");
    let graphql = second
        .client
        .post(second.url("/graphql"))
        .bearer_auth(&key)
        .json(&json!({"query": "{ viewer { name } }"}))
        .send()
        .await
        .unwrap();
    let body = refused(graphql).await;
    // About the request, not a place in its document.
    assert!(body["errors"][0].get("locations").is_none(), "{body}");
    let mcp = first
        .client
        .post(first.url("/mcp"))
        .bearer_auth(&key)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}))
        .send()
        .await
        .unwrap();
    refused(mcp).await;

    // Keys without a limit are not held back by another key's.
    for app in [&first, &second] {
        let accepted = app.ingest("generic", alert(7)).await;
        json_with_status(accepted, 202).await;
    }
}

/// A limited key's new agent key, created through GraphQL as an admin would.
async fn limited_key(app: &crate::helpers::TestApp, limit: i32) -> String {
    let created = app
        .graphql(
            "mutation($limit: Int!) { createApiKey(input: {name: \"agent\", scopes: [\"alerts:write\"], rateLimitPerMinute: $limit}) { key } }",
            json!({"limit": limit}),
        )
        .await;
    created["createApiKey"]["key"].as_str().unwrap().to_owned()
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn concurrent_requests_on_two_replicas_get_exactly_the_budget(db: PgPool) {
    // 40 a minute: each server takes the budget two requests at a time.
    let (first, second) = (spawn_app(db.clone()).await, spawn_app(db.clone()).await);
    let key = limited_key(&first, 40).await;
    away_from_a_minute_boundary(&db).await;
    let requests = (0..100).map(|n| {
        let (app, key) = (if n % 2 == 0 { &first } else { &second }, key.clone());
        async move {
            let body = json!({"title": format!("Burst {n}")}).to_string();
            app.ingest_with_key("generic", body, &key).await.status().as_u16()
        }
    });
    let statuses = futures::future::join_all(requests).await;
    let admitted = statuses.iter().filter(|&&status| status == 202).count();
    let refused = statuses.iter().filter(|&&status| status == 429).count();
    assert_eq!((admitted, refused), (40, 60), "{statuses:?}");
    assert_eq!(count(&db, "alert").await, 40);
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn every_operation_on_a_websocket_counts_against_the_key(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let key = limited_key(&app, 3).await;
    away_from_a_minute_boundary(&db).await;
    let mut request = format!("ws://{}/graphql/ws", app.address).into_client_request().unwrap();
    request.headers_mut().insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    // The connection is the first request, each operation the next.
    let init =
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {key}")}});
    socket.send(Message::text(init.to_string())).await.unwrap();
    assert_eq!(receive(&mut socket).await["type"], "connection_ack");
    for id in ["1", "2", "3"] {
        let subscribe =
            json!({"id": id, "type": "subscribe", "payload": {"query": "{ viewer { name } }"}});
        socket.send(Message::text(subscribe.to_string())).await.unwrap();
        let answer = receive(&mut socket).await;
        if id == "3" {
            // async-graphql answers a refused operation with a result holding only errors.
            assert_eq!(answer["type"], "next", "{answer}");
            let error = &answer["payload"]["errors"][0];
            assert_eq!(error["extensions"]["code"], "RATE_LIMITED", "{answer}");
            assert_eq!(error["extensions"]["limitPerMinute"], 3, "{answer}");
            assert!(answer["payload"]["data"].is_null(), "{answer}");
        } else {
            assert_eq!(answer["type"], "next", "{answer}");
            assert_eq!(answer["payload"]["data"]["viewer"]["name"], "agent");
            assert_eq!(receive(&mut socket).await["type"], "complete");
        }
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text message within 5 s.
async fn receive(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("an answer within 5 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}
