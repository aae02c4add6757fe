//! Targeting rules: which context documents attach to an alert (SPEC §4) and which agents an
//! alert is dispatched to (SPEC §5).
//!
//! A document's `targeting_rules` are `{"match_any": [rule…], "match_all": [rule…]}`; every rule
//! in `match_all` must hold and, when `match_any` is not empty, at least one of its rules must.
//! Empty rules match every alert: whether that means "attach everywhere" or "attach nowhere" is
//! the caller's decision. An agent's `trigger_filter` adds `min_severity`, `source_names` and
//! `tags` to the same two lists ([`TriggerFilter`]); an empty filter matches every alert.
//!
//! A rule is `{field, op, value}`. The rules are read once, by [`TargetingRules::from_json`] or
//! [`TriggerFilter::from_json`], which report every problem at once with its path
//! (`match_all[1].op`) and rewrite words from closed vocabularies canonically (`"high"` becomes
//! `"High"`), so matching never meets a value it cannot read. What the ops mean:
//!
//! - `eq`: the field equals the value. Text is compared case-insensitively. On the multi-valued
//!   fields (`tags`, `mitre_tactic`, `indicator_type`) it holds when any element equals.
//! - `in`: the value is a non-empty array; holds when the field (or any element) equals any of
//!   its values.
//! - `contains`: the value is a text; holds when the field (or any element) contains it,
//!   case-insensitively. Allowed on every field but `severity` and `malice`; on
//!   `indicator_type` it looks into the type's label (`"hash"` matches `hash_sha256`).
//! - `gte`, `lte`: only on the ordered fields, `severity` (Informational < Low < Medium < High <
//!   Critical) and `malice` (Pending < Benign < Suspicious < Malicious).
//!
//! Values of `severity`, `malice` and `indicator_type` must name one of the type's labels, in
//! any case; severity rules cannot name `Pending`, and an alert whose severity is still `Pending`
//! satisfies no severity rule (an unknown severity is not "at most Low"). A `detection_rule`
//! rule holds when the op holds for the name of the alert's detection rule or for its source
//! rule id; an alert without a detection rule satisfies no such rule. Text values must not be
//! blank.

use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::alert::{IndicatorType, Malice, Severity};

/// The facts about an alert that rules look at.
#[derive(Debug, Clone)]
pub struct AlertFacts {
    /// The SIEM or integration the alert came from: `sentinel`, `elastic`, ….
    pub source_name: String,
    pub severity: Severity,
    pub tags: Vec<String>,
    pub title: String,
    /// The name of the detection rule that fired, if the alert was linked to one.
    pub detection_rule: Option<String>,
    /// The detection rule's `source_rule_id`; `detection_rule` rules match the name or this id.
    pub detection_rule_id: Option<String>,
    /// Tactic ids such as `TA0001` and/or names such as `Initial Access`.
    pub mitre_tactics: Vec<String>,
    /// The types of the alert's indicators.
    pub indicator_types: Vec<IndicatorType>,
    pub malice: Malice,
}

impl Default for AlertFacts {
    /// An alert nothing is known about yet: severity and verdict `Pending`, everything else empty.
    fn default() -> Self {
        AlertFacts {
            source_name: String::new(),
            severity: Severity::Pending,
            tags: Vec::new(),
            title: String::new(),
            detection_rule: None,
            detection_rule_id: None,
            mitre_tactics: Vec::new(),
            indicator_types: Vec::new(),
            malice: Malice::Pending,
        }
    }
}

/// The alert fields a rule can look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Field {
    SourceName,
    Severity,
    Tags,
    Title,
    DetectionRule,
    MitreTactic,
    IndicatorType,
    Malice,
}

impl Field {
    pub const ALL: [Field; 8] = [
        Field::SourceName,
        Field::Severity,
        Field::Tags,
        Field::Title,
        Field::DetectionRule,
        Field::MitreTactic,
        Field::IndicatorType,
        Field::Malice,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::SourceName => "source_name",
            Field::Severity => "severity",
            Field::Tags => "tags",
            Field::Title => "title",
            Field::DetectionRule => "detection_rule",
            Field::MitreTactic => "mitre_tactic",
            Field::IndicatorType => "indicator_type",
            Field::Malice => "malice",
        }
    }

    /// Whether the field's values are ordered, so that `gte` and `lte` mean something, rather
    /// than text that `contains` can look into.
    fn is_ordered(self) -> bool {
        matches!(self, Field::Severity | Field::Malice)
    }
}

/// How a rule compares a field with its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Eq,
    In,
    Contains,
    Gte,
    Lte,
}

impl Op {
    pub const ALL: [Op; 5] = [Op::Eq, Op::In, Op::Contains, Op::Gte, Op::Lte];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::In => "in",
            Op::Contains => "contains",
            Op::Gte => "gte",
            Op::Lte => "lte",
        }
    }
}

/// One condition on an alert. Built by [`TargetingRules::from_json`], `value` is a text, or a
/// non-empty array of texts for `in`, already in canonical spelling for enum fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub field: Field,
    pub op: Op,
    pub value: Value,
}

