//! GraphQL benchmark on 10,000 alerts with 50,000 indicators (5 each) and 3 provider results per
//! indicator, loaded with SQL into a fresh database `alertgraph_bench_graphql` (on the server
//! `DATABASE_URL` names) and vacuumed. The server runs in this process; 16 clients query for 5 s
//! each, checking every answer's shape (the first in full):
//! (a) `alerts(first: 50)` filtered by severity, (b) 50 alerts → indicators → enrichments,
//! (c) `indicator(type, value) { alerts(first: 20) }`. Then 1,000 WebSocket subscribers wait for
//! one `alertUpdated` event: p99 from the commit to each subscriber's receipt.
//!
//! Arguments name the parts to run (`a`, `b`, `c`, `fan-out`); none runs them all:
//! `cargo bench --bench graphql -- b`. `ALERTGRAPH_GRAPHQL_CACHE_MB` sizes the server's
//! provider-result cache and `ALERTGRAPH_DB_POOL_SIZE` its pool (default 32), as they do for
//! `serve`.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sqlx::Executor;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Concurrent clients, unless `ALERTGRAPH_BENCH_CLIENTS` says otherwise.
const CLIENTS: usize = 16;
const SECONDS: u64 = 5;
const SUBSCRIBERS: usize = 1000;

#[tokio::main]
async fn main() {
    let chosen: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let runs = |part: &str| chosen.is_empty() || chosen.iter().any(|c| c == part);
    // The same variable and default as `serve` (`ALERTGRAPH_DB_POOL_SIZE`).
    let pool: u32 = std::env::var("ALERTGRAPH_DB_POOL_SIZE")
        .map_or(32, |size| size.parse().expect("a number of connections"));
    let clients: usize = std::env::var("ALERTGRAPH_BENCH_CLIENTS")
        .map_or(CLIENTS, |n| n.parse().expect("a number of clients"));
    let bench = common::BenchDatabase::create("alertgraph_bench_graphql", pool).await;
    let db = bench.db.clone();
    let loading = Instant::now();
    for statement in [
        "insert into alert (alert_id, title, description, severity, source_name, occurred_at, tags,
                            raw_payload, fingerprint, enrichment_status, enriched_at, malice)
         select gen_random_uuid(), 'Bench alert ' || n, 'Generated for the benchmark',
                (array['Low','Medium','High','Critical'])[1 + n % 4]::severity,
                (array['sentinel','elastic','splunk','generic'])[1 + n % 4],
                now() - n * interval '1 minute', array['bench'], '{}'::json,
                decode(md5(n::text), 'hex'), 'Enriched', now(), 'Benign'
         from generate_series(1, 10000) n",
        "insert into indicator (type, value, malice)
         select 'ip', '198.' || (n / 65536) || '.' || (n / 256 % 256) || '.' || (n % 256), 'Benign'
         from generate_series(1, 50000) n",
        "insert into alert_indicator (alert_id, indicator_id)
         select a.alert_id, i.indicator_id
         from (select alert_id, row_number() over (order by alert_id) - 1 as k from alert) a
         join (select indicator_id, row_number() over (order by indicator_id) - 1 as k from indicator) i
           on i.k / 5 = a.k",
        "insert into enrichment_result (indicator_id, enrichment_provider_id, success, extracted,
                                        raw, malice, expires_at)
         select i.indicator_id, p.enrichment_provider_id, true,
                jsonb_build_object('reputation', 0, 'country', 'NL', 'asn', 'AS1234'),
                jsonb_build_object('lookup', jsonb_build_object('data', 'x')), 'Benign',
                now() + interval '1 hour'
         from indicator i
         cross join (select enrichment_provider_id from enrichment_provider
                     where name in ('virustotal', 'abuseipdb', 'greynoise')) p",
        // As autovacuum would leave the tables soon after a bulk load (visibility map set, so
        // index-only scans apply), rather than to happen during a measurement.
        "vacuum analyze",
    ] {
        db.execute(statement).await.unwrap();
    }
    println!(
        "loaded 10,000 alerts, 50,000 indicators, 150,000 results in {:.1} s",
        loading.elapsed().as_secs_f64()
    );

    // `ALERTGRAPH_GRAPHQL_CACHE_MB=0` measures without the provider-result cache, as `serve`.
    let mut cfg = server::ServerConfig::default();
    if let Ok(mb) = std::env::var("ALERTGRAPH_GRAPHQL_CACHE_MB") {
        cfg.graphql_result_cache_bytes = mb.parse::<u64>().expect("a number of MiB") << 20;
    }
    let state = server::AppState::new(db.clone(), cfg).await.unwrap();
    server::listener::spawn(state.clone()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(server::http::without_delay(listener), server::app(state)).await
    });
    let key = common::api_key(&db, &[domain::api_key::Scope::Admin]).await;
    let values: Vec<String> =
        sqlx::query_scalar("select value from indicator order by random() limit 1000")
            .fetch_all(&db)
            .await
            .unwrap();
    let values = Arc::new(values);

    let client = reqwest::Client::new();
    let graphql_url = format!("http://{address}/graphql");
    let cases: [(&str, &str); 3] = [
        (
            "(a) alerts(first: 50, severity filter)",
            "{ alerts(first: 50, filter: {severity: [HIGH]}) { nodes { id title severity status malice ingestedAt } } }",
        ),
        (
            "(b) 50 alerts → indicators → enrichments",
            "{ alerts(first: 50) { nodes { id title indicators { type value malice enrichments { provider success malice extracted } } } } }",
        ),
        (
            "(c) indicator(type, value) { alerts(first: 20) }",
            "query($v: String!) { indicator(type: IP, value: $v) { value alerts(first: 20) { totalCount nodes { id title } } } }",
        ),
    ];
    println!("GraphQL benchmark: {clients} concurrent clients, {SECONDS} s per query");
    for (name, query) in cases {
        if !runs(&name[1..2]) {
            continue;
        }
        // One answer read in full first: it must hold what was asked for.
        let answer: Value = client
            .post(&graphql_url)
            .bearer_auth(&key)
            .json(&json!({"query": query, "variables": {"v": values[0]}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            answer.get("errors").is_none()
                && answer["data"]
                    .as_object()
                    .is_some_and(|data| !data.values().any(Value::is_null)),
            "{answer}"
        );
        println!("{name}: answers of {:.1} KB", answer.to_string().len() as f64 / 1024.0);
        let stop = Arc::new(AtomicBool::new(false));
        let cpu = common::CpuTicks::now();
        let started = Instant::now();
        let workers: Vec<_> = (0..clients)
            .map(|n| {
                let (client, url, key, stop, values) = (
                    client.clone(),
                    graphql_url.clone(),
                    key.clone(),
                    stop.clone(),
                    values.clone(),
                );
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut i = n;
                    while !stop.load(Ordering::Relaxed) {
                        let variables = json!({"v": values[i % values.len()]});
                        i += clients;
                        let sent = Instant::now();
                        let response = client
                            .post(&url)
                            .bearer_auth(&key)
                            .json(&json!({"query": query, "variables": variables}))
                            .send()
                            .await
                            .unwrap();
                        assert!(response.status().is_success());
                        let body = response.bytes().await.unwrap();
                        // The first answer was checked in full; these are checked for their
                        // shape only, as load generators do: parsing 100 KB answers here would
                        // take CPU from the server measured on the same cores. An answer with
                        // errors ends with the `errors` list, so not with `}}`.
                        assert!(
                            body.starts_with(b"{\"data\":{") && body.ends_with(b"}}"),
                            "{}",
                            String::from_utf8_lossy(&body)
                        );
                        latencies.push(sent.elapsed().as_secs_f64() * 1000.0);
                    }
                    latencies
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_secs(SECONDS)).await;
        stop.store(true, Ordering::Relaxed);
        let mut latencies: Vec<f64> = Vec::new();
        for worker in workers {
            latencies.extend(worker.await.unwrap());
        }
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = common::CpuTicks::since(cpu, latencies.len());
        latencies.sort_by(f64::total_cmp);
        let at =
            |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
        println!(
            "{name}: {:.0} req/s ({} answers), p50 {:.1} ms, p95 {:.1} ms{cpu}",
            latencies.len() as f64 / elapsed,
            latencies.len(),
            at(0.50),
            at(0.95)
        );
    }

    if !runs("fan-out") {
        bench.drop().await;
        return;
    }
    // Fan-out: 1,000 subscribers, one event.
    let mut sockets = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut request = format!("ws://{address}/graphql/ws").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let init = json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {key}")}});
        socket.send(Message::text(init.to_string())).await.unwrap();
        loop {
            if let Some(Ok(Message::Text(text))) = socket.next().await
                && text.contains("connection_ack")
            {
                break;
            }
        }
        let subscribe = json!({"id": "1", "type": "subscribe",
                               "payload": {"query": "subscription { alertUpdated { alert { id status } } }"}});
        socket.send(Message::text(subscribe.to_string())).await.unwrap();
        sockets.push(socket);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let committed = Instant::now();
    sqlx::query("update alert set status = 'Triaging' where alert_id = (select alert_id from alert limit 1)")
        .execute(&db)
        .await
        .unwrap();
    let receipts = futures::future::join_all(sockets.into_iter().map(|mut socket| async move {
        loop {
            match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
                Ok(Some(Ok(Message::Text(text)))) if text.contains("\"next\"") => {
                    return Some(committed.elapsed().as_secs_f64() * 1000.0);
                }
                Ok(Some(Ok(_))) => continue,
                _ => return None,
            }
        }
    }))
    .await;
    let mut received: Vec<f64> = receipts.into_iter().flatten().collect();
    received.sort_by(f64::total_cmp);
    let at = |p: f64| received[((received.len() as f64 * p) as usize).min(received.len() - 1)];
    println!(
        "fan-out: {} of {SUBSCRIBERS} subscribers got the event; p50 {:.1} ms, p99 {:.1} ms",
        received.len(),
        at(0.50),
        at(0.99)
    );

    bench.drop().await;
}
