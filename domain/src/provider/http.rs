//! Runs one provider lookup: renders each step's request, sends it with its own timeout, and
//! sorts the answer into a body, "not found", or an error the caller can act on.
//!
//! The caller (the enrichment worker) owns retries, backoff, caching and rate limits, because
//! those are shared by every worker through PostgreSQL (SPEC §3). This file's job is to make
//! that decision easy: [`LookupError`] separates what will pass with time (rate limits,
//! timeouts, 5xx) from what will not (a refused key, a broken definition). It also records a
//! [`StepTrace`] per request for the "test this provider" button, with every credential
//! masked, because those traces are shown to people and returned by the API.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue, RETRY_AFTER};
use serde_json::Value;
use tokio::time::Instant;
use url::Url;

use super::auth::{AuthValues, Masker};
use super::spec::{HttpMethod, ProviderSpec, Step, TokenConfig};
use super::template::{Escape, Scope, TemplateError, TemplateProblem, render, render_json};
use crate::alert::IndicatorType;
use crate::indicator::Indicator;
use crate::normalize::path::lookup as lookup_path;
use crate::outbound::{Outbound, OutboundError, refusal};
use crate::secret::Secret;

/// Bodies larger than this are refused rather than buffered: no enrichment answer is this big,
/// and a misconfigured URL pointing at a download must not exhaust the worker's memory.
const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;
/// Request and response bodies in a trace are cut to this many characters.
const TRACE_BODY_CHARS: usize = 2000;
/// Error bodies quoted in an error message are cut to this many characters.
const MESSAGE_CHARS: usize = 300;
/// The lifetime assumed for an OAuth2 token whose response has no `expires_in`. OAuth2 makes
/// the field optional; a short guess costs a few token requests, a long one failed lookups.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(300);

/// What a provider said about an indicator.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    Found(Found),
    /// A step that is not optional answered with one of its `not_found_status` codes (or its
    /// `not_found_when` condition held).
    NotFound,
}

/// The bodies of the steps that ran, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// One entry per step that answered; a skipped optional step has none.
    pub responses: Vec<StepResponse>,
    /// The status of the last response.
    pub status: u16,
    /// The name of the last step configured for the indicator's type. Unprefixed paths in
    /// extractions and rules read its body, even when it was skipped (and so read nothing),
    /// rather than silently reading an earlier step's body instead.
    pub final_step: String,
}

impl Found {
    pub fn response(&self, step: &str) -> Option<&Value> {
        self.responses.iter().find(|response| response.step == step).map(|response| &response.body)
    }

    pub fn final_response(&self) -> Option<&Value> {
        self.response(&self.final_step)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepResponse {
    pub step: String,
    pub status: u16,
    pub body: Value,
}

/// Why a lookup failed. `step` names the step (or `token`) that failed. No variant carries a
/// credential: messages quoted from providers are masked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    /// HTTP 429. Retry after `retry_after` (from `Retry-After`) or the caller's own backoff.
    #[error("{step}: rate limited by the provider")]
    RateLimited { step: String, retry_after: Option<Duration> },
    /// The step did not finish within its `timeout_seconds`. Worth retrying.
    #[error("{step}: no complete answer within {after:?}")]
    Timeout { step: String, after: Duration },
    /// The connection failed, or the provider answered 5xx or 408. Worth retrying.
    #[error("{step}: {message}")]
    Transient { step: String, message: String },
    /// Any other unexpected status, e.g. 401 for a bad key or 400 for a value the provider
    /// refuses. Retrying will not help.
    #[error("{step}: HTTP {status}: {message}")]
    Rejected { step: String, status: u16, message: String },
    /// The provider answered with a body that is not what the definition expects.
    #[error("{step}: {message}")]
    InvalidResponse { step: String, message: String },
    /// The definition could not be rendered: a broken template or a credential not set.
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("the provider does not support indicator type {0}")]
    UnsupportedType(IndicatorType),
    /// The SSRF guard refused the address (ALERTGRAPH_OUTBOUND_ALLOW can allow it).
    #[error("{step}: refused by the SSRF guard: {reason}")]
    Refused { step: String, reason: OutboundError },
}

