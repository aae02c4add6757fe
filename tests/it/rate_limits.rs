//! Per-key rate limits (SPEC §8): a key's budget a minute holds for every server replica
//! together, and whatever a limited key asks for past it is refused with 429 `RATE_LIMITED`
//! and `Retry-After`, over REST, GraphQL and MCP alike, with nothing of it stored.

use std::time::Duration;

use serde_json::{Value, json};
use sqlx::PgPool;

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
