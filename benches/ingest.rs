//! Ingest benchmark: posts realistic alerts (the four sample formats, each made unique so none is
//! deduplicated) to a running `alertgraph up` at concurrency 1, 16 and 64, and prints accepted
//! alerts per second and 202 latency p50/p99.
//!
//! ALERTGRAPH_URL (default http://127.0.0.1:8000), ALERTGRAPH_API_KEY (scope alerts:write),
//! ALERTGRAPH_BENCH_SECONDS per level (default 10).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// A sample payload and the pointer to its title, which is rewritten to make each alert unique.
const SAMPLES: &[(&str, &str, &str)] = &[
    ("sentinel", "01_sentinel_brute_force_tor.json", "/properties/title"),
    ("elastic", "02_elastic_malware_hash.json", "/kibana.alert.rule.name"),
    ("splunk", "03_splunk_anomalous_data_transfer.json", "/result/rule_name"),
    ("generic", "generic_phishing_email.json", "/title"),
];

#[tokio::main]
async fn main() {
    let url = std::env::var("ALERTGRAPH_URL").unwrap_or_else(|_| "http://127.0.0.1:8000".into());
    let Ok(key) = std::env::var("ALERTGRAPH_API_KEY") else {
        eprintln!("set ALERTGRAPH_API_KEY to a key with alerts:write (see README, Benchmarks)");
        std::process::exit(2);
    };
    let seconds: u64 =
        std::env::var("ALERTGRAPH_BENCH_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let samples: Arc<Vec<(String, Value, String)>> = Arc::new(
        SAMPLES
            .iter()
            .map(|(source, file, pointer)| {
                let path =
                    format!("{}/../shared/fixtures/alerts/{file}", env!("CARGO_MANIFEST_DIR"));
                let text = std::fs::read_to_string(&path).expect("reading a sample payload");
                (source.to_string(), serde_json::from_str(&text).unwrap(), pointer.to_string())
            })
            .collect(),
    );
    let client = reqwest::Client::builder().pool_max_idle_per_host(128).build().unwrap();
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    println!("ingest benchmark against {url}, {seconds} s per level");
    println!(
        "{:>11} {:>10} {:>12} {:>10} {:>10} {:>8}",
        "concurrency", "accepted", "alerts/s", "p50 ms", "p99 ms", "errors"
    );
    for concurrency in [1usize, 16, 64] {
        let counter = Arc::new(AtomicU64::new(0));
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let started = Instant::now();
        let tasks: Vec<_> = (0..concurrency)
            .map(|_| {
                let (client, url, key) = (client.clone(), url.clone(), key.clone());
                let (samples, counter, run_id) = (samples.clone(), counter.clone(), run_id.clone());
                tokio::spawn(async move {
                    let mut latencies = Vec::new();
                    let mut errors = 0u64;
                    while Instant::now() < deadline {
                        let n = counter.fetch_add(1, Ordering::Relaxed);
                        let (source, template, pointer) = &samples[n as usize % samples.len()];
                        let mut payload = template.clone();
                        let title = payload
                            .pointer(pointer)
                            .and_then(Value::as_str)
                            .unwrap_or("alert")
                            .to_owned();
                        *payload.pointer_mut(pointer).unwrap() =
                            Value::String(format!("{title} [{run_id}-{concurrency}-{n}]"));
                        let body = serde_json::to_vec(&payload).unwrap();
                        let sent = Instant::now();
                        let response = client
                            .post(format!("{url}/v1/ingest/{source}"))
                            .bearer_auth(&key)
                            .header("content-type", "application/json")
                            .body(body)
                            .send()
                            .await;
                        match response {
                            Ok(response) if response.status() == 202 => {
                                latencies.push(sent.elapsed())
                            }
                            _ => errors += 1,
                        }
                    }
                    (latencies, errors)
                })
            })
            .collect();
        let mut latencies = Vec::new();
        let mut errors = 0;
        for task in tasks {
            let (mut task_latencies, task_errors) = task.await.unwrap();
            latencies.append(&mut task_latencies);
            errors += task_errors;
        }
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort();
        let percentile = |p: f64| {
            latencies
                .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
                .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
        };
        println!(
            "{:>11} {:>10} {:>12.0} {:>10.2} {:>10.2} {:>8}",
            concurrency,
            latencies.len(),
            latencies.len() as f64 / elapsed,
            percentile(0.50),
            percentile(0.99),
            errors
        );
    }
}