impl LookupError {
    /// Whether the same lookup may succeed later without anyone changing anything.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LookupError::RateLimited { .. }
                | LookupError::Timeout { .. }
                | LookupError::Transient { .. }
        )
    }

    fn is_unauthorized(&self) -> bool {
        matches!(self, LookupError::Rejected { status: 401, .. })
    }
}

/// One request as it was sent, for people to read. Every credential is replaced by `***`.
#[derive(Debug, Clone, PartialEq)]
pub struct StepTrace {
    pub step: String,
    pub method: String,
    pub url: String,
    pub request_headers: Vec<(String, String)>,
    pub request_body: Option<String>,
    /// `None` when no answer came (timeout, connection error, or nothing was sent).
    pub status: Option<u16>,
    pub response_body: Option<String>,
    pub elapsed: Duration,
    pub error: Option<String>,
}

/// A lookup's outcome with the trace of every request it made.
#[derive(Debug, Clone, PartialEq)]
pub struct TracedLookup {
    pub result: Result<Lookup, LookupError>,
    pub trace: Vec<StepTrace>,
}

/// Looks `indicator` up with `provider`, running its steps in order.
///
/// `client` should be shared and built by the caller, which is where outbound policy (the
/// SSRF guard, proxies, redirects) is decided; every URL is checked against it before it is
/// requested.
///
/// # Errors
/// See [`LookupError`]; a failing optional step is skipped instead.
pub async fn lookup(
    client: &Outbound,
    provider: &ProviderSpec,
    auth: &AuthValues,
    indicator: &Indicator,
) -> Result<Lookup, LookupError> {
    let mut call = Call::new(client, provider, auth, indicator, false);
    call.run().await
}

/// [`lookup`], also returning what was sent and received.
pub async fn lookup_traced(
    client: &Outbound,
    provider: &ProviderSpec,
    auth: &AuthValues,
    indicator: &Indicator,
) -> TracedLookup {
    let mut call = Call::new(client, provider, auth, indicator, true);
    let result = call.run().await;
    TracedLookup { result, trace: call.trace }
}

/// The state of one lookup while it runs.
struct Call<'a> {
    client: &'a Outbound,
    provider: &'a ProviderSpec,
    auth: &'a AuthValues,
    indicator: &'a Indicator,
    masker: Masker,
    /// Whether to record `trace`: masking and copying every body costs more than the rest of
    /// a lookup, so only [`lookup_traced`] does it.
    tracing: bool,
    trace: Vec<StepTrace>,
}

impl<'a> Call<'a> {
    fn new(
        client: &'a Outbound,
        provider: &'a ProviderSpec,
        auth: &'a AuthValues,
        indicator: &'a Indicator,
        tracing: bool,
    ) -> Self {
        Call {
            client,
            provider,
            auth,
            indicator,
            masker: Masker::new(auth),
            tracing,
            trace: Vec::new(),
        }
    }
}

/// What a step's answer means for the lookup.
enum StepOutcome {
    Body { status: u16, body: Value },
    NotFound,
}

/// An answer, read whole.
struct Reply {
    status: u16,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

/// Why no [`Reply`] could be read.
enum Failure {
    Transport(reqwest::Error),
    Refused(OutboundError),
    TooLarge,
}

/// A request to render, common to steps and the token request.
struct RequestParts<'s> {
    method: HttpMethod,
    /// The URL template and the name of the field it comes from, for error messages.
    url: &'s str,
    url_field: String,
    headers: &'s BTreeMap<String, String>,
    query: &'s BTreeMap<String, String>,
    json_body: Option<&'s Value>,
    form_body: &'s BTreeMap<String, String>,
}

