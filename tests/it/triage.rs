//! Triage, documents and rules through the domain API: the alert lifecycle with its
//! timestamps and close classifications, findings, analyst verdicts that stick, re-enrichment
//! that does not re-notify unless asked, document versions, and rule edits that keep links.

use domain::alert::{AlertStatus, Malice, Severity};
use domain::context::{self, DocumentInput};
use domain::detection_rule::{self, RuleError, RuleInput};
use domain::triage::{self, AlertUpdate, CloseClassification, FindingInput, TriageError};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{fixture, json_with_status, run_worker, spawn_app};

async fn ingest(app: &crate::helpers::TestApp, source: &str, payload: String) -> Uuid {
    let receipt = json_with_status(app.ingest(source, payload).await, 202).await;
    receipt["alert_id"].as_str().unwrap().parse().unwrap()
}

async fn events(db: &PgPool, alert_id: Uuid) -> Vec<String> {
    domain::store::activity::for_alert(db, alert_id)
        .await
        .unwrap()
        .into_iter()
        .map(|event| event.event_type)
        .collect()
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn an_alert_moves_through_its_lifecycle_and_closing_needs_a_classification(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let alert_id = ingest(&app, "generic", json!({"title": "Lifecycle"}).to_string()).await;

    let triaging = AlertUpdate { status: Some(AlertStatus::Triaging), ..Default::default() };
    let alert = triage::update_alert(&db, alert_id, &triaging, "analyst").await.unwrap();
    assert!(alert.acknowledged_at.is_some() && alert.triaged_at.is_none());

    let close = AlertUpdate { status: Some(AlertStatus::Closed), ..Default::default() };
    let Err(TriageError::Invalid(problems)) =
        triage::update_alert(&db, alert_id, &close, "analyst").await
    else {
        panic!("closed without a classification");
    };
    assert_eq!(problems[0].field, "close_classification");

    let close = AlertUpdate {
        status: Some(AlertStatus::Closed),
        close_classification: Some(CloseClassification::FalsePositiveInaccurateData),
        severity: Some(Severity::Low),
        ..Default::default()
    };
    let closed = triage::update_alert(&db, alert_id, &close, "analyst").await.unwrap();
    assert_eq!(closed.status, AlertStatus::Closed);
    assert_eq!(closed.close_classification.as_deref(), Some("false_positive_inaccurate_data"));
    assert!(closed.closed_at.is_some() && closed.triaged_at.is_some());
    assert_eq!(closed.acknowledged_at, alert.acknowledged_at, "acknowledged once");

    let reopen = AlertUpdate { status: Some(AlertStatus::Open), ..Default::default() };
    let reopened = triage::update_alert(&db, alert_id, &reopen, "analyst").await.unwrap();
    assert!(reopened.closed_at.is_none() && reopened.close_classification.is_none());

    let log = events(&db, alert_id).await;
    assert_eq!(log.iter().filter(|e| *e == "alert.status_changed").count(), 3, "{log:?}");
    assert!(log.contains(&"alert.severity_changed".to_owned()));
    assert!(matches!(
        triage::update_alert(&db, Uuid::nil(), &reopen, "analyst").await,
        Err(TriageError::AlertNotFound(_))
    ));
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn findings_and_verdicts_are_recorded_and_an_override_sticks(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let alert_id =
        ingest(&app, "generic", json!({"title": "Phish", "src_ip": "198.51.100.9"}).to_string())
            .await;
    run_worker(&db).await;

    let finding = FindingInput {
        agent_name: "triage-bot".into(),
        summary: "Known scanner".into(),
        confidence: Some(0.9),
        recommended_action: Some("close".into()),
        evidence: Some(json!({"api_key": "leaked", "hits": 3})),
    };
    triage::add_finding(&db, alert_id, &finding, "triage-bot").await.unwrap();
    let bad = FindingInput { confidence: Some(1.5), summary: " ".into(), ..finding.clone() };
    let Err(TriageError::Invalid(problems)) = triage::add_finding(&db, alert_id, &bad, "x").await
    else {
        panic!("a bad finding was accepted");
    };
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["summary", "confidence"]);
    let findings = domain::store::finding::for_alert(&db, alert_id).await.unwrap();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].evidence["hits"], 3);

    let indicator_id: Uuid =
        sqlx::query_scalar("select indicator_id from indicator where value = '198.51.100.9'")
            .fetch_one(&db)
            .await
            .unwrap();
    let alerts =
        triage::set_indicator_malice(&db, indicator_id, Some(Malice::Malicious), "analyst")
            .await
            .unwrap();
    assert_eq!(alerts, [alert_id]);
    let alert = domain::store::alert::get(&db, alert_id).await.unwrap().unwrap();
    assert_eq!(alert.malice, Malice::Malicious, "the alert follows its worst indicator");

    // Re-enrichment keeps the analyst's verdict.
    triage::reenrich_alert(&db, alert_id, false, false, "analyst").await.unwrap();
    run_worker(&db).await;
    let alert = domain::store::alert::get(&db, alert_id).await.unwrap().unwrap();
    assert_eq!(alert.malice, Malice::Malicious);
    triage::set_indicator_malice(&db, indicator_id, None, "analyst").await.unwrap();
    let alert = domain::store::alert::get(&db, alert_id).await.unwrap().unwrap();
    assert_eq!(alert.malice, Malice::Pending, "cleared: back to the providers' verdict");

    let log = events(&db, alert_id).await;
    for event in ["finding.added", "indicator.malice_overridden", "alert.reenrichment_requested"] {
        assert!(log.contains(&event.to_owned()), "{event} in {log:?}");
    }
    let details: Vec<serde_json::Value> =
        sqlx::query_scalar("select details from activity where event_type = 'finding.added'")
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(!details[0].to_string().contains("leaked"));
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn re_enrichment_notifies_agents_only_when_asked(db: PgPool) {
    let db = crate::helpers::wider(&db);
    let app = spawn_app(db.clone()).await;
    let receiver = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let input: domain::agent::AgentInput = serde_json::from_value(
        json!({"name": "bot", "webhook_url": format!("{}/hook", receiver.uri())}),
    )
    .unwrap();
    domain::agent::create(
        &db,
        &crate::helpers::test_key(),
        &crate::helpers::outbound_policy(),
        &input,
        "t",
    )
    .await
    .unwrap();
    let alert_id = ingest(&app, "generic", json!({"title": "Once"}).to_string()).await;
    run_worker(&db).await;
    assert_eq!(receiver.received_requests().await.unwrap().len(), 1);

    triage::reenrich_alert(&db, alert_id, false, false, "analyst").await.unwrap();
    run_worker(&db).await;
    assert_eq!(receiver.received_requests().await.unwrap().len(), 1, "not re-notified");

    triage::reenrich_alert(&db, alert_id, true, false, "analyst").await.unwrap();
    run_worker(&db).await;
    assert_eq!(receiver.received_requests().await.unwrap().len(), 2, "re-notified when asked");
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn documents_keep_their_history_and_rules_keep_their_alerts(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let mut input = DocumentInput {
        title: "Brute force".into(),
        document_type: context::DocumentType::Runbook,
        content: "v1".into(),
        description: None,
        tags: vec![],
        is_global: false,
        targeting_rules: Some(
            json!({"match_any": [{"field": "tags", "op": "in", "value": ["TOR"]}]}),
        ),
        is_active: true,
    };
    let document = context::create(&db, &input, "author").await.unwrap();
    input.content = "v2".into();
    let updated =
        context::update(&db, document.context_document_id, &input, "editor").await.unwrap();
    assert_eq!(updated.version, 2);
    input.is_active = false;
    let toggled =
        context::update(&db, document.context_document_id, &input, "editor").await.unwrap();
    assert_eq!(toggled.version, 2, "switching off is not a new version");
    let history = context::versions(&db, document.context_document_id).await.unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!((history[0].version, history[0].content.as_str()), (1, "v1"));
    input.targeting_rules =
        Some(json!({"match_all": [{"field": "severity", "op": "gte", "value": "Severe"}]}));
    let Err(context::DocumentError::Invalid(invalid)) =
        context::update(&db, document.context_document_id, &input, "editor").await
    else {
        panic!("a bad rule was accepted");
    };
    assert_eq!(invalid.problems[0].field, "targeting_rules.match_all[0].value");
    let imported =
        context::import_file(&db, "phishing_playbook.md", b"# Phishing\n\nSteps.", "author")
            .await
            .unwrap();
    assert_eq!(
        (imported.title.as_str(), imported.document_type),
        ("Phishing", context::DocumentType::Playbook)
    );

    // An auto-created rule is edited; its alert stays linked.
    let alert_id = ingest(&app, "sentinel", fixture("01_sentinel_brute_force_tor.json")).await;
    run_worker(&db).await;
    let rule_id =
        domain::store::alert::get(&db, alert_id).await.unwrap().unwrap().detection_rule_id.unwrap();
    let rule = domain::store::rule::get(&db, rule_id).await.unwrap().unwrap();
    let edit = RuleInput {
        name: "TOR brute force".into(),
        source_name: rule.source_name.clone(),
        source_rule_id: rule.source_rule_id.clone(),
        severity: Some(Severity::High),
        mitre_tactics: vec!["TA0006".into()],
        mitre_techniques: vec!["T1110".into()],
        mitre_subtechniques: vec!["T1110.001".into()],
        data_sources: vec!["SigninLogs".into()],
        documentation: Some("## Triage\nCheck the sign-ins.".into()),
        is_active: true,
    };
    let edited = detection_rule::update(&db, rule_id, &edit, "analyst").await.unwrap();
    assert_eq!(edited.name, "TOR brute force");
    assert_eq!(
        domain::store::alert::get(&db, alert_id).await.unwrap().unwrap().detection_rule_id,
        Some(rule_id)
    );
    let bad = RuleInput { mitre_techniques: vec!["T11".into()], ..edit.clone() };
    assert!(matches!(
        detection_rule::update(&db, rule_id, &bad, "analyst").await,
        Err(RuleError::Invalid(ref problems)) if problems[0].field == "mitre_techniques[0]"
    ));
    assert!(matches!(
        detection_rule::create(&db, &edit, "analyst").await,
        Err(RuleError::Duplicate(..))
    ));
    let custom = RuleInput { source_rule_id: "custom-1".into(), ..edit };
    let created = detection_rule::create(&db, &custom, "analyst").await.unwrap();
    detection_rule::delete(&db, rule_id, "analyst").await.unwrap();
    let alert = domain::store::alert::get(&db, alert_id).await.unwrap().unwrap();
    assert_eq!(alert.detection_rule_id, None, "deleting a rule unlinks, never deletes, alerts");
    assert!(
        domain::store::rule::list(&db)
            .await
            .unwrap()
            .iter()
            .any(|r| r.detection_rule_id == created.detection_rule_id)
    );
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn rotating_the_key_re_encrypts_agent_secrets_too(db: PgPool) {
    domain::migrate(&db).await.unwrap();
    let old = crate::helpers::test_key();
    let input: domain::agent::AgentInput = serde_json::from_value(json!({
        "name": "bot", "webhook_url": "https://agents.example/hook",
        "auth_header": {"name": "Authorization", "value": "Bearer agent-token-123"}
    }))
    .unwrap();
    let created = domain::agent::create(&db, &old, &Default::default(), &input, "t").await.unwrap();
    let stored: Vec<u8> =
        sqlx::query_scalar("select auth_header_value from agent").fetch_one(&db).await.unwrap();
    assert!(!stored.windows(15).any(|w| w == b"agent-token-123"), "not plaintext");
    let new = domain::secret::SecretKey::generate();
    assert_eq!(
        domain::provider::registry::rotate_secrets(&db, &old, &new, "tests").await.unwrap(),
        2
    );
    let sealed: Vec<u8> =
        sqlx::query_scalar("select signing_secret from agent").fetch_one(&db).await.unwrap();
    assert_eq!(new.open(&sealed).unwrap(), created.signing_secret.as_bytes());
    let logged: String =
        sqlx::query_scalar("select details::text from activity where event_type = 'agent.created'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(!logged.contains("agent-token-123") && !logged.contains(&created.signing_secret));
}
