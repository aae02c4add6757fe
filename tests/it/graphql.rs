//! The GraphQL API over real HTTP with real keys: the schema file stays in sync, every
//! operation in `operations/` runs, the graph answers, pages are exact, scopes and bad input
//! give coded errors, and statements per query depend on its depth, not its rows.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use domain::api_key::Scope;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{TestApp, create_key, fixture, json_with_status, run_worker, spawn_app};

impl TestApp {
    pub(crate) async fn graphql_as(
        &self,
        key: &str,
        query: &str,
        variables: Value,
    ) -> (u16, Value) {
        let response = self
            .client
            .post(self.url("/graphql"))
            .bearer_auth(key)
            .json(&json!({"query": query, "variables": variables}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap())
    }

    /// Runs a query as the admin and returns its data, failing on any error.
    pub(crate) async fn graphql(&self, query: &str, variables: Value) -> Value {
        let (status, body) = self.graphql_as(&self.admin_key.clone(), query, variables).await;
        assert_eq!(status, 200, "{body}");
        assert!(body.get("errors").is_none(), "{body}");
        body["data"].clone()
    }
}

fn error_code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code: {body}"))
}

async fn ingest(app: &TestApp, source: &str, payload: String) -> String {
    let receipt = json_with_status(app.ingest(source, payload).await, 202).await;
    receipt["alert_id"].as_str().unwrap().to_owned()
}

#[test]
fn schema_graphql_is_generated_from_the_code() {
    let path = format!("{}/schema.graphql", env!("CARGO_MANIFEST_DIR"));
    let generated = server::graphql::sdl();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &generated).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "schema.graphql is out of date: run `UPDATE_SCHEMA=1 cargo test --test it schema_graphql` and commit it"
    );
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn alerts_sharing_an_ip_are_linked_through_it(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let first =
        ingest(&app, "generic", json!({"title": "Scan A", "src_ip": "203.0.113.50"}).to_string())
            .await;
    let second = ingest(
        &app,
        "generic",
        json!({"title": "Scan B", "src_ip": "203.0.113[.]50", "user": "bob"}).to_string(),
    )
    .await;
    run_worker(&db).await;

    let data = app
        .graphql(
            "query($v: String!) { indicator(type: IP, value: $v) { type value alertCount alerts { totalCount nodes { id } } } }",
            json!({"v": "203.0.113.50"}),
        )
        .await;
    let indicator = &data["indicator"];
    assert_eq!(indicator["type"], "IP");
    assert_eq!(indicator["alertCount"], 2);
    assert_eq!(indicator["alerts"]["totalCount"], 2);
    let ids: Vec<&str> = indicator["alerts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [second.as_str(), first.as_str()], "most recent first");
    // The count read with a page covers every page.
    let data = app
        .graphql(
            "query($v: String!) { indicator(type: IP, value: $v) {
               alerts(first: 1) { totalCount pageInfo { hasNextPage } nodes { id } } } }",
            json!({"v": "203.0.113.50"}),
        )
        .await;
    let page = &data["indicator"]["alerts"];
    assert_eq!(page["totalCount"], 2);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    assert_eq!(page["nodes"], json!([{"id": second}]));

    for (me, other) in [(&first, &second), (&second, &first)] {
        let data = app
            .graphql(
                "query($id: ID!) { alert(id: $id) { relatedAlerts { alert { id } sharedIndicators { value } } } }",
                json!({"id": me}),
            )
            .await;
        let related = data["alert"]["relatedAlerts"].as_array().unwrap();
        assert_eq!(related.len(), 1);
        assert_eq!(related[0]["alert"]["id"], **other);
        assert_eq!(related[0]["sharedIndicators"], json!([{"value": "203.0.113.50"}]));
    }

    // Raw payloads and raw provider answers are read only when asked for, by their own loaders.
    sqlx::query(
        "insert into enrichment_result (indicator_id, enrichment_provider_id, success, extracted,
                                        raw, malice, expires_at)
         select i.indicator_id, p.enrichment_provider_id, true, '{\"country\": \"NL\"}',
                jsonb_build_object('lookup', jsonb_build_object('name', p.name)), 'Benign',
                now() + interval '1 hour'
         from indicator i, enrichment_provider p
         where i.value = '203.0.113.50' and p.name in ('abuseipdb', 'greynoise')",
    )
    .execute(&db)
    .await
    .unwrap();
    let data = app
        .graphql(
            "query($a: ID!, $b: ID!) {
               a: alert(id: $a) { rawPayload indicators { value enrichments { provider extracted raw } } }
               b: alert(id: $b) { rawPayload }
             }",
            json!({"a": first, "b": second}),
        )
        .await;
    assert_eq!(data["a"]["rawPayload"], json!({"title": "Scan A", "src_ip": "203.0.113.50"}));
    assert_eq!(data["b"]["rawPayload"]["src_ip"], "203.0.113[.]50");
    let enrichments = &data["a"]["indicators"][0]["enrichments"];
    assert_eq!(
        *enrichments,
        json!([
            {"provider": "abuseipdb", "extracted": {"country": "NL"},
             "raw": {"lookup": {"name": "abuseipdb"}}},
            {"provider": "greynoise", "extracted": {"country": "NL"},
             "raw": {"lookup": {"name": "greynoise"}}},
        ])
    );
}

