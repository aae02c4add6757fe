//! MCP tool-call overhead: `get_alert` called as an MCP tool (`POST /mcp`, `tools/call`) against
//! the same `GetAlert` operation sent to `POST /graphql`, on one alert with 5 indicators, 3
//! provider results each, and its detection rule, in a fresh database `alertgraph_bench_mcp` (on
//! the server `DATABASE_URL` names). One client, calls alternating between the two, so each
//! figure is a latency, not a queue. Prints p50 and p99 of each and the difference.

mod common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sqlx::Executor;

const WARMUP: usize = 300;
const CALLS: usize = 3000;

#[tokio::main]
async fn main() {
    let bench = common::BenchDatabase::create("alertgraph_bench_mcp", 16).await;
    let db = bench.db.clone();
    for statement in [
        "insert into detection_rule (name, source_name, source_rule_id, mitre_tactics,
                                     mitre_techniques, documentation)
         values ('Brute force from TOR', 'sentinel', 'bench-rule', array['CredentialAccess'],
                 array['T1110'], '# Brute force\nInvestigate the source IPs.')",
        "insert into alert (alert_id, title, description, severity, source_name, occurred_at, tags,
                            raw_payload, fingerprint, enrichment_status, enriched_at, malice,
                            detection_rule_id)
         select gen_random_uuid(), 'Bench alert', 'Generated for the benchmark', 'High',
                'sentinel', now(), array['bench'], '{}'::json, decode(md5('bench'), 'hex'),
                'Enriched', now(), 'Malicious', detection_rule_id
         from detection_rule",
        "insert into indicator (type, value, malice)
         select 'ip', '198.51.100.' || n, 'Malicious' from generate_series(1, 5) n",
        "insert into alert_indicator (alert_id, indicator_id)
         select a.alert_id, i.indicator_id from alert a cross join indicator i",
        "insert into enrichment_result (indicator_id, enrichment_provider_id, success, extracted,
                                        raw, malice, expires_at)
         select i.indicator_id, p.enrichment_provider_id, true,
                jsonb_build_object('reputation', -50, 'country', 'NL', 'asn', 'AS1234'),
                jsonb_build_object('lookup', jsonb_build_object('data', 'x')), 'Malicious',
                now() + interval '1 hour'
         from indicator i
         cross join (select enrichment_provider_id from enrichment_provider
                     where name in ('virustotal', 'abuseipdb', 'greynoise')) p",
        "analyze",
    ] {
        db.execute(statement).await.unwrap();
    }
    let alert_id: String =
        sqlx::query_scalar("select alert_id::text from alert").fetch_one(&db).await.unwrap();

    let state = server::AppState::new(db.clone(), server::ServerConfig::default()).await.unwrap();
    server::listener::spawn(state.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(server::http::without_delay(listener), server::app(state)).await
    });
    let key = common::api_key(&db, &[domain::api_key::Scope::Admin]).await;

    let client = reqwest::Client::new();
    let document = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/operations/GetAlert.graphql"
    ))
    .unwrap();
    let graphql = || {
        client
            .post(format!("http://{address}/graphql"))
            .bearer_auth(&key)
            .json(&json!({"query": document, "variables": {"id": alert_id}}))
    };
    let mcp = || {
        client
            .post(format!("http://{address}/mcp"))
            .bearer_auth(&key)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-06-18")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                          "params": {"name": "get_alert", "arguments": {"id": alert_id}}}))
    };

    // Both answer the same alert.
    let via_graphql: Value = graphql().send().await.unwrap().json().await.unwrap();
    let via_mcp: Value = mcp().send().await.unwrap().json().await.unwrap();
    assert_eq!(
        via_graphql["data"], via_mcp["result"]["structuredContent"],
        "the tool returns the operation's data"
    );
    assert_eq!(via_graphql["data"]["alert"]["indicators"].as_array().unwrap().len(), 5);

    let mut graphql_times = Vec::with_capacity(CALLS);
    let mut mcp_times = Vec::with_capacity(CALLS);
    for i in 0..WARMUP + CALLS {
        let started = Instant::now();
        let response = graphql().send().await.unwrap();
        assert!(response.status().is_success());
        response.bytes().await.unwrap();
        let graphql_took = started.elapsed();
        let started = Instant::now();
        let response = mcp().send().await.unwrap();
        assert!(response.status().is_success());
        response.bytes().await.unwrap();
        let mcp_took = started.elapsed();
        if i >= WARMUP {
            graphql_times.push(graphql_took);
            mcp_times.push(mcp_took);
        }
    }
    let (graphql_p50, graphql_p99) = percentiles(&mut graphql_times);
    let (mcp_p50, mcp_p99) = percentiles(&mut mcp_times);
    println!("get_alert, {CALLS} calls each, one client:");
    println!("  GraphQL over HTTP: p50 {:.2} ms, p99 {:.2} ms", ms(graphql_p50), ms(graphql_p99));
    println!("  MCP tool call:     p50 {:.2} ms, p99 {:.2} ms", ms(mcp_p50), ms(mcp_p99));
    println!(
        "  added by MCP:      p50 {:+.2} ms, p99 {:+.2} ms (target: at most 2 ms at p50)",
        ms(mcp_p50) - ms(graphql_p50),
        ms(mcp_p99) - ms(graphql_p99)
    );
    bench.drop().await;
}

fn percentiles(times: &mut [Duration]) -> (Duration, Duration) {
    times.sort();
    (times[times.len() / 2], times[times.len() * 99 / 100])
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
