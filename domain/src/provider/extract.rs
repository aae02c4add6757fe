//! Field extraction: turns a provider's raw answer into the small, typed `extracted` object
//! that agents and analysts read (SPEC §5, `enrichment_results.<provider>.extracted`).
//!
//! Providers disagree on types (URLhaus sends numbers and booleans as strings), so every value
//! is coerced to its row's `value_type`; a value that cannot be coerced is left out, like a
//! missing one, so that `extracted` never holds a `null` or a value of the wrong type.

use serde_json::{Map, Number, Value};

use super::http::Found;
use super::spec::{FieldExtraction, ValueType};
use super::template::split_step_path;
use crate::alert::IndicatorType;
use crate::normalize::path::lookup;

/// The `extracted` object for an indicator of type `kind`, from the rows for that type.
pub fn extract(
    extractions: &[FieldExtraction],
    kind: IndicatorType,
    found: &Found,
) -> Map<String, Value> {
    extractions
        .iter()
        .filter(|extraction| extraction.indicator_type == kind)
        .filter_map(|extraction| {
            let value = coerce(extraction.value_type, &resolve(found, &extraction.source_path))?;
            Some((extraction.target_key.clone(), value))
        })
        .collect()
}

/// Every non-null value `path` reaches: in the named step's body for
/// `steps.<name>.response.<path>`, otherwise in the final step's body.
pub(crate) fn resolve<'a>(found: &'a Found, path: &str) -> Vec<&'a Value> {
    let (body, path) = match split_step_path(path) {
        Some((step, path)) => (found.response(step), path),
        None => (found.final_response(), path),
    };
    match (body, path) {
        (None, _) | (Some(Value::Null), _) => Vec::new(),
        (Some(body), "") => vec![body],
        (Some(body), path) => lookup(body, path),
    }
}

/// One value of type `value_type` from what a path reached, or `None` to leave the key out.
/// Scalar types take the first value that converts, since a path through an array reaches
/// one value per element.
fn coerce(value_type: ValueType, values: &[&Value]) -> Option<Value> {
    match value_type {
        ValueType::String => values.iter().find_map(|value| as_string(value)).map(Value::String),
        ValueType::Int => values.iter().find_map(|value| as_int(value)).map(Value::from),
        ValueType::Float => values
            .iter()
            .find_map(|value| as_float(value))
            .and_then(Number::from_f64)
            .map(Value::Number),
        ValueType::Bool => values.iter().find_map(|value| as_bool(value)).map(Value::Bool),
        ValueType::List => (!values.is_empty())
            .then(|| Value::Array(values.iter().map(|&value| value.clone()).collect())),
        ValueType::Object => {
            values.iter().find(|value| value.is_object()).map(|&value| value.clone())
        }
        ValueType::Any => match values {
            [] => None,
            [one] => Some((*one).clone()),
            many => Some(Value::Array(many.iter().map(|&value| value.clone()).collect())),
        },
    }
}

fn as_string(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(_) | Value::Bool(_) => Some(value.to_string()),
        _ => None,
    }
}

/// An integer, from an integral number or numeric text. A fraction is not silently dropped.
fn as_int(value: &Value) -> Option<i64> {
    match value {
        Value::Number(number) => number.as_i64().or_else(|| {
            let float = number.as_f64()?;
            (float.fract() == 0.0 && float.abs() < 9.0e15).then_some(float as i64)
        }),
        Value::String(text) => text.trim().parse().ok(),
        _ => None,
    }
}

pub(crate) fn as_float(value: &Value) -> Option<f64> {
    match value {
        Value::Number(number) => number.as_f64(),
        Value::String(text) => text.trim().parse().ok().filter(|float: &f64| float.is_finite()),
        _ => None,
    }
}