impl Rule {
    /// Whether the rule holds for `alert`. A rule built in code with a value that
    /// [`TargetingRules::from_json`] would refuse never holds.
    pub fn matches(&self, alert: &AlertFacts) -> bool {
        match self.field {
            Field::SourceName => self.holds_for_texts([alert.source_name.as_str()]),
            Field::Title => self.holds_for_texts([alert.title.as_str()]),
            Field::Tags => self.holds_for_texts(alert.tags.iter().map(String::as_str)),
            Field::MitreTactic => {
                self.holds_for_texts(alert.mitre_tactics.iter().map(String::as_str))
            }
            Field::DetectionRule => self.holds_for_texts(
                alert.detection_rule.iter().chain(&alert.detection_rule_id).map(String::as_str),
            ),
            Field::IndicatorType => {
                self.holds_for_texts(alert.indicator_types.iter().map(|kind| kind.as_str()))
            }
            Field::Severity => self.holds_in_order(alert.severity),
            Field::Malice => self.holds_in_order(alert.malice),
        }
    }

    /// The rule as it is stored: `{"field": …, "op": …, "value": …}`.
    pub fn to_json(&self) -> Value {
        json!({"field": self.field.as_str(), "op": self.op.as_str(), "value": self.value})
    }

    /// The values the rule names: the list for `in`, else the one value.
    fn named_values(&self) -> Vec<&str> {
        match &self.value {
            Value::String(text) => vec![text.as_str()],
            Value::Array(items) if self.op == Op::In => {
                items.iter().filter_map(Value::as_str).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Whether the op holds for any of `actual`, the texts of a single- or multi-valued field.
    /// No texts (no tags, no detection rule) means the rule does not hold.
    fn holds_for_texts<'a>(&self, actual: impl IntoIterator<Item = &'a str>) -> bool {
        let named = self.named_values();
        match self.op {
            Op::Eq | Op::In => actual
                .into_iter()
                .any(|text| named.iter().any(|value| eq_ignoring_case(text, value))),
            Op::Contains => {
                let needles: Vec<String> = named.iter().map(|value| value.to_lowercase()).collect();
                actual.into_iter().any(|text| {
                    let text = text.to_lowercase();
                    needles.iter().any(|needle| text.contains(needle.as_str()))
                })
            }
            Op::Gte | Op::Lte => false,
        }
    }

    /// Whether the op holds for an ordered field. A value outside the rule vocabulary (a
    /// `Pending` severity) satisfies nothing.
    fn holds_in_order<T: Vocabulary + Ord>(&self, actual: T) -> bool {
        if !T::ALLOWED.contains(&actual) {
            return false;
        }
        let mut named = self.named_values().into_iter().filter_map(T::parse_label);
        match self.op {
            Op::Eq | Op::In => named.any(|value| actual == value),
            Op::Gte => named.any(|value| actual >= value),
            Op::Lte => named.any(|value| actual <= value),
            Op::Contains => false,
        }
    }
}

/// A context document's targeting rules: `{"match_any": [rule…], "match_all": [rule…]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TargetingRules {
    /// At least one must hold, unless the list is empty.
    pub match_any: Vec<Rule>,
    /// Every one must hold.
    pub match_all: Vec<Rule>,
}

impl TargetingRules {
    /// Reads and checks targeting rules. `null` or missing lists are empty; any other key is
    /// refused, as is anything but an object.
    ///
    /// # Errors
    /// Every problem found, each with its path (`match_any[0].value[2]`), when there is one.
    pub fn from_json(json: &Value) -> Result<TargetingRules, InvalidRules> {
        let mut reader = Reader::default();
        let rules = match json.as_object() {
            Some(object) => {
                reader.unknown_keys("", object, &["match_any", "match_all"]);
                reader.rules(object)
            }
            None => {
                let message = format!(
                    "expected an object {{\"match_any\": [rule…], \"match_all\": [rule…]}}, not {}",
                    kind(json)
                );
                reader.report("", message);
                TargetingRules::default()
            }
        };
        reader.finish(rules)
    }

    /// Whether there are no rules at all.
    pub fn is_empty(&self) -> bool {
        self.match_any.is_empty() && self.match_all.is_empty()
    }

    /// Whether every `match_all` rule holds and, if there are `match_any` rules, one of them
    /// does. Empty rules match every alert.
    pub fn matches(&self, alert: &AlertFacts) -> bool {
        self.match_all.iter().all(|rule| rule.matches(alert))
            && (self.match_any.is_empty() || self.match_any.iter().any(|rule| rule.matches(alert)))
    }

    /// The canonical stored form, both lists always present.
    pub fn to_json(&self) -> Value {
        json!({
            "match_any": self.match_any.iter().map(Rule::to_json).collect::<Vec<_>>(),
            "match_all": self.match_all.iter().map(Rule::to_json).collect::<Vec<_>>(),
        })
    }
}

/// An agent's trigger filter: which alerts it is sent. Every condition given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TriggerFilter {
    /// The alert's severity is at least this.
    pub min_severity: Option<Severity>,
    /// If not empty, the alert's source name is one of these (case-insensitive).
    pub source_names: Vec<String>,
    /// If not empty, the alert has at least one of these tags (case-insensitive).
    pub tags: Vec<String>,
    /// The targeting-rule form, whose `match_any` and `match_all` sit beside the keys above.
    #[serde(flatten)]
    pub rules: TargetingRules,
}

