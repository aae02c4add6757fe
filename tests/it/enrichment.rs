//! The enrichment stage end to end: HTTP ingest, the worker, and providers answering from local
//! mock servers with the recorded bodies in `../shared/fixtures/providers/responses/`.

use std::time::{Duration, Instant};

use domain::provider::registry::{self, ProviderUpdate};
use domain::store::enrichment::ResultRow;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;
use wiremock::matchers::{header, method, path, path_regex, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{enricher, fixture, json_with_status, spawn_app};

pub(crate) fn response(name: &str) -> serde_json::Value {
    let path =
        format!("{}/../shared/fixtures/providers/responses/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

fn answer(status: u16, name: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(response(name))
}

const ENV: &[(&str, &str)] = &[
    ("VIRUSTOTAL_API_KEY", "vt-test-key"),
    ("ABUSEIPDB_API_KEY", "abuse-test-key"),
    ("GREYNOISE_API_KEY", "gn-test-key"),
    ("OKTA_DOMAIN", "contoso.okta.example"),
    ("OKTA_API_TOKEN", "okta-test-token"),
];

/// Points the built-in providers at the mock server.
async fn point_providers_at(db: &PgPool, mock: &MockServer) {
    domain::migrate(db).await.unwrap();
    let uri = mock.uri();
    for (name, base) in [
        ("virustotal", format!("{uri}/api/v3")),
        ("abuseipdb", format!("{uri}/api/v2")),
        ("greynoise", uri.clone()),
        ("okta", uri.clone()),
    ] {
        set_base_url(db, name, &base).await;
    }
}

pub(crate) async fn set_base_url(db: &PgPool, name: &str, url: &str) {
    let update = ProviderUpdate { base_url: Some(Some(url.to_owned())), ..Default::default() };
    registry::update(db, name, &update, "tests").await.unwrap();
}

async fn ingest(app: &crate::helpers::TestApp, source: &str, payload: String) -> Uuid {
    let receipt = json_with_status(app.ingest(source, payload).await, 202).await;
    receipt["alert_id"].as_str().unwrap().parse().unwrap()
}

async fn run(db: &PgPool, enricher: std::sync::Arc<domain::enrich::Enricher>) {
    let handlers = crate::helpers::pipeline(db, enricher).await;
    worker::run_until_idle(db, &handlers, "test-worker").await.unwrap();
}

fn result<'a>(results: &'a [ResultRow], provider: &str, value: &str) -> &'a ResultRow {
    results
        .iter()
        .find(|r| r.provider == provider && r.indicator_value == value)
        .unwrap_or_else(|| panic!("no {provider} result for {value}: {results:#?}"))
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn the_tor_sign_in_alert_is_enriched_by_every_supporting_provider(db: PgPool) {
    let mock = MockServer::start().await;
    point_providers_at(&db, &mock).await;
    let tor = "185.220.101.34";
    Mock::given(method("GET"))
        .and(path(format!("/api/v3/ip_addresses/{tor}")))
        .and(header("x-apikey", "vt-test-key"))
        .respond_with(answer(200, "virustotal.ip_malicious.json"))
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/domains/aad-signin-svc.contoso.com"))
        .respond_with(answer(200, "virustotal.domain_clean.json"))
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v2/check"))
        .and(query_param("ipAddress", tor))
        .and(header("Key", "abuse-test-key"))
        .respond_with(answer(200, "abuseipdb.check_malicious.json"))
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v3/community/{tor}")))
        .respond_with(answer(200, "greynoise.noise_malicious.json"))
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path_regex(r"^/api/v1/users/j\.martinez(@|%40)contoso\.com$"))
        .and(header("Authorization", "SSWS okta-test-token"))
        .respond_with(answer(200, "okta.user_active.json"))
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/users/00u8jm2rt4QxK7vZp5d7/groups"))
        .respond_with(answer(200, "okta.user_groups.json"))
        .expect(1)
        .mount(&mock)
        .await;
    let app = spawn_app(db.clone()).await;

    let alert_id = ingest(&app, "sentinel", fixture("01_sentinel_brute_force_tor.json")).await;
    run(&db, enricher(&db, ENV).await).await;

    let results = domain::store::enrichment::for_alert(&db, alert_id).await.unwrap();
    for provider in ["virustotal", "abuseipdb", "greynoise"] {
        let found = result(&results, provider, tor);
        assert!(found.success, "{provider}: {:?}", found.error);
        assert_eq!(found.malice.as_str(), "Malicious", "{provider}");
    }
    assert_eq!(
        result(&results, "abuseipdb", tor).extracted["abuse_confidence_score"],
        100,
        "{:#?}",
        result(&results, "abuseipdb", tor).extracted
    );
    let domain_result = result(&results, "virustotal", "aad-signin-svc.contoso.com");
    assert_eq!(domain_result.malice.as_str(), "Benign");
    let okta = result(&results, "okta", "j.martinez@contoso.com");
    assert!(
        okta.success && okta.raw.as_ref().is_some_and(|raw| raw.get("groups").is_some()),
        "{okta:#?}"
    );
    assert_eq!(results.len(), 5, "one result per supporting provider and indicator");

    let alert = domain::store::alert::get(&db, alert_id).await.unwrap().unwrap();
    assert_eq!(alert.enrichment_status.as_str(), "Enriched");
    assert_eq!(alert.malice.as_str(), "Malicious", "the alert takes its worst indicator's verdict");
    let ip_verdict: String =
        sqlx::query_scalar("select malice::text from indicator where value = $1")
            .bind(tor)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(ip_verdict, "Malicious");
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn private_addresses_are_never_sent_and_a_cached_result_makes_no_second_call(db: PgPool) {
    let mock = MockServer::start().await;
    point_providers_at(&db, &mock).await;
    // Both samples carry 185.220.101.32 (public) and 10.0.0.55 (private).
    Mock::given(method("GET"))
        .and(path("/api/v3/ip_addresses/185.220.101.32"))
        .respond_with(answer(200, "virustotal.ip_malicious.json"))
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("10\\.0\\.0\\.55"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&mock)
        .await;
    let app = spawn_app(db.clone()).await;
    let enricher = enricher(&db, &[("VIRUSTOTAL_API_KEY", "vt-test-key")]).await;

    let first = ingest(&app, "sentinel", fixture("sentinel_alert.json")).await;
    run(&db, enricher.clone()).await;
    let second = ingest(&app, "elastic", fixture("elastic_alert.json")).await;
    run(&db, enricher).await;

    for alert_id in [first, second] {
        let results = domain::store::enrichment::for_alert(&db, alert_id).await.unwrap();
        assert!(result(&results, "virustotal", "185.220.101.32").success);
        assert!(results.iter().all(|r| r.indicator_value != "10.0.0.55"));
    }
    // `expect(1)` above: the second alert's lookup of the same IP came from the cache.
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_rejected_key_fails_that_provider_alone_and_a_429_is_retried_after_retry_after(
    db: PgPool,
) {
    let mock = MockServer::start().await;
    point_providers_at(&db, &mock).await;
    let tor = "185.220.101.34";
    Mock::given(method("GET"))
        .and(path("/api/v2/check"))
        .respond_with(answer(401, "abuseipdb.unauthorized.json"))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v3/community/{tor}")))
        .respond_with(
            answer(429, "virustotal.quota_exceeded.json").insert_header("Retry-After", "1"),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v3/community/{tor}")))
        .respond_with(answer(200, "greynoise.noise_malicious.json"))
        .expect(1)
        .mount(&mock)
        .await;
    let app = spawn_app(db.clone()).await;
    let env = [("ABUSEIPDB_API_KEY", "revoked"), ("GREYNOISE_API_KEY", "gn-test-key")];

    let alert_id = ingest(
        &app,
        "generic",
        serde_json::json!({"title": "Sign-in from Tor", "src_ip": tor}).to_string(),
    )
    .await;
    run(&db, enricher(&db, &env).await).await;

    let results = domain::store::enrichment::for_alert(&db, alert_id).await.unwrap();
    let rejected = result(&results, "abuseipdb", tor);
    assert!(!rejected.success);
    assert!(rejected.error.as_deref().unwrap_or_default().contains("401"), "{rejected:?}");
    assert!(
        !rejected.error.as_deref().unwrap_or_default().contains("revoked"),
        "the key is never echoed"
    );
    assert!(result(&results, "greynoise", tor).success, "retried after Retry-After");
    let alert = domain::store::alert::get(&db, alert_id).await.unwrap().unwrap();
    assert_eq!(alert.enrichment_status.as_str(), "Enriched");
    assert_eq!(alert.malice.as_str(), "Malicious");
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_429_pauses_the_provider_for_every_lookup_until_its_retry_after(db: PgPool) {
    // Two enrichers and their pipelines each keep a listening connection.
    let db = crate::helpers::wider(&db);
    let mock = MockServer::start().await;
    point_providers_at(&db, &mock).await;
    // One call at a time, so the second lookup asks after the first has been refused.
    let one_at_a_time = ProviderUpdate { concurrency_limit: Some(Some(1)), ..Default::default() };
    registry::update(&db, "greynoise", &one_at_a_time, "tests").await.unwrap();
    // Longer than a job waits: the refused lookup is not retried, the others not tried.
    Mock::given(method("GET"))
        .and(path_regex("^/v3/community/"))
        .respond_with(
            answer(429, "virustotal.quota_exceeded.json").insert_header("Retry-After", "120"),
        )
        .expect(1)
        .mount(&mock)
        .await;
    let app = spawn_app(db.clone()).await;
    let env = [("GREYNOISE_API_KEY", "gn-test-key")];

    let first = ingest(
        &app,
        "generic",
        json!({"title": "Scan", "src_ip": "203.0.113.21", "dest_ip": "203.0.113.22"}).to_string(),
    )
    .await;
    run(&db, enricher(&db, &env).await).await;
    // A later alert, in another run (any worker): the pause is kept in the database.
    let later = ingest(
        &app,
        "generic",
        json!({"title": "Scan again", "src_ip": "203.0.113.23"}).to_string(),
    )
    .await;
    run(&db, enricher(&db, &env).await).await;

    let mut results = domain::store::enrichment::for_alert(&db, first).await.unwrap();
    results.extend(domain::store::enrichment::for_alert(&db, later).await.unwrap());
    let errors: Vec<&str> = results
        .iter()
        .filter(|r| r.provider == "greynoise")
        .map(|r| {
            assert!(!r.success, "{r:?}");
            r.error.as_deref().unwrap_or_default()
        })
        .collect();
    assert_eq!(errors.len(), 3, "{results:#?}");
    assert_eq!(
        errors.iter().filter(|e| e.contains("rate limited by the provider")).count(),
        1,
        "{errors:?}"
    );
    assert_eq!(
        errors.iter().filter(|e| e.contains("answered 429 and asked to wait")).count(),
        2,
        "only the first lookup called: {errors:?}"
    );
    // The mock's `expect(1)` is checked when it is dropped.
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_provider_that_hangs_is_cut_at_its_timeout_without_holding_up_the_others(db: PgPool) {
    let mock = MockServer::start().await;
    point_providers_at(&db, &mock).await;
    let mut slow: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/../shared/fixtures/providers/greynoise.provider.json",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap(),
    )
    .unwrap();
    slow["provider_name"] = "slowintel".into();
    slow["http_config"]["steps"][0]["url"] =
        format!("{}/slow/{{{{indicator.value}}}}", mock.uri()).into();
    slow["http_config"]["steps"][0]["timeout_seconds"] = 1.into();
    registry::import(&db, &slow, None, "tests").await.unwrap();
    Mock::given(method("GET"))
        .and(path_regex("^/slow/"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(10)))
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v3/ip_addresses/203.0.113.45"))
        .respond_with(answer(200, "virustotal.ip_clean.json"))
        .mount(&mock)
        .await;
    let app = spawn_app(db.clone()).await;
    let env = [("VIRUSTOTAL_API_KEY", "vt-test-key"), ("SLOWINTEL_API_KEY", "x")];
    let enricher = enricher(&db, &env).await;

    let alert_id = ingest(
        &app,
        "generic",
        serde_json::json!({"title": "Phish", "src_ip": "203.0.113.45"}).to_string(),
    )
    .await;
    let started = Instant::now();
    run(&db, enricher).await;
    let took = started.elapsed();

    // The hanging provider answers after 10 s; finishing well before that shows it was cut at
    // its 1 s timeout (the margin absorbs a loaded CI machine).
    assert!(took < Duration::from_secs(6), "the stage waited {took:?} for a 1 s timeout");
    let results = domain::store::enrichment::for_alert(&db, alert_id).await.unwrap();
    assert!(result(&results, "virustotal", "203.0.113.45").success);
    let timed_out = result(&results, "slowintel", "203.0.113.45");
    assert!(
        !timed_out.success && timed_out.error.as_deref().unwrap_or_default().contains("within"),
        "{timed_out:?}"
    );
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_base_url_changed_while_the_worker_runs_is_used_for_the_next_lookup(db: PgPool) {
    let (old, new) = (MockServer::start().await, MockServer::start().await);
    point_providers_at(&db, &old).await;
    for (mock, ip) in [(&old, "198.51.100.1"), (&new, "198.51.100.2")] {
        Mock::given(method("GET"))
            .and(path(format!("/api/v3/ip_addresses/{ip}")))
            .respond_with(answer(200, "virustotal.ip_clean.json"))
            .expect(1)
            .mount(mock)
            .await;
    }
    let app = spawn_app(db.clone()).await;
    let enricher = enricher(&db, &[("VIRUSTOTAL_API_KEY", "vt-test-key")]).await;

    ingest(&app, "generic", serde_json::json!({"title": "one", "ip": "198.51.100.1"}).to_string())
        .await;
    run(&db, enricher.clone()).await;
    let moved = format!("{}/api/v3", new.uri());
    set_base_url(&db, "virustotal", &moved).await;
    // The change reaches the running enricher through NOTIFY.
    for _ in 0..200 {
        if enricher.configured("virustotal").and_then(|spec| spec.base_url).as_deref()
            == Some(moved.as_str())
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ingest(&app, "generic", serde_json::json!({"title": "two", "ip": "198.51.100.2"}).to_string())
        .await;
    run(&db, enricher).await;
    // Each mock's `expect(1)` is checked when it is dropped.
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn fifty_alerts_sharing_an_ip_across_two_workers_make_one_call_per_provider(db: PgPool) {
    let db = crate::helpers::wider(&db);
    let mock = MockServer::start().await;
    point_providers_at(&db, &mock).await;
    let ip = "203.0.113.99";
    // Slow answers, so that lookups from both workers overlap.
    Mock::given(method("GET"))
        .and(path(format!("/api/v3/ip_addresses/{ip}")))
        .respond_with(
            answer(200, "virustotal.ip_malicious.json").set_delay(Duration::from_millis(300)),
        )
        .expect(1)
        .mount(&mock)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/v3/community/{ip}")))
        .respond_with(
            answer(200, "greynoise.noise_malicious.json").set_delay(Duration::from_millis(300)),
        )
        .expect(1)
        .mount(&mock)
        .await;
    let app = spawn_app(db.clone()).await;
    let env = [("VIRUSTOTAL_API_KEY", "vt-test-key"), ("GREYNOISE_API_KEY", "gn-test-key")];

    futures::future::join_all((0..50).map(|n| {
        let payload = serde_json::json!({"title": format!("Scan {n}"), "src_ip": ip}).to_string();
        ingest(&app, "generic", payload)
    }))
    .await;
    let (first, second) = (enricher(&db, &env).await, enricher(&db, &env).await);
    let first = crate::helpers::pipeline(&db, first).await;
    let second = crate::helpers::pipeline(&db, second).await;
    tokio::join!(async { worker::run_until_idle(&db, &first, "worker-a").await.unwrap() }, async {
        worker::run_until_idle(&db, &second, "worker-b").await.unwrap()
    },);

    let enriched: i64 = sqlx::query_scalar(
        "select count(*) from alert where enrichment_status = 'Enriched' and malice = 'Malicious'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(enriched, 50);
    // Each mock's `expect(1)`, checked on drop, is the single-flight assertion.
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn an_indicator_can_be_enriched_on_demand_through_the_same_cache(db: PgPool) {
    let mock = MockServer::start().await;
    point_providers_at(&db, &mock).await;
    Mock::given(method("GET"))
        .and(path("/api/v3/domains/evil.example.com"))
        .respond_with(answer(200, "virustotal.domain_malicious.json"))
        .expect(1)
        .mount(&mock)
        .await;
    let enricher = enricher(&db, &[("VIRUSTOTAL_API_KEY", "vt-test-key")]).await;
    let domain_type = domain::alert::IndicatorType::Domain;

    let results =
        domain::enrich::enrich_indicator(&db, &enricher, domain_type, "evil[.]example[.]com")
            .await
            .unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(
        (results[0].provider.as_str(), results[0].malice.as_str()),
        ("virustotal", "Malicious")
    );
    // Asked again: answered from the cache (the mock expects one call).
    let again = domain::enrich::enrich_indicator(&db, &enricher, domain_type, "evil.example.com")
        .await
        .unwrap();
    assert_eq!(again[0].enriched_at, results[0].enriched_at);

    let refused =
        domain::enrich::enrich_indicator(&db, &enricher, domain_type, "not a domain").await;
    assert!(matches!(refused, Err(domain::enrich::EnrichIndicatorError::InvalidValue(..))));
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn enrichment_works_with_stored_credentials_after_the_key_is_rotated(db: PgPool) {
    let mock = MockServer::start().await;
    point_providers_at(&db, &mock).await;
    Mock::given(method("GET"))
        .and(path("/api/v3/ip_addresses/8.8.8.8"))
        .and(header("x-apikey", "stored-vt-key"))
        .respond_with(answer(200, "virustotal.ip_clean.json"))
        .expect(1)
        .mount(&mock)
        .await;
    let old = crate::helpers::test_key();
    let fields =
        std::collections::BTreeMap::from([("api_key".to_owned(), "stored-vt-key".to_owned())]);
    registry::set_credentials(&db, &old, "virustotal", &fields, "tests").await.unwrap();
    let new = domain::secret::SecretKey::generate();
    registry::rotate_secrets(&db, &old, &new, "tests").await.unwrap();

    let (enricher, _) = domain::enrich::Enricher::start(
        &db,
        crate::helpers::outbound_client(),
        new,
        Default::default(),
        Default::default(),
    )
    .await
    .unwrap();
    let results = domain::enrich::enrich_indicator(
        &db,
        &enricher,
        domain::alert::IndicatorType::Ip,
        "8.8.8.8",
    )
    .await
    .unwrap();
    assert!(results[0].success, "{:?}", results[0].error);
    assert_eq!(results[0].malice.as_str(), "Benign");
}

/// Several alerts' indicators are upserted and linked in one statement: an indicator two alerts
/// share is one row linked to both, repeats within an alert count once, and an alert deleted
/// meanwhile gets its ids but no links.
#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn indicators_of_several_alerts_are_upserted_and_linked_together(db: PgPool) {
    use domain::alert::IndicatorType;
    use domain::indicator::Indicator;
    let alerts: Vec<Uuid> = sqlx::query_scalar(
        "insert into alert (alert_id, title, severity, source_name, occurred_at, raw_payload, fingerprint)
         select gen_random_uuid(), 'Linked ' || n, 'High', 'generic', now(), '{}'::json,
                decode(md5(n::text), 'hex')
         from generate_series(1, 2) n returning alert_id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let ip = |value: &str| Indicator { kind: IndicatorType::Ip, value: value.to_owned() };
    let gone = Uuid::new_v4();
    let first = [ip("203.0.113.9"), ip("198.51.100.1"), ip("203.0.113.9")];
    let second = [ip("203.0.113.9"), ip("198.51.100.2")];
    let linked = domain::store::indicator::upsert_and_link_many(
        &db,
        &[(alerts[0], &first[..]), (alerts[1], &second[..]), (gone, &second[..])],
    )
    .await
    .unwrap();
    let values = |at: usize| linked[at].iter().map(|(_, i)| i.value.as_str()).collect::<Vec<_>>();
    assert_eq!(values(0), ["198.51.100.1", "203.0.113.9"]);
    assert_eq!(values(1), ["198.51.100.2", "203.0.113.9"]);
    assert_eq!(linked[0][1].0, linked[1][1].0, "one row for the shared indicator");
    assert_eq!(linked[1], linked[2]);

    let links: Vec<(Uuid, String)> = sqlx::query_as(
        "select ai.alert_id, i.value from alert_indicator ai join indicator i using (indicator_id)
         order by i.value, ai.alert_id",
    )
    .fetch_all(&db)
    .await
    .unwrap();
    let mut expected = vec![
        (alerts[0], "198.51.100.1".to_owned()),
        (alerts[1], "198.51.100.2".to_owned()),
        (alerts[0], "203.0.113.9".to_owned()),
        (alerts[1], "203.0.113.9".to_owned()),
    ];
    expected.sort_by(|a, b| (a.1.as_str(), a.0).cmp(&(b.1.as_str(), b.0)));
    assert_eq!(links, expected);
    let indicators: i64 =
        sqlx::query_scalar("select count(*) from indicator").fetch_one(&db).await.unwrap();
    assert_eq!(indicators, 3);
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_fresh_re_enrichment_asks_the_providers_again_and_a_plain_one_does_not(db: PgPool) {
    // Each run starts a dispatcher with listeners of its own.
    let db = crate::helpers::wider(&db);
    let mock = MockServer::start().await;
    point_providers_at(&db, &mock).await;
    let ip = "198.51.100.23";
    let lookup_path = format!("/v3/community/{ip}");
    Mock::given(method("GET"))
        .and(path(lookup_path.clone()))
        .respond_with(answer(200, "greynoise.noise_malicious.json"))
        .expect(2)
        .mount(&mock)
        .await;
    let app = spawn_app(db.clone()).await;
    let alert =
        ingest(&app, "generic", json!({"title": "Scanner", "src_ip": ip}).to_string()).await;
    let enricher = enricher(&db, ENV).await;
    run(&db, enricher.clone()).await;
    let calls = async || {
        let requests = mock.received_requests().await.unwrap();
        requests.iter().filter(|request| request.url.path() == lookup_path).count()
    };
    let enriched_at = async || -> chrono::DateTime<chrono::Utc> {
        sqlx::query_scalar(
            "select r.enriched_at from enrichment_result r
             join enrichment_provider p using (enrichment_provider_id)
             join indicator i using (indicator_id)
             where p.name = 'greynoise' and i.value = $1",
        )
        .bind(ip)
        .fetch_one(&db)
        .await
        .unwrap()
    };
    assert_eq!(calls().await, 1);
    let first = enriched_at().await;

    let reenrich = "mutation($id: ID!, $fresh: Boolean!) { reenrichAlert(id: $id, fresh: $fresh) }";
    app.graphql(reenrich, json!({"id": alert, "fresh": false})).await;
    run(&db, enricher.clone()).await;
    assert_eq!(calls().await, 1, "an unexpired stored result is reused");
    assert_eq!(enriched_at().await, first);

    app.graphql(reenrich, json!({"id": alert, "fresh": true})).await;
    run(&db, enricher.clone()).await;
    assert_eq!(calls().await, 2, "fresh asks the provider again");
    assert!(enriched_at().await > first);
}
