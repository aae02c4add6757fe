//! Importing and checking provider definitions before they are stored, so that a broken one is
//! refused by the API with every problem listed at once, each with the field it is in, rather
//! than failing later in a worker, one lookup at a time.
//!
//! Import runs in three passes over the uploaded JSON: words from closed vocabularies
//! (operators, verdicts, indicator types, …) are read loosely and rewritten canonically, and a
//! misspelled one is reported and replaced by a placeholder so the next passes still run; serde
//! then reads the structure; finally [`ProviderSpec::validate`] checks what types cannot say:
//! templates, step order, statuses, limits and rule values.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

use super::spec::{
    AuthType, FieldExtraction, HttpMethod, Operator, ProviderSpec, Spelling, Step, ValueType,
};
use super::template::{ACCESS_TOKEN, Variable, is_identifier, split_step_path, variables};
use crate::alert::{IndicatorType, Malice};

/// The longest a step may wait: past this, a worker slot is better spent elsewhere.
const MAX_TIMEOUT_SECONDS: u64 = 300;

/// One thing wrong with a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where, as a path: `http_config.steps[1].url`; empty for the document as a whole.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field.as_str() {
            "" => f.write_str(&self.message),
            field => write!(f, "{field}: {}", self.message),
        }
    }
}

/// A definition that cannot be used, with everything wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InvalidProvider {
    pub problems: Vec<Problem>,
}

impl fmt::Display for InvalidProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let problems: Vec<String> = self.problems.iter().map(ToString::to_string).collect();
        write!(f, "invalid provider definition: {}", problems.join("; "))
    }
}

impl ProviderSpec {
    /// Reads and checks a definition in the importable JSON format.
    ///
    /// # Errors
    /// Every problem found, when there is at least one.
    pub fn from_json(json: &Value) -> Result<ProviderSpec, InvalidProvider> {
        let mut json = json.clone();
        let mut problems = Vec::new();
        canonicalize_provider(&mut json, &mut problems);
        let spec = match serde_json::from_value::<ProviderSpec>(json) {
            Ok(spec) => spec,
            Err(error) => {
                problems.push(Problem { field: String::new(), message: error.to_string() });
                return Err(InvalidProvider { problems });
            }
        };
        problems.extend(spec.check());
        finish(spec, problems)
    }

    /// Checks a definition built or edited in code.
    ///
    /// # Errors
    /// Every problem found, when there is at least one.
    pub fn validate(&self) -> Result<(), InvalidProvider> {
        finish((), self.check())
    }

    /// The credential fields the definition's templates use (`api_key`, `client_secret`, …),
    /// without the fetched `access_token`. A provider is active only once all are configured.
    pub fn required_credentials(&self) -> BTreeSet<String> {
        let mut fields = BTreeSet::new();
        for (_, text, _) in self.templates() {
            for variable in variables(text).unwrap_or_default() {
                if let Variable::Auth(field) = variable
                    && !(field == ACCESS_TOKEN && self.token.is_some())
                {
                    fields.insert(field.to_owned());
                }
            }
        }
        fields
    }

    fn check(&self) -> Vec<Problem> {
        let mut checker = Checker { spec: self, problems: Vec::new() };
        checker.check_identity();
        checker.check_auth();
        checker.check_steps();
        checker.check_templates();
        checker.check_rules();
        checker.check_caching();
        checker.problems
    }

    /// Every template in the definition, with its place and what it may refer to.
    fn templates(&self) -> Vec<(String, &str, Place)> {
        let mut templates = Vec::new();
        if let Some(base_url) = &self.base_url {
            templates.push(("base_url".to_owned(), base_url.as_str(), Place::BaseUrl));
        }
        if let Some(token) = &self.token {
            templates.push(("token.url".to_owned(), token.url.as_str(), Place::Token));
            for (name, text) in token.headers.iter() {
                templates.push((format!("token.headers.{name}"), text, Place::Token));
            }
            for (name, text) in token.form_body.iter() {
                templates.push((format!("token.form_body.{name}"), text, Place::Token));
            }
        }
        for (index, step) in self.http_config.steps.iter().enumerate() {
            step_templates(index, step, &mut templates);
        }
        templates
    }
}