/// The names of `type_name`'s fields that take no argument and are scalars or enums.
async fn leaf_fields(app: &TestApp, type_name: &str) -> Vec<String> {
    let data = app
        .graphql(
            "query($t: String!) { __type(name: $t) { fields { name args { name }
               type { kind ofType { kind ofType { kind ofType { kind } } } } } } }",
            json!({"t": type_name}),
        )
        .await;
    let leaf = |mut ty: &Value| loop {
        match ty["kind"].as_str().unwrap() {
            "NON_NULL" | "LIST" => ty = &ty["ofType"],
            kind => return kind == "SCALAR" || kind == "ENUM",
        }
    };
    let fields = data["__type"]["fields"].as_array().unwrap();
    fields
        .iter()
        .filter(|f| f["args"].as_array().unwrap().is_empty() && leaf(&f["type"]))
        .map(|f| f["name"].as_str().unwrap().to_owned())
        .collect()
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn alerts_indicators_and_enrichments_answer_the_same_on_both_resolution_paths(db: PgPool) {
    // Plain selections are built in one pass; a fragment anywhere in an object's selection
    // sends it through async-graphql's per-field resolvers. Every leaf field must come out the
    // same either way.
    let app = spawn_app(db.clone()).await;
    let alert = ingest(
        &app,
        "generic",
        json!({"title": "Both paths", "src_ip": "203.0.113.77", "user": "carol@example.com",
               "sha256": SHA256})
        .to_string(),
    )
    .await;
    run_worker(&db).await;
    sqlx::query(
        "insert into enrichment_result (indicator_id, enrichment_provider_id, success, extracted,
                                        raw, error, malice, expires_at)
         select i.indicator_id, p.enrichment_provider_id, p.name = 'abuseipdb',
                '{\"country\": \"NL\", \"score\": 87, \"ratio\": 0.25, \"big\": 1e300,
                  \"tags\": [\"scanner\", null], \"nested\": {\"a\": [1, {\"b\": true}]}}',
                '{\"lookup\": {}}', case when p.name = 'abuseipdb' then null else 'timeout' end,
                'Suspicious', now() + interval '1 hour'
         from indicator i, enrichment_provider p
         where i.value = '203.0.113.77' and p.name in ('abuseipdb', 'greynoise')",
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(
        "update indicator set malice_override = 'Malicious', first_seen = first_seen - interval '1 day'
         where value = '203.0.113.77'",
    )
        .execute(&db)
        .await
        .unwrap();

    let both = |selection: String| {
        let derived = selection.replacen("__typename", "... { __typename }", 1);
        let query = |inner: &str| format!("query($id: ID!) {{ alert(id: $id) {{ {inner} }} }}");
        let (plain, derived) = (query(&selection), query(&derived));
        let (app, alert) = (&app, &alert);
        async move {
            let plain = app.graphql(&plain, json!({"id": alert})).await;
            let derived = app.graphql(&derived, json!({"id": alert})).await;
            assert_eq!(plain, derived, "{selection}");
            plain
        }
    };
    let indicator_fields = leaf_fields(&app, "Indicator").await;
    let enrichment_fields = leaf_fields(&app, "Enrichment").await;
    assert!(indicator_fields.len() >= 9 && enrichment_fields.len() >= 8);
    for field in &indicator_fields {
        both(format!("indicators {{ __typename {field} v: value value }}")).await;
    }
    for field in &enrichment_fields {
        let data = both(format!(
            "indicators {{ value enrichments {{ __typename {field} p: provider provider }} }}"
        ))
        .await;
        assert!(data.to_string().contains("203.0.113.77"));
    }
    let all = format!(
        "indicators {{ __typename {} enrichments {{ __typename {} }} }}",
        indicator_fields.join(" "),
        enrichment_fields.join(" ")
    );
    let data = both(all).await;
    let ip = data["alert"]["indicators"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["value"] == "203.0.113.77")
        .unwrap();
    assert_eq!(ip["malice"], "MALICIOUS");
    assert_eq!(ip["maliceOverride"], "MALICIOUS");
    assert_eq!(ip["enrichments"].as_array().unwrap().len(), 2);
    assert_eq!(ip["enrichments"][0]["extracted"]["tags"], json!(["scanner", null]));
    assert_eq!(ip["enrichments"][1]["error"], "timeout");

    // Alerts in a page: one closed with every optional field set, one fresh with none.
    ingest(&app, "generic", json!({"title": "Plain second", "src_ip": "203.0.113.78"}).to_string())
        .await;
    sqlx::query(
        "update alert set status = 'Closed', close_classification = 'false_positive_inaccurate_data',
                          malice_override = 'Benign', acknowledged_at = now(), triaged_at = now(),
                          closed_at = now(), tags = array['a', 'b \"c\"'], duplicate_count = 3
         where alert_id = $1",
    )
    .bind(uuid::Uuid::parse_str(&alert).unwrap())
    .execute(&db)
    .await
    .unwrap();
    let alert_fields = leaf_fields(&app, "Alert").await;
    assert!(alert_fields.len() >= 20);
    for field in &alert_fields {
        let plain = format!("{{ alerts(first: 5) {{ nodes {{ __typename {field} i: id id }} }} }}");
        let derived = plain.replacen("__typename", "... { __typename }", 1);
        let (plain, derived) =
            (app.graphql(&plain, json!({})).await, app.graphql(&derived, json!({})).await);
        assert_eq!(plain, derived, "{field}");
        assert_eq!(plain["alerts"]["nodes"].as_array().unwrap().len(), 2);
    }
    let all =
        format!("{{ alerts(first: 5) {{ nodes {{ __typename {} }} }} }}", alert_fields.join(" "));
    let plain = app.graphql(&all, json!({})).await;
    assert_eq!(
        plain,
        app.graphql(&all.replacen("__typename", "... { __typename }", 1), json!({})).await
    );
    // A page's alerts with their indicators and results: in one pass (stored values only, as
    // listed here), with the alert level derived, and with every level derived; then with every
    // leaf field, some of which are not stored values.
    let stored_values = (
        "id type value firstSeen lastSeen malice computedMalice maliceOverride enrichable",
        "provider success extracted error malice enrichedAt expiresAt",
    );
    let every_leaf = (indicator_fields.join(" "), enrichment_fields.join(" "));
    for (indicator, enrichment) in [stored_values, (&every_leaf.0, &every_leaf.1)] {
        let nested = format!(
            "{{ alerts(first: 5) {{ nodes {{ __typename id title indicators {{ __typename {indicator} enrichments {{ __typename {enrichment} }} }} }} }} }}"
        );
        let one_pass = app.graphql(&nested, json!({})).await;
        for derived in [
            nested.replacen("__typename", "... { __typename }", 1),
            nested.replace("__typename", "... { __typename }"),
        ] {
            assert_eq!(one_pass, app.graphql(&derived, json!({})).await, "{derived}");
        }
        assert!(one_pass.to_string().contains(r#""error":"timeout""#), "{one_pass}");
    }
    let closed = plain["alerts"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == alert.as_str())
        .unwrap();
    assert_eq!(closed["closeClassification"], "FALSE_POSITIVE_INACCURATE_DATA");
    assert_eq!(closed["tags"], json!(["a", "b \"c\""]));
    assert_eq!(closed["duplicateCount"], 3);

    // Hash types are named as in the SPEC, upper-cased.
    let data = app
        .graphql(
            "query($v: String!) { indicator(type: HASH_SHA256, value: $v) { type value } }",
            json!({"v": SHA256.to_uppercase()}),
        )
        .await;
    assert_eq!(data["indicator"], json!({"type": "HASH_SHA256", "value": SHA256}));
}

const SHA256: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn alert_pages_read_rows_as_the_checked_single_read_does(db: PgPool) {
    // Pages and loaders read alerts by column position without checking types again;
    // `store::alert::get` reads the same columns checked against the schema at build time.
    let app = spawn_app(db.clone()).await;
    let id = ingest(&app, "sentinel", fixture("01_sentinel_brute_force_tor.json")).await;
    run_worker(&db).await;
    for input in [
        json!({"status": "TRIAGING", "tags": ["tor", "brute-force"], "maliceOverride": "MALICIOUS"}),
        json!({"status": "CLOSED", "closeClassification": "TRUE_POSITIVE_SUSPICIOUS_ACTIVITY"}),
    ] {
        app.graphql(
            "mutation($id: ID!, $input: UpdateAlertInput!) { updateAlert(id: $id, input: $input) { id } }",
            json!({"id": id, "input": input}),
        )
        .await;
    }
    let id: uuid::Uuid = id.parse().unwrap();
    let checked = domain::store::alert::get(&db, id).await.unwrap().unwrap();
    assert!(
        checked.detection_rule_id.is_some()
            && checked.closed_at.is_some()
            && checked.malice_override.is_some()
            && checked.description.is_some(),
        "every optional column is set: {checked:?}"
    );
    let graph = domain::store::graph::alerts_by_id(&db, &[id]).await.unwrap();
    let page =
        domain::store::graph::search_alerts(&db, &Default::default(), Default::default(), None, 1)
            .await
            .unwrap();
    let indicators = domain::store::graph::indicators_of_alerts(&db, &[id]).await.unwrap();
    let indicator = indicators[0].1.indicator_id;
    let newest = domain::store::graph::newest_alerts_of_indicators(&db, &[indicator], 5, true)
        .await
        .unwrap();
    assert_eq!((newest[0].0, newest[0].1), (indicator, Some(1)));
    for read in [&graph[0], &page[0], &newest[0].2] {
        assert_eq!(format!("{read:?}"), format!("{checked:?}"));
    }
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn two_hundred_fifty_alerts_page_by_a_hundred_each_exactly_once(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    futures::future::join_all(
        (0..250)
            .map(|n| ingest(&app, "generic", json!({"title": format!("Page {n}")}).to_string())),
    )
    .await;
    let query = "query($after: String) { alerts(first: 100, after: $after) {
        totalCount pageInfo { hasNextPage endCursor } edges { cursor node { id } } } }";
    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let data = app.graphql(query, json!({"after": after})).await;
        let page = &data["alerts"];
        assert_eq!(page["totalCount"], 250);
        seen.extend(
            page["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"]["id"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        if !page["pageInfo"]["hasNextPage"].as_bool().unwrap() {
            break;
        }
        after = page["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(pages, 3);
    assert_eq!(seen.len(), 250);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(sorted, seen, "each alert once, newest first");
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn scopes_keys_and_bad_input_give_coded_errors(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let alert = ingest(&app, "generic", json!({"title": "Guarded"}).to_string()).await;
    let reader = create_key(&db, "reader", &[Scope::AlertsRead], None).await;
    let writer = create_key(&db, "ingest-only", &[Scope::AlertsWrite], None).await;

    let response = app
        .client
        .post(app.url("/graphql"))
        .json(&json!({"query": "{ viewer { name } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    assert_eq!(error_code(&response.json().await.unwrap()), "UNAUTHORIZED");

    let (_, body) = app.graphql_as(&writer, "{ alerts { totalCount } }", json!({})).await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    assert_eq!(body["errors"][0]["extensions"]["requiredScope"], "alerts:read");

    let (_, body) = app
        .graphql_as(&reader, "{ viewer { name scopes } alerts { totalCount } }", json!({}))
        .await;
    assert_eq!(body["data"]["viewer"], json!({"name": "reader", "scopes": ["alerts:read"]}));
    assert_eq!(body["data"]["alerts"]["totalCount"], 1);
    let close = "mutation($id: ID!) { updateAlert(id: $id, input: {status: CLOSED}) { status } }";
    let (_, body) = app.graphql_as(&reader, close, json!({"id": alert})).await;
    assert_eq!(error_code(&body), "FORBIDDEN");
    let (_, body) = app.graphql_as(&reader, "{ agents { name } }", json!({})).await;
    assert_eq!(error_code(&body), "FORBIDDEN");

    let (_, body) = app.graphql_as(&app.admin_key, close, json!({"id": alert})).await;
    assert_eq!(error_code(&body), "INVALID_PAYLOAD");
    assert_eq!(body["errors"][0]["extensions"]["problems"][0]["field"], "close_classification");
    let (_, body) = app.graphql_as(&app.admin_key, close, json!({"id": "not-an-id"})).await;
    assert_eq!(error_code(&body), "INVALID_PAYLOAD");
    let (_, body) = app
        .graphql_as(&app.admin_key, "mutation { createDetectionRule(input: {name: \"x\", sourceName: \"custom\", sourceRuleId: \"1\", mitreTactics: [\"Initial Access\"]}) { id } }", json!({}))
        .await;
    assert_eq!(error_code(&body), "INVALID_PAYLOAD");
    assert_eq!(body["errors"][0]["extensions"]["problems"][0]["field"], "mitre_tactics[0]");
    let ingest = "mutation($s: String!, $p: JSON!) {
        ingestAlert(source: $s, payload: $p) { alertId status duplicateCount } }";
    let payload = json!({"title": "From GraphQL", "severity": "low"});
    let (_, body) =
        app.graphql_as(&app.admin_key, ingest, json!({"s": "generic", "p": payload})).await;
    assert_eq!(body["data"]["ingestAlert"]["status"], "queued", "{body}");
    let (_, body) =
        app.graphql_as(&app.admin_key, ingest, json!({"s": "qradar", "p": payload})).await;
    assert_eq!(error_code(&body), "UNKNOWN_SOURCE", "the REST code for it");
    assert_eq!(body["errors"][0]["extensions"]["field"], "source");
    let untitled = json!({"s": "generic", "p": {"severity": "low"}});
    let (_, body) = app.graphql_as(&app.admin_key, ingest, untitled).await;
    assert_eq!(error_code(&body), "INVALID_PAYLOAD");
    assert_eq!(body["errors"][0]["extensions"]["problems"][0]["field"], "title", "{body}");
    let (_, body) = app
        .graphql_as(
            &app.admin_key,
            "{ alert(id: \"00000000-0000-0000-0000-000000000000\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(body["data"]["alert"], Value::Null);
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn abusive_queries_are_refused_by_depth_and_complexity_limits(db: PgPool) {
    let app = spawn_app(db).await;
    let mut deep = String::from("id");
    for _ in 0..8 {
        deep = format!("relatedAlerts {{ alert {{ {deep} }} }}");
    }
    let wide: String = (0..1100).map(|n| format!("a{n}: viewer {{ name }} ")).collect();
    // Twice each: the second time the server has the parsed text and must check it again.
    for _ in 0..2 {
        let deep = format!("{{ alerts {{ nodes {{ {deep} }} }} }}");
        let (_, body) = app.graphql_as(&app.admin_key, &deep, json!({})).await;
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("deep"), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST", "{body}");
        let (_, body) = app.graphql_as(&app.admin_key, &format!("{{ {wide} }}"), json!({})).await;
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("complex"), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST", "{body}");
        // Nor does a text that fails to parse, or one that names no field of the schema.
        let (_, body) = app.graphql_as(&app.admin_key, "{ alerts { nodes { id }", json!({})).await;
        assert!(body["errors"][0]["message"].as_str().is_some(), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST", "{body}");
        assert!(body.get("data").is_none_or(Value::is_null), "{body}");
        let (_, body) =
            app.graphql_as(&app.admin_key, "{ alerts { nodes { nope } } }", json!({})).await;
        assert!(body["errors"][0]["message"].as_str().unwrap().contains("nope"), "{body}");
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST", "{body}");
    }
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_body_that_is_not_a_graphql_request_gets_a_coded_graphql_error(db: PgPool) {
    let app = spawn_app(db).await;
    let url = format!("http://{}/graphql", app.address);
    let post = |body: Vec<u8>| {
        app.client
            .post(&url)
            .bearer_auth(&app.admin_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let body = json_with_status(post(b"{\"query\": ".to_vec()).await.unwrap(), 400).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST", "{body}");
    let body = json_with_status(post(b"[1, 2]".to_vec()).await.unwrap(), 400).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_REQUEST", "{body}");
    // An argument that is not of its type, written out or in a variable, fails its field.
    let query = r#"{ alerts(filter: {occurredAfter: "yesterday"}) { totalCount } }"#;
    let (_, body) = app.graphql_as(&app.admin_key, query, json!({})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "INVALID_PAYLOAD", "{body}");
    assert_eq!(body["errors"][0]["path"], json!(["alerts"]), "{body}");
    let query = "query($t: DateTime) { alerts(filter: {occurredAfter: $t}) { totalCount } }";
    let (_, body) = app.graphql_as(&app.admin_key, query, json!({"t": "yesterday"})).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "INVALID_PAYLOAD", "{body}");
    // Larger than the server's limit (5 MiB by default).
    let padding = " ".repeat(6 << 20);
    let oversized = format!("{{\"query\": \"{{ viewer {{ name }} }}\"{padding}}}");
    let answer = post(oversized.into_bytes()).await.unwrap();
    let body = json_with_status(answer, 413).await;
    assert_eq!(body["errors"][0]["extensions"]["code"], "PAYLOAD_TOO_LARGE", "{body}");
}

/// A TCP proxy in front of PostgreSQL that counts the statements clients execute: every
/// extended-protocol `Execute` and simple-protocol `Query` message on the way in.
async fn counting_proxy(target: u16) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let executed = Arc::new(AtomicUsize::new(0));
    let counter = executed.clone();
    tokio::spawn(async move {
        loop {
            let (client, _) = listener.accept().await.unwrap();
            let server = tokio::net::TcpStream::connect(("127.0.0.1", target)).await.unwrap();
            let counter = counter.clone();
            tokio::spawn(async move {
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                let upstream = async {
                    let mut pending: Vec<u8> = Vec::new();
                    // Untyped messages (SSL request, startup) come first, until the startup.
                    let mut started = false;
                    let mut buffer = [0u8; 16 * 1024];
                    loop {
                        let read = client_read.read(&mut buffer).await.unwrap_or(0);
                        if read == 0 {
                            break;
                        }
                        server_write.write_all(&buffer[..read]).await.ok();
                        pending.extend_from_slice(&buffer[..read]);
                        loop {
                            let header = if started { 5 } else { 4 };
                            if pending.len() < header {
                                break;
                            }
                            let at = if started { 1 } else { 0 };
                            let length = u32::from_be_bytes(pending[at..at + 4].try_into().unwrap())
                                as usize;
                            let total = at + length;
                            if pending.len() < total {
                                break;
                            }
                            if started {
                                if matches!(pending[0], b'E' | b'Q') {
                                    counter.fetch_add(1, Ordering::SeqCst);
                                }
                            } else {
                                let code = u32::from_be_bytes(pending[4..8].try_into().unwrap());
                                // 80877103: SSLRequest, 80877104: GSSENCRequest; else startup.
                                started = code != 80_877_103 && code != 80_877_104;
                            }
                            pending.drain(..total);
                        }
                    }
                };
                let downstream = async {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                };
                tokio::join!(upstream, downstream);
            });
        }
    });
    (port, executed)
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn statements_per_query_depend_on_its_depth_not_its_rows(db: PgPool) {
    let options = (*db.connect_options()).clone();
    let (port, executed) = counting_proxy(options.get_port()).await;
    // Few connections, all warmed up below: a connection's first use of a custom type costs a
    // type lookup of its own, which is not what this test counts.
    let counted = sqlx::postgres::PgPoolOptions::new()
        .max_connections(3)
        .connect_with(
            options.host("127.0.0.1").port(port).ssl_mode(sqlx::postgres::PgSslMode::Disable),
        )
        .await
        .unwrap();
    // A batch window long enough that a debug build on a busy machine resolves a whole level
    // inside it: the test is about batching, not about timing.
    let cfg = server::ServerConfig {
        graphql_batch_delay: std::time::Duration::from_millis(50),
        ..Default::default()
    };
    let app = crate::helpers::spawn_app_with(counted.clone(), cfg).await;
    futures::future::join_all((0..120).map(|n| {
        let payload = json!({"title": format!("N+1 {n}"), "src_ip": format!("198.51.100.{}", n % 40 + 1),
                             "domain": format!("host{n}.example.com")});
        ingest(&app, "generic", payload.to_string())
    }))
    .await;
    run_worker(&db).await;
    let query = "query($n: Int!) { alerts(first: $n) { nodes { id title
        indicators { value enrichments { provider success }
                     alerts(first: 5) { totalCount nodes { id detectionRule { name } } } }
        detectionRule { name } findings { summary } } } }";

    for n in [100, 100] {
        app.graphql(query, json!({"n": n})).await; // warms the key cache and the connections
    }
    // Each size is measured twice and the lower count kept. A statement of the app's own can
    // land inside one measurement on a loaded machine: a key notification that arrives late
    // clears the key cache, and the next request reads its key again. It once made this test
    // fail in a full run.
    let mut costs = Vec::new();
    for n in [10, 100] {
        let mut cost = usize::MAX;
        for _ in 0..2 {
            let before = executed.load(Ordering::SeqCst);
            let data = app.graphql(query, json!({"n": n})).await;
            assert_eq!(data["alerts"]["nodes"].as_array().unwrap().len(), n as usize);
            cost = cost.min(executed.load(Ordering::SeqCst) - before);
        }
        costs.push(cost);
    }
    assert_eq!(costs[0], costs[1], "statements for 10 and 100 alerts: {costs:?}");
    assert!(costs[1] <= 10, "a depth-4 query cost {} statements", costs[1]);
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn every_operation_in_the_operations_folder_runs_against_the_schema(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let alert = ingest(&app, "sentinel", fixture("01_sentinel_brute_force_tor.json")).await;
    run_worker(&db).await;
    let indicator: String =
        sqlx::query_scalar("select indicator_id::text from indicator where type = 'ip' limit 1")
            .fetch_one(&db)
            .await
            .unwrap();
    let rule: Option<String> =
        sqlx::query_scalar("select detection_rule_id::text from alert where alert_id = $1::uuid")
            .bind(&alert)
            .fetch_one(&db)
            .await
            .unwrap();
    let variables = |name: &str| -> Value {
        match name {
            "SearchAlerts" => json!({"filter": {"minSeverity": "HIGH", "search": "brute"}}),
            "GetAlert" => json!({"id": alert}),
            "GetIndicator" => json!({"type": "IP", "value": "185.220.101[.]34"}),
            "UpdateAlertStatus" => {
                json!({"id": alert, "status": "CLOSED", "closeClassification": "TRUE_POSITIVE_SUSPICIOUS_ACTIVITY"})
            }
            "SetIndicatorMalice" => json!({"id": indicator, "malice": "MALICIOUS"}),
            "AddFinding" => {
                json!({"alertId": alert, "agentName": "bot", "summary": "TOR exit", "confidence": 0.8, "evidence": {"exit_node": true}})
            }
            "SearchDetectionRules" => json!({"search": "brute"}),
            "ListContextDocuments" => json!({}),
            "ReenrichAlert" => json!({"id": alert}),
            "EnrichIndicator" => json!({"type": "DOMAIN", "value": "evil[.]example.com"}),
            "SearchIndicators" => json!({"filter": {"type": ["IP"], "search": "185.220"}}),
            "SetAlertMalice" => json!({"id": alert, "malice": "SUSPICIOUS"}),
            "GetRelatedAlerts" => json!({"id": alert}),
            "GetContextDocument" => json!({"id": "00000000-0000-0000-0000-000000000000"}),
            "GetDetectionRule" => {
                json!({"id": rule.as_deref().unwrap_or("00000000-0000-0000-0000-000000000000")})
            }
            other => panic!("no variables for operation {other}; add them to this test"),
        }
    };
    let dir = format!("{}/operations", env!("CARGO_MANIFEST_DIR"));
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
        assert!(text.starts_with("# "), "{name} starts with a comment that describes it");
        assert!(
            text.contains(&format!("query {name}")) || text.contains(&format!("mutation {name}")),
            "{name}: one operation named like its file"
        );
        let data = app.graphql(&text, variables(&name)).await;
        assert!(data.as_object().is_some_and(|d| !d.is_empty()), "{name}: {data}");
        names.push(name);
    }
    assert!(names.len() >= 10, "{names:?}");
    let data = app
        .graphql(
            &std::fs::read_to_string(format!(
                "{}/operations/GetIndicator.graphql",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
            variables("GetIndicator"),
        )
        .await;
    assert_eq!(data["indicator"]["malice"], "MALICIOUS");
}

/// Every root field and mutation, with the scope it needs: a key with every other scope (and
/// not `admin`) is refused with `FORBIDDEN` naming it, before any input is looked at.
const GUARDED: &[(&str, &str)] = &[
    ("alerts:read", "{ alert(id: \"00000000-0000-0000-0000-000000000000\") { id } }"),
    ("alerts:read", "{ alerts { totalCount } }"),
    ("alerts:read", "{ indicator(type: IP, value: \"198.51.100.1\") { id } }"),
    ("alerts:read", "{ indicators { totalCount } }"),
    ("alerts:read", "{ detectionRule(id: \"00000000-0000-0000-0000-000000000000\") { id } }"),
    ("alerts:read", "{ detectionRules { id } }"),
    ("alerts:read", "{ contextDocument(id: \"00000000-0000-0000-0000-000000000000\") { id } }"),
    ("alerts:read", "{ contextDocuments { id } }"),
    ("alerts:read", "{ metrics { alertCount } }"),
    ("agents:read", "{ agents { id } }"),
    ("agents:read", "{ deliveries { id } }"),
    ("enrichments:read", "{ enrichmentProviders { name } }"),
    ("admin", "{ apiKeys { prefix } }"),
    ("admin", "{ indicatorMappings { id } }"),
    ("admin", "{ jobs { id } }"),
    ("admin", "{ auditLog { id } }"),
    ("admin", "mutation { retryJob(id: \"1\") { id } }"),
    (
        "alerts:write",
        "mutation { ingestAlert(source: \"generic\", payload: {title: \"x\"}) { alertId } }",
    ),
    (
        "alerts:write",
        "mutation { updateAlert(id: \"00000000-0000-0000-0000-000000000000\", input: {status: TRIAGING}) { id } }",
    ),
    (
        "alerts:write",
        "mutation { addFinding(alertId: \"00000000-0000-0000-0000-000000000000\", input: {agentName: \"a\", summary: \"s\"}) { id } }",
    ),
    (
        "alerts:write",
        "mutation { addIndicators(alertId: \"00000000-0000-0000-0000-000000000000\", indicators: [{type: IP, value: \"198.51.100.1\"}]) { id } }",
    ),
    (
        "alerts:write",
        "mutation { setIndicatorMalice(id: \"00000000-0000-0000-0000-000000000000\", malice: BENIGN) { id } }",
    ),
    ("alerts:write", "mutation { reenrichAlert(id: \"00000000-0000-0000-0000-000000000000\") }"),
    ("alerts:write", "mutation { enrichIndicator(type: IP, value: \"198.51.100.1\") { id } }"),
    (
        "alerts:write",
        "mutation { createContextDocument(input: {title: \"t\", content: \"c\"}) { id } }",
    ),
    (
        "alerts:write",
        "mutation { updateContextDocument(id: \"00000000-0000-0000-0000-000000000000\", input: {title: \"t\", content: \"c\"}) { id } }",
    ),
    (
        "alerts:write",
        "mutation { deleteContextDocument(id: \"00000000-0000-0000-0000-000000000000\") }",
    ),
    (
        "alerts:write",
        "mutation { importContextDocument(fileName: \"a.md\", content: \"# A\") { id } }",
    ),
    (
        "alerts:write",
        "mutation { createDetectionRule(input: {name: \"n\", sourceName: \"s\", sourceRuleId: \"1\"}) { id } }",
    ),
    (
        "alerts:write",
        "mutation { updateDetectionRule(id: \"00000000-0000-0000-0000-000000000000\", input: {name: \"n\", sourceName: \"s\", sourceRuleId: \"1\"}) { id } }",
    ),
    (
        "alerts:write",
        "mutation { deleteDetectionRule(id: \"00000000-0000-0000-0000-000000000000\") }",
    ),
    (
        "agents:write",
        "mutation { createAgent(input: {name: \"a\", webhookUrl: \"https://a.example\"}) { signingSecret } }",
    ),
    (
        "agents:write",
        "mutation { updateAgent(id: \"00000000-0000-0000-0000-000000000000\", input: {name: \"a\", webhookUrl: \"https://a.example\"}) { id } }",
    ),
    (
        "agents:write",
        "mutation { rotateAgentSecret(id: \"00000000-0000-0000-0000-000000000000\") }",
    ),
    ("agents:write", "mutation { deleteAgent(id: \"00000000-0000-0000-0000-000000000000\") }"),
    (
        "agents:write",
        "mutation { testAgent(id: \"00000000-0000-0000-0000-000000000000\") { success } }",
    ),
    ("agents:write", "mutation { redeliver(id: \"00000000-0000-0000-0000-000000000000\") }"),
    ("admin", "mutation { createApiKey(input: {name: \"k\", scopes: [\"alerts:read\"]}) { key } }"),
    ("admin", "mutation { revokeApiKey(prefix: \"cai_x\") }"),
    (
        "admin",
        "mutation { createIndicatorMapping(input: {extractFrom: RAW, fieldPath: \"a.b\", indicatorType: IP}) { id } }",
    ),
    (
        "admin",
        "mutation { setIndicatorMappingActive(id: \"00000000-0000-0000-0000-000000000000\", isActive: false) }",
    ),
    (
        "admin",
        "mutation { updateIndicatorMapping(id: \"00000000-0000-0000-0000-000000000000\", input: {extractFrom: RAW, fieldPath: \"a.b\", indicatorType: IP}) { id } }",
    ),
    ("admin", "mutation { deleteIndicatorMapping(id: \"00000000-0000-0000-0000-000000000000\") }"),
    ("admin", "mutation { importEnrichmentProvider(definition: {}) { name } }"),
    ("admin", "mutation { createEnrichmentProvider(definition: {}) { name } }"),
    (
        "admin",
        "mutation { updateEnrichmentProvider(name: \"virustotal\", input: {isActive: false}) { name } }",
    ),
    ("admin", "mutation { deleteEnrichmentProvider(name: \"virustotal\") }"),
    (
        "admin",
        "mutation { setEnrichmentProviderCredentials(name: \"virustotal\", credentials: {api_key: \"k\"}) { name } }",
    ),
    ("admin", "mutation { setFieldExtractions(provider: \"virustotal\", extractions: []) }"),
    (
        "admin",
        "mutation { testEnrichmentProvider(name: \"virustotal\", type: IP, value: \"198.51.100.1\") { success } }",
    ),
];

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn every_root_field_and_mutation_checks_its_scope(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let all = [
        Scope::AlertsRead,
        Scope::AlertsWrite,
        Scope::EnrichmentsRead,
        Scope::AgentsRead,
        Scope::AgentsWrite,
    ];
    for (required, query) in GUARDED {
        let others: Vec<Scope> =
            all.iter().copied().filter(|scope| scope.as_str() != *required).collect();
        let key = create_key(&db, &format!("without {required}"), &others, None).await;
        let (status, body) = app.graphql_as(&key, query, json!({})).await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(error_code(&body), "FORBIDDEN", "{query}: {body}");
        assert_eq!(body["errors"][0]["extensions"]["requiredScope"], *required, "{query}");
    }
    // GraphiQL for people, on the same path.
    let page = app.client.get(app.url("/graphql")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("graphiql"));
    // And every listed field exists in the schema: none of the queries above is a typo.
    for (_, query) in GUARDED {
        let (_, body) = app.graphql_as(&app.admin_key, query, json!({})).await;
        let message = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(
            !message.contains("Unknown field") && !message.contains("Unknown argument"),
            "{query}: {body}"
        );
    }
}
