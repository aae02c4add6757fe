//! Bad requests get the right status and error body, and leave nothing behind.

use domain::alert::Source;
use domain::api_key::Scope;
use futures::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use server::ServerConfig;
use sha2::Sha256;
use sqlx::PgPool;

use crate::helpers::{count, create_key, fixture, json_with_status, spawn_app, spawn_app_with};

fn error_code(body: &serde_json::Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_else(|| panic!("no error code in {body}"))
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn every_kind_of_bad_request_is_refused_and_nothing_is_stored(db: PgPool) {
    let mut cfg = ServerConfig::default();
    cfg.ingest.secrets.sentinel = Some(domain::secret::Secret::new("sentinel-shared-secret"));
    let app = spawn_app_with(db.clone(), cfg).await;
    let reader = create_key(&db, "reader", &[Scope::AlertsRead], None).await;
    let elastic_only =
        create_key(&db, "elastic-only", &[Scope::AlertsWrite], Some(vec![Source::Elastic])).await;
    let generic = fixture("generic_phishing_email.json");

    // No key, a malformed key, an unknown key.
    let response =
        app.client.post(app.url("/v1/ingest/generic")).body(generic.clone()).send().await.unwrap();
    assert_eq!(error_code(&json_with_status(response, 401).await), "UNAUTHORIZED");
    let body =
        json_with_status(app.ingest_with_key("generic", generic.clone(), "not-a-key").await, 401)
            .await;
    assert_eq!(error_code(&body), "UNAUTHORIZED");
    let unknown = format!("cai_{}", "x".repeat(43));
    let body =
        json_with_status(app.ingest_with_key("generic", generic.clone(), &unknown).await, 401)
            .await;
    assert_eq!(error_code(&body), "UNAUTHORIZED");

    // A key without alerts:write, and one not allowed for this source.
    let body =
        json_with_status(app.ingest_with_key("generic", generic.clone(), &reader).await, 403).await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    assert_eq!(body["error"]["details"]["required_scope"], "alerts:write");
    let body =
        json_with_status(app.ingest_with_key("generic", generic.clone(), &elastic_only).await, 403)
            .await;
    assert_eq!(error_code(&body), "SOURCE_NOT_ALLOWED");

    // An unknown source, a body that is not JSON, JSON that is not an alert.
    let body = json_with_status(app.ingest("qradar", generic.clone()).await, 404).await;
    assert_eq!(error_code(&body), "UNKNOWN_SOURCE");
    let body = json_with_status(app.ingest("generic", "{\"title\": ").await, 400).await;
    assert_eq!(error_code(&body), "INVALID_JSON");
    for (source, payload, field) in [
        ("generic", r#"{"severity": "high"}"#, "title"),
        ("generic", r#"{"title": "x", "severity": "apocalyptic"}"#, "severity"),
        (
            "generic",
            r#"{"title": "x", "indicators": [{"type": "ipv9", "value": "1"}]}"#,
            "indicators[0].type",
        ),
        ("sentinel", r#"{"properties": {"severity": "High"}}"#, "properties.title"),
        ("splunk", r#"{"search_name": "no result object"}"#, "result"),
        ("elastic", r#"{"@timestamp": "2026-03-01T00:00:00Z"}"#, "kibana.alert.rule.name"),
        ("generic", r#"["an", "array"]"#, "$"),
    ] {
        // Signed, so that Sentinel's signature check passes and validation is what fails.
        let response = app
            .client
            .post(app.url(&format!("/v1/ingest/{source}")))
            .bearer_auth(&app.admin_key)
            .header("x-sentinel-signature", sign("sentinel-shared-secret", payload))
            .body(payload)
            .send()
            .await
            .unwrap();
        let body = json_with_status(response, 422).await;
        assert_eq!(error_code(&body), "INVALID_PAYLOAD", "{payload}");
        assert_eq!(body["error"]["details"]["field"], field, "{payload}: {body}");
    }

    // Sentinel is signed: no signature and a wrong one are refused.
    let sentinel = fixture("sentinel_alert.json");
    let body = json_with_status(app.ingest("sentinel", sentinel.clone()).await, 401).await;
    assert_eq!(error_code(&body), "INVALID_SIGNATURE");
    let response = app
        .client
        .post(app.url("/v1/ingest/sentinel"))
        .bearer_auth(&app.admin_key)
        .header("x-sentinel-signature", sign("another-secret", &sentinel))
        .body(sentinel.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(&json_with_status(response, 401).await), "INVALID_SIGNATURE");

    // 6 MiB, declared up front and streamed in chunks without a length.
    let oversized =
        format!("{{\"title\": \"big\", \"description\": \"{}\"}}", "a".repeat(6 * 1024 * 1024));
    let body = json_with_status(app.ingest("generic", oversized.clone()).await, 413).await;
    assert_eq!(error_code(&body), "PAYLOAD_TOO_LARGE");
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = oversized
        .into_bytes()
        .chunks(64 * 1024)
        .map(|chunk| Ok(bytes::Bytes::copy_from_slice(chunk)))
        .collect();
    let streamed = reqwest::Body::wrap_stream(futures::stream::iter(chunks));
    let body = json_with_status(app.ingest("generic", streamed).await, 413).await;
    assert_eq!(error_code(&body), "PAYLOAD_TOO_LARGE");

    // A wrong method or path gets the same error shape, naming what was wrong.
    let response = app.client.get(app.url("/v1/ingest/generic")).send().await.unwrap();
    let body = json_with_status(response, 405).await;
    assert_eq!(
        (error_code(&body), &body["error"]["details"]["method"]),
        ("METHOD_NOT_ALLOWED", &"GET".into())
    );
    let response = app.client.post(app.url("/v1/ingest")).body(generic.clone()).send().await;
    let body = json_with_status(response.unwrap(), 404).await;
    assert_eq!(
        (error_code(&body), &body["error"]["details"]["path"]),
        ("NOT_FOUND", &"/v1/ingest".into())
    );

    assert_eq!(count(&db, "alert").await, 0, "a refused payload left an alert behind");
    assert_eq!(count(&db, "job").await, 0, "a refused payload left a job behind");

    // The server is still healthy: a valid alert, and a correctly signed one, go through.
    json_with_status(app.ingest("generic", generic).await, 202).await;
    let response = app
        .client
        .post(app.url("/v1/ingest/sentinel"))
        .bearer_auth(&app.admin_key)
        .header("x-sentinel-signature", sign("sentinel-shared-secret", &sentinel))
        .body(sentinel)
        .send()
        .await
        .unwrap();
    json_with_status(response, 202).await;
    assert_eq!(count(&db, "alert").await, 2);
}

fn sign(secret: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn splunk_requires_its_shared_token_when_one_is_configured(db: PgPool) {
    let mut cfg = ServerConfig::default();
    cfg.ingest.secrets.splunk = Some(domain::secret::Secret::new("splunk-token"));
    let app = spawn_app_with(db.clone(), cfg).await;
    let payload = fixture("splunk_alert.json");
    let send = |token: &'static str| {
        app.client
            .post(app.url("/v1/ingest/splunk"))
            .bearer_auth(&app.admin_key)
            .header("x-splunk-webhook-secret", token)
            .body(payload.clone())
            .send()
    };
    json_with_status(send("wrong-token").await.unwrap(), 401).await;
    json_with_status(send("splunk-token").await.unwrap(), 202).await;
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn revoked_and_expired_keys_stop_working_at_once(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let key = create_key(&db, "soon revoked", &[Scope::AlertsWrite], None).await;
    let payload = fixture("generic_phishing_email.json");
    json_with_status(app.ingest_with_key("generic", payload.clone(), &key).await, 202).await;

    assert!(domain::api_key::revoke(&db, &key[..12], "tests").await.unwrap());
    // The server drops its cache when it hears the revocation.
    let mut status = 202;
    for _ in 0..200 {
        status = app.ingest_with_key("generic", payload.clone(), &key).await.status().as_u16();
        if status == 401 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(status, 401);

    let expired = domain::api_key::create(
        &db,
        &domain::api_key::NewKey {
            name: "short-lived".into(),
            scopes: vec![Scope::AlertsWrite],
            key_type: domain::api_key::KeyType::Agent,
            allowed_sources: None,
            expires_at: Some(chrono::Utc::now() + chrono::Duration::milliseconds(300)),
            rate_limit_per_minute: None,
        },
        "tests",
    )
    .await
    .unwrap()
    .1;
    json_with_status(app.ingest_with_key("generic", payload.clone(), &expired).await, 202).await;
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    json_with_status(app.ingest_with_key("generic", payload, &expired).await, 401).await;
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_body_that_stalls_gets_a_408_and_the_server_moves_on(db: PgPool) {
    let cfg = ServerConfig {
        body_read_timeout: std::time::Duration::from_millis(300),
        ..Default::default()
    };
    let app = spawn_app_with(db.clone(), cfg).await;
    // One chunk, then nothing: the stream never ends.
    let first: Result<bytes::Bytes, std::io::Error> =
        Ok(bytes::Bytes::from_static(b"{\"title\": "));
    let stalled = futures::stream::iter([first]).chain(futures::stream::pending());
    let response = app.ingest("generic", reqwest::Body::wrap_stream(stalled)).await;
    let body = json_with_status(response, 408).await;
    assert_eq!(error_code(&body), "REQUEST_TIMEOUT");
    json_with_status(app.ingest("generic", fixture("generic_phishing_email.json")).await, 202)
        .await;
}
