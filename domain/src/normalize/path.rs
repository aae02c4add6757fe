//! Dot paths into JSON payloads, as written in source mappings and user field mappings.
//!
//! SIEMs disagree on shape: Elastic sends `{"kibana.alert.rule.name": ..}` as one flat key or
//! as nested objects depending on the export, Splunk keeps multi-value fields as arrays, and
//! Sentinel nests entities in arrays. One path syntax has to reach the same value in all of
//! them, so a mapping written once keeps working when a source changes its serialization.

use serde_json::Value;

/// One step of a parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step<'p> {
    /// A dot-separated name; it may also join with its neighbours into one flat dotted key,
    /// and a numeric name indexes an array.
    Key(&'p str),
    /// `[n]`: the n-th element of an array.
    Index(usize),
    /// `[]` or `*`: every element of an array or every value of an object.
    Every,
}

/// Every non-null value that `path` reaches in `root`.
///
/// At each object the longest run of the remaining names joined by `.` is tried as a key
/// first, then shorter runs, and the first run that reaches anything wins; flat dotted keys
/// and nested objects therefore mix freely. A name applied to an array applies to each of its
/// elements, and a path that ends on an array yields the array's elements.
pub fn lookup<'a>(root: &'a Value, path: &str) -> Vec<&'a Value> {
    let steps = parse(path);
    let mut found = Vec::new();
    walk(root, &steps, &mut found);
    found
}

/// Splits `a.b[0].c[]` into steps. A bracket whose content is neither digits nor empty (or
/// `*`) is read as part of the key, since flat keys may contain brackets of their own.
fn parse(path: &str) -> Vec<Step<'_>> {
    if path.is_empty() {
        return Vec::new();
    }
    let mut steps = Vec::new();
    for segment in path.split('.') {
        match segment.find('[').and_then(|open| bracketed_steps(segment, open)) {
            Some((name, indices)) => {
                if !name.is_empty() {
                    steps.push(Step::Key(name));
                }
                steps.extend(indices);
            }
            None if segment == "*" => steps.push(Step::Every),
            None => steps.push(Step::Key(segment)),
        }
    }
    steps
}

/// Reads `name[1][]` from `segment`, whose first bracket is at `open`. Returns `None` unless
/// the whole tail is a run of well-formed brackets.
fn bracketed_steps(segment: &str, open: usize) -> Option<(&str, Vec<Step<'_>>)> {
    let (name, mut rest) = segment.split_at(open);
    let mut steps = Vec::new();
    while let Some(after_open) = rest.strip_prefix('[') {
        let (inside, after_close) = after_open.split_once(']')?;
        let step = match inside {
            "" | "*" => Step::Every,
            digits => Step::Index(digits.parse().ok()?),
        };
        steps.push(step);
        rest = after_close;
    }
    rest.is_empty().then_some((name, steps))
}

fn walk<'a>(value: &'a Value, steps: &[Step<'_>], found: &mut Vec<&'a Value>) {
    let Some((step, rest)) = steps.split_first() else {
        collect(value, found);
        return;
    };
    match (value, step) {
        (Value::Object(_), Step::Key(_)) => walk_keys(value, steps, found),
        (Value::Object(fields), Step::Every) => {
            fields.values().for_each(|field| walk(field, rest, found));
        }
        (Value::Array(items), Step::Index(index)) => {
            if let Some(item) = items.get(*index) {
                walk(item, rest, found);
            }
        }
        (Value::Array(items), Step::Key(name)) => match name.parse::<usize>() {
            Ok(index) => {
                if let Some(item) = items.get(index) {
                    walk(item, rest, found);
                }
            }
            // A name on an array means "this field of every element": `Entities.Address`.
            Err(_) => items.iter().for_each(|item| walk(item, steps, found)),
        },
        (Value::Array(items), Step::Every) => items.iter().for_each(|item| walk(item, rest, found)),
        _ => {}
    }
}

/// Resolves the leading run of `Key` steps against an object, longest joined key first.
fn walk_keys<'a>(object: &'a Value, steps: &[Step<'_>], found: &mut Vec<&'a Value>) {
    let names: Vec<&str> = steps
        .iter()
        .map_while(|step| match step {
            Step::Key(name) => Some(*name),
            Step::Index(_) | Step::Every => None,
        })
        .collect();
    for run in (1..=names.len()).rev() {
        let Some(field) = object.get(names[..run].join(".")) else {
            continue;
        };
        let before = found.len();
        walk(field, &steps[run..], found);
        if found.len() > before {
            return;
        }
    }
}