impl Call<'_> {
    async fn run(&mut self) -> Result<Lookup, LookupError> {
        let kind = self.indicator.kind;
        if !self.provider.supports(kind) {
            return Err(LookupError::UnsupportedType(kind));
        }
        let base_url = self.base_url()?;
        let token = self.access_token(base_url.as_deref()).await?;
        let outcome = self.run_steps(base_url.as_deref(), token.as_ref()).await;
        let refused = matches!(&outcome, Err(error) if error.is_unauthorized());
        let Some(stale) = token.filter(|_| refused) else {
            return outcome;
        };
        // A 401 despite a token the cache thought valid means it was revoked or the clocks
        // disagree: one new token and one more try, instead of failing until it expires.
        self.auth.token_cache().forget(&stale).await;
        let fresh = self.access_token(base_url.as_deref()).await?;
        self.run_steps(base_url.as_deref(), fresh.as_ref()).await
    }

    /// The rendered `base_url`, without a trailing slash so that `{{base_url}}/path` holds
    /// one slash whichever way an admin wrote it.
    fn base_url(&self) -> Result<Option<String>, LookupError> {
        let Some(template) = &self.provider.base_url else {
            return Ok(None);
        };
        let scope = Scope {
            indicator: None,
            base_url: None,
            auth: self.auth,
            access_token: None,
            steps: &[],
        };
        let rendered = render("base_url", template, &scope, Escape::Plain)?;
        Ok(Some(rendered.trim_end_matches('/').to_owned()))
    }

    /// The OAuth2 token when the provider has a `token` config, from the cache if it is fresh.
    async fn access_token(
        &mut self,
        base_url: Option<&str>,
    ) -> Result<Option<Secret>, LookupError> {
        let (provider, auth) = (self.provider, self.auth);
        let Some(config) = &provider.token else {
            return Ok(None);
        };
        let token = auth.token_cache().get_or_fetch(|| self.fetch_token(config, base_url)).await?;
        self.masker.add(&token);
        Ok(Some(token))
    }

    async fn fetch_token(
        &mut self,
        config: &TokenConfig,
        base_url: Option<&str>,
    ) -> Result<(Secret, Duration), LookupError> {
        let scope =
            Scope { indicator: None, base_url, auth: self.auth, access_token: None, steps: &[] };
        let no_query = BTreeMap::new();
        let parts = RequestParts {
            method: HttpMethod::Post,
            url: &config.url,
            url_field: "url".into(),
            headers: &config.headers,
            query: &no_query,
            json_body: None,
            form_body: &config.form_body,
        };
        let request = match build_request("token", &parts, &scope) {
            Ok(request) => request,
            Err(error) => return Err(self.unsent("token", HttpMethod::Post, &config.url, error)),
        };
        let reply =
            self.send("token", request, Duration::from_secs(config.timeout_seconds)).await?;
        let token = self.read_token(config, &reply);
        // The token is in the response body: it must be known to the masker before the body
        // goes into the trace.
        if let Ok((access_token, _)) = &token {
            self.masker.add(access_token);
        }
        self.finish_trace(&reply, token.as_ref().err());
        token
    }

    fn read_token(
        &self,
        config: &TokenConfig,
        reply: &Reply,
    ) -> Result<(Secret, Duration), LookupError> {
        if !(200..300).contains(&reply.status) {
            return Err(status_error("token", reply, &self.masker));
        }
        let body = parse_json("token", &reply.body)?;
        let access_token = lookup_path(&body, &config.access_token_path)
            .into_iter()
            .find_map(Value::as_str)
            .ok_or_else(|| LookupError::InvalidResponse {
                step: "token".into(),
                message: format!("the token response has no `{}`", config.access_token_path),
            })?;
        let lifetime = lookup_path(&body, &config.expires_in_path)
            .into_iter()
            .find_map(as_seconds)
            .map_or(DEFAULT_TOKEN_LIFETIME, Duration::from_secs);
        Ok((Secret::new(access_token), lifetime))
    }

    async fn run_steps(
        &mut self,
        base_url: Option<&str>,
        token: Option<&Secret>,
    ) -> Result<Lookup, LookupError> {
        let (provider, auth, indicator) = (self.provider, self.auth, self.indicator);
        let mut responses: Vec<StepResponse> = Vec::new();
        let mut final_step = String::new();
        for (index, step) in provider.steps_for(indicator.kind) {
            final_step.clone_from(&step.name);
            let scope = Scope {
                indicator: Some(indicator),
                base_url,
                auth,
                access_token: token,
                steps: &responses,
            };
            match self.run_step(index, step, &scope).await {
                Ok(StepOutcome::Body { status, body }) => {
                    responses.push(StepResponse { step: step.name.clone(), status, body });
                }
                Ok(StepOutcome::NotFound) if step.optional => {}
                Ok(StepOutcome::NotFound) => return Ok(Lookup::NotFound),
                // The trace keeps the error; a skipped step only leaves `steps.<name>` absent.
                Err(_) if step.optional => {}
                Err(error) => return Err(error),
            }
        }
        let Some(status) = responses.last().map(|response| response.status) else {
            let message = "no step answered: every step that ran is optional and failed".into();
            return Err(LookupError::InvalidResponse { step: final_step, message });
        };
        Ok(Lookup::Found(Found { responses, status, final_step }))
    }

    async fn run_step(
        &mut self,
        index: usize,
        step: &Step,
        scope: &Scope<'_>,
    ) -> Result<StepOutcome, LookupError> {
        let kind = self.indicator.kind;
        let url = step.url_for(kind);
        let url_field = if step.url_by_type.contains_key(&kind) {
            format!("url_by_type.{kind}")
        } else {
            "url".to_owned()
        };
        let parts = RequestParts {
            method: step.method,
            url,
            url_field,
            headers: &step.headers,
            query: &step.query,
            json_body: step.json_body.as_ref(),
            form_body: &step.form_body,
        };
        let request = match build_request(&format!("http_config.steps[{index}]"), &parts, scope) {
            Ok(request) => request,
            Err(error) => return Err(self.unsent(&step.name, step.method, url, error)),
        };
        let reply = self.send(&step.name, request, step.timeout()).await?;
        let outcome = classify(step, &reply, &self.masker);
        self.finish_trace(&reply, outcome.as_ref().err());
        outcome
    }

    /// Sends `request` and reads the whole answer within `timeout`, and opens its trace entry.
    async fn send(
        &mut self,
        step: &str,
        request: reqwest::Request,
        timeout: Duration,
    ) -> Result<Reply, LookupError> {
        if self.tracing {
            self.trace.push(self.describe(step, &request));
        }
        let started = Instant::now();
        let outcome = tokio::time::timeout(timeout, exchange(self.client, request)).await;
        let elapsed = started.elapsed();
        let result = match outcome {
            Ok(Ok(reply)) => Ok(reply),
            Err(_) => Err(LookupError::Timeout { step: step.into(), after: timeout }),
            Ok(Err(Failure::Transport(error))) if error.is_timeout() => {
                Err(LookupError::Timeout { step: step.into(), after: timeout })
            }
            Ok(Err(Failure::Transport(error))) => match refusal(&error) {
                Some(refused) => Err(LookupError::Refused { step: step.into(), reason: refused }),
                None => Err(LookupError::Transient {
                    step: step.into(),
                    message: self.masker.mask(&describe_error(error)),
                }),
            },
            Ok(Err(Failure::Refused(refused))) => {
                Err(LookupError::Refused { step: step.into(), reason: refused })
            }
            Ok(Err(Failure::TooLarge)) => Err(LookupError::InvalidResponse {
                step: step.into(),
                message: format!("the response is larger than {MAX_BODY_BYTES} bytes"),
            }),
        };
        if let Some(entry) = self.trace.last_mut() {
            entry.elapsed = elapsed;
            entry.status = result.as_ref().ok().map(|reply| reply.status);
            entry.error = result.as_ref().err().map(ToString::to_string);
        }
        result
    }

    /// Completes the trace entry [`Self::send`] opened with the answer's body and any error.
    fn finish_trace(&mut self, reply: &Reply, error: Option<&LookupError>) {
        if !self.tracing {
            return;
        }
        let body =
            truncate(&self.masker.mask(&String::from_utf8_lossy(&reply.body)), TRACE_BODY_CHARS);
        if let Some(entry) = self.trace.last_mut() {
            entry.response_body = Some(body);
            entry.error = error.map(|error| self.masker.mask(&error.to_string()));
        }
    }

    /// Records a request that could not be rendered, with its URL template (which holds
    /// placeholders, not values) in place of a URL, and returns the error.
    fn unsent(
        &mut self,
        step: &str,
        method: HttpMethod,
        url: &str,
        error: TemplateError,
    ) -> LookupError {
        self.trace.push(StepTrace {
            step: step.into(),
            method: method.to_string(),
            url: url.into(),
            request_headers: Vec::new(),
            request_body: None,
            status: None,
            response_body: None,
            elapsed: Duration::ZERO,
            error: Some(error.to_string()),
        });
        error.into()
    }

    fn describe(&self, step: &str, request: &reqwest::Request) -> StepTrace {
        let mask = |text: &str| self.masker.mask(text);
        let request_headers = request
            .headers()
            .iter()
            .map(|(name, value)| {
                (name.to_string(), mask(&String::from_utf8_lossy(value.as_bytes())))
            })
            .collect();
        let request_body = request
            .body()
            .and_then(reqwest::Body::as_bytes)
            .map(|body| truncate(&mask(&String::from_utf8_lossy(body)), TRACE_BODY_CHARS));
        StepTrace {
            step: step.into(),
            method: request.method().to_string(),
            url: mask(request.url().as_str()),
            request_headers,
            request_body,
            status: None,
            response_body: None,
            elapsed: Duration::ZERO,
            error: None,
        }
    }
}

