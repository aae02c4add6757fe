//! The importable provider format: what a provider definition and its field extractions look
//! like as data (SPEC §3).
//!
//! The field names are those of `shared/fixtures/providers/greynoise.provider.json`, which
//! imports unchanged, so definitions written for the reference system keep working. Fields
//! this format adds (`base_url`, `token`, `concurrency_limit`, per-step `indicator_types`,
//! `url_by_type`, `not_found_when`, …) are optional and are left out when serialized unset,
//! so a definition that does not use them round-trips to the same JSON. Loading and checking
//! a definition is `validate.rs`'s job; this file only says what the data means.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::alert::{IndicatorType, Malice};

/// Steps without a `timeout_seconds` give up after this long.
const DEFAULT_TIMEOUT_SECONDS: u64 = 30;
/// Results are cached this long when neither the type nor the provider says otherwise.
const DEFAULT_CACHE_TTL_SECONDS: u64 = 3600;
/// Concurrent calls per provider when the definition sets no limit: enough to keep an alert
/// with many indicators moving, few enough that a free-tier API key is not throttled at once.
const DEFAULT_CONCURRENCY_LIMIT: u32 = 4;

/// One enrichment provider: how to call it, how to read its answer and how long to keep it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderSpec {
    /// The stable identifier, e.g. `virustotal`; results are stored under it.
    pub provider_name: String,
    pub display_name: String,
    #[serde(default)]
    pub description: String,
    pub supported_indicator_types: Vec<IndicatorType>,
    pub auth_type: AuthType,
    /// The editable prefix that step URLs reach as `{{base_url}}`. It may use `{{auth.*}}`
    /// (Okta's is `https://{{auth.domain}}`) and is inserted into URLs as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// How to obtain the bearer token of an `oauth2_client_credentials` provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenConfig>,
    pub http_config: HttpConfig,
    pub malice_rules: MaliceRules,
    #[serde(default = "default_cache_ttl_seconds")]
    pub default_cache_ttl_seconds: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cache_ttl_by_type: BTreeMap<IndicatorType, u64>,
    /// At most this many calls to the provider at once, across all workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_limit: Option<u32>,
    /// At most this many calls per minute, across all workers; unset means unlimited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_minute: Option<u32>,
}

impl ProviderSpec {
    pub fn supports(&self, kind: IndicatorType) -> bool {
        self.supported_indicator_types.contains(&kind)
    }

    /// How long a result for an indicator of type `kind` stays fresh.
    pub fn cache_ttl(&self, kind: IndicatorType) -> Duration {
        let seconds =
            self.cache_ttl_by_type.get(&kind).copied().unwrap_or(self.default_cache_ttl_seconds);
        Duration::from_secs(seconds)
    }

    pub fn concurrency_limit(&self) -> u32 {
        self.concurrency_limit.unwrap_or(DEFAULT_CONCURRENCY_LIMIT)
    }

    /// The steps that run for an indicator of type `kind`, in order, with their positions in
    /// `http_config.steps` (error messages name a step by its position).
    pub fn steps_for(&self, kind: IndicatorType) -> impl Iterator<Item = (usize, &Step)> {
        self.http_config.steps.iter().enumerate().filter(move |(_, step)| step.applies_to(kind))
    }
}

fn default_cache_ttl_seconds() -> u64 {
    DEFAULT_CACHE_TTL_SECONDS
}

fn default_timeout_seconds() -> u64 {
    DEFAULT_TIMEOUT_SECONDS
}

fn is_false(flag: &bool) -> bool {
    !flag
}

/// How a provider authenticates. The credentials themselves are never part of the definition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthType {
    None,
    ApiKey,
    ApiToken,
    Oauth2ClientCredentials,
}

/// Where and how an OAuth2 client-credentials token is fetched. Templates here may use only
/// `{{auth.*}}` and `{{base_url}}`: a token belongs to the provider, not to an indicator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenConfig {
    pub url: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// The form fields, e.g. `grant_type`, `client_id`, `client_secret` and `scope`.
    pub form_body: BTreeMap<String, String>,
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    #[serde(default = "default_access_token_path")]
    pub access_token_path: String,
    #[serde(default = "default_expires_in_path")]
    pub expires_in_path: String,
}

fn default_access_token_path() -> String {
    "access_token".to_owned()
}

fn default_expires_in_path() -> String {
    "expires_in".to_owned()
}

/// The HTTP calls that make up one lookup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "HttpConfigJson")]
pub struct HttpConfig {
    pub steps: Vec<Step>,
}

