//! Administration over GraphQL: API keys, providers (import, settings, credentials never
//! returned, extractions, a traced test run) and on-demand enrichment through the cache.

use domain::alert::Malice;
use domain::api_key::Scope;
use domain::store::enrichment::NewResult;
use serde_json::{Value, json};
use sqlx::PgPool;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::{create_key, provider_fixture, spawn_app};

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn keys_are_created_once_listed_without_secrets_and_revoked(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let data = app
        .graphql(
            r#"mutation { createApiKey(input: {name: "triage-bot", scopes: ["alerts:read"], keyType: "agent"}) {
                key apiKey { name prefix scopes keyType } } }"#,
            json!({}),
        )
        .await;
    let created = &data["createApiKey"];
    let key = created["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("cai_"));
    assert_eq!(created["apiKey"]["scopes"], json!(["alerts:read"]));
    let (status, body) = app.graphql_as(&key, "{ viewer { name } }", json!({})).await;
    assert_eq!((status, body["data"]["viewer"]["name"].as_str()), (200, Some("triage-bot")));

    let listed = app.graphql("{ apiKeys { name prefix revokedAt } }", json!({})).await;
    assert!(!listed.to_string().contains(&key), "the secret is never listed");
    let prefix = created["apiKey"]["prefix"].as_str().unwrap();
    app.graphql("mutation($p: String!) { revokeApiKey(prefix: $p) }", json!({"p": prefix})).await;
    // Revocation reaches the key cache through NOTIFY.
    let mut refused = false;
    for _ in 0..100 {
        let (status, _) = app.graphql_as(&key, "{ viewer { name } }", json!({})).await;
        if status == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(refused, "a revoked key is refused within a second or two");

    let bad = app
        .graphql_as(&app.admin_key, r#"mutation { createApiKey(input: {name: "x", scopes: ["alerts:everything"]}) { key } }"#, json!({}))
        .await
        .1;
    assert_eq!(bad["errors"][0]["extensions"]["code"], "INVALID_PAYLOAD");
    let reader = create_key(&db, "reader", &[Scope::AlertsRead], None).await;
    let (_, body) = app.graphql_as(&reader, "{ apiKeys { name } }", json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN");
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_provider_is_imported_configured_tested_and_used_on_demand(db: PgPool) {
    let db = crate::helpers::wider(&db);
    let app = spawn_app(db.clone()).await;
    let mock = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v3/community/198.51.100.77"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(provider_fixture("responses/greynoise.noise_malicious.json")),
        )
        .expect(2)
        .mount(&mock)
        .await;
    let mut definition = provider_fixture("greynoise.provider.json");
    definition["provider_name"] = "noise_intel".into();
    definition["base_url"] = mock.uri().into();
    definition["http_config"]["steps"][0]["url"] =
        "{{base_url}}/v3/community/{{indicator.value}}".into();
    let mut extractions = provider_fixture("greynoise.field_extractions.json");
    for extraction in extractions.as_array_mut().unwrap() {
        extraction["provider_name"] = "noise_intel".into();
    }

    let imported = app
        .graphql(
            "mutation($d: JSON!, $e: JSON) { importEnrichmentProvider(definition: $d, fieldExtractions: $e) { name isBuiltin hasStoredCredentials } }",
            json!({"d": definition, "e": extractions}),
        )
        .await;
    assert_eq!(
        imported["importEnrichmentProvider"],
        json!({"name": "noise_intel", "isBuiltin": false, "hasStoredCredentials": false})
    );

    let stored = app
        .graphql(
            r#"mutation { setEnrichmentProviderCredentials(name: "noise_intel", credentials: {api_key: "gn-secret-42"}) { hasStoredCredentials } }"#,
            json!({}),
        )
        .await;
    assert_eq!(stored["setEnrichmentProviderCredentials"]["hasStoredCredentials"], true);
    let providers = app.graphql("{ enrichmentProviders { name definition } }", json!({})).await;
    assert!(!providers.to_string().contains("gn-secret-42"), "credentials are never returned");

    let test = app
        .graphql(
            r#"mutation { testEnrichmentProvider(name: "noise_intel", type: IP, value: "198.51.100[.]77") {
                success outcome malice extracted steps { step url status requestHeaders } } }"#,
            json!({}),
        )
        .await;
    let test = &test["testEnrichmentProvider"];
    assert_eq!(test["success"], true, "{test}");
    assert_eq!(test["outcome"], "found");
    assert_eq!(test["steps"][0]["status"], 200);
    assert!(!test.to_string().contains("gn-secret-42"), "secrets are masked in the trace: {test}");
    assert!(test["extracted"].as_object().is_some_and(|e| !e.is_empty()), "{test}");

    // On demand, through the cache: the second call is answered from it (the mock expects 2
    // calls in all: the test run above and this one).
    let query = r#"mutation { enrichIndicator(type: IP, value: "198.51.100.77") {
        value malice enrichments { provider success extracted } } }"#;
    for _ in 0..2 {
        let data = app.graphql(query, json!({})).await;
        let enrichments = data["enrichIndicator"]["enrichments"].as_array().unwrap().clone();
        let noise = enrichments
            .iter()
            .find(|e| e["provider"] == "noise_intel")
            .unwrap_or_else(|| panic!("no result: {data}"));
        assert_eq!(noise["success"], true);
    }

    let settings = app
        .graphql(
            r#"mutation { updateEnrichmentProvider(name: "noise_intel", input: {rateLimitPerMinute: 30, isActive: false}) { rateLimitPerMinute isActive } }"#,
            json!({}),
        )
        .await;
    assert_eq!(
        settings["updateEnrichmentProvider"],
        json!({"rateLimitPerMinute": 30, "isActive": false})
    );
    let (_, body) = app
        .graphql_as(
            &app.admin_key,
            r#"mutation { deleteEnrichmentProvider(name: "virustotal") }"#,
            json!({}),
        )
        .await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "CONFLICT");
    app.graphql(r#"mutation { deleteEnrichmentProvider(name: "noise_intel") }"#, json!({})).await;

    // Created with credentials in one step, or not at all: a credential field the definition
    // does not use is named, and the provider is not stored.
    let create = "mutation($d: JSON!, $c: JSON) { createEnrichmentProvider(definition: $d, credentials: $c) { name hasStoredCredentials } }";
    let (_, refused) = app
        .graphql_as(&app.admin_key, create, json!({"d": definition, "c": {"password": "x"}}))
        .await;
    assert_eq!(
        refused["errors"][0]["extensions"]["problems"][0]["field"], "credentials",
        "{refused}"
    );
    let listed = app.graphql("{ enrichmentProviders { name } }", json!({})).await;
    assert!(!listed.to_string().contains("noise_intel"), "{listed}");
    let created =
        app.graphql(create, json!({"d": definition, "c": {"api_key": "gn-secret-43"}})).await;
    assert_eq!(
        created["createEnrichmentProvider"],
        json!({"name": "noise_intel", "hasStoredCredentials": true})
    );
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn metrics_mappings_added_indicators_and_agent_tests(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    // A mapping of a custom field, used by the next ingest.
    let created = app
        .graphql(
            r#"mutation { createIndicatorMapping(input: {sourceName: "generic", extractFrom: RAW,
                fieldPath: "observables.c2_host", indicatorType: DOMAIN, description: "C2"}) { id isSystem isActive } }"#,
            json!({}),
        )
        .await;
    assert_eq!(created["createIndicatorMapping"]["isSystem"], false);
    let mapping_id = created["createIndicatorMapping"]["id"].as_str().unwrap().to_owned();
    let mut mapped = false;
    let mut alert_id = String::new();
    for n in 0..50 {
        let payload = json!({"title": format!("Beacon {n}"), "observables": {"c2_host": "c2.bad-actor.example"}});
        let receipt =
            crate::helpers::json_with_status(app.ingest("generic", payload.to_string()).await, 202)
                .await;
        alert_id = receipt["alert_id"].as_str().unwrap().to_owned();
        crate::helpers::run_worker(&db).await;
        let data = app
            .graphql(
                "query($id: ID!) { alert(id: $id) { indicators { value } } }",
                json!({"id": alert_id}),
            )
            .await;
        if data.to_string().contains("c2.bad-actor.example") {
            mapped = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(mapped, "the new mapping is applied by the server within a second");
    let duplicate = app
        .graphql_as(&app.admin_key, r#"mutation { createIndicatorMapping(input: {sourceName: "generic", extractFrom: RAW, fieldPath: "observables.c2_host", indicatorType: DOMAIN}) { id } }"#, json!({}))
        .await
        .1;
    assert_eq!(duplicate["errors"][0]["extensions"]["code"], "CONFLICT");
    let listed = app.graphql("{ indicatorMappings { id isSystem } }", json!({})).await;
    let listed = listed["indicatorMappings"].as_array().unwrap().clone();
    let system_id = listed.iter().find(|m| m["isSystem"] == true).unwrap()["id"].clone();

    // A mapping is changed in place; the next ingest uses the new path, not the old one.
    let update = r#"mutation($id: ID!, $path: String!) { updateIndicatorMapping(id: $id,
        input: {sourceName: "generic", extractFrom: RAW, fieldPath: $path, indicatorType: DOMAIN}) {
        id fieldPath indicatorType description } }"#;
    let updated =
        app.graphql(update, json!({"id": mapping_id, "path": "observables.beacon_host"})).await;
    assert_eq!(
        updated["updateIndicatorMapping"],
        json!({"id": mapping_id, "fieldPath": "observables.beacon_host", "indicatorType": "DOMAIN",
               "description": null})
    );
    let mut remapped = false;
    for n in 0..50 {
        let payload = json!({"title": format!("Beacon again {n}"),
                             "observables": {"c2_host": "old-path.example", "beacon_host": "new-path.example"}});
        let receipt =
            crate::helpers::json_with_status(app.ingest("generic", payload.to_string()).await, 202)
                .await;
        crate::helpers::run_worker(&db).await;
        let data = app
            .graphql(
                "query($id: ID!) { alert(id: $id) { indicators { value } } }",
                json!({"id": receipt["alert_id"]}),
            )
            .await
            .to_string();
        if data.contains("new-path.example") {
            assert!(!data.contains("old-path.example"), "{data}");
            remapped = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(remapped, "the changed mapping is applied by the server within a second");
    // Bad input names the field; a built-in mapping or an unknown id is not found; a change
    // that makes two mappings identical is a conflict.
    let (_, bad) =
        app.graphql_as(&app.admin_key, update, json!({"id": mapping_id, "path": "a..b"})).await;
    assert_eq!(bad["errors"][0]["extensions"]["problems"][0]["field"], "fieldPath", "{bad}");
    let (_, builtin) =
        app.graphql_as(&app.admin_key, update, json!({"id": system_id, "path": "x.y"})).await;
    assert_eq!(builtin["errors"][0]["extensions"]["code"], "NOT_FOUND", "{builtin}");
    app.graphql(
        r#"mutation { createIndicatorMapping(input: {sourceName: "generic", extractFrom: RAW,
            fieldPath: "observables.other_host", indicatorType: DOMAIN}) { id } }"#,
        json!({}),
    )
    .await;
    let (_, clash) = app
        .graphql_as(
            &app.admin_key,
            update,
            json!({"id": mapping_id, "path": "observables.other_host"}),
        )
        .await;
    assert_eq!(clash["errors"][0]["extensions"]["code"], "CONFLICT", "{clash}");
    app.graphql(
        "mutation($id: ID!) { deleteIndicatorMapping(id: $id) }",
        json!({"id": mapping_id}),
    )
    .await;

    // Indicators an agent found are linked, defanged values refanged, bad ones named.
    let added = app
        .graphql(
            r#"mutation($id: ID!) { addIndicators(alertId: $id, indicators: [{type: IP, value: "203.0.113[.]9"}, {type: URL, value: "hxxp://evil.example/x"}], enrich: false) { type value } }"#,
            json!({"id": alert_id}),
        )
        .await;
    assert_eq!(added["addIndicators"].as_array().unwrap().len(), 2);
    let bad = app
        .graphql_as(&app.admin_key, r#"mutation($id: ID!) { addIndicators(alertId: $id, indicators: [{type: IP, value: "999.1.1.1"}]) { value } }"#, json!({"id": alert_id}))
        .await
        .1;
    assert_eq!(bad["errors"][0]["extensions"]["problems"][0]["field"], "indicators[0].value");

    // Triage shows up in the metrics.
    app.graphql(
        "mutation($id: ID!) { updateAlert(id: $id, input: {status: CLOSED, closeClassification: FALSE_POSITIVE_INCORRECT_DETECTION_LOGIC}) { status } }",
        json!({"id": alert_id}),
    )
    .await;
    let metrics = app
        .graphql("{ metrics { alertCount bySource { label count } mttaSeconds mttcSeconds falsePositiveRate meanTimeToEnrichSeconds } }", json!({}))
        .await;
    let metrics = &metrics["metrics"];
    assert!(metrics["alertCount"].as_i64().unwrap() >= 1);
    assert_eq!(metrics["bySource"][0]["label"], "generic");
    assert_eq!(metrics["falsePositiveRate"], 1.0);
    assert!(metrics["mttcSeconds"].as_f64().unwrap() >= 0.0);
    assert!(metrics["meanTimeToEnrichSeconds"].as_f64().is_some());

    // A test delivery reaches the agent's webhook, signed.
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/hook"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&receiver)
        .await;
    let agent = app
        .graphql(
            "mutation($url: String!) { createAgent(input: {name: \"bot\", webhookUrl: $url}) { signingSecret agent { id } } }",
            json!({"url": format!("{}/hook", receiver.uri())}),
        )
        .await;
    let agent_id = agent["createAgent"]["agent"]["id"].as_str().unwrap().to_owned();
    let tested = app
        .graphql(
            "mutation($id: ID!) { testAgent(id: $id) { success statusCode } }",
            json!({"id": agent_id}),
        )
        .await;
    assert_eq!(tested["testAgent"], json!({"success": true, "statusCode": 204}));
    let requests = receiver.received_requests().await.unwrap();
    assert!(requests[0].headers.get("webhook-signature").is_some());
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn provider_results_read_by_any_replica_follow_every_change(db: PgPool) {
    // Each server keeps the provider results it has read. Two servers on one database stand for
    // two replicas; results are saved through the store function the workers use, as a worker
    // in another process would. Every change must show on both at the next request.
    let (first, second) = (spawn_app(db.clone()).await, spawn_app(db.clone()).await);
    let ip = "203.0.113.41";
    let receipt =
        first.ingest("generic", json!({"title": "Cached results", "src_ip": ip}).to_string()).await;
    let alert = receipt.json::<Value>().await.unwrap()["alert_id"].as_str().unwrap().to_owned();
    crate::helpers::run_worker(&db).await;
    let mut definition = provider_fixture("greynoise.provider.json");
    definition["provider_name"] = "noise_intel".into();
    first
        .graphql(
            "mutation($d: JSON!) { importEnrichmentProvider(definition: $d) { name } }",
            json!({"d": definition}),
        )
        .await;
    let indicator: uuid::Uuid =
        sqlx::query_scalar("select indicator_id from indicator where value = $1")
            .bind(ip)
            .fetch_one(&db)
            .await
            .unwrap();
    let save = |provider: &'static str, score: i64, malice: Malice| {
        let db = db.clone();
        async move {
            let provider_id: uuid::Uuid = sqlx::query_scalar(
                "select enrichment_provider_id from enrichment_provider where name = $1",
            )
            .bind(provider)
            .fetch_one(&db)
            .await
            .unwrap();
            let result = NewResult {
                indicator_id: indicator,
                enrichment_provider_id: provider_id,
                success: true,
                extracted: json!({"score": score}),
                raw: None,
                error: None,
                malice,
                ttl: std::time::Duration::from_secs(3600),
            };
            domain::store::enrichment::save(&db, &[result]).await.unwrap();
        }
    };
    // What each replica answers, through an alert (one-pass resolution) and through the
    // indicator lookup (per-field resolvers): the same, as `provider=score` pairs and the verdict.
    let read = |app: &'static str| {
        let (app, alert) = (if app == "first" { &first } else { &second }, alert.clone());
        async move {
            let data = app
                .graphql(
                    "query($id: ID!, $ip: String!) {
                       alert(id: $id) { indicators { value malice enrichments { provider extracted } } }
                       indicator(type: IP, value: $ip) { malice enrichments { provider extracted } } }",
                    json!({"id": alert, "ip": ip}),
                )
                .await;
            let through_alert = data["alert"]["indicators"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["value"] == ip)
                .unwrap()
                .clone();
            let seen = |indicator: &Value| {
                let mut pairs: Vec<String> = indicator["enrichments"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|e| {
                        ["abuseipdb", "noise_intel"].contains(&e["provider"].as_str().unwrap())
                    })
                    .map(|e| {
                        format!("{}={}", e["provider"].as_str().unwrap(), e["extracted"]["score"])
                    })
                    .collect();
                pairs.sort();
                format!("{} {}", indicator["malice"].as_str().unwrap(), pairs.join(","))
            };
            let direct = seen(&data["indicator"]);
            assert_eq!(seen(&through_alert), direct);
            direct
        }
    };
    let both = |expected: &'static str| {
        let read = &read;
        async move {
            for app in ["first", "second"] {
                // Twice: the second read is answered from what the first kept.
                for _ in 0..2 {
                    assert_eq!(read(app).await, expected, "{app}");
                }
            }
        }
    };

    save("abuseipdb", 10, Malice::Benign).await;
    both("BENIGN abuseipdb=10").await;
    save("abuseipdb", 95, Malice::Malicious).await;
    both("MALICIOUS abuseipdb=95").await;
    save("noise_intel", 3, Malice::Suspicious).await;
    both("MALICIOUS abuseipdb=95,noise_intel=3").await;
    // Deleting a provider deletes its results (a cascade in the database).
    second
        .graphql(r#"mutation { deleteEnrichmentProvider(name: "noise_intel") }"#, json!({}))
        .await;
    both("MALICIOUS abuseipdb=95").await;
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn dead_jobs_are_listed_and_a_retried_one_runs_again(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let receipt = crate::helpers::json_with_status(
        app.ingest("generic", json!({"title": "Stuck", "severity": "high"}).to_string()).await,
        202,
    )
    .await;
    // Its enrichment ran out of attempts while, say, the database was failing over.
    sqlx::query(
        "update job set state = 'dead', attempt = max_attempts, finished_at = now(),
                        last_error = 'connection reset'",
    )
    .execute(&db)
    .await
    .unwrap();

    let listed = app
        .graphql("{ jobs { id kind state attempt lastError payload finishedAt } }", json!({}))
        .await;
    let jobs = listed["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{listed}");
    assert_eq!(jobs[0]["kind"], "enrich_alert");
    assert_eq!(jobs[0]["state"], "DEAD");
    assert_eq!(jobs[0]["lastError"], "connection reset");
    assert_eq!(jobs[0]["payload"]["alert_id"], receipt["alert_id"]);
    let id = jobs[0]["id"].as_str().unwrap().to_owned();
    let none_queued = app.graphql("{ jobs(state: QUEUED) { id } }", json!({})).await;
    assert_eq!(none_queued["jobs"], json!([]));

    let retried = app
        .graphql(
            "mutation($id: ID!) { retryJob(id: $id) { id state attempt finishedAt } }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(
        retried["retryJob"],
        json!({"id": id, "state": "QUEUED", "attempt": 0, "finishedAt": null})
    );
    crate::helpers::run_worker(&db).await;
    let alert = app
        .graphql(
            "query($id: ID!) { alert(id: $id) { enrichmentStatus } }",
            json!({"id": receipt["alert_id"]}),
        )
        .await;
    assert_eq!(alert["alert"]["enrichmentStatus"], "ENRICHED");

    // Only a dead job can be retried; ids are checked; it takes the admin scope.
    let again = "mutation($id: ID!) { retryJob(id: $id) { id } }";
    let (_, body) = app.graphql_as(&app.admin_key, again, json!({"id": id})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "CONFLICT", "{body}");
    let (_, body) = app.graphql_as(&app.admin_key, again, json!({"id": "987654"})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "NOT_FOUND", "{body}");
    let (_, body) = app.graphql_as(&app.admin_key, again, json!({"id": "x"})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "INVALID_PAYLOAD", "{body}");
    let reader = create_key(&db, "reader", &[Scope::AlertsRead], None).await;
    let (_, body) = app.graphql_as(&reader, "{ jobs { id } }", json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
    let (_, body) = app.graphql_as(&reader, again, json!({"id": id})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn configuration_changes_are_in_the_audit_log_with_who_made_them_and_no_secret(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let created = app
        .graphql(
            r#"mutation { createApiKey(input: {name: "bot", scopes: ["alerts:read"], keyType: "agent"}) {
                apiKey { prefix } } }"#,
            json!({}),
        )
        .await;
    let prefix = created["createApiKey"]["apiKey"]["prefix"].as_str().unwrap().to_owned();
    app.graphql("mutation($p: String!) { revokeApiKey(prefix: $p) }", json!({"p": prefix})).await;
    app.graphql(
        r#"mutation { setEnrichmentProviderCredentials(name: "greynoise",
               credentials: {api_key: "gn-secret-value"}) { name } }"#,
        json!({}),
    )
    .await;
    app.graphql(
        r#"mutation { createIndicatorMapping(input: {extractFrom: RAW, fieldPath: "a.b",
               indicatorType: IP}) { id } }"#,
        json!({}),
    )
    .await;

    let log = app.graphql("{ auditLog { id eventType actor details } }", json!({})).await;
    let events: Vec<(&str, &str)> = log["auditLog"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["eventType"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(
        events,
        [
            ("indicator_mapping.created", "admin"),
            ("enrichment_provider.credentials_set", "admin"),
            ("api_key.revoked", "admin"),
            ("api_key.created", "admin"),
            // The test's own admin key, made before the server ran.
            ("api_key.created", "tests"),
        ],
        "{log}"
    );
    let text = log.to_string();
    assert!(!text.contains("gn-secret-value"), "a credential reached the audit log: {text}");
    assert_eq!(log["auditLog"][1]["details"]["fields"], json!(["api_key"]), "{log}");
    assert_eq!(log["auditLog"][2]["details"]["prefix"], prefix.as_str());

    // Paged back from an event; admin only.
    let before = log["auditLog"][2]["id"].clone();
    let older = app
        .graphql(
            "query($b: ID) { auditLog(before: $b, first: 1) { eventType } }",
            json!({"b": before}),
        )
        .await;
    assert_eq!(older["auditLog"], json!([{"eventType": "api_key.created"}]));
    let reader = create_key(&db, "reader", &[Scope::AlertsRead], None).await;
    let (_, body) = app.graphql_as(&reader, "{ auditLog { id } }", json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "FORBIDDEN", "{body}");
    let (_, body) =
        app.graphql_as(&app.admin_key, r#"{ auditLog(before: "x") { id } }"#, json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "INVALID_PAYLOAD", "{body}");
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn field_extractions_are_replaced_and_read_back_beside_the_built_in_ones(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let set =
        "mutation($x: JSON!) { setFieldExtractions(provider: \"greynoise\", extractions: $x) }";
    let mine = json!([{
        "provider_name": "greynoise", "indicator_type": "ip", "source_path": "metadata.asn",
        "target_key": "asn", "value_type": "string", "description": "Autonomous system"
    }]);
    assert_eq!(app.graphql(set, json!({"x": mine})).await["setFieldExtractions"], 1);

    let listed = app.graphql("{ enrichmentProviders { name fieldExtractions } }", json!({})).await;
    let greynoise = listed["enrichmentProviders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "greynoise")
        .unwrap();
    let keys: Vec<&str> = greynoise["fieldExtractions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target_key"].as_str().unwrap())
        .collect();
    assert!(keys.contains(&"asn") && keys.contains(&"classification"), "{keys:?}");

    // A built-in key cannot be taken over; the field is named.
    let clash = json!([{
        "provider_name": "greynoise", "indicator_type": "ip", "source_path": "x",
        "target_key": "classification", "value_type": "string"
    }]);
    let (_, body) = app.graphql_as(&app.admin_key, set, json!({"x": clash})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "INVALID_PAYLOAD", "{body}");
    assert_eq!(
        body["errors"][0]["extensions"]["problems"][0]["field"], "field_extractions[0].target_key",
        "{body}"
    );
}