/// Renders a request. `at` names its place in the definition for error messages.
fn build_request(
    at: &str,
    parts: &RequestParts<'_>,
    scope: &Scope<'_>,
) -> Result<reqwest::Request, TemplateError> {
    let url_at = format!("{at}.{}", parts.url_field);
    let rendered = render(&url_at, parts.url, scope, Escape::Url)?;
    let mut url = Url::parse(&rendered)
        .map_err(|error| TemplateProblem::InvalidUrl(error.to_string()).at(&url_at))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(
            TemplateProblem::InvalidUrl("the scheme is not http or https".into()).at(&url_at)
        );
    }
    if !parts.query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (name, template) in parts.query {
            pairs.append_pair(
                name,
                &render(&format!("{at}.query.{name}"), template, scope, Escape::Field)?,
            );
        }
    }
    let mut request = reqwest::Request::new(method(parts.method), url);
    for (name, template) in parts.headers {
        let header_at = format!("{at}.headers.{name}");
        let value = render(&header_at, template, scope, Escape::Plain)?;
        let invalid = || TemplateProblem::InvalidHeader(name.clone()).at(&header_at);
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let value = HeaderValue::from_str(&value).map_err(|_| invalid())?;
        request.headers_mut().append(name, value);
    }
    if let Some(body) = parts.json_body {
        let body = render_json(&format!("{at}.json_body"), body, scope)?;
        set_body(&mut request, "application/json", body.to_string());
    } else if !parts.form_body.is_empty() {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        for (name, template) in parts.form_body {
            form.append_pair(
                name,
                &render(&format!("{at}.form_body.{name}"), template, scope, Escape::Field)?,
            );
        }
        set_body(&mut request, "application/x-www-form-urlencoded", form.finish());
    }
    Ok(request)
}