/// `http_config` as written, including the reference system's `url_templates_by_type`, which
/// overrides the first step's URL per indicator type. It is folded into that step's
/// [`Step::url_by_type`] so that the rest of the code knows one way to say it.
#[derive(Deserialize)]
struct HttpConfigJson {
    steps: Vec<Step>,
    #[serde(default)]
    url_templates_by_type: BTreeMap<IndicatorType, String>,
}

impl From<HttpConfigJson> for HttpConfig {
    fn from(json: HttpConfigJson) -> Self {
        let HttpConfigJson { mut steps, url_templates_by_type } = json;
        if let Some(first) = steps.first_mut() {
            first.url_by_type.extend(url_templates_by_type);
        }
        HttpConfig { steps }
    }
}

/// One HTTP call. Every string in it except `name` is a template (see `template.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Later steps, extractions and rules reach this step's body as `steps.<name>.response`.
    pub name: String,
    /// The indicator types this step runs for; empty means every supported type. A provider
    /// whose call differs per type in more than its URL (URLhaus posts `url=` to one endpoint
    /// and `host=` to another) gives each type its own step.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub indicator_types: Vec<IndicatorType>,
    pub method: HttpMethod,
    pub url: String,
    /// Replaces `url` for the listed indicator types (VirusTotal's `/ip_addresses/`,
    /// `/domains/` and `/files/` endpoints in one step).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub url_by_type: BTreeMap<IndicatorType, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default, alias = "query_params", skip_serializing_if = "BTreeMap::is_empty")]
    pub query: BTreeMap<String, String>,
    /// Any JSON; the strings inside it are templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json_body: Option<Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub form_body: BTreeMap<String, String>,
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u64,
    /// The statuses that mean success; empty means any 2xx.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expected_status: Vec<u16>,
    /// The statuses that mean "the provider does not know this indicator".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_found_status: Vec<u16>,
    /// A successful body that means "not found", for APIs that answer 200 either way
    /// (URLhaus: `query_status == "no_results"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_found_when: Option<Condition>,
    /// A failing optional step is skipped and leaves `steps.<name>` absent.
    #[serde(default, skip_serializing_if = "is_false")]
    pub optional: bool,
}

impl Step {
    pub fn applies_to(&self, kind: IndicatorType) -> bool {
        self.indicator_types.is_empty() || self.indicator_types.contains(&kind)
    }

    /// The URL template used for an indicator of type `kind`.
    pub fn url_for(&self, kind: IndicatorType) -> &str {
        self.url_by_type.get(&kind).unwrap_or(&self.url)
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_seconds)
    }

    pub fn expects(&self, status: u16) -> bool {
        if self.expected_status.is_empty() {
            return (200..300).contains(&status);
        }
        self.expected_status.contains(&status)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HttpMethod {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

/// A test on a response: `field operator value`. `field` is a path into the response as in
/// [`FieldExtraction::source_path`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    pub field: String,
    pub operator: Operator,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub value: Value,
}

/// How a provider's answer becomes a verdict (evaluated by [`super::verdict()`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaliceRules {
    /// Tried in order; the first that holds gives the verdict.
    #[serde(default)]
    pub rules: Vec<MaliceRule>,
    /// The verdict when the provider knows the indicator but no rule holds.
    pub default_verdict: Malice,
    /// The verdict when the provider does not know the indicator.
    pub not_found_verdict: Malice,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MaliceRule {
    pub field: String,
    pub operator: Operator,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub value: Value,
    pub verdict: Malice,
}

/// A comparison in a malice rule or a `not_found_when` condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    Contains,
    In,
    Exists,
    NotExists,
}

/// One value copied from a provider's response into the `extracted` object agents read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldExtraction {
    pub provider_name: String,
    pub indicator_type: IndicatorType,
    /// A dot path (see `normalize::path`) into the last step's response, or
    /// `steps.<name>.response.<path>` into an earlier step's.
    pub source_path: String,
    pub target_key: String,
    pub value_type: ValueType,
    #[serde(default)]
    pub description: String,
}

/// The JSON type an extracted value is coerced to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    String,
    Int,
    Float,
    Bool,
    /// Always an array, even when the path reaches one value.
    List,
    Object,
    /// The value as the provider sent it (the reference system's `any`).
    Any,
}

/// A closed vocabulary written as text in definitions. Parsing ignores ASCII case and accepts
/// a few aliases, because definitions are written by hand and imported from other tools;
/// serializing always writes the canonical spelling.
pub(crate) trait Spelling: Copy + 'static {
    /// What the word names, for error messages ("operator", "verdict").
    const WHAT: &'static str;

    fn all() -> &'static [Self];

    fn as_str(self) -> &'static str;

    fn aliases(self) -> &'static [&'static str] {
        &[]
    }

    fn parse_loose(text: &str) -> Option<Self> {
        let text = text.trim();
        Self::all().iter().copied().find(|word| {
            word.as_str().eq_ignore_ascii_case(text)
                || word.aliases().iter().any(|alias| alias.eq_ignore_ascii_case(text))
        })
    }

    /// The canonical spellings, for "expected one of" messages.
    fn expected() -> String {
        let words: Vec<String> =
            Self::all().iter().map(|word| format!("`{}`", word.as_str())).collect();
        words.join(", ")
    }
}