impl FieldExtraction {
    /// Reads and checks a list of field extraction rows for `provider`.
    ///
    /// # Errors
    /// Every problem found, when there is at least one.
    pub fn list_from_json(
        json: &Value,
        provider: &ProviderSpec,
    ) -> Result<Vec<FieldExtraction>, InvalidProvider> {
        let mut json = json.clone();
        let mut problems = Vec::new();
        if let Value::Array(rows) = &mut json {
            for (index, row) in rows.iter_mut().enumerate() {
                canonical_at::<IndicatorType>(
                    row,
                    "/indicator_type",
                    &format!("[{index}].indicator_type"),
                    &mut problems,
                );
                canonical_at::<ValueType>(
                    row,
                    "/value_type",
                    &format!("[{index}].value_type"),
                    &mut problems,
                );
            }
        }
        let extractions = match serde_json::from_value::<Vec<FieldExtraction>>(json) {
            Ok(extractions) => extractions,
            Err(error) => {
                problems.push(Problem { field: String::new(), message: error.to_string() });
                return Err(InvalidProvider { problems });
            }
        };
        problems.extend(check_extractions(provider, &extractions));
        finish(extractions, problems)
    }
}

/// Checks field extraction rows against the provider they belong to.
///
/// # Errors
/// Every problem found, when there is at least one.
pub fn validate_extractions(
    provider: &ProviderSpec,
    extractions: &[FieldExtraction],
) -> Result<(), InvalidProvider> {
    finish((), check_extractions(provider, extractions))
}

fn finish<T>(value: T, problems: Vec<Problem>) -> Result<T, InvalidProvider> {
    if problems.is_empty() { Ok(value) } else { Err(InvalidProvider { problems }) }
}

/// Where a template is, which decides the variables it may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Place {
    BaseUrl,
    Token,
    /// The step at this index in `http_config.steps`.
    Step(usize),
}

fn step_templates<'s>(index: usize, step: &'s Step, templates: &mut Vec<(String, &'s str, Place)>) {
    let at = format!("http_config.steps[{index}]");
    let place = Place::Step(index);
    templates.push((format!("{at}.url"), &step.url, place));
    for (kind, text) in &step.url_by_type {
        templates.push((format!("{at}.url_by_type.{kind}"), text, place));
    }
    for (part, fields) in
        [("headers", &step.headers), ("query", &step.query), ("form_body", &step.form_body)]
    {
        for (name, text) in fields {
            templates.push((format!("{at}.{part}.{name}"), text, place));
        }
    }
    if let Some(body) = &step.json_body {
        json_templates(&format!("{at}.json_body"), body, place, templates);
    }
}

fn json_templates<'s>(
    at: &str,
    json: &'s Value,
    place: Place,
    templates: &mut Vec<(String, &'s str, Place)>,
) {
    match json {
        Value::String(text) => templates.push((at.to_owned(), text, place)),
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                json_templates(&format!("{at}[{index}]"), item, place, templates);
            }
        }
        Value::Object(fields) => {
            for (key, field) in fields {
                json_templates(&format!("{at}.{key}"), field, place, templates);
            }
        }
        _ => {}
    }
}

/// Collects the problems of one definition.
struct Checker<'s> {
    spec: &'s ProviderSpec,
    problems: Vec<Problem>,
}

/// What the database accepts as a provider name (`enrichment_provider_name_check`).
fn is_provider_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|first| first.is_ascii_lowercase())
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

