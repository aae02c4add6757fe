//! Dispatch benchmark: 10 agents on one local webhook receiver, alerts ingested over HTTP at a
//! steady 200 alerts/s (no provider configured, so enrichment is immediate). Runs the server and
//! one worker in this process on a fresh database `alertgraph_bench_dispatch` (on the server
//! `DATABASE_URL` names) and prints:
//! - enrichment-complete → webhook-received latency p50/p90/p99/max (the alert's `enriched_at`,
//!   written in the enrichment transaction, to the moment the receiver reads the request),
//!   after one second of the same load that is not measured,
//! - deliveries per second sustained over the run, and for a burst of 1,000 alerts.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

const AGENTS: usize = 10;
const STEADY_RATE: u64 = 200;
const STEADY_SECONDS: u64 = 10;
const BURST: usize = 1000;

type Received = Arc<Mutex<Vec<(Uuid, DateTime<Utc>)>>>;

async fn receive(State(received): State<Received>, body: Bytes) -> &'static str {
    let at = Utc::now();
    let payload: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let alert: Uuid = payload["alert"]["uuid"].as_str().unwrap().parse().unwrap();
    received.lock().unwrap().push((alert, at));
    "ok"
}

#[tokio::main]
async fn main() {
    let bench = common::BenchDatabase::create("alertgraph_bench_dispatch", 32).await;
    let db = bench.db.clone();

    let received: Received = Arc::default();
    let receiver = axum::Router::new()
        .route("/hook/{agent}", axum::routing::post(receive))
        .with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let key = domain::secret::SecretKey::generate();
    let policy = domain::outbound::OutboundPolicy::parse("127.0.0.0/8").unwrap();
    for n in 0..AGENTS {
        let input: domain::agent::AgentInput = serde_json::from_value(serde_json::json!({
            "name": format!("agent-{n}"), "webhook_url": format!("http://{hook}/hook/{n}")
        }))
        .unwrap();
        domain::agent::create(&db, &key, &policy, &input, "bench").await.unwrap();
    }

    let state = server::AppState::new(db.clone(), server::ServerConfig::default()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(server::http::without_delay(listener), server::app(state)).await
    });
    let (enricher, _reloading) = domain::enrich::Enricher::start(
        &db,
        domain::outbound::Outbound::new(policy.clone(), "alertgraph-bench"),
        key.clone(),
        Default::default(),
        Default::default(),
    )
    .await
    .unwrap();
    let (dispatcher, _reloading) = domain::dispatch::Dispatcher::start(&db).await.unwrap();
    let deliverer = domain::dispatch::Deliverer::new(key, policy);
    let (stop, mut stopped) = watch::channel(false);
    let worker = tokio::spawn(worker::run(
        db.clone(),
        worker::WorkerConfig::default(),
        worker::pipeline(enricher, dispatcher, Arc::new(deliverer)),
        async move {
            let _ = stopped.wait_for(|&stop| stop).await;
        },
    ));
    let api_key = common::api_key(&db, &[domain::api_key::Scope::AlertsWrite]).await;
    let client = reqwest::Client::new();
    let post = |n: usize, round: &'static str| {
        let (client, api_key) = (client.clone(), api_key.clone());
        async move {
            let payload =
                serde_json::json!({"title": format!("dispatch {round} {n}"), "severity": "high"});
            let response = client
                .post(format!("http://{address}/v1/ingest/generic"))
                .bearer_auth(&api_key)
                .json(&payload)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 202);
        }
    };

    println!("dispatch benchmark: {AGENTS} agents on one local receiver, one worker");
    // One second of the same load first, not measured: the pools open their connections and
    // the receiver's connections are made, as in any process that has been up for a while.
    let steady = |round: &'static str, seconds: u64| {
        let post = &post;
        async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / STEADY_RATE));
            let mut posts = Vec::new();
            for n in 0..(STEADY_RATE * seconds) as usize {
                tick.tick().await;
                posts.push(tokio::spawn(post(n, round)));
            }
            for posted in posts {
                posted.await.unwrap();
            }
        }
    };
    steady("warm-up", 1).await;
    wait_for(&received, STEADY_RATE as usize * AGENTS).await;
    received.lock().unwrap().clear();

    steady("steady", STEADY_SECONDS).await;
    let expected = (STEADY_RATE * STEADY_SECONDS) as usize * AGENTS;
    wait_for(&received, expected).await;
    report(&db, &received, "steady", &format!("{STEADY_RATE} alerts/s for {STEADY_SECONDS} s"))
        .await;

    received.lock().unwrap().clear();
    let started = Instant::now();
    futures::stream::iter((0..BURST).map(|n| post(n, "burst")))
        .buffer_unordered(64)
        .collect::<Vec<()>>()
        .await;
    wait_for(&received, BURST * AGENTS).await;
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        " burst: {} deliveries of {BURST} alerts in {elapsed:.2} s = {:.0} deliveries/s (ingest included)",
        BURST * AGENTS,
        (BURST * AGENTS) as f64 / elapsed
    );

    stop.send(true).unwrap();
    worker.await.unwrap().unwrap();
    bench.drop().await;
}

async fn wait_for(received: &Received, count: usize) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while received.lock().unwrap().len() < count {
        assert!(Instant::now() < deadline, "deliveries stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn report(db: &PgPool, received: &Received, round: &str, load: &str) {
    let enriched: std::collections::HashMap<Uuid, DateTime<Utc>> =
        sqlx::query_as::<_, (Uuid, DateTime<Utc>)>(
            "select alert_id, enriched_at from alert
             where enriched_at is not null and title like 'dispatch ' || $1 || ' %'",
        )
        .bind(round)
        .fetch_all(db)
        .await
        .unwrap()
        .into_iter()
        .collect();
    let received = received.lock().unwrap().clone();
    let mut latencies: Vec<f64> = received
        .iter()
        .map(|(alert, at)| (*at - enriched[alert]).num_microseconds().unwrap() as f64 / 1000.0)
        .collect();
    latencies.sort_by(f64::total_cmp);
    let at = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    let first = enriched.values().min().unwrap();
    let last = received.iter().map(|(_, at)| at).max().unwrap();
    let span = (*last - *first).num_milliseconds() as f64 / 1000.0;
    println!(
        "{round:>6}: {load}: enriched-to-received p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms; {} deliveries in {span:.1} s = {:.0} deliveries/s",
        at(0.50),
        at(0.90),
        at(0.99),
        at(1.0),
        received.len(),
        received.len() as f64 / span
    );
}