impl Spelling for IndicatorType {
    const WHAT: &'static str = "indicator type";

    fn all() -> &'static [Self] {
        IndicatorType::ALL
    }

    fn as_str(self) -> &'static str {
        IndicatorType::as_str(self)
    }
}

impl Spelling for Malice {
    const WHAT: &'static str = "verdict";

    fn all() -> &'static [Self] {
        Malice::ALL
    }

    fn as_str(self) -> &'static str {
        Malice::as_str(self)
    }
}

impl Spelling for AuthType {
    const WHAT: &'static str = "auth type";

    fn all() -> &'static [Self] {
        &[AuthType::None, AuthType::ApiKey, AuthType::ApiToken, AuthType::Oauth2ClientCredentials]
    }

    fn as_str(self) -> &'static str {
        match self {
            AuthType::None => "none",
            AuthType::ApiKey => "api_key",
            AuthType::ApiToken => "api_token",
            AuthType::Oauth2ClientCredentials => "oauth2_client_credentials",
        }
    }

    fn aliases(self) -> &'static [&'static str] {
        match self {
            AuthType::None => &["no_auth"],
            AuthType::Oauth2ClientCredentials => &["oauth2"],
            AuthType::ApiKey | AuthType::ApiToken => &[],
        }
    }
}

impl Spelling for HttpMethod {
    const WHAT: &'static str = "HTTP method";

    fn all() -> &'static [Self] {
        &[HttpMethod::Get, HttpMethod::Post, HttpMethod::Put, HttpMethod::Patch, HttpMethod::Delete]
    }

    fn as_str(self) -> &'static str {
        match self {
            HttpMethod::Get => "GET",
            HttpMethod::Post => "POST",
            HttpMethod::Put => "PUT",
            HttpMethod::Patch => "PATCH",
            HttpMethod::Delete => "DELETE",
        }
    }
}

impl Spelling for Operator {
    const WHAT: &'static str = "operator";

    fn all() -> &'static [Self] {
        use Operator::*;
        &[Eq, Ne, Gt, Gte, Lt, Lte, Contains, In, Exists, NotExists]
    }

    fn as_str(self) -> &'static str {
        match self {
            Operator::Eq => "==",
            Operator::Ne => "!=",
            Operator::Gt => ">",
            Operator::Gte => ">=",
            Operator::Lt => "<",
            Operator::Lte => "<=",
            Operator::Contains => "contains",
            Operator::In => "in",
            Operator::Exists => "exists",
            Operator::NotExists => "not_exists",
        }
    }

    fn aliases(self) -> &'static [&'static str] {
        match self {
            Operator::Eq => &["eq", "="],
            Operator::Ne => &["ne", "neq"],
            Operator::Gt => &["gt"],
            Operator::Gte => &["gte", "ge"],
            Operator::Lt => &["lt"],
            Operator::Lte => &["lte", "le"],
            Operator::NotExists => &["not exists", "missing"],
            Operator::Contains | Operator::In | Operator::Exists => &[],
        }
    }
}

impl Spelling for ValueType {
    const WHAT: &'static str = "value type";

    fn all() -> &'static [Self] {
        use ValueType::*;
        &[String, Int, Float, Bool, List, Object, Any]
    }

    fn as_str(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Int => "int",
            ValueType::Float => "float",
            ValueType::Bool => "bool",
            ValueType::List => "list",
            ValueType::Object => "object",
            ValueType::Any => "any",
        }
    }

    fn aliases(self) -> &'static [&'static str] {
        match self {
            ValueType::String => &["str", "text"],
            ValueType::Int => &["integer", "long"],
            ValueType::Float => &["number", "double", "decimal"],
            ValueType::Bool => &["boolean"],
            ValueType::List => &["array"],
            ValueType::Object => &["dict", "map", "json"],
            ValueType::Any => &[],
        }
    }
}

/// Serde and `Display` for this module's own vocabularies, through their [`Spelling`].
macro_rules! spelled {
    ($($name:ident),+) => {$(
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                $name::parse_loose(&text).ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "`{text}` is not a known {}; expected one of {}",
                        $name::WHAT,
                        $name::expected()
                    ))
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )+};
}

spelled!(AuthType, HttpMethod, Operator, ValueType);
