//! The `alertgraph` binary as a user runs it: `api-key create`, then `up` (server and worker in
//! one process), an alert posted over HTTP, and a clean stop on SIGTERM.

use std::process::{Command, Stdio};
use std::time::Duration;

use sqlx::PgPool;

use crate::helpers::{fixture, json_with_status};
use crate::ingest_concurrency::wait_until;

const BINARY: &str = env!("CARGO_BIN_EXE_alertgraph");

/// Pools sized for a test: `up`'s defaults open 48 connections at start, and tests run side
/// by side on one server whose `max_connections` is 100.
const SMALL_POOLS: [(&str, &str); 2] =
    [("ALERTGRAPH_DB_POOL_SIZE", "4"), ("ALERTGRAPH_WORKER_POOL_SIZE", "4")];

/// The URL of the test's own database, on the server `DATABASE_URL` names.
pub(crate) fn url_of(db: &PgPool) -> String {
    let name = db.connect_options().get_database().expect("test databases are named").to_owned();
    let mut url =
        url::Url::parse(&std::env::var("DATABASE_URL").expect("DATABASE_URL is set for tests"))
            .expect("DATABASE_URL parses");
    url.set_path(&name);
    url.to_string()
}

fn free_address() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn alertgraph_up_accepts_an_alert_and_its_worker_enriches_it(db: PgPool) {
    let url = url_of(&db);
    let created = Command::new(BINARY)
        .args([
            "api-key",
            "create",
            "--name",
            "siem",
            "--scopes",
            "alerts:write",
            "--type",
            "agent",
        ])
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("cai_"), "{key}");

    let address = free_address();
    let mut up = KillOnDrop(Some(
        Command::new(BINARY)
            .arg("up")
            .env("DATABASE_URL", &url)
            .envs(SMALL_POOLS)
            .env("ALERTGRAPH_LISTEN", address.to_string())
            .env("ALERTGRAPH_PUBLIC_URL", "https://alertgraph.example.com/")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    ));
    let client = reqwest::Client::new();
    wait_for(&client, address, "/health").await;
    // MCP answers the public URL's host as well as loopback, and nothing else.
    for (host, allowed) in [("alertgraph.example.com", true), ("evil.example", false)] {
        let answer = client
            .post(format!("http://{address}/mcp"))
            .header("host", host)
            .bearer_auth(&key)
            .header("accept", "application/json, text/event-stream")
            .json(
                &serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "test", "version": "1"}}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status().is_success(), allowed, "{host}: {}", answer.status());
    }
    let ready = client.get(format!("http://{address}/ready")).send().await.unwrap();
    assert_eq!(json_with_status(ready, 200).await["database"], "ok");
    let demo = client.get(format!("http://{address}/demo/intel?type=ip&value=1.2.3.4")).send();
    assert_eq!(demo.await.unwrap().status(), 404, "the simulated provider needs --demo");

    let response = client
        .post(format!("http://{address}/v1/ingest/elastic"))
        .bearer_auth(&key)
        .body(fixture("02_elastic_malware_hash.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_with_status(response, 202).await["status"], "queued");
    wait_until(&db, "select count(*) = 1 from alert where enrichment_status = 'Enriched'").await;

    let mut up = up.0.take().unwrap();
    let terminated = Command::new("kill").args(["-TERM", &up.id().to_string()]).status().unwrap();
    assert!(terminated.success());
    let status = tokio::task::spawn_blocking(move || up.wait()).await.unwrap().unwrap();
    assert!(status.success(), "alertgraph up exited with {status}");
}

/// A child process that is killed if the test fails before stopping it, so that a failed run
/// leaves no server holding the test database open.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn serve_refuses_a_malformed_database_url_with_a_sentence_naming_it() {
    let output =
        Command::new(BINARY).arg("serve").env("DATABASE_URL", "mysql://nope").output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn up_exits_with_a_clear_error_when_its_port_is_taken(db: PgPool) {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let output = tokio::task::spawn_blocking({
        let url = url_of(&db);
        move || {
            Command::new(BINARY)
                .arg("up")
                .env("DATABASE_URL", url)
                .envs(SMALL_POOLS)
                .env("ALERTGRAPH_LISTEN", address.to_string())
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ALERTGRAPH_LISTEN"), "{stderr}");
    drop(taken);
}

#[test]
fn a_bad_setting_is_refused_with_a_sentence_naming_its_variable() {
    for (variable, value) in [
        ("ALERTGRAPH_LISTEN", "not-an-address"),
        ("ALERTGRAPH_WORKER_CONCURRENCY", "many"),
        ("ALERTGRAPH_DEDUP_WINDOW_SECONDS", "-5"),
        ("ALERTGRAPH_PUBLIC_URL", "ftp://alertgraph.example.com"),
        ("ALERTGRAPH_PUBLIC_URL", "alertgraph.example.com"),
    ] {
        let output = Command::new(BINARY)
            .arg("up")
            .env("DATABASE_URL", "postgres://127.0.0.1:1/unused")
            .env(variable, value)
            .output()
            .unwrap();
        assert!(!output.status.success(), "{variable}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn secrets_rotate_re_encrypts_stored_credentials_and_prints_the_new_key(db: PgPool) {
    domain::migrate(&db).await.unwrap();
    let old = domain::secret::SecretKey::generate();
    let fields = std::collections::BTreeMap::from([("api_key".to_owned(), "gn-key".to_owned())]);
    domain::provider::registry::set_credentials(&db, &old, "greynoise", &fields, "tests")
        .await
        .unwrap();

    let output = Command::new(BINARY)
        .args(["secrets", "rotate"])
        .env("DATABASE_URL", url_of(&db))
        .env("ALERTGRAPH_SECRET_KEY", old.to_base64())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let new =
        domain::secret::SecretKey::from_base64(&String::from_utf8(output.stdout).unwrap()).unwrap();

    let providers = domain::provider::registry::load(&db).await.unwrap();
    let greynoise = providers.iter().find(|p| p.spec.provider_name == "greynoise").unwrap();
    let auth = greynoise.credentials(&new, |_| None).unwrap().unwrap();
    assert_eq!(auth.get("api_key").map(|s| s.expose()), Some("gn-key"));

    let refused = Command::new(BINARY)
        .args(["secrets", "rotate"])
        .env("DATABASE_URL", url_of(&db))
        .env("ALERTGRAPH_SECRET_KEY", "too-short")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("ALERTGRAPH_SECRET_KEY"));
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn commands_started_together_on_a_missing_database_all_succeed(db: PgPool) {
    // `up` in one terminal and `migrate` or `api-key create` in another all create the
    // missing database; those that lose the race must carry on, not fail.
    let fresh = format!("alertgraph_fresh_{}", uuid::Uuid::new_v4().simple());
    let drop_fresh = format!("drop database if exists \"{fresh}\" with (force)");
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop_fresh.clone())).execute(&db).await.unwrap();
    let mut url = url::Url::parse(&url_of(&db)).unwrap();
    url.set_path(&fresh);
    let commands: Vec<_> = (0..4)
        .map(|_| {
            Command::new(BINARY)
                .arg("migrate")
                .env("DATABASE_URL", url.as_str())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs = tokio::task::spawn_blocking(move || {
        commands.into_iter().map(|child| child.wait_with_output().unwrap()).collect::<Vec<_>>()
    })
    .await
    .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(drop_fresh)).execute(&db).await.unwrap();
    for output in outputs {
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
}

/// Waits for whatever listens on `address` to answer `GET path` with 200.
async fn wait_for(client: &reqwest::Client, address: std::net::SocketAddr, path: &str) {
    for _ in 0..200 {
        let answer = client.get(format!("http://{address}{path}")).send().await;
        if answer.is_ok_and(|r| r.status() == 200) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nothing answered {path} on {address}");
}

/// Scrapes `/metrics` until every line of `expected` is in it, and returns the last text.
async fn scrape_until(
    client: &reqwest::Client,
    address: std::net::SocketAddr,
    expected: &[&str],
) -> String {
    let mut text = String::new();
    for _ in 0..100 {
        let answer = client.get(format!("http://{address}/metrics")).send().await.unwrap();
        assert_eq!(answer.status(), 200);
        assert_eq!(
            answer.headers()["content-type"],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        text = answer.text().await.unwrap();
        assert!(text.ends_with("# EOF\n"), "{text}");
        // Each metric family once: Prometheus refuses a scrape that repeats one.
        let mut families: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE ")).collect();
        let listed = families.len();
        families.sort();
        families.dedup();
        assert_eq!(families.len(), listed, "a metric family appears twice:\n{text}");
        if expected.iter().all(|line| text.lines().any(|l| l == *line)) {
            assert_parses_as_openmetrics(&text);
            return text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let missing: Vec<&&str> =
        expected.iter().filter(|line| !text.lines().any(|l| l == **line)).collect();
    panic!("{address}/metrics lacks {missing:?}:\n{text}");
}

/// Reads `text` with the Prometheus project's strict OpenMetrics parser (Python client), as a
/// scraper would.
fn assert_parses_as_openmetrics(text: &str) {
    use std::io::Write;
    let mut parser = Command::new(crate::helpers::python())
        .args([
            "-c",
            "import sys\n\
             from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
             for family in text_string_to_metric_families(sys.stdin.read()):\n\
             \x20   print(family.name, len(family.samples))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    parser.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let parsed = parser.wait_with_output().unwrap();
    assert!(
        parsed.status.success(),
        "the OpenMetrics parser refused the scrape: {}\n{text}",
        String::from_utf8_lossy(&parsed.stderr)
    );
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_server_and_a_separate_worker_each_report_what_they_did_on_metrics(db: PgPool) {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};

    // One provider, answering from a local mock; the built-ins that would call out are off.
    domain::migrate(&db).await.unwrap();
    let mock = MockServer::start().await;
    let ip = "203.0.113.77";
    Mock::given(method("GET"))
        .and(path(format!("/v3/community/{ip}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(crate::enrichment::response("greynoise.noise_malicious.json")),
        )
        .expect(1)
        .mount(&mock)
        .await;
    crate::enrichment::set_base_url(&db, "greynoise", &mock.uri()).await;
    sqlx::query("update enrichment_provider set is_active = (name = 'greynoise')")
        .execute(&db)
        .await
        .unwrap();
    Mock::given(method("POST"))
        .and(path("/agent"))
        .respond_with(ResponseTemplate::new(204))
        .expect(2)
        .mount(&mock)
        .await;
    let key =
        crate::helpers::create_key(&db, "siem", &[domain::api_key::Scope::AlertsWrite], None).await;
    let admin =
        crate::helpers::create_key(&db, "admin", &[domain::api_key::Scope::Admin], None).await;

    let url = url_of(&db);
    let secret = crate::helpers::test_key().to_base64();
    let (server, worker) = (free_address(), free_address());
    let start = |command: &str, setting: &str, address: std::net::SocketAddr| {
        KillOnDrop(Some(
            Command::new(BINARY)
                .arg(command)
                .env("DATABASE_URL", &url)
                .envs(SMALL_POOLS)
                .env("ALERTGRAPH_SECRET_KEY", &secret)
                .env("ALERTGRAPH_OUTBOUND_ALLOW", "127.0.0.0/8")
                .env("GREYNOISE_API_KEY", "gn-test-key")
                .env(setting, address.to_string())
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        ))
    };
    let _serving = start("serve", "ALERTGRAPH_LISTEN", server);
    let client = reqwest::Client::new();
    wait_for(&client, server, "/health").await;
    // An agent that takes every enriched alert, registered before the worker starts.
    let created = client
        .post(format!("http://{server}/graphql"))
        .bearer_auth(&admin)
        .json(&serde_json::json!({
            "query": "mutation($url: String!) { createAgent(input: {name: \"triage\", webhookUrl: $url}) { agent { id } } }",
            "variables": {"url": format!("{}/agent", mock.uri())},
        }))
        .send()
        .await
        .unwrap();
    let created = json_with_status(created, 200).await;
    assert!(created.get("errors").is_none(), "{created}");
    let _working = start("work", "ALERTGRAPH_WORKER_METRICS_LISTEN", worker);
    wait_for(&client, worker, "/metrics").await;

    // Two alerts sharing an IP (one lookup, then one stored result reused; each alert delivered
    // to the agent), and two refusals.
    let post = |source: &str, body: String| {
        client
            .post(format!("http://{server}/v1/ingest/{source}"))
            .bearer_auth(&key)
            .body(body)
            .send()
    };
    for title in ["First sighting", "Second sighting"] {
        let body = serde_json::json!({"title": title, "src_ip": ip}).to_string();
        let receipt = post("generic", body).await.unwrap();
        assert_eq!(json_with_status(receipt, 202).await["status"], "queued");
    }
    assert_eq!(post("generic", "{not json".into()).await.unwrap().status(), 400);
    assert_eq!(post("nowhere", "{}".into()).await.unwrap().status(), 404);
    wait_until(&db, "select count(*) = 2 from alert where enrichment_status = 'Enriched'").await;

    let served = scrape_until(
        &client,
        server,
        &[
            r#"alertgraph_ingest_requests_total{source="generic",outcome="queued"} 2"#,
            r#"alertgraph_ingest_requests_total{source="generic",outcome="INVALID_JSON"} 1"#,
            r#"alertgraph_ingest_requests_total{source="unknown",outcome="UNKNOWN_SOURCE"} 1"#,
            r#"alertgraph_ingest_duration_seconds_count{source="generic"} 2"#,
            r#"alertgraph_queue_jobs{state="dead"} 0"#,
            "alertgraph_database_up 1",
        ],
    )
    .await;
    // The server ran no job: those are the worker's to report.
    assert!(!served.contains("alertgraph_jobs_finished_total{"), "{served}");
    let worked = scrape_until(
        &client,
        worker,
        &[
            r#"alertgraph_jobs_finished_total{kind="enrich_alert",outcome="succeeded"} 2"#,
            r#"alertgraph_job_duration_seconds_count{kind="enrich_alert"} 2"#,
            r#"alertgraph_provider_calls_total{provider="greynoise",outcome="success"} 1"#,
            r#"alertgraph_provider_call_duration_seconds_count{provider="greynoise"} 1"#,
            r#"alertgraph_enrichment_lookups_total{provider="greynoise",result="miss"} 1"#,
            r#"alertgraph_enrichment_lookups_total{provider="greynoise",result="hit"} 1"#,
            r#"alertgraph_jobs_finished_total{kind="deliver_webhook",outcome="succeeded"} 2"#,
            r#"alertgraph_webhook_deliveries_total{outcome="delivered"} 2"#,
            "alertgraph_webhook_delivery_duration_seconds_count 2",
            "alertgraph_database_up 1",
        ],
    )
    .await;
    assert!(!worked.contains("alertgraph_ingest_requests_total{"), "{worked}");
}

/// `up --demo` in `dir`, listening on `address`, against the database at `url`.
fn up_demo(dir: &std::path::Path, url: &str, address: std::net::SocketAddr) -> KillOnDrop {
    KillOnDrop(Some(
        Command::new(BINARY)
            .args(["up", "--demo"])
            .current_dir(dir)
            .env("DATABASE_URL", url)
            .envs(SMALL_POOLS)
            .env("ALERTGRAPH_LISTEN", address.to_string())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    ))
}

/// Stops `up` with SIGTERM and checks it exits cleanly.
async fn stop(mut process: KillOnDrop) {
    let mut child = process.0.take().unwrap();
    let terminated =
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(terminated.success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "alertgraph up exited with {status}");
}

/// GraphQL `query` at `address` with `key`; its `data`, which must come without errors.
async fn graphql_data(
    client: &reqwest::Client,
    address: std::net::SocketAddr,
    key: &str,
    query: &str,
) -> serde_json::Value {
    let response = client
        .post(format!("http://{address}/graphql"))
        .bearer_auth(key)
        .json(&serde_json::json!({ "query": query }))
        .send()
        .await
        .unwrap();
    let answer = json_with_status(response, 200).await;
    assert!(answer.get("errors").is_none(), "{answer}");
    answer["data"].clone()
}

/// Polls until every alert is enriched and there are `count` of them; returns them.
async fn enriched_alerts(
    client: &reqwest::Client,
    address: std::net::SocketAddr,
    key: &str,
    count: usize,
) -> Vec<serde_json::Value> {
    let query = "{ alerts(first: 50) { nodes { id title malice enrichmentStatus
        detectionRule { name } contextDocuments { title }
        relatedAlerts { alert { title } }
        indicators { type value malice enrichments { provider success malice extracted } } } } }";
    for _ in 0..300 {
        let data = graphql_data(client, address, key, query).await;
        let alerts = data["alerts"]["nodes"].as_array().unwrap().clone();
        if alerts.len() == count && alerts.iter().all(|a| a["enrichmentStatus"] == "ENRICHED") {
            return alerts;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the alerts were not all enriched within 30 s");
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn up_demo_shows_enriched_sample_alerts_with_no_provider_account_and_seeds_once(db: PgPool) {
    let url = url_of(&db);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(db.connect_options().get_database().unwrap());
    std::fs::create_dir_all(&dir).unwrap();
    let client = reqwest::Client::new();
    let address = free_address();
    let up = up_demo(&dir, &url, address);
    wait_for(&client, address, "/health").await;
    let key = std::fs::read_to_string(dir.join(".alertgraph/demo-api-key")).unwrap();

    // The sample alerts, enriched by the simulated provider over HTTP, with their rules,
    // documents and relations.
    let alerts = enriched_alerts(&client, address, &key, 5).await;
    let titled = |title: &str| {
        alerts.iter().find(|a| a["title"] == title).unwrap_or_else(|| panic!("no {title}"))
    };
    let beacon = titled("Beaconing to known C2 from FIN-LAPTOP-042");
    assert_eq!(beacon["malice"], "MALICIOUS");
    assert_eq!(
        beacon["detectionRule"]["name"],
        "Outbound beacon to a known command-and-control host"
    );
    let documents: Vec<&str> = beacon["contextDocuments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["title"].as_str().unwrap())
        .collect();
    assert!(documents.contains(&"Runbook: contain a host beaconing to C2"), "{documents:?}");
    assert!(documents.contains(&"Escalation policy"), "{documents:?}");
    assert!(!documents.contains(&"SOP: phishing triage"), "{documents:?}");
    let related: Vec<&str> = beacon["relatedAlerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["alert"]["title"].as_str().unwrap())
        .collect();
    assert!(related.contains(&"Second host beaconing to the same C2 address"), "{related:?}");
    let c2 = beacon["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["value"] == "203.0.113.66")
        .unwrap();
    let result = &c2["enrichments"][0];
    assert_eq!(result["provider"], "demo_intel");
    assert_eq!(result["success"], true);
    assert_eq!(result["malice"], "MALICIOUS");
    assert_eq!(result["extracted"]["score"], 96);
    assert_eq!(titled("Password spray against SSO from 198.51.100.23")["malice"], "SUSPICIOUS");
    assert_eq!(titled("Large download from a CDN flagged by a new proxy rule")["malice"], "BENIGN");

    // The simulated provider answers for values it has never seen, and names a bad parameter.
    let answer = client
        .get(format!("http://{address}/demo/intel?type=ip&value=192.168.1.5"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_with_status(answer, 200).await["categories"], serde_json::json!(["internal"]));
    let refused = client.get(format!("http://{address}/demo/intel?type=ipv4&value=x")).send();
    let refused = json_with_status(refused.await.unwrap(), 400).await;
    assert_eq!(refused["error"]["details"]["field"], "type", "{refused}");
    stop(up).await;

    // A second start, on another port: nothing is seeded twice, and the provider follows the
    // server to its new address.
    let address = free_address();
    let up = up_demo(&dir, &url, address);
    wait_for(&client, address, "/health").await;
    assert_eq!(key, std::fs::read_to_string(dir.join(".alertgraph/demo-api-key")).unwrap());
    let posted = client
        .post(format!("http://{address}/v1/ingest/generic"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"title": "Mine", "indicators": [{"type": "domain", "value": "mine.example"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(json_with_status(posted, 202).await["status"], "queued");
    let alerts = enriched_alerts(&client, address, &key, 6).await;
    let mine = alerts.iter().find(|a| a["title"] == "Mine").unwrap();
    assert_eq!(mine["indicators"][0]["enrichments"][0]["success"], true, "{mine}");
    let counts = graphql_data(
        &client,
        address,
        &key,
        "{ detectionRules { name } contextDocuments { title } }",
    )
    .await;
    assert_eq!(counts["detectionRules"].as_array().unwrap().len(), 3, "{counts}");
    assert_eq!(counts["contextDocuments"].as_array().unwrap().len(), 3, "{counts}");
    stop(up).await;
    std::fs::remove_dir_all(&dir).unwrap();
}
