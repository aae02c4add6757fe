//! Enrichment benchmark: alerts with 5 indicators each, enriched by 3 providers that answer from
//! a local mock server with 20 ms latency. Runs the server and one worker in this process on a
//! fresh database `alertgraph_bench_enrichment` (on the server `DATABASE_URL` names) and prints:
//! - alerts fully enriched per second for a burst of new indicators (cold cache),
//! - the same for a burst re-using those indicators (warm cache),
//! - ingest-to-enriched latency p50/p99 at a steady 200 alerts/s.

mod common;

use std::time::{Duration, Instant};

use futures::StreamExt;
use sqlx::PgPool;
use tokio::sync::watch;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

const BURST: usize = 2000;
const STEADY_RATE: u64 = 200;
const STEADY_SECONDS: u64 = 10;

#[tokio::main]
async fn main() {
    let bench = common::BenchDatabase::create("alertgraph_bench_enrichment", 32).await;
    let db = bench.db.clone();

    // Every provider answers every request after 20 ms with a realistic body.
    // The mock keeps no record of requests: its bookkeeping is not what is measured.
    let mock = MockServer::builder().disable_request_recording().start().await;
    let body = |name: &str| -> serde_json::Value {
        let path =
            format!("{}/../shared/fixtures/providers/responses/{name}", env!("CARGO_MANIFEST_DIR"));
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    for (prefix, file) in [
        ("/api/v3/", "virustotal.ip_malicious.json"),
        ("/api/v2/", "abuseipdb.check_malicious.json"),
        ("/v3/", "greynoise.noise_malicious.json"),
    ] {
        Mock::given(method("GET"))
            .and(wiremock::matchers::path_regex(format!("^{prefix}")))
            .respond_with(
                ResponseTemplate::new(200)
                    .set_body_json(body(file))
                    .set_delay(Duration::from_millis(20)),
            )
            .mount(&mock)
            .await;
    }
    let uri = mock.uri();
    for (name, base) in [
        ("virustotal", format!("{uri}/api/v3")),
        ("abuseipdb", format!("{uri}/api/v2")),
        ("greynoise", uri.clone()),
    ] {
        let update = domain::provider::registry::ProviderUpdate {
            base_url: Some(Some(base)),
            // A paid plan's parallelism and rate, so that what is measured is alertgraph rather
            // than the provider's limits (128 calls at 20 ms allow 6,400 calls/s; the built-in
            // defaults, 4 calls at once and VirusTotal's 4 a minute, suit free keys).
            concurrency_limit: Some(Some(128)),
            rate_limit_per_minute: Some(Some(1_000_000)),
            ..Default::default()
        };
        domain::provider::registry::update(&db, name, &update, "bench").await.unwrap();
    }
    let env = [("VIRUSTOTAL_API_KEY", "k"), ("ABUSEIPDB_API_KEY", "k"), ("GREYNOISE_API_KEY", "k")]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();

    // The server and one worker, as `alertgraph up` runs them.
    let state = server::AppState::new(db.clone(), server::ServerConfig::default()).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(server::http::without_delay(listener), server::app(state)).await
    });
    let policy = domain::outbound::OutboundPolicy::parse("127.0.0.0/8").unwrap();
    let key = domain::secret::SecretKey::generate();
    let (enricher, _reloading) = domain::enrich::Enricher::start(
        &db,
        domain::outbound::Outbound::new(policy.clone(), "alertgraph-bench"),
        key.clone(),
        env,
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
        worker::pipeline(enricher, dispatcher, std::sync::Arc::new(deliverer)),
        async move {
            let _ = stopped.wait_for(|&stop| stop).await;
        },
    ));
    let key = common::api_key(&db, &[domain::api_key::Scope::AlertsWrite]).await;
    let client = reqwest::Client::new();
    let post = |n: usize, round: &'static str| {
        let (client, key) = (client.clone(), key.clone());
        async move {
            // Five public indicators per alert; alert n uses the IPs of slot n.
            let indicators: Vec<serde_json::Value> = (0..5)
                .map(|i| serde_json::json!({"type": "ip", "value": format!("198.51.{}.{}", (n * 5 + i) / 250, (n * 5 + i) % 250 + 1)}))
                .collect();
            let payload = serde_json::json!({"title": format!("bench {round} {n}"), "severity": "high", "indicators": indicators});
            let response = client
                .post(format!("http://{address}/v1/ingest/generic"))
                .bearer_auth(&key)
                .json(&payload)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 202);
        }
    };

    println!("enrichment benchmark: 5 indicators per alert, 3 providers at 20 ms, one worker");
    for round in ["cold", "warm"] {
        let started = Instant::now();
        futures::stream::iter((0..BURST).map(|n| post(n, round)))
            .buffer_unordered(64)
            .collect::<Vec<()>>()
            .await;
        wait_until_enriched(&db).await;
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "{round:>5} cache: {BURST} alerts enriched in {elapsed:.2} s = {:.0} alerts/s",
            BURST as f64 / elapsed
        );
    }

    // Steady load: 200 alerts/s, half new indicators, half known.
    sqlx::query("truncate activity").execute(&db).await.unwrap();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / STEADY_RATE));
    let mut posts = Vec::new();
    for n in 0..(STEADY_RATE * STEADY_SECONDS) as usize {
        tick.tick().await;
        let slot = if n % 2 == 0 { BURST + n } else { n };
        posts.push(tokio::spawn(post(slot, "steady")));
    }
    for posted in posts {
        posted.await.unwrap();
    }
    wait_until_enriched(&db).await;
    let latencies: Vec<f64> = sqlx::query_scalar(
        "select extract(epoch from enriched_at - ingested_at)::float8 * 1000 from alert
         where title like 'bench steady %' order by 1",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let at = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "steady {STEADY_RATE} alerts/s for {STEADY_SECONDS} s: ingest-to-enriched p50 {:.1} ms, p99 {:.1} ms",
        at(0.50),
        at(0.99)
    );

    stop.send(true).unwrap();
    worker.await.unwrap().unwrap();
    bench.drop().await;
}

async fn wait_until_enriched(db: &PgPool) {
    loop {
        let pending: i64 =
            sqlx::query_scalar("select count(*) from alert where enrichment_status = 'Pending'")
                .fetch_one(db)
                .await
                .unwrap();
        if pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