impl TriggerFilter {
    /// Reads and checks a trigger filter:
    /// `{min_severity, source_names, tags, match_any, match_all}`, each optional (`null` is the
    /// same as missing). Any other key is refused, as is anything but an object.
    ///
    /// # Errors
    /// Every problem found, each with its path (`source_names[1]`, `match_all[0].op`).
    pub fn from_json(json: &Value) -> Result<TriggerFilter, InvalidRules> {
        let mut reader = Reader::default();
        let Some(object) = json.as_object() else {
            let message = format!(
                "expected an object {{min_severity, source_names, tags, match_any, match_all}}, \
                 not {}",
                kind(json)
            );
            reader.report("", message);
            return reader.finish(TriggerFilter::default());
        };
        reader.unknown_keys(
            "",
            object,
            &["min_severity", "source_names", "tags", "match_any", "match_all"],
        );
        let min_severity = match object.get("min_severity").filter(|json| !json.is_null()) {
            Some(json) => reader
                .text("min_severity", json)
                .and_then(|text| reader.label("min_severity", text)),
            None => None,
        };
        let filter = TriggerFilter {
            min_severity,
            source_names: reader.texts("source_names", object.get("source_names")),
            tags: reader.texts("tags", object.get("tags")),
            rules: reader.rules(object),
        };
        reader.finish(filter)
    }

    /// Whether the agent should be sent `alert`.
    pub fn matches(&self, alert: &AlertFacts) -> bool {
        let severe_enough =
            self.min_severity.is_none_or(|min_severity| alert.severity >= min_severity);
        let from_source = self.source_names.is_empty()
            || self.source_names.iter().any(|name| eq_ignoring_case(name, &alert.source_name));
        let tagged = self.tags.is_empty()
            || self
                .tags
                .iter()
                .any(|tag| alert.tags.iter().any(|alert_tag| eq_ignoring_case(tag, alert_tag)));
        severe_enough && from_source && tagged && self.rules.matches(alert)
    }

    /// The canonical stored form, every key present (`min_severity` may be `null`).
    pub fn to_json(&self) -> Value {
        let rules = self.rules.to_json();
        json!({
            "min_severity": self.min_severity.map(Severity::as_str),
            "source_names": self.source_names,
            "tags": self.tags,
            "match_any": rules["match_any"],
            "match_all": rules["match_all"],
        })
    }
}

/// One thing wrong with targeting rules or a trigger filter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleProblem {
    /// Where, as a path: `match_all[1].op`, `source_names[0]`; empty for the whole value.
    pub field: String,
    pub message: String,
}

impl fmt::Display for RuleProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.field.as_str() {
            "" => f.write_str(&self.message),
            field => write!(f, "{field}: {}", self.message),
        }
    }
}

/// Rules that cannot be used, with everything wrong with them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", list_problems(.problems))]
pub struct InvalidRules {
    pub problems: Vec<RuleProblem>,
}

fn list_problems(problems: &[RuleProblem]) -> String {
    let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
    problems.join("; ")
}

/// A closed set of words a rule may use, read case-insensitively.
trait Vocabulary: Copy + PartialEq + 'static {
    /// What one word is called in messages: `field`, `severity`.
    const NOUN: &'static str;
    /// The words a rule may use, in the order messages list them.
    const ALLOWED: &'static [Self];

    fn label(self) -> &'static str;

    fn parse_label(text: &str) -> Option<Self> {
        let text = text.trim();
        Self::ALLOWED.iter().copied().find(|word| word.label().eq_ignore_ascii_case(text))
    }

    fn expected() -> String {
        let labels: Vec<&str> = Self::ALLOWED.iter().map(|word| word.label()).collect();
        format!("expected one of {}", labels.join(", "))
    }
}

impl Vocabulary for Field {
    const NOUN: &'static str = "field";
    const ALLOWED: &'static [Field] = &Field::ALL;

    fn label(self) -> &'static str {
        self.as_str()
    }
}

impl Vocabulary for Op {
    const NOUN: &'static str = "op";
    const ALLOWED: &'static [Op] = &Op::ALL;

    fn label(self) -> &'static str {
        self.as_str()
    }
}

impl Vocabulary for Severity {
    const NOUN: &'static str = "severity";
    // `Pending` means "not known yet", which no rule should be written against.
    const ALLOWED: &'static [Severity] = &[
        Severity::Informational,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    fn label(self) -> &'static str {
        self.as_str()
    }
}

impl Vocabulary for Malice {
    const NOUN: &'static str = "malice verdict";
    // `Pending` is a verdict alerts keep when no provider had an opinion, so rules may name it.
    const ALLOWED: &'static [Malice] = Malice::ALL;

    fn label(self) -> &'static str {
        self.as_str()
    }
}

impl Vocabulary for IndicatorType {
    const NOUN: &'static str = "indicator type";
    const ALLOWED: &'static [IndicatorType] = IndicatorType::ALL;

    fn label(self) -> &'static str {
        self.as_str()
    }
}

/// Reads rule JSON, collecting every problem rather than stopping at the first.
#[derive(Default)]
struct Reader {
    problems: Vec<RuleProblem>,
}

impl Reader {
    fn report(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(RuleProblem { field: field.into(), message: message.into() });
    }

    fn finish<T>(self, value: T) -> Result<T, InvalidRules> {
        if self.problems.is_empty() {
            Ok(value)
        } else {
            Err(InvalidRules { problems: self.problems })
        }
    }

    /// Reports the keys of `object` that are not `known`; `prefix` is the object's path with
    /// its trailing dot.
    fn unknown_keys(&mut self, prefix: &str, object: &Map<String, Value>, known: &[&str]) {
        for key in object.keys().filter(|key| !known.contains(&key.as_str())) {
            self.report(
                format!("{prefix}{key}"),
                format!("unknown key; expected {}", known.join(", ")),
            );
        }
    }