pub(crate) fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(flag) => Some(*flag),
        Value::String(text) if text.trim().eq_ignore_ascii_case("true") => Some(true),
        Value::String(text) if text.trim().eq_ignore_ascii_case("false") => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::provider::http::StepResponse;

    fn found(bodies: &[(&str, Value)]) -> Found {
        let responses = bodies
            .iter()
            .map(|(step, body)| StepResponse {
                step: (*step).into(),
                status: 200,
                body: body.clone(),
            })
            .collect();
        let final_step = bodies.last().map(|(step, _)| (*step).to_owned()).unwrap_or_default();
        Found { responses, status: 200, final_step }
    }

    fn row(source_path: &str, target_key: &str, value_type: ValueType) -> FieldExtraction {
        FieldExtraction {
            provider_name: "test".into(),
            indicator_type: IndicatorType::Ip,
            source_path: source_path.into(),
            target_key: target_key.into(),
            value_type,
            description: String::new(),
        }
    }

    #[test]
    fn values_are_coerced_to_their_declared_types() {
        let found = found(&[(
            "lookup",
            json!({"id": "3149870", "larted": "true", "percent": "71.23", "count": 14, "asn": 3.0,
                   "flag": false, "tags": "single", "stats": {"malicious": 1}}),
        )]);
        let rows = [
            row("id", "id", ValueType::Int),
            row("larted", "larted", ValueType::Bool),
            row("percent", "percent", ValueType::Float),
            row("count", "count_text", ValueType::String),
            row("asn", "asn", ValueType::Int),
            row("flag", "flag", ValueType::Bool),
            row("tags", "tags", ValueType::List),
            row("stats", "stats", ValueType::Object),
        ];
        assert_eq!(
            Value::Object(extract(&rows, IndicatorType::Ip, &found)),
            json!({"id": 3149870, "larted": true, "percent": 71.23, "count_text": "14", "asn": 3,
                   "flag": false, "tags": ["single"], "stats": {"malicious": 1}})
        );
    }

    #[test]
    fn missing_null_and_unconvertible_values_leave_the_key_out() {
        let found =
            found(&[("lookup", json!({"lastReportedAt": null, "ratio": "52 / 73", "obj": {}}))]);
        let rows = [
            row("lastReportedAt", "last_reported_at", ValueType::String),
            row("absent", "absent", ValueType::List),
            row("ratio", "ratio", ValueType::Float),
            row("obj", "obj_text", ValueType::String),
        ];
        assert_eq!(extract(&rows, IndicatorType::Ip, &found), Map::new());
    }

    #[test]
    fn earlier_steps_are_reached_by_name_and_others_read_the_final_step() {
        let found = found(&[
            ("user", json!({"id": "00u1", "profile": {"login": "j@contoso.com"}})),
            (
                "groups",
                json!([{"profile": {"name": "Everyone"}}, {"profile": {"name": "Finance"}}]),
            ),
        ]);
        let rows = [
            row("steps.user.response.profile.login", "login", ValueType::String),
            row("profile.name", "groups", ValueType::List),
            row("id", "final_step_has_no_id", ValueType::String),
        ];
        assert_eq!(
            Value::Object(extract(&rows, IndicatorType::Ip, &found)),
            json!({"login": "j@contoso.com", "groups": ["Everyone", "Finance"]})
        );
    }

    #[test]
    fn a_skipped_final_step_yields_nothing_rather_than_an_earlier_body() {
        let mut found = found(&[("user", json!({"id": "00u1"}))]);
        found.final_step = "groups".into();
        let rows = [row("id", "id", ValueType::String)];
        assert_eq!(extract(&rows, IndicatorType::Ip, &found), Map::new());
    }

    #[test]
    fn rows_for_other_indicator_types_are_ignored() {
        let found = found(&[("lookup", json!({"a": 1}))]);
        let mut domain_row = row("a", "a", ValueType::Int);
        domain_row.indicator_type = IndicatorType::Domain;
        assert_eq!(extract(&[domain_row], IndicatorType::Ip, &found), Map::new());
    }
}
