//! Every sample payload in `../shared/fixtures/alerts/` goes through HTTP ingest and the worker
//! and yields the title, severity, time, tags, detection rule and exactly the indicators its
//! README lists.

use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{fixture, json_with_status, run_worker, spawn_app};

struct Expected {
    file: &'static str,
    source: &'static str,
    title: &'static str,
    severity: &'static str,
    occurred_at: &'static str,
    tags: &'static [&'static str],
    rule_id: &'static str,
    rule_name: &'static str,
    indicators: &'static [(&'static str, &'static str)],
}

const EXPECTED: &[Expected] = &[
    Expected {
        file: "01_sentinel_brute_force_tor.json",
        source: "sentinel",
        title: "Brute force sign-in attempts from TOR network detected",
        severity: "High",
        occurred_at: "2026-03-01T14:23:11Z",
        tags: &["TOR", "BruteForce", "IdentityThreat"],
        rule_id: "c9a7e4d2-3b1f-4e8a-9c6d-f0123456789a",
        rule_name: "Brute force sign-in attempts from TOR network detected",
        indicators: &[
            ("ip", "185.220.101.34"),
            ("account", "j.martinez@contoso.com"),
            ("domain", "aad-signin-svc.contoso.com"),
        ],
    },
    Expected {
        file: "02_elastic_malware_hash.json",
        source: "elastic",
        title: "Known Malware Hash Detected on Endpoint",
        severity: "Critical",
        occurred_at: "2026-03-01T16:42:18Z",
        tags: &["Malware", "Emotet", "Endpoint", "T1204.002", "Execution"],
        rule_id: "d8e5f6a7-b9c0-4d1e-a2f3-456789abcdef",
        rule_name: "Known Malware Hash Detected on Endpoint",
        indicators: &[
            ("ip", "198.51.100.42"),
            ("ip", "10.0.15.201"),
            ("ip", "fe80::1a2b:3c4d:5e6f:7890"),
            ("hash_sha256", "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2"),
            ("hash_md5", "d41d8cd98f00b204e9800998ecf8427e"),
            ("hash_sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
            ("email", "admin@acmeinc.com"),
            ("account", "admin"),
        ],
    },
    Expected {
        file: "03_splunk_anomalous_data_transfer.json",
        source: "splunk",
        title: "Anomalous Outbound Data Transfer",
        severity: "High",
        occurred_at: "2024-03-01T15:00:00Z",
        tags: &[],
        rule_id: "Anomalous Outbound Data Transfer Detected",
        rule_name: "Anomalous Outbound Data Transfer",
        indicators: &[
            ("ip", "10.0.8.55"),
            ("ip", "45.33.32.156"),
            ("url", "https://suspicious-cloud-sync.com/api/v2/upload"),
            ("domain", "suspicious-cloud-sync.com"),
            ("account", "svc_backup"),
        ],
    },
    Expected {
        file: "04_sentinel_impossible_travel.json",
        source: "sentinel",
        title: "Impossible travel activity detected for user r.chen@contoso.com",
        severity: "High",
        occurred_at: "2026-03-01T09:15:22Z",
        tags: &["ImpossibleTravel", "IdentityThreat", "HighPrivilege", "GlobalAdmin"],
        rule_id: "e7f8a9b0-c1d2-4e3f-a5b6-c7d8e9f01234",
        rule_name: "Impossible travel activity detected for user r.chen@contoso.com",
        indicators: &[
            ("ip", "91.234.56.78"),
            ("ip", "203.0.113.25"),
            ("account", "r.chen@contoso.com"),
            ("domain", "rchen-laptop.contoso.com"),
            ("url", "https://portal.azure.com"),
        ],
    },
    Expected {
        file: "05_elastic_suspicious_powershell.json",
        source: "elastic",
        title: "Suspicious PowerShell Execution with Encoded Command",
        severity: "High",
        occurred_at: "2026-03-01T22:14:37Z",
        tags: &[
            "PowerShell",
            "EncodedCommand",
            "LivingOffTheLand",
            "T1059.001",
            "T1027",
            "DefenseEvasion",
            "Execution",
        ],
        rule_id: "a9b0c1d2-e3f4-5678-9abc-def012345678",
        rule_name: "Suspicious PowerShell Execution with Encoded Command",
        indicators: &[
            ("ip", "10.0.1.10"),
            ("ip", "198.51.100.99"),
            ("domain", "c2-relay.darkops.net"),
            ("url", "https://c2-relay.darkops.net/stager.ps1"),
            ("hash_sha256", "de96a6e69944335375dc1ac238336066889d9ffc7d73628ef4fe1b1b160ab32c"),
            ("account", "SYSTEM"),
        ],
    },
    Expected {
        file: "elastic_alert.json",
        source: "elastic",
        title: "Suspicious PowerShell Execution",
        severity: "High",
        occurred_at: "2024-01-15T10:29:50Z",
        tags: &["PowerShell", "Endpoint", "T1059.001"],
        rule_id: "rule-uuid-elastic-abc",
        rule_name: "Suspicious PowerShell Execution",
        indicators: &[
            ("ip", "10.0.0.55"),
            ("ip", "185.220.101.32"),
            ("domain", "evil.example.com"),
            ("domain", "c2-server.evil.com"),
            ("url", "https://evil.example.com/payload/stage2.ps1"),
            ("hash_sha256", "a1b2c3d4e5f6789012345678901234567890abcdef1234567890abcdef123456"),
            ("hash_md5", "d41d8cd98f00b204e9800998ecf8427e"),
            ("email", "jdoe@corp.com"),
            ("account", "jdoe"),
        ],
    },
    Expected {
        file: "sentinel_alert.json",
        source: "sentinel",
        title: "Suspicious PowerShell Execution on WORKSTATION-01",
        severity: "High",
        occurred_at: "2024-01-15T10:29:50Z",
        tags: &["powershell", "endpoint"],
        rule_id: "rule-uuid-abc123",
        rule_name: "Suspicious PowerShell Execution on WORKSTATION-01",
        indicators: &[
            ("ip", "10.0.0.55"),
            ("ip", "185.220.101.32"),
            ("account", "jdoe@corp.com"),
            ("domain", "workstation-01.corp.com"),
            ("hash_sha256", "a1b2c3d4e5f6789012345678901234567890abcdef1234567890abcdef123456"),
            ("hash_md5", "d41d8cd98f00b204e9800998ecf8427e"),
        ],
    },
    Expected {
        file: "splunk_alert.json",
        source: "splunk",
        title: "Brute Force Login Attempt",
        severity: "High",
        occurred_at: "2024-01-15T09:50:00Z",
        tags: &[],
        rule_id: "Brute Force Login Attempt",
        rule_name: "Brute Force Login Attempt",
        indicators: &[
            ("ip", "10.0.0.99"),
            ("ip", "192.168.1.10"),
            ("account", "admin"),
            // 63 hex digits in the payload: a truncated hash is kept under its declared type
            // rather than silently dropped.
            ("hash_sha256", "b94f6f125c79e3a5ffaa826f584c10d52ada669e6762051b826b55776d05a8a"),
            ("domain", "corp.example.com"),
        ],
    },
    Expected {
        file: "generic_phishing_email.json",
        source: "generic",
        title: "User-reported phishing: fake payroll portal harvesting credentials",
        severity: "High",
        occurred_at: "2026-03-02T08:14:27Z",
        tags: &["phishing", "credential-harvesting", "user-reported", "T1566.002"],
        rule_id: "phish-report-link-clicked",
        rule_name: "Phish Report - Link Clicked Before Report",
        indicators: &[
            ("email", "payroll-team@payroll-portal.example.net"),
            ("email", "hr.payroll.desk@mail.example.org"),
            ("domain", "payroll-portal.example.net"),
            (
                "url",
                "https://payroll-portal.example.net/sso/login?session=7f3a9c2e&user=j.martinez%40contoso.com",
            ),
            ("ip", "203.0.113.45"),
            ("hash_sha1", "3395856ce81f2b7382dee72602f798b642f14140"),
            ("hash_md5", "44d88612fea8a8f36de82e1278abb02f"),
            ("hash_sha256", "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"),
            ("account", "j.martinez@contoso.com"),
        ],
    },
    Expected {
        file: "elastic_nested_dns_tunnel.json",
        source: "elastic",
        title: "Potential DNS Tunneling via High-Entropy Subdomains",
        severity: "High",
        occurred_at: "2026-03-02T03:41:09.512Z",
        tags: &[
            "Domain: Endpoint",
            "Tactic: Command and Control",
            "Tactic: Exfiltration",
            "Data Source: Elastic Defend",
            "Use Case: Threat Detection",
            "T1071.004",
            "T1048",
        ],
        rule_id: "c3d9e5f1-7a2b-4c8d-9e0f-a1b2c3d4e5f6",
        rule_name: "Potential DNS Tunneling via High-Entropy Subdomains",
        indicators: &[
            ("ip", "10.20.30.44"),
            ("ip", "fe80::8d1:2c3f:fe4a:5b6c"),
            ("ip", "198.51.100.53"),
            ("domain", "mzxw6ytboi2dsnrtgq3tmmjvgaytamzxgq.s0421.t.exfil-tunnel.example.org"),
            ("hash_md5", "f42fd149140017c7cb2d47edb0c1304e"),
            ("hash_sha1", "b5d43232f4fbd76808b6cee4442f0bd4ba14a4d6"),
            ("hash_sha256", "56366bedca0b6a5add77a59f4194c58362ddccad9b96e55dc17d523b4ab24ca6"),
            ("email", "l.okafor@example.com"),
            ("account", "l.okafor"),
        ],
    },
    Expected {
        file: "splunk_defanged_iocs.json",
        source: "splunk",
        title: "Threat - Defanged IOC Match in Web Proxy Logs",
        severity: "Critical",
        occurred_at: "2026-03-02T03:29:13Z",
        tags: &[],
        rule_id: "Threat - Defanged IOC Match in Web Proxy Logs - Rule",
        rule_name: "Threat - Defanged IOC Match in Web Proxy Logs",
        indicators: &[
            ("ip", "10.50.3.17"),
            ("ip", "203.0.113.7"),
            ("url", "http://evil.example.com/payload"),
            ("domain", "evil.example.com"),
            ("account", "CORP\\d.kowalski"),
            ("hash_md5", "4fc0adcb33aa2e2d61453e236691e8ae"),
        ],
    },
];

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn every_sample_payload_yields_its_documented_alert_and_indicators(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let mut accepted = Vec::new();
    for expected in EXPECTED {
        let response = app.ingest(expected.source, fixture(expected.file)).await;
        let receipt = json_with_status(response, 202).await;
        assert_eq!(receipt["status"], "queued", "{}", expected.file);
        assert_eq!(receipt["duplicate_count"], 0, "{}", expected.file);
        let alert_id: Uuid = receipt["alert_id"].as_str().unwrap().parse().unwrap();
        accepted.push((alert_id, expected));
    }

    assert_eq!(run_worker(&db).await, EXPECTED.len());

    for (alert_id, expected) in accepted {
        check_alert(&db, alert_id, expected).await;
    }
}

async fn check_alert(db: &PgPool, alert_id: Uuid, expected: &Expected) {
    let file = expected.file;
    let alert = domain::store::alert::get(db, alert_id).await.unwrap().expect(file);
    assert_eq!(alert.title, expected.title, "{file}");
    assert_eq!(alert.severity.as_str(), expected.severity, "{file}");
    assert_eq!(alert.source_name, expected.source, "{file}");
    let occurred_at: chrono::DateTime<chrono::Utc> = expected.occurred_at.parse().unwrap();
    assert_eq!(alert.occurred_at, occurred_at, "{file}");
    assert_eq!(alert.tags, expected.tags, "{file}");
    assert_eq!(alert.enrichment_status.as_str(), "Enriched", "{file}");

    let raw = domain::store::alert::raw_payload(db, alert_id).await.unwrap().unwrap();
    assert_eq!(raw, fixture(file), "{file}: the raw payload is kept byte for byte");

    let rule_id = alert.detection_rule_id.unwrap_or_else(|| panic!("{file}: no detection rule"));
    let rule = domain::store::rule::get(db, rule_id).await.unwrap().unwrap();
    assert_eq!(rule.source_rule_id, expected.rule_id, "{file}");
    assert_eq!(rule.name, expected.rule_name, "{file}");
    assert_eq!(rule.source_name, expected.source, "{file}");

    let mut found: Vec<(String, String)> = domain::store::indicator::for_alert(db, alert_id)
        .await
        .unwrap()
        .into_iter()
        .map(|indicator| (indicator.kind.as_str().to_owned(), indicator.value))
        .collect();
    let mut wanted: Vec<(String, String)> =
        expected.indicators.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    found.sort();
    wanted.sort();
    assert_eq!(found, wanted, "{file}: indicators");
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn an_indicator_seen_in_two_alerts_is_one_row_linked_to_both(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    // Both samples carry 185.220.101.32 and the same MD5.
    json_with_status(app.ingest("sentinel", fixture("sentinel_alert.json")).await, 202).await;
    json_with_status(app.ingest("elastic", fixture("elastic_alert.json")).await, 202).await;
    run_worker(&db).await;

    let links: i64 = sqlx::query_scalar(
        "select count(*) from alert_indicator ai join indicator i using (indicator_id)
         where i.type = 'ip' and i.value = '185.220.101.32'",
    )
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(links, 2);
    let rows: i64 =
        sqlx::query_scalar("select count(*) from indicator where value = '185.220.101.32'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(rows, 1);
}

#[sqlx::test(migrator = "domain::MIGRATOR")]
async fn a_user_mapping_adds_indicators_from_any_raw_field(db: PgPool) {
    let app = spawn_app(db.clone()).await;
    let mapping = domain::store::mapping::NewMapping {
        source: Some(domain::alert::Source::Splunk),
        target: domain::normalize::MappingTarget::Raw,
        path: "result.dvc_ip",
        indicator_type: domain::alert::IndicatorType::Ip,
        description: Some("the firewall that saw the flow"),
    };
    domain::mapping::create(&db, &mapping, "tests").await.unwrap();
    // The server hears the change through NOTIFY and reloads its snapshot.
    let custom = |app: &crate::helpers::TestApp| {
        app.state.mappings.snapshot().iter().any(|mapping| mapping.path == "result.dvc_ip")
    };
    for _ in 0..200 {
        if custom(&app) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(custom(&app), "the server did not pick up the new mapping");

    let receipt = json_with_status(
        app.ingest("splunk", fixture("03_splunk_anomalous_data_transfer.json")).await,
        202,
    )
    .await;
    run_worker(&db).await;

    let alert_id: Uuid = receipt["alert_id"].as_str().unwrap().parse().unwrap();
    let values: Vec<String> = domain::store::indicator::for_alert(&db, alert_id)
        .await
        .unwrap()
        .into_iter()
        .map(|indicator| indicator.value)
        .collect();
    assert!(values.contains(&"10.0.0.1".to_owned()), "{values:?}");
}
