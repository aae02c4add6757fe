//! The lookup engine's contract with its caller: which failures are worth a retry, how long a
//! step may take, how values are encoded into requests, how OAuth2 tokens are shared, and that
//! no credential leaks into a trace or an error.

use std::time::{Duration, Instant};

use serde_json::json;
use wiremock::matchers::{header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::builtins::{
    entra_at, entra_auth, entra_bearer, mock_entra_member_of, mock_entra_token, mock_entra_user,
};
use super::{auth, builtin_at, fixture, indicator, respond};
use crate::alert::IndicatorType::{Account, Ip, Url};
use crate::provider::{
    Lookup, LookupError, ProviderSpec, TemplateError, TemplateProblem, lookup, lookup_traced,
};

/// A one-step `api_key` provider for `ip` and `url` whose step is `step` (merged over a GET
/// of `{{base_url}}/lookup/{{indicator.value}}`).
fn provider_at(server: &MockServer, step: serde_json::Value) -> ProviderSpec {
    let mut step_json = json!({
        "name": "lookup", "method": "GET", "url": "{{base_url}}/lookup/{{indicator.value}}",
        "headers": {"key": "{{auth.api_key}}"}, "timeout_seconds": 5,
        "expected_status": [200], "not_found_status": [404]
    });
    if let (Some(base), Some(overrides)) = (step_json.as_object_mut(), step.as_object()) {
        base.extend(overrides.clone());
    }
    let provider = json!({
        "provider_name": "test", "display_name": "Test", "supported_indicator_types": ["ip", "url"],
        "auth_type": "api_key", "base_url": server.uri(), "http_config": {"steps": [step_json]},
        "malice_rules": {"rules": [], "default_verdict": "Benign", "not_found_verdict": "Pending"}
    });
    ProviderSpec::from_json(&provider).unwrap()
}

async fn answer_any(server: &MockServer, answer: ResponseTemplate) {
    Mock::given(method("GET")).respond_with(answer).mount(server).await;
}

async fn look_up_ip(provider: &ProviderSpec) -> Result<Lookup, LookupError> {
    let auth = auth(&[("api_key", "test-api-key")]);
    lookup(&super::local_http(), provider, &auth, &indicator(Ip, "192.0.2.1")).await
}

#[tokio::test]
async fn a_refused_api_key_is_rejected_as_permanent_with_the_providers_reason() {
    let server = MockServer::start().await;
    let (provider, _) = builtin_at("abuseipdb", &server, "/api/v2");
    answer_any(&server, respond(401, "abuseipdb.unauthorized.json")).await;

    let error = look_up_ip(&provider).await.unwrap_err();

    let LookupError::Rejected { status: 401, message, .. } = &error else { panic!("{error:?}") };
    assert!(
        message.starts_with("Authentication failed. Your API key is either missing"),
        "{message}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn a_429_with_retry_after_one_second_is_rate_limited_for_one_second() {
    let server = MockServer::start().await;
    let (provider, _) = builtin_at("virustotal", &server, "/api/v3");
    answer_any(
        &server,
        respond(429, "virustotal.quota_exceeded.json").insert_header("Retry-After", "1"),
    )
    .await;

    let error = look_up_ip(&provider).await.unwrap_err();

    assert_eq!(
        error,
        LookupError::RateLimited {
            step: "lookup".into(),
            retry_after: Some(Duration::from_secs(1))
        }
    );
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_429_without_retry_after_leaves_the_backoff_to_the_caller() {
    let server = MockServer::start().await;
    let (provider, _) = builtin_at("abuseipdb", &server, "/api/v2");
    answer_any(&server, respond(429, "abuseipdb.rate_limited.json")).await;

    let error = look_up_ip(&provider).await.unwrap_err();

    assert_eq!(error, LookupError::RateLimited { step: "check".into(), retry_after: None });
}

#[tokio::test]
async fn server_errors_and_request_timeouts_are_transient() {
    for status in [500, 502, 503, 408] {
        let server = MockServer::start().await;
        answer_any(&server, ResponseTemplate::new(status).set_body_string("upstream unavailable"))
            .await;

        let error = look_up_ip(&provider_at(&server, json!({}))).await.unwrap_err();

        let expected = format!("HTTP {status}: upstream unavailable");
        assert_eq!(error, LookupError::Transient { step: "lookup".into(), message: expected });
        assert!(error.is_retryable());
    }
}

#[tokio::test]
async fn a_connection_that_is_refused_is_transient() {
    let closed_port =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut provider = provider_at(&MockServer::start().await, json!({}));
    provider.base_url = Some(format!("http://127.0.0.1:{closed_port}"));

    let error = look_up_ip(&provider).await.unwrap_err();

    assert!(matches!(&error, LookupError::Transient { step, .. } if step == "lookup"), "{error:?}");
}

#[tokio::test]
async fn a_step_that_outlasts_its_timeout_fails_as_a_timeout_soon_after_it() {
    let server = MockServer::start().await;
    answer_any(
        &server,
        respond(200, "greynoise.riot_benign.json").set_delay(Duration::from_secs(10)),
    )
    .await;
    let provider = provider_at(&server, json!({"timeout_seconds": 1}));

    let started = Instant::now();
    let error = look_up_ip(&provider).await.unwrap_err();

    assert_eq!(
        error,
        LookupError::Timeout { step: "lookup".into(), after: Duration::from_secs(1) }
    );
    assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_body_that_is_not_json_is_an_invalid_response() {
    let server = MockServer::start().await;
    answer_any(&server, ResponseTemplate::new(200).set_body_string("<html>maintenance</html>"))
        .await;

    let error = look_up_ip(&provider_at(&server, json!({}))).await.unwrap_err();

    let LookupError::InvalidResponse { message, .. } = &error else { panic!("{error:?}") };
    assert!(message.starts_with("the response is not JSON"), "{message}");
    assert!(!error.is_retryable(), "{error:?}");
}

#[tokio::test]
async fn an_unexpected_success_status_is_rejected_rather_than_read() {
    let server = MockServer::start().await;
    answer_any(&server, ResponseTemplate::new(202)).await;

    let error = look_up_ip(&provider_at(&server, json!({}))).await.unwrap_err();

    assert!(matches!(error, LookupError::Rejected { status: 202, .. }), "{error:?}");
}

#[tokio::test]
async fn a_not_found_status_on_a_later_required_step_makes_the_whole_lookup_not_found() {
    let server = MockServer::start().await;
    Mock::given(path("/lookup/192.0.2.1"))
        .respond_with(ResponseTemplate::new(200).set_body_string(r#"{"id": 7}"#))
        .mount(&server)
        .await;
    Mock::given(path("/details/7")).respond_with(ResponseTemplate::new(404)).mount(&server).await;
    let mut provider = provider_at(&server, json!({}));
    let mut details = provider.http_config.steps[0].clone();
    details.name = "details".into();
    details.url = "{{base_url}}/details/{{steps.lookup.response.id}}".into();
    provider.http_config.steps.push(details);

    assert_eq!(look_up_ip(&provider).await, Ok(Lookup::NotFound));
}

#[tokio::test]
async fn values_with_slashes_question_marks_hashes_and_spaces_are_percent_encoded_once() {
    let server = MockServer::start().await;
    let value = "http://a.example/x y?q=1&r=2#frag+%";
    let encoded = "http%3A%2F%2Fa.example%2Fx%20y%3Fq%3D1%26r%3D2%23frag%2B%25";
    Mock::given(method("GET"))
        .and(path(format!("/lookup/{encoded}/{encoded}")))
        .and(query_param("inline", value))
        .and(query_param("mapped", value))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .expect(1)
        .mount(&server)
        .await;
    let provider = provider_at(
        &server,
        json!({
            "url": "{{base_url}}/lookup/{{indicator.value}}/{{ indicator.value | urlencode }}\
                    ?inline={{indicator.value}}",
            "query": {"mapped": "{{indicator.value | urlencode}}"}
        }),
    );

    let traced = lookup_traced(
        &super::local_http(),
        &provider,
        &auth(&[("api_key", "test-api-key")]),
        &indicator(Url, value),
    )
    .await;

    assert!(matches!(traced.result, Ok(Lookup::Found(_))), "{:?}", traced.result);
    let expected_url = format!(
        "{}/lookup/{encoded}/{encoded}?inline={encoded}\
         &mapped=http%3A%2F%2Fa.example%2Fx+y%3Fq%3D1%26r%3D2%23frag%2B%25",
        server.uri()
    );
    assert_eq!(traced.trace[0].url, expected_url);
}

#[tokio::test]
async fn secrets_are_masked_in_traces_and_in_errors() {
    let server = MockServer::start().await;
    let secret = "sk/live+123";
    let body = json!({"error": {"message": format!("API key {secret} has been revoked")}});
    answer_any(&server, ResponseTemplate::new(403).set_body_json(body)).await;
    let provider = provider_at(
        &server,
        json!({
            "url": "{{base_url}}/lookup/{{indicator.value}}?apikey={{auth.api_key}}",
            "headers": {"X-Api-Key": "{{auth.api_key}}", "Authorization": "Bearer {{auth.api_key}}"}
        }),
    );

    let auth = auth(&[("api_key", secret)]);
    let traced =
        lookup_traced(&super::local_http(), &provider, &auth, &indicator(Ip, "192.0.2.1")).await;

    let error = traced.result.clone().unwrap_err();
    assert_eq!(
        error,
        LookupError::Rejected {
            step: "lookup".into(),
            status: 403,
            message: "API key *** has been revoked".into()
        }
    );
    let [step] = traced.trace.as_slice() else { panic!("{:?}", traced.trace) };
    assert_eq!(step.url, format!("{}/lookup/192.0.2.1?apikey=***", server.uri()));
    assert!(
        step.request_headers.contains(&("x-api-key".into(), "***".into())),
        "{:?}",
        step.request_headers
    );
    assert!(step.request_headers.contains(&("authorization".into(), "Bearer ***".into())));
    assert_eq!(step.status, Some(403));
    let everything = format!("{error} {error:?} {traced:?} {auth:?}");
    for spelling in [secret, "sk%2Flive%2B123", "sk/live 123"] {
        assert!(!everything.contains(spelling), "{spelling} leaked: {everything}");
    }
}

#[tokio::test]
async fn a_transport_error_names_no_url_that_could_carry_a_key() {
    let closed_port =
        std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut provider = provider_at(
        &MockServer::start().await,
        json!({"url": "{{base_url}}/x?apikey={{auth.api_key}}"}),
    );
    provider.base_url = Some(format!("http://127.0.0.1:{closed_port}"));

    let auth = auth(&[("api_key", "very-secret-key")]);
    let traced =
        lookup_traced(&super::local_http(), &provider, &auth, &indicator(Ip, "192.0.2.1")).await;

    let everything = format!("{:?}", traced);
    assert!(matches!(traced.result, Err(LookupError::Transient { .. })), "{everything}");
    assert!(!everything.contains("very-secret-key"), "{everything}");
}

#[tokio::test]
async fn a_template_error_names_the_template_and_sends_nothing() {
    let server = MockServer::start().await;
    let provider =
        provider_at(&server, json!({"headers": {"Authorization": "SSWS {{auth.api_token}}"}}));

    let traced = lookup_traced(
        &super::local_http(),
        &provider,
        &auth(&[("api_key", "test-api-key")]),
        &indicator(Ip, "192.0.2.1"),
    )
    .await;

    let expected = TemplateError {
        template: "http_config.steps[0].headers.Authorization".into(),
        problem: TemplateProblem::Missing("auth.api_token".into()),
    };
    assert_eq!(traced.result, Err(LookupError::Template(expected)));
    assert_eq!(
        traced.result.unwrap_err().to_string(),
        "template http_config.steps[0].headers.Authorization: `auth.api_token` has no value"
    );
    assert_eq!(traced.trace[0].status, None);
    assert!(server.received_requests().await.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn an_indicator_type_the_provider_does_not_support_is_refused_before_any_request() {
    let server = MockServer::start().await;

    let result = lookup(
        &super::local_http(),
        &provider_at(&server, json!({})),
        &auth(&[]),
        &indicator(Account, "a"),
    )
    .await;

    assert_eq!(result, Err(LookupError::UnsupportedType(Account)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_concurrent_entra_lookups_fetch_the_token_once() {
    let server = MockServer::start().await;
    mock_entra_token(&server, 1).await;
    mock_entra_user(&server, "r.chen@contoso.com", respond(200, "entra.user.json"), 10).await;
    mock_entra_member_of(&server, 10).await;
    let provider = entra_at(&server).0;
    let auth = entra_auth();

    let mut lookups = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (provider, auth) = (provider.clone(), auth.clone());
        lookups.spawn(async move {
            lookup(
                &super::local_http(),
                &provider,
                &auth,
                &indicator(Account, "r.chen@contoso.com"),
            )
            .await
        });
    }

    for result in lookups.join_all().await {
        assert!(matches!(result, Ok(Lookup::Found(_))), "{result:?}");
    }
}

#[tokio::test]
async fn an_entra_token_refused_by_graph_is_replaced_once_and_the_lookup_retried() {
    let server = MockServer::start().await;
    mock_entra_token(&server, 2).await;
    Mock::given(path("/v1.0/users/r.chen%40contoso.com"))
        .respond_with(ResponseTemplate::new(401))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    mock_entra_user(&server, "r.chen@contoso.com", respond(200, "entra.user.json"), 1).await;
    mock_entra_member_of(&server, 1).await;
    let (provider, auth) = (entra_at(&server).0, entra_auth());

    let result =
        lookup(&super::local_http(), &provider, &auth, &indicator(Account, "r.chen@contoso.com"))
            .await;

    assert!(matches!(result, Ok(Lookup::Found(_))), "{result:?}");
}

#[tokio::test]
async fn an_entra_trace_masks_the_client_secret_and_the_fetched_token() {
    let server = MockServer::start().await;
    mock_entra_token(&server, 1).await;
    mock_entra_user(&server, "r.chen@contoso.com", respond(200, "entra.user.json"), 1).await;
    mock_entra_member_of(&server, 1).await;

    let traced = lookup_traced(
        &super::local_http(),
        &entra_at(&server).0,
        &entra_auth(),
        &indicator(Account, "r.chen@contoso.com"),
    )
    .await;

    let steps: Vec<&str> = traced.trace.iter().map(|step| step.step.as_str()).collect();
    assert_eq!(steps, ["token", "user", "member_of"]);
    let token = &traced.trace[0];
    assert_eq!(token.url, format!("{}/***/oauth2/v2.0/token", server.uri()));
    let form = token.request_body.as_deref().unwrap_or_default();
    assert!(form.contains("client_id=***") && form.contains("client_secret=***"), "{form}");
    assert!(
        token.response_body.as_deref().unwrap_or_default().contains(r#""access_token": "***""#)
    );
    assert!(
        traced.trace[1].request_headers.contains(&("authorization".into(), "Bearer ***".into()))
    );
    let everything = format!("{traced:?}");
    let token_value = entra_bearer().replace("Bearer ", "");
    for secret in ["app-s3cret", "app-id", "contoso-tenant", &token_value[..40]] {
        assert!(!everything.contains(secret), "{secret} leaked");
    }
    assert!(fixture("entra.token.json").contains(&token_value));
}

#[tokio::test]
async fn an_okta_step_reaches_the_earlier_steps_response() {
    let server = MockServer::start().await;
    let (provider, _) = builtin_at("okta", &server, "");
    Mock::given(path("/api/v1/users/j.martinez%40contoso.com"))
        .respond_with(respond(200, "okta.user_active.json"))
        .mount(&server)
        .await;
    Mock::given(path("/api/v1/users/00u8jm2rt4QxK7vZp5d7/groups"))
        .and(header("Accept", "application/json"))
        .respond_with(respond(200, "okta.user_groups.json"))
        .expect(1)
        .mount(&server)
        .await;

    let auth = auth(&[("api_token", "t"), ("domain", "example.okta.com")]);
    let result = lookup(
        &super::local_http(),
        &provider,
        &auth,
        &indicator(Account, "j.martinez@contoso.com"),
    )
    .await;

    let Ok(Lookup::Found(found)) = result else { panic!("{result:?}") };
    assert_eq!(found.final_step, "groups");
    assert_eq!(found.final_response().and_then(|groups| groups.as_array()).map(Vec::len), Some(4));
}
