//! Whole lookups against local mock servers (wiremock on 127.0.0.1) that answer with the
//! recorded provider responses in `shared/fixtures/providers/responses/`: every built-in
//! provider end to end ([`builtins`]), and the engine's handling of errors, timeouts,
//! encoding, tokens and secrets ([`engine`]).

mod builtins;
mod engine;

use serde_json::Value;
use wiremock::{MockServer, ResponseTemplate};

use super::{AuthValues, FieldExtraction, Lookup, ProviderSpec, builtin, extract, lookup, verdict};
use crate::alert::{IndicatorType, Malice};
use crate::indicator::Indicator;
use crate::secret::Secret;

const RESPONSES: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/providers/responses/");

/// The text of a recorded response.
fn fixture(name: &str) -> String {
    let path = format!("{RESPONSES}{name}");
    std::fs::read_to_string(&path).unwrap_or_else(|error| panic!("reading {path}: {error}"))
}

fn fixture_json(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

/// An answer with a recorded body, as the fixtures README prescribes.
fn respond(status: u16, name: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(fixture(name), "application/json")
}

fn respond_json(status: u16, body: &Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_raw(body.to_string(), "application/json")
}

/// A built-in provider and its extractions, with `base_url` pointed at `server` plus `path`.
fn builtin_at(name: &str, server: &MockServer, path: &str) -> (ProviderSpec, Vec<FieldExtraction>) {
    let (mut spec, extractions) =
        builtin().into_iter().find(|(spec, _)| spec.provider_name == name).unwrap();
    spec.base_url = Some(format!("{}{path}", server.uri()));
    (spec, extractions)
}

fn auth(fields: &[(&str, &str)]) -> AuthValues {
    fields.iter().map(|(name, value)| (*name, Secret::new(*value))).collect()
}

fn indicator(kind: IndicatorType, value: &str) -> Indicator {
    Indicator { kind, value: value.to_owned() }
}

/// What the enrichment stage stores for one provider and indicator.
#[derive(Debug, PartialEq)]
struct Enriched {
    verdict: Malice,
    /// `null` when the provider does not know the indicator.
    extracted: Value,
}

async fn enrich(
    (spec, extractions): &(ProviderSpec, Vec<FieldExtraction>),
    auth: &AuthValues,
    indicator: &Indicator,
) -> Enriched {
    let lookup = lookup(&local_http(), spec, auth, indicator).await.unwrap();
    let extracted = match &lookup {
        Lookup::Found(found) => Value::Object(extract(extractions, indicator.kind, found)),
        Lookup::NotFound => Value::Null,
    };
    Enriched { verdict: verdict(&spec.malice_rules, &lookup), extracted }
}

/// A client that may reach the local mock servers the tests start (and nothing private else).
pub(super) fn local_http() -> crate::outbound::Outbound {
    let policy = crate::outbound::OutboundPolicy::parse("127.0.0.0/8").expect("a valid allow list");
    crate::outbound::Outbound::new(policy, "alertgraph-tests")
}
