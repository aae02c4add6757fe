//! Contextualize and dispatch end to end: documents attached by targeting rules, one signed
//! `alert.enriched` POST per matching agent to a real HTTP receiver on 127.0.0.1, retries with
//! the same `webhook-id`, 410 and timeouts, the SSRF guard, and a worker that dies in between.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use domain::agent::{self, AgentError, AgentInput};
use domain::context::{self, DocumentInput, DocumentType};
use domain::dispatch::deliver::sign;
use domain::outbound::OutboundPolicy;
use domain::store::delivery;
use serde_json::{Value, json};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{fixture, json_with_status, outbound_policy, run_worker, spawn_app, test_key};

/// A webhook receiver: records every request and answers from a script (then 200).
#[derive(Default)]
struct Receiver {
    requests: Mutex<Vec<(HeaderMap, Bytes)>>,
    script: Mutex<VecDeque<u16>>,
    delay: Mutex<Option<Duration>>,
}

impl Receiver {
    fn requests(&self) -> Vec<(HeaderMap, Bytes)> {
        self.requests.lock().unwrap().clone()
    }

    fn bodies(&self) -> Vec<Value> {
        self.requests().iter().map(|(_, body)| serde_json::from_slice(body).unwrap()).collect()
    }
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    receiver.requests.lock().unwrap().push((headers, body));
    let delay = *receiver.delay.lock().unwrap();
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    let code = receiver.script.lock().unwrap().pop_front().unwrap_or(200);
    StatusCode::from_u16(code).unwrap()
}

async fn serve_receiver(script: &[u16]) -> (String, Arc<Receiver>) {
    let receiver = Arc::new(Receiver::default());
    receiver.script.lock().unwrap().extend(script);
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(receive))
        .with_state(receiver.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/hook"), receiver)
}

fn agent_input(name: &str, url: &str, filter: Value) -> AgentInput {
    serde_json::from_value(json!({"name": name, "webhook_url": url, "trigger_filter": filter}))
        .unwrap()
}

async fn create_agent(db: &PgPool, name: &str, url: &str, filter: Value) -> (Uuid, String) {
    let created =
        agent::create(db, &test_key(), &outbound_policy(), &agent_input(name, url, filter), "test")
            .await
            .unwrap();
    (created.agent.agent_id, created.signing_secret)
}

async fn create_document(db: &PgPool, title: &str, global: bool, rules: Value) -> Uuid {
    let input = DocumentInput {
        title: title.into(),
        document_type: DocumentType::Runbook,
        content: format!("# {title}\n\n1. Check the sign-in logs."),
        description: Some(format!("How to handle {title}")),
        tags: vec!["identity".into()],
        is_global: global,
        targeting_rules: Some(rules),
        is_active: true,
    };
    context::create(db, &input, "test").await.unwrap().context_document_id
}