impl Checker<'_> {
    fn report(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem { field: field.into(), message: message.into() });
    }

    fn check_identity(&mut self) {
        let spec = self.spec;
        if !is_provider_name(&spec.provider_name) {
            self.report(
                "provider_name",
                "must start with a lowercase letter and hold only lowercase letters, digits and \
                 `_` (it names the `<PROVIDER>_<FIELD>` environment variables), e.g. `virustotal`",
            );
        }
        if spec.display_name.trim().is_empty() {
            self.report("display_name", "must not be empty");
        }
        if spec.supported_indicator_types.is_empty() {
            self.report("supported_indicator_types", "must name at least one indicator type");
        }
        let distinct: BTreeSet<_> = spec.supported_indicator_types.iter().collect();
        if distinct.len() < spec.supported_indicator_types.len() {
            self.report("supported_indicator_types", "lists a type more than once");
        }
        if let Some(base_url) = &spec.base_url
            && !looks_like_url(base_url)
        {
            self.report(
                "base_url",
                "must start with http:// or https:// (or a `{{…}}` that renders one)",
            );
        }
    }

    fn check_auth(&mut self) {
        let Some(token) = &self.spec.token else {
            return;
        };
        if self.spec.auth_type != AuthType::Oauth2ClientCredentials {
            self.report("token", "is only used with auth_type `oauth2_client_credentials`");
        }
        if !looks_like_url(&token.url) {
            self.report(
                "token.url",
                "must start with http:// or https:// (or a `{{…}}` that renders one)",
            );
        }
        if token.form_body.is_empty() {
            let message =
                "must hold the client-credentials form: grant_type, client_id, client_secret";
            self.report("token.form_body", message);
        }
        self.check_timeout("token.timeout_seconds", token.timeout_seconds);
    }

    fn check_steps(&mut self) {
        let steps = &self.spec.http_config.steps;
        if steps.is_empty() {
            self.report("http_config.steps", "must hold at least one step");
        }
        let mut names = BTreeSet::new();
        for (index, step) in steps.iter().enumerate() {
            let at = format!("http_config.steps[{index}]");
            if !is_identifier(&step.name) {
                self.report(
                    format!("{at}.name"),
                    "must be letters, digits, `_` or `-`; templates refer to it",
                );
            } else if !names.insert(step.name.as_str()) {
                self.report(
                    format!("{at}.name"),
                    format!("another step is already named `{}`", step.name),
                );
            }
            self.check_step(&at, step);
        }
        for &kind in &self.spec.supported_indicator_types {
            if !steps.iter().any(|step| step.applies_to(kind) && !step.optional) {
                self.report(
                    "http_config.steps",
                    format!("no step that is not optional runs for indicator type {kind}"),
                );
            }
        }
    }

    fn check_step(&mut self, at: &str, step: &Step) {
        for kind in &step.indicator_types {
            if !self.spec.supports(*kind) {
                self.report(
                    format!("{at}.indicator_types"),
                    format!("{kind} is not a supported indicator type"),
                );
            }
        }
        for kind in step.url_by_type.keys() {
            if !self.spec.supports(*kind) || !step.applies_to(*kind) {
                self.report(
                    format!("{at}.url_by_type.{kind}"),
                    format!("the step does not run for {kind}"),
                );
            }
        }
        if !looks_like_url(&step.url) {
            self.report(
                format!("{at}.url"),
                "must start with http:// or https:// or a `{{…}}` such as `{{base_url}}`",
            );
        }
        if step.json_body.is_some() && !step.form_body.is_empty() {
            self.report(format!("{at}.form_body"), "a step sends json_body or form_body, not both");
        }
        if step.method == HttpMethod::Get
            && (step.json_body.is_some() || !step.form_body.is_empty())
        {
            self.report(
                format!("{at}.method"),
                "a GET request has no body; use POST to send json_body or form_body",
            );
        }
        self.check_timeout(&format!("{at}.timeout_seconds"), step.timeout_seconds);
        self.check_statuses(&format!("{at}.expected_status"), &step.expected_status);
        self.check_statuses(&format!("{at}.not_found_status"), &step.not_found_status);
        if let Some(status) =
            step.not_found_status.iter().find(|status| step.expected_status.contains(status))
        {
            self.report(
                format!("{at}.not_found_status"),
                format!("{status} is also an expected status"),
            );
        }
        if let Some(condition) = &step.not_found_when {
            let at = format!("{at}.not_found_when");
            self.check_condition(&at, condition.operator, &condition.value);
            if split_step_path(&condition.field).is_some() {
                self.report(
                    format!("{at}.field"),
                    "is read from this step's own response; it cannot name another step",
                );
            }
        }
    }

    fn check_timeout(&mut self, at: &str, seconds: u64) {
        if !(1..=MAX_TIMEOUT_SECONDS).contains(&seconds) {
            self.report(at, format!("must be between 1 and {MAX_TIMEOUT_SECONDS} seconds"));
        }
    }

    fn check_statuses(&mut self, at: &str, statuses: &[u16]) {
        for status in statuses {
            if !(100..=599).contains(status) {
                self.report(at, format!("{status} is not an HTTP status code"));
            }
        }
    }

    fn check_templates(&mut self) {
        for (at, text, place) in self.spec.templates() {
            match variables(text) {
                Ok(variables) => {
                    for variable in variables {
                        if let Some(message) = self.misplaced(&variable, place) {
                            self.report(at.clone(), message);
                        }
                    }
                }
                Err(problem) => self.report(at, problem.to_string()),
            }
        }
    }

    /// Why `variable` cannot be used at `place`, if it cannot.
    fn misplaced(&self, variable: &Variable<'_>, place: Place) -> Option<String> {
        match (variable, place) {
            (Variable::IndicatorValue | Variable::IndicatorType, Place::Step(_)) => None,
            (Variable::IndicatorValue | Variable::IndicatorType, _) => {
                Some("`indicator.*` is only known in steps, not in base_url or token".into())
            }
            (Variable::BaseUrl, Place::BaseUrl) => Some("base_url cannot refer to itself".into()),
            (Variable::BaseUrl, _) if self.spec.base_url.is_none() => {
                Some("uses `{{base_url}}` but the provider has no base_url".into())
            }
            (Variable::BaseUrl, _) => None,
            (Variable::Auth(ACCESS_TOKEN), Place::BaseUrl | Place::Token) => {
                Some("`auth.access_token` is not known until the token has been fetched".into())
            }
            (Variable::Auth(_), _) => None,
            (Variable::Step { .. }, Place::BaseUrl | Place::Token) => {
                Some("`steps.*` is only known in steps, not in base_url or token".into())
            }
            (Variable::Step { name, .. }, Place::Step(index)) => self.misplaced_step(name, index),
        }
    }

    /// Why the step at `from` cannot read step `name`'s response, if it cannot.
    fn misplaced_step(&self, name: &str, from: usize) -> Option<String> {
        let steps = &self.spec.http_config.steps;
        let Some(target) = steps.iter().position(|step| step.name == name) else {
            return Some(format!("refers to step `{name}`, which does not exist"));
        };
        if target >= from {
            return Some(format!("refers to step `{name}`, which does not run before this step"));
        }
        let (source, referenced) = (&steps[from], &steps[target]);
        if referenced.optional && !source.optional {
            return Some(format!(
                "refers to optional step `{name}`; make this step optional too, \
                 or it fails whenever `{name}` is skipped"
            ));
        }
        let uncovered: Vec<&str> = self
            .spec
            .supported_indicator_types
            .iter()
            .filter(|kind| source.applies_to(**kind) && !referenced.applies_to(**kind))
            .map(|kind| kind.as_str())
            .collect();
        (!uncovered.is_empty()).then(|| {
            format!("refers to step `{name}`, which does not run for {}", uncovered.join(", "))
        })
    }

    fn check_rules(&mut self) {
        for (index, rule) in self.spec.malice_rules.rules.iter().enumerate() {
            let at = format!("malice_rules.rules[{index}]");
            self.check_response_path(&format!("{at}.field"), &rule.field);
            self.check_condition(&at, rule.operator, &rule.value);
        }
    }

    /// A path read from a response: not empty, and any step it names exists.
    fn check_response_path(&mut self, at: &str, path: &str) {
        if path.trim().is_empty() {
            self.report(at, "must not be empty");
            return;
        }
        let Some((name, _)) = split_step_path(path) else {
            return;
        };
        if !self.spec.http_config.steps.iter().any(|step| step.name == name) {
            self.report(at, format!("refers to step `{name}`, which does not exist"));
        }
    }

    fn check_condition(&mut self, at: &str, operator: Operator, value: &Value) {
        let problem = match (operator, value) {
            (Operator::Exists | Operator::NotExists, _) => None,
            (Operator::In, Value::Array(_)) => None,
            (Operator::In, _) => Some("`in` needs a list of values"),
            (_, Value::Null) => {
                Some("needs a value; use `exists` or `not_exists` to test for presence")
            }
            (
                Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte,
                Value::Number(_) | Value::String(_),
            ) => None,
            (Operator::Gt | Operator::Gte | Operator::Lt | Operator::Lte, _) => {
                Some("a comparison needs a number (or text, such as a date)")
            }
            (_, Value::Array(_) | Value::Object(_)) => {
                Some("needs a single value, not a list or an object")
            }
            _ => None,
        };
        if let Some(message) = problem {
            self.report(format!("{at}.value"), message);
        }
    }

    fn check_caching(&mut self) {
        for kind in self.spec.cache_ttl_by_type.keys() {
            if !self.spec.supports(*kind) {
                self.report(
                    format!("cache_ttl_by_type.{kind}"),
                    format!("{kind} is not a supported indicator type"),
                );
            }
        }
        if self.spec.concurrency_limit == Some(0) {
            self.report("concurrency_limit", "must be at least 1");
        }
        if self.spec.rate_limit_per_minute == Some(0) {
            self.report("rate_limit_per_minute", "must be at least 1; leave it out for no limit");
        }
    }
}

