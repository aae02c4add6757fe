//! Detection rules (SPEC §4): created by ingest the first time an alert names one, and edited,
//! created or deleted by people. Editing never breaks the link to a rule's alerts: they point
//! at its id, not at its name.

use serde::Deserialize;
use sqlx::PgPool;
use uuid::Uuid;

use crate::alert::Severity;
use crate::store::rule::{self as rule_store, RuleFields, RuleRow};
use crate::targeting::RuleProblem;

/// A rule as people write it.
#[derive(Debug, Clone, Deserialize)]
pub struct RuleInput {
    pub name: String,
    pub source_name: String,
    pub source_rule_id: String,
    #[serde(default)]
    pub severity: Option<Severity>,
    #[serde(default)]
    pub mitre_tactics: Vec<String>,
    #[serde(default)]
    pub mitre_techniques: Vec<String>,
    #[serde(default)]
    pub mitre_subtechniques: Vec<String>,
    #[serde(default)]
    pub data_sources: Vec<String>,
    #[serde(default)]
    pub documentation: Option<String>,
    #[serde(default = "yes")]
    pub is_active: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("invalid detection rule: {}", .0.iter().map(|p| format!("{}: {}", p.field, p.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<RuleProblem>),
    #[error("a detection rule with source {0:?} and source rule id {1:?} already exists")]
    Duplicate(String, String),
    #[error("no detection rule has id {0}")]
    NotFound(Uuid),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The MITRE ATT&CK id formats: tactics `TA0001`, techniques `T1078`, sub-techniques
/// `T1078.004`.
pub fn is_tactic_id(id: &str) -> bool {
    id.strip_prefix("TA").is_some_and(|digits| is_digits(digits, 4))
}

pub fn is_technique_id(id: &str) -> bool {
    id.strip_prefix('T').is_some_and(|digits| is_digits(digits, 4))
}

pub fn is_subtechnique_id(id: &str) -> bool {
    id.split_once('.')
        .is_some_and(|(technique, sub)| is_technique_id(technique) && is_digits(sub, 3))
}

fn is_digits(text: &str, count: usize) -> bool {
    text.len() == count && text.bytes().all(|b| b.is_ascii_digit())
}

/// A list of MITRE ids to check: its field, its values, the format check, and what it expects.
type IdList<'a> = (&'static str, &'a [String], fn(&str) -> bool, &'static str);

impl RuleInput {
    pub fn validate(&self) -> Result<RuleFields, RuleError> {
        let mut problems = Vec::new();
        let mut required = |field: &str, value: &str| {
            if value.trim().is_empty() {
                problems
                    .push(RuleProblem { field: field.into(), message: "must not be blank".into() });
            }
        };
        required("name", &self.name);
        required("source_name", &self.source_name);
        required("source_rule_id", &self.source_rule_id);
        let ids: [IdList<'_>; 3] = [
            (
                "mitre_tactics",
                &self.mitre_tactics,
                is_tactic_id,
                "a MITRE tactic id such as TA0001",
            ),
            (
                "mitre_techniques",
                &self.mitre_techniques,
                is_technique_id,
                "a MITRE technique id such as T1078",
            ),
            (
                "mitre_subtechniques",
                &self.mitre_subtechniques,
                is_subtechnique_id,
                "a MITRE sub-technique id such as T1078.004",
            ),
        ];
        let mut cleaned: Vec<Vec<String>> = Vec::new();
        for (field, values, valid, expected) in ids {
            let mut kept = Vec::new();
            for (position, value) in values.iter().enumerate() {
                let id = value.trim().to_ascii_uppercase();
                if valid(&id) {
                    if !kept.contains(&id) {
                        kept.push(id);
                    }
                } else {
                    problems.push(RuleProblem {
                        field: format!("{field}[{position}]"),
                        message: format!("{value:?} is not {expected}"),
                    });
                }
            }
            cleaned.push(kept);
        }
        if !problems.is_empty() {
            return Err(RuleError::Invalid(problems));
        }
        let [tactics, techniques, subtechniques]: [Vec<String>; 3] =
            cleaned.try_into().expect("three lists of ids");
        Ok(RuleFields {
            name: self.name.trim().to_owned(),
            source_name: self.source_name.trim().to_owned(),
            source_rule_id: self.source_rule_id.trim().to_owned(),
            severity: self.severity,
            mitre_tactics: tactics,
            mitre_techniques: techniques,
            mitre_subtechniques: subtechniques,
            data_sources: self.data_sources.iter().map(|s| s.trim().to_owned()).collect(),
            documentation: self.documentation.clone().filter(|d| !d.trim().is_empty()),
            is_active: self.is_active,
        })
    }
}

pub async fn create(db: &PgPool, input: &RuleInput, actor: &str) -> Result<RuleRow, RuleError> {
    let fields = input.validate()?;
    let mut tx = db.begin().await?;
    let row = rule_store::insert(&mut *tx, &fields).await?.ok_or_else(|| {
        RuleError::Duplicate(fields.source_name.clone(), fields.source_rule_id.clone())
    })?;
    log(&mut tx, "detection_rule.created", actor, &row).await?;
    tx.commit().await?;
    Ok(row)
}

/// Replaces a rule's fields, an auto-created rule's included; its alerts stay linked.
pub async fn update(
    db: &PgPool,
    detection_rule_id: Uuid,
    input: &RuleInput,
    actor: &str,
) -> Result<RuleRow, RuleError> {
    let fields = input.validate()?;
    let mut tx = db.begin().await?;
    let row = match rule_store::update(&mut *tx, detection_rule_id, &fields).await {
        Ok(Some(row)) => row,
        Ok(None) => return Err(RuleError::NotFound(detection_rule_id)),
        Err(sqlx::Error::Database(error)) if error.is_unique_violation() => {
            return Err(RuleError::Duplicate(fields.source_name, fields.source_rule_id));
        }
        Err(error) => return Err(error.into()),
    };
    log(&mut tx, "detection_rule.updated", actor, &row).await?;
    tx.commit().await?;
    Ok(row)
}

/// Deletes a rule; its alerts keep everything else and lose only the link.
pub async fn delete(db: &PgPool, detection_rule_id: Uuid, actor: &str) -> Result<(), RuleError> {
    let mut tx = db.begin().await?;
    let row = rule_store::get(&mut *tx, detection_rule_id)
        .await?
        .ok_or(RuleError::NotFound(detection_rule_id))?;
    rule_store::delete(&mut *tx, detection_rule_id).await?;
    log(&mut tx, "detection_rule.deleted", actor, &row).await?;
    tx.commit().await?;
    Ok(())
}

async fn log(
    tx: &mut sqlx::PgConnection,
    event: &str,
    actor: &str,
    row: &RuleRow,
) -> Result<(), sqlx::Error> {
    let details = serde_json::json!({
        "detection_rule_id": row.detection_rule_id,
        "name": row.name,
        "source_name": row.source_name,
        "source_rule_id": row.source_rule_id,
    });
    crate::store::activity::record(&mut *tx, None, event, actor, &details).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mitre_ids_are_checked_against_their_formats() {
        assert!(is_tactic_id("TA0001") && !is_tactic_id("TA001") && !is_tactic_id("T0001"));
        assert!(
            is_technique_id("T1078") && !is_technique_id("T1078.004") && !is_technique_id("t1078x")
        );
        assert!(
            is_subtechnique_id("T1078.004")
                && !is_subtechnique_id("T1078")
                && !is_subtechnique_id("T1078.04")
        );
    }

    #[test]
    fn validation_names_each_bad_id_by_position_and_normalizes_good_ones() {
        let input = RuleInput {
            name: "Impossible travel".into(),
            source_name: "sentinel".into(),
            source_rule_id: "abc".into(),
            severity: None,
            mitre_tactics: vec!["ta0001".into(), "Initial Access".into()],
            mitre_techniques: vec!["T1078".into()],
            mitre_subtechniques: vec!["T1078.4".into()],
            data_sources: vec![],
            documentation: None,
            is_active: true,
        };
        let RuleError::Invalid(problems) = input.validate().unwrap_err() else { panic!() };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["mitre_tactics[1]", "mitre_subtechniques[0]"]);

        let good = RuleInput {
            mitre_tactics: vec!["ta0001".into()],
            mitre_subtechniques: vec![],
            ..input
        };
        assert_eq!(good.validate().unwrap().mitre_tactics, ["TA0001"]);
    }
}