async fn ingest(app: &crate::helpers::TestApp, source: &str, payload: String) -> Uuid {
    let receipt = json_with_status(app.ingest(source, payload).await, 202).await;
    receipt["alert_id"].as_str().unwrap().parse().unwrap()
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn an_ingested_alert_reaches_its_agent_once_signed_with_its_rule_and_documents(db: PgPool) {
    let db = crate::helpers::wider(&db);
    let app = spawn_app(db.clone()).await;
    let (url, receiver) = serve_receiver(&[]).await;
    let (_, secret) = create_agent(&db, "triage-bot", &url, json!({})).await;
    let matching = create_document(
        &db,
        "High sentinel incidents",
        false,
        json!({"match_all": [{"field": "source_name", "op": "eq", "value": "sentinel"},
                             {"field": "severity", "op": "gte", "value": "High"}]}),
    )
    .await;
    let global = create_document(&db, "Escalation contacts", true, json!({})).await;
    let other = create_document(
        &db,
        "Splunk only",
        false,
        json!({"match_any": [{"field": "source_name", "op": "eq", "value": "splunk"}]}),
    )
    .await;

    let alert_id = ingest(&app, "sentinel", fixture("01_sentinel_brute_force_tor.json")).await;
    run_worker(&db).await;

    let requests = receiver.requests();
    assert_eq!(requests.len(), 1, "exactly one POST");
    let (headers, body) = &requests[0];
    let id = headers["webhook-id"].to_str().unwrap();
    let timestamp: i64 = headers["webhook-timestamp"].to_str().unwrap().parse().unwrap();
    assert!((chrono::Utc::now().timestamp() - timestamp).abs() < 60);
    assert_eq!(
        headers["webhook-signature"].to_str().unwrap(),
        sign(&secret, id, timestamp, body).unwrap(),
        "the signature verifies with the agent's secret"
    );
    assert_eq!(headers["content-type"], "application/json");

    let payload: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(
        keys(&payload),
        [
            "alert",
            "context_documents",
            "detection_rule",
            "event",
            "indicators",
            "version",
            "workflows"
        ]
    );
    assert_eq!(payload["event"], "alert.enriched");
    assert_eq!(payload["version"], 1);
    let alert = &payload["alert"];
    assert_eq!(
        keys(alert),
        [
            "_metadata",
            "description",
            "duplicate_count",
            "enriched_at",
            "ingested_at",
            "malice",
            "occurred_at",
            "severity",
            "source",
            "source_name",
            "status",
            "tags",
            "title",
            "uuid"
        ]
    );
    assert_eq!(alert["uuid"], alert_id.to_string());
    assert_eq!(alert["title"], "Brute force sign-in attempts from TOR network detected");
    assert_eq!(alert["severity"], "High");
    assert_eq!(alert["status"], "Open");
    assert_eq!(alert["source_name"], "sentinel");
    assert_eq!(alert["malice"], "Pending");
    let metadata = &alert["_metadata"];
    assert_eq!(
        keys(metadata),
        [
            "context_documents_applied",
            "detection_rule_matched",
            "enrichment",
            "generated_at",
            "indicator_count"
        ]
    );
    assert_eq!(metadata["indicator_count"], 3);
    assert_eq!(metadata["detection_rule_matched"], true);
    assert_eq!(metadata["context_documents_applied"], 2);
    assert_eq!(keys(&metadata["enrichment"]), ["enriched_at", "failed", "succeeded"]);

    let indicators = payload["indicators"].as_array().unwrap();
    assert_eq!(indicators.len(), 3);
    for indicator in indicators {
        assert_eq!(
            keys(indicator),
            ["enrichment_results", "first_seen", "last_seen", "malice", "type", "uuid", "value"]
        );
    }
    assert!(indicators.iter().any(|i| i["type"] == "ip" && i["value"] == "185.220.101.34"));

    let rule = &payload["detection_rule"];
    assert_eq!(rule["name"], "Brute force sign-in attempts from TOR network detected");
    for key in ["mitre_tactics", "mitre_techniques", "documentation"] {
        assert!(rule.get(key).is_some(), "detection_rule.{key}");
    }
    let titles: Vec<&str> = payload["context_documents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles.len(), 2);
    assert!(titles.contains(&"High sentinel incidents") && titles.contains(&"Escalation contacts"));
    for document in payload["context_documents"].as_array().unwrap() {
        assert!(document["content"].as_str().unwrap().starts_with("# "));
        assert_eq!(document["document_type"], "runbook");
    }
    assert_eq!(payload["workflows"], json!([]));

    // The attachments and the delivery are recorded.
    let attached = domain::store::document::for_alert(&db, alert_id).await.unwrap();
    let attached: Vec<Uuid> = attached.iter().map(|d| d.context_document_id).collect();
    assert!(
        attached.contains(&matching) && attached.contains(&global) && !attached.contains(&other)
    );
    let deliveries = delivery::list(&db, Some(alert_id), None, None, 10).await.unwrap();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].status, "delivered");
    assert_eq!(deliveries[0].delivery_id.to_string(), id);
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn trigger_filters_choose_which_agents_hear_of_an_alert(db: PgPool) {
    let db = crate::helpers::wider(&db);
    let app = spawn_app(db.clone()).await;
    let (high_url, high) = serve_receiver(&[]).await;
    let (elastic_url, elastic) = serve_receiver(&[]).await;
    let (tagged_url, tagged) = serve_receiver(&[]).await;
    let (rules_url, by_rules) = serve_receiver(&[]).await;
    create_agent(&db, "high-only", &high_url, json!({"min_severity": "High"})).await;
    create_agent(&db, "elastic-only", &elastic_url, json!({"source_names": ["elastic"]})).await;
    create_agent(&db, "phishing-only", &tagged_url, json!({"tags": ["phishing"]})).await;
    create_agent(
        &db,
        "by-rules",
        &rules_url,
        json!({"match_any": [{"field": "title", "op": "contains", "value": "beacon"}]}),
    )
    .await;

    for (title, severity, tags) in [
        ("Low noise", "Low", json!([])),
        ("Critical ransomware", "Critical", json!([])),
        ("Reported mail", "Medium", json!(["Phishing"])),
        ("C2 beacon", "Medium", json!([])),
    ] {
        let payload = json!({"title": title, "severity": severity, "tags": tags});
        ingest(&app, "generic", payload.to_string()).await;
    }
    ingest(&app, "elastic", fixture("02_elastic_malware_hash.json")).await;
    run_worker(&db).await;

    let titles = |receiver: &Receiver| -> Vec<String> {
        let mut titles: Vec<String> = receiver
            .bodies()
            .iter()
            .map(|b| b["alert"]["title"].as_str().unwrap().to_owned())
            .collect();
        titles.sort();
        titles
    };
    let elastic_title = elastic.bodies().first().map(|b| b["alert"]["title"].clone());
    assert_eq!(elastic.requests().len(), 1, "only the elastic alert");
    assert_eq!(elastic.bodies()[0]["alert"]["source_name"], "elastic");
    let high_titles = titles(&high);
    assert!(high_titles.contains(&"Critical ransomware".to_owned()), "{high_titles:?}");
    assert!(
        !high_titles.iter().any(|t| t == "Low noise" || t == "Reported mail" || t == "C2 beacon")
    );
    assert_eq!(titles(&tagged), ["Reported mail"]);
    assert_eq!(titles(&by_rules), ["C2 beacon"]);
    assert!(elastic_title.is_some());
}

/// Runs the full pipeline in a live worker until `done` holds (at most 20 s).
async fn run_live_until(db: &PgPool, done: impl AsyncFn() -> bool) {
    run_live_with(db, crate::helpers::test_schedule(), done).await
}

/// [`run_live_until`] with the deliverer retrying on `schedule`.
async fn run_live_with(db: &PgPool, schedule: Vec<Duration>, done: impl AsyncFn() -> bool) {
    let enricher = crate::helpers::enricher(db, &[]).await;
    let handlers = crate::helpers::pipeline_with(db, enricher, schedule).await;
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let cfg =
        worker::WorkerConfig { poll_interval: Duration::from_millis(50), ..Default::default() };
    let running = tokio::spawn(worker::run(db.clone(), cfg, handlers, async move {
        let _ = stopped.wait_for(|&stop| stop).await;
    }));
    let mut finished = false;
    for _ in 0..400 {
        if done().await {
            finished = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.send(true).unwrap();
    running.await.unwrap().unwrap();
    assert!(finished, "the condition did not hold within 20 s");
}

async fn status_of(db: &PgPool, agent_name: &str) -> Vec<String> {
    sqlx::query_scalar(
        "select d.status from delivery d join agent a using (agent_id) where a.name = $1",
    )
    .bind(agent_name)
    .fetch_all(db)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_failing_agent_is_retried_with_the_same_id_without_delaying_another(db: PgPool) {
    let db = crate::helpers::wider(&db);
    let app = spawn_app(db.clone()).await;
    let (flaky_url, flaky) = serve_receiver(&[500, 500, 500]).await;
    let (steady_url, steady) = serve_receiver(&[]).await;
    create_agent(&db, "flaky", &flaky_url, json!({})).await;
    create_agent(&db, "steady", &steady_url, json!({})).await;
    let alert_id = ingest(&app, "generic", json!({"title": "Retry me"}).to_string()).await;

    // The first of the three retries waits about a second, so the steady agent's single
    // delivery has to land before it unless the flaky agent holds it back.
    let schedule =
        vec![Duration::from_secs(1), Duration::from_millis(50), Duration::from_millis(50)];
    run_live_with(&db, schedule, async || status_of(&db, "flaky").await == ["delivered"]).await;

    assert_eq!(steady.requests().len(), 1);
    let flaky_requests = flaky.requests();
    assert_eq!(flaky_requests.len(), 4, "three 500s, then 200");
    let ids: Vec<&str> =
        flaky_requests.iter().map(|(h, _)| h["webhook-id"].to_str().unwrap()).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "the same webhook-id on every retry: {ids:?}");
    let bodies: Vec<&Bytes> = flaky_requests.iter().map(|(_, body)| body).collect();
    assert!(bodies.iter().all(|b| *b == bodies[0]), "the same body on every retry");

    let list = delivery::list(&db, Some(alert_id), None, None, 10).await.unwrap();
    let flaky_delivery = list.iter().find(|d| d.agent_name == "flaky").unwrap();
    let attempts = delivery::attempts(&db, flaky_delivery.delivery_id).await.unwrap();
    let codes: Vec<Option<i32>> = attempts.iter().map(|a| a.status_code).collect();
    assert_eq!(codes, [Some(500), Some(500), Some(500), Some(200)]);
    let steady_delivery = list.iter().find(|d| d.agent_name == "steady").unwrap();
    assert_eq!(steady_delivery.attempts, 1);
    // The steady agent was not held back by the flaky one's retries.
    assert!(steady_delivery.delivered_at.unwrap() < attempts[1].attempted_at);

    // A delivered one can be sent again on request, same id.
    assert_eq!(
        delivery::redeliver(&db, steady_delivery.delivery_id, 10).await.unwrap(),
        Some(true)
    );
    run_live_until(&db, async || steady.requests().len() == 2).await;
    let again = steady.requests();
    assert_eq!(again[0].0["webhook-id"], again[1].0["webhook-id"]);
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn gone_deactivates_the_agent_and_a_hanging_receiver_is_cut_at_its_timeout(db: PgPool) {
    let db = crate::helpers::wider(&db);
    let app = spawn_app(db.clone()).await;
    let (gone_url, gone) = serve_receiver(&[410]).await;
    let (slow_url, slow) = serve_receiver(&[]).await;
    *slow.delay.lock().unwrap() = Some(Duration::from_secs(30));
    let (gone_id, _) = create_agent(&db, "gone", &gone_url, json!({})).await;
    let input: AgentInput = serde_json::from_value(
        json!({"name": "slow", "webhook_url": slow_url, "timeout_seconds": 1}),
    )
    .unwrap();
    agent::create(&db, &test_key(), &outbound_policy(), &input, "test").await.unwrap();
    ingest(&app, "generic", json!({"title": "Anyone there?"}).to_string()).await;

    run_live_until(&db, async || {
        status_of(&db, "gone").await == ["failed"] && slow.requests().len() >= 2
    })
    .await;

    assert_eq!(gone.requests().len(), 1, "410 is not retried");
    let gone_agent = domain::store::agent::get(&db, gone_id).await.unwrap().unwrap();
    assert!(!gone_agent.is_active);
    assert!(gone_agent.deactivated_reason.unwrap().contains("410"));
    let slow_delivery = delivery::list(&db, None, None, None, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.agent_name == "slow")
        .unwrap();
    let first = &delivery::attempts(&db, slow_delivery.delivery_id).await.unwrap()[0];
    assert_eq!(first.status_code, None);
    assert!(first.error.as_deref().unwrap().contains("within 1 s"), "{first:?}");
    assert!((1000..3000).contains(&first.latency_ms), "cut at ~1 s: {} ms", first.latency_ms);

    // A later alert does not go to the deactivated agent.
    ingest(&app, "generic", json!({"title": "Second"}).to_string()).await;
    run_worker(&db).await;
    assert_eq!(gone.requests().len(), 1);
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn webhook_urls_to_private_addresses_are_refused_unless_allowed(db: PgPool) {
    let db = crate::helpers::wider(&db);
    domain::migrate(&db).await.unwrap();
    let strict = OutboundPolicy::default();
    let allowed =
        OutboundPolicy::parse("127.0.0.0/8, 10.0.0.0/8, 169.254.169.254/32, ::1").unwrap();
    for (n, url) in [
        "http://127.0.0.1:9000/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/hook",
    ]
    .into_iter()
    .enumerate()
    {
        let input = agent_input(&format!("agent-{n}"), url, json!({}));
        match agent::create(&db, &test_key(), &strict, &input, "test").await {
            Err(AgentError::Invalid(problems)) => assert_eq!(problems[0].field, "webhook_url"),
            other => panic!("{url} was not refused: {other:?}"),
        }
        agent::create(&db, &test_key(), &allowed, &input, "test").await.unwrap();
    }

    // A name is checked where it matters: on the address connected to.
    let (url, receiver) = serve_receiver(&[]).await;
    let by_name = url.replace("127.0.0.1", "localhost");
    let created = agent::create(
        &db,
        &test_key(),
        &strict,
        &agent_input("by-name", &by_name, json!({})),
        "test",
    )
    .await
    .unwrap();
    sqlx::query("update agent set is_active = (agent_id = $1)")
        .bind(created.agent.agent_id)
        .execute(&db)
        .await
        .unwrap();
    let app = spawn_app(db.clone()).await;
    ingest(&app, "generic", json!({"title": "Via a name"}).to_string()).await;
    let (dispatcher, _) = domain::dispatch::Dispatcher::start(&db).await.unwrap();
    let deliverer = domain::dispatch::Deliverer::with_schedule(test_key(), strict, vec![]);
    let handlers =
        worker::pipeline(crate::helpers::enricher(&db, &[]).await, dispatcher, Arc::new(deliverer));
    worker::run_until_idle(&db, &handlers, "strict-worker").await.unwrap();

    assert!(receiver.requests().is_empty(), "nothing reached the loopback receiver");
    let refused = delivery::list(&db, None, None, None, 10).await.unwrap();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].status, "failed");
    assert!(refused[0].last_error.as_deref().unwrap().contains("SSRF"), "{refused:?}");
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_worker_that_dies_between_enrichment_and_delivery_loses_nothing(db: PgPool) {
    let db = crate::helpers::wider(&db);
    let app = spawn_app(db.clone()).await;
    let (url, receiver) = serve_receiver(&[]).await;
    create_agent(&db, "survivor", &url, json!({})).await;
    ingest(&app, "generic", json!({"title": "Crash test"}).to_string()).await;

    // A worker enriches the alert and commits, then claims the delivery and dies.
    let enricher = crate::helpers::enricher(&db, &[]).await;
    let (dispatcher, _) = domain::dispatch::Dispatcher::start(&db).await.unwrap();
    let claimed =
        domain::store::job::claim(&db, 1, Duration::from_secs(60), "doomed").await.unwrap();
    let job: domain::job::EnrichAlert = serde_json::from_value(claimed[0].payload.clone()).unwrap();
    let finisher = domain::enrich::Finisher::spawn(&db, dispatcher);
    let lease = (claimed[0].job_id, claimed[0].lease_token);
    domain::enrich::enrich_alert(&db, &enricher, &finisher, &job, lease).await.unwrap();
    let delivery_job =
        domain::store::job::claim(&db, 1, Duration::from_millis(200), "doomed").await.unwrap();
    assert_eq!(delivery_job[0].kind, "deliver_webhook");
    assert!(receiver.requests().is_empty());

    // Its lease runs out; another worker picks the delivery up and sends it once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    domain::store::job::rescue_expired(&db).await.unwrap();
    run_worker(&db).await;
    run_worker(&db).await;
    assert_eq!(receiver.requests().len(), 1);
    assert_eq!(status_of(&db, "survivor").await, ["delivered"]);
}

/// Alerts finishing together share a transaction, but a job whose lease another worker took
/// writes nothing and does not hold back the others of its batch.
#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_fenced_job_writes_nothing_and_its_batch_still_finishes(db: PgPool) {
    let db = crate::helpers::wider(&db);
    let app = spawn_app(db.clone()).await;
    let (url, receiver) = serve_receiver(&[]).await;
    create_agent(&db, "batched", &url, json!({})).await;
    let kept = ingest(&app, "generic", json!({"title": "Kept"}).to_string()).await;
    let lost = ingest(&app, "generic", json!({"title": "Lost"}).to_string()).await;

    let enricher = crate::helpers::enricher(&db, &[]).await;
    let (dispatcher, _) = domain::dispatch::Dispatcher::start(&db).await.unwrap();
    let finisher = domain::enrich::Finisher::spawn(&db, dispatcher);
    let claimed = domain::store::job::claim(&db, 2, Duration::from_secs(60), "slow").await.unwrap();
    assert_eq!(claimed.len(), 2);
    let payload = |at: usize| -> domain::job::EnrichAlert {
        serde_json::from_value(claimed[at].payload.clone()).unwrap()
    };
    // Another worker rescued the job of "Lost": its token changed.
    let lost_at = usize::from(payload(0).alert_id != lost);
    sqlx::query("update job set lease_token = gen_random_uuid() where job_id = $1")
        .bind(claimed[lost_at].job_id)
        .execute(&db)
        .await
        .unwrap();
    let run = |at: usize| {
        let (enricher, finisher, db) = (&enricher, &finisher, &db);
        let job = payload(at);
        let lease = (claimed[at].job_id, claimed[at].lease_token);
        async move { domain::enrich::enrich_alert(db, enricher, finisher, &job, lease).await }
    };
    let (first, second) = tokio::join!(run(0), run(1));
    let (kept_result, lost_result) = if lost_at == 0 { (second, first) } else { (first, second) };
    kept_result.unwrap();
    assert!(matches!(lost_result, Err(domain::enrich::EnrichError::Fenced)), "{lost_result:?}");

    let statuses: Vec<(Uuid, String)> =
        sqlx::query_as("select alert_id, enrichment_status::text from alert order by title")
            .fetch_all(&db)
            .await
            .unwrap();
    assert_eq!(statuses, [(kept, "Enriched".to_owned()), (lost, "Pending".to_owned())]);
    let deliveries: Vec<Uuid> =
        sqlx::query_scalar("select alert_id from delivery").fetch_all(&db).await.unwrap();
    assert_eq!(deliveries, [kept], "only the finished alert is delivered");
    run_worker(&db).await;
    assert_eq!(receiver.requests().len(), 1);
}
