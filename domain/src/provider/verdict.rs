//! Malice rules: how one provider's answer becomes a verdict on an indicator (SPEC §3). The
//! worker then keeps the worst verdict across providers.
//!
//! Comparisons are type-aware because providers are inconsistent about types: URLhaus sends
//! `"larted": "true"` and numbers as strings, so `"100" == 100` and `"true" == true` hold.
//! Text compares without regard to ASCII case, because vendors spell their own vocabularies
//! inconsistently (`ACTIVE`, `active`) and a rule author should not have to guess. A path
//! that reaches several values (through an array) holds when any of them satisfies the rule;
//! a path that reaches nothing satisfies only `not_exists`.

use std::cmp::Ordering;

use serde_json::Value;

use super::extract::{as_bool, as_float, resolve};
use super::http::{Found, Lookup};
use super::spec::{MaliceRules, Operator};
use crate::alert::Malice;

/// The verdict of the first rule that holds, else the default; `not_found_verdict` when the
/// provider does not know the indicator.
pub fn verdict(rules: &MaliceRules, lookup: &Lookup) -> Malice {
    match lookup {
        Lookup::Found(found) => found_verdict(rules, found),
        Lookup::NotFound => rules.not_found_verdict,
    }
}

/// The verdict of a lookup that found the indicator: the first rule that holds, else the
/// default verdict.
pub fn found_verdict(rules: &MaliceRules, found: &Found) -> Malice {
    rules
        .rules
        .iter()
        .find(|rule| rule.operator.holds(&rule.value, &resolve(found, &rule.field)))
        .map_or(rules.default_verdict, |rule| rule.verdict)
}

impl Operator {
    /// Whether `actual` (every value a path reached) satisfies `self expected`.
    pub(crate) fn holds(self, expected: &Value, actual: &[&Value]) -> bool {
        let any = |test: &dyn Fn(&Value) -> bool| actual.iter().any(|value| test(value));
        match self {
            Operator::Exists => !actual.is_empty(),
            Operator::NotExists => actual.is_empty(),
            Operator::Eq => any(&|value| equals(value, expected)),
            Operator::Ne => !actual.is_empty() && !any(&|value| equals(value, expected)),
            Operator::Gt => any(&|value| compare(value, expected) == Some(Ordering::Greater)),
            Operator::Gte => any(&|value| compare(value, expected).is_some_and(Ordering::is_ge)),
            Operator::Lt => any(&|value| compare(value, expected) == Some(Ordering::Less)),
            Operator::Lte => any(&|value| compare(value, expected).is_some_and(Ordering::is_le)),
            Operator::Contains => any(&|value| contains(value, expected)),
            Operator::In => {
                let options = expected.as_array().map(Vec::as_slice).unwrap_or_default();
                any(&|value| options.iter().any(|option| equals(value, option)))
            }
        }
    }
}

fn equals(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::String(left), Value::String(right)) => left.eq_ignore_ascii_case(right),
        (Value::Bool(_), _) | (_, Value::Bool(_)) => {
            as_bool(actual).is_some_and(|flag| Some(flag) == as_bool(expected))
        }
        (Value::Number(_), _) | (_, Value::Number(_)) => {
            as_float(actual).is_some_and(|number| Some(number) == as_float(expected))
        }
        _ => actual == expected,
    }
}

/// Numbers (or numeric text) compare as numbers; other text compares as text, which orders
/// ISO 8601 timestamps correctly.
fn compare(actual: &Value, expected: &Value) -> Option<Ordering> {
    if let (Some(left), Some(right)) = (as_float(actual), as_float(expected)) {
        return left.partial_cmp(&right);
    }
    match (actual, expected) {
        (Value::String(left), Value::String(right)) => Some(left.as_str().cmp(right)),
        _ => None,
    }
}