/// Whether a URL template can render an absolute http(s) URL.
fn looks_like_url(template: &str) -> bool {
    template.starts_with("https://")
        || template.starts_with("http://")
        || template.starts_with("{{")
}

fn check_extractions(provider: &ProviderSpec, extractions: &[FieldExtraction]) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut keys = BTreeSet::new();
    let mut report = |field: String, message: String| problems.push(Problem { field, message });
    for (index, extraction) in extractions.iter().enumerate() {
        let at = format!("[{index}]");
        if extraction.provider_name != provider.provider_name {
            report(format!("{at}.provider_name"), format!("must be `{}`", provider.provider_name));
        }
        if !provider.supports(extraction.indicator_type) {
            let message = format!(
                "{} is not supported by {}",
                extraction.indicator_type, provider.provider_name
            );
            report(format!("{at}.indicator_type"), message);
        }
        if extraction.source_path.trim().is_empty() {
            report(format!("{at}.source_path"), "must not be empty".into());
        } else if let Some((name, _)) = split_step_path(&extraction.source_path)
            && !provider.http_config.steps.iter().any(|step| step.name == name)
        {
            report(
                format!("{at}.source_path"),
                format!("refers to step `{name}`, which does not exist"),
            );
        }
        if extraction.target_key.trim().is_empty() {
            report(format!("{at}.target_key"), "must not be empty".into());
        } else if !keys.insert((extraction.indicator_type, extraction.target_key.as_str())) {
            let message = format!(
                "`{}` is already extracted for {}",
                extraction.target_key, extraction.indicator_type
            );
            report(format!("{at}.target_key"), message);
        }
    }
    problems
}