    /// The `match_any` and `match_all` lists of `object`.
    fn rules(&mut self, object: &Map<String, Value>) -> TargetingRules {
        TargetingRules {
            match_any: self.rule_list("match_any", object.get("match_any")),
            match_all: self.rule_list("match_all", object.get("match_all")),
        }
    }

    fn rule_list(&mut self, key: &str, json: Option<&Value>) -> Vec<Rule> {
        let items = match json {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(json) => {
                self.report(key, format!("expected an array of rules, not {}", kind(json)));
                return Vec::new();
            }
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(index, json)| self.rule(&format!("{key}[{index}]"), json))
            .collect()
    }

    /// One rule, or `None` after reporting why it cannot be read.
    fn rule(&mut self, path: &str, json: &Value) -> Option<Rule> {
        let Some(object) = json.as_object() else {
            self.report(path, format!("expected a rule {{field, op, value}}, not {}", kind(json)));
            return None;
        };
        self.unknown_keys(&format!("{path}."), object, &["field", "op", "value"]);
        let field = self.word::<Field>(&format!("{path}.field"), object.get("field"));
        let op = self.word::<Op>(&format!("{path}.op"), object.get("op"));
        let value_path = format!("{path}.value");
        let Some(value) = object.get("value").filter(|value| !value.is_null()) else {
            self.report(value_path, "missing");
            return None;
        };
        let (field, op) = (field?, op?);
        // Which ops make sense on which fields; the value is only checked against a fit op.
        let misfit = match op {
            Op::Gte | Op::Lte if !field.is_ordered() => {
                Some(format!("{:?} applies only to severity and malice", op.as_str()))
            }
            Op::Contains if field.is_ordered() => Some(format!(
                "{:?} applies only to text fields: source_name, tags, title, detection_rule, \
                 mitre_tactic, indicator_type",
                op.as_str()
            )),
            _ => None,
        };
        if let Some(message) = misfit {
            self.report(format!("{path}.op"), message);
            return None;
        }
        let value = self.value(&value_path, field, op, value)?;
        Some(Rule { field, op, value })
    }

    /// A rule's `field` or `op`.
    fn word<T: Vocabulary>(&mut self, path: &str, json: Option<&Value>) -> Option<T> {
        let Some(json) = json.filter(|json| !json.is_null()) else {
            self.report(path, format!("missing; {}", T::expected()));
            return None;
        };
        let Some(text) = json.as_str() else {
            self.report(path, format!("expected a string, not {}; {}", kind(json), T::expected()));
            return None;
        };
        let word = T::parse_label(text);
        if word.is_none() {
            self.report(path, format!("unknown {} {text:?}; {}", T::NOUN, T::expected()));
        }
        word
    }

    /// A rule's value in canonical form: a text, or for `in` a non-empty array of texts.
    fn value(&mut self, path: &str, field: Field, op: Op, json: &Value) -> Option<Value> {
        if op != Op::In {
            return self.single_value(path, field, op, json).map(Value::String);
        }
        let Some(items) = json.as_array() else {
            self.report(path, format!("\"in\" needs an array of values, not {}", kind(json)));
            return None;
        };
        if items.is_empty() {
            self.report(path, "\"in\" needs at least one value");
            return None;
        }
        let values: Vec<Option<String>> = items
            .iter()
            .enumerate()
            .map(|(index, item)| self.single_value(&format!("{path}[{index}]"), field, op, item))
            .collect();
        let values: Option<Vec<Value>> =
            values.into_iter().map(|value| value.map(Value::String)).collect();
        values.map(Value::Array)
    }

    /// One value compared with `field`, checked against its vocabulary unless `op` looks for
    /// a substring.
    fn single_value(&mut self, path: &str, field: Field, op: Op, json: &Value) -> Option<String> {
        let text = self.text(path, json)?;
        let canonical = match field {
            Field::Severity => self.label::<Severity>(path, text)?.label(),
            Field::Malice => self.label::<Malice>(path, text)?.label(),
            Field::IndicatorType if op != Op::Contains => {
                self.label::<IndicatorType>(path, text)?.label()
            }
            _ => return Some(text.to_owned()),
        };
        Some(canonical.to_owned())
    }

    /// A word from a value vocabulary, such as a severity.
    fn label<T: Vocabulary>(&mut self, path: &str, text: &str) -> Option<T> {
        let word = T::parse_label(text);
        if word.is_none() {
            let article = if T::NOUN.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" };
            self.report(path, format!("{text:?} is not {article} {}; {}", T::NOUN, T::expected()));
        }
        word
    }

    /// A text that is not blank.
    fn text<'j>(&mut self, path: &str, json: &'j Value) -> Option<&'j str> {
        let Some(text) = json.as_str() else {
            self.report(path, format!("expected a string, not {}", kind(json)));
            return None;
        };
        if text.trim().is_empty() {
            self.report(path, "must not be blank");
            return None;
        }
        Some(text)
    }

    /// A list of texts, such as a trigger filter's `tags`; `null` or missing is empty.
    fn texts(&mut self, key: &str, json: Option<&Value>) -> Vec<String> {
        let items = match json {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(json) => {
                self.report(key, format!("expected an array of strings, not {}", kind(json)));
                return Vec::new();
            }
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(index, json)| self.text(&format!("{key}[{index}]"), json))
            .map(str::to_owned)
            .collect()
    }
}