/// Emits a path's final value, opening arrays so that `host.ip` yields each address.
fn collect<'a>(value: &'a Value, found: &mut Vec<&'a Value>) {
    match value {
        Value::Null => {}
        Value::Array(items) => items.iter().for_each(|item| collect(item, found)),
        _ => found.push(value),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn strings(root: &Value, path: &str) -> Vec<String> {
        lookup(root, path)
            .into_iter()
            .map(|value| value.to_string().trim_matches('"').to_owned())
            .collect()
    }

    #[test]
    fn flat_dotted_keys_are_found_whole() {
        let alert = json!({"kibana.alert.rule.name": "Rule", "host.ip": ["10.0.0.1", "fe80::1"]});
        assert_eq!(strings(&alert, "kibana.alert.rule.name"), ["Rule"]);
        assert_eq!(strings(&alert, "host.ip"), ["10.0.0.1", "fe80::1"]);
    }

    #[test]
    fn nested_objects_are_walked() {
        let alert = json!({"kibana": {"alert": {"rule": {"name": "Rule"}}}});
        assert_eq!(strings(&alert, "kibana.alert.rule.name"), ["Rule"]);
    }

    #[test]
    fn flat_and_nested_keys_mix_at_any_depth() {
        let alert = json!({
            "kibana.alert": {"rule.name": "Rule", "rule": {"uuid": "r-1"}},
            "process": {"hash.sha256": "abc"}
        });
        assert_eq!(strings(&alert, "kibana.alert.rule.name"), ["Rule"]);
        assert_eq!(strings(&alert, "kibana.alert.rule.uuid"), ["r-1"]);
        assert_eq!(strings(&alert, "process.hash.sha256"), ["abc"]);
    }

    #[test]
    fn a_shorter_key_is_tried_when_the_longer_one_leads_nowhere() {
        let alert = json!({"user.name": null, "user": {"name": "jdoe"}});
        assert_eq!(strings(&alert, "user.name"), ["jdoe"]);
    }

    #[test]
    fn array_elements_are_reached_by_number_bracket_or_wildcard() {
        let incident = json!({
            "Entities": [
                {"Type": "ip", "Address": "10.0.0.55"},
                {"Type": "ip", "Address": "185.220.101.32"}
            ],
            "host": {"ip": ["10.0.0.1", "10.0.0.2"]}
        });
        assert_eq!(strings(&incident, "host.ip.1"), ["10.0.0.2"]);
        assert_eq!(strings(&incident, "Entities[0].Address"), ["10.0.0.55"]);
        assert_eq!(strings(&incident, "Entities[].Address"), ["10.0.0.55", "185.220.101.32"]);
        assert_eq!(strings(&incident, "Entities.*.Address"), ["10.0.0.55", "185.220.101.32"]);
        assert_eq!(strings(&incident, "Entities.Address"), ["10.0.0.55", "185.220.101.32"]);
        assert!(lookup(&incident, "Entities[5].Address").is_empty());
    }

    #[test]
    fn fan_out_reaches_through_nested_arrays_of_objects() {
        let rule = json!({"threat": [
            {"technique": [{"id": "T1071", "subtechnique": [{"id": "T1071.004"}]}]},
            {"technique": [{"id": "T1048"}]}
        ]});
        assert_eq!(strings(&rule, "threat.technique.id"), ["T1071", "T1048"]);
        assert_eq!(strings(&rule, "threat[0].technique[0].subtechnique[].id"), ["T1071.004"]);
    }

    #[test]
    fn a_wildcard_on_an_object_visits_every_value() {
        let result = json!({"hashes": {"md5": "a", "sha1": "b"}});
        assert_eq!(strings(&result, "hashes.*"), ["a", "b"]);
    }

    #[test]
    fn nulls_and_missing_fields_yield_nothing() {
        let alert = json!({"a": null, "b": [null, "x"], "c": "text"});
        assert!(lookup(&alert, "a").is_empty());
        assert_eq!(strings(&alert, "b"), ["x"]);
        assert!(lookup(&alert, "c.d").is_empty());
        assert!(lookup(&alert, "missing").is_empty());
    }

    #[test]
    fn brackets_that_are_not_indices_stay_part_of_the_key() {
        let alert = json!({"labels[env]": "prod"});
        assert_eq!(strings(&alert, "labels[env]"), ["prod"]);
    }
}
