//! Provider call limits hold across worker processes: two enrichers on one database never have
//! more calls in flight than the provider's concurrency limit, nor make more calls a minute
//! than its rate limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use domain::alert::IndicatorType;
use domain::enrich::{EnrichOptions, enrich_indicator};
use domain::provider::registry;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::helpers::enricher_with;

/// A provider API that takes 100 ms per call and remembers how many calls it had at once.
#[derive(Default)]
struct Gauge {
    in_flight: AtomicUsize,
    most: AtomicUsize,
    calls: AtomicUsize,
}

async fn slow_lookup(State(gauge): State<Arc<Gauge>>) -> Json<Value> {
    let now = gauge.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    gauge.most.fetch_max(now, Ordering::SeqCst);
    gauge.calls.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    gauge.in_flight.fetch_sub(1, Ordering::SeqCst);
    Json(json!({"classification": "benign", "noise": false}))
}

async fn serve_gauge() -> (String, Arc<Gauge>) {
    let gauge = Arc::new(Gauge::default());
    let app = axum::Router::new()
        .route("/v1/ip/{ip}", axum::routing::get(slow_lookup))
        .with_state(gauge.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}"), gauge)
}

/// A user provider without auth, limited as given.
async fn import_limited(db: &PgPool, base_url: &str, concurrency: u32, per_minute: Option<u32>) {
    let mut provider = json!({
        "provider_name": "limited_intel",
        "display_name": "Limited intel",
        "supported_indicator_types": ["ip"],
        "auth_type": "none",
        "base_url": base_url,
        "concurrency_limit": concurrency,
        "http_config": {"steps": [{
            "name": "lookup", "method": "GET", "url": "{{base_url}}/v1/ip/{{indicator.value}}",
            "timeout_seconds": 10, "expected_status": [200], "not_found_status": [404]
        }]},
        "malice_rules": {"rules": [], "default_verdict": "Benign", "not_found_verdict": "Pending"},
        "default_cache_ttl_seconds": 3600
    });
    if let Some(limit) = per_minute {
        provider["rate_limit_per_minute"] = limit.into();
    }
    registry::import(db, &provider, None, "tests").await.unwrap();
    // Only this provider is configured: the built-ins have no credentials here.
}

