//! MITRE ATT&CK ids named by an alert, for the detection rule it belongs to.
//!
//! Sources spread them over id fields, name fields, comma lists and tags, and mix techniques
//! with sub-techniques in one list. This module sorts them into tactics (`TA0001`), techniques
//! (`T1110`) and sub-techniques (`T1110.001`), so rules from every source can be filtered and
//! compared by the same ids.

use std::collections::BTreeSet;

use serde_json::Value;

use super::fields::scalar_text;
use super::path::lookup;

/// The ATT&CK Enterprise tactics by name, squeezed to lowercase letters. Sentinel and some
/// Splunk apps name tactics (`InitialAccess`, `command_and_control`) instead of giving ids.
const TACTICS: &[(&str, &str)] = &[
    ("reconnaissance", "TA0043"),
    ("resourcedevelopment", "TA0042"),
    ("initialaccess", "TA0001"),
    ("execution", "TA0002"),
    ("persistence", "TA0003"),
    ("privilegeescalation", "TA0004"),
    ("defenseevasion", "TA0005"),
    ("credentialaccess", "TA0006"),
    ("discovery", "TA0007"),
    ("lateralmovement", "TA0008"),
    ("collection", "TA0009"),
    ("exfiltration", "TA0010"),
    ("commandandcontrol", "TA0011"),
    ("impact", "TA0040"),
];

/// The ATT&CK ids of one alert, each list sorted and without repeats.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct MitreIds {
    pub(super) tactics: Vec<String>,
    pub(super) techniques: Vec<String>,
    pub(super) subtechniques: Vec<String>,
}

#[derive(Default)]
struct Collector {
    tactics: BTreeSet<String>,
    techniques: BTreeSet<String>,
    subtechniques: BTreeSet<String>,
}

/// Gathers the ids in the fields at `paths` (which may hold ids, tactic names or comma lists)
/// and in `tags`. A tag counts only when it is an id as a whole: tags such as "Execution" are
/// free-form labels, not claims about ATT&CK.
pub(super) fn collect(payload: &Value, paths: &[&str], tags: &[String]) -> MitreIds {
    let mut collector = Collector::default();
    for value in paths.iter().flat_map(|path| lookup(payload, path)) {
        if let Some(text) = scalar_text(value) {
            collector.add_field_text(&text);
        }
    }
    for tag in tags {
        collector.add_id(tag.trim());
    }
    MitreIds {
        tactics: collector.tactics.into_iter().collect(),
        techniques: collector.techniques.into_iter().collect(),
        subtechniques: collector.subtechniques.into_iter().collect(),
    }
}

impl Collector {
    /// Reads a field value such as `T1059.001, T1027` or `Defense Evasion`.
    fn add_field_text(&mut self, text: &str) {
        for item in text.split([',', ';', '|', '\n']).map(str::trim) {
            if let Some(tactic) = tactic_by_name(item) {
                self.tactics.insert(tactic.to_owned());
                continue;
            }
            for word in item.split_whitespace() {
                self.add_id(word);
            }
        }
    }

    /// Files `word` under its kind if it is an ATT&CK id. A sub-technique also files its
    /// parent technique, so a search by technique finds rules that only name the sub-technique.
    fn add_id(&mut self, word: &str) {
        let id = word.to_ascii_uppercase();
        if is_id(&id, "TA", 4) {
            self.tactics.insert(id);
        } else if is_id(&id, "T", 4) {
            self.techniques.insert(id);
        } else if let Some((technique, sub)) = id.split_once('.')
            && is_id(technique, "T", 4)
            && sub.len() == 3
            && sub.chars().all(|c| c.is_ascii_digit())
        {
            self.techniques.insert(technique.to_owned());
            self.subtechniques.insert(id);
        }
    }
}

/// Whether `text` is `prefix` followed by exactly `digits` ASCII digits.
fn is_id(text: &str, prefix: &str, digits: usize) -> bool {
    text.strip_prefix(prefix)
        .is_some_and(|number| number.len() == digits && number.chars().all(|c| c.is_ascii_digit()))
}

fn tactic_by_name(name: &str) -> Option<&'static str> {
    let squeezed: String =
        name.chars().filter(char::is_ascii_alphabetic).map(|c| c.to_ascii_lowercase()).collect();
    TACTICS.iter().find(|(known, _)| *known == squeezed).map(|(_, id)| *id)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn ids_are_sorted_into_tactics_techniques_and_subtechniques() {
        let alert = json!({"tactic": ["TA0002", "TA0005"], "technique": ["T1059.001", "T1027"]});
        let ids = collect(&alert, &["tactic", "technique"], &[]);
        assert_eq!(ids.tactics, ["TA0002", "TA0005"]);
        assert_eq!(ids.techniques, ["T1027", "T1059"]);
        assert_eq!(ids.subtechniques, ["T1059.001"]);
    }

    #[test]
    fn tactic_names_become_tactic_ids() {
        let alert = json!({"tactics": ["InitialAccess", "Command and Control", "defense_evasion"]});
        assert_eq!(collect(&alert, &["tactics"], &[]).tactics, ["TA0001", "TA0005", "TA0011"]);
    }

    #[test]
    fn comma_lists_and_lowercase_ids_are_read() {
        let alert = json!({"mitre": "t1110.001, T1078;TA0006"});
        let ids = collect(&alert, &["mitre"], &[]);
        assert_eq!(ids.tactics, ["TA0006"]);
        assert_eq!(ids.techniques, ["T1078", "T1110"]);
        assert_eq!(ids.subtechniques, ["T1110.001"]);
    }

    #[test]
    fn only_tags_that_are_whole_ids_count() {
        let tags = ["T1566.002", "Execution", "Tactic: Exfiltration", "T15"].map(String::from);
        let ids = collect(&json!({}), &[], &tags);
        assert_eq!(
            ids,
            MitreIds {
                tactics: vec![],
                techniques: vec!["T1566".into()],
                subtechniques: vec!["T1566.002".into()],
            }
        );
    }
}