/// How messages name the kind of a JSON value.
fn kind(json: &Value) -> &'static str {
    match json {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn eq_ignoring_case(left: &str, right: &str) -> bool {
    left.chars().flat_map(char::to_lowercase).eq(right.chars().flat_map(char::to_lowercase))
}

/// `field` inside `parent` (`targeting_rules.match_all[0].op`), or `parent` itself for a
/// problem with the whole value, whose field is empty.
pub fn nested(parent: &str, field: &str) -> String {
    if field.is_empty() { parent.to_owned() } else { format!("{parent}.{field}") }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// An alert with something in every field rules look at.
    fn phishing_alert() -> AlertFacts {
        AlertFacts {
            source_name: "sentinel".to_owned(),
            severity: Severity::High,
            tags: vec!["phishing".to_owned(), "Finance".to_owned()],
            title: "Suspicious sign-in from TOR exit node".to_owned(),
            detection_rule: Some("Impossible travel".to_owned()),
            detection_rule_id: Some("rule-42".to_owned()),
            mitre_tactics: vec!["TA0001".to_owned(), "Initial Access".to_owned()],
            indicator_types: vec![IndicatorType::Ip, IndicatorType::HashSha256],
            malice: Malice::Suspicious,
        }
    }

    fn rules(json: Value) -> TargetingRules {
        TargetingRules::from_json(&json).unwrap_or_else(|error| panic!("{json}: {error}"))
    }

    fn filter(json: Value) -> TriggerFilter {
        TriggerFilter::from_json(&json).unwrap_or_else(|error| panic!("{json}: {error}"))
    }

    /// Checks one-rule `match_all` lists against `alert`; each case is
    /// `(field, op, value, whether it should match)`. Lists every wrong case, not only the first.
    #[track_caller]
    fn assert_rules(alert: &AlertFacts, cases: &[(&str, &str, Value, bool)]) {
        let wrong: Vec<String> = cases
            .iter()
            .filter(|(field, op, value, expected)| {
                let rule = json!({"field": field, "op": op, "value": value});
                rules(json!({"match_all": [rule]})).matches(alert) != *expected
            })
            .map(|(field, op, value, expected)| {
                format!("{field} {op} {value} should {}match", if *expected { "" } else { "not " })
            })
            .collect();
        assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
    }

    /// Checks that `json` is refused as targeting rules with exactly these `(path, message)`
    /// problems, in order.
    #[track_caller]
    fn assert_problems(json: Value, expected: &[(&str, &str)]) {
        let error = TargetingRules::from_json(&json).expect_err("rules should be refused");
        assert_eq!(problem_pairs(&error), expected);
    }

    fn problem_pairs(error: &InvalidRules) -> Vec<(&str, &str)> {
        error.problems.iter().map(|p| (p.field.as_str(), p.message.as_str())).collect()
    }

    #[test]
    fn source_name_rules_compare_case_insensitively() {
        assert_rules(
            &phishing_alert(),
            &[
                ("source_name", "eq", json!("Sentinel"), true),
                ("source_name", "eq", json!("elastic"), false),
                ("source_name", "in", json!(["elastic", "SENTINEL"]), true),
                ("source_name", "in", json!(["elastic", "splunk"]), false),
                ("source_name", "contains", json!("senti"), true),
                ("source_name", "contains", json!("elast"), false),
            ],
        );
    }

    #[test]
    fn severity_rules_follow_the_severity_order() {
        assert_rules(
            &phishing_alert(),
            &[
                ("severity", "eq", json!("High"), true),
                ("severity", "eq", json!("high"), true),
                ("severity", "eq", json!("Critical"), false),
                ("severity", "in", json!(["Medium", "High"]), true),
                ("severity", "in", json!(["Low", "Critical"]), false),
                ("severity", "gte", json!("Medium"), true),
                ("severity", "gte", json!("High"), true),
                ("severity", "gte", json!("Critical"), false),
                ("severity", "lte", json!("High"), true),
                ("severity", "lte", json!("Critical"), true),
                ("severity", "lte", json!("Medium"), false),
            ],
        );
    }

    #[test]
    fn a_pending_severity_satisfies_no_severity_rule() {
        let alert = AlertFacts { severity: Severity::Pending, ..phishing_alert() };

        assert_rules(
            &alert,
            &[
                ("severity", "lte", json!("Critical"), false),
                ("severity", "gte", json!("Informational"), false),
                ("severity", "in", json!(["Informational", "Low"]), false),
            ],
        );
    }

    #[test]
    fn tag_rules_hold_when_any_tag_matches() {
        assert_rules(
            &phishing_alert(),
            &[
                ("tags", "eq", json!("finance"), true),
                ("tags", "eq", json!("PHISHING"), true),
                ("tags", "eq", json!("malware"), false),
                ("tags", "eq", json!("fin"), false),
                ("tags", "in", json!(["malware", "Finance"]), true),
                ("tags", "in", json!(["malware", "ransomware"]), false),
                ("tags", "contains", json!("fish"), false),
                ("tags", "contains", json!("phish"), true),
                ("tags", "contains", json!("NANCE"), true),
            ],
        );
        let untagged = AlertFacts { tags: Vec::new(), ..phishing_alert() };
        assert_rules(&untagged, &[("tags", "contains", json!("a"), false)]);
    }

    #[test]
    fn title_rules_match_whole_titles_or_substrings() {
        assert_rules(
            &phishing_alert(),
            &[
                ("title", "eq", json!("suspicious sign-in from tor exit node"), true),
                ("title", "eq", json!("Suspicious sign-in"), false),
                ("title", "in", json!(["Other", "Suspicious sign-in from TOR exit node"]), true),
                ("title", "in", json!(["Other", "Suspicious sign-in"]), false),
                ("title", "contains", json!("tor exit"), true),
                ("title", "contains", json!("VPN"), false),
            ],
        );
    }

    #[test]
    fn detection_rule_rules_match_the_rule_name_or_its_source_id() {
        assert_rules(
            &phishing_alert(),
            &[
                ("detection_rule", "eq", json!("impossible travel"), true),
                ("detection_rule", "eq", json!("RULE-42"), true),
                ("detection_rule", "eq", json!("rule-43"), false),
                ("detection_rule", "in", json!(["Brute force", "rule-42"]), true),
                ("detection_rule", "in", json!(["Brute force", "rule-43"]), false),
                ("detection_rule", "contains", json!("travel"), true),
                ("detection_rule", "contains", json!("-42"), true),
                ("detection_rule", "contains", json!("brute"), false),
            ],
        );
    }

    #[test]
    fn detection_rule_rules_never_match_an_alert_without_a_rule() {
        let alert =
            AlertFacts { detection_rule: None, detection_rule_id: None, ..phishing_alert() };

        assert_rules(
            &alert,
            &[
                ("detection_rule", "eq", json!("Impossible travel"), false),
                ("detection_rule", "in", json!(["Impossible travel"]), false),
                ("detection_rule", "contains", json!("i"), false),
            ],
        );
    }

    #[test]
    fn mitre_tactic_rules_match_ids_and_names() {
        assert_rules(
            &phishing_alert(),
            &[
                ("mitre_tactic", "eq", json!("ta0001"), true),
                ("mitre_tactic", "eq", json!("initial access"), true),
                ("mitre_tactic", "eq", json!("TA0002"), false),
                ("mitre_tactic", "in", json!(["TA0002", "TA0001"]), true),
                ("mitre_tactic", "in", json!(["TA0002", "Execution"]), false),
                ("mitre_tactic", "contains", json!("access"), true),
                ("mitre_tactic", "contains", json!("TA00"), true),
                ("mitre_tactic", "contains", json!("lateral"), false),
            ],
        );
    }

    #[test]
    fn indicator_type_rules_match_any_indicator_of_the_alert() {
        assert_rules(
            &phishing_alert(),
            &[
                ("indicator_type", "eq", json!("ip"), true),
                ("indicator_type", "eq", json!("HASH_SHA256"), true),
                ("indicator_type", "eq", json!("domain"), false),
                ("indicator_type", "in", json!(["url", "hash_sha256"]), true),
                ("indicator_type", "in", json!(["url", "email"]), false),
                ("indicator_type", "contains", json!("hash"), true),
                ("indicator_type", "contains", json!("md5"), false),
            ],
        );
        let without_indicators = AlertFacts { indicator_types: Vec::new(), ..phishing_alert() };
        assert_rules(&without_indicators, &[("indicator_type", "in", json!(["ip", "url"]), false)]);
    }

    #[test]
    fn malice_rules_follow_the_verdict_order() {
        assert_rules(
            &phishing_alert(),
            &[
                ("malice", "eq", json!("Suspicious"), true),
                ("malice", "eq", json!("suspicious"), true),
                ("malice", "eq", json!("Malicious"), false),
                ("malice", "in", json!(["Suspicious", "Malicious"]), true),
                ("malice", "in", json!(["Pending", "Benign"]), false),
                ("malice", "gte", json!("Benign"), true),
                ("malice", "gte", json!("Malicious"), false),
                ("malice", "lte", json!("Suspicious"), true),
                ("malice", "lte", json!("Benign"), false),
            ],
        );
        let unjudged = AlertFacts { malice: Malice::Pending, ..phishing_alert() };
        assert_rules(
            &unjudged,
            &[("malice", "eq", json!("Pending"), true), ("malice", "lte", json!("Benign"), true)],
        );
    }

    #[test]
    fn match_all_needs_every_rule_and_match_any_needs_one() {
        let alert = phishing_alert();
        let high = json!({"field": "severity", "op": "gte", "value": "High"});
        let finance = json!({"field": "tags", "op": "eq", "value": "finance"});
        let elastic = json!({"field": "source_name", "op": "eq", "value": "elastic"});
        let malware = json!({"field": "tags", "op": "eq", "value": "malware"});

        let cases = [
            (json!({"match_all": [high, finance]}), true),
            (json!({"match_all": [high, elastic]}), false),
            (json!({"match_any": [elastic, finance]}), true),
            (json!({"match_any": [elastic, malware]}), false),
            (json!({"match_all": [high], "match_any": [elastic, finance]}), true),
            (json!({"match_all": [high], "match_any": [elastic, malware]}), false),
            (json!({"match_all": [elastic], "match_any": [high, finance]}), false),
        ];

        for (json, expected) in cases {
            assert_eq!(rules(json.clone()).matches(&alert), expected, "{json}");
        }
    }

    #[test]
    fn empty_rules_match_every_alert() {
        for json in
            [json!({}), json!({"match_any": [], "match_all": []}), json!({"match_any": null})]
        {
            let empty = rules(json);

            assert!(empty.is_empty());
            assert!(empty.matches(&phishing_alert()));
            assert!(empty.matches(&AlertFacts::default()));
        }
    }

    #[test]
    fn rules_are_stored_in_canonical_form_and_read_back_unchanged() {
        let read = rules(json!({
            "match_any": [{"field": "Severity", "op": "GTE", "value": "high"}],
            "match_all": [{"field": "indicator_type", "op": "in", "value": ["IP", "Hash_MD5"]},
                          {"field": "title", "op": "contains", "value": "TOR"}],
        }));

        let stored = read.to_json();

        assert_eq!(
            stored,
            json!({
                "match_any": [{"field": "severity", "op": "gte", "value": "High"}],
                "match_all": [{"field": "indicator_type", "op": "in", "value": ["ip", "hash_md5"]},
                              {"field": "title", "op": "contains", "value": "TOR"}],
            })
        );
        assert_eq!(serde_json::to_value(&read).unwrap(), stored);
        assert_eq!(rules(stored), read);
        assert!(!read.is_empty());
    }

    #[test]
    fn invalid_rules_report_every_problem_with_its_path() {
        assert_problems(
            json!({
                "match_any": [
                    {"field": "severity", "op": "eq", "value": "Severe"},
                    {"field": "sevrity", "op": "eq", "value": "High"},
                ],
                "match_all": [
                    {"field": "title", "op": "eq", "value": "x"},
                    {"field": "title", "op": "gte", "value": "x"},
                    {"op": "equals"},
                ],
            }),
            &[
                (
                    "match_any[0].value",
                    "\"Severe\" is not a severity; expected one of Informational, Low, Medium, \
                     High, Critical",
                ),
                (
                    "match_any[1].field",
                    "unknown field \"sevrity\"; expected one of source_name, severity, tags, \
                     title, detection_rule, mitre_tactic, indicator_type, malice",
                ),
                ("match_all[1].op", "\"gte\" applies only to severity and malice"),
                (
                    "match_all[2].field",
                    "missing; expected one of source_name, severity, tags, title, \
                     detection_rule, mitre_tactic, indicator_type, malice",
                ),
                (
                    "match_all[2].op",
                    "unknown op \"equals\"; expected one of eq, in, contains, gte, lte",
                ),
                ("match_all[2].value", "missing"),
            ],
        );
    }

    #[test]
    fn values_that_do_not_fit_their_op_or_field_are_refused() {
        // Each case is one rule in `match_any[0]`, with the problem it should cause.
        let cases = [
            (
                json!({"field": "title", "op": "eq", "value": 3}),
                "value",
                "expected a string, not a number",
            ),
            (
                json!({"field": "tags", "op": "eq", "value": ["a"]}),
                "value",
                "expected a string, not an array",
            ),
            (
                json!({"field": "title", "op": "contains", "value": "  "}),
                "value",
                "must not be blank",
            ),
            (
                json!({"field": "tags", "op": "in", "value": "a"}),
                "value",
                "\"in\" needs an array of values, not a string",
            ),
            (
                json!({"field": "tags", "op": "in", "value": []}),
                "value",
                "\"in\" needs at least one value",
            ),
            (
                json!({"field": "tags", "op": "in", "value": ["a", 1]}),
                "value[1]",
                "expected a string, not a number",
            ),
            (
                json!({"field": "severity", "op": "eq", "value": "Pending"}),
                "value",
                "\"Pending\" is not a severity; expected one of Informational, Low, Medium, \
                 High, Critical",
            ),
            (
                json!({"field": "malice", "op": "in", "value": ["Benign", "Evil"]}),
                "value[1]",
                "\"Evil\" is not a malice verdict; expected one of Pending, Benign, Suspicious, \
                 Malicious",
            ),
            (
                json!({"field": "indicator_type", "op": "eq", "value": "ipv4"}),
                "value",
                "\"ipv4\" is not an indicator type; expected one of ip, domain, url, hash_md5, \
                 hash_sha1, hash_sha256, email, account",
            ),
            (
                json!({"field": "tags", "op": "lte", "value": "a"}),
                "op",
                "\"lte\" applies only to severity and malice",
            ),
            (
                json!({"field": "severity", "op": "contains", "value": "Hi"}),
                "op",
                "\"contains\" applies only to text fields: source_name, tags, title, \
                 detection_rule, mitre_tactic, indicator_type",
            ),
            (
                json!({"field": 7, "op": "eq", "value": "a"}),
                "field",
                "expected a string, not a number; expected one of source_name, severity, tags, \
                 title, detection_rule, mitre_tactic, indicator_type, malice",
            ),
            (json!({"field": "title", "op": "eq", "value": null}), "value", "missing"),
            (
                json!({"field": "title", "op": "eq", "value": "a", "valeu": "b"}),
                "valeu",
                "unknown key; expected field, op, value",
            ),
        ];

        for (rule, path, message) in cases {
            let path = format!("match_any[0].{path}");
            assert_problems(json!({"match_any": [rule]}), &[(path.as_str(), message)]);
        }
    }

    #[test]
    fn rules_must_be_an_object_of_two_rule_lists() {
        assert_problems(
            json!([]),
            &[(
                "",
                "expected an object {\"match_any\": [rule…], \"match_all\": [rule…]}, not an array",
            )],
        );
        assert_problems(
            json!(null),
            &[(
                "",
                "expected an object {\"match_any\": [rule…], \"match_all\": [rule…]}, not null",
            )],
        );
        assert_problems(
            json!({"match_every": [], "match_any": {}, "match_all": ["severity"]}),
            &[
                ("match_every", "unknown key; expected match_any, match_all"),
                ("match_any", "expected an array of rules, not an object"),
                ("match_all[0]", "expected a rule {field, op, value}, not a string"),
            ],
        );
    }

    #[test]
    fn invalid_rules_display_every_problem() {
        let error = TargetingRules::from_json(&json!({
            "match_any": [{"field": "tags", "op": "gte", "value": "a"}],
            "match_all": [{"field": "title", "op": "eq"}],
        }))
        .unwrap_err();

        assert_eq!(
            error.to_string(),
            "match_any[0].op: \"gte\" applies only to severity and malice; \
             match_all[0].value: missing"
        );
    }

    #[test]
    fn trigger_filter_min_severity_lets_through_that_severity_and_above() {
        let high_or_above = filter(json!({"min_severity": "high"}));

        let at = |severity| AlertFacts { severity, ..phishing_alert() };
        assert!(high_or_above.matches(&at(Severity::Critical)));
        assert!(high_or_above.matches(&at(Severity::High)));
        assert!(!high_or_above.matches(&at(Severity::Medium)));
        assert!(!high_or_above.matches(&at(Severity::Pending)));
    }

    #[test]
    fn trigger_filter_source_names_compare_case_insensitively() {
        let from_siems = filter(json!({"source_names": ["Sentinel", "splunk"]}));

        let from = |source_name: &str| AlertFacts {
            source_name: source_name.to_owned(),
            ..phishing_alert()
        };
        assert!(from_siems.matches(&from("sentinel")));
        assert!(from_siems.matches(&from("SPLUNK")));
        assert!(!from_siems.matches(&from("elastic")));
    }

    #[test]
    fn trigger_filter_tags_need_one_tag_in_common() {
        let finance_or_hr = filter(json!({"tags": ["FINANCE", "hr"]}));

        let tagged = |tags: &[&str]| AlertFacts {
            tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
            ..phishing_alert()
        };
        assert!(finance_or_hr.matches(&tagged(&["phishing", "finance"])));
        assert!(finance_or_hr.matches(&tagged(&["HR"])));
        assert!(!finance_or_hr.matches(&tagged(&["phishing"])));
        assert!(!finance_or_hr.matches(&tagged(&[])));
    }

    #[test]
    fn trigger_filter_needs_every_condition_and_its_rules() {
        let trigger = filter(json!({
            "min_severity": "Medium",
            "source_names": ["sentinel"],
            "tags": ["phishing"],
            "match_all": [{"field": "malice", "op": "gte", "value": "Suspicious"}],
            "match_any": [{"field": "indicator_type", "op": "eq", "value": "ip"},
                          {"field": "indicator_type", "op": "eq", "value": "url"}],
        }));
        let alert = phishing_alert();

        assert!(trigger.matches(&alert));
        assert!(!trigger.matches(&AlertFacts { severity: Severity::Low, ..alert.clone() }));
        assert!(
            !trigger.matches(&AlertFacts { source_name: "elastic".to_owned(), ..alert.clone() })
        );
        assert!(
            !trigger.matches(&AlertFacts { tags: vec!["malware".to_owned()], ..alert.clone() })
        );
        assert!(!trigger.matches(&AlertFacts { malice: Malice::Benign, ..alert.clone() }));
        assert!(!trigger.matches(&AlertFacts {
            indicator_types: vec![IndicatorType::Domain],
            ..alert.clone()
        }));
    }

    #[test]
    fn empty_trigger_filter_matches_every_alert() {
        for json in [json!({}), json!({"min_severity": null, "source_names": null, "tags": []})] {
            let everything = filter(json);

            assert_eq!(everything, TriggerFilter::default());
            assert!(everything.matches(&phishing_alert()));
            assert!(everything.matches(&AlertFacts::default()));
        }
    }

    #[test]
    fn trigger_filter_is_stored_in_canonical_form_and_read_back_unchanged() {
        let read = filter(json!({
            "min_severity": "medium",
            "tags": ["phishing"],
            "match_all": [{"field": "malice", "op": "eq", "value": "MALICIOUS"}],
        }));

        let stored = read.to_json();

        assert_eq!(
            stored,
            json!({
                "min_severity": "Medium",
                "source_names": [],
                "tags": ["phishing"],
                "match_any": [],
                "match_all": [{"field": "malice", "op": "eq", "value": "Malicious"}],
            })
        );
        assert_eq!(serde_json::to_value(&read).unwrap(), stored);
        assert_eq!(filter(stored), read);
        assert_eq!(filter(json!({})).to_json()["min_severity"], Value::Null);
    }

    #[test]
    fn invalid_trigger_filter_reports_every_problem_with_its_path() {
        let error = TriggerFilter::from_json(&json!({
            "min_severity": "urgent",
            "source_names": ["sentinel", 4, ""],
            "tags": "phishing",
            "match_all": [{"field": "severity", "op": "gte", "value": "Hgh"}],
            "severity": "High",
        }))
        .unwrap_err();

        assert_eq!(
            problem_pairs(&error),
            [
                (
                    "severity",
                    "unknown key; expected min_severity, source_names, tags, match_any, match_all"
                ),
                (
                    "min_severity",
                    "\"urgent\" is not a severity; expected one of Informational, Low, Medium, \
                     High, Critical"
                ),
                ("source_names[1]", "expected a string, not a number"),
                ("source_names[2]", "must not be blank"),
                ("tags", "expected an array of strings, not a string"),
                (
                    "match_all[0].value",
                    "\"Hgh\" is not a severity; expected one of Informational, Low, Medium, \
                     High, Critical"
                ),
            ]
        );
        assert!(TriggerFilter::from_json(&json!("High")).is_err());
    }
}
