//! Enrichment providers as data (SPEC §3): the importable definition format (`spec.rs`,
//! checked by `validate.rs`), its templates (`template.rs`), the HTTP engine that runs a lookup
//! (`http.rs`, with credentials in `auth.rs`), and the two readings of an answer: the typed
//! `extracted` fields ([`extract()`]) and the verdict ([`verdict()`]).
//!
//! Everything here works on one provider and one indicator. Choosing providers, caching
//! results, sharing rate limits between workers and retrying belong to the enrichment stage
//! that calls [`lookup`]; this module tells it whether an error is worth a retry.
//!
//! The built-in definitions live as JSON in `builtin/`, in the same format users import, so
//! that they are edited, reviewed and tested as data too.

mod auth;
mod extract;
mod http;
pub mod registry;
mod spec;
mod template;
mod validate;
mod verdict;

#[cfg(test)]
mod tests;

pub use auth::AuthValues;
pub use extract::extract;
pub use http::{
    Found, Lookup, LookupError, StepResponse, StepTrace, TracedLookup, lookup, lookup_traced,
};
pub use spec::{
    AuthType, Condition, FieldExtraction, HttpConfig, HttpMethod, MaliceRule, MaliceRules,
    Operator, ProviderSpec, Step, TokenConfig, ValueType,
};
pub use template::{TemplateError, TemplateProblem};
pub use validate::{InvalidProvider, Problem, validate_extractions};
pub use verdict::{found_verdict, verdict};

use serde::Deserialize;

/// The built-in definitions, each a provider with its field extractions.
const BUILTIN: &[(&str, &str)] = &[
    ("virustotal", include_str!("builtin/virustotal.json")),
    ("abuseipdb", include_str!("builtin/abuseipdb.json")),
    ("greynoise", include_str!("builtin/greynoise.json")),
    ("urlhaus", include_str!("builtin/urlhaus.json")),
    ("okta", include_str!("builtin/okta.json")),
    ("entra", include_str!("builtin/entra.json")),
];

/// A built-in definition file: the provider in the importable format and its extractions.
#[derive(Deserialize)]
struct BuiltinFile {
    provider: serde_json::Value,
    field_extractions: serde_json::Value,
}

/// The built-in providers (SPEC §3), seeded into every installation.
///
/// # Panics
/// If a file in `builtin/` is not a valid definition. They are compiled in and a test loads
/// every one, so this cannot happen in a tested build.
pub fn builtin() -> Vec<(ProviderSpec, Vec<FieldExtraction>)> {
    BUILTIN
        .iter()
        .map(|(name, json)| {
            load_builtin(json)
                .unwrap_or_else(|problem| panic!("built-in provider {name}: {problem}"))
        })
        .collect()
}

fn load_builtin(json: &str) -> Result<(ProviderSpec, Vec<FieldExtraction>), String> {
    let file: BuiltinFile = serde_json::from_str(json).map_err(|error| error.to_string())?;
    let provider = ProviderSpec::from_json(&file.provider).map_err(|error| error.to_string())?;
    let extractions = FieldExtraction::list_from_json(&file.field_extractions, &provider)
        .map_err(|error| error.to_string())?;
    Ok((provider, extractions))
}