/// Looks up `count` distinct IPs at once, alternating between the two enrichers.
async fn enrich_many(
    db: &PgPool,
    options: EnrichOptions,
    count: usize,
) -> Vec<(bool, Option<String>)> {
    let workers = [enricher_with(db, &[], options).await, enricher_with(db, &[], options).await];
    let lookups = (0..count).map(|n| {
        let (db, enricher) = (db.clone(), workers[n % 2].clone());
        tokio::spawn(async move {
            let ip = format!("198.51.100.{}", n + 1);
            let results = enrich_indicator(&db, &enricher, IndicatorType::Ip, &ip).await.unwrap();
            let result = results.into_iter().find(|r| r.provider == "limited_intel").unwrap();
            (result.success, result.error)
        })
    });
    futures::future::join_all(lookups).await.into_iter().map(Result::unwrap).collect()
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn the_concurrency_limit_holds_across_workers(db: PgPool) {
    domain::migrate(&db).await.unwrap();
    let (base_url, gauge) = serve_gauge().await;
    import_limited(&db, &base_url, 3, None).await;

    let outcomes = enrich_many(&db, EnrichOptions::default(), 12).await;

    assert!(outcomes.iter().all(|(success, _)| *success), "{outcomes:?}");
    assert_eq!(gauge.calls.load(Ordering::SeqCst), 12);
    let most = gauge.most.load(Ordering::SeqCst);
    assert!(most <= 3, "{most} calls were in flight at once; the limit is 3");
    assert!(most >= 2, "the limit is used, not serialized to one call ({most})");
    let leases: i64 = sqlx::query_scalar("select count(*) from provider_call_lease")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(leases, 0, "every lease is released");
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn the_rate_limit_holds_across_workers_and_the_rest_fail_without_waiting_long(db: PgPool) {
    domain::migrate(&db).await.unwrap();
    let (base_url, gauge) = serve_gauge().await;
    import_limited(&db, &base_url, 10, Some(5)).await;
    // The sixth call would have to wait 12 s for a token; this worker waits at most 1 s.
    let options = EnrichOptions { max_wait: Duration::from_secs(1), ..Default::default() };

    let outcomes = enrich_many(&db, options, 8).await;

    assert_eq!(gauge.calls.load(Ordering::SeqCst), 5, "5 calls a minute, across both workers");
    let succeeded = outcomes.iter().filter(|(success, _)| *success).count();
    assert_eq!(succeeded, 5, "{outcomes:?}");
    for (_, error) in outcomes.iter().filter(|(success, _)| !success) {
        assert_eq!(error.as_deref(), Some("rate limit of 5 calls a minute reached"));
    }
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_provider_at_a_private_address_is_refused_by_the_ssrf_guard(db: PgPool) {
    domain::migrate(&db).await.unwrap();
    let (base_url, gauge) = serve_gauge().await;
    import_limited(&db, &base_url, 4, None).await;
    let env = Default::default();
    let strict = domain::outbound::Outbound::new(Default::default(), "alertgraph-tests");
    let (enricher, _) = domain::enrich::Enricher::start(
        &db,
        strict,
        crate::helpers::test_key(),
        env,
        Default::default(),
    )
    .await
    .unwrap();

    let results =
        enrich_indicator(&db, &enricher, IndicatorType::Ip, "198.51.100.20").await.unwrap();

    let result = results.iter().find(|r| r.provider == "limited_intel").unwrap();
    assert!(!result.success);
    let error = result.error.as_deref().unwrap();
    assert!(error.contains("refused by the SSRF guard") && error.contains("loopback"), "{error}");
    assert_eq!(gauge.calls.load(Ordering::SeqCst), 0, "no request left");
}

/// One statement answers many requests: a provider's free slots go to its requests in order,
/// and leases released in the same statement free their slots for the requests after them.
#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_batch_of_requests_shares_each_providers_slots_in_order(db: PgPool) {
    use domain::store::call_limit::{CallRequest, Grant, exchange};
    registry::seed_builtin(&db).await.unwrap();
    let providers: Vec<uuid::Uuid> = sqlx::query_scalar(
        "select enrichment_provider_id from enrichment_provider where name in ('abuseipdb', 'greynoise') order by name",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let ask = |provider: uuid::Uuid, wanted: u32, per_minute: Option<u32>| CallRequest {
        provider_id: provider,
        wanted,
        concurrency_limit: 3,
        rate_limit_per_minute: per_minute,
        hold: Duration::from_secs(30),
    };
    let granted = |grant: &Grant| match grant {
        Grant::Granted { calls, .. } => *calls,
        Grant::Wait { .. } | Grant::Paused { .. } => 0,
    };
    let (a, b) = (providers[0], providers[1]);
    let grants =
        exchange(&db, &[], &[ask(a, 2, None), ask(b, 1, Some(1)), ask(a, 2, None)]).await.unwrap();
    assert_eq!(grants.iter().map(granted).collect::<Vec<_>>(), [2, 1, 1]);

    // `a` is full and `b` has spent its one call a minute.
    let full = exchange(&db, &[], &[ask(a, 1, None), ask(b, 1, Some(1))]).await.unwrap();
    assert_eq!(full[0], Grant::Wait { retry_after: None }, "the concurrency limit holds");
    let Grant::Wait { retry_after: Some(after) } = full[1] else {
        panic!("the rate limit says when to retry: {:?}", full[1])
    };
    assert!(after > Duration::from_secs(50), "{after:?}");

    // Releasing the two-call lease frees its slots for a request in the same statement.
    let Grant::Granted { lease_id, .. } = grants[0] else { unreachable!() };
    let again = exchange(&db, &[lease_id], &[ask(a, 3, None)]).await.unwrap();
    assert_eq!(again.iter().map(granted).collect::<Vec<_>>(), [2]);
}
