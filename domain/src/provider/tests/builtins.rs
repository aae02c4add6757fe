//! Every built-in provider against its recorded responses: the request it sends (path, query,
//! headers, body) and the verdict and `extracted` fields it gives for the malicious (or
//! active-user), clean and not-found cases.

use serde_json::{Value, json};
use wiremock::matchers::{body_string, body_string_contains, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::{Enriched, auth, builtin_at, enrich, fixture_json, indicator, respond, respond_json};
use crate::alert::IndicatorType::{Account, Domain, HashMd5, HashSha1, HashSha256, Ip, Url};
use crate::alert::Malice;
use crate::provider::AuthValues;

const EICAR_SHA256: &str = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f";

fn vt_auth() -> AuthValues {
    auth(&[("api_key", "vt-key")])
}

async fn mock_get(
    server: &MockServer,
    url_path: &str,
    key: (&str, &str),
    answer: ResponseTemplate,
) {
    Mock::given(method("GET"))
        .and(path(url_path))
        .and(header(key.0, key.1))
        .respond_with(answer)
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn virustotal_rates_the_tor_exit_ip_malicious_with_its_network_details() {
    let server = MockServer::start().await;
    let provider = builtin_at("virustotal", &server, "/api/v3");
    mock_get(
        &server,
        "/api/v3/ip_addresses/185.220.101.34",
        ("x-apikey", "vt-key"),
        respond(200, "virustotal.ip_malicious.json"),
    )
    .await;

    let enriched = enrich(&provider, &vt_auth(), &indicator(Ip, "185.220.101.34")).await;

    let expected = json!({
        "malicious_count": 14, "suspicious_count": 3, "harmless_count": 61, "undetected_count": 17,
        "reputation": -42, "community_malicious_votes": 19, "tags": ["tor"],
        "last_analysis_date": 1772356364, "as_owner": "F3 Netze e.V.", "asn": 205100,
        "country": "DE", "network": "185.220.101.0/24", "registry": "RIPE NCC"
    });
    assert_eq!(enriched, Enriched { verdict: Malice::Malicious, extracted: expected });
}

#[tokio::test]
async fn virustotal_rates_google_public_dns_benign() {
    let server = MockServer::start().await;
    let provider = builtin_at("virustotal", &server, "/api/v3");
    mock_get(
        &server,
        "/api/v3/ip_addresses/8.8.8.8",
        ("x-apikey", "vt-key"),
        respond(200, "virustotal.ip_clean.json"),
    )
    .await;

    let enriched = enrich(&provider, &vt_auth(), &indicator(Ip, "8.8.8.8")).await;

    assert_eq!(enriched.verdict, Malice::Benign);
    assert_eq!(enriched.extracted["malicious_count"], 0);
    assert_eq!(enriched.extracted["as_owner"], "GOOGLE");
    assert_eq!(enriched.extracted["asn"], 15169);
    assert_eq!(enriched.extracted.get("tags"), None, "an empty list is absent like a missing one");
}

#[tokio::test]
async fn virustotal_rates_the_newly_registered_domain_malicious_with_its_registration() {
    let server = MockServer::start().await;
    let provider = builtin_at("virustotal", &server, "/api/v3");
    mock_get(
        &server,
        "/api/v3/domains/evil.example.com",
        ("x-apikey", "vt-key"),
        respond(200, "virustotal.domain_malicious.json"),
    )
    .await;

    let enriched = enrich(&provider, &vt_auth(), &indicator(Domain, "evil.example.com")).await;

    let expected = json!({
        "malicious_count": 10, "suspicious_count": 2, "harmless_count": 66, "undetected_count": 17,
        "reputation": -27, "community_malicious_votes": 6, "last_analysis_date": 1772404268,
        "registrar": "NameCheap, Inc.", "creation_date": 1771930971,
        "categories": {
            "Forcepoint ThreatSeeker": "malicious web sites",
            "Sophos": "malware repository",
            "BitDefender": "malware",
            "alphaMountain.ai": "Malicious, Newly Registered (alphaMountain.ai)"
        }
    });
    assert_eq!(enriched, Enriched { verdict: Malice::Malicious, extracted: expected });
}

#[tokio::test]
async fn virustotal_rates_example_com_benign() {
    let server = MockServer::start().await;
    let provider = builtin_at("virustotal", &server, "/api/v3");
    mock_get(
        &server,
        "/api/v3/domains/example.com",
        ("x-apikey", "vt-key"),
        respond(200, "virustotal.domain_clean.json"),
    )
    .await;

    let enriched = enrich(&provider, &vt_auth(), &indicator(Domain, "example.com")).await;

    assert_eq!(enriched.verdict, Malice::Benign);
    assert_eq!(enriched.extracted["registrar"], "RESERVED-Internet Assigned Numbers Authority");
    assert_eq!(enriched.extracted["creation_date"], 808372800);
}

#[tokio::test]
async fn virustotal_looks_up_each_hash_type_at_the_files_endpoint() {
    let hashes = [
        (HashMd5, "44d88612fea8a8f36de82e1278abb02f"),
        (HashSha1, "3395856ce81f2b7382dee72602f798b642f14140"),
        (HashSha256, EICAR_SHA256),
    ];
    for (kind, hash) in hashes {
        let server = MockServer::start().await;
        let provider = builtin_at("virustotal", &server, "/api/v3");
        mock_get(
            &server,
            &format!("/api/v3/files/{hash}"),
            ("x-apikey", "vt-key"),
            respond(200, "virustotal.file_malicious.json"),
        )
        .await;

        let enriched = enrich(&provider, &vt_auth(), &indicator(kind, hash)).await;

        let expected = json!({
            "malicious_count": 62, "suspicious_count": 0, "harmless_count": 0,
            "undetected_count": 4,
            "reputation": 3711, "community_malicious_votes": 402, "last_analysis_date": 1772402320,
            "tags": ["text", "known-distributor", "attachment", "via-tor"],
            "meaningful_name": "eicar.com",
            "names": [
                "eicar.com", "eicar.com.txt", "eicar.txt", "eicar_test.com", "test-malware.txt",
                "Direct_Deposit_Form.com", "sample.bin"
            ],
            "type_description": "Text", "size": 68,
            "md5": "44d88612fea8a8f36de82e1278abb02f",
            "sha1": "3395856ce81f2b7382dee72602f798b642f14140",
            "sha256": EICAR_SHA256, "threat_label": "virus.eicar/test",
            "threat_categories": ["virus", "trojan"], "first_submission_date": 1148301722
        });
        assert_eq!(
            enriched,
            Enriched { verdict: Malice::Malicious, extracted: expected },
            "{kind}"
        );
    }
}

#[tokio::test]
async fn virustotal_leaves_an_unknown_hash_pending() {
    let server = MockServer::start().await;
    let provider = builtin_at("virustotal", &server, "/api/v3");
    let hash = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2";
    mock_get(
        &server,
        &format!("/api/v3/files/{hash}"),
        ("x-apikey", "vt-key"),
        respond(404, "virustotal.not_found.json"),
    )
    .await;

    let enriched = enrich(&provider, &vt_auth(), &indicator(HashSha256, hash)).await;

    assert_eq!(enriched, Enriched { verdict: Malice::Pending, extracted: Value::Null });
}

async fn mock_abuseipdb(server: &MockServer, ip: &str, answer: ResponseTemplate) {
    Mock::given(method("GET"))
        .and(path("/api/v2/check"))
        .and(query_param("ipAddress", ip))
        .and(query_param("maxAgeInDays", "90"))
        .and(header("Key", "abuse-key"))
        .and(header("Accept", "application/json"))
        .respond_with(answer)
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn abuseipdb_rates_the_heavily_reported_tor_exit_malicious() {
    let server = MockServer::start().await;
    let provider = builtin_at("abuseipdb", &server, "/api/v2");
    mock_abuseipdb(&server, "185.220.101.34", respond(200, "abuseipdb.check_malicious.json")).await;

    let enriched =
        enrich(&provider, &auth(&[("api_key", "abuse-key")]), &indicator(Ip, "185.220.101.34"))
            .await;

    let expected = json!({
        "abuse_confidence_score": 100, "total_reports": 1843, "num_distinct_users": 412,
        "last_reported_at": "2026-03-01T14:51:07+00:00", "is_tor": true, "is_whitelisted": false,
        "is_public": true, "country_code": "DE", "isp": "F3 Netze e.V.",
        "usage_type": "Data Center/Web Hosting/Transit", "domain": "f3netze.de",
        "hostnames": ["tor-exit-34.relay.example.net"]
    });
    assert_eq!(enriched, Enriched { verdict: Malice::Malicious, extracted: expected });
}

#[tokio::test]
async fn abuseipdb_rates_an_unreported_allow_listed_ip_benign_and_accepts_a_null_date() {
    let server = MockServer::start().await;
    let provider = builtin_at("abuseipdb", &server, "/api/v2");
    mock_abuseipdb(&server, "8.8.8.8", respond(200, "abuseipdb.check_clean.json")).await;

    let enriched =
        enrich(&provider, &auth(&[("api_key", "abuse-key")]), &indicator(Ip, "8.8.8.8")).await;

    assert_eq!(enriched.verdict, Malice::Benign);
    assert_eq!(enriched.extracted["abuse_confidence_score"], 0);
    assert_eq!(enriched.extracted["is_whitelisted"], true);
    assert_eq!(enriched.extracted.get("last_reported_at"), None);
}

async fn mock_greynoise(server: &MockServer, ip: &str, answer: ResponseTemplate) {
    mock_get(server, &format!("/v3/community/{ip}"), ("key", "gn-key"), answer).await;
}

#[tokio::test]
async fn greynoise_rates_a_malicious_scanner_malicious() {
    let server = MockServer::start().await;
    let provider = builtin_at("greynoise", &server, "");
    mock_greynoise(&server, "185.220.101.34", respond(200, "greynoise.noise_malicious.json")).await;

    let enriched =
        enrich(&provider, &auth(&[("api_key", "gn-key")]), &indicator(Ip, "185.220.101.34")).await;

    let expected = json!({
        "ip": "185.220.101.34", "is_noise": true, "is_riot": false, "classification": "malicious",
        "actor_name": "unknown", "visualizer_link": "https://viz.greynoise.io/ip/185.220.101.34",
        "last_seen": "2026-03-01", "message": "Success"
    });
    assert_eq!(enriched, Enriched { verdict: Malice::Malicious, extracted: expected });
}

#[tokio::test]
async fn greynoise_rates_a_known_business_service_benign() {
    let server = MockServer::start().await;
    let provider = builtin_at("greynoise", &server, "");
    mock_greynoise(&server, "8.8.8.8", respond(200, "greynoise.riot_benign.json")).await;

    let enriched =
        enrich(&provider, &auth(&[("api_key", "gn-key")]), &indicator(Ip, "8.8.8.8")).await;

    assert_eq!(enriched.verdict, Malice::Benign);
    assert_eq!(enriched.extracted["actor_name"], "Google Public DNS");
    assert_eq!(enriched.extracted["is_riot"], true);
}

#[tokio::test]
async fn greynoise_leaves_an_unobserved_ip_pending() {
    let server = MockServer::start().await;
    let provider = builtin_at("greynoise", &server, "");
    mock_greynoise(&server, "203.0.113.7", respond(404, "greynoise.not_found.json")).await;

    let enriched =
        enrich(&provider, &auth(&[("api_key", "gn-key")]), &indicator(Ip, "203.0.113.7")).await;

    assert_eq!(enriched, Enriched { verdict: Malice::Pending, extracted: Value::Null });
}

async fn mock_urlhaus(server: &MockServer, endpoint: &str, form: &str, answer: ResponseTemplate) {
    Mock::given(method("POST"))
        .and(path(endpoint))
        .and(header("Auth-Key", "abuse-ch-key"))
        .and(header("Content-Type", "application/x-www-form-urlencoded"))
        .and(body_string(form))
        .respond_with(answer)
        .expect(1)
        .mount(server)
        .await;
}

#[tokio::test]
async fn urlhaus_rates_an_online_malware_url_malicious_and_reads_numbers_sent_as_text() {
    let server = MockServer::start().await;
    let provider = builtin_at("urlhaus", &server, "/v1");
    let form = "url=http%3A%2F%2Fevil.example.com%2Fpayload";
    mock_urlhaus(&server, "/v1/url/", form, respond(200, "urlhaus.url_online.json")).await;

    let enriched = enrich(
        &provider,
        &auth(&[("api_key", "abuse-ch-key")]),
        &indicator(Url, "http://evil.example.com/payload"),
    )
    .await;

    let expected = json!({
        "url_status": "online", "threat": "malware_download",
        "tags": ["AsyncRAT", "exe", "opendir"],
        "date_added": "2026-02-27 18:44:09 UTC", "last_online": "2026-03-02 03:10:55 UTC",
        "host": "evil.example.com",
        "blacklists": {"spamhaus_dbl": "abused_legit_malware", "surbl": "listed"},
        "reported_to_host": true, "payload_signatures": ["AsyncRAT", "AsyncRAT"],
        "payload_sha256": [
            "fbb7a0941b4fe7d93edce17b2cfba6b3e411652e12a969dac95b82a575d8d203",
            "bed4033a75b9ae9d791f2047616d2002df5293e441d729079dd7aff2cb1c4677"
        ],
        "urlhaus_reference": "https://urlhaus.abuse.ch/url/3149870/"
    });
    assert_eq!(enriched, Enriched { verdict: Malice::Malicious, extracted: expected });
}

#[tokio::test]
async fn urlhaus_treats_no_results_as_not_found_although_it_answers_200() {
    let server = MockServer::start().await;
    let provider = builtin_at("urlhaus", &server, "/v1");
    let url = "https://payroll-portal.example.net/login?session=a b";
    let form = "url=https%3A%2F%2Fpayroll-portal.example.net%2Flogin%3Fsession%3Da+b";
    mock_urlhaus(&server, "/v1/url/", form, respond(200, "urlhaus.no_results.json")).await;

    let enriched =
        enrich(&provider, &auth(&[("api_key", "abuse-ch-key")]), &indicator(Url, url)).await;

    assert_eq!(enriched, Enriched { verdict: Malice::Pending, extracted: Value::Null });
}

#[tokio::test]
async fn urlhaus_looks_up_a_domain_at_the_host_endpoint() {
    let server = MockServer::start().await;
    let provider = builtin_at("urlhaus", &server, "/v1");
    mock_urlhaus(&server, "/v1/host/", "host=example.com", respond(200, "urlhaus.no_results.json"))
        .await;

    let enriched =
        enrich(&provider, &auth(&[("api_key", "abuse-ch-key")]), &indicator(Domain, "example.com"))
            .await;

    assert_eq!(enriched.verdict, Malice::Pending);
}

const OKTA_USER_ID: &str = "00u8jm2rt4QxK7vZp5d7";

async fn mock_okta_user(server: &MockServer, login: &str, answer: ResponseTemplate) {
    // The login is one path segment, so its `@` is percent-encoded.
    let encoded = login.replace('@', "%40");
    mock_get(
        server,
        &format!("/api/v1/users/{encoded}"),
        ("Authorization", "SSWS okta-token"),
        answer,
    )
    .await;
}

async fn mock_okta_groups(server: &MockServer, answer: ResponseTemplate, times: u64) {
    Mock::given(method("GET"))
        .and(path(format!("/api/v1/users/{OKTA_USER_ID}/groups")))
        .and(header("Authorization", "SSWS okta-token"))
        .respond_with(answer)
        .expect(times)
        .mount(server)
        .await;
}

fn okta_auth() -> AuthValues {
    auth(&[("api_token", "okta-token"), ("domain", "example.okta.com")])
}

#[tokio::test]
async fn okta_describes_an_active_user_with_their_groups() {
    let server = MockServer::start().await;
    let provider = builtin_at("okta", &server, "");
    mock_okta_user(&server, "j.martinez@contoso.com", respond(200, "okta.user_active.json")).await;
    mock_okta_groups(&server, respond(200, "okta.user_groups.json"), 1).await;

    let enriched =
        enrich(&provider, &okta_auth(), &indicator(Account, "j.martinez@contoso.com")).await;

    let expected = json!({
        "user_id": OKTA_USER_ID, "status": "ACTIVE", "login": "j.martinez@contoso.com",
        "email": "j.martinez@contoso.com", "display_name": "Julia Martinez",
        "title": "Senior Financial Analyst", "department": "Finance", "manager": "Robert Chen",
        "manager_id": "00u5rc1hn2LmW8yTq4d7", "user_type": "Employee",
        "created": "2022-08-15T16:21:09.000Z", "last_login": "2026-03-01T14:38:47.000Z",
        "password_changed": "2026-01-12T09:02:33.000Z",
        "status_changed": "2022-08-15T16:22:41.000Z",
        "groups": ["Everyone", "Finance", "MFA-Enrolled", "SG-Finance-Payments-Approvers"],
        "group_types": ["BUILT_IN", "OKTA_GROUP", "OKTA_GROUP", "APP_GROUP"]
    });
    assert_eq!(enriched, Enriched { verdict: Malice::Benign, extracted: expected });
}

#[tokio::test]
async fn okta_rates_a_locked_out_user_suspicious() {
    let server = MockServer::start().await;
    let provider = builtin_at("okta", &server, "");
    let mut user = fixture_json("okta.user_active.json");
    user["status"] = json!("LOCKED_OUT");
    mock_okta_user(&server, "j.martinez@contoso.com", respond_json(200, &user)).await;
    mock_okta_groups(&server, respond(200, "okta.user_groups.json"), 1).await;

    let enriched =
        enrich(&provider, &okta_auth(), &indicator(Account, "j.martinez@contoso.com")).await;

    assert_eq!(enriched.verdict, Malice::Suspicious);
    assert_eq!(enriched.extracted["status"], "LOCKED_OUT");
}

#[tokio::test]
async fn okta_keeps_the_user_when_the_optional_groups_step_fails() {
    let server = MockServer::start().await;
    let provider = builtin_at("okta", &server, "");
    mock_okta_user(&server, "j.martinez@contoso.com", respond(200, "okta.user_active.json")).await;
    mock_okta_groups(&server, ResponseTemplate::new(500), 1).await;

    let enriched =
        enrich(&provider, &okta_auth(), &indicator(Account, "j.martinez@contoso.com")).await;

    assert_eq!(enriched.verdict, Malice::Benign);
    assert_eq!(enriched.extracted["user_id"], OKTA_USER_ID);
    assert_eq!(enriched.extracted.get("groups"), None);
}

#[tokio::test]
async fn okta_leaves_an_unknown_user_pending_without_asking_for_groups() {
    let server = MockServer::start().await;
    let provider = builtin_at("okta", &server, "");
    mock_okta_user(&server, "unknown.user@contoso.com", respond(404, "okta.user_not_found.json"))
        .await;
    mock_okta_groups(&server, respond(200, "okta.user_groups.json"), 0).await;

    let enriched =
        enrich(&provider, &okta_auth(), &indicator(Account, "unknown.user@contoso.com")).await;

    assert_eq!(enriched, Enriched { verdict: Malice::Pending, extracted: Value::Null });
}

const ENTRA_USER_ID: &str = "f9e8d7c6-b5a4-3210-9876-543210fedcba";
const ENTRA_SELECT: &str = "id,displayName,userPrincipalName,mail,accountEnabled,department,\
                            jobTitle,lastPasswordChangeDateTime";

/// Entra pointed at `server` for both the token and Graph.
pub(super) fn entra_at(
    server: &MockServer,
) -> (crate::provider::ProviderSpec, Vec<crate::provider::FieldExtraction>) {
    let (mut spec, extractions) = builtin_at("entra", server, "/v1.0");
    if let Some(token) = &mut spec.token {
        token.url = format!("{}/{{{{auth.tenant_id}}}}/oauth2/v2.0/token", server.uri());
    }
    (spec, extractions)
}

pub(super) fn entra_auth() -> AuthValues {
    auth(&[
        ("tenant_id", "contoso-tenant"),
        ("client_id", "app-id"),
        ("client_secret", "app-s3cret"),
    ])
}

pub(super) fn entra_bearer() -> String {
    format!("Bearer {}", fixture_json("entra.token.json")["access_token"].as_str().unwrap())
}

pub(super) async fn mock_entra_token(server: &MockServer, times: u64) {
    Mock::given(method("POST"))
        .and(path("/contoso-tenant/oauth2/v2.0/token"))
        .and(header("Content-Type", "application/x-www-form-urlencoded"))
        .and(body_string_contains("grant_type=client_credentials"))
        .and(body_string_contains("client_id=app-id"))
        .and(body_string_contains("client_secret=app-s3cret"))
        .and(body_string_contains("scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"))
        .respond_with(respond(200, "entra.token.json"))
        .expect(times)
        .mount(server)
        .await;
}

pub(super) async fn mock_entra_user(
    server: &MockServer,
    upn: &str,
    answer: ResponseTemplate,
    times: u64,
) {
    Mock::given(method("GET"))
        .and(path(format!("/v1.0/users/{}", upn.replace('@', "%40"))))
        .and(query_param("$select", ENTRA_SELECT))
        .and(header("Authorization", entra_bearer().as_str()))
        .respond_with(answer)
        .expect(times)
        .mount(server)
        .await;
}

pub(super) async fn mock_entra_member_of(server: &MockServer, times: u64) {
    Mock::given(method("GET"))
        .and(path(format!("/v1.0/users/{ENTRA_USER_ID}/memberOf")))
        .and(header("Authorization", entra_bearer().as_str()))
        .respond_with(respond(200, "entra.member_of.json"))
        .expect(times)
        .mount(server)
        .await;
}

#[tokio::test]
async fn entra_describes_an_enabled_user_with_their_groups_and_roles() {
    let server = MockServer::start().await;
    mock_entra_token(&server, 1).await;
    mock_entra_user(&server, "r.chen@contoso.com", respond(200, "entra.user.json"), 1).await;
    mock_entra_member_of(&server, 1).await;

    let enriched =
        enrich(&entra_at(&server), &entra_auth(), &indicator(Account, "r.chen@contoso.com")).await;

    let memberships = fixture_json("entra.member_of.json")["value"].clone();
    let names: Value =
        memberships.as_array().unwrap().iter().map(|entry| entry["displayName"].clone()).collect();
    let types: Value =
        memberships.as_array().unwrap().iter().map(|entry| entry["@odata.type"].clone()).collect();
    assert_eq!(names[0], "Global Administrator");
    let expected = json!({
        "user_id": ENTRA_USER_ID, "user_principal_name": "r.chen@contoso.com",
        "display_name": "Robert Chen", "mail": "r.chen@contoso.com", "account_enabled": true,
        "department": "IT Operations", "job_title": "Cloud Infrastructure Lead",
        "last_password_change": "2025-11-18T16:42:07Z", "member_of": names, "member_of_types": types
    });
    assert_eq!(enriched, Enriched { verdict: Malice::Benign, extracted: expected });
}

#[tokio::test]
async fn entra_rates_a_disabled_account_suspicious() {
    let server = MockServer::start().await;
    let mut user = fixture_json("entra.user.json");
    user["accountEnabled"] = json!(false);
    mock_entra_token(&server, 1).await;
    mock_entra_user(&server, "r.chen@contoso.com", respond_json(200, &user), 1).await;
    mock_entra_member_of(&server, 1).await;

    let enriched =
        enrich(&entra_at(&server), &entra_auth(), &indicator(Account, "r.chen@contoso.com")).await;

    assert_eq!(enriched.verdict, Malice::Suspicious);
    assert_eq!(enriched.extracted["account_enabled"], false);
}

#[tokio::test]
async fn entra_leaves_an_unknown_user_pending() {
    let server = MockServer::start().await;
    mock_entra_token(&server, 1).await;
    mock_entra_user(
        &server,
        "unknown.user@contoso.com",
        respond(404, "entra.user_not_found.json"),
        1,
    )
    .await;
    mock_entra_member_of(&server, 0).await;

    let enriched =
        enrich(&entra_at(&server), &entra_auth(), &indicator(Account, "unknown.user@contoso.com"))
            .await;

    assert_eq!(enriched, Enriched { verdict: Malice::Pending, extracted: Value::Null });
}