/// Sets the body, and its content type unless the definition's headers name one.
fn set_body(request: &mut reqwest::Request, content_type: &'static str, body: String) {
    request.headers_mut().entry(CONTENT_TYPE).or_insert(HeaderValue::from_static(content_type));
    *request.body_mut() = Some(body.into());
}

fn method(method: HttpMethod) -> reqwest::Method {
    match method {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
        HttpMethod::Delete => reqwest::Method::DELETE,
    }
}

async fn exchange(client: &Outbound, request: reqwest::Request) -> Result<Reply, Failure> {
    client.check(request.url()).map_err(Failure::Refused)?;
    let mut response = client.client.execute(request).await.map_err(Failure::Transport)?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| parse_retry_after(value, Utc::now()));
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(Failure::Transport)? {
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(Failure::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Reply { status, retry_after, body })
}

/// Reads `Retry-After` as delay seconds or an HTTP date (RFC 9110 §10.2.3). A date in the past
/// means "now".
fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some((at.with_timezone(&Utc) - now).to_std().unwrap_or(Duration::ZERO))
}

/// Sorts a step's answer by its status and, for a success, its body.
fn classify(step: &Step, reply: &Reply, masker: &Masker) -> Result<StepOutcome, LookupError> {
    if step.expects(reply.status) {
        let body = parse_json(&step.name, &reply.body)?;
        let not_found = step.not_found_when.as_ref().is_some_and(|condition| {
            condition.operator.holds(&condition.value, &lookup_path(&body, &condition.field))
        });
        return Ok(if not_found {
            StepOutcome::NotFound
        } else {
            StepOutcome::Body { status: reply.status, body }
        });
    }
    if step.not_found_status.contains(&reply.status) {
        return Ok(StepOutcome::NotFound);
    }
    Err(status_error(&step.name, reply, masker))
}