/// Text containing text; any other value must equal the expected one (so `tags contains
/// "tor"` holds for a tags array with a `"tor"` element either way).
fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::String(haystack), Value::String(needle)) => {
            haystack.to_ascii_lowercase().contains(&needle.to_ascii_lowercase())
        }
        _ => equals(actual, expected),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::provider::http::{Found, StepResponse};
    use crate::provider::spec::MaliceRule;

    fn found(body: Value) -> Lookup {
        let responses = vec![StepResponse { step: "lookup".into(), status: 200, body }];
        Lookup::Found(Found { responses, status: 200, final_step: "lookup".into() })
    }

    fn rules(rules: &[(&str, Operator, Value, Malice)]) -> MaliceRules {
        MaliceRules {
            rules: rules
                .iter()
                .map(|(field, operator, value, verdict)| MaliceRule {
                    field: (*field).into(),
                    operator: *operator,
                    value: value.clone(),
                    verdict: *verdict,
                })
                .collect(),
            default_verdict: Malice::Benign,
            not_found_verdict: Malice::Pending,
        }
    }

    fn holds(operator: Operator, actual: Value, expected: Value) -> bool {
        let values: Vec<&Value> = match &actual {
            Value::Array(items) => items.iter().collect(),
            Value::Null => Vec::new(),
            value => vec![value],
        };
        operator.holds(&expected, &values)
    }

    #[test]
    fn the_first_rule_that_holds_decides() {
        let rules = rules(&[
            ("score", Operator::Gte, json!(75), Malice::Malicious),
            ("score", Operator::Gte, json!(25), Malice::Suspicious),
        ]);
        assert_eq!(verdict(&rules, &found(json!({"score": 100}))), Malice::Malicious);
        assert_eq!(verdict(&rules, &found(json!({"score": 30}))), Malice::Suspicious);
        assert_eq!(verdict(&rules, &found(json!({"score": 0}))), Malice::Benign);
        assert_eq!(verdict(&rules, &found(json!({}))), Malice::Benign);
        assert_eq!(verdict(&rules, &Lookup::NotFound), Malice::Pending);
    }

    #[test]
    fn numbers_compare_with_numeric_text() {
        assert!(holds(Operator::Eq, json!("100"), json!(100)));
        assert!(holds(Operator::Gt, json!("71.23"), json!(50)));
        assert!(holds(Operator::Lte, json!(3), json!("3")));
        assert!(!holds(Operator::Gt, json!("many"), json!(1)));
    }

    #[test]
    fn booleans_compare_with_boolean_text() {
        assert!(holds(Operator::Eq, json!("true"), json!(true)));
        assert!(holds(Operator::Eq, json!(false), json!("FALSE")));
        assert!(!holds(Operator::Eq, json!(1), json!(true)));
    }

    #[test]
    fn text_compares_without_regard_to_case() {
        assert!(holds(Operator::Eq, json!("ACTIVE"), json!("active")));
        assert!(holds(Operator::Contains, json!("Malware Repository"), json!("malware")));
        assert!(holds(Operator::In, json!("LOCKED_OUT"), json!(["suspended", "locked_out"])));
        assert!(holds(Operator::Lt, json!("2026-01-01T00:00:00Z"), json!("2026-02-24")));
    }

    #[test]
    fn a_rule_on_an_array_holds_when_any_element_satisfies_it() {
        assert!(holds(Operator::Contains, json!(["exe", "AsyncRAT"]), json!("asyncrat")));
        assert!(holds(Operator::Gte, json!([1, 80]), json!(75)));
        assert!(!holds(Operator::Ne, json!(["a", "b"]), json!("a")));
    }

    #[test]
    fn missing_fields_satisfy_only_not_exists() {
        for operator in
            [Operator::Eq, Operator::Ne, Operator::Gt, Operator::Contains, Operator::Exists]
        {
            assert!(!holds(operator, Value::Null, json!("x")), "{operator}");
        }
        assert!(holds(Operator::NotExists, Value::Null, Value::Null));
        assert!(holds(Operator::Exists, json!(0), Value::Null));
    }
}