/// Rewrites every vocabulary word of a provider definition in its canonical spelling.
fn canonicalize_provider(json: &mut Value, problems: &mut Vec<Problem>) {
    canonical_at::<AuthType>(json, "/auth_type", "auth_type", problems);
    canonical_each::<IndicatorType>(
        json,
        "/supported_indicator_types",
        "supported_indicator_types",
        problems,
    );
    canonical_keys::<IndicatorType>(json, "/cache_ttl_by_type", "cache_ttl_by_type", problems);
    canonical_keys::<IndicatorType>(
        json,
        "/http_config/url_templates_by_type",
        "http_config.url_templates_by_type",
        problems,
    );
    let step_count =
        json.pointer("/http_config/steps").and_then(Value::as_array).map_or(0, Vec::len);
    for index in 0..step_count {
        let (pointer, at) =
            (format!("/http_config/steps/{index}"), format!("http_config.steps[{index}]"));
        canonical_at::<HttpMethod>(
            json,
            &format!("{pointer}/method"),
            &format!("{at}.method"),
            problems,
        );
        canonical_each::<IndicatorType>(
            json,
            &format!("{pointer}/indicator_types"),
            &format!("{at}.indicator_types"),
            problems,
        );
        canonical_keys::<IndicatorType>(
            json,
            &format!("{pointer}/url_by_type"),
            &format!("{at}.url_by_type"),
            problems,
        );
        canonical_at::<Operator>(
            json,
            &format!("{pointer}/not_found_when/operator"),
            &format!("{at}.not_found_when.operator"),
            problems,
        );
    }
    let rule_count =
        json.pointer("/malice_rules/rules").and_then(Value::as_array).map_or(0, Vec::len);
    for index in 0..rule_count {
        let (pointer, at) =
            (format!("/malice_rules/rules/{index}"), format!("malice_rules.rules[{index}]"));
        canonical_at::<Operator>(
            json,
            &format!("{pointer}/operator"),
            &format!("{at}.operator"),
            problems,
        );
        canonical_at::<Malice>(
            json,
            &format!("{pointer}/verdict"),
            &format!("{at}.verdict"),
            problems,
        );
    }
    canonical_at::<Malice>(
        json,
        "/malice_rules/default_verdict",
        "malice_rules.default_verdict",
        problems,
    );
    canonical_at::<Malice>(
        json,
        "/malice_rules/not_found_verdict",
        "malice_rules.not_found_verdict",
        problems,
    );
}

/// Rewrites the word at `pointer`, if there is one there. A word that is not in the vocabulary
/// is reported and replaced by the first word that is, so that reading can go on.
fn canonical_at<T: Spelling>(
    json: &mut Value,
    pointer: &str,
    field: &str,
    problems: &mut Vec<Problem>,
) {
    if let Some(slot) = json.pointer_mut(pointer) {
        canonical::<T>(slot, field, problems);
    }
}

fn canonical_each<T: Spelling>(
    json: &mut Value,
    pointer: &str,
    field: &str,
    problems: &mut Vec<Problem>,
) {
    if let Some(Value::Array(items)) = json.pointer_mut(pointer) {
        for (index, item) in items.iter_mut().enumerate() {
            canonical::<T>(item, &format!("{field}[{index}]"), problems);
        }
    }
}

/// Rewrites the keys of the object at `pointer`; an unknown key is reported and dropped.
fn canonical_keys<T: Spelling>(
    json: &mut Value,
    pointer: &str,
    field: &str,
    problems: &mut Vec<Problem>,
) {
    let Some(Value::Object(entries)) = json.pointer_mut(pointer) else {
        return;
    };
    for (key, value) in std::mem::take(entries) {
        match T::parse_loose(&key) {
            Some(word) => {
                entries.insert(word.as_str().to_owned(), value);
            }
            None => {
                problems.push(unknown_word::<T>(&format!("{field}.{key}"), &format!("`{key}`")))
            }
        }
    }
}