fn status_error(step: &str, reply: &Reply, masker: &Masker) -> LookupError {
    let step = step.to_owned();
    match reply.status {
        429 => LookupError::RateLimited { step, retry_after: reply.retry_after },
        408 | 500..=599 => {
            let message = format!("HTTP {}: {}", reply.status, error_message(&reply.body, masker));
            LookupError::Transient { step, message }
        }
        status => {
            LookupError::Rejected { step, status, message: error_message(&reply.body, masker) }
        }
    }
}

/// Where providers put a readable reason in their error bodies: VirusTotal and Graph
/// (`error.message`), OAuth2 (`error_description`), AbuseIPDB (`errors[].detail`), Okta
/// (`errorSummary`), and common fallbacks.
const MESSAGE_PATHS: &[&str] = &[
    "error.message",
    "error_description",
    "errors.detail",
    "errorSummary",
    "message",
    "detail",
    "error",
];

/// The provider's own explanation of an error, masked and kept short.
fn error_message(body: &[u8], masker: &Masker) -> String {
    let text = String::from_utf8_lossy(body);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let quoted = parsed.as_ref().and_then(|json| {
        MESSAGE_PATHS
            .iter()
            .find_map(|path| lookup_path(json, path).into_iter().find_map(Value::as_str))
    });
    let message = quoted.unwrap_or(text.trim());
    if message.is_empty() {
        return "no error message".into();
    }
    truncate(&masker.mask(message), MESSAGE_CHARS)
}

/// A JSON body; an empty body (204) reads as `null`.
fn parse_json(step: &str, body: &[u8]) -> Result<Value, LookupError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|error| LookupError::InvalidResponse {
        step: step.into(),
        message: format!("the response is not JSON ({error})"),
    })
}

/// `expires_in` as a whole number of seconds, sent as a number or a numeric string.
fn as_seconds(value: &Value) -> Option<u64> {
    match value {
        Value::Number(number) => number.as_u64(),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

/// A transport error and its causes, without the URL (which may carry a key in its query).
fn describe_error(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut message = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    message
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((cut, _)) => format!("{}… ({} more bytes)", &text[..cut], text.len() - cut),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_as_an_http_date() {
        let now = Utc.with_ymd_and_hms(2026, 3, 1, 14, 0, 0).single().unwrap();
        assert_eq!(parse_retry_after("1", now), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after(" 29241 ", now), Some(Duration::from_secs(29241)));
        assert_eq!(
            parse_retry_after("Sun, 01 Mar 2026 14:01:30 GMT", now),
            Some(Duration::from_secs(90))
        );
        assert_eq!(parse_retry_after("Sun, 01 Mar 2026 13:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn error_messages_quote_the_providers_reason_masked() {
        let masker = Masker::new(&[("api_key", Secret::new("abc123"))].into_iter().collect());
        let abuseipdb = br#"{"errors": [{"detail": "Key abc123 is revoked.", "status": 401}]}"#;
        assert_eq!(error_message(abuseipdb, &masker), "Key *** is revoked.");
        assert_eq!(error_message(b"<html>Bad Gateway</html>", &masker), "<html>Bad Gateway</html>");
        assert_eq!(error_message(b"", &masker), "no error message");
    }

    #[test]
    fn long_text_is_truncated_on_a_character_boundary() {
        assert_eq!(truncate("héllo", 2), "hé… (3 more bytes)");
        assert_eq!(truncate("short", 10), "short");
    }
}