fn canonical<T: Spelling>(slot: &mut Value, field: &str, problems: &mut Vec<Problem>) {
    let word = slot.as_str().and_then(T::parse_loose);
    let Some(replacement) = word.or_else(|| T::all().first().copied()) else {
        return;
    };
    if word.is_none() {
        let written = match &*slot {
            Value::String(text) => format!("`{text}`"),
            other => other.to_string(),
        };
        problems.push(unknown_word::<T>(field, &written));
    }
    *slot = Value::String(replacement.as_str().to_owned());
}

fn unknown_word<T: Spelling>(field: &str, written: &str) -> Problem {
    let message =
        format!("{written} is not a known {}; expected one of {}", T::WHAT, T::expected());
    Problem { field: field.to_owned(), message }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::provider::builtin;

    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/providers/");

    fn shared_fixture(name: &str) -> Value {
        let text = std::fs::read_to_string(format!("{FIXTURES}{name}")).unwrap();
        serde_json::from_str(&text).unwrap()
    }

    /// A small valid definition to break in tests.
    fn definition() -> Value {
        json!({
            "provider_name": "example", "display_name": "Example", "description": "",
            "supported_indicator_types": ["ip"], "auth_type": "api_key",
            "base_url": "https://api.example.com",
            "http_config": {"steps": [{
                "name": "lookup", "method": "GET", "url": "{{base_url}}/ip/{{indicator.value}}",
                "headers": {"key": "{{auth.api_key}}"}, "timeout_seconds": 30,
                "expected_status": [200], "not_found_status": [404]
            }]},
            "malice_rules": {
                "rules": [
                    {"field": "score", "operator": ">=", "value": 75, "verdict": "Malicious"}
                ],
                "default_verdict": "Benign", "not_found_verdict": "Pending"
            },
            "default_cache_ttl_seconds": 3600
        })
    }

    /// A field extraction row as JSON.
    fn row(
        provider: &str,
        kind: &str,
        source_path: &str,
        target_key: &str,
        value_type: &str,
    ) -> Value {
        json!({
            "provider_name": provider, "indicator_type": kind, "source_path": source_path,
            "target_key": target_key, "value_type": value_type
        })
    }

    fn fields(error: &InvalidProvider) -> Vec<&str> {
        error.problems.iter().map(|problem| problem.field.as_str()).collect()
    }

    #[test]
    fn a_provider_name_is_refused_unless_the_database_and_environment_variables_accept_it() {
        for name in ["demo-intel", "VirusTotal", "1intel", "", "intel feed"] {
            let mut json = definition();
            json["provider_name"] = json!(name);
            let error = ProviderSpec::from_json(&json).expect_err(name);
            assert_eq!(fields(&error), ["provider_name"], "{name:?}");
        }
        let mut json = definition();
        json["provider_name"] = json!("intel_2");
        ProviderSpec::from_json(&json).expect("a lowercase name with digits and _ is accepted");
    }

    #[test]
    fn the_greynoise_fixture_imports_unchanged_and_round_trips() {
        let json = shared_fixture("greynoise.provider.json");

        let spec = ProviderSpec::from_json(&json).unwrap();

        assert_eq!(spec.provider_name, "greynoise");
        assert_eq!(spec.http_config.steps[0].not_found_status, [404]);
        assert_eq!(spec.malice_rules.rules[1].value, json!(true));
        assert_eq!(serde_json::to_value(&spec).unwrap(), json);
    }

    #[test]
    fn the_greynoise_field_extractions_import_unchanged_and_round_trip() {
        let spec = ProviderSpec::from_json(&shared_fixture("greynoise.provider.json")).unwrap();
        let json = shared_fixture("greynoise.field_extractions.json");

        let extractions = FieldExtraction::list_from_json(&json, &spec).unwrap();

        assert_eq!(extractions.len(), 8);
        assert_eq!(extractions[1].value_type, ValueType::Bool);
        assert_eq!(serde_json::to_value(&extractions).unwrap(), json);
    }

    #[test]
    fn every_builtin_provider_validates_round_trips_and_extracts_for_each_of_its_types() {
        let providers = builtin();

        let names: Vec<&str> =
            providers.iter().map(|(spec, _)| spec.provider_name.as_str()).collect();
        assert_eq!(names, ["virustotal", "abuseipdb", "greynoise", "urlhaus", "okta", "entra"]);
        for (spec, extractions) in &providers {
            assert_eq!(spec.validate(), Ok(()));
            assert_eq!(validate_extractions(spec, extractions), Ok(()));
            let exported = serde_json::to_value(spec).unwrap();
            assert_eq!(ProviderSpec::from_json(&exported).as_ref(), Ok(spec));
            for kind in &spec.supported_indicator_types {
                let count = extractions.iter().filter(|row| row.indicator_type == *kind).count();
                assert!(count >= 5, "{} extracts {count} fields for {kind}", spec.provider_name);
            }
        }
    }

    #[test]
    fn builtin_cache_ttls_follow_the_indicator_type() {
        let expected = |kind: IndicatorType| match kind {
            IndicatorType::Ip => Duration::from_secs(3600),
            IndicatorType::Domain => Duration::from_secs(6 * 3600),
            IndicatorType::HashMd5 | IndicatorType::HashSha1 | IndicatorType::HashSha256 => {
                Duration::from_secs(24 * 3600)
            }
            IndicatorType::Url => Duration::from_secs(30 * 60),
            IndicatorType::Account | IndicatorType::Email => Duration::from_secs(15 * 60),
        };
        for (spec, _) in builtin() {
            for &kind in &spec.supported_indicator_types {
                assert_eq!(spec.cache_ttl(kind), expected(kind), "{} {kind}", spec.provider_name);
            }
        }
    }

    #[test]
    fn required_credentials_name_the_fields_each_builtin_provider_needs() {
        let required: Vec<(String, Vec<String>)> = builtin()
            .into_iter()
            .map(|(spec, _)| {
                (spec.provider_name.clone(), spec.required_credentials().into_iter().collect())
            })
            .collect();
        let expected = [
            ("virustotal", vec!["api_key"]),
            ("abuseipdb", vec!["api_key"]),
            ("greynoise", vec!["api_key"]),
            ("urlhaus", vec!["api_key"]),
            ("okta", vec!["api_token", "domain"]),
            ("entra", vec!["client_id", "client_secret", "tenant_id"]),
        ];
        let expected: Vec<(String, Vec<String>)> = expected
            .into_iter()
            .map(|(name, fields)| (name.to_owned(), fields.into_iter().map(String::from).collect()))
            .collect();
        assert_eq!(required, expected);
    }

    #[test]
    fn aliases_and_any_case_are_accepted_and_written_canonically() {
        let mut json = definition();
        json["auth_type"] = json!("API_KEY");
        json["supported_indicator_types"] = json!(["IP"]);
        json["cache_ttl_by_type"] = json!({"Ip": 60});
        json["http_config"]["steps"][0]["method"] = json!("get");
        json["malice_rules"]["rules"][0]["operator"] = json!("gte");
        json["malice_rules"]["rules"][0]["verdict"] = json!("malicious");
        json["malice_rules"]["default_verdict"] = json!("BENIGN");

        let spec = ProviderSpec::from_json(&json).unwrap();

        assert_eq!(
            spec,
            ProviderSpec::from_json(&definition())
                .map(|mut spec| {
                    spec.cache_ttl_by_type.insert(IndicatorType::Ip, 60);
                    spec
                })
                .unwrap()
        );
        let exported = serde_json::to_value(&spec).unwrap();
        assert_eq!(exported["malice_rules"]["rules"][0]["operator"], ">=");
        assert_eq!(exported["malice_rules"]["rules"][0]["verdict"], "Malicious");
        assert_eq!(exported["http_config"]["steps"][0]["method"], "GET");
    }

    #[test]
    fn value_type_spellings_from_other_tools_are_accepted() {
        let spec = ProviderSpec::from_json(&definition()).unwrap();
        let rows = json!([
            row("example", "ip", "a", "a", "boolean"),
            row("example", "ip", "b", "b", "integer"),
            row("example", "ip", "c", "c", "dict"),
            row("example", "ip", "d", "d", "array"),
        ]);

        let types: Vec<ValueType> = FieldExtraction::list_from_json(&rows, &spec)
            .unwrap()
            .iter()
            .map(|row| row.value_type)
            .collect();

        assert_eq!(types, [ValueType::Bool, ValueType::Int, ValueType::Object, ValueType::List]);
    }

    #[test]
    fn every_problem_is_reported_at_once_with_the_field_it_is_in() {
        let mut json = definition();
        let second_step = json!({
            "name": "details", "method": "GET", "url": "{{base_url}}/d/{{steps.later.response.id}}",
            "headers": {"key": "{{auth.api_key}}", "x-debug": "{{indicator.valu}}"},
            "expected_status": [200, 99], "not_found_status": [404, 200]
        });
        let third_step = json!({"name": "later", "method": "GET", "url": "{{base_url}}/l"});
        json["http_config"]["steps"].as_array_mut().unwrap().extend([second_step, third_step]);
        json["http_config"]["steps"][0]["url"] =
            json!("{{base_url}}/ip/{{indicator.value | upper}}");
        json["malice_rules"]["rules"][0]["verdict"] = json!("Evil");
        json["malice_rules"]["rules"][0]["operator"] = json!("=~");
        let rule_on_a_missing_step = json!({
            "field": "steps.nope.response.x", "operator": "in", "value": "a", "verdict": "Bad"
        });
        json["malice_rules"]["rules"].as_array_mut().unwrap().push(rule_on_a_missing_step);

        let error = ProviderSpec::from_json(&json).unwrap_err();

        assert_eq!(
            fields(&error),
            [
                "malice_rules.rules[0].operator",
                "malice_rules.rules[0].verdict",
                "malice_rules.rules[1].verdict",
                "http_config.steps[1].expected_status",
                "http_config.steps[1].not_found_status",
                "http_config.steps[0].url",
                "http_config.steps[1].url",
                "http_config.steps[1].headers.x-debug",
                "malice_rules.rules[1].field",
                "malice_rules.rules[1].value",
            ],
            "{error}"
        );
        let messages = error.to_string();
        for expected in [
            "`Evil` is not a known verdict; expected one of `Pending`, `Benign`, `Suspicious`, \
             `Malicious`",
            "`=~` is not a known operator",
            "99 is not an HTTP status code",
            "200 is also an expected status",
            "unknown filter `upper`",
            "refers to step `later`, which does not run before this step",
            "unknown variable `indicator.valu`",
            "refers to step `nope`, which does not exist",
            "`in` needs a list of values",
        ] {
            assert!(messages.contains(expected), "missing {expected:?} in {messages}");
        }
    }

    #[test]
    fn a_definition_without_steps_is_refused() {
        let mut json = definition();
        json["http_config"]["steps"] = json!([]);

        let error = ProviderSpec::from_json(&json).unwrap_err();

        assert!(fields(&error).contains(&"http_config.steps"), "{error}");
        assert!(error.to_string().contains("must hold at least one step"));
    }

    #[test]
    fn a_missing_required_field_is_named() {
        let mut json = definition();
        json.as_object_mut().unwrap().remove("http_config");

        let error = ProviderSpec::from_json(&json).unwrap_err();

        assert_eq!(error.to_string(), "invalid provider definition: missing field `http_config`");
    }

    #[test]
    fn templates_may_only_use_what_their_place_provides() {
        let mut json = definition();
        json["base_url"] = json!("https://{{auth.domain}}/{{indicator.value}}");
        json["token"] =
            json!({"url": "{{base_url}}/token", "form_body": {"secret": "{{auth.access_token}}"}});
        json["http_config"]["steps"][0]["optional"] = json!(true);

        let error = ProviderSpec::from_json(&json).unwrap_err();

        assert_eq!(
            fields(&error),
            ["token", "http_config.steps", "base_url", "token.form_body.secret"],
            "{error}"
        );
    }

    #[test]
    fn the_reference_systems_url_templates_by_type_become_the_first_steps_url_by_type() {
        let mut json = definition();
        json["supported_indicator_types"] = json!(["ip", "domain"]);
        json["http_config"]["url_templates_by_type"] =
            json!({"domain": "{{base_url}}/domain/{{indicator.value}}"});

        let spec = ProviderSpec::from_json(&json).unwrap();

        assert_eq!(
            spec.http_config.steps[0].url_for(IndicatorType::Domain),
            "{{base_url}}/domain/{{indicator.value}}"
        );
        assert_eq!(
            spec.http_config.steps[0].url_for(IndicatorType::Ip),
            "{{base_url}}/ip/{{indicator.value}}"
        );
    }

    #[test]
    fn extraction_rows_are_checked_against_their_provider() {
        let spec = ProviderSpec::from_json(&definition()).unwrap();
        let rows = json!([
            row("other", "ip", "a", "a", "string"),
            row("example", "domain", "b", "b", "string"),
            row("example", "ip", "steps.nope.response.c", "c", "string"),
            row("example", "ip", "d", "a", "strng"),
        ]);

        let error = FieldExtraction::list_from_json(&rows, &spec).unwrap_err();

        assert_eq!(
            fields(&error),
            [
                "[3].value_type",
                "[0].provider_name",
                "[1].indicator_type",
                "[2].source_path",
                "[3].target_key"
            ],
            "{error}"
        );
    }
}
